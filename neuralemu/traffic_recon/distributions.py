"""One-dimensional positive distributions: fit, choose by KS, serialise, sample.

For every quantity the profile stores, :func:`fit_choose` fits the parametric
candidates (log-normal, gamma, Weibull, exponential; location fixed at 0) by
maximum likelihood and measures each one's Kolmogorov-Smirnov distance D to
the data. The best parametric candidate is kept when it is not rejected at
5 % (D <= 1.36 / sqrt(n)); otherwise the empirical quantiles are kept (101
quantiles, log-linear interpolation between them when sampling). The record
says which was chosen, why, and every candidate's D.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from neuralemu.errors import InputError

PARAMETRIC = {
    "lognorm": stats.lognorm,
    "gamma": stats.gamma,
    "weibull_min": stats.weibull_min,
    "expon": stats.expon,
}
N_QUANTILES = 101
KS_ALPHA_COEF = 1.36   # 5 % critical value of the one-sample KS statistic, times sqrt(n)
MAX_FIT_SAMPLES = 5000


def fit_choose(values, *, name: str = "", seed: int = 0) -> dict:
    """Fit ``values`` (> 0) and return a distribution record (see module doc)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x) & (x > 0)]
    n = int(len(x))
    if n == 0:
        return {"kind": "none", "n": 0}
    q = np.quantile(x, np.linspace(0.0, 1.0, N_QUANTILES))
    record = {"kind": "empirical", "n": n, "quantiles": [float(v) for v in q]}
    if n < 8 or float(np.ptp(x)) == 0.0:
        record["chosen_because"] = "too few or identical samples for a parametric fit"
        record["ks"] = {}
        return record
    fit_x = x
    if n > MAX_FIT_SAMPLES:   # MLE on a fixed subsample keeps fitting fast and deterministic
        fit_x = np.random.default_rng(seed).choice(x, MAX_FIT_SAMPLES, replace=False)
    ks: dict[str, float] = {}
    params: dict[str, list[float]] = {}
    for dist_name, dist in PARAMETRIC.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = dist.fit(fit_x, floc=0)
                d = float(stats.kstest(x, dist.cdf, args=p).statistic)
        except (ValueError, RuntimeError, FloatingPointError):
            continue
        if math.isfinite(d) and all(math.isfinite(v) for v in p):
            ks[dist_name] = round(d, 5)
            params[dist_name] = [float(v) for v in p]
    q_d = _empirical_ks(x, q)
    ks["empirical"] = round(q_d, 5)
    critical = KS_ALPHA_COEF / math.sqrt(n)
    record["ks"] = ks
    record["ks_critical"] = round(critical, 5)
    best = min((k for k in ks if k != "empirical"), key=lambda k: ks[k], default=None)
    if best is not None and ks[best] <= critical:
        return {"kind": best, "n": n, "params": params[best], "ks": ks,
                "ks_critical": round(critical, 5), "quantiles": record["quantiles"],
                "chosen_because": f"{best} not rejected by KS at 5% (D={ks[best]:.4f} <= {critical:.4f})"}
    record["chosen_because"] = ("every parametric fit rejected by KS at 5%" if best is not None
                                else "no parametric fit converged")
    return record


def _empirical_ks(x: np.ndarray, q: np.ndarray) -> float:
    """KS distance between the data and the quantile model, exact with ties on either side."""
    u, counts = np.unique(x, return_counts=True)
    fn_right = np.cumsum(counts) / len(x)
    fn_left = fn_right - counts / len(x)
    return float(max(np.max(np.abs(fn_right - quantile_cdf(q, u))),
                     np.max(np.abs(fn_left - quantile_cdf(q, u, left=True)))))


def quantile_cdf(q, x, left: bool = False) -> np.ndarray:
    """CDF of the piecewise-linear quantile function ``q`` (at equally spaced probabilities).

    Right-continuous; ``left=True`` gives the left limit F(x-), which differs where
    ``q`` has a flat run (a value that many samples share).
    """
    qq = np.maximum.accumulate(np.asarray(q, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    n = len(qq)
    if n == 1:
        return (x > qq[0]).astype(float) if left else (x >= qq[0]).astype(float)
    p = np.linspace(0.0, 1.0, n)
    j = np.searchsorted(qq, x, side="left" if left else "right")  # first index with q > x (>= x if left)
    j = np.clip(j, 1, n - 1)
    a, b = qq[j - 1], qq[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(b > a, (x - a) / (b - a), 1.0 if not left else 0.0)
    out = p[j - 1] + np.clip(frac, 0.0, 1.0) * (p[j] - p[j - 1])
    out = np.where(x < qq[0], 0.0, out)
    out = np.where(x > qq[-1], 1.0, out)
    if not left:
        out = np.where(x >= qq[-1], 1.0, out)
    else:
        out = np.where(x <= qq[0], 0.0, out)
    return out


def sample(record: dict, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw ``size`` values from a distribution record (deterministic given ``rng``)."""
    kind = record.get("kind")
    if size <= 0:
        return np.zeros(0)
    if kind == "empirical":
        q = np.asarray(record["quantiles"], dtype=np.float64)
        u = rng.random(size) * (len(q) - 1)
        i = np.minimum(u.astype(np.int64), len(q) - 2) if len(q) > 1 else np.zeros(size, np.int64)
        if len(q) == 1:
            return np.full(size, q[0])
        f = u - i
        lo, hi = q[i], q[i + 1]
        pos = (lo > 0) & (hi > 0)
        lin = lo + f * (hi - lo)
        with np.errstate(divide="ignore", invalid="ignore"):
            logi = np.exp(np.log(np.where(pos, lo, 1)) + f * (np.log(np.where(pos, hi, 1))
                                                              - np.log(np.where(pos, lo, 1))))
        return np.where(lo == hi, lo, np.where(pos, logi, lin))
    if kind in PARAMETRIC:
        u = rng.random(size)
        u = np.clip(u, 1e-9, 1 - 1e-9)
        out = PARAMETRIC[kind].ppf(u, *record["params"])
        # never beyond the largest value seen: a parametric tail must not invent giants
        qs = record.get("quantiles")
        if qs:
            out = np.minimum(out, float(qs[-1]))
        return out
    if kind == "constant":
        return np.full(size, float(record["value"]))
    raise ValueError(f"cannot sample distribution kind {kind!r}")


def validate_record(record, where: str, source: str) -> None:
    """Raise InputError unless ``record`` is a well-formed distribution record."""
    if not isinstance(record, dict) or "kind" not in record:
        raise InputError(source, "expected a distribution object with 'kind'", field=where)
    kind = record["kind"]
    if kind == "none":
        return
    if kind == "constant":
        _num(record.get("value"), f"{where}.value", source, positive=True)
        return
    if kind == "empirical" or kind in PARAMETRIC:
        q = record.get("quantiles")
        if kind == "empirical" or q is not None:
            if not isinstance(q, list) or len(q) < 1:
                raise InputError(source, "quantiles must be a non-empty list", field=f"{where}.quantiles")
            for v in q:
                _num(v, f"{where}.quantiles", source)
            if any(b < a for a, b in zip(q, q[1:])):
                raise InputError(source, "quantiles must not decrease", field=f"{where}.quantiles")
            if q[0] < 0:
                raise InputError(source, "quantiles must be >= 0", field=f"{where}.quantiles")
        if kind in PARAMETRIC:
            p = record.get("params")
            if not isinstance(p, list) or not p:
                raise InputError(source, "params must be a list of numbers", field=f"{where}.params")
            for v in p:
                _num(v, f"{where}.params", source)
        return
    raise InputError(source, f"unknown distribution kind {kind!r}", field=f"{where}.kind")


def _num(v, where: str, source: str, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InputError(source, f"expected a finite number, got {v!r}", field=where)
    if positive and v <= 0:
        raise InputError(source, f"expected a positive number, got {v!r}", field=where)
    return float(v)
