"""Per-user channel dynamics as a Markov chain over the MCS index.

Telemetry has no CQI, so the MCS that link adaptation chose (38.214 5.1.3.1,
the log's MCS table) for grants large enough to be channel-limited is the
channel proxy. The chain's step is
``step_ms``: consecutive decoded new transmissions of one user at most
``step_ms`` apart give one transition; a user's first decoded MCS feeds the
initial distribution. Transitions are smoothed (add-``alpha`` on the states
within ``smooth_width`` of the diagonal) so that every row is a distribution.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuralemu.errors import InputError

MAX_MCS = 27       # 38.214 Table 5.1.3.1-2 (256QAM) indices 0..27; 28..31 are reserved
STEP_MS = 10.0
MIN_CHANNEL_GRANT_BYTES = 500.0


def fit_mcs_markov(grants: pd.DataFrame, slot_us: float, *, step_ms: float = STEP_MS,
                   alpha: float = 0.05, smooth_width: int = 2,
                   min_grant_bytes: float = MIN_CHANNEL_GRANT_BYTES,
                   link_limited_only: bool = False) -> dict:
    """Fit the chain from reconstructed grants (decoded new transmissions only).

    Only grants of at least ``min_grant_bytes`` count: real gNBs send small
    payloads (RRC, TCP ACKs) at a robust MCS whatever the channel (in the
    T-Mobile logs, grants under 100 bytes are MCS 0 almost always), so small
    grants say how the scheduler treats small payloads, not what the channel
    allows. The share of small grants is recorded as ``small_grant_share``, and
    the median PRB count of small grants per direction as ``small_payload_prbs``
    (the allocation the gNB gives a payload that fits; :mod:`.policy`). With
    ``link_limited_only`` the chain is fitted on the grants wider than that
    allocation only (when there are >= 50): the gNB sends a payload that fits
    on it at the lowest MCS that carries it, below the link's MCS, and
    :mod:`.policy` applies that rule again on top of the link MCS. Off by
    default: on two real folds it moved the MCS KS from 0.24 to 0.29 and from
    0.19 to 0.13, no clear gain.
    """
    g_all = grants[grants["decoded"] & (grants["mcs"] <= MAX_MCS)]
    small_prbs = {}
    if "prb_count" in g_all:
        for d in ("dl", "ul"):
            sm = g_all[(g_all["direction"] == d) & (g_all["bytes_est"] < min_grant_bytes)
                       & (g_all["prb_count"] > 0)]
            if len(sm):
                small_prbs[d] = int(np.median(sm["prb_count"].to_numpy()))
    g = g_all[g_all["bytes_est"] >= min_grant_bytes]
    n_large = len(g)
    if link_limited_only and small_prbs and "prb_count" in g:
        # a grant on the small-payload allocation may sit below the link's MCS (lowest MCS that
        # fits); a grant on more PRBs is at the link's MCS
        p0 = g["direction"].map(lambda d: small_prbs.get(d, 0)).to_numpy()
        wide = g[g["prb_count"].to_numpy() > p0]
        if len(wide) >= 50:
            g = wide
    if len(g) < 50:          # too few large grants: fall back to all of them
        g = g_all
    g = g.sort_values(["rnti", "direction", "slot"])
    n_states = MAX_MCS + 1
    counts = np.zeros((n_states, n_states))
    init = np.zeros(n_states)
    if len(g):
        key = g["rnti"].to_numpy() * 2 + (g["direction"].to_numpy() == "ul")
        mcs = g["mcs"].to_numpy(np.int64)
        t = g["t_us"].to_numpy(np.float64)
        same = key[1:] == key[:-1]
        close = (t[1:] - t[:-1]) <= step_ms * 1000.0
        sel = same & close
        np.add.at(counts, (mcs[:-1][sel], mcs[1:][sel]), 1.0)
        first = np.ones(len(key), bool)
        first[1:] = ~same
        np.add.at(init, mcs[first], 1.0)
        stationary_counts = np.bincount(mcs, minlength=n_states).astype(float)
    else:
        stationary_counts = np.ones(n_states)
    band = np.abs(np.subtract.outer(np.arange(n_states), np.arange(n_states))) <= smooth_width
    trans = counts + alpha * band
    trans /= trans.sum(axis=1, keepdims=True)
    init = init + alpha
    init /= init.sum()
    stat = stationary_counts + 1e-3
    stat /= stat.sum()
    return {"kind": "mcs_markov", "step_ms": float(step_ms), "n_states": n_states,
            "small_payload_prbs": small_prbs,
            "transitions_counted": int(counts.sum()),
            "min_grant_bytes": float(min_grant_bytes),
            "small_grant_share": round(float(1.0 - n_large / len(g_all)), 6) if len(g_all) else 0.0,
            "initial": [round(float(v), 6) for v in init],
            "marginal": [round(float(v), 6) for v in stat],
            "transition": [[round(float(v), 6) for v in row] for row in trans]}


def validate_mcs_markov(rec, source: str, where: str = "channel") -> None:
    if not isinstance(rec, dict) or rec.get("kind") != "mcs_markov":
        raise InputError(source, "expected an object with kind 'mcs_markov'", field=where)
    n = rec.get("n_states")
    if not isinstance(n, int) or not 1 <= n <= 32:
        raise InputError(source, "n_states must be an integer 1..32", field=f"{where}.n_states")
    step = rec.get("step_ms")
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0:
        raise InputError(source, "step_ms must be a positive number", field=f"{where}.step_ms")
    for name in ("initial", "marginal"):
        v = rec.get(name)
        if not isinstance(v, list) or len(v) != n:
            raise InputError(source, f"{name} must list {n} probabilities", field=f"{where}.{name}")
        _prob_row(v, f"{where}.{name}", source)
    small = rec.get("small_payload_prbs", {})
    if not isinstance(small, dict) or any(
            k not in ("dl", "ul") or isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 275
            for k, v in small.items()):
        raise InputError(source, "small_payload_prbs must map 'dl'/'ul' to PRB counts 1..275",
                         field=f"{where}.small_payload_prbs")
    tr = rec.get("transition")
    if not isinstance(tr, list) or len(tr) != n:
        raise InputError(source, f"transition must be {n} rows", field=f"{where}.transition")
    for i, row in enumerate(tr):
        if not isinstance(row, list) or len(row) != n:
            raise InputError(source, f"transition row {i} must have {n} entries",
                             field=f"{where}.transition")
        _prob_row(row, f"{where}.transition[{i}]", source)


def _prob_row(v, where, source):
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(source, "expected numbers", field=where) from None
    if not np.all(np.isfinite(a)) or (a < 0).any() or abs(a.sum() - 1.0) > 1e-3:
        raise InputError(source, "expected non-negative probabilities summing to 1", field=where)


class McsMarkovChannel:
    """Samples one user's MCS trajectory; deterministic for a numpy Generator."""

    def __init__(self, rec: dict) -> None:
        self.step_us = float(rec["step_ms"]) * 1000.0
        self.init = np.asarray(rec["initial"], dtype=np.float64)
        self.init /= self.init.sum()
        tr = np.asarray(rec["transition"], dtype=np.float64)
        self.cum = np.cumsum(tr / tr.sum(axis=1, keepdims=True), axis=1)
        self.n = len(self.init)

    def trajectory(self, rng: np.random.Generator, n_steps: int) -> np.ndarray:
        """MCS index per step (``step_ms`` apart), ``n_steps`` long."""
        out = np.empty(max(n_steps, 0), dtype=np.int64)
        if n_steps <= 0:
            return out
        u = rng.random(n_steps)
        s = int(np.searchsorted(np.cumsum(self.init), u[0] * 1.0, side="right"))
        s = min(s, self.n - 1)
        out[0] = s
        for i in range(1, n_steps):
            s = int(np.searchsorted(self.cum[s], u[i], side="right"))
            s = min(s, self.n - 1)
            out[i] = s
        return out
