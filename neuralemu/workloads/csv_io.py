"""The workload CSV: ``t_us,ue,direction,size_bytes``, one row per packet (DESIGN.md).

Reading validates every row and raises :class:`~neuralemu.errors.InputError`
naming the file, the line and the field of the first bad row. Rows whose times
go backwards are accepted and stably sorted by ``t_us`` (so concatenated
workloads just work); the writer always writes rows sorted by ``t_us``.
Columns are found by the header, in any order; extra columns are ignored.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from neuralemu.errors import InputError
from neuralemu.workloads.packet import DIRECTIONS, MAX_IP_PACKET_BYTES, Packet

COLUMNS = ("t_us", "ue", "direction", "size_bytes")
_INT_LIMITS = {  # field -> (minimum, maximum, what it must be)
    "t_us": (0, 2**62, "a non-negative integer (microseconds)"),
    "ue": (0, 2**31 - 1, "a non-negative integer user id"),
    "size_bytes": (1, MAX_IP_PACKET_BYTES, f"an integer from 1 to {MAX_IP_PACKET_BYTES}"),
}


def _check_value(field: str, raw: str) -> str | None:
    """The problem with one raw cell, or None when it is valid."""
    value = raw.strip()
    if field == "direction":
        return None if value in DIRECTIONS else f"direction must be 'dl' or 'ul', got {raw!r}"
    lo, hi, what = _INT_LIMITS[field]
    try:
        number = int(value)
    except ValueError:
        return f"not an integer: {raw!r}; expected {what}"
    if not lo <= number <= hi:
        return f"out of range: {number}; expected {what}"
    return None


def _first_bad_row(path: str, text_lines: Iterable[str]) -> InputError | None:
    """Scan the file row by row (slow path, only after the fast check failed)."""
    reader = csv.reader(text_lines)
    header = None
    for line_no, row in enumerate(reader, start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip() for c in row]
            continue
        if len(row) != len(header):
            return InputError(path, f"expected {len(header)} fields, got {len(row)}", line=line_no)
        for field in COLUMNS:
            problem = _check_value(field, row[header.index(field)])
            if problem:
                return InputError(path, problem, line=line_no, field=field)
    return None


def read_workload_csv(path: str | Path) -> pd.DataFrame:
    """Read and validate a workload CSV.

    Returns a DataFrame with columns ``t_us`` (int64), ``ue`` (int64),
    ``direction`` (str: ``dl``/``ul``) and ``size_bytes`` (int64), stably
    sorted by ``t_us`` and indexed 0..n-1 (the packet order).
    """
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {exc}") from None
    first = next((ln for ln in text.splitlines() if ln.strip()), None)
    if first is None:
        raise InputError(path, f"empty file; expected a header {','.join(COLUMNS)}", line=1)
    header = [c.strip() for c in next(csv.reader([first]))]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputError(path, f"header lacks column(s) {', '.join(missing)}; "
                               f"expected {','.join(COLUMNS)}", line=1, field=missing[0])
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                          skip_blank_lines=True, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError):
        raw = None
    bad = raw is None or raw.shape[1] != len(header)
    columns: dict[str, np.ndarray] = {}
    if not bad:
        raw.columns = [c.strip() for c in raw.columns]
        for field in ("t_us", "ue", "size_bytes"):
            values = pd.to_numeric(raw[field].str.strip(), errors="coerce")
            lo, hi, _ = _INT_LIMITS[field]
            ok = values.notna() & (values == values.round()) & (values >= lo) & (values <= hi)
            # int("1.0") fails in the slow path; keep the two paths consistent
            ok &= raw[field].str.strip().str.fullmatch(r"[+-]?\d+")
            if not bool(ok.all()):
                bad = True
                break
            columns[field] = raw[field].str.strip().astype(np.int64).to_numpy()
        if not bad:
            direction = raw["direction"].str.strip()
            if not bool(direction.isin(DIRECTIONS).all()):
                bad = True
            columns["direction"] = direction.to_numpy(dtype=object)
    if bad:
        err = _first_bad_row(path, io.StringIO(text))
        if err is None:  # pandas disagreed with the row-wise scan: report it plainly
            err = InputError(path, "malformed CSV")
        raise err
    df = pd.DataFrame({c: columns[c] for c in COLUMNS})
    if len(df) and bool((np.diff(columns["t_us"]) < 0).any()):
        df = df.sort_values("t_us", kind="stable").reset_index(drop=True)
    return df


def iter_packets(df: pd.DataFrame) -> Iterator[Packet]:
    """The rows of a workload DataFrame as :class:`Packet` (``unit`` = -1)."""
    for t_us, ue, direction, size_bytes in zip(df["t_us"].to_numpy(), df["ue"].to_numpy(),
                                               df["direction"].to_numpy(),
                                               df["size_bytes"].to_numpy()):
        yield Packet(int(t_us), int(ue), str(direction), int(size_bytes))


def write_workload_csv(path: str | Path, packets: Iterable[Packet] | pd.DataFrame,
                       *, chunk_rows: int = 65536) -> int:
    """Write packets (a time-ordered iterable, or a DataFrame) as a workload CSV.

    A DataFrame is sorted by ``t_us`` first. An iterable is streamed and must
    already be time-ordered (every generator here is); a ``ValueError`` says so
    otherwise. Returns the number of rows written.
    """
    if isinstance(packets, pd.DataFrame):
        df = packets.sort_values("t_us", kind="stable")
        packets = iter_packets(df)
    n_rows = 0
    last_t_us = -1
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(COLUMNS) + "\n")
        lines: list[str] = []
        for p in packets:
            if p.t_us < last_t_us:
                raise ValueError(f"packets out of time order at row {n_rows + 1}: "
                                 f"{p.t_us} after {last_t_us}")
            last_t_us = p.t_us
            lines.append(f"{p.t_us},{p.ue},{p.direction},{p.size_bytes}\n")
            n_rows += 1
            if len(lines) >= chunk_rows:
                f.write("".join(lines))
                lines.clear()
        f.write("".join(lines))
    return n_rows
