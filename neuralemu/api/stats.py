"""Small statistics helpers for the engine host: fixed-bucket histograms and windows.

Histograms use Prometheus' cumulative-bucket convention so /metrics can print
them directly; quantiles are estimated from a bounded ring of recent samples.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque

import time

import numpy as np

# Bucket upper bounds (seconds) for slot lateness and scheduler decision time.
TIMING_BUCKETS_S = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
                    5e-2, 1e-1)
# Bucket upper bounds (seconds) for per-packet queueing delay.
DELAY_BUCKETS_S = (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1, 2e-1, 5e-1, 1.0, 2.0, 5.0)
# Bucket upper bounds (bytes) for per-UE queue occupancy samples.
QUEUE_BUCKETS_BYTES = (0, 1500, 15_000, 150_000, 1_500_000, 15_000_000)


class Histogram:
    """Cumulative histogram plus a ring of the most recent samples for quantiles."""

    def __init__(self, bounds: tuple[float, ...], ring: int = 20_000) -> None:
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self._bounds_list = [float(b) for b in bounds]
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)   # last = +Inf
        self.sum = 0.0
        self.count = 0
        self.recent: deque[float] = deque(maxlen=ring)
        self._q_cache: tuple[float, tuple, dict] | None = None

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self._bounds_list, value)] += 1
        self.sum += value
        self.count += 1
        self.recent.append(value)

    def observe_many(self, values) -> None:
        arr = np.asarray(values, dtype=np.float64)
        if arr.size == 0:
            return
        idx = np.searchsorted(self.bounds, arr, side="left")
        self.counts += np.bincount(idx, minlength=len(self.counts))
        self.sum += float(arr.sum())
        self.count += int(arr.size)
        self.recent.extend(arr.tolist())

    def quantiles(self, qs=(0.5, 0.99), max_age_s: float = 0.25) -> dict[str, float]:
        """Quantiles of the recent samples, recomputed at most every ``max_age_s``."""
        now = time.monotonic()
        if self._q_cache is not None and self._q_cache[1] == tuple(qs) and now - self._q_cache[0] < max_age_s:
            return self._q_cache[2]
        out = self._quantiles(qs)
        self._q_cache = (now, tuple(qs), out)
        return out

    def _quantiles(self, qs) -> dict[str, float]:
        if not self.recent:
            return {f"p{int(q * 100)}": 0.0 for q in qs} | {"max": 0.0}
        arr = np.fromiter(self.recent, dtype=np.float64)
        out = {f"p{int(q * 100)}": float(np.quantile(arr, q)) for q in qs}
        out["max"] = float(arr.max())
        return out

    def export(self) -> dict:
        """JSON-ready cumulative buckets: {"le": [...], "cumulative": [...], "sum", "count"}."""
        return {"le": [float(b) for b in self.bounds] + ["+Inf"],
                "cumulative": np.cumsum(self.counts).tolist(),
                "sum": self.sum, "count": self.count}
