"""Per-slot training samples from a canonical DCI table and a UE-side log.

One sample = one slot of one direction that the cell can schedule, over the set
of users attached in that direction (1..64, padded + masked). For every user
it holds the model's input row (:func:`features.user_features`) and the
targets read from the DCIs of that slot:

* ``sched``: the user got a new transmission (retransmissions are the
  engine's business, 38.214 5.1 / 6.1, and are not a policy decision);
* ``prbs``: PRBs of that new transmission; ``prbs_available`` of the sample is
  the carrier minus the PRBs already taken by retransmissions and by users
  missing from the UE log, exactly what ``SlotContext.prbs_available`` means;
* ``mcs``: its MCS index (-1 when not scheduled);
* ``retx``: always False for candidates: a user with a retransmission in the
  slot is busy and not a candidate, as in the engine (kept for diagnostics).

History features come from :class:`features.HistoryTracker`, fed slot by slot
with the telemetry's new transmissions, the same way the learned policy feeds
it through ``observe`` at inference.

Alignment: a slot's CQI / SINR are the user's last UE-log row with
``t_us <= slot start``; the slot start is ``slot * slot_us`` on the DCI table's
time base (the UE-side log must share it, as ``synth`` writes it). The buffer
is the one the scheduler saw, after the slot's arrivals: when the log has a
row exactly at the next slot's start (``synth`` logs every slot), that row's
buffer plus the bytes of the slot's new transmissions (TBS / 8); otherwise the
as-of row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from neuralemu.errors import InputError
from neuralemu.scheduler_model import features as F
from neuralemu.scheduler_model import mcs_info

DIRECTIONS = ("dl", "ul")


@dataclass
class CellConfig:
    """What the model assumes about the cell; inferred from telemetry, stored in the bundle."""

    slot_us: float
    period_slots: int                          # TDD pattern period used to find slot types
    directions: list[str]
    prbs_total: dict[str, int]
    mcs_table: dict[str, str]
    layers: dict[str, int]                     # most common layer count of new transmissions
    max_ues: dict[str, int]                    # most users given a new transmission in one slot
    slot_types: dict[str, dict[str, str]]      # direction -> {slot position: "D"|"U"|"S"}
    symbols: dict[str, dict[str, int]]         # direction -> {slot position: PDSCH/PUSCH symbols}
    re_per_prb: dict[str, dict[str, int]]      # direction -> {symbols: N_RE per PRB} (38.214 5.1.3.2)
    use_sinr: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict, source: str = "cell config") -> "CellConfig":
        names = {f for f in cls.__dataclass_fields__}
        if not isinstance(d, dict) or set(d) != names:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise InputError(source, f"cell config must have exactly the keys {sorted(names)}, "
                             f"got {got}", field="cell")
        try:
            cfg = cls(slot_us=float(d["slot_us"]), period_slots=int(d["period_slots"]),
                      directions=[str(x) for x in d["directions"]],
                      prbs_total={str(k): int(v) for k, v in d["prbs_total"].items()},
                      mcs_table={str(k): mcs_info.canonical(v) for k, v in d["mcs_table"].items()},
                      layers={str(k): int(v) for k, v in d["layers"].items()},
                      max_ues={str(k): int(v) for k, v in d["max_ues"].items()},
                      slot_types={str(k): {str(p): str(t) for p, t in v.items()}
                                  for k, v in d["slot_types"].items()},
                      symbols={str(k): {str(p): int(s) for p, s in v.items()}
                               for k, v in d["symbols"].items()},
                      re_per_prb={str(k): {str(p): int(s) for p, s in v.items()}
                                  for k, v in d["re_per_prb"].items()},
                      use_sinr=bool(d["use_sinr"]))
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(source, f"malformed cell config: {exc}", field="cell") from None
        for direction in cfg.directions:
            if direction not in DIRECTIONS or direction not in cfg.prbs_total \
                    or direction not in cfg.mcs_table:
                raise InputError(source, f"cell config: bad direction {direction!r}", field="cell")
            if not cfg.slot_types.get(direction) or set(cfg.slot_types[direction].values()) - \
                    set(F.SLOT_TYPES) or set(cfg.symbols.get(direction, {})) != \
                    set(cfg.slot_types[direction]):
                raise InputError(source, f"cell config: bad slot types for {direction!r}",
                                 field="cell")
        return cfg


@dataclass
class SlotDataset:
    """Padded per-slot samples. S samples, N = most users in one sample, F features."""

    user_x: np.ndarray          # float32 [S, N, F]
    cell_x: np.ndarray          # float32 [S, C]
    mask: np.ndarray            # bool    [S, N] real user
    sched: np.ndarray           # float32 [S, N] 1 = new transmission
    prbs: np.ndarray            # float32 [S, N] PRBs of the new transmission
    mcs: np.ndarray             # int64   [S, N] MCS of the new transmission, -1 = none
    retx: np.ndarray            # bool    [S, N] retransmission in this slot
    tbs_bits: np.ndarray        # float64 [S, N] logged TBS of the new transmission
    ue_id: np.ndarray           # int64   [S, N] RNTI, -1 = padding
    prbs_available: np.ndarray  # float32 [S]
    prbs_total: np.ndarray      # int64   [S]
    symbols: np.ndarray         # int64   [S]
    layers: np.ndarray          # int64   [S, N] layers of the new transmission (cell default if none)
    mcs_top: np.ndarray         # int64   [S] highest valid MCS of the sample's table
    buffer_bytes: np.ndarray    # float64 [S, N] raw inputs, for the analytical baselines
    cqi: np.ndarray             # float64 [S, N]
    avg_bps: np.ndarray         # float64 [S, N, len(AVG_WINDOWS_SLOTS)] averaged raw bits per slot
    since_grant: np.ndarray     # float64 [S, N] slots since the last new transmission
    slot: np.ndarray            # int64   [S]
    t_us: np.ndarray            # float64 [S]
    is_ul: np.ndarray           # bool    [S]
    group: np.ndarray           # int64   [S] which (DCI, UE log) pair the sample came from
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.user_x.shape[0])

    def subset(self, idx: np.ndarray) -> "SlotDataset":
        kw = {k: getattr(self, k)[idx] for k in self.__dataclass_fields__ if k != "info"}
        return SlotDataset(**kw, info=dict(self.info))

    def split_by_time(self, val_frac: float) -> tuple["SlotDataset", "SlotDataset"]:
        """The last ``val_frac`` of every group's time span is validation."""
        val = np.zeros(len(self), dtype=bool)
        if val_frac > 0:
            for g in np.unique(self.group):
                sel = self.group == g
                cut = np.quantile(self.t_us[sel], 1.0 - val_frac)
                val |= sel & (self.t_us > cut)
        return self.subset(np.flatnonzero(~val)), self.subset(np.flatnonzero(val))

    @staticmethod
    def concat(parts: list["SlotDataset"]) -> "SlotDataset":
        n = max(p.user_x.shape[1] for p in parts)
        per_user = {"user_x", "mask", "sched", "prbs", "mcs", "retx", "tbs_bits", "ue_id", "layers",
                    "buffer_bytes", "cqi", "avg_bps", "since_grant"}

        def pad(key, a, fill):
            if key not in per_user or a.shape[1] == n:
                return a
            width = [(0, 0), (0, n - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
            return np.pad(a, width, constant_values=fill)
        fills = {"mcs": -1, "ue_id": -1, "layers": 1, "since_grant": 1e9}
        kw = {}
        for k in SlotDataset.__dataclass_fields__:
            if k == "info":
                continue
            arrays = [pad(k, getattr(p, k), fills.get(k, 0)) for p in parts]
            if k == "group":
                arrays = [a + i for i, a in enumerate(arrays)]
            kw[k] = np.concatenate(arrays)
        return SlotDataset(**kw, info={"parts": [p.info for p in parts]})


def _mode(values) -> int:
    return int(Counter(int(v) for v in values).most_common(1)[0][0])


def _check_columns(df: pd.DataFrame, needed: tuple[str, ...], source: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise InputError(source, f"missing columns {missing}; is this the right kind of table?")


DCI_COLUMNS = ("slot", "t_us", "rnti", "direction", "prb_start", "prb_count", "symbols",
               "layers", "mcs", "mcs_table", "tbs_bits", "harq_id", "is_retx", "valid")
UE_LOG_COLUMNS = ("t_us", "ue", "direction", "buffer_bytes", "cqi")


def slot_us_of(dci: pd.DataFrame, source: str = "DCI table") -> float:
    slot_us = dci.attrs.get("slot_us")
    if slot_us is None and "mu" in dci.attrs:
        slot_us = 1000.0 / (2 ** int(dci.attrs["mu"]))
    if slot_us is None:
        raise InputError(source, "the DCI table has no slot_us/mu attribute (read it with "
                         "neuralemu.telemetry.read_nrscope)")
    return float(slot_us)


def infer_cell(dci: pd.DataFrame, ue_log: pd.DataFrame, *, prbs_total: int | None = None,
               source: str = "DCI table") -> CellConfig:
    """Carrier PRBs, MCS table, layers, user limit and TDD slot types, as seen in the telemetry."""
    _check_columns(dci, DCI_COLUMNS, source)
    slot_us = slot_us_of(dci, source)
    valid = dci[dci["valid"].astype(bool)]
    if valid.empty:
        raise InputError(source, "no valid DCI rows to learn from")
    period = max(1, int(round(10_000.0 / slot_us)))     # one 10 ms frame (38.211 4.3.1)
    directions = [d for d in DIRECTIONS if (valid["direction"] == d).any()]
    counts = {d: np.bincount((valid.loc[valid["direction"] == d, "slot"] % period).astype(int),
                             minlength=period) for d in directions}
    positions = {d: _pattern_positions(c) for d, c in counts.items()}
    both = set.intersection(*positions.values()) if len(directions) == 2 else set()
    fdd = len(directions) == 2 and len(both) >= 0.5 * period
    cfg = CellConfig(slot_us=slot_us, period_slots=period, directions=directions,
                     prbs_total={}, mcs_table={}, layers={}, max_ues={}, slot_types={},
                     symbols={}, re_per_prb={}, use_sinr="sinr_db" in ue_log.columns)
    carrier = int((valid["prb_start"] + valid["prb_count"]).max())   # one carrier, both links
    for d in directions:
        rows = valid[valid["direction"] == d]
        new = rows[~rows["is_retx"].astype(bool)]
        cfg.prbs_total[d] = int(prbs_total) if prbs_total else carrier
        cfg.mcs_table[d] = mcs_info.canonical(str(rows["mcs_table"].mode().iloc[0]))
        cfg.layers[d] = _mode(new["layers"]) if len(new) else 1
        cfg.max_ues[d] = int(new.groupby("slot")["rnti"].nunique().max()) if len(new) else 1
        sized = new[new["prb_count"] > 0]
        cfg.re_per_prb[d] = {str(int(sym)): _mode(g["n_re"] // g["prb_count"])
                             for sym, g in sized.groupby("symbols")} if "n_re" in new else {}
        max_sym = int(rows["symbols"].max())
        sym_of = {int(p): _mode(g["symbols"]) for p, g in rows.groupby(rows["slot"] % period)}
        cfg.symbols[d] = {}
        cfg.slot_types[d] = {}
        for p in sorted(positions[d]):
            sym = sym_of.get(p)
            if sym is None:        # never seen at this position: as at its pattern twin
                twins = [q for q in sym_of if sym_of and q % _period_of(positions[d], period) ==
                         p % _period_of(positions[d], period)]
                sym = sym_of[twins[0]] if twins else max_sym
            cfg.symbols[d][str(p)] = sym
            normal = "D" if d == "dl" else "U"
            special = (not fdd) and (p in both or sym < max_sym)
            cfg.slot_types[d][str(p)] = "S" if special else normal
    return cfg


def _period_of(positions: set[int], frame: int) -> int:
    """Smallest divisor p of the frame with ``positions`` invariant under a shift by p."""
    for p in range(1, frame + 1):
        if frame % p == 0 and all(((x + p) % frame) in positions for x in positions):
            return p
    return frame


def _pattern_positions(counts: np.ndarray) -> set[int]:
    """Slot positions in the frame that carry a direction, from DCI counts per position.

    A TDD pattern repeats with a period dividing the frame (38.213 11.1); the
    smallest period p whose residue classes are each either empty or evenly
    used (every position at least a fifth of its class's mean) is taken, so a
    position that happened to see no DCI in a short log still counts.
    """
    frame = len(counts)
    for p in range(1, frame + 1):
        if frame % p:
            continue
        ok = True
        out = set()
        for r in range(p):
            cls = counts[r::p]
            if cls.sum() == 0:
                continue
            if cls.min() < 0.2 * cls.mean() and cls.max() >= 5:
                ok = False
                break
            out.update(range(r, frame, p))
        if ok:
            return out
    return set(np.flatnonzero(counts).tolist())


def _pending_retx(rows: pd.DataFrame, col_of: dict[int, int], slot0: int, n_slots: int,
                  n_ues: int) -> np.ndarray:
    """[n_slots, n_ues] HARQ processes waiting for a retransmission (between the failed
    transmission and its retransmission, both excluded)."""
    pend = np.zeros((n_slots + 1, n_ues), dtype=np.int64)
    r = rows.sort_values(["rnti", "harq_id", "slot"])
    prev_slot = r.groupby(["rnti", "harq_id"])["slot"].shift(1)
    ok = r["is_retx"].astype(bool) & prev_slot.notna()
    for ue, s0, s1 in zip(r.loc[ok, "rnti"], prev_slot[ok], r.loc[ok, "slot"]):
        j = col_of.get(int(ue))
        a, b = int(s0) + 1 - slot0, int(s1) - slot0
        if j is None or b <= a:
            continue
        pend[max(a, 0), j] += 1
        pend[max(b, 0), j] -= 1
    return np.cumsum(pend, axis=0)[:n_slots]


def build_dataset(dci: pd.DataFrame, ue_log: pd.DataFrame, cell: CellConfig, *,
                  source: str = "telemetry", progress_desc: str | None = None) -> SlotDataset:
    """All schedulable slots of every direction in ``cell.directions``, in time order."""
    _check_columns(dci, DCI_COLUMNS, source)
    _check_columns(ue_log, UE_LOG_COLUMNS, source)
    slot_us = slot_us_of(dci, source)
    if abs(slot_us - cell.slot_us) > 1e-6:
        raise InputError(source, f"slot duration {slot_us} us differs from the model's "
                         f"{cell.slot_us} us (another numerology)")
    valid = dci[dci["valid"].astype(bool)]
    if valid.empty:
        raise InputError(source, "no valid DCI rows")
    slot0 = int(valid["slot"].min())
    slot1 = int(valid["slot"].max())
    t_off = float(np.median(valid["t_us"].to_numpy(np.float64)
                            - valid["slot"].to_numpy(np.float64) * slot_us))
    parts = []
    for d in cell.directions:
        part = _build_direction(valid[valid["direction"] == d], ue_log[ue_log["direction"] == d],
                                cell, d, slot0, slot1, t_off, source)
        if part is not None:
            parts.append(part)
    if not parts:
        raise InputError(source, "no slot has both DCIs and UE-log users; do the DCI table and "
                         "the UE-side log cover the same time span and RNTIs?")
    out = parts[0] if len(parts) == 1 else SlotDataset.concat(parts)
    out.group[:] = 0
    order = np.lexsort((out.is_ul, out.slot))
    out = out.subset(order)
    out.info = {"source": source, "samples": len(out)}
    return out


def _build_direction(rows: pd.DataFrame, log: pd.DataFrame, cell: CellConfig, d: str,
                     slot0: int, slot1: int, t_off: float, source: str) -> SlotDataset | None:
    if log.empty:
        return None
    slot_us = cell.slot_us
    period = cell.period_slots
    table = cell.mcs_table[d]
    top = mcs_info.top_mcs(table)
    prbs_total = cell.prbs_total[d]
    default_layers = cell.layers[d]
    carrying = {int(p) for p in cell.slot_types[d]}
    slots = np.arange(slot0, slot1 + 1, dtype=np.int64)
    slots = slots[np.isin(slots % period, list(carrying))]
    if slots.size == 0:
        return None
    t_slot = slots * slot_us + t_off

    # the UE-side log, as of each slot start: [n_slots, n_ues]
    log = log.sort_values("t_us", kind="stable")
    ue_ids = np.array(sorted(int(u) for u in log["ue"].unique()), dtype=np.int64)
    col_of = {int(u): j for j, u in enumerate(ue_ids)}
    n_ues = len(ue_ids)
    buffer = np.zeros((len(slots), n_ues))
    cqi = np.zeros((len(slots), n_ues))
    sinr = np.zeros((len(slots), n_ues))
    attached = np.zeros((len(slots), n_ues), dtype=bool)
    # bytes of this slot's new transmissions per user: with a UE-log row exactly at the next
    # slot's start, the buffer the scheduler saw is that row's buffer plus what this slot sent
    sent = np.zeros((len(slots), n_ues))
    new_rows = rows[~rows["is_retx"].astype(bool)]
    k_of = np.searchsorted(slots, new_rows["slot"].to_numpy(np.int64))
    j_of = np.array([col_of.get(int(u), -1) for u in new_rows["rnti"]], dtype=np.int64)
    ok_rows = (k_of < len(slots)) & (j_of >= 0)
    ok_rows[ok_rows] &= slots[k_of[ok_rows]] == new_rows["slot"].to_numpy(np.int64)[ok_rows]
    np.add.at(sent, (k_of[ok_rows], j_of[ok_rows]),
              new_rows["tbs_bits"].to_numpy(np.float64)[ok_rows] / 8.0)
    for ue, grp in log.groupby("ue"):
        j = col_of[int(ue)]
        times = grp["t_us"].to_numpy(np.float64)
        idx = np.searchsorted(times, t_slot, side="right") - 1
        ok = idx >= 0
        attached[:, j] = ok
        values = grp["buffer_bytes"].to_numpy(np.float64)
        buffer[ok, j] = values[idx[ok]]
        nxt = np.searchsorted(times, t_slot + slot_us, side="right") - 1
        exact = (nxt >= 0) & (times[np.maximum(nxt, 0)] == t_slot + slot_us) & ok
        buffer[exact, j] = values[nxt[exact]] + sent[exact, j]
        cqi[ok, j] = grp["cqi"].to_numpy(np.float64)[idx[ok]]
        if cell.use_sinr and "sinr_db" in grp:
            sinr[ok, j] = np.nan_to_num(grp["sinr_db"].to_numpy(np.float64)[idx[ok]])
    pending_all = _pending_retx(rows, col_of, slot0, slot1 - slot0 + 1, n_ues)
    pending = pending_all[slots - slot0]

    # DCIs of each slot
    rows = rows.sort_values("slot", kind="stable")
    r_slot = rows["slot"].to_numpy(np.int64)
    r_col = np.array([col_of.get(int(u), -1) for u in rows["rnti"]], dtype=np.int64)
    r_prbs = rows["prb_count"].to_numpy(np.int64)
    r_mcs = rows["mcs"].to_numpy(np.int64)
    r_layers = rows["layers"].to_numpy(np.int64)
    r_sym = rows["symbols"].to_numpy(np.int64)
    r_tbs = rows["tbs_bits"].to_numpy(np.float64)
    r_retx = rows["is_retx"].to_numpy(bool)
    lo = np.searchsorted(r_slot, slots, side="left")
    hi = np.searchsorted(r_slot, slots, side="right")

    pos = slots % period
    default_sym = np.array([cell.symbols[d][str(int(p))] for p in pos], dtype=np.int64)
    type_code = np.array([F.SLOT_TYPES.index(cell.slot_types[d][str(int(p))]) for p in pos],
                         dtype=np.int64)
    n_max = min(n_ues, F.MAX_USERS)
    s_all = len(slots)
    nt = len(F.AVG_WINDOWS_SLOTS)
    dslots = F.direction_slot_index(slots, period, cell.slot_types[d].keys())
    o = {"user_x": np.zeros((s_all, n_max, F.N_USER_FEATURES), np.float32),
         "col": np.full((s_all, n_max), -1, np.int64), "sched": np.zeros((s_all, n_max), np.float32),
         "prbs": np.zeros((s_all, n_max), np.float32), "mcs": np.full((s_all, n_max), -1, np.int64),
         "tbs": np.zeros((s_all, n_max)), "layers": np.full((s_all, n_max), default_layers, np.int64),
         "buf": np.zeros((s_all, n_max)), "cqi": np.zeros((s_all, n_max)),
         "avg": np.zeros((s_all, n_max, nt)), "since": np.full((s_all, n_max), 1e9),
         "avail": np.zeros(s_all, np.int64), "sym": np.zeros(s_all, np.int64),
         "n": np.zeros(s_all, np.int64)}
    tracker = F.HistoryTracker()
    tracker.rows(np.arange(max(n_ues, 1), dtype=np.int64))      # row j = UE-log column j
    _build_loop(slots.astype(np.float64), dslots, default_sym, attached, buffer,
                cqi, sinr, cell.use_sinr, pending.astype(np.float64), lo, hi, r_col, r_prbs, r_mcs,
                r_layers, r_sym, r_tbs, r_retx, float(prbs_total), float(default_layers), top,
                d == "ul", F.MAX_USERS, tracker.keep, mcs_info.se_lookup(table),
                mcs_info.cqi_se_lookup(table), mcs_info.cqi_mcs_lookup(table), tracker.last_mcs,
                tracker.last_prbs, tracker.last_grant_slot, tracker.avg_value, tracker.avg_at,
                o["user_x"], o["col"], o["sched"], o["prbs"], o["mcs"], o["tbs"], o["layers"],
                o["buf"], o["cqi"], o["avg"], o["since"], o["avail"], o["sym"], o["n"])
    keep = np.flatnonzero(o["n"] > 0)
    if keep.size == 0:
        return None
    o = {k: v[keep] for k, v in o.items()}
    s = keep.size
    n_max = max(int(o["n"].max()), 1)
    o = {k: (v[:, :n_max] if v.ndim >= 2 else v) for k, v in o.items()}
    mask = o["col"] >= 0
    ue_id = np.where(mask, ue_ids[np.maximum(o["col"], 0)], -1)
    cell_x = F.cell_features_array(is_ul=np.full(s, d == "ul"), slot_type_code=type_code[keep],
                                   prbs_available=o["avail"], prbs_total=prbs_total,
                                   symbols=o["sym"], n_users=o["n"], max_ues=cell.max_ues[d])
    return SlotDataset(
        user_x=o["user_x"], cell_x=cell_x, mask=mask, sched=o["sched"], prbs=o["prbs"],
        mcs=o["mcs"], retx=np.zeros((s, n_max), dtype=bool), tbs_bits=o["tbs"], ue_id=ue_id,
        prbs_available=o["avail"].astype(np.float32),
        prbs_total=np.full(s, prbs_total, dtype=np.int64), symbols=o["sym"], layers=o["layers"],
        mcs_top=np.full(s, top, dtype=np.int64), buffer_bytes=o["buf"], cqi=o["cqi"],
        avg_bps=o["avg"], since_grant=np.minimum(o["since"], 1e9), slot=slots[keep],
        t_us=t_slot[keep].astype(np.float64), is_ul=np.full(s, d == "ul"),
        group=np.zeros(s, dtype=np.int64), info={})


from neuralemu.scheduler_model.kernels import build_loop as _build_loop  # noqa: E402
