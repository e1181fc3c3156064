"""Traffic reconstruction speed: DCI rows per second for reconstruct() on one core.

Input: the real T-Mobile NR-Scope logs from ../shared/data/nrscope, read once
with the telemetry reader and tiled (RNTIs and slots shifted per copy) to about
``--rows`` rows. Only the inversion (grants, bursts, buffer, classes) is timed,
not reading the CSVs. Prints key=value figures; target rows_per_s >= 100000.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from neuralemu.telemetry.nrscope import read_nrscope  # noqa: E402
from neuralemu.traffic_recon import reconstruct  # noqa: E402
from neuralemu.traffic_recon.profile import fit_profile  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nrscope"


def tiled_table(n_rows: int) -> pd.DataFrame:
    base = [read_nrscope(p) for p in sorted(DATA.glob("t_mobile1_*.csv"))]
    parts, rows, k = [], 0, 0
    while rows < n_rows:
        t = base[k % len(base)].copy()
        t["rnti"] = t["rnti"] + 70000 * (k + 1)
        t["slot"] = t["slot"] + 10_000_000 * k
        t["t_us"] = t["slot"] * 1000
        parts.append(t)
        rows += len(t)
        k += 1
    out = pd.concat(parts, ignore_index=True)
    out.attrs = {"mu": 0, "slot_us": 1000}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    table = tiled_table(args.rows)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        rec = reconstruct(table)
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    one = read_nrscope(sorted(DATA.glob("t_mobile1_*morning_1.csv"))[0])
    t0 = time.perf_counter()
    fit_profile([("m1", one)])
    fit_s = time.perf_counter() - t0
    print(f"rows={len(table)}")
    print(f"users={rec.diagnostics['users']}")
    print(f"reconstruct_s_median={med:.3f}")
    print(f"rows_per_s={len(table) / med:.0f}")
    print(f"fit_profile_one_log_s={fit_s:.3f}")
    print(f"target_rows_per_s=100000")
    print(f"meets_target={len(table) / med >= 100_000}")


if __name__ == "__main__":
    main()
