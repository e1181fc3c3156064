"""The only module of the API that knows the engine's and the scenario's Python API.

:func:`make_adapter` turns a scenario (a dict valid for
:class:`neuralemu.scenario.Scenario`) into an :class:`EngineAdapter` through
``neuralemu.scenario.build_emulation``; the engine host then drives it one
slot at a time and applies commands between slots.

Traffic: open-loop workloads are streamed slot by slot (a generator per user,
never a precomputed list, so a server can run for days); closed-loop sources
use the engine's ``TrafficSource`` hook. Background users (PUT /background)
are either sampled from a traffic_recon profile or, without one, CBR users whose
total offered load is ``load_level`` times a rough estimate of the cell's
downlink capacity.
"""

from __future__ import annotations

import time
from typing import Iterator

from neuralemu.api.host import CommandError
from neuralemu.errors import InputError

BACKGROUND_UE_BASE = 60000        # same range as traffic_recon's background users
BACKGROUND_SINR_DB = 15.0
FOREVER_US = 10 ** 13             # ~116 days: "no end" for streamed workloads
PREFETCH_US = 20_000              # open-loop arrivals go to the engine in 20 ms batches
PREFETCH_CHUNK = 8                # packets generated per source between deadline checks
LOAD_COST_S = 120e-6              # about what one Engine.load_arrivals call of a window costs


class StreamSource:
    """An open-loop packet iterator (``t_us`` relative to ``t0_us``) as a ``TrafficSource``."""

    def __init__(self, packets: Iterator, t0_us: int, slot_us: int, ue_id: int | None = None) -> None:
        self.packets = iter(packets)
        self.t0_us = int(t0_us)
        self.slot_us = int(slot_us)
        self.ue_id = ue_id
        self._next = None
        self._done = False

    def on_slot(self, view, t_us: int):
        out: list = []
        self.take_until(t_us + self.slot_us, out)
        return [(max(t, t_us), ue, d, size) for t, ue, d, size in out]

    def take_until(self, end_us: int, out: list, max_n: int | None = None) -> bool:
        """Append packets arriving before ``end_us`` to ``out`` as (t, ue, dir, size), at most
        ``max_n`` of them; True when every packet before ``end_us`` has been taken."""
        n = 0
        while not self._done:
            if max_n is not None and n >= max_n:
                return False
            n += 1
            if self._next is None:
                try:
                    self._next = next(self.packets)
                except StopIteration:
                    self._done = True
                    break
            t = self._next[0] + self.t0_us
            if t >= end_us:
                break
            out.append((int(t), int(self._next[1]), self._next[2], int(self._next[3])))
            self._next = None
        return True

    def on_delivered(self, delivery) -> None:
        pass

    def on_dropped(self, drop) -> None:
        pass


def _dl_capacity_bps(engine) -> float:
    """Rough DL capacity: all PRBs, 12 data symbols, ~4.5 bit/RE, max layers, DL share of slots."""
    cell = engine.cell
    pattern = "D" if cell.is_fdd else cell.duplex
    dl_share = (pattern.count("D") + 0.7 * pattern.count("S")) / len(pattern)
    bits_per_slot = engine.prbs_total * 12 * 12 * 4.5 * cell.max_layers
    return bits_per_slot * dl_share / (engine.slot_us * 1e-6)


class EngineAdapter:
    """Wraps one running emulation: the engine, its traffic sources and per-UE bookkeeping."""

    def __init__(self, engine, *, sources=(), ue_meta: dict[int, dict] | None = None,
                 ue_traffic=None, policy_name: str | None = None, seed: int = 0,
                 ue_configs: dict | None = None) -> None:
        self.engine = engine
        self.ue_cfg: dict[int, object] = dict(ue_configs or {})   # ue_id -> UeConfig
        self._prefetched_until = -1           # open-loop arrivals are loaded up to here (us)
        self._pending: dict | None = None     # a window being prepared by idle()
        self.slot_duration_s = engine.slot_us * 1e-6
        self.seed = seed
        self.ue_traffic = ue_traffic          # callable(ue_spec: dict, t0_us) -> list[source]
        self.sources: list = list(sources)    # sources not owned by one UE
        self.ue_sources: dict[int, list] = {}
        self.meta: dict[int, dict] = {}
        self.cum: dict[int, dict] = {}
        self.cell_slots = 0
        self.cell_prb_slots = 0
        self.src_of: dict[int, object] = {}
        self.policy = {"name": policy_name or getattr(engine.policy, "name", "?"), "params": {}}
        self.background = {"count": 0, "load_level": 0.0, "profile": None}
        for ue_id in engine.ue_ids:
            self._track(ue_id, (ue_meta or {}).get(ue_id, {}))

    # ---- bookkeeping ------------------------------------------------------------------
    def _track(self, ue_id: int, meta: dict, cfg=None) -> None:
        """Start bookkeeping for a user; ``cfg`` is its ``UeConfig`` (kept for channel swaps)."""
        if cfg is not None:
            self.ue_cfg[ue_id] = cfg
        cfg = self.ue_cfg.get(ue_id)
        self.meta[ue_id] = {"name": meta.get("name"), "ip": meta.get("ip"),
                            "priority": float(getattr(cfg, "priority", 1.0) or 1.0),
                            "channel_offset_db": 0.0,
                            "queue_limit_bytes": getattr(cfg, "queue_limit_bytes", None)
                            or self.engine.cell.queue_limit_bytes,
                            "background": bool(meta.get("background", False))}
        self.cum[ue_id] = {"bytes_delivered": 0, "drops": 0, "dropped_bytes": 0, "prb_slots": 0,
                           "slots": 0, "mcs": -1, "delays": []}

    def slot_index(self) -> int:
        return int(self.engine.slot)

    # ---- the slot -----------------------------------------------------------------------
    def _prefetch(self, t_us: int, deadline: float | None = None) -> bool:
        """Hand the next PREFETCH_US of open-loop arrivals to the engine in one vectorised call
        (arrivals of a UE detached meanwhile are dropped by the engine as ``detach``).

        Generating them is per-packet Python, so with a ``deadline`` (perf_counter) the work
        stops there and goes on at the next call (the host calls :meth:`idle` between slots);
        True once the window is loaded."""
        import numpy as np
        pf = self._pending
        if pf is None:
            start = max(self._prefetched_until, t_us)
            pf = self._pending = {"end": start + PREFETCH_US, "rows": []}
        end, rows = pf["end"], pf["rows"]
        while not pf.get("ready"):
            done = True
            for src in list(self._all_sources()):
                if isinstance(src, StreamSource):
                    if not src.take_until(end, rows, None if deadline is None else PREFETCH_CHUNK):
                        done = False
            if done:
                pf["ready"] = True
                break
            if deadline is not None and time.perf_counter() >= deadline:
                return False
        if deadline is not None and time.perf_counter() + LOAD_COST_S >= deadline:
            return False                 # hand them over at the next spare moment
        self._pending = None
        self._prefetched_until = end
        rows = [r for r in rows if r[1] in self.cum]
        if rows:
            t, ue, d, size = zip(*rows)
            self.engine.load_arrivals(np.asarray(t, dtype=np.int64), np.asarray(ue, dtype=np.int64),
                                      np.asarray(d), np.asarray(size, dtype=np.int64))
        return True

    def idle(self, deadline: float) -> None:
        """Spare time before the next slot boundary: prepare the next arrival window early."""
        if self._pending is not None or \
                0 <= self._prefetched_until - self.engine.t_us < PREFETCH_US // 2:
            self._prefetch(self.engine.t_us, deadline)

    def step(self) -> dict:
        return self.step_result()[1]

    def step_result(self):
        """Feed this slot's traffic, run it, count it: ``(SlotResult, timing info)``."""
        eng = self.engine
        t_us = eng.t_us
        t0 = time.perf_counter()
        if t_us >= self._prefetched_until:
            self._prefetch(t_us)
        for src in self._all_sources():
            if isinstance(src, StreamSource):
                continue
            for pkt in src.on_slot(eng, t_us) or ():
                ue = int(pkt[1])
                if ue not in self.cum:
                    continue
                pid = eng.enqueue(ue, pkt[2], int(pkt[3]), int(pkt[0]))
                if pid is not None and hasattr(src, "on_delivered") and not isinstance(src, StreamSource):
                    self.src_of[pid] = src
        t1 = time.perf_counter()
        res = eng.step()
        t2 = time.perf_counter()
        prbs_now = 0
        for dci in res.dcis:
            c = self.cum.get(dci.rnti)
            if c is None:
                continue
            c["prb_slots"] += dci.prb_count
            prbs_now += dci.prb_count
            if not dci.is_retx:
                c["mcs"] = dci.mcs
        for dv in res.delivered:
            c = self.cum.get(dv.ue_id)
            if c is not None:
                c["bytes_delivered"] += dv.size_bytes
                c["delays"].append((dv.t_delivered_us - dv.t_arrival_us) * 1e-6)
            src = self.src_of.pop(dv.packet_id, None)
            if src is not None:
                src.on_delivered(dv)
        for dr in res.dropped:
            c = self.cum.get(dr.ue_id)
            if c is not None:
                c["drops"] += 1
                c["dropped_bytes"] += dr.size_bytes
            src = self.src_of.pop(dr.packet_id, None)
            if src is not None:
                src.on_dropped(dr)
        for c in self.cum.values():
            c["slots"] += 1
        self.cell_slots += 1
        self.cell_prb_slots += prbs_now
        return res, {"decision_time_s": t2 - t1, "slot_time_s": time.perf_counter() - t0}

    def _all_sources(self):
        yield from self.sources
        for lst in self.ue_sources.values():
            yield from lst

    # ---- snapshots --------------------------------------------------------------------------
    def counters(self) -> dict:
        stats = self.engine.stats()
        ues = []
        for ue_id, c in self.cum.items():
            st = stats.get(ue_id, {})
            dirs = [d for d in ("dl", "ul") if st.get(d, {}).get("active")]
            main = st.get("dl") if "dl" in dirs else st.get(dirs[0]) if dirs else {}
            delays, c["delays"] = c["delays"], []
            ues.append(self.meta[ue_id] | {
                "id": ue_id,
                "buffer_bytes": sum(st[d]["queue_bytes"] for d in dirs),
                "bytes_in": sum(st[d]["bytes_in"] for d in dirs),
                "bytes_delivered": c["bytes_delivered"], "drops": c["drops"],
                "dropped_bytes": c["dropped_bytes"], "prb_slots": c["prb_slots"], "slots": c["slots"],
                "mcs": int(c["mcs"]), "cqi": int(main.get("cqi", 0)) if main else 0,
                "sinr_db": float(main.get("sinr_db", 0.0)) if main else 0.0,
                "directions": dirs, "new_delays_s": delays})
        return {"t_us": int(self.engine.t_us), "slot": int(self.engine.slot), "ues": ues,
                "cell_slots": self.cell_slots, "cell_prb_slots": self.cell_prb_slots}

    def cell_info(self) -> dict:
        eng = self.engine
        return {"config": eng.cell.model_dump(mode="json"), "prbs_total": int(eng.prbs_total),
                "slot_us": int(eng.slot_us), "capacity_dl_bps_estimate": _dl_capacity_bps(eng)}

    def policy_info(self) -> dict:
        return dict(self.policy)

    def background_info(self) -> dict:
        return dict(self.background)

    # ---- commands ---------------------------------------------------------------------------
    def add_ue(self, spec: dict, *, background: bool = False) -> dict:
        from neuralemu.cell.config import UeConfig
        eng = self.engine
        engine_fields = {k: v for k, v in spec.items() if k in UeConfig.model_fields}
        try:
            cfg = UeConfig.model_validate(engine_fields)
        except Exception as exc:  # pydantic ValidationError
            raise CommandError(422, str(exc).splitlines()[0], _first_loc(exc)) from None
        if cfg.ue_id in self.cum:
            raise CommandError(409, f"UE {cfg.ue_id} is already attached", "ue_id")
        sources = self.ue_traffic(spec, eng.t_us) if self.ue_traffic else []   # may raise: nothing added
        eng.add_ue(cfg)
        self._track(cfg.ue_id, spec | {"background": background}, cfg)
        if sources:
            self.ue_sources[cfg.ue_id] = list(sources)
            self._prefetched_until = -1      # fetch the newcomer's arrivals at the next slot
        return {"id": cfg.ue_id}

    def remove_ue(self, ue_id: int) -> dict:
        if ue_id not in self.cum:
            raise CommandError(404, f"no UE {ue_id}", "ue_id")
        self.engine.remove_ue(ue_id)
        self.cum.pop(ue_id, None)
        self.meta.pop(ue_id, None)
        self.ue_cfg.pop(ue_id, None)
        self.ue_sources.pop(ue_id, None)
        return {"id": ue_id}

    def patch_ue(self, ue_id: int, patch: dict) -> dict:
        from neuralemu.cell import engine as engine_mod
        from neuralemu.cell.config import TraceChannel
        eng = self.engine
        if ue_id not in self.cum:
            raise CommandError(404, f"no UE {ue_id}", "ue_id")
        meta = self.meta[ue_id]
        trace_cfg = None
        if patch.get("channel_trace_path"):     # check first: nothing is applied if it is bad
            trace_cfg = TraceChannel(path=patch["channel_trace_path"])
            engine_mod.load_trace_sinr(trace_cfg, patch.get("channel_trace", "trace"))
        if patch.get("queue_limit_bytes") is not None:
            for d in eng.stats()[ue_id]:
                if eng.stats()[ue_id][d]["active"]:
                    eng.set_queue_limit(ue_id, d, int(patch["queue_limit_bytes"]))
            meta["queue_limit_bytes"] = int(patch["queue_limit_bytes"])
        if patch.get("channel_offset_db") is not None:
            eng.set_channel_offset_db(ue_id, float(patch["channel_offset_db"]))
            meta["channel_offset_db"] = float(patch["channel_offset_db"])
        if patch.get("priority") is not None:
            self._set_priority(ue_id, float(patch["priority"]))
            meta["priority"] = float(patch["priority"])
        if patch.get("ip") is not None:
            meta["ip"] = patch["ip"]
        if trace_cfg is not None:
            self._swap_channel(ue_id, trace_cfg)
            meta["channel_trace"] = patch.get("channel_trace")
        return {"id": ue_id}

    def _set_priority(self, ue_id: int, priority: float) -> None:
        self.engine.set_priority(ue_id, priority)          # docs/engine.md
        if ue_id in self.ue_cfg:
            self.ue_cfg[ue_id] = self.ue_cfg[ue_id].model_copy(update={"priority": priority})

    def _swap_channel(self, ue_id: int, channel) -> None:
        """A new channel model: the engine attaches channels at add_ue, so re-attach the UE
        (its queued packets are dropped with reason ``detach``; counters carry on)."""
        from neuralemu.cell.config import UeConfig
        eng = self.engine
        old = self.ue_cfg.get(ue_id) or UeConfig(ue_id=ue_id)
        cfg = old.model_copy(update={"channel": channel, "priority": self.meta[ue_id]["priority"]})
        offset = self.meta[ue_id]["channel_offset_db"]
        eng.remove_ue(ue_id)
        eng.add_ue(cfg)
        self.ue_cfg[ue_id] = cfg
        if offset:
            eng.set_channel_offset_db(ue_id, offset)
        limit = self.meta[ue_id].get("queue_limit_bytes")
        if limit and limit != eng.cell.queue_limit_bytes:
            for d in cfg.directions:
                eng.set_queue_limit(ue_id, d, int(limit))

    def prepare_policy(self, spec: dict):
        """Build (and bind) the policy of a PUT /policy: the slow part (loading a model or a
        trace), done before the slot boundary. Raises CommandError; nothing is changed."""
        return make_policy_from_spec(spec["name"], dict(spec.get("params") or {}), spec, self.engine)

    def apply_policy(self, spec: dict, policy) -> dict:
        """Swap a prepared policy in (at a slot boundary)."""
        name = spec["name"]
        self.engine.set_policy(policy)
        self.policy = {"name": name, "params": dict(spec.get("params") or {}),
                       **{k: spec[k] for k in ("model", "trace", "trace_up") if spec.get(k)}}
        return {"name": name, "slot": int(self.engine.slot)}

    def set_policy(self, spec: dict) -> dict:
        return self.apply_policy(spec, self.prepare_policy(spec))

    def set_background(self, spec: dict) -> dict:
        count = int(spec["count"])
        capacity_bps = _dl_capacity_bps(self.engine)
        if spec.get("load_level") is None:          # a scenario's background: per-UE rate
            load = count * float(spec.get("rate_mbps", 0.0)) * 1e6 / capacity_bps
        else:
            load = float(spec["load_level"])
        sinr_db = float(spec.get("sinr_db", BACKGROUND_SINR_DB))
        profile = spec.get("profile")
        if BACKGROUND_UE_BASE + count > 65519:
            raise CommandError(422, "too many background UEs", "count")
        new_ues: list[tuple[dict, list]] = []
        if count > 0 and (load > 0 or profile):
            if profile:
                new_ues = self._profile_background(spec)
            else:
                per_ue_mbps = load * capacity_bps / count / 1e6
                from neuralemu.workloads import Cbr
                wl = Cbr(rate_mbps=per_ue_mbps, packet_bytes=1500, direction="dl")
                for i in range(count):
                    ue_id = BACKGROUND_UE_BASE + i
                    pk = wl.ue_packets(ue_id, FOREVER_US, self.seed)
                    new_ues.append(({"ue_id": ue_id, "directions": ["dl"],
                                     "channel": {"model": "fixed", "sinr_db": sinr_db}},
                                    [StreamSource(pk, self.engine.t_us, self.engine.slot_us, ue_id)]))
        # everything is prepared: now swap the background users in one slot boundary
        for ue_id in [u for u, m in self.meta.items() if m["background"]]:
            self.remove_ue(ue_id)
        from neuralemu.cell.config import UeConfig
        for cfg, sources in new_ues:
            cfg = UeConfig.model_validate(cfg) if isinstance(cfg, dict) else cfg
            self.engine.add_ue(cfg)
            self._track(cfg.ue_id, {"background": True}, cfg)
            self.ue_sources[cfg.ue_id] = sources
        self._prefetched_until = -1
        self.background = {"count": count, "load_level": load, "profile": profile,
                           "offered_dl_bps": None if profile else load * capacity_bps}
        return self.background

    def _profile_background(self, spec: dict) -> list:
        from neuralemu.traffic_recon.background import sample_background
        from neuralemu.traffic_recon.profile import load_profile
        path = spec.get("profile_path")
        if not path:
            raise CommandError(404, f"no background profile {spec.get('profile')!r}", "profile")
        profile = load_profile(path)
        bg = sample_background(profile, 3600.0, seed=self.seed, count=float(spec["count"]),
                               ue_base=BACKGROUND_UE_BASE)
        out = []
        wl = bg.workload.sort_values("t_us", kind="stable")
        for cfg in bg.ue_configs(mcs_table=self.engine.cell.mcs_table):
            rows = wl[wl["ue"] == cfg["ue_id"]]
            pk = zip(rows["t_us"].tolist(), rows["ue"].tolist(), rows["direction"].tolist(),
                     rows["size_bytes"].tolist())
            out.append((cfg, [StreamSource(pk, self.engine.t_us, self.engine.slot_us, cfg["ue_id"])]))
        return out

    def close(self) -> None:
        pass


def _first_loc(exc) -> str | None:
    try:
        return ".".join(str(p) for p in exc.errors()[0]["loc"])
    except Exception:  # noqa: BLE001
        return None


# PUT /policy parameters each registered factory takes (besides the uploaded file), with their
# types: ``neuralemu.scheduler_model.policy.make_learned_policy(model, mode, seed)`` and
# ``neuralemu.replay.ReplayPolicy(mahimahi_down, mahimahi_up, nrscope, rnti, ue_id, loop, max_bler)``.
POLICY_PARAMS = {
    "pf": {"window_slots": float},
    "rr": {},
    "maxcqi": {},
    "learned": {"mode": str, "seed": int},
    "replay": {"rnti": int, "ue_id": int, "loop": bool, "max_bler": float},
}
POLICY_MODULES = {"learned": "neuralemu.scheduler_model.policy", "replay": "neuralemu.replay"}


def _typed_params(name: str, params: dict) -> dict:
    allowed = POLICY_PARAMS.get(name)
    if allowed is None:
        return dict(params)
    out = {}
    for key, value in params.items():
        kind = allowed.get(key)
        if kind is None:
            raise CommandError(422, f"policy {name!r} takes no parameter {key!r} (it takes: "
                               f"{', '.join(sorted(allowed)) or 'none'})", f"params.{key}")
        try:
            if kind is int:
                if float(value) != int(float(value)):
                    raise ValueError
                value = int(float(value))
            elif kind is bool:
                if value not in (0, 1, True, False):
                    raise ValueError
                value = bool(value)
            else:
                value = kind(value)
        except (TypeError, ValueError):
            raise CommandError(422, f"{key} must be a {kind.__name__}", f"params.{key}") from None
        out[key] = value
    return out


class _Prebound:
    """A policy already bound to this engine (loading its trace/model happened before the slot
    boundary); ``engine.set_policy`` then only swaps it in."""

    def __init__(self, policy) -> None:
        self._policy = policy

    def bind(self, engine) -> None:
        pass

    def __getattr__(self, attr):
        return getattr(self._policy, attr)

    def __repr__(self) -> str:
        return repr(self._policy)


def make_policy_from_spec(name: str, params: dict, spec: dict, engine=None):
    """A policy object for PUT /policy, built through the engine's policy registry
    (``learned`` and ``replay`` register themselves when their module is imported).

    ``spec`` carries the server-side paths of uploaded files: ``model_path`` (learned),
    ``trace_path`` + ``trace_kind`` (+ ``trace_up_path``) (replay). With ``engine`` the
    policy is bound to it here, so bad traces fail now and nothing is swapped in."""
    import importlib

    from neuralemu.cell.policies import make_policy
    kwargs = _typed_params(name, params)
    if name in POLICY_MODULES:
        importlib.import_module(POLICY_MODULES[name])
    if name == "learned":
        if not spec.get("model_path"):
            raise CommandError(422, "policy 'learned' needs a model", "model")
        kwargs["model"] = spec["model_path"]
        field = "model"
    elif name == "replay":
        kind, path = spec.get("trace_kind"), spec.get("trace_path")
        if not path:
            raise CommandError(422, "policy 'replay' needs a trace", "trace")
        if kind == "mahimahi":
            kwargs["mahimahi_down"] = path
            kwargs["mahimahi_up"] = spec.get("trace_up_path") or path
        elif kind == "nrscope":
            if "rnti" not in kwargs:
                raise CommandError(422, "replaying an NR-Scope log needs params.rnti", "params.rnti")
            if spec.get("trace_up_path"):
                raise CommandError(422, "trace_up is for Mahimahi traces only", "trace_up")
            kwargs["nrscope"] = path
        else:
            raise CommandError(422, f"cannot replay a trace of kind {kind!r}", "trace")
        field = "trace"
    else:
        field = "params"
    try:
        policy = make_policy(name, **kwargs)
        if engine is not None and callable(getattr(policy, "bind", None)):
            policy.bind(engine)
            if getattr(policy, "kernel_id", None) is None:
                policy = _Prebound(policy)
    except InputError as exc:
        raise CommandError(422, exc.message if hasattr(exc, "message") else str(exc),
                           exc.field if exc.field and exc.field != "params" else field) from None
    return policy


# ---- from a scenario ---------------------------------------------------------------------------
CLOSED_LOOP_KINDS = ("gcc", "tcp")


def adapter_kwargs(sc, engine) -> dict:
    """The adapter arguments a scenario gives, the same for offline and live runs."""
    return {"ue_traffic": scenario_traffic(engine.slot_us, sc.seed),
            "ue_meta": {u.ue_id: {"name": u.name, "ip": u.ip} for u in sc.ues},
            "policy_name": sc.policy.name, "seed": sc.seed,
            "ue_configs": {u.ue_id: u.engine_config() for u in sc.ues}}


def scenario_traffic(slot_us: int, seed: int):
    """``ue_traffic``: a scenario UE's ``traffic`` entries (one or a list of ``{"kind": ...}``)
    as sources: open-loop kinds streamed from their generator, closed-loop kinds as the
    workloads package builds them. Bad parameters raise before anything is attached."""
    def build(spec: dict, t0_us: int) -> list:
        from neuralemu.workloads import make_closed_loop, make_open_loop
        traffic = spec.get("traffic") or []
        if isinstance(traffic, dict):
            traffic = [traffic]
        ue = int(spec["ue_id"])
        out = []
        for j, t in enumerate(traffic):
            params = dict(t.model_dump() if hasattr(t, "model_dump") else t)
            kind = params.pop("kind", None)
            try:
                if kind in CLOSED_LOOP_KINDS:
                    out.append(make_closed_loop({"kind": kind, "ue": ue, **params}, seed=seed,
                                                source="ue"))
                else:
                    wl = make_open_loop(kind, params, source="ue")
                    out.append(StreamSource(wl.ue_packets(ue, FOREVER_US, seed), t0_us, slot_us, ue))
            except InputError as exc:
                raise CommandError(422, exc.message, f"traffic.{j}" + (f".{exc.field}" if exc.field
                                                                        else "")) from None
        return out
    return build


def make_adapter(scenario: dict) -> EngineAdapter:
    """Build the emulation of ``scenario`` with ``neuralemu.scenario.build_emulation``.

    The engine, its users and policy come from ``build_emulation`` (without
    pre-generated traffic); the users' traffic is then streamed, so the run has
    no end (``duration_s`` is not used by the server), and the scenario's
    background becomes the adapter's background users (same CBR model).
    """
    from neuralemu import scenario as sc_mod
    sc = sc_mod.parse_scenario(scenario, source="scenario")
    emu = sc_mod.build_emulation(sc, keep_log=False, record_dci=False, load_traffic=False)
    engine = emu.engine
    adapter = EngineAdapter(engine, **adapter_kwargs(sc, engine))
    adapter.policy["params"] = dict(sc.policy.params)
    for u in sc.ues:
        sources = adapter.ue_traffic(u.model_dump(), engine.t_us)
        if sources:
            adapter.ue_sources[u.ue_id] = sources
    bg = sc.background
    if bg.count > 0 or bg.profile:
        adapter.set_background({"count": int(round(bg.count)), "load_level": None,
                                "rate_mbps": bg.rate_mbps, "sinr_db": bg.sinr_db,
                                "profile": bg.profile, "profile_path": bg.profile})
    return adapter
