"""Slot-engine speed: simulated seconds per wall-clock second (one core).

Each case runs backlogged users (every user has a full queue of 1500-byte
packets, dl and ul, for the whole run: real packets, segmented and delivered
one by one) under pf, and reports the median over repeats of the wall time
of ``engine.run(n_slots)``. JIT compilation and the attach of the users are
outside the timed region.

Prints key=value lines:
  <case>_realtime_factor=X   simulated s / wall s (median)
  <case>_us_per_slot=Y       wall µs per slot (median)
  <case>_realtime_factor_cpu  the same with process CPU time (robust on a shared, noisy host)
  realtime_factor=X          the 16-user 100 MHz case (the headline figure)

Usage: python benchmarks/engine_speed.py [--quick] [--repeats N] [--sim-s S]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from neuralemu.cell import CellConfig, Engine, UeConfig

CASES = {
    "tdd100_16ue": (dict(numerology=1, bandwidth_mhz=100, duplex="DDDSU", max_ues_per_slot=8), 16),
    "tdd100_64ue": (dict(numerology=1, bandwidth_mhz=100, duplex="DDDSU", max_ues_per_slot=8), 64),
    "fdd20_16ue": (dict(numerology=0, bandwidth_mhz=20, duplex="FDD", max_ues_per_slot=8), 16),
}


def build(cell_kw: dict, n_ues: int, sim_s: float, seed: int = 1) -> Engine:
    cell = CellConfig(**cell_kw, queue_limit_bytes=10**10)
    ues = [UeConfig(ue_id=1000 + i, channel={"model": "stochastic", "distance_m": 50 + 30 * (i % 16),
                                             "speed_mps": 1.0, "fading_std_db": 4.0})
           for i in range(n_ues)]
    eng = Engine(cell, ues, "pf", seed=seed, keep_log=False)
    # enough 1500-byte packets per user and direction to stay backlogged for sim_s
    per_ue_bytes = {"dl": 2.5e9 / 8 * sim_s / n_ues * 1.5 + 3e6,
                    "ul": 0.4e9 / 8 * sim_s / n_ues * 1.5 + 1e6}
    t, ue, d, size = [], [], [], []
    for name, total in per_ue_bytes.items():
        n_pk = int(total // 1500)
        for i in range(n_ues):
            t.append(np.zeros(n_pk, np.int64))
            ue.append(np.full(n_pk, 1000 + i, np.int64))
            d.append(np.full(n_pk, 0 if name == "dl" else 1, np.int64))
            size.append(np.full(n_pk, 1500, np.int64))
    eng.load_arrivals(np.concatenate(t), np.concatenate(ue), np.concatenate(d),
                      np.concatenate(size))
    eng.run(1)   # enqueue the backlog (and compile) outside the timed region
    return eng


def measure(name: str, sim_s: float, repeats: int) -> tuple[float, float, dict]:
    cell_kw, n_ues = CASES[name]
    walls, cpus = [], []
    info = {}
    for r in range(repeats):
        eng = build(cell_kw, n_ues, sim_s, seed=r + 1)
        n_slots = int(sim_s * 1e6 / eng.slot_us)
        t0, c0 = time.perf_counter(), time.process_time()
        eng.run(n_slots)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        st = eng.stats()
        info = {"dl_mbps": sum(v["dl"]["bytes_out"] for v in st.values()) * 8 / sim_s / 1e6,
                "ul_mbps": sum(v["ul"]["bytes_out"] for v in st.values()) * 8 / sim_s / 1e6,
                "backlogged": all(v["dl"]["queue_bytes"] > 0 for v in st.values())}
    wall = statistics.median(walls)
    n_slots = sim_s * 1e6 / eng.slot_us
    info["cpu_factor"] = sim_s / statistics.median(cpus)
    return sim_s / wall, wall / n_slots * 1e6, info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="short runs (CI smoke)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sim-s", type=float, default=2.0)
    args = ap.parse_args()
    sim_s = 0.2 if args.quick else args.sim_s
    repeats = 3 if args.quick else args.repeats
    headline = None
    for name in CASES:
        factor, us, info = measure(name, sim_s, repeats)
        print(f"{name}_realtime_factor={factor:.1f}")
        print(f"{name}_us_per_slot={us:.2f}")
        print(f"{name}_realtime_factor_cpu={info['cpu_factor']:.1f}")
        print(f"{name}_dl_mbps={info['dl_mbps']:.1f}")
        print(f"{name}_ul_mbps={info['ul_mbps']:.1f}")
        print(f"{name}_backlogged={int(info['backlogged'])}")
        if name == "tdd100_16ue":
            headline = factor
    print(f"realtime_factor={headline:.1f}")


if __name__ == "__main__":
    main()
