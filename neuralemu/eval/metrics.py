"""Fidelity metrics: how far an emulated run's figure is from the truth run's.

Every metric is a non-negative relative error (0 = identical), so errors of
different workloads can be put in one table and compared as ratios
(learned error / replay error). Each function takes plain arrays; the
evaluation pipeline (:mod:`neuralemu.eval.pipeline`) extracts them from the
delivery logs and sender logs.

| workload | figure | metric |
|---|---|---|
| cloud gaming | per-packet one-way delay (dl) | Wasserstein-1 distance / truth mean delay |
| WebRTC-like video | encoder target bitrate over time | MAPE on a common time grid |
| web page load | page load time distribution | mean of the median and p95 relative errors |
| TCP-like bulk | mean delivered throughput | relative error |
"""

from __future__ import annotations

import numpy as np


def _finite(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError(f"{name}: no finite samples")
    return a


def wasserstein1(a, b) -> float:
    """Wasserstein-1 (earth mover's) distance between two 1-D samples, in their unit.

    Equal to the area between the two empirical CDFs: the integral over
    q in [0, 1] of |F_a^-1(q) - F_b^-1(q)|, computed exactly on the merged
    support.
    """
    x = np.sort(_finite(a, "a"))
    y = np.sort(_finite(b, "b"))
    support = np.concatenate([x, y])
    support.sort(kind="stable")
    deltas = np.diff(support)
    cdf_x = np.searchsorted(x, support[:-1], side="right") / x.size
    cdf_y = np.searchsorted(y, support[:-1], side="right") / y.size
    return float(np.sum(np.abs(cdf_x - cdf_y) * deltas))


def delay_w1_error(truth_delay, emu_delay) -> float:
    """W1 distance between delay distributions relative to the truth's mean delay."""
    t = _finite(truth_delay, "truth delay")
    mean = float(t.mean())
    if mean <= 0:
        raise ValueError("truth mean delay must be positive")
    return wasserstein1(t, emu_delay) / mean


def relative_error(truth: float, emu: float) -> float:
    """|emu - truth| / |truth|."""
    truth = float(truth)
    if truth == 0 or not np.isfinite(truth):
        raise ValueError(f"relative error needs a finite, non-zero truth, got {truth}")
    return abs(float(emu) - truth) / abs(truth)


def quantile_errors(truth, emu, quantiles=(0.5, 0.95)) -> dict[float, float]:
    """Relative error of each quantile of ``emu`` against the same quantile of ``truth``."""
    t = _finite(truth, "truth")
    e = _finite(emu, "emulated")
    return {q: relative_error(np.quantile(t, q), np.quantile(e, q)) for q in quantiles}


def plt_error(truth_plt, emu_plt) -> tuple[float, dict[float, float]]:
    """Page-load-time error: mean of the median and p95 relative errors, and both parts."""
    parts = quantile_errors(truth_plt, emu_plt, (0.5, 0.95))
    return float(np.mean(list(parts.values()))), parts


def on_grid(t_us, values, grid_us) -> np.ndarray:
    """A step series (value holds until the next sample) read at ``grid_us``; NaN before the first."""
    t = np.asarray(t_us, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    idx = np.searchsorted(t, np.asarray(grid_us, dtype=np.float64), side="right") - 1
    out = np.full(idx.shape, np.nan)
    ok = idx >= 0
    out[ok] = v[idx[ok]]
    return out


def mape(truth, emu) -> float:
    """Mean absolute percentage error (as a fraction) over samples where both are finite and truth > 0."""
    t = np.asarray(truth, dtype=np.float64)
    e = np.asarray(emu, dtype=np.float64)
    if t.shape != e.shape:
        raise ValueError(f"MAPE needs aligned series, got shapes {t.shape} and {e.shape}")
    ok = np.isfinite(t) & np.isfinite(e) & (t > 0)
    if not ok.any():
        raise ValueError("MAPE: no aligned samples with a positive truth")
    return float(np.mean(np.abs(e[ok] - t[ok]) / t[ok]))


def series_mape(truth_t_us, truth_v, emu_t_us, emu_v, *, step_us: float = 100_000.0,
                start_us: float = 0.0, end_us: float | None = None) -> float:
    """MAPE of two step series read on a common grid every ``step_us``."""
    if end_us is None:
        end_us = min(float(np.max(truth_t_us)), float(np.max(emu_t_us)))
    grid = np.arange(float(start_us), float(end_us) + 1, float(step_us))
    return mape(on_grid(truth_t_us, truth_v, grid), on_grid(emu_t_us, emu_v, grid))


def ecdf(x) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values and their empirical CDF (for plots)."""
    a = np.sort(_finite(x, "ecdf"))
    return a, np.arange(1, a.size + 1) / a.size


def error_ratio(learned_error: float, replay_error: float) -> float:
    """Learned error as a fraction of replay error (inf when replay is exact and learned is not)."""
    if replay_error == 0:
        return 0.0 if learned_error == 0 else float("inf")
    return float(learned_error) / float(replay_error)


def passes(learned_error: float, replay_error: float, *, ratio: float = 0.5,
           floor: float = 0.05) -> bool:
    """The acceptance rule: learned <= ratio x replay; when replay is already under ``floor``,
    learned must be under ``floor`` too."""
    if replay_error < floor:
        return learned_error < floor
    return learned_error <= ratio * replay_error
