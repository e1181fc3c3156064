"""Real-data check of background profiles: leave-one-out over each T-Mobile cell's files.

For each cell (t_mobile1_*, t_mobile2_*) and each of its files: fit a profile on
the other files, run the engine with background sampled from it (no replay),
compare with the held-out file (KS distance of active users per slot, PRB
utilisation per slot, burst bytes, inter-burst gaps, MCS). ``ref_*`` columns:
the KS distance between the held-out file and the pooled training files
themselves (how much the real files differ from each other).

Writes ``--out DIR``/recon_real.csv and cdf_<cell>.png; prints key=value figures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NEURALEMU_QUIET", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from neuralemu.telemetry.nrscope import read_nrscope  # noqa: E402
from neuralemu.traffic_recon.real_eval import (KS_BOUND, METRICS, evaluate_cell, plot_cdfs,  # noqa: E402
                                               results_table)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nrscope"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "neuralemu-recon-real"))
    ap.add_argument("--max-duration-s", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = []
    t0 = time.perf_counter()
    for cell in ("t_mobile1", "t_mobile2"):
        logs = {p.stem: read_nrscope(p) for p in sorted(DATA.glob(f"{cell}_*.csv"))}
        res = evaluate_cell(cell, logs, max_duration_s=args.max_duration_s, seed=args.seed)
        plot_cdfs(res, out / f"cdf_{cell}.png")
        tables.append(results_table(res))
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(out / "recon_real.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.to_string(index=False))
    for m in METRICS:
        col = table[f"ks_{m}"]
        print(f"ks_{m}_median={col.median():.4f}")
        print(f"ks_{m}_max={col.max():.4f}")
        print(f"ks_{m}_folds_within_{KS_BOUND}={int((col <= KS_BOUND).sum())}/{len(col)}")
    for m in ("burst_bytes", "burst_gap_s", "mcs", "mcs_all"):
        print(f"ref_real_vs_real_{m}_median={table[f'ref_{m}'].median():.4f}")
    print(f"elapsed_s={time.perf_counter() - t0:.1f}")


if __name__ == "__main__":
    main()
