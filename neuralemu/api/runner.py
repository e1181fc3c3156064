"""Where the engine host runs: a thread, or a separate process; and the API's side of it.

``EngineRunner`` is what the FastAPI app holds. It posts commands and awaits
replies (``await runner.call({...})``) and reads the latest snapshot
(``runner.snapshot``). Two transports share the same :class:`EngineHost` loop:

- ``thread``: the host runs in a daemon thread of the server process. Simple,
  but it shares the GIL with the HTTP server, so heavy API load delays slots.
- ``process`` (default): the host runs in a child process started with
  ``spawn``; commands, replies and snapshots travel as JSON over a pipe (no
  pickle). The API load then costs the engine nothing but CPU contention.
  ``benchmarks/api_load.py`` measures both; docs/api.md has the numbers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing as mp
import queue
import select
import threading
import time
from typing import Callable

from neuralemu.api.host import EngineHost


def _default_make_adapter(scenario: dict):
    from neuralemu.api.adapter import make_adapter
    return make_adapter(scenario)


def _resolve(path_or_fn):
    if path_or_fn is None or callable(path_or_fn):
        return path_or_fn
    import importlib
    module_name, _, attr = path_or_fn.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def _make_host(make_adapter, pace: bool, options: dict) -> EngineHost:
    return EngineHost(_resolve(make_adapter), pace=pace,
                      make_live_adapter=_resolve(options.get("make_live_adapter")),
                      default_mode=options.get("default_mode", "offline"),
                      live_defaults=options.get("live_defaults"),
                      realtime=int(options.get("realtime") or 0))


def _process_main(conn, make_adapter_path: str, pace: bool, options: dict | None = None) -> None:
    """Child-process entry: run the host, talking JSON over ``conn``."""
    import signal
    import sys
    options = options or {}
    # Ctrl-C reaches the whole process group: the server shuts the host down in order
    # (a live emulation must remove its kernel state), so the child ignores SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.setswitchinterval(0.0005)   # the slot loop (or the live loop thread) gets the GIL back fast
    host = _make_host(make_adapter_path, pace, options)

    def _term(signum, frame):
        host._alive = False
    signal.signal(signal.SIGTERM, _term)

    fd = conn.fileno()

    def poll(timeout: float):
        # select() with a float timeout sleeps with microsecond resolution; Connection.poll()
        # rounds timeouts up to whole milliseconds, which made every paced slot ~0.5 ms late
        try:
            if select.select([fd], [], [], max(0.0, timeout))[0]:
                return json.loads(conn.recv_bytes())
        except (EOFError, OSError, ValueError):
            host._alive = False
        return None

    def reply(cmd: dict, result: dict) -> None:
        _send(conn, {"kind": "reply", "id": cmd.get("_id"), "reply": result})

    def publish(snap: dict) -> None:
        _send(conn, {"kind": "snapshot", "snapshot": snap})

    try:
        host.run(poll, reply, publish)
    finally:
        try:
            conn.close()
        except OSError:
            pass


def _send(conn, message: dict) -> None:
    try:
        conn.send_bytes(json.dumps(message, default=_json_default).encode())
    except (BrokenPipeError, EOFError, OSError):
        pass


def _json_default(obj):
    try:
        import numpy as np
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    return str(obj)


class EngineRunner:
    """The API's handle on the engine host (thread or process)."""

    def __init__(self, *, mode: str = "process", pace: bool = True,
                 make_adapter: Callable | str = "neuralemu.api.runner._default_make_adapter",
                 api_nice: int = 0, default_mode: str = "offline", live_defaults: dict | None = None,
                 make_live_adapter: Callable | str | None = "neuralemu.api.live.make_live_adapter",
                 realtime: int = 0) -> None:
        if mode not in ("thread", "process"):
            raise ValueError("mode must be 'thread' or 'process'")
        self.mode = mode
        self.pace = pace
        self.api_nice = api_nice   # process mode: lower the API process's CPU priority below the engine
        self._make_adapter = make_adapter
        self.default_mode = default_mode
        self._host_options = {"make_live_adapter": make_live_adapter, "default_mode": default_mode,
                              "live_defaults": dict(live_defaults or {}), "realtime": realtime}
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}
        self._lock = threading.Lock()
        self.snapshot: dict = {"seq": 0, "state": "idle", "ues": [], "cell": None}
        self._snapshot_cond = threading.Condition()
        self._listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._proc = None
        self._conn = None
        self._cmd_queue: queue.Queue | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> "EngineRunner":
        if self.mode == "thread":
            import sys
            sys.setswitchinterval(0.0005)   # the engine thread gets the GIL back within ~0.5 ms
            self._host = _make_host(self._make_adapter, self.pace, self._host_options)
            self._cmd_queue = queue.Queue()

            def poll(timeout: float):
                try:
                    if timeout <= 0:
                        return self._cmd_queue.get_nowait()
                    return self._cmd_queue.get(timeout=timeout)
                except queue.Empty:
                    return None

            self._thread = threading.Thread(
                target=self._host.run, name="neuralemu-engine", daemon=True,
                args=(poll, lambda cmd, r: self._on_reply(cmd.get("_id"), r), self._on_snapshot))
            self._thread.start()
        else:
            if not isinstance(self._make_adapter, str):
                raise ValueError("process mode needs make_adapter as a 'module.attr' path")
            ctx = mp.get_context("spawn")
            parent, child = ctx.Pipe(duplex=True)
            self._proc = ctx.Process(target=_process_main, name="neuralemu-engine", daemon=True,
                                     args=(child, self._make_adapter, self.pace,
                                           self._host_options))
            self._proc.start()
            child.close()
            if self.api_nice > 0:      # the child keeps the old priority; only the API yields
                import os
                os.nice(self.api_nice)
            self._conn = parent
            self._send_lock = threading.Lock()
            self._thread = threading.Thread(target=self._reader, name="neuralemu-engine-reader",
                                            daemon=True)
            self._thread.start()
        return self

    def close(self, timeout_s: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._post({"op": "shutdown", "_id": 0})
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._proc is not None:
            self._proc.join(timeout_s)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout_s)
        if self._conn is not None:
            self._conn.close()

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.is_alive()
        return self._thread is not None and self._thread.is_alive()

    # ---- transport ------------------------------------------------------------------------
    def _post(self, cmd: dict) -> None:
        if self.mode == "thread":
            self._cmd_queue.put(cmd)
        else:
            with self._send_lock:
                try:
                    self._conn.send_bytes(json.dumps(cmd).encode())
                except (BrokenPipeError, OSError):
                    pass

    def _reader(self) -> None:
        while True:
            try:
                message = json.loads(self._conn.recv_bytes())
            except (EOFError, OSError):
                break
            if message["kind"] == "snapshot":
                self._on_snapshot(message["snapshot"])
            elif message["kind"] == "reply":
                self._on_reply(message["id"], message["reply"])
        # the host is gone: fail every waiting call
        with self._lock:
            pending, self._pending = self._pending, {}
        for loop, fut in pending.values():
            loop.call_soon_threadsafe(_set_result, fut, {"ok": False, "status": 503,
                                                         "msg": "engine process exited", "field": None})

    def _on_reply(self, cmd_id, reply: dict) -> None:
        with self._lock:
            entry = self._pending.pop(cmd_id, None)
        if entry is not None:
            loop, fut = entry
            loop.call_soon_threadsafe(_set_result, fut, reply)

    def _on_snapshot(self, snap: dict) -> None:
        self.snapshot = snap
        with self._snapshot_cond:
            self._snapshot_cond.notify_all()
        with self._lock:
            listeners = list(self._listeners)
        for loop, event in listeners:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass

    # ---- API side ---------------------------------------------------------------------------
    async def call(self, cmd: dict, timeout_s: float = 10.0) -> dict:
        """Post ``cmd``; return the host's reply once it was applied at a slot boundary."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        cmd_id = next(self._ids)
        with self._lock:
            self._pending[cmd_id] = (loop, fut)
        t0 = time.monotonic()
        self._post(dict(cmd, _id=cmd_id))
        try:
            reply = await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            with self._lock:
                self._pending.pop(cmd_id, None)
            return {"ok": False, "status": 504, "msg": "engine did not answer in time", "field": None}
        reply["round_trip_s"] = time.monotonic() - t0
        return reply

    def call_sync(self, cmd: dict, timeout_s: float = 10.0) -> dict:
        return asyncio.run(self.call(cmd, timeout_s))

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        with self._lock:
            self._listeners.append((asyncio.get_running_loop(), event))
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        with self._lock:
            self._listeners = [(lp, ev) for lp, ev in self._listeners if ev is not event]

    def wait_snapshot(self, after_seq: int, timeout_s: float = 2.0) -> dict:
        """Block (not in the event loop) until a snapshot newer than ``after_seq``."""
        deadline = time.monotonic() + timeout_s
        with self._snapshot_cond:
            while self.snapshot.get("seq", 0) <= after_seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._snapshot_cond.wait(left)
        return self.snapshot


def _set_result(fut: asyncio.Future, value) -> None:
    if not fut.done():
        fut.set_result(value)
