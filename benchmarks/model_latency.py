"""Per-slot decision latency of the ``learned`` policy on one core.

Runs ``LearnedPolicy.decide`` (features + numpy model + allocation) and
``observe`` for slots of 8, 32 and 64 users, with torch and numpy limited to one
thread, and prints p50 / p99 of ``decide`` in microseconds and as a fraction of
a 30 kHz slot (500 us). Targets: p99 <= 100 us at 32 users, < 500 us at 64.

    .venv/bin/python benchmarks/model_latency.py [--model m.nemu] [--slots 3000]

Without --model it times a freshly initialised model of the default training
size (the same arithmetic as a trained one).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neuralemu.cell.policy import SlotContext, UeFeatures  # noqa: E402
from neuralemu.scheduler_model import features as F  # noqa: E402
from neuralemu.scheduler_model.bundle import Bundle, load_bundle  # noqa: E402
from neuralemu.scheduler_model.dataset import CellConfig  # noqa: E402
from neuralemu.scheduler_model.model import ModelConfig, SchedulerModel  # noqa: E402
from neuralemu.scheduler_model.policy import LearnedPolicy  # noqa: E402
from neuralemu.scheduler_model.train import TrainConfig  # noqa: E402

SLOT_US = 500.0


def default_bundle() -> Bundle:
    tc = TrainConfig()
    cfg = ModelConfig(n_user_features=F.N_USER_FEATURES, n_cell_features=F.N_CELL_FEATURES,
                      d_model=tc.d_model, n_heads=tc.n_heads, n_layers=tc.n_layers, d_mlp=tc.d_mlp,
                      n_mcs=F.N_MCS_CLASSES)
    torch.manual_seed(0)
    model = SchedulerModel(cfg)
    cell = CellConfig(slot_us=SLOT_US, period_slots=20, directions=["dl", "ul"],
                      prbs_total={"dl": 273, "ul": 273}, mcs_table={"dl": "qam256", "ul": "qam256"},
                      layers={"dl": 1, "ul": 1}, max_ues={"dl": 16, "ul": 16},
                      slot_types={d: {str(p): t for p in range(20)} for d, t in (("dl", "D"), ("ul", "U"))},
                      symbols={d: {str(p): 13 for p in range(20)} for d in ("dl", "ul")},
                      re_per_prb={"dl": {"13": 144}, "ul": {"13": 144}})
    return Bundle(model=cfg.to_json(),
                  weights={k: v.detach().numpy().copy() for k, v in model.state_dict().items()},
                  cell=cell, user_mean=np.zeros(F.N_USER_FEATURES, np.float32),
                  user_std=np.ones(F.N_USER_FEATURES, np.float32),
                  cell_mean=np.zeros(F.N_CELL_FEATURES, np.float32),
                  cell_std=np.ones(F.N_CELL_FEATURES, np.float32), training={})


def run(bundle: Bundle, n_users: int, n_slots: int, seed: int = 0,
        numpy_path: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    policy = LearnedPolicy(bundle)
    if numpy_path:                  # the readable path (features, forward_fast, allocate)
        policy._decide_compiled = policy._decide_numpy
    ids = np.arange(1000, 1000 + n_users, dtype=np.int64)
    lat = np.empty(n_slots)
    for s in range(n_slots):
        ctx = SlotContext(slot=s, t_us=int(s * SLOT_US), direction="dl", slot_type="D",
                          prbs_available=273, prbs_total=273, symbols=13, max_ues=16,
                          mcs_table="qam256", max_layers=1)
        ues = UeFeatures(ue_id=ids, buffer_bytes=rng.exponential(20_000, n_users),
                         cqi=rng.integers(1, 16, n_users), sinr_db=rng.normal(15, 5, n_users),
                         la_mcs=rng.integers(0, 28, n_users), avg_tput_bps=np.zeros(n_users),
                         last_mcs=np.full(n_users, -1), last_prbs=np.zeros(n_users, np.int64),
                         slots_since_grant=np.zeros(n_users, np.int64),
                         pending_retx=rng.integers(0, 2, n_users), priority=np.ones(n_users))
        t0 = time.perf_counter_ns()
        alloc = policy.decide(ctx, ues)
        lat[s] = (time.perf_counter_ns() - t0) / 1e3
        policy.observe(ctx, ues, alloc)
    return lat[n_slots // 10:]            # drop warm-up


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help=".nemu bundle (default: fresh model of the default size)")
    ap.add_argument("--slots", type=int, default=3000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    bundle = load_bundle(args.model) if args.model else default_bundle()
    m = bundle.model
    print(f"model=d{m['d_model']}_h{m['n_heads']}_l{m['n_layers']}_mlp{m['d_mlp']}")
    print(f"load_avg_1min={os.getloadavg()[0]:.2f}")
    ok = True
    for n in (8, 32, 64):
        lat = run(bundle, n, args.slots)
        p50, p99 = np.percentile(lat, [50, 99])
        ref50 = np.percentile(run(bundle, n, max(args.slots // 3, 100), numpy_path=True), 50)
        print(f"users={n} numpy_path_p50_us={ref50:.1f} compiled_speedup_p50={ref50 / p50:.2f}")
        print(f"users={n} p50_us={p50:.1f} p99_us={p99:.1f} "
              f"p50_slot_frac={p50 / SLOT_US:.3f} p99_slot_frac={p99 / SLOT_US:.3f}")
        if n == 32:
            print(f"target_p99_32_users_le_100us={'pass' if p99 <= 100 else 'FAIL'}")
            ok &= p99 <= 100
        if n == 64:
            print(f"target_p99_64_users_lt_500us={'pass' if p99 < 500 else 'FAIL'}")
            ok &= p99 < 500
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
