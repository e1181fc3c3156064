"""UE-side logs: per-user buffer and channel reports next to a DCI log (DESIGN.md).

CSV with the header ``t_us,ue,direction,buffer_bytes,cqi`` and optionally
``sinr_db`` (any column order). ``ue`` matches the RNTI of the DCI log.
One row per report; rows are returned sorted by ``t_us`` (stable).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neuralemu.errors import InputError
from neuralemu.telemetry._csv import read_bytes, scan_csv
from neuralemu.telemetry.schema import (CQI_MAX, DIRECTIONS, UE_LOG_COLUMNS, UE_LOG_OPTIONAL,
                                        is_str_column, str_column)

_READ_DTYPES = {"t_us": "int64", "ue": "int64", "direction": "category",
                "buffer_bytes": "int64", "cqi": "int64", "sinr_db": "float64"}


def read_ue_log(path: str | Path) -> pd.DataFrame:
    """Read and validate a UE-side log; InputError (file, line, field) on bad input."""
    source = str(path)
    known = list(UE_LOG_COLUMNS) + list(UE_LOG_OPTIONAL)
    csvf = scan_csv(read_bytes(path), source, check_header=lambda names: _check_header(names, source))
    seen = set(csvf.header)
    cols = [c for c in known if c in seen]
    raw = csvf.read({c: _READ_DTYPES[c] for c in cols}, cols)
    if len(raw) == 0:
        return _empty(cols, source)

    values = [str(v) for v in raw["direction"].cat.categories]
    codes = raw["direction"].cat.codes.to_numpy().astype(np.int64)
    known_dir = np.array([v in DIRECTIONS for v in values] + [False], dtype=bool)
    dir_ok = known_dir[codes]  # code -1 (empty cell) hits the trailing False
    checks = [
        (raw["t_us"].to_numpy() < 0, "t_us", "must be >= 0"),
        (raw["ue"].to_numpy() < 0, "ue", "must be >= 0"),
        (~dir_ok, "direction", "must be 'dl' or 'ul'"),
        (raw["buffer_bytes"].to_numpy() < 0, "buffer_bytes", "must be >= 0"),
        ((raw["cqi"].to_numpy() < 0) | (raw["cqi"].to_numpy() > CQI_MAX), "cqi",
         f"must be 0..{CQI_MAX}"),
    ]
    if "sinr_db" in raw:
        checks.append((np.isinf(raw["sinr_db"].to_numpy()), "sinr_db", "must be finite"))
    for bad, field, message in sorted(checks, key=lambda c: int(np.argmax(c[0])) if c[0].any() else len(raw)):
        if bad.any():
            row = int(np.argmax(bad))
            value = raw[field].iloc[row]
            value = value.item() if isinstance(value, np.generic) else value
            raise InputError(source, f"{message}, got {value!r}",
                             line=csvf.line_of(row), field=field)

    order = np.argsort(raw["t_us"].to_numpy(), kind="stable")
    dir_code = np.array([DIRECTIONS.index(v) if v in DIRECTIONS else 0 for v in values],
                        dtype=np.int64)[codes]
    out = pd.DataFrame({
        "t_us": raw["t_us"].to_numpy()[order],
        "ue": raw["ue"].to_numpy()[order],
        "direction": str_column(DIRECTIONS, dir_code[order]),
        "buffer_bytes": raw["buffer_bytes"].to_numpy()[order],
        "cqi": raw["cqi"].to_numpy()[order],
    })
    if "sinr_db" in raw:
        out["sinr_db"] = raw["sinr_db"].to_numpy()[order]
    out.attrs["source"] = source
    return out


def _check_header(header: list[str], source: str) -> None:
    known = list(UE_LOG_COLUMNS) + list(UE_LOG_OPTIONAL)
    seen: set[str] = set()
    for name in header:
        if name not in known:
            raise InputError(source, f"unknown column in header (expected {','.join(UE_LOG_COLUMNS)}"
                             "[,sinr_db])", line=1, field=name[:40])
        if name in seen:
            raise InputError(source, "column appears twice in header", line=1, field=name)
        seen.add(name)
    for name in UE_LOG_COLUMNS:
        if name not in seen:
            raise InputError(source, "missing column in header", line=1, field=name)


def _empty(cols: list[str], source: str) -> pd.DataFrame:
    dtypes = {**UE_LOG_COLUMNS, **UE_LOG_OPTIONAL}
    out = pd.DataFrame({c: pd.Series([], dtype=dtypes[c]) for c in cols})
    out.attrs["source"] = source
    return out


def validate_ue_log(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check columns, dtypes and values of a UE-side log table; InputError if wrong."""
    for name in UE_LOG_COLUMNS:
        if name not in df.columns:
            raise InputError(source, "missing column", field=name)
    for name in df.columns:
        if name not in UE_LOG_COLUMNS and name not in UE_LOG_OPTIONAL:
            raise InputError(source, "unknown column", field=str(name))
    for name, dtype in {**UE_LOG_COLUMNS, **UE_LOG_OPTIONAL}.items():
        if name not in df.columns:
            continue
        ok = is_str_column(df[name]) if dtype == "str" else df[name].dtype == np.dtype(dtype)
        if not ok:
            raise InputError(source, f"dtype is {df[name].dtype}, expected {dtype}", field=name)
    checks = [
        ("t_us", df["t_us"].to_numpy() < 0),
        ("ue", df["ue"].to_numpy() < 0),
        ("direction", ~df["direction"].isin(DIRECTIONS).to_numpy()),
        ("buffer_bytes", df["buffer_bytes"].to_numpy() < 0),
        ("cqi", (df["cqi"].to_numpy() < 0) | (df["cqi"].to_numpy() > CQI_MAX)),
    ]
    if "sinr_db" in df.columns:
        checks.append(("sinr_db", np.isinf(df["sinr_db"].to_numpy())))
    for name, bad in checks:
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(source, f"row {i}: bad value {df[name].iloc[i]!r}", field=name)
    return df


def write_ue_log(df: pd.DataFrame, path: str | Path) -> None:
    """Write a UE-side log table as CSV (columns in the documented order)."""
    validate_ue_log(df, str(path))
    cols = list(UE_LOG_COLUMNS) + [c for c in UE_LOG_OPTIONAL if c in df.columns]
    try:
        df[cols].to_csv(path, index=False, lineterminator="\n")
    except OSError as exc:
        raise InputError(str(path), f"cannot write: {exc.strerror or exc}") from None
