"""``neuralemu eval``: fidelity of the learned cell against truth, next to record-and-replay."""

from __future__ import annotations

import shlex
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="fidelity evaluation: learned vs replay against a truth cell",
        description="Record telemetry from a truth scenario (ues[0] = the phone under test, other "
                    "users = background), train the learned scheduler and reconstruct the "
                    "background from it, record Saturator/Mahimahi traces for the replay "
                    "baseline, run four workloads on truth, learned and replay, and write "
                    "OUT/index.html with plots and the error table (docs/evaluation.md).")
    p.add_argument("--truth-scenario", required=True, help="truth scenario YAML (traces/scenarios/eval-*.yaml)")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true",
                   help="short recordings and runs (minutes instead of tens of minutes)")
    p.add_argument("--background", type=int, default=None,
                   help="keep only the first N background users of the scenario (default: all)")
    p.add_argument("--workloads", default=None,
                   help="comma-separated subset of gaming,webrtc,web,bulk (default: all)")
    p.set_defaults(func=run)


def run(args) -> int:
    from neuralemu.eval.pipeline import EvalConfig, check_config, run_eval
    cfg = EvalConfig.quick(args.seed) if args.quick else EvalConfig(seed=args.seed)
    cfg.learn.seed = args.seed
    if args.workloads:
        cfg.workloads = tuple(w.strip() for w in args.workloads.split(",") if w.strip())
    check_config(cfg)
    command = "neuralemu " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["eval"] else None
    summary = run_eval(args.truth_scenario, args.out, cfg=cfg, background=args.background,
                       command=command)
    print(format_table(summary))
    print(f"report: {args.out}/index.html")
    return 0


def format_table(summary: dict) -> str:
    lines = [f"{'workload':8s} {'learned':>9s} {'replay':>9s} {'ratio':>7s}  verdict"]
    for r in summary["rows"]:
        lines.append(f"{r['workload']:8s} {r['learned_error']:9.4f} {r['replay_error']:9.4f} "
                     f"{r['learned_over_replay']:7.3f}  {'pass' if r['pass'] else 'FAIL'}")
    return "\n".join(lines)
