"""Per-user traffic class from reconstructed bursts.

Classes (one per user and direction):

* ``signalling``: only a few small grants (RRC/NAS exchanges, keep-alives);
* ``periodic``: bursts at a regular cadence (CBR, voice, video frames): inter-burst
  gaps with a small IQR, or mostly near multiples of their median (jitter and
  merged bursts under load keep them there);
* ``bulk``: served in nearly every 100 ms window over a long span, or one very
  long busy episode (file transfers, backlogged TCP), without a regular cadence;
* ``interactive``: everything else (web, messaging, request/response).

The thresholds are data (:data:`THRESHOLDS`); signalling is decided first, then
periodic, then bulk.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CLASSES = ("bulk", "periodic", "interactive", "signalling")

#: Rule thresholds; tuned on synthetic telemetry with known classes (tests/test_recon_synth.py).
THRESHOLDS = {
    "signalling_max_total_bytes": 4000.0,      # total volume at most this ...
    "signalling_max_grants": 6,                # ... or at most this many grants of small size
    "signalling_max_mean_grant_bytes": 600.0,
    "bulk_min_burst_us": 2_000_000.0,          # one busy episode at least this long
    "bulk_min_active_window_share": 0.9,       # or served in most 100 ms windows ...
    "bulk_min_span_us": 3_000_000.0,           # ... over at least this span
    "periodic_min_bursts": 6,
    "periodic_max_gap_iqr_ratio": 0.35,        # IQR / median of inter-burst gaps, or
    "periodic_min_harmonic_share": 0.75,       # share of gaps near a multiple of the median gap
    "harmonic_tolerance": 0.2,                 # |gap / period - k| <= this counts as "near"
}
ACTIVITY_WINDOW_US = 100_000.0


def user_features(grants: pd.DataFrame, bursts: pd.DataFrame, slot_us: float) -> pd.DataFrame:
    """Per (rnti, direction): volume, burst statistics and cadence regularity."""
    keys = ["rnti", "direction"]
    g = grants.groupby(keys, sort=True)
    feat = pd.DataFrame({
        "total_bytes": g["bytes_est"].sum(),
        "n_grants": g["slot"].size(),
        "mean_grant_bytes": g["bytes_est"].mean(),
        "first_t_us": g["t_us"].min(),
        "last_t_us": g["t_us"].max(),
        "mcs_median": g["mcs"].median(),
    })
    b = bursts.assign(dur_us=bursts["end_t_us"] - bursts["start_t_us"] + slot_us)
    bg = b.groupby(keys, sort=True)
    feat["n_bursts"] = bg.size()
    feat["max_burst_us"] = bg["dur_us"].max()
    feat["busy_us"] = bg["dur_us"].sum()
    feat["mean_burst_bytes"] = bg["size_bytes"].mean()
    b = b.sort_values(keys + ["start_t_us"])
    gap = b.groupby(keys, sort=False)["start_t_us"].diff()
    b = b.assign(gap_us=gap)
    gs = b.dropna(subset=["gap_us"]).groupby(keys, sort=True)["gap_us"]
    q = gs.quantile([0.25, 0.5, 0.75]).unstack()
    if len(q):
        feat["gap_median_us"] = q[0.5]
        feat["gap_iqr_ratio"] = (q[0.75] - q[0.25]) / q[0.5].where(q[0.5] > 0)
    else:
        feat["gap_median_us"] = np.nan
        feat["gap_iqr_ratio"] = np.nan
    feat["span_us"] = feat["last_t_us"] - feat["first_t_us"] + slot_us
    feat["busy_share"] = feat["busy_us"] / feat["span_us"]
    # harmonic share: gaps close to an integer multiple (>= 1) of the median gap; scheduling
    # jitter and merged bursts keep a periodic source's gaps near multiples of its period
    med = b.dropna(subset=["gap_us"]).groupby(keys, sort=True)["gap_us"].transform("median")
    bb = b.dropna(subset=["gap_us"]).assign(med=med)
    ratio = bb["gap_us"] / bb["med"].where(bb["med"] > 0)
    k = np.round(ratio)
    near = (k >= 1) & ((ratio - k).abs() <= THRESHOLDS["harmonic_tolerance"])
    feat["harmonic_share"] = near.groupby([bb["rnti"], bb["direction"]]).mean()
    # activity: share of 100 ms windows within the span that saw a grant
    win = (grants["t_us"] // ACTIVITY_WINDOW_US).astype(np.int64)
    n_win = pd.DataFrame({"rnti": grants["rnti"], "direction": grants["direction"], "w": win}) \
        .drop_duplicates().groupby(keys, sort=True).size()
    span_win = (feat["last_t_us"] // ACTIVITY_WINDOW_US - feat["first_t_us"] // ACTIVITY_WINDOW_US + 1)
    feat["active_window_share"] = n_win / span_win
    return feat


def classify_features(feat: pd.DataFrame, th: dict | None = None) -> pd.Series:
    th = {**THRESHOLDS, **(th or {})}
    cls = np.full(len(feat), "interactive", dtype=object)
    signalling = ((feat["total_bytes"] <= th["signalling_max_total_bytes"])
                  | ((feat["n_grants"] <= th["signalling_max_grants"])
                     & (feat["mean_grant_bytes"] <= th["signalling_max_mean_grant_bytes"])))
    bulk = ((feat["max_burst_us"] >= th["bulk_min_burst_us"])
            | ((feat["active_window_share"] >= th["bulk_min_active_window_share"])
               & (feat["span_us"] >= th["bulk_min_span_us"])))
    periodic = ((feat["n_bursts"] >= th["periodic_min_bursts"])
                & ((feat["gap_iqr_ratio"].fillna(np.inf) <= th["periodic_max_gap_iqr_ratio"])
                   | (feat["harmonic_share"].fillna(0) >= th["periodic_min_harmonic_share"])))
    cls[bulk.to_numpy()] = "bulk"
    cls[periodic.to_numpy()] = "periodic"      # regular cadence wins over "always active"
    cls[signalling.to_numpy()] = "signalling"
    return pd.Series(cls, index=feat.index, name="traffic_class")


def classify_users(grants: pd.DataFrame, bursts: pd.DataFrame, slot_us: float) -> pd.DataFrame:
    feat = user_features(grants, bursts, slot_us)
    feat["traffic_class"] = classify_features(feat)
    return feat.reset_index()
