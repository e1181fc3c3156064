"""Workload generation and closed-loop source figures; prints key=value lines.

- gen_<kind>_pkts_per_s: open-loop generation + CSV writing speed (4 users, 10 s)
- read_pkts_per_s: validated CSV reading speed
- gcc_conv_ratio: GCC mean target / capacity over 22-30 s on a 4 Mbps FIFO
- gcc_halved_ratio: the same over 40-50 s after capacity halved at 30 s
- tcp_util: TCP-like CUBIC delivered throughput / capacity over 3-10 s (20 Mbps)
- gcc_sim_speed_x, tcp_sim_speed_x: simulated seconds per wall second on the FIFO
- engine_*: the same with the slot engine, when it is importable
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


if __name__ == "__main__":
    main()
