"""A UDP video-like flow: frames at a frame rate and bitrate, split into packets.

The frame schedule comes from the cloud-gaming workload model
(:class:`neuralemu.workloads.CloudGaming`: lognormal P-frames, periodic
I-frames, frame jitter; docs/workloads.md) with ``fps`` 30 and no uplink input,
so a seed always gives the same frames. Each packet carries a header::

    magic u32 | seq u32 | frame u32 | t_send_ns i64     (big endian, 20 bytes)

padded to its IP size minus 28 (IPv4 + UDP headers). The sender runs in the
server namespace and sends each packet at its scheduled time (late packets go
at once); the receiver, in the UE namespace, takes the kernel's receive
timestamp (``SO_TIMESTAMPNS``). Both namespaces share ``CLOCK_REALTIME``, so
``t_recv_ns - t_send_ns`` is the one-way delay.

    python -m neuralemu.apps.video recv --bind IP --port P --out R.csv [--idle-s 2]
    python -m neuralemu.apps.video send --dst IP --port P --schedule S.csv

Schedule CSV: ``t_us,frame,size_bytes`` (IP bytes). Receiver CSV:
``seq,frame,size_bytes,t_send_ns,t_recv_ns``.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

MAGIC = 0x4E455654           # "NEVT"
HEADER = struct.Struct(">IIIq")
UDP_IP_HEADER_BYTES = 28
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def video_schedule(*, bitrate_mbps: float = 2.0, fps: float = 30.0, duration_s: float = 10.0,
                   seed: int = 1, packet_bytes: int = 1228) -> pd.DataFrame:
    """``t_us, frame, size_bytes`` of every packet (IP bytes), from the cloud-gaming model."""
    from neuralemu.workloads import CloudGaming
    model = CloudGaming(fps=fps, bitrate_mbps=bitrate_mbps, input_hz=0.0, gop_frames=int(2 * fps),
                        packet_bytes=packet_bytes, burst_rate_mbps=200.0)
    rows = [(p.t_us, p.unit, p.size_bytes) for p in model.ue_packets(1, int(duration_s * 1e6), seed)
            if p.direction == "dl"]
    df = pd.DataFrame(rows, columns=["t_us", "frame", "size_bytes"])
    df["size_bytes"] = df["size_bytes"].clip(lower=HEADER.size + UDP_IP_HEADER_BYTES)
    return df


# ---------------------------------------------------------------------------- processes
def send(dst: str, port: int, schedule: pd.DataFrame, start_ns: int | None = None) -> int:
    sock = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    t0 = start_ns or time.time_ns()
    pad = bytes(1500)
    sent = 0
    for seq, (t_us, frame, size) in enumerate(schedule[["t_us", "frame", "size_bytes"]]
                                              .itertuples(index=False, name=None)):
        due = t0 + int(t_us) * 1000
        while True:
            wait = due - time.time_ns()
            if wait <= 0:
                break
            time.sleep(min(wait / 1e9, 0.002) if wait > 200_000 else 0)
        payload = HEADER.pack(MAGIC, seq, int(frame), time.time_ns())
        sock.sendto(payload + pad[: int(size) - UDP_IP_HEADER_BYTES - HEADER.size], (dst, port))
        sent += 1
    sock.close()
    return sent


def receive(bind: str, port: int, out: str | Path, idle_s: float = 2.0, max_s: float = 600.0,
            ready=None) -> int:
    sock = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind((bind, port))
    if ready:
        ready()
    rows = []
    got_first = False
    deadline = time.monotonic() + max_s
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop and time.monotonic() < deadline:
        sock.settimeout(idle_s if got_first else 1.0)
        try:
            data, anc, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(16))
        except socket.timeout:
            if got_first:
                break
            continue
        except InterruptedError:
            continue
        t_recv = None
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", value[:16])
                t_recv = sec * 1_000_000_000 + nsec
        if t_recv is None:
            t_recv = time.time_ns()
        if len(data) < HEADER.size:
            continue
        magic, seq, frame, t_send = HEADER.unpack_from(data)
        if magic != MAGIC:
            continue
        got_first = True
        rows.append((seq, frame, len(data) + UDP_IP_HEADER_BYTES, t_send, t_recv))
    sock.close()
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seq", "frame", "size_bytes", "t_send_ns", "t_recv_ns"])
        w.writerows(rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="UDP video-like flow sender/receiver")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--bind", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--idle-s", type=float, default=2.0)
    s = sub.add_parser("send")
    s.add_argument("--dst", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--schedule", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "recv":
        n = receive(args.bind, args.port, args.out, args.idle_s,
                    ready=lambda: print("ready", flush=True))
        print(f"received {n}", flush=True)
    else:
        n = send(args.dst, args.port, pd.read_csv(args.schedule))
        print(f"sent {n}", flush=True)
    return 0


# ---------------------------------------------------------------------------- driver
def _py(ns: str | None, args: list[str], rt_priority: int = 0) -> list[str]:
    cmd = [sys.executable, "-m", "neuralemu.apps.video", *args]
    if rt_priority:
        cmd = ["chrt", "-r", str(rt_priority)] + cmd
    return (["ip", "netns", "exec", ns] + cmd) if ns else cmd


def run_video(sender_ns: str | None, receiver_ns: str | None, receiver_ip: str,
              schedule: pd.DataFrame, workdir: str | Path, port: int = 5600,
              rt_priority: int = 0) -> pd.DataFrame:
    """Send ``schedule`` from ``sender_ns`` to ``receiver_ip`` in ``receiver_ns``; returns the
    receiver's rows. Both processes are ended, also on failure."""
    workdir = Path(workdir)
    sched_csv, out_csv = workdir / "video_schedule.csv", workdir / "video_received.csv"
    schedule.to_csv(sched_csv, index=False)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    recv = subprocess.Popen(_py(receiver_ns, ["recv", "--bind", receiver_ip, "--port", str(port),
                                              "--out", str(out_csv)], rt_priority),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        if not recv.stdout.readline().startswith("ready"):
            raise RuntimeError(f"video receiver did not start: {recv.stderr.read()[:500]}")
        duration_s = schedule["t_us"].max() / 1e6 if len(schedule) else 0
        snd = subprocess.run(_py(sender_ns, ["send", "--dst", receiver_ip, "--port", str(port),
                                             "--schedule", str(sched_csv)], rt_priority),
                             capture_output=True, text=True, env=env, timeout=duration_s + 60)
        if snd.returncode != 0:
            raise RuntimeError(f"video sender failed: {snd.stderr[-500:]}")
        recv.wait(timeout=30)
    finally:
        if recv.poll() is None:
            recv.terminate()
            try:
                recv.wait(timeout=5)
            except subprocess.TimeoutExpired:
                recv.kill()
                recv.wait()
        for f in (recv.stdout, recv.stderr):
            if f:
                f.close()
    return pd.read_csv(out_csv)


def frame_delays_ms(frames: np.ndarray, t_first_send_us: np.ndarray, t_done_us: np.ndarray
                    ) -> np.ndarray:
    """Per frame: last packet received minus the frame's first packet sent (ms)."""
    df = pd.DataFrame({"frame": frames, "s": t_first_send_us, "d": t_done_us})
    g = df.groupby("frame").agg(s=("s", "min"), d=("d", "max"))
    return ((g["d"] - g["s"]) / 1e3).to_numpy()


if __name__ == "__main__":
    raise SystemExit(main())
