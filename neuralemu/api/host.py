"""The engine host: the loop that owns the running emulation, in its own thread or process.

The API never touches the engine. It posts commands (plain JSON-able dicts);
the host applies them between two slots, replies, and publishes snapshots
(plain dicts) about every 20 ms of wall time. So control never disturbs
emulation: a handler at most waits for a reply, the engine never waits for a
handler.

Pacing (offline mode): ``pace=True`` runs slots on real-time boundaries from a
monotonic clock, like the cell's ``WallClock``: when the host wakes late it runs
every missed slot back to back (capacity is never lost to jitter) and records
how late each slot started (slot lateness). ``pace=False`` runs as fast as the
CPU allows (virtual time), still taking commands between slots.

Commands (``{"op": ..., ...}``): start, stop, pause, resume, add_ue, remove_ue,
patch_ue, set_policy, set_background, shutdown. Replies are
``{"ok": True, "result": ...}`` or ``{"ok": False, "status": 4xx, "field":
..., "msg": ...}``; an error reply means nothing was applied.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from typing import Callable

from neuralemu.api.stats import DELAY_BUCKETS_S, TIMING_BUCKETS_S, Histogram
from neuralemu.errors import InputError

TIMING_RING = 4000      # slot lateness / decision quantiles: the last 4000 slots (2 s at 0.5 ms)
IDLE_MIN_S = 150e-6      # paced: spare time before a boundary worth using for adapter.idle()
IDLE_MARGIN_S = 60e-6    # ... stopping this long before the boundary
PUBLISH_INTERVAL_S = 0.1     # snapshots at most every 100 ms (and right after every command)
WINDOW_S = 0.1          # throughput / PRB averages are over the last 100 ms of emulated time


class CommandError(Exception):
    """A command that cannot be applied; carries the HTTP status and the field to blame."""

    def __init__(self, status: int, msg: str, field: str | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.field = field


class EngineHost:
    """Runs one emulation at a time; ``make_adapter(scenario_dict) -> adapter``.

    The adapter (see :mod:`neuralemu.api.adapter`) is the only code that knows
    the engine's Python API.
    """

    def __init__(self, make_adapter: Callable, *, pace: bool = True,
                 publish_interval_s: float = PUBLISH_INTERVAL_S,
                 make_live_adapter: Callable | None = None, default_mode: str = "offline",
                 live_defaults: dict | None = None, realtime: int = 0) -> None:
        self.make_adapter = make_adapter
        self.make_live_adapter = make_live_adapter
        self.default_mode = default_mode
        self.live_defaults = dict(live_defaults or {})
        self.mode = "offline"         # of the current scenario: offline | live
        self.realtime = int(realtime)  # SCHED_FIFO priority asked for the paced slot loop
        self.realtime_active = 0
        self.pace = pace
        self.publish_interval_s = publish_interval_s
        self.adapter = None
        self.state = "idle"           # idle | running | paused | stopped
        self.scenario_id: str | None = None
        self.seq = 0
        self.slots_run = 0
        self.lateness = Histogram(TIMING_BUCKETS_S, ring=TIMING_RING)
        self.decision = Histogram(TIMING_BUCKETS_S, ring=TIMING_RING)
        self.ue_delay: dict[int, Histogram] = {}
        self._t0 = 0.0
        self._n = 0
        self._last_publish = 0.0
        self._window: list[tuple[float, dict]] = []   # (emulated t_s, counters)
        self._alive = True
        self.last_error: str | None = None

    # ---- commands -------------------------------------------------------------------
    def handle(self, cmd: dict) -> dict:
        t_recv = time.monotonic()
        self._t_applied = None
        self._prepare_s = 0.0
        try:
            result = self._apply(cmd)
            reply = {"ok": True, "result": result}
        except CommandError as exc:
            reply = {"ok": False, "status": exc.status, "msg": exc.msg, "field": exc.field}
        except InputError as exc:
            reply = {"ok": False, "status": 422, "msg": str(exc), "field": exc.field}
        except Exception as exc:  # noqa: BLE001 - an engine bug must not kill the host
            self.last_error = traceback.format_exc(limit=5)
            reply = {"ok": False, "status": 500, "msg": f"engine error: {exc!r}", "field": None}
        if self._t_applied is not None:      # the slot boundary at which it took effect
            reply["applied_slot"], t_applied = self._t_applied
        else:
            reply["applied_slot"] = self.adapter.slot_index() if self.adapter is not None else None
            t_applied = time.monotonic()
        reply["host_latency_s"] = t_applied - t_recv
        reply["prepare_s"] = self._prepare_s
        if cmd.get("t_request") is not None:    # CLOCK_MONOTONIC is shared by all processes
            reply["applied_after_request_s"] = t_applied - float(cmd["t_request"])
            if self.state == "running":
                reply["request_slot"] = self.due_slot(float(cmd["t_request"]))
        return reply

    def _serve(self, cmd: dict, reply) -> None:
        """Apply ``cmd``, publish a snapshot showing its effect, then reply: the API receives
        the snapshot first (same pipe or thread, in order), so a GET after the reply sees it."""
        result = self.handle(cmd)
        self._publish(force=True)
        reply(cmd, result)

    def _locked(self):
        """The adapter's lock (live: the datapath loop's) or a no-op."""
        lock = getattr(self.adapter, "lock", None)
        return lock if lock is not None else contextlib.nullcontext()

    def _command(self, fn, *args):
        with self._locked():
            out = fn(*args)
            self._t_applied = (self.adapter.slot_index(), time.monotonic())
            return out

    def _need_running(self):
        if self.adapter is None or self.state not in ("running", "paused"):
            raise CommandError(409, "no scenario is running; POST /scenarios/{id}/start first")
        return self.adapter

    def _apply(self, cmd: dict):
        op = cmd.get("op")
        if op == "start":
            if self.state in ("running", "paused"):
                raise CommandError(409, f"scenario {self.scenario_id} is already running; stop it first")
            mode = cmd.get("mode") or self.default_mode
            if mode == "live":
                if self.make_live_adapter is None:
                    raise CommandError(501, "this server cannot run live emulations", "mode")
                options = self.live_defaults | {k: v for k, v in (cmd.get("live") or {}).items()
                                                if v is not None}
                adapter = self.make_live_adapter(cmd["scenario"], options)
            elif mode == "offline":
                adapter = self.make_adapter(cmd["scenario"])   # may raise InputError: nothing changes
            else:
                raise CommandError(422, f"mode must be offline or live, got {mode!r}", "mode")
            old = self.adapter
            if old is not None and getattr(old, "close", None) and self.state == "stopped":
                old.close()
            self.adapter = adapter
            self.mode = mode
            self._lat_read = 0
            self.scenario_id = cmd.get("scenario_id")
            self.state = "running"
            self.slots_run = 0
            self.lateness = Histogram(TIMING_BUCKETS_S, ring=TIMING_RING)
            self.decision = Histogram(TIMING_BUCKETS_S, ring=TIMING_RING)
            self.ue_delay = {}
            self._window = []
            self._reset_pacing()
            self._publish(force=True)
            return {"state": self.state, "mode": self.mode}
        if op == "stop":
            if self.state not in ("running", "paused"):
                raise CommandError(409, "no scenario is running")
            self.state = "stopped"
            close = getattr(self.adapter, "close", None)
            if close:
                close()
            self._publish(force=True)
            return {"state": self.state}
        if op == "pause":
            self._need_running()
            if getattr(self.adapter, "external_clock", False):
                raise CommandError(409, "a live emulation cannot be paused (real packets keep "
                                        "arriving); stop it instead", "state")
            self.state = "paused"
            return {"state": self.state}
        if op == "resume":
            self._need_running()
            if self.state == "paused":
                self.state = "running"
                self._reset_pacing()
            return {"state": self.state}
        if op == "shutdown":
            self._alive = False
            return {"state": self.state}
        adapter = self._need_running()
        if op == "add_ue":
            return self._command(adapter.add_ue, cmd["ue"])
        if op == "remove_ue":
            return self._command(adapter.remove_ue, int(cmd["ue_id"]))
        if op == "patch_ue":
            return self._command(adapter.patch_ue, int(cmd["ue_id"]), cmd["patch"])
        if op == "set_policy":
            prepare = getattr(adapter, "prepare_policy", None)
            if prepare is None:
                return self._command(adapter.set_policy, cmd["policy"])
            t0 = time.monotonic()
            policy = prepare(cmd["policy"])       # load model/trace outside the slot boundary
            self._prepare_s = time.monotonic() - t0
            return self._command(adapter.apply_policy, cmd["policy"], policy)
        if op == "set_background":
            return self._command(adapter.set_background, cmd["background"])
        raise CommandError(400, f"unknown command {op!r}", field="op")

    # ---- the slot loop ----------------------------------------------------------------
    def _reset_pacing(self) -> None:
        self._t0 = time.perf_counter()
        self._t0_mono = time.monotonic()
        self._slot0 = self.adapter.slot_index() if self.adapter is not None else 0
        self._n = 0

    def due_slot(self, t_mono: float) -> int | None:
        """Paced offline mode: the slot whose start was due at monotonic time ``t_mono``."""
        if not self.pace or self.adapter is None or self.mode != "offline" or \
                getattr(self, "_t0_mono", None) is None:
            return None
        slot_s = self.adapter.slot_duration_s
        return self._slot0 + int((t_mono - self._t0_mono) // slot_s)

    def run(self, poll: Callable[[float], dict | None], reply: Callable[[dict, dict], None],
            publish: Callable[[dict], None]) -> None:
        """Loop until a shutdown command: ``poll(timeout)`` returns the next command or None.
        A live emulation still running at the end is stopped (its kernel state removed)."""
        self._publish_cb = publish
        if self.realtime > 0 and self.pace:
            # like the datapath's loop thread: the paced loop sleeps between slots, and when it
            # wakes it must not wait behind HTTP handlers or other work (this thread only)
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime))
                self.realtime_active = self.realtime
            except (OSError, AttributeError):
                self.realtime_active = 0
        self._publish(force=True)
        try:
            self._run(poll, reply)
        finally:
            close = getattr(self.adapter, "close", None)
            if close is not None and self.state in ("running", "paused"):
                self.state = "stopped"
                close()

    def _run(self, poll, reply) -> None:
        idled = False
        while self._alive:
            running = self.state == "running"
            if running and getattr(self.adapter, "external_clock", False):
                self._run_external(poll, reply)
                continue
            if not running:
                cmd = poll(0.05)
                if cmd is not None:
                    self._serve(cmd, reply)
                self._publish()
                continue
            slot_s = self.adapter.slot_duration_s
            idle = getattr(self.adapter, "idle", None)
            now = time.perf_counter()
            if self.pace:
                target = self._t0 + self._n * slot_s
                wait = target - now
                if wait > 0:
                    if wait > IDLE_MIN_S and idle is not None and not idled:
                        idle(target - IDLE_MARGIN_S)    # prepare traffic in the spare time
                        idled = True
                        continue
                    cmd = poll(wait)            # sleep until the boundary, or a command
                    if cmd is not None:
                        self._serve(cmd, reply)
                    continue
                lateness_s = now - target
            else:
                lateness_s = 0.0
            # slot boundary: apply every queued command first, then run the slot
            while True:
                cmd = poll(0.0)
                if cmd is None:
                    break
                self._serve(cmd, reply)
                if self.state != "running":
                    break
            if self.state != "running":
                continue
            self.lateness.observe(lateness_s)
            idled = False
            info = self.adapter.step()
            self._n += 1
            self.slots_run += 1
            if info and info.get("decision_time_s") is not None:
                self.decision.observe(info["decision_time_s"])
            self._publish()

    def _run_external(self, poll, reply) -> None:
        """Live: the datapath's loop thread steps the engine; here only commands (applied
        under its lock, between two of its turns), timing figures and snapshots."""
        a = self.adapter
        wait = max(0.0, self._last_publish + self.publish_interval_s - time.monotonic())
        cmd = poll(wait)
        if cmd is not None:
            self._serve(cmd, reply)
        lat, steps = a.drain_timing()
        if lat:
            self.lateness.observe_many(lat)
            self.slots_run += len(lat)
        if steps:
            self.decision.observe_many(steps)
        if self.state == "running" and not a.alive():
            self.last_error = "the live loop stopped"
            try:
                a.close()
            except Exception as exc:  # noqa: BLE001
                self.last_error = f"the live loop failed: {exc}"
            self.state = "stopped"
            self._publish(force=True)
        self._publish()

    # ---- snapshots --------------------------------------------------------------------
    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_publish < self.publish_interval_s:
            return
        self._last_publish = now
        cb = getattr(self, "_publish_cb", None)
        if cb is not None:
            cb(self.snapshot())

    def snapshot(self) -> dict:
        self.seq += 1
        mode = "live" if self.mode == "live" else "offline-paced" if self.pace else "offline"
        snap = {"seq": self.seq, "t_unix": time.time(), "state": self.state,
                "scenario_id": self.scenario_id, "mode": mode,
                "slots_run": self.slots_run, "error": self.last_error,
                "realtime": self.realtime_active}
        lat = self.lateness.quantiles()
        dec = self.decision.quantiles()
        snap["slot_lateness_us"] = {k: v * 1e6 for k, v in lat.items()} | {"count": self.lateness.count}
        snap["decision_time_us"] = {k: v * 1e6 for k, v in dec.items()} | {"count": self.decision.count}
        snap["histograms"] = {"slot_lateness_seconds": self.lateness.export(),
                              "scheduler_decision_seconds": self.decision.export()}
        if self.adapter is None:
            snap.update(cell=None, ues=[], policy=None, background=None, t_us=0, slot=0)
            return snap
        a = self.adapter
        with self._locked():
            counters = a.counters()     # cumulative per-UE counters + cell counters
            cell = a.cell_info()
            policy, background = a.policy_info(), a.background_info()
        if hasattr(a, "live_info"):
            snap["live"] = a.live_info()
        t_s = counters["t_us"] / 1e6
        self._window.append((t_s, counters))
        while len(self._window) > 2 and t_s - self._window[1][0] >= WINDOW_S:
            self._window.pop(0)
        old_t, old = self._window[0]
        dt = max(t_s - old_t, 1e-9)
        old_ues = {u["id"]: u for u in old["ues"]}
        ues = []
        for u in counters["ues"]:
            o = old_ues.get(u["id"])
            hist = self.ue_delay.setdefault(u["id"], Histogram(DELAY_BUCKETS_S, ring=4096))
            hist.observe_many(u.pop("new_delays_s", ()))
            if o is not None and t_s > old_t:
                tput = 8.0 * (u["bytes_delivered"] - o["bytes_delivered"]) / dt
                slots = max(u["slots"] - o["slots"], 1)
                prbs = (u["prb_slots"] - o["prb_slots"]) / slots
            else:
                tput, prbs = 0.0, 0.0
            q = hist.quantiles((0.5, 0.95))
            ues.append(u | {"throughput_bps": tput, "prbs_avg": prbs,
                            "delay_ms_p50": q["p50"] * 1e3, "delay_ms_p95": q["p95"] * 1e3,
                            "delay_hist": hist.export()})
        for o in old.get("ues", []):
            o.pop("new_delays_s", None)
        present = {u["id"] for u in ues}
        for gone in [k for k in self.ue_delay if k not in present]:
            del self.ue_delay[gone]             # a UE attached again starts a fresh history
        if t_s > old_t:
            slots = max(counters["cell_slots"] - old["cell_slots"], 1)
            cell["prb_utilization"] = (counters["cell_prb_slots"] - old["cell_prb_slots"]) / (
                slots * max(cell.get("prbs_total", 1), 1))
        else:
            cell["prb_utilization"] = 0.0
        snap.update(cell=cell, ues=ues, policy=policy, background=background,
                    t_us=counters["t_us"], slot=counters["slot"])
        return snap
