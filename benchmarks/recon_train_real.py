"""Learned scheduler trained on real NR-Scope logs (reconstructed buffers, MCS-history CQI).

Per T-Mobile cell: train on four files, hold out ``afternoon_2``; report the
held-out MCS-within-1 accuracy and PRB MAE of the learned model and of a
persistence baseline (next MCS = last MCS; PRBs = mean of the user's last 8
grants), on the users that really got a new transmission. Prints key=value.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("NEURALEMU_QUIET", "1")

from neuralemu.scheduler_model.dataset import SlotDataset, infer_cell  # noqa: E402
from neuralemu.scheduler_model.train import TrainConfig, fit  # noqa: E402
from neuralemu.telemetry.nrscope import read_nrscope  # noqa: E402
from neuralemu.traffic_recon import reconstruct  # noqa: E402
from neuralemu.traffic_recon.train_real import held_out_scores, real_dataset, recon_ue_log  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nrscope"
TRAIN = ("morning_2", "morning_3", "afternoon_1", "afternoon_3")
HELD_OUT = "afternoon_2"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-train-s", type=float, default=120.0)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--cells", nargs="*", default=["t_mobile1", "t_mobile2"])
    ap.add_argument("--train-slots", choices=("busy", "observed"), default="busy",
                    help="training slots: busy (data or grant) or observed (a decoded grant only)")
    args = ap.parse_args()
    for cell_name in args.cells:
        t0 = time.perf_counter()
        train_logs = [read_nrscope(DATA / f"{cell_name}_ueactivity_{k}.csv") for k in TRAIN]
        test_log = read_nrscope(DATA / f"{cell_name}_ueactivity_{HELD_OUT}.csv")
        first = train_logs[0]
        cell = infer_cell(first, recon_ue_log(reconstruct(first)))
        cell.max_ues = {d: max(cell.max_ues.get(d, 1), 4) for d in cell.directions}
        parts = [p for p in (real_dataset(d, cell, slots=args.train_slots) for d in train_logs) if p is not None]
        data = SlotDataset.concat(parts)
        test = real_dataset(test_log, cell)
        cfg = TrainConfig(epochs=args.epochs, max_seconds=args.max_train_s, threads=1, patience=3)
        bundle = fit(data, cell, cfg, log=lambda *a, **k: None)
        s = held_out_scores(bundle, test, test_log)
        p = cell_name
        print(f"{p}_train_samples={len(data)}")
        print(f"{p}_test_samples={len(test)}")
        for k, v in s.items():
            print(f"{p}_{k}={v:.4f}" if isinstance(v, float) else f"{p}_{k}={v}")
        print(f"{p}_mcs_within1_gain={s['learned_mcs_within1'] - s['persistence_mcs_within1']:+.4f}")
        print(f"{p}_prb_mae_reduction={s['persistence_prb_mae'] - s['learned_prb_mae']:+.3f}")
        print(f"{p}_prb_mae_reduction_given_scheduled="
              f"{s['persistence_prb_mae'] - s['learned_prb_mae_given_scheduled']:+.3f}")
        print(f"{p}_train_slots={args.train_slots}")
        print(f"{p}_elapsed_s={time.perf_counter() - t0:.1f}", flush=True)


if __name__ == "__main__":
    main()
