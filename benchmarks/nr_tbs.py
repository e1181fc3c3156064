"""Benchmark of the nr hot paths the slot engine calls every slot.

Prints key=value lines:
  tbs_lookup_us          TbsLookup.tbs_bits, one call (median of 5 runs)
  tbs_scalar_us          tbs_bits (the exact procedure), one scalar call
  tbs_array_ns_per_elem  tbs_bits_array over 100k random allocations, per element
  bler_ns_per_elem       bler over 100k users, per element
  sinr_to_cqi_ns_per_elem
Timings are medians of short runs: the VM is shared and noisy.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from neuralemu.nr import TbsLookup, bler, sinr_to_cqi, tbs_bits, tbs_bits_array


def _median_per_call(fn, n: int, repeats: int = 5) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n)
        runs.append((time.perf_counter() - t0) / n)
    return statistics.median(runs)


def main() -> None:
    rng = np.random.default_rng(0)
    lookup = TbsLookup("qam256", symbols=12, dmrs_re_per_prb=12, max_prbs=273, max_layers=4)
    prbs = rng.integers(1, 274, 1000).tolist()
    mcs = rng.integers(0, 28, 1000).tolist()
    layers = rng.integers(1, 5, 1000).tolist()

    def lookups(n: int) -> None:
        f = lookup.tbs_bits
        for i in range(n):
            j = i % 1000
            f(prbs[j], mcs[j], layers[j])

    def scalars(n: int) -> None:
        for i in range(n):
            j = i % 1000
            tbs_bits(prbs[j] * 132, mcs[j], "qam256", layers[j])

    n_big = 100_000
    re = rng.integers(0, 42901, n_big)
    m = rng.integers(0, 32, n_big)
    v = rng.integers(1, 5, n_big)
    sinr = rng.normal(10, 8, n_big)
    m28 = rng.integers(0, 28, n_big)

    print(f"tbs_lookup_us={_median_per_call(lookups, 100_000) * 1e6:.3f}")
    print(f"tbs_scalar_us={_median_per_call(scalars, 2_000) * 1e6:.1f}")
    print(f"tbs_array_ns_per_elem={_median_per_call(lambda n: tbs_bits_array(re, m, 'qam256', v), 1) / n_big * 1e9:.1f}")
    print(f"bler_ns_per_elem={_median_per_call(lambda n: bler(sinr, m28, 'qam256'), 1) / n_big * 1e9:.1f}")
    print(f"sinr_to_cqi_ns_per_elem={_median_per_call(lambda n: sinr_to_cqi(sinr, 2), 1) / n_big * 1e9:.1f}")


if __name__ == "__main__":
    main()
