"""The ``learned`` policy: a trained ``.nemu`` model behind the engine's Policy interface.

Per slot and direction: the user features are computed with
:mod:`features` from the engine's :class:`UeFeatures` (buffer, CQI, SINR,
pending HARQ retransmissions) and this policy's own :class:`HistoryTracker`
(fed in :meth:`observe` with the allocation the engine actually applied, as
the dataset feeds it with the telemetry's grants); the numpy
:class:`Runtime` runs the model; :func:`allocate` turns its outputs into PRBs
and MCS within the slot's PRBs, user limit and MCS table. A direction the model
never saw in training gets an empty allocation. Layers: the most common layer
count in training, capped at ``ctx.max_layers``.

Modes: ``deterministic`` (argmax; the default) or ``sample`` (Bernoulli
scheduling and MCS drawn from the model's distribution, seeded).

Importing this module (or calling ``register()``) adds ``learned`` to the engine's policy registry
(``make_policy("learned", model="m.nemu", mode=..., seed=...)``); ``cell``
never imports this module.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from pathlib import Path

import numpy as np

from neuralemu.cell.policy import Allocation, SlotContext, UeFeatures
from neuralemu.errors import InputError
from neuralemu.scheduler_model import features as F
from neuralemu.scheduler_model import mcs_info
from neuralemu.scheduler_model.bundle import Bundle, load_bundle
from neuralemu.scheduler_model.runtime import Runtime, allocate, bits_per_prb_by_mcs, decide_kernel

MODES = ("deterministic", "sample")


class LearnedPolicy:
    name = "learned"

    def __init__(self, model: str | Path | Bundle, *, mode: str = "deterministic",
                 seed: int = 0) -> None:
        if mode not in MODES:
            raise InputError("policy learned", f"mode must be one of {list(MODES)}, got {mode!r}",
                             field="mode")
        self.bundle = model if isinstance(model, Bundle) else load_bundle(model)
        self.runtime = Runtime(self.bundle)
        self.mode = mode
        self.rng = np.random.default_rng(seed) if mode == "sample" else None
        self.trackers = {d: F.HistoryTracker() for d in self.bundle.cell.directions}
        self.use_sinr = self.bundle.cell.use_sinr
        self.last_decision_us = 0.0
        self._bpp: dict[tuple, np.ndarray] = {}
        self._keep: dict[str, np.ndarray | None] = {}
        cell = self.bundle.cell
        # the TDD positions of each direction, sorted once (the averages' clock)
        self._positions = {d: sorted(int(p) for p in cell.slot_types[d].keys())
                           for d in cell.directions}
        self._se = {}

    def _dslot(self, ctx: SlotContext) -> float:
        """Index of this slot among the slots carrying ctx.direction (the averages' clock),
        as :func:`features.direction_slot_index`."""
        pos = self._positions[ctx.direction]
        period = self.bundle.cell.period_slots
        q, r = divmod(int(ctx.slot), period)
        return float(q * len(pos) + bisect_left(pos, r))

    def _luts(self, table: str):
        luts = self._se.get(table)
        if luts is None:
            luts = self._se[table] = (mcs_info.se_lookup(table), mcs_info.cqi_se_lookup(table),
                                      mcs_info.cqi_mcs_lookup(table), mcs_info.top_mcs(table))
        return luts

    def _candidates(self, ues: UeFeatures) -> np.ndarray | None:
        """Indices of the users the model sees (all, or the 64 fullest buffers)."""
        if len(ues) <= F.MAX_USERS:
            return None
        return np.sort(np.argsort(-ues.buffer_bytes, kind="stable")[:F.MAX_USERS])

    def decide(self, ctx: SlotContext, ues: UeFeatures) -> Allocation:
        t0 = time.perf_counter()
        n_all = len(ues)
        alloc = Allocation.empty(n_all)
        tracker = self.trackers.get(ctx.direction)
        if tracker is None or n_all == 0 or ctx.prbs_available <= 0 or ctx.max_ues <= 0:
            return alloc
        keep = self._candidates(ues)
        sel = (lambda a: a) if keep is None else (lambda a: a[keep])
        ids = sel(ues.ue_id)
        rows = tracker.rows(ids)
        table = ctx.mcs_table
        cell = self.bundle.cell
        layers = max(1, min(cell.layers.get(ctx.direction, 1), ctx.max_layers))
        key = (ctx.direction, ctx.symbols, layers, table)
        bpp = self._bpp.get(key)
        if bpp is None:
            bpp = self._bpp[key] = bits_per_prb_by_mcs(cell, ctx.direction, ctx.symbols, layers,
                                                       table)
        if self.rng is None and decide_kernel is not None:
            prbs, mcs = self._decide_compiled(ctx, ues, sel, rows, tracker, layers, bpp)
        else:
            prbs, mcs = self._decide_numpy(ctx, ues, sel, rows, tracker, layers, bpp)
        if keep is None:
            alloc.prbs, alloc.mcs = prbs, mcs
        else:
            alloc.prbs[keep], alloc.mcs[keep] = prbs, mcs
        alloc.layers[:] = layers
        self.last_decision_us = (time.perf_counter() - t0) * 1e6
        alloc.info["decision_us"] = self.last_decision_us
        return alloc

    def _decide_compiled(self, ctx, ues, sel, rows, tracker, layers, bpp):
        """Deterministic decision in one compiled call (runtime.decide_kernel)."""
        rt = self.runtime
        cell = self.bundle.cell
        se_lut, cqi_se_lut, cqi_mcs_lut, top = self._luts(ctx.mcs_table)
        n = len(rows)
        f64 = np.float64
        buf = np.ascontiguousarray(sel(ues.buffer_bytes), dtype=f64)
        sinr = np.ascontiguousarray(sel(ues.sinr_db), dtype=f64) if self.use_sinr else np.zeros(n)
        user_x = np.empty((n, F.N_USER_FEATURES), dtype=np.float32)
        prbs = np.empty(n, dtype=np.int64)
        mcs = np.empty(n, dtype=np.int64)
        slot_type = ctx.slot_type
        code = F.SLOT_TYPES.index(slot_type) if slot_type in F.SLOT_TYPES else -1
        decide_kernel(rows, tracker.last_mcs, tracker.last_prbs, tracker.last_grant_slot,
                      tracker.avg_value, tracker.avg_at, tracker.keep, float(ctx.slot),
                      self._dslot(ctx), ctx.direction == "ul", buf,
                      np.ascontiguousarray(sel(ues.cqi), dtype=f64), sinr, self.use_sinr,
                      np.ascontiguousarray(sel(ues.pending_retx), dtype=f64),
                      float(ctx.prbs_available), float(ctx.prbs_total), float(ctx.symbols),
                      float(layers), se_lut, cqi_se_lut, cqi_mcs_lut, code, n / F.MAX_USERS,
                      min(cell.max_ues.get(ctx.direction, ctx.max_ues), 32) / 32.0,
                      rt.w_in, rt.b_in, rt.w_hid, rt.b_hid, rt.w_cell, rt.b_cell, rt.unused,
                      rt._blocks_tuple, rt.w_heads, rt.b_heads, rt.n_heads, rt.n_mcs,
                      int(ctx.max_ues), int(top), np.asarray(bpp, dtype=f64), True,
                      F.I_LAST_MCS, user_x, prbs, mcs)
        return prbs, mcs

    def _decide_numpy(self, ctx, ues, sel, rows, tracker, layers, bpp):
        """The readable path (and ``sample`` mode): features, forward_fast, allocate."""
        table = ctx.mcs_table
        cell = self.bundle.cell
        user_x = F.user_features(
            rows=rows, tracker=tracker, slot=ctx.slot, dslot=self._dslot(ctx), direction=ctx.direction,
            buffer_bytes=sel(ues.buffer_bytes), cqi=sel(ues.cqi),
            sinr_db=sel(ues.sinr_db) if self.use_sinr else None,
            pending_retx=sel(ues.pending_retx), prbs_available=ctx.prbs_available,
            prbs_total=ctx.prbs_total, symbols=ctx.symbols, layers=layers, mcs_table=table)
        cell_x = F.cell_features(direction=ctx.direction, slot_type=ctx.slot_type,
                                 prbs_available=ctx.prbs_available, prbs_total=ctx.prbs_total,
                                 symbols=ctx.symbols, n_users=len(rows),
                                 max_ues=cell.max_ues.get(ctx.direction, ctx.max_ues))
        sl, sh, ml = self.runtime.forward_fast(user_x, cell_x)
        return allocate(sl, sh, ml, prbs_available=int(ctx.prbs_available),
                        max_ues=int(ctx.max_ues), mcs_top=mcs_info.top_mcs(table), rng=self.rng,
                        buffer_bits=sel(ues.buffer_bytes) * 8.0, bits_per_prb_by_mcs=bpp)

    def observe(self, ctx: SlotContext, ues: UeFeatures, alloc: Allocation) -> None:
        """Update the history features with what the engine applied (after clamping)."""
        tracker = self.trackers.get(ctx.direction)
        if tracker is None or len(ues) == 0:
            return
        prbs = np.asarray(alloc.prbs, dtype=np.int64)
        if not (prbs > 0).any():
            return
        rows = tracker.rows(np.asarray(ues.ue_id, dtype=np.int64))
        mcs = np.asarray(alloc.mcs, dtype=np.int64)
        tracker.update(rows, ctx.slot, self._dslot(ctx), prbs, mcs, ctx.symbols, alloc.layers,
                       ctx.mcs_table)


def make_learned_policy(model: str | Path | Bundle | None = None, mode: str = "deterministic",
                        seed: int = 0) -> LearnedPolicy:
    if model is None:
        raise InputError("policy learned", "needs a model: a .nemu file from `neuralemu train`",
                         field="model")
    return LearnedPolicy(model, mode=mode, seed=seed)


def register() -> None:
    """Add ``learned`` to the engine's policy registry (idempotent)."""
    from neuralemu.cell import register_policy
    register_policy("learned", make_learned_policy)


register()
