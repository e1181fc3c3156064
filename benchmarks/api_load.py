"""API load vs slot timing: does heavy API use disturb the emulation?

Starts a server (real uvicorn in a subprocess, engine in a child process or a
thread), runs a paced offline scenario (one saturated UE, 40 MHz FDD, 0.5 ms
slots), and measures the engine's slot lateness p99 twice:

- unloaded: nothing but this script's occasional GET /cell;
- loaded: ``--clients`` concurrent HTTP clients polling GET /ues at ``--rate-hz``
  each plus ``--ws`` WebSocket subscribers on /stream.

Slot lateness p99 is read from the engine's snapshot (a ring of the most recent
slots, ~10 s) every 5 s; each phase reports the median of those readings.
Prints ``key=value`` lines. Target: loaded p99 within 10% of unloaded.

    .venv/bin/python benchmarks/api_load.py [--duration-s 60] [--engine process|thread|both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CELL = {"numerology": 1, "bandwidth_mhz": 20, "duplex": "FDD"}


def scenario_body() -> dict:
    from test_api_support import bulk_ue
    ue = bulk_ue(1)
    ue["traffic"]["rate_mbps"] = 120.0        # just above what the 20 MHz cell gives one UE
    return {"name": "api-load", "cell": CELL, "policy": "pf", "ues": [ue]}


def start_server(mode: str, port: int) -> subprocess.Popen:
    data = tempfile.mkdtemp(prefix="neuralemu-bench-")
    env = dict(os.environ, NEURALEMU_QUIET="1")
    cmd = [sys.executable, "-m", "neuralemu.cli", "serve", "--port", str(port), "--engine", mode,
           "--data-dir", data]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


async def poller(port: int, rate_hz: float, stop: asyncio.Event, stats: dict) -> None:
    """One keep-alive HTTP/1.1 client: GET /ues every 1/rate_hz s (a raw socket, to keep the
    load generator itself cheap on a 2-core machine)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /ues HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    period = 1.0 / rate_hz
    next_t = time.monotonic() + period * (hash(id(stats)) % 100) / 100
    try:
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            next_t += period
            t0 = time.monotonic()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            stats["requests"] += 1
            stats["latency_s"].append(time.monotonic() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                stats["errors"] += 1
    except (ConnectionError, asyncio.IncompleteReadError):
        stats["errors"] += 1
    finally:
        writer.close()


async def subscriber(port: int, stop: asyncio.Event, stats: dict) -> None:
    from websockets.asyncio.client import connect
    async with connect(f"ws://127.0.0.1:{port}/stream", max_size=1 << 22) as ws:
        while not stop.is_set():
            try:
                await asyncio.wait_for(ws.recv(), 1.0)
                stats["ws_messages"] += 1
            except asyncio.TimeoutError:
                pass


async def load(port: int, clients: int, rate_hz: float, ws: int, seconds: float, stats: dict) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(poller(port, rate_hz, stop, stats)) for _ in range(clients)]
    tasks += [asyncio.create_task(subscriber(port, stop, stats)) for _ in range(ws)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def lateness_readings(client: httpx.Client, seconds: float, every_s: float = 5.0) -> list[float]:
    out = []
    t_end = time.monotonic() + seconds
    while True:
        time.sleep(min(every_s, max(0.0, t_end - time.monotonic())))
        lat = client.get("/cell").json()["slot_lateness_us"]
        out.append(lat["p99"])
        if time.monotonic() >= t_end - 0.01:
            return out


def run_mode(mode: str, args) -> dict:
    from test_api_support import free_port
    port = free_port()
    proc = start_server(mode, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        sid = client.post("/scenarios", json=scenario_body()).json()["id"]
        client.post(f"/scenarios/{sid}/start").raise_for_status()
        time.sleep(args.warmup_s)
        unloaded = lateness_readings(client, args.duration_s)
        stats = {"requests": 0, "errors": 0, "ws_messages": 0, "latency_s": []}
        # the load runs in a separate thread's event loop while this thread samples the engine
        import threading
        th = threading.Thread(target=lambda: asyncio.run(
            load(port, args.clients, args.rate_hz, args.ws, args.duration_s + 1.0, stats)))
        th.start()
        time.sleep(min(5.0, args.duration_s / 4))      # let the ring fill with loaded slots
        loaded = lateness_readings(client, args.duration_s - min(5.0, args.duration_s / 4))
        th.join()
        cell = client.get("/cell").json()
        lat_sorted = sorted(stats["latency_s"]) or [0.0]
        return {
            "engine": mode,
            "unloaded_p99_us": statistics.median(unloaded),
            "loaded_p99_us": statistics.median(loaded),
            "requests_per_s": stats["requests"] / args.duration_s,
            "request_errors": stats["errors"],
            "http_p99_ms": 1e3 * lat_sorted[int(0.99 * (len(lat_sorted) - 1))],
            "ws_messages_per_s": stats["ws_messages"] / args.duration_s,
            "slots_run": cell["slot"],
        }
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=60.0, help="length of each phase")
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rate-hz", type=float, default=10.0)
    ap.add_argument("--ws", type=int, default=10)
    ap.add_argument("--engine", choices=("process", "thread", "both"), default="process")
    args = ap.parse_args()
    modes = ("process", "thread") if args.engine == "both" else (args.engine,)
    for mode in modes:
        r = run_mode(mode, args)
        p = mode
        print(f"{p}.slot_lateness_p99_unloaded_us={r['unloaded_p99_us']:.1f}")
        print(f"{p}.slot_lateness_p99_loaded_us={r['loaded_p99_us']:.1f}")
        change = (r["loaded_p99_us"] - r["unloaded_p99_us"]) / max(r["unloaded_p99_us"], 1e-9)
        print(f"{p}.slot_lateness_p99_change_pct={100 * change:.1f}")
        print(f"{p}.requests_per_s={r['requests_per_s']:.0f}")
        print(f"{p}.request_errors={r['request_errors']}")
        print(f"{p}.http_p99_ms={r['http_p99_ms']:.1f}")
        print(f"{p}.ws_messages_per_s={r['ws_messages_per_s']:.0f}")
        print(f"{p}.slots_run={r['slots_run']}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
