"""Helpers for the traffic-reconstruction tests: build canonical DCI tables by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

SLOT_US = 1000
WINDOW_US = 100_000
BURST_GAP_US = 6000


def grants_table(rows, slot_us: int = SLOT_US) -> pd.DataFrame:
    """rows: dicts with rnti, slot, tbs_bits and optional direction/harq_id/ndi/rv/is_retx/valid/mcs/prb_count."""
    out = []
    for r in rows:
        valid = r.get("valid", True)
        out.append({
            "slot": int(r["slot"]), "t_us": int(r["slot"]) * slot_us, "rnti": int(r["rnti"]),
            "direction": r.get("direction", "dl"), "prb_start": 0,
            "prb_count": r.get("prb_count", 10 if valid else 0), "symbols": 12, "layers": 1,
            "mcs": r.get("mcs", 10), "mcs_table": "qam256", "tbs_bits": r.get("tbs_bits", 8000) if valid else 0,
            "n_re": 1000, "harq_id": r.get("harq_id", 0), "ndi": r.get("ndi", 0), "rv": r.get("rv", 0),
            "is_retx": r.get("is_retx", False), "valid": valid,
        })
    df = pd.DataFrame(out).sort_values("slot", kind="stable").reset_index(drop=True)
    df.attrs["slot_us"] = float(slot_us)
    df.attrs["mu"] = int(np.log2(1000 // slot_us))
    return df


def rr_user(rnti: int, slots, tbs_bits=8000, direction="dl", harq0=0, n_harq=16, mcs=10):
    """Grants of one user with round-robin HARQ ids and toggling NDI, as the T-Mobile gNBs do."""
    rows = []
    ndi = {}
    for k, s in enumerate(slots):
        h = (harq0 + k) % n_harq
        ndi[h] = 1 - ndi.get(h, 1)
        tb = tbs_bits[k] if hasattr(tbs_bits, "__len__") else tbs_bits
        rows.append({"rnti": rnti, "slot": s, "tbs_bits": tb, "harq_id": h, "ndi": ndi[h],
                     "direction": direction, "mcs": mcs})
    return rows


def score(wl: pd.DataFrame, dci: pd.DataFrame, truth: dict) -> dict:
    """Reconstruct ``dci`` and compare with the true dl arrivals ``wl`` and classes ``truth`` (issue 5)."""
    from neuralemu.traffic_recon import reconstruct
    rec = reconstruct(dci)
    arr = rec.arrivals()
    arr = arr[arr["direction"] == "dl"]
    true_w = wl.groupby(["ue", wl["t_us"] // WINDOW_US])["size_bytes"].sum()
    rec_w = arr.groupby(["ue", arr["t_us"] // WINDOW_US])["size_bytes"].sum()
    j = pd.concat([true_w.rename("true"), rec_w.rename("rec")], axis=1).fillna(0)
    j = j[j["true"] > 0]
    bytes_err = float(((j["rec"] - j["true"]).abs() / j["true"]).median())

    w = wl.sort_values(["ue", "t_us"])
    starts = np.r_[True, (w["ue"].to_numpy()[1:] != w["ue"].to_numpy()[:-1])
                   | (np.diff(w["t_us"].to_numpy()) > BURST_GAP_US)]
    errs = []
    for ue, g in w[starts].groupby("ue"):
        rb = np.sort(rec.bursts[(rec.bursts["rnti"] == ue) & (rec.bursts["direction"] == "dl")]
                     ["arrival_t_us"].to_numpy())
        if len(rb) == 0:
            continue
        i = np.searchsorted(rb, g["t_us"].to_numpy())
        near = np.stack([rb[np.clip(i - 1, 0, len(rb) - 1)], rb[np.clip(i, 0, len(rb) - 1)]])
        errs.append(np.min(np.abs(near - g["t_us"].to_numpy()), axis=0) / rec.slot_us)
    start_err = float(np.median(np.concatenate(errs)))

    active = set(wl["ue"])           # a user with no traffic in the run has no class to find
    cls = rec.users[rec.users["direction"] == "dl"].set_index("rnti")["traffic_class"]
    hits = [cls.get(u, "none") == c for u, c in truth.items() if u in active]
    return {"bytes_err_median": bytes_err, "burst_start_err_slots_median": start_err,
            "class_accuracy": float(np.mean(hits)), "users": len(hits)}
