"""Workload generation and closed-loop source figures; prints key=value lines.

- gen_<kind>_pkts_per_s: open-loop generation + CSV writing speed (4 users, 10 s)
- read_pkts_per_s: validated CSV reading speed
- gcc_conv_ratio: GCC mean target / capacity over 22-30 s on a 4 Mbps FIFO
- gcc_halved_ratio: the same over 40-50 s after capacity halved at 30 s
- tcp_util: TCP-like CUBIC delivered throughput / capacity over 3-10 s (20 Mbps)
- gcc_sim_speed_x, tcp_sim_speed_x: simulated seconds per wall second on the FIFO
- engine_*: with the slot engine (5 MHz FDD PF cell): capacity of one backlogged user,
  GCC target / capacity alone (4-10 s) and once a backlogged second user joins at
  10 s (15-20 s; PF gives about half), TCP-like utilisation (2-5 s)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NEURALEMU_QUIET", "1")

from neuralemu.workloads import (OPEN_LOOP_KINDS, Bulk, generate, read_workload_csv,  # noqa: E402
                                 write_workload_csv)
from neuralemu.workloads.fakelink import FakeBottleneck  # noqa: E402
from neuralemu.workloads.gcc import GccParams, GccSender  # noqa: E402
from neuralemu.workloads.tcp import TcpLikeSource  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        biggest = None
        for kind, cls in sorted(OPEN_LOOP_KINDS.items()):
            wl = Bulk(rate_mbps=50) if kind == "bulk" else cls()
            path = Path(tmp) / f"{kind}.csv"
            t0 = time.perf_counter()
            n = write_workload_csv(path, generate(wl, [1, 2, 3, 4], 10.0, 1))
            dt = time.perf_counter() - t0
            print(f"gen_{kind}_pkts={n}")
            print(f"gen_{kind}_pkts_per_s={n / dt:.0f}")
            if biggest is None or n > biggest[1]:
                biggest = (path, n)
        t0 = time.perf_counter()
        df = read_workload_csv(biggest[0])
        print(f"read_pkts_per_s={len(df) / (time.perf_counter() - t0):.0f}")

    link = FakeBottleneck(4e6, queue_limit_bytes=300_000)
    src = GccSender(1, params=GccParams())
    t0 = time.perf_counter()
    link.run(30_000, [src])
    link.set_capacity_bps(2e6)
    link.run(20_000, [src])
    print(f"gcc_sim_speed_x={50 / (time.perf_counter() - t0):.1f}")
    s = src.bitrate_series()
    conv = s[(s.t_us >= 22e6) & (s.t_us < 30e6)].target_bitrate_bps.mean() / 4e6
    halved = s[s.t_us >= 40e6].target_bitrate_bps.mean() / 2e6
    print(f"gcc_conv_ratio={conv:.3f}")
    print(f"gcc_halved_ratio={halved:.3f}")

    link = FakeBottleneck(20e6, queue_limit_bytes=150_000)
    tcp = TcpLikeSource(1)
    t0 = time.perf_counter()
    link.run(10_000, [tcp])
    print(f"tcp_sim_speed_x={10 / (time.perf_counter() - t0):.1f}")
    th = tcp.throughput_series(1000).set_index("t_us").bps
    print(f"tcp_util={th.loc[3e6:9e6].mean() / 20e6:.3f}")

    engine_figures()


def engine_figures() -> None:
    """GCC and TCP-like through the slot engine (5 MHz FDD, one PF cell, fixed SINR 10 dB)."""
    try:
        import numpy as np

        from neuralemu.cell import CellConfig, Engine, UeConfig, make_policy
    except ImportError as exc:  # the engine is another component; report, do not fail
        print(f"engine_skipped={type(exc).__name__}")
        return

    def engine():
        ues = [UeConfig(ue_id=u, directions=["dl", "ul"],
                        channel={"model": "fixed", "sinr_db": 10.0}) for u in (1, 2)]
        return Engine(CellConfig(numerology=0, bandwidth_mhz=5, duplex="FDD"), ues,
                      make_policy("pf"), seed=1)

    def load(eng, packets):
        cols = list(zip(*[p[:4] for p in packets]))
        eng.load_arrivals(*[np.asarray(c) for c in cols])

    eng = engine()
    load(eng, generate(Bulk(rate_mbps=40), [1], 2.0, 1))
    eng.run(2000)
    cap = eng.stats()[1]["dl"]["bytes_out"] * 8 / 2.0
    print(f"engine_capacity_mbps={cap / 1e6:.2f}")

    eng = engine()
    load(eng, [p for p in generate(Bulk(rate_mbps=40), [2], 20.0, 1) if p.t_us >= 10_000_000])
    src = GccSender(1, params=GccParams(start_bitrate_bps=0.6 * cap))
    t0 = time.perf_counter()
    eng.run(20_000, sources=[src])
    print(f"engine_gcc_sim_speed_x={20 / (time.perf_counter() - t0):.1f}")
    s = src.bitrate_series()
    print(f"engine_gcc_alone_ratio="
          f"{s[(s.t_us >= 4e6) & (s.t_us < 10e6)].target_bitrate_bps.mean() / cap:.3f}")
    print(f"engine_gcc_shared_ratio={s[s.t_us >= 15e6].target_bitrate_bps.mean() / cap:.3f}")

    eng = engine()
    tcp = TcpLikeSource(1)
    eng.run(6000, sources=[tcp])
    th = tcp.throughput_series(1000).set_index("t_us").bps
    print(f"engine_tcp_util={th.loc[2e6:5e6].mean() / cap:.3f}")


if __name__ == "__main__":
    main()
