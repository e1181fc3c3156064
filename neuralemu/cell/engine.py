"""The slot engine: one deterministic cell that offline runs, the live datapath and every
policy share. See docs/engine.md for the API contract.

Python here owns the arrays and the API; every per-slot computation is in the
compiled kernel (:mod:`neuralemu.cell.kernel`). A policy with a ``kernel_id``
(the built-ins) runs entirely inside the kernel; any other policy is called
from Python once per slot and direction, between two kernel calls.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd

from neuralemu.cell import kernel as K
from neuralemu.cell.config import (CellConfig, FixedChannel, StochasticChannel, TraceChannel,
                                   UeConfig)
from neuralemu.cell.policy import Allocation, Policy, SlotContext, UeFeatures
from neuralemu.cell.tables import LARGE_SLOTS, SINR_MIN_DB, SINR_STEP_DB, build_tables
from neuralemu.cell.traffic import Delivery, Drop
from neuralemu.errors import InputError

DIRS = ("dl", "ul")
DIR_CODE = {"dl": 0, "ul": 1}
DROP_REASONS = {K.EVK_DROP_QUEUE: "queue", K.EVK_DROP_HARQ: "harq", K.EVK_DROP_DETACH: "detach"}
DEFAULT_AVG_WINDOW_SLOTS = 100
_INT_FEATURES = [K.FT_UE, K.FT_CQI, K.FT_LA_MCS, K.FT_LAST_MCS, K.FT_LAST_PRBS, K.FT_PENDING,
                 K.FT_SINCE]
_FLOAT_FEATURES = [K.FT_BUF, K.FT_SINR, K.FT_AVG, K.FT_PRIO]


class Dci(NamedTuple):
    """One transport block sent in a slot (canonical DCI fields plus ``ok``)."""

    slot: int
    t_us: int
    rnti: int
    direction: str
    prb_start: int
    prb_count: int
    symbols: int
    layers: int
    mcs: int
    mcs_table: str
    tbs_bits: int
    n_re: int           # N_RE of one layer (38.214 5.1.3.2), as in the canonical schema
    harq_id: int
    ndi: int
    rv: int
    is_retx: bool
    valid: bool
    ok: bool            # the TB decoded


class SlotResult:
    """What one :meth:`Engine.step` did. The lists are built from arrays on first access."""

    __slots__ = ("slot", "t_us", "_ev", "_dci", "_mcs_tables", "_dcis", "_delivered", "_dropped")

    def __init__(self, slot: int, t_us: int, ev: np.ndarray, dci: np.ndarray,
                 mcs_tables: tuple[str, str]) -> None:
        self.slot = slot
        self.t_us = t_us
        self._ev = ev
        self._dci = dci
        self._mcs_tables = mcs_tables
        self._dcis = self._delivered = self._dropped = None

    @property
    def dcis(self) -> list[Dci]:
        if self._dcis is None:
            self._dcis = dci_records(self._dci, self._mcs_tables)
        return self._dcis

    @property
    def delivered(self) -> list[Delivery]:
        if self._delivered is None:
            self._delivered, self._dropped = event_records(self._ev)
        return self._delivered

    @property
    def dropped(self) -> list[Drop]:
        if self._dropped is None:
            self._delivered, self._dropped = event_records(self._ev)
        return self._dropped


def dci_records(dci: np.ndarray, mcs_tables: tuple[str, str]) -> list[Dci]:
    out = []
    for row in dci.T.tolist():
        d = row[K.DC_DIR]
        out.append(Dci(row[K.DC_SLOT], row[K.DC_T], row[K.DC_RNTI], DIRS[d], row[K.DC_PRB_START],
                       row[K.DC_PRB_COUNT], row[K.DC_SYMBOLS], row[K.DC_LAYERS], row[K.DC_MCS],
                       mcs_tables[d], row[K.DC_TBS], row[K.DC_NRE], row[K.DC_HARQ],
                       row[K.DC_NDI], row[K.DC_RV], bool(row[K.DC_RETX]), True,
                       bool(row[K.DC_OK])))
    return out


def event_records(ev: np.ndarray) -> tuple[list[Delivery], list[Drop]]:
    delivered, dropped = [], []
    for pid, ue, d, size, t_arr, t, kind in ev.T.tolist():
        if kind == K.EVK_DELIVERED:
            delivered.append(Delivery(pid, ue, DIRS[d], size, t_arr, t))
        else:
            dropped.append(Drop(pid, ue, DIRS[d], size, t_arr, t, DROP_REASONS[kind]))
    return delivered, dropped


def load_trace_sinr(ch: TraceChannel, source: str = "trace") -> np.ndarray:
    """SINR samples (dB) of a trace channel; InputError for a bad file."""
    from neuralemu import nr
    if ch.values is not None:
        vals = np.asarray(ch.values, dtype=np.float64)
        column = ch.column
    else:
        path = Path(ch.path)
        if not path.is_file():
            raise InputError(str(path), "channel trace file not found")
        text = path.read_text(errors="replace").strip().splitlines()
        if not text:
            raise InputError(str(path), "channel trace file is empty")
        first = text[0].strip()
        try:
            float(first.split(",")[0])
            header = None
        except ValueError:
            header = [h.strip() for h in first.split(",")]
        column = ch.column
        if header is None:
            rows, col = text, 0
        else:
            if column not in header:
                raise InputError(str(path), f"no '{column}' column in header {header}", line=1)
            rows, col = text[1:], header.index(column)
        vals = np.empty(len(rows))
        for i, line in enumerate(rows):
            parts = line.split(",")
            try:
                vals[i] = float(parts[col])
            except (ValueError, IndexError):
                raise InputError(str(path), f"not a number: {line.strip()!r}",
                                 line=i + 1 + (header is not None), field=column) from None
        if vals.size == 0:
            raise InputError(str(path), "channel trace has no samples")
    if not np.all(np.isfinite(vals)):
        raise InputError(source, "channel trace has non-finite values", field=column)
    if column == "cqi":
        if np.any((vals < 0) | (vals > 15) | (vals != np.round(vals))):
            raise InputError(source, "CQI values must be integers 0..15", field="cqi")
        c = vals.astype(np.int64)
        th = np.concatenate([[-8.0], np.asarray(nr.cqi_sinr_threshold_db(np.arange(1, 16), 2)),
                             [np.inf]])
        lo = th[c]
        hi = np.where(np.isfinite(th[c + 1]), th[np.minimum(c + 1, 16)], lo + 2.0)
        vals = (lo + hi) / 2.0
    return vals.astype(np.float64)


class Engine:
    """The slot engine. ``Engine(cell, ues, policy, seed)``; see docs/engine.md."""

    def __init__(self, cell: CellConfig | dict, ues: Iterable[UeConfig | dict] = (),
                 policy: Policy | str = "pf", seed: int = 0, *, record_dci: bool = False,
                 keep_log: bool = True, start_t_us: int = 0) -> None:
        self.cell = cell if isinstance(cell, CellConfig) else CellConfig.model_validate(cell)
        self.seed = int(seed) & ((1 << 63) - 1)
        self.record_dci = bool(record_dci)
        self.keep_log = bool(keep_log)
        self.tables = tb = build_tables(self.cell)
        self.slot_us = tb.slot_us
        self.mu = self.cell.numerology
        self.prbs_total = tb.prbs_total
        c = self.cell
        cf = np.zeros(K.N_CF, dtype=np.int64)
        cf[K.CF_PRBS] = tb.prbs_total
        cf[K.CF_SLOT_US] = tb.slot_us
        cf[K.CF_PERIOD] = tb.period
        cf[K.CF_MAX_UES] = c.max_ues_per_slot
        cf[K.CF_LAYERS_DL] = c.max_layers
        cf[K.CF_LAYERS_UL] = c.max_layers_ul
        cf[K.CF_RBG] = tb.rbg
        cf[K.CF_HARQ_P] = c.harq.processes
        cf[K.CF_RTT_DL] = c.harq.dl_rtt_slots
        cf[K.CF_RTT_UL] = c.harq.ul_rtt_slots
        cf[K.CF_MAX_TX] = c.harq.max_tx
        cf[K.CF_CQI_PERIOD] = c.cqi_period_slots
        cf[K.CF_CQI_DELAY] = c.cqi_delay_slots
        cf[K.CF_SR_PERIOD] = c.uplink.sr_period_slots
        cf[K.CF_SR_TO_GRANT] = c.uplink.sr_to_grant_slots + c.harq.k2_slots
        cf[K.CF_SR_GRANT_BYTES] = c.uplink.sr_grant_bytes
        cf[K.CF_BSR_DELAY] = c.uplink.bsr_delay_slots
        cf[K.CF_SEED] = self.seed
        cff = np.zeros(K.N_CFF, dtype=np.float64)
        cff[K.CFF_SLOT_S] = tb.slot_us * 1e-6
        cff[K.CFF_BLER_TARGET] = c.bler_target
        cff[K.CFF_OLLA_UP] = c.olla_step_up
        cff[K.CFF_OLLA_DOWN] = c.olla_step_up * (1.0 - c.bler_target) / c.bler_target
        cff[K.CFF_COMB_GAIN] = c.harq.combining_gain_db
        cff[K.CFF_AVG_ALPHA] = 1.0 / DEFAULT_AVG_WINDOW_SLOTS
        cff[K.CFF_SINR_MIN] = SINR_MIN_DB
        cff[K.CFF_SINR_STEP] = SINR_STEP_DB
        self._cf, self._cff = cf, cff
        self._T = (tb.pattern_kind, tb.symbols, tb.tbs, tb.re_per_prb, tb.bler, tb.cqi_of_sinr,
                   tb.cqi_to_mcs, tb.max_mcs, tb.bsr_levels, cf, cff)
        self._gs = np.zeros(K.N_GS, dtype=np.int64)
        self._gs[K.GS_T0_US] = int(start_t_us)
        self._cap = 0
        self._ue_index: dict[int, int] = {}
        self._ue_cfg: dict[int, UeConfig] = {}
        self._trace = np.zeros(0, dtype=np.float64)
        self._arr = np.zeros((K.N_AR, 0), dtype=np.int64)
        self._pk = np.zeros((K.N_PK, 0), dtype=np.int64)
        self._ev = np.zeros((K.N_EV, 0), dtype=np.int64)
        self._dci = np.zeros((K.N_DC, 0), dtype=np.int64)
        self._bitmap = np.zeros(tb.prbs_total, dtype=np.int64)
        self._alloc_ues(8)
        self._grow_pool(4096)
        self._grow_ev(8192)
        self._grow_dci(1024)
        self._next_pid = 0
        self._ev_log: list[np.ndarray] = []
        self._dci_log: list[np.ndarray] = []
        self._src_of: dict[int, object] = {}
        self.policy: Policy | None = None
        self.set_policy(policy)
        for ue in ues:
            self.add_ue(ue)

    # ------------------------------------------------------------------ arrays
    def _state(self) -> tuple:
        self._S = (self._gs, self._ui, self._uf, self._di, self._df, self._hs, self._hb, self._hq,
                   self._pk, self._arr, self._ev, self._dci, self._feat, self._alloc, self._trace,
                   self._cand, self._bitmap)
        return self._S

    def _alloc_ues(self, cap: int) -> None:
        old = self._cap
        P = self.cell.harq.processes

        if old == 0:
            self._ui = np.zeros((K.N_UI, cap), dtype=np.int64)
            self._uf = np.zeros((K.N_UF, cap), dtype=np.float64)
            self._di = np.zeros((K.N_DI, 2, cap), dtype=np.int64)
            self._df = np.zeros((K.N_DF, 2, cap), dtype=np.float64)
            self._hs = np.zeros((cap, K.HIST), dtype=np.float64)
            self._hb = np.full((3, cap, K.HIST), -1, dtype=np.int64)
            self._hq = np.zeros((K.N_HQ, 2, cap, P), dtype=np.int64)
        else:
            ui = np.zeros((K.N_UI, cap), dtype=np.int64); ui[:, :old] = self._ui; self._ui = ui
            uf = np.zeros((K.N_UF, cap)); uf[:, :old] = self._uf; self._uf = uf
            di = np.zeros((K.N_DI, 2, cap), dtype=np.int64); di[:, :, :old] = self._di; self._di = di
            df = np.zeros((K.N_DF, 2, cap)); df[:, :, :old] = self._df; self._df = df
            hs = np.zeros((cap, K.HIST)); hs[:old] = self._hs; self._hs = hs
            hb = np.full((3, cap, K.HIST), -1, dtype=np.int64); hb[:, :old] = self._hb; self._hb = hb
            hq = np.zeros((K.N_HQ, 2, cap, P), dtype=np.int64); hq[:, :, :old] = self._hq
            self._hq = hq
        self._feat = np.zeros((K.N_FT, cap), dtype=np.float64)
        self._alloc = np.zeros((4, cap), dtype=np.int64)
        self._cand = np.zeros(cap, dtype=np.int64)
        self._cap = cap
        self._state()

    def _grow_pool(self, new_size: int) -> None:
        old = self._pk.shape[1]
        pk = np.zeros((K.N_PK, new_size), dtype=np.int64)
        pk[:, :old] = self._pk
        # link the new entries in front of the free list
        nxt = np.arange(old + 1, new_size + 1, dtype=np.int64)
        nxt[-1] = self._gs[K.GS_FREE_HEAD] if self._gs[K.GS_FREE_N] > 0 else -1
        pk[K.PK_NEXT, old:] = nxt
        self._gs[K.GS_FREE_HEAD] = old
        self._gs[K.GS_FREE_N] += new_size - old
        self._pk = pk
        self._state()

    def _grow_ev(self, new_size: int) -> None:
        ev = np.zeros((K.N_EV, new_size), dtype=np.int64)
        n = int(self._gs[K.GS_EV_N])
        ev[:, :n] = self._ev[:, :n]
        self._ev = ev
        self._gs[K.GS_EV_CAP] = new_size
        self._state()

    def _grow_dci(self, new_size: int) -> None:
        dci = np.zeros((K.N_DC, new_size), dtype=np.int64)
        n = int(self._gs[K.GS_DCI_N])
        dci[:, :n] = self._dci[:, :n]
        self._dci = dci
        self._gs[K.GS_DCI_CAP] = new_size
        self._state()

    def _drain(self) -> tuple[np.ndarray, np.ndarray]:
        """Take the events and DCIs the kernel wrote since the last drain."""
        gs = self._gs
        ev = self._ev[:, :gs[K.GS_EV_N]].copy()
        dci = self._dci[:, :gs[K.GS_DCI_N]].copy()
        gs[K.GS_EV_N] = 0
        gs[K.GS_DCI_N] = 0
        if self.keep_log and ev.shape[1]:
            self._ev_log.append(ev)
        if self.record_dci and dci.shape[1]:
            self._dci_log.append(dci)
        return ev, dci

    def _make_room(self) -> tuple[np.ndarray, np.ndarray]:
        out = self._drain()
        gs = self._gs
        if gs[K.GS_FREE_N] < 1:
            self._grow_pool(2 * self._pk.shape[1])
        need_ev = int(gs[K.GS_POOL_USED]) + 2 + 64
        if self._ev.shape[1] < need_ev:
            self._grow_ev(max(2 * self._ev.shape[1], need_ev))
        need_dci = 2 * int(gs[K.GS_NCAP]) + 2
        if self._dci.shape[1] < need_dci:
            self._grow_dci(max(2 * self._dci.shape[1], need_dci))
        return out

    # ------------------------------------------------------------------ properties
    @property
    def slot(self) -> int:
        """Index of the next slot to run."""
        return int(self._gs[K.GS_SLOT])

    @property
    def t_us(self) -> int:
        """Start time of the next slot."""
        return int(self._gs[K.GS_T0_US] + self._gs[K.GS_SLOT] * self.slot_us)

    @property
    def ue_ids(self) -> list[int]:
        return list(self._ue_index)

    # ------------------------------------------------------------------ users
    def add_ue(self, ue: UeConfig | dict) -> None:
        cfg = ue if isinstance(ue, UeConfig) else UeConfig.model_validate(ue)
        if cfg.ue_id in self._ue_index:
            raise InputError("engine", f"user {cfg.ue_id} is already attached", field="ue_id")
        u = int(self._gs[K.GS_NCAP])
        if u >= self._cap:
            self._alloc_ues(2 * self._cap)
        self._gs[K.GS_NCAP] = u + 1
        self._ue_index[cfg.ue_id] = u
        self._ue_cfg[cfg.ue_id] = cfg
        ui, uf, di, df = self._ui, self._uf, self._di, self._df
        ui[:, u] = 0
        uf[:, u] = 0.0
        ui[K.UI_ID, u] = cfg.ue_id
        ui[K.UI_ATTACHED, u] = 1
        per = self.cell.uplink.sr_period_slots
        ui[K.UI_SR_OFF, u] = (cfg.sr_offset_slots if cfg.sr_offset_slots is not None
                              else cfg.ue_id) % per
        uf[K.UF_PRIO, u] = cfg.priority
        ch = cfg.channel
        if isinstance(ch, FixedChannel):
            ui[K.UI_KIND, u] = K.KIND_FIXED
            uf[K.UF_BASE_DB, u] = ch.sinr_db
        elif isinstance(ch, StochasticChannel):
            ui[K.UI_KIND, u] = K.KIND_STOCHASTIC
            uf[K.UF_BASE_DB, u] = ch.sinr_at_ref_db
            uf[K.UF_D0, u] = ch.distance_m
            uf[K.UF_SPEED, u] = ch.speed_mps
            uf[K.UF_DMIN, u] = ch.min_distance_m
            uf[K.UF_DMAX, u] = ch.max_distance_m
            uf[K.UF_REF_D, u] = ch.ref_distance_m
            uf[K.UF_PLE, u] = ch.pathloss_exponent
            uf[K.UF_SIGMA, u] = ch.fading_std_db
            uf[K.UF_RHO, u] = math.exp(-(self.slot_us / 1000.0) / ch.coherence_ms)
            uf[K.UF_FAD_DB, u] = ch.fading_std_db * K.rand_normal(self.seed, -1, cfg.ue_id,
                                                                  K.RP_FADING + 5)
        else:
            vals = load_trace_sinr(ch, f"ue {cfg.ue_id} channel")
            ui[K.UI_KIND, u] = K.KIND_TRACE
            ui[K.UI_TR_OFF, u] = self._trace.shape[0]
            ui[K.UI_TR_LEN, u] = vals.shape[0]
            ui[K.UI_TR_STEP_US, u] = max(1, int(round(ch.step_ms * 1000)))
            self._trace = np.concatenate([self._trace, vals])
        di[:, :, u] = 0
        df[:, :, u] = 0.0
        self._hq[:, :, u, :] = 0
        self._hb[:, u, :] = -1
        qlim = cfg.queue_limit_bytes if cfg.queue_limit_bytes is not None else self.cell.queue_limit_bytes
        for d, name in enumerate(DIRS):
            di[K.DI_ACTIVE, d, u] = 1 if name in cfg.directions else 0
            di[K.DI_QLIM, d, u] = qlim
            di[K.DI_HEAD, d, u] = -1
            di[K.DI_TAIL, d, u] = -1
            di[K.DI_LAST_MCS, d, u] = -1
            di[K.DI_LAST_GRANT, d, u] = K.NEVER
            di[K.DI_SR_GRANT_SLOT, d, u] = -1
            di[K.DI_LAST_BSR_SLOT, d, u] = K.NEVER
            di[K.DI_BUSY_SLOT, d, u] = K.NEVER
            df[K.DF_DIR_OFF_DB, d, u] = 0.0 if d == 0 else ch.ul_offset_db
        self._state()
        # the channel as measured at attach (the slot before this one) seeds CQI and history
        s = K.channel_sinr(self._S, u, self.slot - 1, self.t_us - self.slot_us, self.seed)
        uf[K.UF_SINR_DB, u] = s
        self._hs[u, :] = s
        nsinr = self.tables.cqi_of_sinr.shape[1]
        for d in range(2):
            sr = s + df[K.DF_DIR_OFF_DB, d, u]
            idx = K.sinr_index(sr, self._cff, nsinr)
            di[K.DI_CQI, d, u] = self.tables.cqi_of_sinr[d, idx]
            df[K.DF_REP_SINR, d, u] = sr

    def _index(self, ue_id: int) -> int:
        try:
            return self._ue_index[int(ue_id)]
        except (KeyError, TypeError, ValueError):
            raise InputError("engine", f"no user {ue_id!r} in the cell", field="ue") from None

    def remove_ue(self, ue_id: int) -> None:
        """Detach a user: its queued packets are dropped (reason ``detach``)."""
        u = self._index(ue_id)
        for d in range(2):
            while self._ev.shape[1] - self._gs[K.GS_EV_N] < self._gs[K.GS_POOL_USED] + 2:
                self._grow_ev(2 * self._ev.shape[1])
            K.detach_queue(self._S, u, d, self.t_us)
        self._ui[K.UI_ATTACHED, u] = 0
        del self._ue_index[int(ue_id)]
        del self._ue_cfg[int(ue_id)]

    def set_channel_offset_db(self, ue_id: int, db: float) -> None:
        self._uf[K.UF_OFFSET_DB, self._index(ue_id)] = float(db)

    def set_priority(self, ue_id: int, priority: float) -> None:
        """Scheduling weight of a user (pf multiplies its metric by it)."""
        if not float(priority) > 0:
            raise InputError("engine", "priority must be > 0", field="priority")
        self._uf[K.UF_PRIO, self._index(ue_id)] = float(priority)
        self._ue_cfg[int(ue_id)] = self._ue_cfg[int(ue_id)].model_copy(
            update={"priority": float(priority)})

    def set_queue_limit(self, ue_id: int, direction: str, limit_bytes: int) -> None:
        if int(limit_bytes) < 0:
            raise InputError("engine", "queue limit must be >= 0", field="queue_limit_bytes")
        self._di[K.DI_QLIM, self._dir(direction), self._index(ue_id)] = int(limit_bytes)

    @staticmethod
    def _dir(direction: str) -> int:
        try:
            return DIR_CODE[direction]
        except KeyError:
            raise InputError("engine", f"direction must be 'dl' or 'ul', got {direction!r}",
                             field="direction") from None

    # ------------------------------------------------------------------ policy
    def set_policy(self, policy: Policy | str, **params) -> None:
        """Use ``policy`` from the next slot on (a Policy or a registered name)."""
        if isinstance(policy, str):
            from neuralemu.cell.policies import make_policy
            policy = make_policy(policy, **params)
        if not callable(getattr(policy, "decide", None)):
            raise InputError("engine", f"{policy!r} is not a scheduling policy (no decide())",
                             field="policy")
        self.policy = policy
        self._cf[K.CF_POLICY] = int(getattr(policy, "kernel_id", K.POLICY_PYTHON) or 0)
        window = float(getattr(policy, "avg_window_slots", DEFAULT_AVG_WINDOW_SLOTS))
        self._cff[K.CFF_AVG_ALPHA] = 1.0 / max(1.0, window)
        bind = getattr(policy, "bind", None)
        if callable(bind):
            bind(self)

    # ------------------------------------------------------------------ traffic
    def enqueue(self, ue_id: int, direction: str, size_bytes: int, t_us: int,
                packet_id: int | None = None) -> int | None:
        """One packet arriving (dl: at the gNB, ul: at the UE). Returns its id, or None if dropped."""
        u = self._index(ue_id)
        d = self._dir(direction)
        size = int(size_bytes)
        if size <= 0:
            raise InputError("engine", f"packet size must be > 0, got {size_bytes!r}",
                             field="size_bytes")
        gs = self._gs
        if gs[K.GS_FREE_N] < 1:
            self._grow_pool(2 * self._pk.shape[1])
        if self._ev.shape[1] - gs[K.GS_EV_N] < gs[K.GS_POOL_USED] + 2:
            self._grow_ev(2 * self._ev.shape[1] + 64)
        if packet_id is None:
            pid = self._next_pid
            self._next_pid += 1
        else:
            pid = int(packet_id)
            self._next_pid = max(self._next_pid, pid + 1)
        ok = K.enqueue_one(self._S, u, d, size, int(t_us), pid)
        return pid if ok else None

    def enqueue_batch(self, ue_ids, directions, sizes_bytes, t_us) -> np.ndarray:
        """Many :meth:`enqueue` calls at once (e.g. the packets a live datapath read in one
        slot), in order. Returns their packet ids, -1 where drop-tail rejected the packet."""
        ue_ids = np.asarray(ue_ids, dtype=np.int64)
        n = ue_ids.shape[0]
        u_idx = np.array([self._index(int(v)) for v in ue_ids.tolist()], dtype=np.int64)
        dirs = np.asarray(directions)
        if dirs.dtype.kind in "iu":
            d_idx = dirs.astype(np.int64)
            if n and not np.isin(d_idx, (0, 1)).all():
                raise InputError("engine", "direction codes must be 0 (dl) or 1 (ul)", field="direction")
        else:
            d_idx = np.array([self._dir(str(v)) for v in dirs.tolist()], dtype=np.int64)
        sizes = np.asarray(sizes_bytes, dtype=np.int64)
        t = np.broadcast_to(np.asarray(t_us, dtype=np.int64), (n,)).copy()
        if not (d_idx.shape[0] == sizes.shape[0] == n):
            raise InputError("engine", "enqueue_batch: arguments have different lengths")
        if n and sizes.min() <= 0:
            raise InputError("engine", "packet size must be > 0", field="size_bytes")
        gs = self._gs
        while gs[K.GS_FREE_N] < n:
            self._grow_pool(2 * self._pk.shape[1])
        if self._ev.shape[1] - gs[K.GS_EV_N] < gs[K.GS_POOL_USED] + n + 2:
            self._grow_ev(2 * self._ev.shape[1] + int(gs[K.GS_POOL_USED]) + n + 2)
        pids = np.arange(self._next_pid, self._next_pid + n, dtype=np.int64)
        self._next_pid += n
        ok = np.zeros(n, dtype=np.int64)
        K.enqueue_many(self._S, u_idx, d_idx, sizes, t, pids, ok)
        return np.where(ok == 1, pids, -1)

    def load_arrivals(self, t_us, ue, direction, size_bytes) -> np.ndarray:
        """Bulk open-loop arrivals (sorted by time here if not already). Returns their packet ids."""
        t = np.asarray(t_us, dtype=np.int64)
        n = t.shape[0]
        ue_arr = np.asarray(ue, dtype=np.int64)
        size = np.asarray(size_bytes, dtype=np.int64)
        dirs = np.asarray(direction)
        if dirs.dtype.kind in "US" or dirs.dtype == object:
            dcode = np.where(dirs == "ul", 1, 0).astype(np.int64)
            bad = ~np.isin(dirs, ["dl", "ul"])
            if bad.any():
                raise InputError("arrivals", f"direction must be dl or ul, got {dirs[bad][0]!r}",
                                 line=int(np.flatnonzero(bad)[0]), field="direction")
        else:
            dcode = dirs.astype(np.int64)
        if not (ue_arr.shape[0] == size.shape[0] == dcode.shape[0] == n):
            raise InputError("arrivals", "columns have different lengths")
        if n and size.min() <= 0:
            raise InputError("arrivals", "packet sizes must be > 0", field="size_bytes",
                             line=int(np.argmin(size)))
        idx = np.empty(n, dtype=np.int64)
        lookup = self._ue_index
        uniq = np.unique(ue_arr)
        for v in uniq:
            if int(v) not in lookup:
                raise InputError("arrivals", f"user {int(v)} is not in the scenario", field="ue")
        keys = np.array(sorted(lookup), dtype=np.int64)
        vals = np.array([lookup[k] for k in keys.tolist()], dtype=np.int64)
        idx = vals[np.searchsorted(keys, ue_arr)] if n else idx
        pids = np.arange(self._next_pid, self._next_pid + n, dtype=np.int64)
        self._next_pid += n
        new = np.stack([t, idx, dcode, size, pids])
        pos = int(self._gs[K.GS_ARR_POS])
        rest = self._arr[:, pos:int(self._gs[K.GS_ARR_N])]
        merged = np.concatenate([rest, new], axis=1)
        order = np.argsort(merged[K.AR_T], kind="stable")
        self._arr = np.ascontiguousarray(merged[:, order])
        self._gs[K.GS_ARR_POS] = 0
        self._gs[K.GS_ARR_N] = self._arr.shape[1]
        self._state()
        return pids

    # ------------------------------------------------------------------ running
    def step(self) -> SlotResult:
        """Run one slot; returns its DCIs, deliveries and drops (and those of enqueue() since)."""
        slot, t_us = self.slot, self.t_us
        if self._cf[K.CF_POLICY] != K.POLICY_PYTHON:
            while True:
                done, st = K.run_slots(self._S, self._T, 1)
                if done == 1:
                    break
                self._make_room()
        else:
            self._python_slot()
        ev, dci = self._drain()
        return SlotResult(slot, t_us, ev, dci, self.tables.mcs_tables)

    def _python_slot(self) -> None:
        gs = self._gs
        if (gs[K.GS_EV_CAP] - gs[K.GS_EV_N] < gs[K.GS_POOL_USED] + 2
                or gs[K.GS_DCI_CAP] - gs[K.GS_DCI_N] < 2 * gs[K.GS_NCAP] + 2):
            self._make_room()
        S, T = self._S, self._T
        slot = int(gs[K.GS_SLOT])
        t_us = int(gs[K.GS_T0_US] + slot * self.slot_us)
        while K.slot_begin(S, T, slot, t_us) != K.ST_OK:
            self._make_room()
            S = self._S
        tb = self.tables
        policy = self.policy
        for d in (0, 1):
            kind = int(tb.pattern_kind[d, slot % tb.period])
            if kind < 0:
                continue
            n, left, max_u = K.prepare_direction(S, T, d, slot, t_us, kind, self._bitmap)
            if n > 0 and left > 0 and max_u > 0:
                ctx, feats = self._context(d, slot, t_us, kind, n, left, max_u)
                alloc = policy.decide(ctx, feats)
                has_start = self._write_alloc(alloc, n)
                K.finish_direction(S, T, d, slot, t_us, kind, n, self._bitmap, left, max_u,
                                   has_start)
                observe = getattr(policy, "observe", None)
                if observe is not None:
                    a = self._alloc
                    observe(ctx, feats, Allocation(prbs=a[0, :n].copy(), mcs=a[1, :n].copy(),
                                                   layers=a[2, :n].copy(),
                                                   prb_start=a[3, :n].copy()))
            else:
                K.finish_direction(S, T, d, slot, t_us, kind, 0, self._bitmap, 0, 0, False)
        gs[K.GS_SLOT] = slot + 1

    def _context(self, d, slot, t_us, kind, n, left, max_u):
        tb = self.tables
        if self.cell.is_fdd:
            stype = "D" if d == 0 else "U"
        else:
            stype = self.cell.duplex[slot % tb.period]
        ctx = SlotContext(slot=slot, t_us=t_us, direction=DIRS[d], slot_type=stype,
                          prbs_available=int(left), prbs_total=tb.prbs_total,
                          symbols=int(tb.symbols[d, kind]), max_ues=int(max_u),
                          mcs_table=tb.mcs_tables[d],
                          max_layers=self.cell.max_layers if d == 0 else self.cell.max_layers_ul)
        f = self._feat[:, :n]
        fi = f[_INT_FEATURES].astype(np.int64)       # fresh arrays: the policy may keep them
        np.minimum(fi[6], LARGE_SLOTS, out=fi[6])
        ff = f[_FLOAT_FEATURES]
        feats = UeFeatures(ue_id=fi[0], buffer_bytes=ff[0], cqi=fi[1], sinr_db=ff[1],
                           la_mcs=fi[2], avg_tput_bps=ff[2], last_mcs=fi[3], last_prbs=fi[4],
                           slots_since_grant=fi[6], pending_retx=fi[5], priority=ff[3])
        return ctx, feats

    def _write_alloc(self, alloc: Allocation, n: int) -> bool:
        a = self._alloc
        try:
            for row, arr in ((0, alloc.prbs), (1, alloc.mcs), (2, alloc.layers)):
                v = np.asarray(arr)
                if v.shape != (n,):
                    raise ValueError(f"allocation has shape {v.shape}, expected ({n},)")
                if v.dtype.kind == "f":
                    v = np.clip(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0), -1e9, 1e9)
                a[row, :n] = v
            start = alloc.prb_start
            if start is not None:
                v = np.asarray(start)
                if v.shape != (n,):
                    raise ValueError(f"prb_start has shape {v.shape}, expected ({n},)")
                if v.dtype.kind == "f":
                    v = np.clip(np.nan_to_num(v, nan=-1.0, posinf=-1.0, neginf=-1.0), -1, 1e9)
                a[3, :n] = v
                return True
        except (TypeError, ValueError, AttributeError) as exc:
            name = getattr(self.policy, "name", type(self.policy).__name__)
            raise InputError(f"policy {name}", f"bad allocation: {exc}") from None
        a[3, :n] = -1
        return False

    def run(self, n_slots: int, sources: Iterable = ()) -> None:
        """Run ``n_slots`` slots (offline). With closed-loop ``sources`` see :mod:`traffic`."""
        sources = list(sources)
        n_slots = int(n_slots)
        if sources:
            for _ in range(n_slots):
                self._source_slot(sources)
            return
        if self._cf[K.CF_POLICY] == K.POLICY_PYTHON:
            for _ in range(n_slots):
                self._python_slot()
                if self._gs[K.GS_EV_N] > (self._ev.shape[1] >> 1) or \
                        self._gs[K.GS_DCI_N] > (self._dci.shape[1] >> 1):
                    self._drain()
            self._drain()
            return
        left = n_slots
        while left > 0:
            done, st = K.run_slots(self._S, self._T, left)
            left -= int(done)
            if left > 0:
                self._make_room()
        self._drain()

    def run_until(self, t_us: int, sources: Iterable = ()) -> None:
        """Run every slot that starts before ``t_us``."""
        n = -(-(int(t_us) - self.t_us) // self.slot_us)
        if n > 0:
            self.run(n, sources)

    def _source_slot(self, sources: list) -> SlotResult:
        t_us = self.t_us
        for src in sources:
            for pkt in src.on_slot(self, t_us) or ():
                pid = self.enqueue(int(pkt[1]), pkt[2], int(pkt[3]), int(pkt[0]))
                key = pid if pid is not None else self._next_pid - 1
                self._src_of[key] = src
        res = self.step()
        for dv in res.delivered:
            src = self._src_of.pop(dv.packet_id, None)
            if src is not None:
                src.on_delivered(dv)
        for dr in res.dropped:
            src = self._src_of.pop(dr.packet_id, None)
            if src is not None:
                src.on_dropped(dr)
        return res

    # ------------------------------------------------------------------ outputs
    def delivery_log(self) -> pd.DataFrame:
        """Every delivered or dropped packet so far, in the delivery-log CSV layout (plus
        ``drop_reason``: "", "queue", "harq" or "detach"), by packet id."""
        ev = np.concatenate(self._ev_log, axis=1) if self._ev_log else np.zeros((K.N_EV, 0), np.int64)
        drop = ev[K.EV_KIND] != K.EVK_DELIVERED
        df = pd.DataFrame({
            "packet_id": ev[K.EV_PID],
            "ue": ev[K.EV_UE],
            "direction": np.array(DIRS, dtype=object)[ev[K.EV_DIR]],
            "size_bytes": ev[K.EV_SIZE],
            "t_arrival_us": ev[K.EV_ARR],
            "t_delivered_us": pd.array(np.where(drop, 0, ev[K.EV_T]), dtype="Int64"),
            "dropped": drop.astype(np.int64),
            "drop_reason": np.array(["", "queue", "harq", "detach"], dtype=object)[ev[K.EV_KIND]],
        })
        df.loc[drop, "t_delivered_us"] = pd.NA
        return df.sort_values("packet_id", kind="stable").reset_index(drop=True)

    def queued_packets(self) -> pd.DataFrame:
        """Packets still in the cell (queued or in HARQ), in the delivery-log layout."""
        rows = []
        pk = self._pk
        for ue_id, u in self._ue_index.items():
            for d in range(2):
                p = self._di[K.DI_HEAD, d, u]
                while p != -1:
                    rows.append((pk[K.PK_ID, p], ue_id, DIRS[d], pk[K.PK_SIZE, p], pk[K.PK_ARR, p]))
                    p = pk[K.PK_NEXT, p]
        return pd.DataFrame(rows, columns=["packet_id", "ue", "direction", "size_bytes",
                                           "t_arrival_us"])

    def dci_log(self) -> pd.DataFrame:
        """Every DCI recorded so far (needs ``record_dci=True``), canonical columns + ok, bytes."""
        dci = (np.concatenate(self._dci_log, axis=1) if self._dci_log
               else np.zeros((K.N_DC, 0), np.int64))
        tabs = np.array(self.tables.mcs_tables, dtype=object)
        df = pd.DataFrame({
            "slot": dci[K.DC_SLOT], "t_us": dci[K.DC_T], "rnti": dci[K.DC_RNTI],
            "direction": np.array(DIRS, dtype=object)[dci[K.DC_DIR]],
            "prb_start": dci[K.DC_PRB_START], "prb_count": dci[K.DC_PRB_COUNT],
            "symbols": dci[K.DC_SYMBOLS], "layers": dci[K.DC_LAYERS], "mcs": dci[K.DC_MCS],
            "mcs_table": tabs[dci[K.DC_DIR]], "tbs_bits": dci[K.DC_TBS], "n_re": dci[K.DC_NRE],
            "harq_id": dci[K.DC_HARQ], "ndi": dci[K.DC_NDI], "rv": dci[K.DC_RV],
            "is_retx": dci[K.DC_RETX].astype(bool), "valid": np.ones(dci.shape[1], dtype=bool),
            "ok": dci[K.DC_OK].astype(bool), "bytes": dci[K.DC_BYTES],
        })
        df["direction"] = df["direction"].astype("str")
        df["mcs_table"] = df["mcs_table"].astype("str")
        df.attrs.update({"mu": self.mu, "slot_us": self.slot_us, "source": "neuralemu engine"})
        return df

    def canonical_dci_table(self) -> pd.DataFrame:
        """The recorded DCIs in the canonical telemetry schema (no ``ok``/``bytes`` columns)."""
        df = self.dci_log()
        cols = ["slot", "t_us", "rnti", "direction", "prb_start", "prb_count", "symbols", "layers",
                "mcs", "mcs_table", "tbs_bits", "n_re", "harq_id", "ndi", "rv", "is_retx", "valid"]
        out = df[cols].copy()
        out.attrs.update(df.attrs)
        return out

    def ue_snapshot(self) -> dict[str, np.ndarray]:
        """Vectorised per-(user, direction) state now: ue, direction code, buffer_bytes
        (untransmitted RLC bytes: gNB queue for dl, UE buffer for ul), cqi, sinr_db."""
        n = int(self._gs[K.GS_NCAP])
        di, df = self._di[:, :, :n], self._df[:, :, :n]
        act = (di[K.DI_ACTIVE] == 1) & (self._ui[K.UI_ATTACHED, :n] == 1)[None, :]
        d_idx, u_idx = np.nonzero(act)
        order = np.lexsort((d_idx, u_idx))
        d_idx, u_idx = d_idx[order], u_idx[order]
        return {
            "ue": self._ui[K.UI_ID, u_idx],
            "direction": d_idx,
            "buffer_bytes": di[K.DI_ENQ_OFF, d_idx, u_idx] - di[K.DI_TX_OFF, d_idx, u_idx],
            "cqi": di[K.DI_CQI, d_idx, u_idx],
            "sinr_db": self._uf[K.UF_SINR_DB, u_idx] + df[K.DF_DIR_OFF_DB, d_idx, u_idx],
        }

    def stats(self) -> dict[int, dict[str, dict]]:
        """Per-user snapshot: {ue_id: {"dl": {...}, "ul": {...}}}."""
        out = {}
        di, df = self._di, self._df
        for ue_id, u in self._ue_index.items():
            per = {}
            for d, name in enumerate(DIRS):
                nd = int(di[K.DI_NDELIV, d, u])
                per[name] = {
                    "active": bool(di[K.DI_ACTIVE, d, u]),
                    "bytes_in": int(di[K.DI_BYTES_IN, d, u]),
                    "bytes_out": int(di[K.DI_BYTES_OUT, d, u]),
                    "drops": int(di[K.DI_DROPS, d, u]),
                    "dropped_bytes": int(di[K.DI_DROP_BYTES, d, u]),
                    "queue_bytes": int(di[K.DI_BYTES_IN, d, u] - di[K.DI_BYTES_OUT, d, u]
                                       - di[K.DI_DROP_BYTES, d, u]),
                    "untransmitted_bytes": int(di[K.DI_ENQ_OFF, d, u] - di[K.DI_TX_OFF, d, u]),
                    "queue_packets": int(di[K.DI_NPKT, d, u]),
                    "last_prbs": int(di[K.DI_LAST_PRBS, d, u]),
                    "last_mcs": int(di[K.DI_LAST_MCS, d, u]),
                    "tput_bps": float(df[K.DF_AVG_BPS, d, u]),
                    "mean_delay_us": float(di[K.DI_DELAY_SUM, d, u] / nd) if nd else 0.0,
                    "delivered_packets": nd,
                    "cqi": int(di[K.DI_CQI, d, u]),
                    "sinr_db": float(self._uf[K.UF_SINR_DB, u] + df[K.DF_DIR_OFF_DB, d, u]),
                    "olla_mcs": float(df[K.DF_OLLA, d, u]),
                    "tbs_ok_bits": int(di[K.DI_TBS_OK_BITS, d, u]),
                }
            out[ue_id] = per
        return out
