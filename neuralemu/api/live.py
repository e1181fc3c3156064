"""Live mode: the server's adapter driven by the datapath's ``LiveEmulation`` (real packets).

Offline, the engine host paces the slots itself (``EngineHost.run``). Live, the
datapath's loop thread owns the engine and steps it on the wall clock as real
packets arrive (docs/datapath.md); the host only applies commands (under
``LiveEmulation.lock``, i.e. between two of the loop's turns) and publishes
snapshots. Everything else is the offline adapter unchanged: the same engine
class, the same per-UE bookkeeping, the same commands, the same synthetic
background users (PUT /background) and streamed traffic of engine-only users.

Users and testbed hosts: the scenario's users are testbed UE hosts 1..N (in
order); ``spare_ue_ids`` reserve more hosts (N+1, ...) for users attached
later with POST /ues (their real traffic is dropped, counted, until then). A
POST /ues for any other id attaches an engine-only user fed by its
``traffic`` spec (synthetic, as offline). A host's packets that arrive while
its user is detached are dropped (``NF_DROP``), never held forever.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

import numpy as np

from neuralemu.api.adapter import EngineAdapter, adapter_kwargs
from neuralemu.api.host import CommandError

DETACH_KIND = 3                   # neuralemu.cell.kernel's event kind for reason "detach"
_FAKE_ID_BASE = 1 << 60           # ids handed back for packets of users not attached


class _Result:
    """A SlotResult plus drop events for packets of detached users (same ``_ev`` layout)."""

    __slots__ = ("slot", "t_us", "_ev", "_res")

    def __init__(self, res, ev: np.ndarray) -> None:
        self._res = res
        self.slot, self.t_us, self._ev = res.slot, res.t_us, ev

    @property
    def dcis(self):
        return self._res.dcis

    @property
    def delivered(self):
        return self._res.delivered

    @property
    def dropped(self):
        from neuralemu.cell.engine import event_records
        return event_records(self._ev)[1]


class LiveEngine:
    """What ``LiveEmulation`` drives: the adapter's engine, with the adapter's per-slot work
    (streamed synthetic traffic, counters) in ``step()``; packets of hosts whose user is not
    attached are turned into drop events instead of reaching the engine."""

    def __init__(self, adapter: "LiveAdapter") -> None:
        self._adapter = adapter
        self._engine = adapter.engine
        self._rejected: list[np.ndarray] = []
        self._next_fake = _FAKE_ID_BASE
        self.step_s: deque = deque(maxlen=100_000)     # CPU time of each step (drained by the host)

    def __getattr__(self, attr):
        return getattr(self._engine, attr)

    def load_arrivals(self, t_us, ue, direction, size_bytes) -> np.ndarray:
        eng = self._engine
        ue = np.asarray(ue, dtype=np.int64)
        known = np.isin(ue, np.fromiter(eng.ue_ids, dtype=np.int64))
        if known.all():
            return eng.load_arrivals(t_us, ue, direction, size_bytes)
        t = np.asarray(t_us, dtype=np.int64)
        d = np.asarray(direction, dtype=np.int64)
        size = np.asarray(size_bytes, dtype=np.int64)
        ids = np.empty(ue.shape[0], dtype=np.int64)
        if known.any():
            ids[known] = eng.load_arrivals(t[known], ue[known], d[known], size[known])
        lost = ~known
        n = int(lost.sum())
        fake = np.arange(self._next_fake, self._next_fake + n, dtype=np.int64)
        self._next_fake += n
        ids[lost] = fake
        self._rejected.append(np.stack([fake, ue[lost], d[lost], size[lost], t[lost], t[lost],
                                        np.full(n, DETACH_KIND, dtype=np.int64)]))
        return ids

    def step(self):
        t0 = time.thread_time()
        res, _info = self._adapter.step_result()
        if self._rejected:
            extra = np.concatenate(self._rejected, axis=1)
            self._rejected.clear()
            ev = res._ev if isinstance(getattr(res, "_ev", None), np.ndarray) else None
            ev = extra if ev is None or ev.shape[1] == 0 else np.concatenate(
                [ev.astype(np.int64, copy=False), extra], axis=1)
            res = _Result(res, ev)
        self.step_s.append(time.thread_time() - t0)
        return res


class LiveAdapter(EngineAdapter):
    """An :class:`EngineAdapter` whose slots are stepped by a ``LiveEmulation``."""

    external_clock = True

    def __init__(self, engine, **kwargs) -> None:
        super().__init__(engine, **kwargs)
        self.live = None
        self.lock = threading.RLock()       # replaced by the emulation's lock at start
        self.hosts: dict[int, int] = {}     # ue_id -> testbed UE host number (1-based)
        self.final: dict | None = None
        self._lat_read = 0

    # the datapath owns the packets of testbed users: no synthetic traffic for them
    def add_ue(self, spec: dict, *, background: bool = False) -> dict:
        ue_id = spec.get("ue_id")
        if ue_id in self.hosts:
            spec = {k: v for k, v in spec.items() if k != "traffic"}
            if spec.get("ip") is None:
                spec["ip"] = self.live.testbed.ue_ipv4(self.hosts[ue_id]) if (
                    self.live and not self.live.testbed.real_nics) else None
        out = super().add_ue(spec, background=background)
        if ue_id in self.hosts and spec.get("ip") and self.live is not None:
            self._classify(spec["ip"], ue_id)
        return out

    def patch_ue(self, ue_id: int, patch: dict) -> dict:
        out = super().patch_ue(ue_id, patch)
        if patch.get("ip") is not None and ue_id in self.hosts:
            self._classify(patch["ip"], ue_id)
        return out

    def _classify(self, address: str, ue_id: int) -> None:
        try:
            self.live.set_ue_address(address, ue_id)
        except Exception as exc:  # noqa: BLE001 - a bad address must not kill the loop
            raise CommandError(422, f"cannot classify {address} to UE {ue_id}: {exc}", "ip") from None

    def start(self, live) -> None:
        self.live = live
        self.lock = live.lock
        live.start()

    def close(self) -> None:
        if self.live is not None and self.final is None:
            self.final = self.live.stop() or {}

    def alive(self) -> bool:
        th = getattr(self.live, "_thread", None)
        return th is not None and th.is_alive()

    def drain_timing(self) -> tuple[list[float], list[float]]:
        """New slot lateness samples (s) and step CPU times (s) since the last call."""
        lat = self.live.lateness_us
        n = len(lat)
        new_lat = [v * 1e-6 for v in lat[self._lat_read:n]]
        self._lat_read = n
        steps = []
        q = self.live.engine.step_s
        while q:
            steps.append(q.popleft())
        return new_lat, steps

    def live_info(self) -> dict:
        live = self.live
        tb = live.testbed if live is not None else None
        info = {"prefix": getattr(live, "prefix", None), "realtime": getattr(live, "realtime", 0),
                "base_delay_us": getattr(live, "base_delay_us", 0), "hosts": []}
        if tb is not None:
            if not tb.real_nics:
                info["server"] = {"netns": tb.ns_srv, "ipv4": tb.server_ipv4, "ipv6": tb.server_ipv6}
            for ue_id, k in self.hosts.items():
                host = {"ue_id": ue_id, "host": k, "attached": ue_id in self.cum}
                if not tb.real_nics:
                    host |= {"netns": tb.ns_ue(k), "ipv4": tb.ue_ipv4(k), "ipv6": tb.ue_ipv6(k)}
                info["hosts"].append(host)
        snap = live.snapshot() if live is not None else None
        if snap is not None:
            info["lateness_slots_p50"] = snap.lateness_slots_p50
            info["lateness_slots_p99"] = snap.lateness_slots_p99
            info["queues"] = {f"{ue}/{d}": c for (ue, d), c in snap.queues.items()}
        if self.final is not None:
            info["conservation"] = self.final
        return info


LIVE_OPTIONS = ("prefix", "spare_ue_ids", "base_delay_ms", "unclassified", "realtime")


def make_live_adapter(scenario: dict, options: dict | None = None) -> LiveAdapter:
    """Build the scenario's emulation (``neuralemu.scenario.build_emulation``) and run it on a
    netns testbed with ``neuralemu.datapath.live.LiveEmulation``. Needs root."""
    from neuralemu import scenario as sc_mod
    options = dict(options or {})
    if os.geteuid() != 0:
        raise CommandError(422, "live mode needs root (network namespaces, eBPF, NFQUEUE)", "mode")
    import neuralemu.replay  # noqa: F401  (registers the replay policy, as LiveEmulation does)
    from neuralemu.datapath import testbed as tbmod
    from neuralemu.datapath.live import LiveEmulation
    sc = sc_mod.parse_scenario(scenario, source="scenario")
    if not sc.ues:
        raise CommandError(422, "a live scenario needs at least one UE (testbed host 1)", "ues")
    prefix = options.get("prefix") or "ne"
    try:
        tbmod.check_prefix(prefix)
    except Exception as exc:  # noqa: BLE001
        raise CommandError(422, str(exc), "prefix") from None
    spare = [int(u) for u in options.get("spare_ue_ids") or []]
    ids = [u.ue_id for u in sc.ues]
    if len(set(spare)) != len(spare) or set(spare) & set(ids):
        raise CommandError(422, "spare_ue_ids must be distinct and not the scenario's UEs",
                           "spare_ue_ids")
    emu = sc_mod.build_emulation(sc, keep_log=False, record_dci=False, load_traffic=False)
    engine = emu.engine
    adapter = LiveAdapter(engine, **adapter_kwargs(sc, engine))
    adapter.policy["params"] = dict(sc.policy.params)
    adapter.hosts = {ue: k + 1 for k, ue in enumerate(ids + spare)}
    bg = sc.background
    if bg.count > 0 or bg.profile:
        adapter.set_background({"count": int(round(bg.count)), "load_level": None,
                                "rate_mbps": bg.rate_mbps, "sinr_db": bg.sinr_db,
                                "profile": bg.profile, "profile_path": bg.profile})
    addrs = {u.ue_id: [u.ip] for u in sc.ues if u.ip}
    live = LiveEmulation(LiveEngine(adapter), ue_ids=ids + spare, prefix=prefix,
                         unclassified=options.get("unclassified") or "pass",
                         base_delay_us=int(round(float(options.get("base_delay_ms") or 0) * 1000)),
                         realtime=int(options.get("realtime", 10)), ue_addresses=addrs)
    try:
        adapter.start(live)
    except CommandError:
        raise
    except Exception as exc:  # noqa: BLE001 - testbed/eBPF set-up failed; stop() cleaned up
        raise CommandError(500, f"live start failed: {exc}", "mode") from None
    if not live.testbed.real_nics:
        for u in sc.ues:
            if not adapter.meta[u.ue_id].get("ip"):
                adapter.meta[u.ue_id]["ip"] = live.testbed.ue_ipv4(adapter.hosts[u.ue_id])
    return adapter
