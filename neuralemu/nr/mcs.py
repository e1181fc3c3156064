"""PDSCH/PUSCH MCS index tables (TS 38.214 5.1.3.1, Tables 5.1.3.1-1, -2, -3).

The three tables are data below, each row ``(Qm, R x 1024)``. Reserved rows
(used only for retransmissions, where the MCS index signals the modulation and
the TBS comes from the first transmission, 38.214 5.1.3.1 / 5.1.3.2) carry their
Qm and ``None`` for the code rate.

Table names follow the RRC ``mcs-Table`` field (38.331 PDSCH-Config):

========== ================== ================== =====================
name       38.214 table       modulation         reserved indices
========== ================== ================== =====================
qam64      Table 5.1.3.1-1    up to 64QAM        29, 30, 31
qam256     Table 5.1.3.1-2    up to 256QAM       28, 29, 30, 31
qam64lowse Table 5.1.3.1-3    64QAM, low SE      29, 30, 31
========== ================== ================== =====================

Aliases accepted everywhere (case-insensitive): ``64qam``, ``256qam`` (as
NR-Scope writes it), ``qam64LowSE`` (as RRC writes it), ``table1``..``table3``.

Float-valued functions return NaN for a reserved index; every function raises
ValueError for an index outside 0..31 or an unknown table name. Scalars in give
Python scalars out; arrays give arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralemu.nr._vec import as_int_array, bad_values, is_scalar, out

MCS_TABLE_NAMES: tuple[str, ...] = ("qam64", "qam256", "qam64lowse")
"""Canonical MCS table names, in the order of 38.214 Tables 5.1.3.1-1, -2, -3."""

N_MCS_INDICES = 32
"""I_MCS is a 5-bit field (38.212 7.3.1.2.2): indices 0..31."""

# (Qm, R x 1024); None = reserved. TS 38.214 Table 5.1.3.1-1 (qam64).
_QAM64: tuple[tuple[int, float | None], ...] = (
    (2, 120), (2, 157), (2, 193), (2, 251), (2, 308), (2, 379), (2, 449), (2, 526),
    (2, 602), (2, 679), (4, 340), (4, 378), (4, 434), (4, 490), (4, 553), (4, 616),
    (4, 658), (6, 438), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666), (6, 719),
    (6, 772), (6, 822), (6, 873), (6, 910), (6, 948),
    (2, None), (4, None), (6, None),
)

# TS 38.214 Table 5.1.3.1-2 (qam256).
_QAM256: tuple[tuple[int, float | None], ...] = (
    (2, 120), (2, 193), (2, 308), (2, 449), (2, 602), (4, 378), (4, 434), (4, 490),
    (4, 553), (4, 616), (4, 658), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666),
    (6, 719), (6, 772), (6, 822), (6, 873), (8, 682.5), (8, 711), (8, 754), (8, 797),
    (8, 841), (8, 885), (8, 916.5), (8, 948),
    (2, None), (4, None), (6, None), (8, None),
)

# TS 38.214 Table 5.1.3.1-3 (qam64lowse).
_QAM64LOWSE: tuple[tuple[int, float | None], ...] = (
    (2, 30), (2, 40), (2, 50), (2, 64), (2, 78), (2, 99), (2, 120), (2, 157),
    (2, 193), (2, 251), (2, 308), (2, 379), (2, 449), (2, 526), (2, 602), (4, 340),
    (4, 378), (4, 434), (4, 490), (4, 553), (4, 616), (6, 438), (6, 466), (6, 517),
    (6, 567), (6, 616), (6, 666), (6, 719), (6, 772),
    (2, None), (4, None), (6, None),
)

MCS_TABLES: dict[str, tuple[tuple[int, float | None], ...]] = {
    "qam64": _QAM64, "qam256": _QAM256, "qam64lowse": _QAM64LOWSE,
}
"""The raw tables: name -> 32 rows of (Qm, R x 1024 or None when reserved)."""

MCS_TABLE_CLAUSES: dict[str, str] = {
    "qam64": "TS 38.214 Table 5.1.3.1-1",
    "qam256": "TS 38.214 Table 5.1.3.1-2",
    "qam64lowse": "TS 38.214 Table 5.1.3.1-3",
}

_ALIASES = {
    "qam64": "qam64", "64qam": "qam64", "table1": "qam64",
    "qam256": "qam256", "256qam": "qam256", "table2": "qam256",
    "qam64lowse": "qam64lowse", "64qamlowse": "qam64lowse", "table3": "qam64lowse",
}


class McsTableArrays:
    """One MCS table as read-only numpy arrays indexed by I_MCS (0..31), built once.

    Attributes (stable, other packages use them): ``qm``, ``reserved`` (bool),
    ``r_x1024`` (NaN if reserved), ``r_x2048`` (int, 0 if reserved),
    ``code_rate`` and ``spectral_efficiency`` (NaN if reserved), ``max_mcs``.
    """

    def __init__(self, rows: tuple[tuple[int, float | None], ...]) -> None:
        assert len(rows) == N_MCS_INDICES
        self.qm = np.array([q for q, _ in rows], dtype=np.int64)
        self.reserved = np.array([r is None for _, r in rows], dtype=bool)
        self.r_x1024 = np.array([np.nan if r is None else r for _, r in rows], dtype=np.float64)
        # 2 * R * 1024 is an integer for every row (R x 1024 is a multiple of 0.5): exact TBS maths.
        self.r_x2048 = np.array([0 if r is None else int(round(2 * r)) for _, r in rows],
                                dtype=np.int64)
        self.code_rate = self.r_x1024 / 1024.0
        self.spectral_efficiency = self.qm * self.code_rate
        self.max_mcs = int(np.flatnonzero(~self.reserved).max())
        for arr in (self.qm, self.reserved, self.r_x1024, self.r_x2048, self.code_rate,
                    self.spectral_efficiency):
            arr.flags.writeable = False


_ARRAYS = {name: McsTableArrays(rows) for name, rows in MCS_TABLES.items()}


def canonical_mcs_table(mcs_table: str) -> str:
    """The canonical name ("qam64", "qam256", "qam64lowse") for a table name or alias."""
    key = str(mcs_table).strip().lower().replace("-", "").replace("_", "")
    name = _ALIASES.get(key)
    if name is None:
        raise ValueError(f"unknown MCS table {mcs_table!r}: use one of {list(MCS_TABLE_NAMES)} "
                         "(38.214 Tables 5.1.3.1-1/-2/-3)")
    return name


def table_arrays(mcs_table: str) -> McsTableArrays:
    """The precomputed numpy arrays of one table (qm, reserved, r_x1024, r_x2048, ...)."""
    return _ARRAYS[canonical_mcs_table(mcs_table)]


def check_mcs(mcs: Any, mcs_table: str) -> tuple[np.ndarray, McsTableArrays]:
    """``mcs`` as an int64 array in 0..31 and the table's arrays; ValueError otherwise."""
    tab = table_arrays(mcs_table)
    arr = as_int_array(mcs, "MCS index")
    ok = (arr >= 0) & (arr < N_MCS_INDICES)
    if not np.all(ok):
        raise ValueError(f"MCS index must be 0..31 (38.214 5.1.3.1), got {bad_values(arr, ok)}")
    return arr, tab


def mcs_qm(mcs: Any, mcs_table: str) -> Any:
    """Modulation order Qm (2 QPSK, 4 16QAM, 6 64QAM, 8 256QAM); 38.214 Tables 5.1.3.1-1..3.

    Defined for reserved indices too: they signal the modulation of a retransmission.
    """
    arr, tab = check_mcs(mcs, mcs_table)
    return out(tab.qm[arr], is_scalar(mcs))


def mcs_code_rate(mcs: Any, mcs_table: str) -> Any:
    """Target code rate R = (R x 1024) / 1024; NaN for reserved indices (38.214 5.1.3.1)."""
    arr, tab = check_mcs(mcs, mcs_table)
    return out(tab.code_rate[arr], is_scalar(mcs))


def mcs_spectral_efficiency(mcs: Any, mcs_table: str) -> Any:
    """Spectral efficiency Qm * R in bit/s/Hz per layer, exact (the spec prints it rounded
    to 4 decimals); NaN for reserved indices (38.214 Tables 5.1.3.1-1..3)."""
    arr, tab = check_mcs(mcs, mcs_table)
    return out(tab.spectral_efficiency[arr], is_scalar(mcs))


def is_reserved_mcs(mcs: Any, mcs_table: str) -> Any:
    """True for the reserved indices (qam64, qam64lowse: 29..31; qam256: 28..31), 38.214 5.1.3.1."""
    arr, tab = check_mcs(mcs, mcs_table)
    return out(tab.reserved[arr], is_scalar(mcs))


def max_mcs(mcs_table: str) -> int:
    """The highest non-reserved MCS index: 28 (qam64, qam64lowse) or 27 (qam256)."""
    return table_arrays(mcs_table).max_mcs
