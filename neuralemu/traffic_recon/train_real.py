"""Training the learned scheduler on real NR-Scope logs (no UE-side log exists for them).

The scheduler model (``neuralemu.scheduler_model``) learns from a DCI log plus
a UE-side log ``t_us, ue, direction, buffer_bytes, cqi``. Real NR-Scope logs
have no UE side, so :func:`recon_ue_log` builds one from reconstruction:

* ``buffer_bytes``: the reconstructed buffer (:mod:`.inversion`): at each
  burst's estimated arrival the burst's size, after each grant what is left of
  the burst, 0 after the burst;
* ``cqi``: a proxy from MCS history: the CQI (38.214 Table 5.2.2.1-3) whose
  link-adaptation MCS (``nr.cqi_to_mcs``) is closest to the user's last decoded
  MCS on a channel-limited grant (>= 500 bytes), held until the next one.

A user is listed in the UE log from its first burst on. To keep datasets
small, only slots where some user has data or a grant are kept as samples.

:func:`held_out_scores` compares the trained model on a held-out file with a
persistence baseline (next MCS = the user's last MCS; PRBs = the mean of the
user's last 8 grants), on the slots and users that really got a new
transmission. PRB MAE is given twice for the model: as it decides (a user it
does not schedule counts 0 PRBs) and given who was scheduled (its PRB share
among the users that really got a grant, which is what persistence is given).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuralemu.traffic_recon.channel import MIN_CHANNEL_GRANT_BYTES
from neuralemu.traffic_recon.inversion import Reconstruction, reconstruct

PERSISTENCE_PRB_WINDOW = 8


def _cqi_for_mcs(mcs_table: str = "qam256") -> np.ndarray:
    from neuralemu.nr import cqi_to_mcs, default_cqi_table
    table = default_cqi_table(mcs_table)
    cqi_mcs = np.asarray(cqi_to_mcs(np.arange(0, 16), mcs_table, table))
    m = np.arange(32)
    return np.argmin(np.abs(m[:, None] - cqi_mcs[None, 1:]), axis=1) + 1   # CQI 1..15 per MCS


def recon_ue_log(rec: Reconstruction, mcs_table: str = "qam256") -> pd.DataFrame:
    """UE-side log rows (t_us, ue, direction, buffer_bytes, cqi) from a reconstruction."""
    slot_us = rec.slot_us
    b = rec.bursts
    g = rec.grants
    cqi_of = _cqi_for_mcs(mcs_table)
    arrive = pd.DataFrame({"t_us": b["arrival_slot"].to_numpy() * slot_us, "ue": b["rnti"].to_numpy(),
                           "direction": b["direction"].to_numpy(), "buffer_bytes": b["size_bytes"].to_numpy()})
    # after each grant: what is left of the burst (estimate), at the next slot's start
    left = rec.buffer["buffer_est_bytes"].to_numpy() - g["bytes_est"].to_numpy()
    after = pd.DataFrame({"t_us": (g["slot"].to_numpy() + 1) * slot_us, "ue": g["rnti"].to_numpy(),
                          "direction": g["direction"].to_numpy(), "buffer_bytes": np.maximum(left, 0.0)})
    rows = pd.concat([arrive, after], ignore_index=True)
    rows = rows.sort_values(["ue", "direction", "t_us"], kind="stable")
    rows = rows.drop_duplicates(["ue", "direction", "t_us"], keep="last")
    # CQI proxy: last channel-limited decoded MCS at or before the row
    ch = g[g["decoded"] & g["observed"] & (g["bytes_est"] >= MIN_CHANNEL_GRANT_BYTES) & (g["mcs"] <= 27)]
    ch = ch.assign(t_us=ch["slot"] * slot_us, ue=ch["rnti"], cqi=cqi_of[ch["mcs"].to_numpy()])
    out = []
    for (ue, d), grp in rows.groupby(["ue", "direction"], sort=False):
        c = ch[(ch["ue"] == ue) & (ch["direction"] == d)]
        if len(c):
            idx = np.searchsorted(c["t_us"].to_numpy(), grp["t_us"].to_numpy(), side="right") - 1
            vals = np.where(idx >= 0, c["cqi"].to_numpy()[np.maximum(idx, 0)], c["cqi"].to_numpy()[0])
        else:
            vals = np.full(len(grp), 7)
        out.append(grp.assign(cqi=vals.astype(np.int64)))
    log = pd.concat(out, ignore_index=True) if out else rows.assign(cqi=np.zeros(0, np.int64))
    log["t_us"] = np.round(log["t_us"]).astype(np.int64)
    return log.sort_values("t_us", kind="stable").reset_index(drop=True)


def real_dataset(dci: pd.DataFrame, cell, *, source: str = "nrscope", chunk_s: float = 20.0,
                 slots: str = "busy"):
    """SlotDataset from a real log: reconstruction as the UE side.

    ``slots``: ``"busy"`` keeps slots where a user has reconstructed data or a
    grant; ``"observed"`` only slots with a decoded grant. With 20-60 % of the
    DCIs decoded, most busy slots without a logged grant are missed DCIs, not
    decisions to schedule nobody; ``"observed"`` drops them from training.
    """
    if slots not in ("busy", "observed"):
        raise ValueError(f"slots must be 'busy' or 'observed', got {slots!r}")
    from neuralemu.scheduler_model.dataset import SlotDataset, build_dataset
    rec = reconstruct(dci, source=source)
    log = recon_ue_log(rec)
    slot_us = rec.slot_us
    valid = dci[dci["valid"]]
    s0, s1 = int(valid["slot"].min()), int(valid["slot"].max())
    step = max(1, int(chunk_s * 1e6 / slot_us))
    parts = []
    for a in range(s0, s1 + 1, step):
        b = a + step
        d = dci[(dci["slot"] >= a) & (dci["slot"] < b)]
        lg = log[(log["t_us"] >= a * slot_us) & (log["t_us"] < b * slot_us)]
        if not d["valid"].any() or lg.empty:
            continue
        d = d.copy()
        d.attrs = dict(dci.attrs)
        try:
            part = build_dataset(d, lg, cell, source=source)
        except Exception as exc:  # a chunk with nothing usable is skipped, not fatal
            if type(exc).__name__ != "InputError":
                raise
            continue
        busy = (part.sched > 0).any(axis=1)
        if slots == "busy":
            busy |= ((part.buffer_bytes > 0) & part.mask).any(axis=1)
        if busy.any():
            parts.append(part.subset(np.flatnonzero(busy)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else SlotDataset.concat(parts)


def persistence(dci: pd.DataFrame, data) -> tuple[np.ndarray, np.ndarray]:
    """Persistence predictions for the dataset's (slot, user) cells: last MCS, mean of last PRBs."""
    new = dci[dci["valid"] & ~dci["is_retx"]].sort_values(["rnti", "direction", "slot"])
    new = new.assign(prb_mean=new.groupby(["rnti", "direction"])["prb_count"]
                     .transform(lambda x: x.shift(1).rolling(PERSISTENCE_PRB_WINDOW, min_periods=1).mean()),
                     last_mcs=new.groupby(["rnti", "direction"])["mcs"].shift(1))
    key = {}
    for r in new.itertuples(index=False):
        key[(int(r.rnti), r.direction == "ul", int(r.slot))] = (r.last_mcs, r.prb_mean)
    s, n = data.mask.shape
    mcs_p = np.full((s, n), -1.0)
    prb_p = np.full((s, n), np.nan)
    for i in range(s):
        for j in np.flatnonzero(data.sched[i] > 0):
            v = key.get((int(data.ue_id[i, j]), bool(data.is_ul[i]), int(data.slot[i])))
            if v is not None:
                mcs_p[i, j] = np.nan_to_num(v[0], nan=-1.0)
                prb_p[i, j] = v[1]
    return mcs_p, prb_p


def held_out_scores(bundle, data, dci: pd.DataFrame) -> dict:
    """Learned vs persistence on the users that really got a new transmission."""
    from neuralemu.scheduler_model.evaluate import predict
    prbs, _, mcs_head = predict(bundle, data)
    prbs_given = _prbs_given_scheduled(bundle, data)
    mcs_p, prb_p = persistence(dci, data)
    true_s = (data.sched > 0) & data.mask
    has_hist = true_s & (mcs_p >= 0) & np.isfinite(prb_p)
    t_mcs = data.mcs[has_hist]
    t_prb = data.prbs[has_hist]
    return {
        "scheduled_samples": int(has_hist.sum()),
        "learned_mcs_within1": float((np.abs(mcs_head[has_hist] - t_mcs) <= 1).mean()),
        "persistence_mcs_within1": float((np.abs(mcs_p[has_hist] - t_mcs) <= 1).mean()),
        "learned_prb_mae": float(np.abs(prbs[has_hist] - t_prb).mean()),
        "learned_prb_mae_given_scheduled": float(np.abs(prbs_given[has_hist] - t_prb).mean()),
        "persistence_prb_mae": float(np.abs(prb_p[has_hist] - t_prb).mean()),
        "learned_sched_recall": float((prbs[true_s] > 0).mean()) if true_s.any() else float("nan"),
    }


def _prbs_given_scheduled(bundle, data) -> np.ndarray:
    """The model's PRBs when told who was scheduled (as persistence is): its share head over
    the really scheduled users of each slot."""
    from neuralemu.scheduler_model.runtime import Runtime, allocate
    rt = Runtime(bundle)
    s, n = data.mask.shape
    out = np.zeros((s, n), dtype=np.int64)
    counts = data.mask.sum(axis=1)
    for i in np.flatnonzero((data.sched > 0).any(axis=1)):
        k = int(counts[i])
        sl, sh, ml = rt.forward(data.user_x[i, :k], data.cell_x[i])
        forced = np.where(data.sched[i, :k] > 0, 10.0, -10.0)
        p, _ = allocate(forced, sh, ml, prbs_available=int(data.prbs_available[i]),
                        max_ues=64, mcs_top=int(data.mcs_top[i]))
        out[i, :k] = p
    return out
