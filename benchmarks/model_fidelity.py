"""Issue-4 acceptance figures: the learned scheduler vs two reference schedulers (pf, maxcqi).

Synthesises training and held-out telemetry, trains one small model per
reference (cached in --cache), evaluates open loop on an unseen workload and,
for pf, runs the learned policy in closed loop against the true one. Prints
``key=value`` figures and exits 1 when an acceptance target is missed.

    .venv/bin/python benchmarks/model_fidelity.py [--cache DIR] [--refs pf,maxcqi] [--epochs 15]
        [--max-minutes 1.5] [--dagger]

Targets (per reference): median 100 ms throughput error <= 0.10, MCS within +-1
>= 0.90, PRB MAE <= 10% of the carrier, learned error < the mismatched
analytical baseline's; closed loop (pf): every user's throughput and p95 delay
within 15% of the true scheduler's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neuralemu.scheduler_model import fidelity as FI  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "neuralemu-model-fidelity"))
    ap.add_argument("--refs", default="pf,maxcqi")
    ap.add_argument("--epochs", type=int, default=FI.Plan.epochs)
    ap.add_argument("--max-minutes", type=float, default=FI.Plan.max_minutes)
    ap.add_argument("--no-closed-loop", action="store_true")
    ap.add_argument("--dagger", action="store_true",
                    help="one DAgger round: the reference labels the learned policy's own states")
    args = ap.parse_args()
    plan = FI.Plan(epochs=args.epochs, max_minutes=args.max_minutes)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    fails = []
    for ref in args.refs.split(","):
        t0 = time.monotonic()
        model = (FI.train_model_dagger if args.dagger else FI.train_model)(cache, ref, plan)
        print(f"{ref}.train_s={time.monotonic() - t0:.1f}")
        r = FI.open_loop(cache, ref, model, plan)
        for k in ("tput_err_median", "tput_err_p90", "mcs_within1", "mcs_exact", "prb_mae_frac",
                  "sched_f1"):
            print(f"{ref}.learned.{k}={r['learned'][k]:.4f}")
        for name, m in r["baselines"].items():
            print(f"{ref}.baseline.{name}.tput_err_median={m['tput_err_median']:.4f}")
        print(f"{ref}.mismatched={FI.MISMATCHED[ref]}")
        fails += FI.check_open_loop(ref, r)
        if ref == "pf" and not args.no_closed_loop:
            users = FI.closed_loop(ref, model, plan)
            for ue, u in users.items():
                print(f"{ref}.closed.{ue}.tput_mbps={u['tput_true_bps'] / 1e6:.2f}/"
                      f"{u['tput_learned_bps'] / 1e6:.2f} p95_ms={u['p95_true_ms']:.1f}/"
                      f"{u['p95_learned_ms']:.1f}")
            fails += FI.check_closed_loop(ref, users)
    for f in fails:
        print("FAIL", f)
    print(f"pass={int(not fails)}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
