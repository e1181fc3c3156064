"""Helpers for the API tests: a real uvicorn server in a subprocess, an HTTP client,
and headless Chromium driven over the DevTools protocol. (No tests in this module.)"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``neuralemu serve`` on 127.0.0.1:<free port>, in a subprocess."""

    def __init__(self, *, token: str | None = None, engine: str = "process", unpaced: bool = False,
                 extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.token = token
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = tempfile.mkdtemp(prefix="neuralemu-api-test-")
        cmd = [sys.executable, "-m", "neuralemu.cli", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--data-dir", self.data_dir, "--engine", engine]
        if token:
            cmd += ["--token", token]
        if unpaced:
            cmd.append("--unpaced")
        cmd += extra or []
        self.log = tempfile.NamedTemporaryFile(prefix="neuralemu-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, NEURALEMU_QUIET="1"))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.base, headers=headers, timeout=30.0)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.logs()}")
            try:
                if self.client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not come up: {self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        os.unlink(self.log.name)


def wait_for(predicate, timeout_s: float = 10.0, interval_s: float = 0.02):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


# ---- headless Chromium over the DevTools protocol ----------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """Headless Chromium with one page, driven with CDP over a WebSocket."""

    def __init__(self, width: int = 1440, height: int = 1000) -> None:
        from websockets.sync.client import connect
        self.profile = tempfile.mkdtemp(prefix="neuralemu-chromium-")
        self.proc = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
             "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        # the file appears before chromium has written the port into it
        if not wait_for(lambda: port_file.exists() and port_file.read_text().split(), 30.0, 0.05):
            self.close()
            raise RuntimeError("chromium did not open its DevTools port")
        port = int(port_file.read_text().split()[0])
        targets = wait_for(lambda: [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json()
                                    if t.get("type") == "page"], 10.0)
        self.ws = connect(targets[0]["webSocketDebuggerUrl"], max_size=64 << 20, open_timeout=10)
        self._id = 0
        self.cdp("Page.enable")
        self.cdp("Runtime.enable")

    def cdp(self, method: str, **params) -> dict:
        self._id += 1
        msg_id = self._id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def goto(self, url: str) -> None:
        self.cdp("Page.navigate", url=url)

    def eval(self, expression: str):
        res = self.cdp("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"])
        return res["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.cdp("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


# ---- a toy engine for the API's own mechanics (the real engine is in test_api_engine) ----------
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402


class ToyUe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ue_id: int = Field(..., ge=1, le=65519)
    sinr_db: float = 15.0
    ip: str | None = None
    priority: float = Field(1.0, gt=0)


class ToyScenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    prbs: int = Field(100, ge=1, le=275)
    ues: list[ToyUe] = Field(default_factory=list)
    policy: str = "rr"


class ToyAdapter:
    """Full-buffer UEs sharing ``prbs`` per 0.5 ms slot: rr splits evenly, maxcqi gives all to the best."""

    slot_duration_s = 0.0005

    def __init__(self, scenario: dict) -> None:
        sc = ToyScenario.model_validate(scenario)
        self.prbs = sc.prbs
        self.policy = sc.policy
        self.slot = 0
        self.ues: dict[int, dict] = {}
        self.bg = {"count": 0, "load_level": 0.0, "profile": None}
        self.cell_prb_slots = 0
        for ue in sc.ues:
            self.add_ue(ue.model_dump())

    def slot_index(self) -> int:
        return self.slot

    def add_ue(self, spec: dict) -> dict:
        from neuralemu.api.host import CommandError
        ue = ToyUe.model_validate(spec)
        if ue.ue_id in self.ues:
            raise CommandError(409, f"UE {ue.ue_id} exists", "ue_id")
        self.ues[ue.ue_id] = {"id": ue.ue_id, "ip": ue.ip, "priority": ue.priority, "sinr_db": ue.sinr_db,
                              "channel_offset_db": 0.0, "queue_limit_bytes": None, "bytes_delivered": 0,
                              "drops": 0, "prb_slots": 0, "slots": 0, "mcs": -1, "delays": []}
        return {"id": ue.ue_id}

    def remove_ue(self, ue_id: int) -> dict:
        self.ues.pop(ue_id)
        return {"id": ue_id}

    def patch_ue(self, ue_id: int, patch: dict) -> dict:
        u = self.ues[ue_id]
        for k in ("channel_offset_db", "priority", "queue_limit_bytes", "ip"):
            if patch.get(k) is not None:
                u[k] = patch[k]
        return {"id": ue_id}

    def set_policy(self, spec: dict) -> dict:
        self.policy = spec["name"]
        return {"name": self.policy}

    def set_background(self, spec: dict) -> dict:
        self.bg = dict(spec)
        return self.bg

    def step(self) -> dict:
        active = list(self.ues.values())
        free = int(self.prbs * (1 - min(self.bg["load_level"], 1.0)))
        if active:
            if self.policy == "maxcqi":
                best = max(active, key=lambda u: u["sinr_db"] + u["channel_offset_db"])
                shares = {best["id"]: free}
            else:
                shares = {u["id"]: free // len(active) for u in active}
            for u in active:
                p = shares.get(u["id"], 0)
                u["prb_slots"] += p
                u["slots"] += 1
                u["bytes_delivered"] += p * 100
                u["mcs"] = 20
                if p:
                    u["delays"].append(0.002 + 0.02 * self.bg["load_level"])
            self.cell_prb_slots += sum(shares.values())
        self.slot += 1
        return {"decision_time_s": 1e-5}

    def counters(self) -> dict:
        ues = []
        for u in self.ues.values():
            d, u["delays"] = u["delays"], []
            ues.append({k: v for k, v in u.items() if k not in ("delays", "sinr_db")}
                       | {"buffer_bytes": 100_000, "cqi": 12, "new_delays_s": d, "background": False})
        return {"t_us": int(self.slot * 500), "slot": self.slot, "ues": ues,
                "cell_slots": self.slot, "cell_prb_slots": self.cell_prb_slots}

    def cell_info(self) -> dict:
        return {"config": {"prbs": self.prbs}, "prbs_total": self.prbs}

    def policy_info(self) -> dict:
        return {"name": self.policy}

    def background_info(self) -> dict:
        return self.bg


class InProcessServer:
    """The app on a real uvicorn server in a thread (127.0.0.1, free port), with the toy engine."""

    def __init__(self, *, token: str | None = None, engine: str = "thread",
                 make_adapter: str = "test_api_support.ToyAdapter", scenario_schema=None,
                 ue_schema=None) -> None:
        import threading

        import uvicorn

        from neuralemu.api.app import create_app
        from neuralemu.api.runner import EngineRunner

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.data_dir = tempfile.mkdtemp(prefix="neuralemu-api-test-")
        runner = EngineRunner(mode=engine, make_adapter=make_adapter)
        self.app = create_app(token=token, runner=runner, data_dir=self.data_dir,
                              scenario_schema=scenario_schema or ToyScenario,
                              ue_schema=ue_schema or ToyUe)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error",
                                ws_max_size=1 << 16)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.base, headers=headers, timeout=30.0)
        if not wait_for(lambda: self.server.started, 30.0):
            raise RuntimeError("uvicorn did not start")

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(15)
        shutil.rmtree(self.data_dir, ignore_errors=True)


# ---- the real engine behind the API ----------------------------------------------------------------
def engine_server(*, engine: str = "process", token: str | None = None) -> Server:
    """``neuralemu serve`` over the real scenario + engine, in a subprocess."""
    return Server(engine=engine, token=token)


def bulk_ue(ue_id: int, sinr_db: float = 20.0, **extra) -> dict:
    return {"ue_id": ue_id, "directions": ["dl"], "channel": {"model": "fixed", "sinr_db": sinr_db},
            "traffic": {"kind": "bulk", "rate_mbps": 300.0, "direction": "dl"}} | extra


def cbr_ue(ue_id: int, rate_mbps: float, sinr_db: float = 20.0, **extra) -> dict:
    return {"ue_id": ue_id, "directions": ["dl"], "channel": {"model": "fixed", "sinr_db": sinr_db},
            "traffic": {"kind": "cbr", "rate_mbps": rate_mbps, "direction": "dl"}} | extra
