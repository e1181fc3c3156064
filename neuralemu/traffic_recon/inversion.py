"""Inverting a DCI log into per-user served bytes, bursts and buffer bounds.

A grant log says what the gNB *served*, not what *arrived*. This module walks
each user's (RNTI, direction) sequence of new transmissions and estimates:

* ``grants``: one row per new transmission, observed or inferred-missed, with
  bytes (TBS / 8, 38.214 5.1.3.2) and lower/upper bounds;
* ``bursts``: grants grouped into demand episodes (a new burst starts after a
  gap longer than ``burst_gap_us``), with an estimated arrival time and size;
* ``buffer``: the buffer occupancy just before each grant, with bounds;
* ``users``: per-user features and the traffic class (:mod:`.classify`).

Missed DCIs (NR-Scope decodes only part of them) are handled like this; see
docs/traffic-reconstruction.md for the full rules:

1. Retransmissions are counted once: rows marked ``is_retx``, and rows that
   reuse a HARQ process (38.321 5.3.2) with the *same* NDI within
   ``harq_processes`` slots, are not new data.
2. HARQ cadence. Many gNBs (both T-Mobile cells in the shared data) hand out
   HARQ process ids round-robin. When, among a log's pairs of consecutive
   grants one slot apart, at least ``rr_min_score`` advance the id by exactly
   one, the log is in *round-robin mode*, and between two observed grants
   ``ds`` slots apart whose ids differ by ``dh`` (mod N) there were
   ``(dh - 1) mod N`` missed new transmissions (capped at ``ds - 1``). Those are
   inserted as inferred grants (``observed = False``), sized like their
   neighbours; their bounds run from the user's smallest to largest observed
   grant. If ``ds`` leaves room for a whole extra wrap of N grants and the gap
   is no longer than ``wrap_window`` x N slots, the upper bound also allows N
   more unseen grants.
3. Grant cadence. Without round-robin ids, missed grants cannot be counted; a
   hole inside a burst can still hide grants, so the upper bound adds
   ``(ds - 1) // cadence`` largest-grants, where ``cadence`` is the user's
   median spacing inside bursts.
4. Undecodable DCIs (``valid`` false, e.g. NR-Scope's 275/0 rows) are grants of
   unknown size: estimated as the user's median grant, bounded by the user's
   smallest and largest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from neuralemu.errors import InputError
from neuralemu.traffic_recon.dci import check_dci_table


@dataclass(frozen=True)
class ReconParams:
    """Knobs of the inversion; defaults are what the docs and tests assume."""

    burst_gap_us: float = 6000.0        # a longer silence starts a new burst
    sched_delay_slots: float = 1.0      # estimated arrival -> first grant delay
    harq_processes: int | None = None   # N; None: 16 if any id >= 8 else 8 (38.214 5.1)
    rr_min_score: float = 0.8           # share of 1-slot pairs with id + 1 for round-robin mode
    rr_min_pairs: int = 20
    rr_max_restart_share: float = 0.5   # share of post-idle grants on process 0 above which: lowest-free
    wrap_window: float = 4.0            # extra-wrap upper bound only for gaps <= this x N slots
    spread_after_us: float = 20000.0    # arrivals of longer bursts follow the grants (streams)
    min_user_grants: int = 1


@dataclass
class Reconstruction:
    grants: pd.DataFrame
    bursts: pd.DataFrame
    buffer: pd.DataFrame
    users: pd.DataFrame
    slot_us: float
    params: ReconParams
    diagnostics: dict = field(default_factory=dict)

    def served_per_slot(self) -> pd.DataFrame:
        """Bytes of new data served per (rnti, direction, slot), with bounds."""
        cols = ["bytes_est", "bytes_lo", "bytes_hi"]
        return (self.grants.groupby(["rnti", "direction", "slot"], sort=True)[cols]
                .sum().reset_index())

    def arrivals(self) -> pd.DataFrame:
        """Estimated arrivals as a workload table ``t_us, ue, direction, size_bytes``.

        Bytes of a burst's first ``spread_after_us`` are placed at the burst's
        estimated arrival; later bytes of a long burst (a stream) arrive one
        scheduling delay before the grant that served them.
        """
        g = self.grants
        start = self.bursts["start_t_us"].to_numpy()[g["burst_id"].to_numpy()]
        arr = self.bursts["arrival_t_us"].to_numpy()[g["burst_id"].to_numpy()]
        t = g["t_us"].to_numpy(dtype=np.float64)
        delay_us = self.params.sched_delay_slots * self.slot_us
        t_arr = np.where(t - start <= self.params.spread_after_us, arr, t - delay_us)
        out = pd.DataFrame({"t_us": np.round(t_arr).astype(np.int64), "ue": g["rnti"].to_numpy(),
                            "direction": g["direction"].to_numpy(),
                            "size_bytes": g["bytes_est"].to_numpy()})
        out = out.groupby(["t_us", "ue", "direction"], sort=True)["size_bytes"].sum().reset_index()
        out["size_bytes"] = np.round(out["size_bytes"]).astype(np.int64)
        return out[out["size_bytes"] > 0].reset_index(drop=True)

    def buffer_at(self, rnti: int, direction: str, slots: np.ndarray) -> np.ndarray:
        """Estimated buffer (bytes) of one user at the given slots (0 outside bursts)."""
        b = self.buffer[(self.buffer["rnti"] == rnti) & (self.buffer["direction"] == direction)]
        return buffer_series(b, np.asarray(slots))


def buffer_series(buffer_rows: pd.DataFrame, slots: np.ndarray, column: str = "buffer_est_bytes",
                  ) -> np.ndarray:
    """Step-function lookup: buffer before the next grant of the same burst, else 0."""
    if len(buffer_rows) == 0:
        return np.zeros(len(slots))
    gs = buffer_rows["slot"].to_numpy()
    arrival = buffer_rows["arrival_slot"].to_numpy()
    vals = buffer_rows[column].to_numpy(dtype=np.float64)
    idx = np.searchsorted(gs, slots, side="left")   # next grant at or after the slot
    ok = idx < len(gs)
    idx_c = np.minimum(idx, len(gs) - 1)
    inside = ok & (slots >= arrival[idx_c])
    return np.where(inside, vals[idx_c], 0.0)


def _harq_count(dci: pd.DataFrame, params: ReconParams) -> int:
    if params.harq_processes:
        return int(params.harq_processes)
    hmax = int(dci["harq_id"].max()) if len(dci) else 0
    return 16 if hmax >= 8 else 8


def _segments(key: np.ndarray) -> np.ndarray:
    """Boolean: row i starts a new segment (key differs from row i-1)."""
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    return first


def reconstruct(dci: pd.DataFrame, params: ReconParams | None = None, *,
                exclude_rnti: list[int] | tuple[int, ...] = (), source: str = "dci",
                ) -> Reconstruction:
    """Invert a canonical DCI table (see :mod:`.dci`) into grants, bursts, buffer and classes."""
    params = params or ReconParams()
    dci = check_dci_table(dci, source)
    slot_us = float(dci.attrs["slot_us"])
    n_harq = _harq_count(dci, params)
    if exclude_rnti:
        dci = dci[~dci["rnti"].isin(list(exclude_rnti))]
        if not dci["valid"].any():
            raise InputError(source, "no valid DCI rows left after --exclude-rnti")

    diag: dict = {"rows_in": int(len(dci)), "rows_invalid": int((~dci["valid"]).sum()),
                  "rows_retx": int(dci["is_retx"].sum()), "harq_processes": n_harq}
    new = dci[~dci["is_retx"]]
    is_dl = (new["direction"].to_numpy() == "dl")
    rnti = new["rnti"].to_numpy(np.int64)
    user_key = rnti * 2 + (~is_dl).astype(np.int64)
    slot = new["slot"].to_numpy(np.int64)
    order = np.lexsort((slot, user_key))
    user_key = user_key[order]
    slot = slot[order]
    t_us = new["t_us"].to_numpy(np.float64)[order]
    harq = new["harq_id"].to_numpy(np.int64)[order]
    ndi = new["ndi"].to_numpy(np.int64)[order]
    valid = new["valid"].to_numpy(bool)[order]
    tbs_bytes = new["tbs_bits"].to_numpy(np.float64)[order] / 8.0
    mcs = new["mcs"].to_numpy(np.int64)[order]
    prbs = new["prb_count"].to_numpy(np.int64)[order]
    valid &= tbs_bytes > 0

    # 1. Duplicates: same process, same NDI, soon after -> a retransmission, not new data.
    keep = np.ones(len(slot), dtype=bool)
    if len(slot):
        po = np.lexsort((slot, harq, user_key))
        same = np.zeros(len(po), dtype=bool)
        same[1:] = ((user_key[po][1:] == user_key[po][:-1]) & (harq[po][1:] == harq[po][:-1])
                    & (harq[po][1:] >= 0) & (ndi[po][1:] == ndi[po][:-1]) & (ndi[po][1:] >= 0)
                    & (slot[po][1:] - slot[po][:-1] <= n_harq) & (slot[po][1:] != slot[po][:-1]))
        keep[po[same]] = False
        # the same DCI twice in one slot (header repeats, double decodes)
        dup_same_slot = np.zeros(len(slot), dtype=bool)
        dup_same_slot[1:] = ((user_key[1:] == user_key[:-1]) & (slot[1:] == slot[:-1])
                             & (harq[1:] == harq[:-1]))
        keep &= ~dup_same_slot
    diag["rows_duplicate_tb"] = int((~keep).sum())
    user_key, slot, t_us, harq, ndi, valid, tbs_bytes, mcs, prbs = (
        a[keep] for a in (user_key, slot, t_us, harq, ndi, valid, tbs_bytes, mcs, prbs))
    if not valid.any():
        raise InputError(source, "no valid new transmissions in the DCI log")

    # Per-user size statistics from valid grants (for undecodable and missed grants).
    first = _segments(user_key)
    uid = np.cumsum(first) - 1
    n_users = int(uid[-1]) + 1
    vb = pd.Series(np.where(valid, tbs_bytes, np.nan))
    grp = vb.groupby(uid)
    u_med = grp.median().reindex(range(n_users)).to_numpy()
    u_min = grp.min().reindex(range(n_users)).to_numpy()
    u_max = grp.max().reindex(range(n_users)).to_numpy()
    cell_med = float(np.nanmedian(vb))
    cell_min = float(np.nanmin(vb))
    cell_max = float(np.nanmax(vb))
    u_med = np.where(np.isnan(u_med), cell_med, u_med)
    u_min = np.where(np.isnan(u_min), cell_min, u_min)
    u_max = np.where(np.isnan(u_max), cell_max, u_max)

    est = np.where(valid, tbs_bytes, u_med[uid])
    lo = np.where(valid, tbs_bytes, u_min[uid])
    hi = np.where(valid, tbs_bytes, u_max[uid])

    # 2. Round-robin HARQ detection, per direction.
    burst_gap_slots = max(1.0, params.burst_gap_us / slot_us)
    ds = np.zeros(len(slot), dtype=np.int64)
    ds[1:] = slot[1:] - slot[:-1]
    dh = np.zeros(len(slot), dtype=np.int64)
    dh[1:] = np.mod(harq[1:] - harq[:-1], n_harq)
    pair = ~first
    pair_harq_ok = pair.copy()
    pair_harq_ok[1:] &= (harq[1:] >= 0) & (harq[:-1] >= 0)
    is_ul = (user_key % 2).astype(bool)
    rr_mode = {}
    missed = np.zeros(len(slot), dtype=np.int64)      # inferred missed grants before row i
    extra_hi = np.zeros(len(slot), dtype=np.float64)  # unseen-grant upper-bound bytes before row i
    in_burst_pair = pair & (ds <= burst_gap_slots)
    for d_name, d_mask in (("dl", ~is_ul), ("ul", is_ul)):
        one = pair_harq_ok & d_mask & (ds == 1)
        n_one = int(one.sum())
        score = float((dh[one] == 1).mean()) if n_one else float("nan")
        # a lowest-free allocator also counts up inside a busy period, but starts again
        # from process 0 after an idle gap; round robin carries on where it stopped
        idle = pair_harq_ok & d_mask & (ds > 2 * n_harq)
        restart = float((harq[idle] == 0).mean()) if idle.any() else 0.0
        rr = (n_one >= params.rr_min_pairs and score >= params.rr_min_score
              and restart <= params.rr_max_restart_share)
        rr_mode[d_name] = {"round_robin": bool(rr), "one_slot_pairs": n_one,
                           "score": None if np.isnan(score) else round(score, 4),
                           "restart_share": round(restart, 4)}
        sel = pair_harq_ok & d_mask
        if rr:
            m = np.mod(dh - 1, n_harq)
            m = np.minimum(m, np.maximum(ds - 1, 0))
            missed[sel] = m[sel]
            wrap = sel & (ds - 1 >= m + n_harq) & (ds <= params.wrap_window * n_harq)
            extra_hi[wrap] += n_harq * u_max[uid[wrap]]
        else:
            sel_b = in_burst_pair & d_mask
            if sel_b.any():
                cad = pd.Series(ds[sel_b]).groupby(uid[sel_b]).median()
                cadence = np.maximum(1, cad.reindex(range(n_users)).fillna(1).to_numpy())
                holes = np.maximum(0, (ds - 1) // np.maximum(1, cadence[uid]).astype(np.int64))
                extra_hi[sel_b] += holes[sel_b] * u_max[uid[sel_b]]
    diag["harq_mode"] = rr_mode

    diag["missed_grants_inferred"] = int(missed.sum())
    diag["observed_new_grants"] = int(len(slot))
    tot = missed.sum() + len(slot)
    diag["detection_ratio"] = round(float(len(slot) / tot), 4) if tot else 1.0

    # 3. Materialise inferred grants.
    n_inf = int(missed.sum())
    if n_inf:
        rows = np.repeat(np.arange(len(slot)), missed)          # the observed grant after the gap
        k = np.arange(n_inf) - np.repeat(np.cumsum(missed) - missed, missed) + 1  # 1..m
        m_r = missed[rows]
        ds_r = ds[rows]
        prev_slot = slot[rows - 1]
        spread = ds_r <= burst_gap_slots
        off = np.where(spread, np.floor(k * ds_r / (m_r + 1)), k).astype(np.int64)
        off = np.clip(off, 1, np.maximum(ds_r - 1, 1))
        i_slot = prev_slot + off
        i_t = t_us[rows - 1] + off * slot_us
        nb = np.where(spread, 0.5 * (est[rows - 1] + est[rows]), est[rows - 1])
        i_uid = uid[rows]
        inf = {
            "user_key": user_key[rows], "slot": i_slot, "t_us": i_t,
            "bytes_est": nb, "bytes_lo": u_min[i_uid], "bytes_hi": u_max[i_uid],
            "mcs": mcs[rows - 1], "prb_count": np.zeros(n_inf, dtype=np.int64),
            "harq_id": np.mod(harq[rows - 1] + k, n_harq), "observed": np.zeros(n_inf, bool),
            "decoded": np.zeros(n_inf, bool), "extra_hi": np.zeros(n_inf),
        }
    obs = {
        "user_key": user_key, "slot": slot, "t_us": t_us, "bytes_est": est, "bytes_lo": lo,
        "bytes_hi": hi, "mcs": mcs, "prb_count": prbs, "harq_id": harq,
        "observed": np.ones(len(slot), bool), "decoded": valid, "extra_hi": extra_hi,
    }
    if n_inf:
        allg = {k_: np.concatenate([obs[k_], inf[k_]]) for k_ in obs}
    else:
        allg = obs
    o2 = np.lexsort((~allg["observed"], allg["slot"], allg["user_key"]))
    allg = {k_: v[o2] for k_, v in allg.items()}
    # extra (unseen-grant) upper bound belongs to the gap *before* an observed grant:
    allg["bytes_hi"] = allg["bytes_hi"] + allg.pop("extra_hi")

    ukey = allg["user_key"]
    gslot = allg["slot"]
    gfirst = _segments(ukey)
    gds = np.zeros(len(gslot), dtype=np.int64)
    gds[1:] = gslot[1:] - gslot[:-1]
    new_burst = gfirst | (gds > burst_gap_slots)
    burst_id = np.cumsum(new_burst) - 1
    grants = pd.DataFrame({
        "rnti": ukey // 2, "direction": np.where(ukey % 2 == 1, "ul", "dl"),
        "slot": gslot, "t_us": allg["t_us"], "bytes_est": allg["bytes_est"],
        "bytes_lo": allg["bytes_lo"], "bytes_hi": allg["bytes_hi"], "mcs": allg["mcs"],
        "prb_count": allg["prb_count"], "harq_id": allg["harq_id"],
        "observed": allg["observed"], "decoded": allg["decoded"], "burst_id": burst_id,
    })

    # 4. Bursts.
    n_b = int(burst_id[-1]) + 1
    starts = np.flatnonzero(new_burst)
    ends = np.append(starts[1:], len(gslot)) - 1
    sum_est = np.add.reduceat(allg["bytes_est"], starts)
    sum_lo = np.add.reduceat(allg["bytes_lo"], starts)
    sum_hi = np.add.reduceat(allg["bytes_hi"], starts)
    n_g = ends - starts + 1
    n_obs = np.add.reduceat(allg["observed"].astype(np.int64), starts)
    delay_us = params.sched_delay_slots * slot_us
    bursts = pd.DataFrame({
        "burst_id": np.arange(n_b), "rnti": ukey[starts] // 2,
        "direction": np.where(ukey[starts] % 2 == 1, "ul", "dl"),
        "start_slot": gslot[starts], "end_slot": gslot[ends],
        "start_t_us": allg["t_us"][starts], "end_t_us": allg["t_us"][ends],
        "arrival_t_us": allg["t_us"][starts] - delay_us,
        "arrival_slot": gslot[starts] - int(round(params.sched_delay_slots)),
        "size_bytes": sum_est, "size_lo_bytes": sum_lo, "size_hi_bytes": sum_hi,
        "n_grants": n_g, "n_inferred": n_g - n_obs,
    })

    # 5. Buffer just before each grant: the rest of the burst if it all arrived at the
    # start (estimate); at least this grant's bytes (the gNB grants what it holds);
    # at most the burst's upper size less what was surely served before.
    cs_est = np.cumsum(allg["bytes_est"])
    cs_lo = np.cumsum(allg["bytes_lo"])
    before_est = cs_est - allg["bytes_est"] - np.repeat(cs_est[starts] - allg["bytes_est"][starts], n_g)
    before_lo = cs_lo - allg["bytes_lo"] - np.repeat(cs_lo[starts] - allg["bytes_lo"][starts], n_g)
    b_est = sum_est[burst_id] - before_est
    b_hi = np.maximum(sum_hi[burst_id] - before_lo, b_est)
    b_lo = np.minimum(allg["bytes_lo"], b_est)
    buffer = pd.DataFrame({
        "rnti": grants["rnti"].to_numpy(), "direction": grants["direction"].to_numpy(),
        "slot": gslot, "t_us": allg["t_us"], "arrival_slot": bursts["arrival_slot"].to_numpy()[burst_id],
        "buffer_est_bytes": b_est, "buffer_lo_bytes": b_lo, "buffer_hi_bytes": b_hi,
    })

    from neuralemu.traffic_recon.classify import classify_users
    users = classify_users(grants, bursts, slot_us)
    diag["users"] = int(len(users))
    diag["bursts"] = int(n_b)
    diag["params"] = asdict(params)
    return Reconstruction(grants=grants, bursts=bursts, buffer=buffer, users=users,
                          slot_us=slot_us, params=params, diagnostics=diag)
