"""The DCI table that traffic reconstruction reads, and its checks.

Reconstruction works on the canonical per-DCI table of :mod:`neuralemu.telemetry`
(one row per decoded DCI: ``slot, t_us, rnti, direction, prb_start, prb_count,
symbols, layers, mcs, mcs_table, tbs_bits, n_re, harq_id, ndi, rv, is_retx,
valid``; ``attrs`` carry ``mu`` and ``slot_us``). This module only checks that
table and loads it from a path through the telemetry readers; it never parses
NR-Scope CSVs itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neuralemu.errors import InputError

#: Columns reconstruction needs; the canonical table has more, which are ignored.
REQUIRED_COLUMNS = ("slot", "t_us", "rnti", "direction", "prb_count", "mcs",
                    "tbs_bits", "harq_id", "ndi", "rv", "is_retx", "valid")
DIRECTIONS = ("dl", "ul")


def slot_us_of(dci: pd.DataFrame) -> float:
    """Slot duration in microseconds (38.211 4.3.2: 1000 / 2**mu).

    Taken from ``attrs['slot_us']`` or ``attrs['mu']``; else from the ratio of
    ``t_us`` to ``slot``; else 1000 (15 kHz SCS).
    """
    if "slot_us" in dci.attrs and dci.attrs["slot_us"]:
        return float(dci.attrs["slot_us"])
    if "mu" in dci.attrs and dci.attrs["mu"] is not None:
        return 1000.0 / (2 ** int(dci.attrs["mu"]))
    if len(dci) >= 2:
        ds = float(dci["slot"].max() - dci["slot"].min())
        if ds > 0:
            est = float(dci["t_us"].max() - dci["t_us"].min()) / ds
            for cand in (1000.0, 500.0, 250.0, 125.0, 62.5):
                if abs(est - cand) / cand < 0.05:
                    return cand
    return 1000.0


def check_dci_table(dci: pd.DataFrame, source: str = "dci") -> pd.DataFrame:
    """Validate a canonical DCI table for reconstruction; return it with clean dtypes.

    Raises :class:`InputError` for missing columns, no rows, no valid rows, or
    an unknown direction.
    """
    if not isinstance(dci, pd.DataFrame):
        raise InputError(source, "expected a DCI table")
    missing = [c for c in REQUIRED_COLUMNS if c not in dci.columns]
    if missing:
        raise InputError(source, f"DCI table lacks columns {', '.join(missing)}",
                         field=missing[0])
    if len(dci) == 0:
        raise InputError(source, "the DCI log has no rows")
    bad_dir = ~dci["direction"].isin(DIRECTIONS)
    if bad_dir.any():
        raise InputError(source, f"unknown direction {dci['direction'][bad_dir].iloc[0]!r} "
                         "(expected dl or ul)", field="direction")
    out = dci.copy()
    for col in ("slot", "t_us", "rnti", "prb_count", "mcs", "tbs_bits", "rv"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    for col in ("slot", "t_us", "rnti"):
        if out[col].isna().any():
            raise InputError(source, f"non-numeric or empty {col}", field=col)
    out["harq_id"] = pd.to_numeric(out["harq_id"], errors="coerce").fillna(-1).astype(np.int64)
    out["ndi"] = pd.to_numeric(out["ndi"], errors="coerce").fillna(-1).astype(np.int64)
    out["valid"] = out["valid"].astype(bool)
    out["is_retx"] = out["is_retx"].astype(bool)
    for col in ("slot", "t_us", "rnti", "prb_count", "mcs", "tbs_bits", "rv"):
        out[col] = out[col].fillna(0).astype(np.int64)
    if not out["valid"].any():
        raise InputError(source, f"all {len(out)} DCI rows are invalid decodes "
                         "(no PRBs, TBS 0); nothing to reconstruct")
    out.attrs = dict(dci.attrs)
    out.attrs["slot_us"] = slot_us_of(dci)
    return out


def load_dci(path: str | Path) -> pd.DataFrame:
    """Read a DCI log: an NR-Scope CSV or canonical CSV/Parquet, via :mod:`neuralemu.telemetry`."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "no such file")
    if path.suffix == ".parquet":
        reader = _telemetry_reader("read_dci_parquet", "parquet")
        table = reader(path) if reader else pd.read_parquet(path)
    else:
        table = _read_csv_any(path)
    return check_dci_table(table, str(path))


def _telemetry_reader(name: str, module: str):
    """``neuralemu.telemetry.<name>``, or the same function from its submodule."""
    import importlib
    try:
        pkg = importlib.import_module("neuralemu.telemetry")
        if hasattr(pkg, name):
            return getattr(pkg, name)
        return getattr(importlib.import_module(f"neuralemu.telemetry.{module}"), name, None)
    except ImportError:
        return None


def _read_csv_any(path: Path) -> pd.DataFrame:
    """A CSV is either NR-Scope's own format or the canonical table written as CSV."""
    with open(path, "r", errors="replace") as fh:
        header = fh.readline().strip().split(",")
    if "system_frame_index" in header or "rnti_type" in header:
        reader = _telemetry_reader("read_nrscope", "nrscope")
        if reader is None:
            raise InputError(str(path), "NR-Scope reader not available in neuralemu.telemetry")
        return reader(path)
    canon_reader = _telemetry_reader("read_dci_csv", "canonical")
    if canon_reader is not None:
        return canon_reader(path)
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(str(path), f"cannot parse CSV: {exc}") from None
    if "direction" in table.columns:
        table["direction"] = table["direction"].astype(str).str.lower()
    return table
