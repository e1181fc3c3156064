"""``neuralemu train`` and ``neuralemu evaluate-model``: the learned scheduler.

    neuralemu train --dci D --ue-log U [--dci D2 --ue-log U2 ...] --out model.nemu
                    [--epochs N --seed S --val-frac F --patience P --checkpoint-dir DIR]
    torchrun --nproc_per_node 2 -m neuralemu.cli train ...        (gloo DDP)
    neuralemu evaluate-model --model M --dci D --ue-log U [--plot out.png] [--json out.json]

See docs/learned-scheduler.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os

from neuralemu.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="learn a gNB's scheduler from telemetry (DCI log + UE-side log)",
        description="Train the learned scheduler on one or more (DCI log, UE-side log) pairs "
                    "and write a .nemu model bundle. Under torchrun it trains with gloo DDP.")
    p.add_argument("--dci", action="append", required=True,
                   help="DCI log: NR-Scope CSV or canonical Parquet (repeatable)")
    p.add_argument("--ue-log", action="append", required=True,
                   help="UE-side log CSV or Parquet, one per --dci, same order")
    p.add_argument("--out", required=True, help="output model bundle (.nemu)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-frac", type=float, default=0.2,
                   help="last fraction of every recording used for validation (default 0.2)")
    p.add_argument("--patience", type=int, default=5,
                   help="stop after this many epochs without a better validation loss")
    p.add_argument("--checkpoint-dir", default=None, help="write a bundle per epoch here")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop training after this wall time (the best epoch is kept)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--prbs", type=int, default=None,
                   help="carrier width in PRBs (default: the largest allocation seen)")
    p.set_defaults(func=run_train)

    q = subparsers.add_parser(
        "evaluate-model", help="held-out fidelity of a learned scheduler vs analytical baselines",
        description="Replay held-out telemetry slot by slot and compare the learned policy's "
                    "decisions, and those of pf/rr/maxcqi, with what the gNB did.")
    q.add_argument("--model", required=True, help="model bundle (.nemu)")
    q.add_argument("--dci", required=True, help="held-out DCI log (NR-Scope CSV or Parquet)")
    q.add_argument("--ue-log", required=True, help="held-out UE-side log (CSV or Parquet)")
    q.add_argument("--plot", default=None, help="write predicted vs true allocations here (.png)")
    q.add_argument("--json", default=None, help="write all figures as JSON here")
    q.add_argument("--sample-seed", type=int, default=None,
                   help="evaluate the seeded sampling mode instead of the deterministic one")
    q.set_defaults(func=run_evaluate)


def load_dci(path: str):
    """A canonical DCI table from an NR-Scope CSV or a canonical Parquet file."""
    from neuralemu.telemetry import read_dci_parquet, read_nrscope
    from neuralemu.telemetry.detect import detect_format

    fmt = detect_format(path)
    if fmt == "nrscope":
        return read_nrscope(path)
    if fmt == "parquet":
        return read_dci_parquet(path)
    raise InputError(path, f"expected a DCI log (NR-Scope CSV or Parquet), found a {fmt} file")


def load_ue_log(path: str):
    from neuralemu.telemetry import read_ue_log
    from neuralemu.telemetry.detect import detect_format
    from neuralemu.telemetry.parquet import read_table_parquet

    fmt = detect_format(path)
    if fmt == "ue":
        return read_ue_log(path)
    if fmt == "parquet":
        return read_table_parquet(path)
    raise InputError(path, f"expected a UE-side log (t_us,ue,direction,buffer_bytes,cqi), "
                     f"found a {fmt} file")


def _check(name: str, ok: bool, message: str) -> None:
    if not ok:
        raise InputError(name, message)


def run_train(args: argparse.Namespace) -> int:
    from neuralemu.scheduler_model.dataset import SlotDataset, build_dataset, infer_cell
    from neuralemu.scheduler_model.train import TrainConfig, fit

    _check("--ue-log", len(args.dci) == len(args.ue_log),
           f"give one --ue-log per --dci ({len(args.dci)} DCI logs, {len(args.ue_log)} UE logs)")
    _check("--epochs", args.epochs >= 1, "must be >= 1")
    _check("--val-frac", 0.0 <= args.val_frac < 0.9, "must be in [0, 0.9)")
    _check("--patience", args.patience >= 1, "must be >= 1")
    _check("--batch-size", args.batch_size >= 1, "must be >= 1")
    _check("--lr", math.isfinite(args.lr) and args.lr > 0, "must be > 0")
    _check("--d-model", 4 <= args.d_model <= 512 and args.d_model % max(args.heads, 1) == 0,
           "must be 4..512 and a multiple of --heads")
    _check("--layers", 1 <= args.layers <= 8, "must be 1..8")
    _check("--prbs", args.prbs is None or 1 <= args.prbs <= 275, "must be 1..275")
    pairs = [(d, load_dci(d), u, load_ue_log(u)) for d, u in zip(args.dci, args.ue_log)]
    cell = infer_cell(pairs[0][1], pairs[0][3], prbs_total=args.prbs, source=pairs[0][0])
    parts = [build_dataset(dci, ue, cell, source=f"{dp} + {up}") for dp, dci, up, ue in pairs]
    data = parts[0] if len(parts) == 1 else SlotDataset.concat(parts)
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, val_frac=args.val_frac,
                      patience=args.patience, batch_size=args.batch_size, lr=args.lr,
                      d_model=args.d_model, n_heads=args.heads, n_layers=args.layers,
                      d_mlp=2 * args.d_model, threads=args.threads,
                      max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
                      checkpoint_dir=args.checkpoint_dir)
    bundle = fit(data, cell, cfg, sources=[f"{dp} + {up}" for dp, _, up, _ in pairs],
                 out_path=args.out)
    if int(os.environ.get("RANK", "0")) == 0:
        last = bundle.training["history"][bundle.training["epoch"]]
        print(f"{args.out}: {len(data)} slots, {len(bundle.training['history'])} epochs in "
              f"{bundle.training['seconds']:.1f} s, best epoch {bundle.training['epoch']} "
              f"(val loss {last['val_loss']:.4f}), world size {bundle.training['world_size']}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from neuralemu.scheduler_model.bundle import load_bundle
    from neuralemu.scheduler_model.dataset import build_dataset
    from neuralemu.scheduler_model.evaluate import evaluate, plot

    bundle = load_bundle(args.model)
    dci, ue = load_dci(args.dci), load_ue_log(args.ue_log)
    data = build_dataset(dci, ue, bundle.cell, source=f"{args.dci} + {args.ue_log}")
    result = evaluate(bundle, data, seed=args.sample_seed)
    print(format_result(result))
    if args.plot:
        plot(data, result, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        out = {k: v for k, v in result.items() if k != "predictions"}
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


FIGURES = (("sched_f1", "F1 scheduled", "{:.3f}"), ("prb_mae", "PRB MAE", "{:.2f}"),
           ("prb_mae_frac", "PRB MAE / cell", "{:.3f}"), ("mcs_exact", "MCS exact", "{:.3f}"),
           ("mcs_within1", "MCS within 1", "{:.3f}"),
           ("tput_err_median", "tput err med (100 ms)", "{:.3f}"),
           ("tput_err_p90", "tput err p90 (100 ms)", "{:.3f}"))


def format_result(result: dict) -> str:
    cols = [("learned", result["learned"])] + list(result["baselines"].items())
    best = result["best_baseline"]
    header = f"{'':24}" + "".join(f"{name + ('*' if name == best else ''):>12}" for name, _ in cols)
    lines = [f"samples: {result['learned']['samples']} slots, "
             f"{result['learned']['tput_windows']} user-windows of 100 ms", header]
    for key, label, fmt in FIGURES:
        lines.append(f"{label:24}" + "".join(f"{fmt.format(m[key]):>12}" for _, m in cols))
    lines.append(f"(* best analytical baseline by median throughput error: {best})")
    return "\n".join(lines)
