"""The fidelity acceptance matrix: learned vs replay against truth.

For each truth scheduler (eval-pf: proportional fair; eval-maxcqi: max-CQI,
which weights users by channel) and 0 and 8 background users, it runs the
whole evaluation (neuralemu.eval.pipeline) and prints, per workload,
``key=value`` figures: the learned error, the replay error, their ratio and the
verdict of the acceptance rule (learned <= 0.5 x replay; where replay is
already under 5 %, learned under 5 %). It also re-runs one cell with the same
seed and checks that the offline error table is identical.

    .venv/bin/python benchmarks/fidelity.py [--quick] [--seed 1] [--out out/fidelity]

Exit status 1 when any cell fails the acceptance rule or the determinism check.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neuralemu.eval.pipeline import EvalConfig, run_eval  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRUTHS = {"pf": ROOT / "traces/scenarios/eval-pf.yaml",
          "maxcqi": ROOT / "traces/scenarios/eval-maxcqi.yaml"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="out/fidelity")
    ap.add_argument("--truths", default="pf,maxcqi")
    ap.add_argument("--background", default="0,8")
    args = ap.parse_args()
    os.environ.setdefault("NEURALEMU_QUIET", "1")
    ok = True
    first = None
    for name in args.truths.split(","):
        for bg in (int(x) for x in args.background.split(",")):
            cfg = EvalConfig.quick(args.seed) if args.quick else EvalConfig(seed=args.seed)
            out = Path(args.out) / f"{name}-bg{bg}"
            t0 = time.monotonic()
            s = run_eval(TRUTHS[name], out, cfg=cfg, background=bg)
            key = f"{name}_bg{bg}"
            print(f"{key}_seconds={time.monotonic() - t0:.0f}")
            for r in s["rows"]:
                w = r["workload"]
                print(f"{key}_{w}_learned_error={r['learned_error']:.4f}")
                print(f"{key}_{w}_replay_error={r['replay_error']:.4f}")
                print(f"{key}_{w}_learned_over_replay={r['learned_over_replay']:.3f}")
                print(f"{key}_{w}_pass={int(r['pass'])}")
                ok &= bool(r["pass"])
            sys.stdout.flush()
            if first is None:
                first = (name, bg, cfg, out)
    name, bg, cfg, out = first
    again = Path(args.out) / f"{name}-bg{bg}-rerun"
    run_eval(TRUTHS[name], again, cfg=cfg, background=bg)
    same = (out / "errors.csv").read_text() == (again / "errors.csv").read_text()
    print(f"deterministic_same_seed={int(same)}")
    ok &= same
    print(f"acceptance_pass={int(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
