"""The canonical per-DCI table: one row per DCI (one user's grant in one slot).

Every telemetry source (NR-Scope CSV, the reference RAN simulator, an emulated
run) becomes this table, so training, replay and evaluation read one format.
The columns, their dtypes and their meaning are documented in
``docs/telemetry.md``; this module holds them as data and validates tables.

Rows are sorted by ``slot`` (stable: DCIs of one slot keep their file order).
Table-level metadata lives in ``df.attrs`` (and in the Parquet schema
metadata): ``mu`` (numerology, 38.211 Table 4.2-1), ``slot_us`` (slot length,
38.211 4.3.2) and ``source`` (where the table came from).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from neuralemu.errors import InputError
from neuralemu.nr import MCS_TABLE_NAMES, MU_VALUES, slot_duration_us

SCHEMA_VERSION = 1

INT = "int64"
STR = "str"
BOOL = "bool"

DCI_COLUMNS: dict[str, str] = {
    "slot": INT,        # absolute slot index, SFN unwrapped
    "t_us": INT,        # slot start: slot * slot_us
    "rnti": INT,
    "direction": STR,   # "dl" (DCI 1_x) or "ul" (DCI 0_x)
    "prb_start": INT,
    "prb_count": INT,
    "symbols": INT,     # PDSCH/PUSCH symbols (38.214 5.1.2.1 / 6.1.2.1, L)
    "layers": INT,
    "mcs": INT,         # MCS index I_MCS (38.214 5.1.3.1)
    "mcs_table": STR,   # "qam64" / "qam256" / "qam64lowse"
    "tbs_bits": INT,    # transport block size in bits, as logged (38.214 5.1.3.2)
    "n_re": INT,        # N_RE per layer (38.214 5.1.3.2)
    "harq_id": INT,
    "ndi": INT,
    "rv": INT,
    "is_retx": BOOL,
    "valid": BOOL,
}
"""Column name -> dtype, in the canonical order."""

DIRECTIONS: tuple[str, ...] = ("dl", "ul")
MCS_TABLES: tuple[str, ...] = MCS_TABLE_NAMES  # 38.214 Tables 5.1.3.1-1/-2/-3

MAX_PRBS = 275
"""Largest NR carrier in PRBs (38.101-1/-2 Table 5.3.2-1); NR-Scope writes
``frequency_start`` 275 for an empty decode."""

META_KEY = b"neuralemu"
"""Parquet schema-metadata key holding the table's attrs as JSON."""

# Value ranges checked by validate_dci_table: column -> (min, max) inclusive.
DCI_RANGES: dict[str, tuple[int, int]] = {
    "slot": (0, np.iinfo(np.int64).max),
    "t_us": (0, np.iinfo(np.int64).max),
    "rnti": (0, 65535),
    "prb_start": (0, MAX_PRBS),
    "prb_count": (0, MAX_PRBS),
    "symbols": (0, 14),
    "layers": (1, 8),
    "mcs": (0, 31),
    "tbs_bits": (0, np.iinfo(np.int64).max),
    "n_re": (0, np.iinfo(np.int64).max),
    "harq_id": (0, 31),
    "ndi": (0, 1),
    "rv": (0, 3),
}

UE_LOG_COLUMNS: dict[str, str] = {
    "t_us": INT,
    "ue": INT,
    "direction": STR,
    "buffer_bytes": INT,
    "cqi": INT,
}
"""UE-side log columns (DESIGN.md); ``sinr_db`` (float64) is optional."""
UE_LOG_OPTIONAL: dict[str, str] = {"sinr_db": "float64"}
CQI_MAX = 15  # 38.214 Table 5.2.2.1-2..-4: CQI index 0..15


def empty_dci_table(mu: int, source: str = "") -> pd.DataFrame:
    """A canonical table with no rows (for sources that logged nothing)."""
    df = pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in DCI_COLUMNS.items()})
    set_dci_attrs(df, mu, source)
    return df


def set_dci_attrs(df: pd.DataFrame, mu: int, source: str) -> pd.DataFrame:
    df.attrs["mu"] = int(mu)
    df.attrs["slot_us"] = int(slot_duration_us(int(mu)))
    df.attrs["source"] = str(source)
    return df


def str_column(values: tuple[str, ...] | list[str], codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A pandas ``str`` column holding ``values[codes]`` (fast: an Arrow take)."""
    return pd.array(pa.array(list(values), type=pa.large_string()).take(pa.array(codes)), dtype="str")


def is_str_column(series: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return True
    if series.dtype == object:
        return bool(series.map(lambda v: isinstance(v, str)).all())
    return False


def validate_dci_table(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check that ``df`` is a canonical per-DCI table; raise InputError if not.

    Checks the attrs (``mu``, ``slot_us``), the exact column set and dtypes,
    value ranges, allowed strings, ``t_us == slot * slot_us`` and that rows
    are sorted by slot. Returns ``df`` unchanged for chaining.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(source, f"expected a DataFrame, got {type(df).__name__}")
    mu = df.attrs.get("mu")
    if not isinstance(mu, (int, np.integer)) or isinstance(mu, bool) or int(mu) not in MU_VALUES:
        raise InputError(source, f"table metadata 'mu' must be one of {list(MU_VALUES)}, got {mu!r}",
                         field="mu")
    slot_us = int(slot_duration_us(int(mu)))
    if df.attrs.get("slot_us", slot_us) != slot_us:
        raise InputError(source, f"table metadata 'slot_us' is {df.attrs.get('slot_us')!r}, "
                         f"but mu {mu} has {slot_us} us slots", field="slot_us")
    missing = [c for c in DCI_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(source, "missing column", field=missing[0])
    extra = [c for c in df.columns if c not in DCI_COLUMNS]
    if extra:
        raise InputError(source, "unknown column (not in the canonical DCI schema)", field=str(extra[0]))
    for name, dtype in DCI_COLUMNS.items():
        col = df[name]
        if dtype == STR:
            ok = is_str_column(col)
        else:
            ok = col.dtype == np.dtype(dtype)
        if not ok:
            raise InputError(source, f"dtype is {col.dtype}, expected {dtype}", field=name)
    n = len(df)
    if n == 0:
        return df
    for name, (lo, hi) in DCI_RANGES.items():
        values = df[name].to_numpy()
        bad = (values < lo) | (values > hi)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(source, f"row {i}: value {values[i]} outside {lo}..{hi}", field=name)
    for name, allowed in (("direction", DIRECTIONS), ("mcs_table", MCS_TABLES)):
        bad = ~df[name].isin(allowed).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(source, f"row {i}: value {df[name].iloc[i]!r} not one of {list(allowed)}",
                             field=name)
    slot = df["slot"].to_numpy()
    bad = df["t_us"].to_numpy() != slot * slot_us
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(source, f"row {i}: t_us must equal slot * {slot_us}", field="t_us")
    if n > 1 and (np.diff(slot) < 0).any():
        i = int(np.argmax(np.diff(slot) < 0)) + 1
        raise InputError(source, f"row {i}: rows must be sorted by slot", field="slot")
    return df
