"""NR-Scope ingest speed on one core: rows per second of read_nrscope (target >= 200,000).

Reads every shared NR-Scope CSV (../shared/data/nrscope/) and a concatenation
of all 33-column files (one ~16 MB file, ~131k rows, the "large file" case)
with Arrow/BLAS threads set to 1. Rates are rows per second of process CPU
time (one core's throughput; the wall-clock rate on this shared VM mostly
measures other people's load, and is printed as ``*_wall``). Each case is
repeated and the median is reported. Also reports write_nrscope's speed (the
reference simulator writes its dci.csv through it) and the Mahimahi reader's.
Prints ``key=value`` lines.

    .venv/bin/python benchmarks/ingest_speed.py [--repeats 5]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ARROW_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neuralemu.telemetry import read_mahimahi, read_nrscope, write_nrscope  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
TARGET_ROWS_PER_S = 200_000


def _one_thread() -> None:
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def _median_rate(fn, rows: int, repeats: int) -> tuple[float, float]:
    """(rows per CPU second, rows per wall second), medians over ``repeats`` runs.

    The CPU-time rate is what one core achieves; on this shared 2-core VM the
    wall-clock rate mostly measures the other processes' load.
    """
    fn()  # warm-up (imports, page cache)
    cpu, wall = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return rows / statistics.median(cpu), rows / statistics.median(wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    _one_thread()
    files = sorted((SHARED / "nrscope").glob("*.csv"))
    if not files:
        print(f"no NR-Scope files under {SHARED / 'nrscope'}", file=sys.stderr)
        return 1
    # the 33-column files only, so the concatenation has one header (plus the repeats inside)
    plain = [f for f in files if f.read_bytes().split(b"\n", 1)[0].count(b",") == 32]
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "all_nrscope.csv"
        with open(big, "wb") as out:
            for i, f in enumerate(plain):
                data = f.read_bytes()
                out.write(data if i == 0 else data.split(b"\n", 1)[1])
        tables = [read_nrscope(f) for f in files]
        rows_files = sum(len(t) for t in tables)
        big_table = read_nrscope(big)
        rows_big = len(big_table)

        rate_files = _median_rate(lambda: [read_nrscope(f) for f in files], rows_files, args.repeats)
        rate_big = _median_rate(lambda: read_nrscope(big), rows_big, args.repeats)
        written = Path(tmp) / "written.csv"
        rate_write = _median_rate(lambda: write_nrscope(big_table, written), rows_big, args.repeats)

        traces = sorted((SHARED / "mahimahi").iterdir())
        lines = sum(read_mahimahi(t).size for t in traces)
        rate_mm = _median_rate(lambda: [read_mahimahi(t) for t in traces], lines, args.repeats)

    print(f"files={len(files)}")
    print(f"rows={rows_big}")
    print(f"rows_per_s={rate_big[0]:.0f}")
    print(f"rows_per_s_wall={rate_big[1]:.0f}")
    print(f"rows_per_s_per_file={rate_files[0]:.0f}")
    print(f"rows_per_s_per_file_wall={rate_files[1]:.0f}")
    print(f"write_rows_per_s={rate_write[0]:.0f}")
    print(f"mahimahi_lines_per_s={rate_mm[0]:.0f}")
    print(f"target_rows_per_s={TARGET_ROWS_PER_S}")
    print(f"meets_target={int(min(rate_big[0], rate_files[0]) >= TARGET_ROWS_PER_S)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
