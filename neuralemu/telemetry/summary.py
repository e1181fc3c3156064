"""The figures ``neuralemu inspect`` prints for a per-DCI table (definitions in docs/telemetry.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuralemu.nr import is_reserved_mcs
from neuralemu.telemetry.nrscope import duplicate_dcis
from neuralemu.telemetry.schema import DIRECTIONS, MCS_TABLES


def cell_prbs(df: pd.DataFrame, direction: str) -> int:
    """Cell width guess: the largest ``prb_start + prb_count`` of a valid DCI in ``direction``."""
    d = df[df["valid"] & (df["direction"] == direction)]
    if d.empty:
        return 0
    return int((d["prb_start"] + d["prb_count"]).max())


def prb_utilisation(df: pd.DataFrame, direction: str, prbs: int) -> np.ndarray:
    """Per-slot PRB utilisation over every slot from the table's first to its last slot.

    For each slot: the PRBs of the valid DCIs of ``direction`` (copies of one
    DCI counted once) divided by ``prbs``. Slots with no DCI count as 0.
    """
    if df.empty or prbs <= 0:
        return np.zeros(0)
    first, last = int(df["slot"].iloc[0]), int(df["slot"].iloc[-1])
    d = df[df["valid"] & (df["direction"] == direction) & ~duplicate_dcis(df)]
    used = np.bincount((d["slot"] - first).to_numpy(), weights=d["prb_count"].to_numpy(),
                       minlength=last - first + 1)
    return used / prbs


def dci_summary(df: pd.DataFrame, prbs: int | None = None) -> dict:
    """Duration, DCI rates, PRB utilisation, MCS distribution and retransmission rate."""
    slot_us = int(df.attrs["slot_us"])
    n_slots = int(df["slot"].iloc[-1] - df["slot"].iloc[0] + 1) if len(df) else 0
    duration_s = n_slots * slot_us / 1e6
    valid = df[df["valid"]]
    out: dict = {
        "source": df.attrs.get("source", ""),
        "mu": int(df.attrs["mu"]),
        "slot_us": slot_us,
        "slots": n_slots,
        "duration_s": duration_s,
        "dcis": len(df),
        "valid_dcis": len(valid),
        "duplicate_dcis": int(duplicate_dcis(df).sum()) if len(df) else 0,
        "rntis": int(df["rnti"].nunique()),
        "valid_rntis": int(valid["rnti"].nunique()),
        "dcis_per_s": len(df) / duration_s if duration_s else 0.0,
        "valid_dcis_per_s": len(valid) / duration_s if duration_s else 0.0,
        "directions": {},
    }
    for direction in DIRECTIONS:
        d = valid[valid["direction"] == direction]
        if d.empty:
            continue
        width = int(prbs) if prbs else cell_prbs(df, direction)
        util = prb_utilisation(df, direction, width)
        new = d[~d["is_retx"]]
        reserved = np.zeros(len(new), dtype=bool)
        for t in MCS_TABLES:
            m = (new["mcs_table"] == t).to_numpy()
            if m.any():
                reserved[m] = is_reserved_mcs(new["mcs"].to_numpy()[m], t)
        mcs = new["mcs"].to_numpy()[~reserved]
        out["directions"][direction] = {
            "dcis": len(d),
            "cell_prbs": width,
            "prb_util_mean": float(util.mean()) if util.size else 0.0,
            "prb_util_p95": float(np.percentile(util, 95)) if util.size else 0.0,
            "prb_util_busy_slots": float((util > 0).mean()) if util.size else 0.0,
            "retx_rate": float(d["is_retx"].mean()),
            "mcs_mean": float(mcs.mean()) if mcs.size else float("nan"),
            "mcs_median": float(np.median(mcs)) if mcs.size else float("nan"),
            "mcs_counts": {int(k): int(v) for k, v in
                           zip(*np.unique(mcs, return_counts=True))},
        }
    return out


def format_dci_summary(s: dict) -> str:
    """Human-readable lines for :func:`dci_summary`."""
    lines = [
        f"source:        {s['source']}",
        f"numerology:    mu {s['mu']} ({s['slot_us']} us slots)",
        f"duration:      {s['duration_s']:.3f} s ({s['slots']} slots)",
        f"DCIs:          {s['dcis']} ({s['valid_dcis']} valid, {s['duplicate_dcis']} duplicate copies)",
        f"RNTIs:         {s['rntis']} ({s['valid_rntis']} with valid DCIs)",
        f"DCIs per s:    {s['dcis_per_s']:.1f} ({s['valid_dcis_per_s']:.1f} valid)",
    ]
    for direction, d in s["directions"].items():
        hist = " ".join(f"{k}:{v}" for k, v in d["mcs_counts"].items())
        lines += [
            f"[{direction}] DCIs:        {d['dcis']}",
            f"[{direction}] cell PRBs:   {d['cell_prbs']}",
            f"[{direction}] PRB util:    mean {100 * d['prb_util_mean']:.2f}%  "
            f"p95 {100 * d['prb_util_p95']:.2f}%  (slots with a grant: "
            f"{100 * d['prb_util_busy_slots']:.2f}%)",
            f"[{direction}] retx rate:   {100 * d['retx_rate']:.2f}%",
            f"[{direction}] MCS (new tx): mean {d['mcs_mean']:.2f}  median {d['mcs_median']:.0f}",
            f"[{direction}] MCS counts:  {hist}",
        ]
    if not s["directions"]:
        lines.append("no valid DCIs")
    return "\n".join(lines)
