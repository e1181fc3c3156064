"""CQI tables (TS 38.214 5.2.2.1, Tables 5.2.2.1-2, -3, -4) and CQI -> MCS mapping.

Each table is data: 16 rows of ``(Qm, R x 1024)``; CQI 0 is "out of range"
(``None``). The CSI-ReportConfig ``cqi-Table`` (38.331) picks the table:

===== =================== ============================
table 38.214              matches MCS table (default)
===== =================== ============================
1     Table 5.2.2.1-2     qam64      (up to 64QAM)
2     Table 5.2.2.1-3     qam256     (up to 256QAM)
3     Table 5.2.2.1-4     qam64lowse (low SE, URLLC)
===== =================== ============================

CQI 0 ("out of range": the UE cannot decode even CQI 1 at 10% BLER) has
spectral efficiency 0 here, and :func:`cqi_to_mcs` maps it to MCS 0 — the most
robust MCS, which is what a gNB does in practice. Use :func:`cqi_out_of_range`
to tell the two cases apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralemu.nr._vec import as_int_array, bad_values, is_scalar, out
from neuralemu.nr.mcs import canonical_mcs_table, table_arrays

CQI_TABLES: dict[int, tuple[tuple[int, int] | None, ...]] = {
    # TS 38.214 Table 5.2.2.1-2 (4-bit CQI Table 1).
    1: (None, (2, 78), (2, 120), (2, 193), (2, 308), (2, 449), (2, 602), (4, 378), (4, 490),
        (4, 616), (6, 466), (6, 567), (6, 666), (6, 772), (6, 873), (6, 948)),
    # TS 38.214 Table 5.2.2.1-3 (4-bit CQI Table 2).
    2: (None, (2, 78), (2, 193), (2, 449), (4, 378), (4, 490), (4, 616), (6, 466), (6, 567),
        (6, 666), (6, 772), (6, 873), (8, 711), (8, 797), (8, 885), (8, 948)),
    # TS 38.214 Table 5.2.2.1-4 (4-bit CQI Table 3).
    3: (None, (2, 30), (2, 50), (2, 78), (2, 120), (2, 193), (2, 308), (2, 449), (2, 602),
        (4, 378), (4, 490), (4, 616), (6, 466), (6, 567), (6, 666), (6, 772)),
}
"""cqi table number -> 16 rows of (Qm, R x 1024); None for CQI 0 (out of range)."""

CQI_TABLE_FOR_MCS_TABLE: dict[str, int] = {"qam64": 1, "qam256": 2, "qam64lowse": 3}
"""The CQI table that goes with each MCS table when none is given."""

MAX_CQI = 15


class CqiTableArrays:
    """One CQI table as read-only numpy arrays indexed by CQI (0..15), built once.

    Attributes (stable): ``qm``, ``r_x1024``, ``code_rate``, ``spectral_efficiency``
    (all 0 for CQI 0, "out of range").
    """

    def __init__(self, rows: tuple[tuple[int, int] | None, ...]) -> None:
        assert len(rows) == MAX_CQI + 1
        self.qm = np.array([0 if r is None else r[0] for r in rows], dtype=np.int64)
        self.r_x1024 = np.array([0 if r is None else r[1] for r in rows], dtype=np.float64)
        self.code_rate = self.r_x1024 / 1024.0
        self.spectral_efficiency = self.qm * self.code_rate
        for arr in (self.qm, self.r_x1024, self.code_rate, self.spectral_efficiency):
            arr.flags.writeable = False


_ARRAYS = {t: CqiTableArrays(rows) for t, rows in CQI_TABLES.items()}


def cqi_table_arrays(cqi_table: Any) -> CqiTableArrays:
    """The precomputed arrays of CQI table 1, 2 or 3; ValueError for another table."""
    try:
        key = int(cqi_table)
    except (TypeError, ValueError):
        key = None
    if key not in _ARRAYS or isinstance(cqi_table, bool):
        raise ValueError(f"unknown CQI table {cqi_table!r}: use 1, 2 or 3 "
                         "(38.214 Tables 5.2.2.1-2/-3/-4)")
    return _ARRAYS[key]


def default_cqi_table(mcs_table: str) -> int:
    """CQI table 1/2/3 for MCS table qam64/qam256/qam64lowse."""
    return CQI_TABLE_FOR_MCS_TABLE[canonical_mcs_table(mcs_table)]


def check_cqi(cqi: Any) -> np.ndarray:
    """``cqi`` as an int64 array in 0..15; ValueError otherwise."""
    arr = as_int_array(cqi, "CQI")
    ok = (arr >= 0) & (arr <= MAX_CQI)
    if not np.all(ok):
        raise ValueError(f"CQI must be 0..15 (38.214 5.2.2.1), got {bad_values(arr, ok)}")
    return arr


def cqi_spectral_efficiency(cqi: Any, cqi_table: int) -> Any:
    """Spectral efficiency Qm * R of a CQI (bit/s/Hz, exact); 0 for CQI 0 (out of range).

    TS 38.214 Tables 5.2.2.1-2 (table 1), -3 (table 2), -4 (table 3).
    """
    tab = cqi_table_arrays(cqi_table)
    arr = check_cqi(cqi)
    return out(tab.spectral_efficiency[arr], is_scalar(cqi))


def cqi_qm(cqi: Any, cqi_table: int) -> Any:
    """Modulation order of a CQI (0 for CQI 0); 38.214 Tables 5.2.2.1-2..4."""
    tab = cqi_table_arrays(cqi_table)
    arr = check_cqi(cqi)
    return out(tab.qm[arr], is_scalar(cqi))


def cqi_code_rate(cqi: Any, cqi_table: int) -> Any:
    """Code rate R x 1024 / 1024 of a CQI (0 for CQI 0); 38.214 Tables 5.2.2.1-2..4."""
    tab = cqi_table_arrays(cqi_table)
    arr = check_cqi(cqi)
    return out(tab.code_rate[arr], is_scalar(cqi))


def cqi_out_of_range(cqi: Any) -> Any:
    """True for CQI 0, "out of range" in every CQI table (38.214 5.2.2.1)."""
    arr = check_cqi(cqi)
    return out(arr == 0, is_scalar(cqi))


def _mapping(mcs_table: str, cqi_table: int) -> np.ndarray:
    key = (mcs_table, int(cqi_table))
    cached = _MAPPINGS.get(key)
    if cached is None:
        mcs_tab = table_arrays(mcs_table)
        cqi_tab = cqi_table_arrays(cqi_table)
        se = np.where(mcs_tab.reserved, np.inf, mcs_tab.spectral_efficiency)
        cached = np.zeros(MAX_CQI + 1, dtype=np.int64)
        for c in range(1, MAX_CQI + 1):
            fits = np.flatnonzero(se <= cqi_tab.spectral_efficiency[c])
            cached[c] = int(fits.max()) if fits.size else 0
        _MAPPINGS[key] = cached
    return cached


_MAPPINGS: dict[tuple[str, int], np.ndarray] = {}


def cqi_to_mcs(cqi: Any, mcs_table: str, cqi_table: int | None = None) -> Any:
    """The highest MCS whose spectral efficiency does not exceed the CQI's.

    This is the usual link-adaptation starting point (no OLLA offset): the CQI
    promises 10% BLER at its own Qm*R (38.214 5.2.2.1), and the MCS is chosen
    from the MCS table of 38.214 5.1.3.1 without going above that efficiency.
    ``cqi_table`` defaults to the table matching ``mcs_table`` (qam64 -> 1,
    qam256 -> 2, qam64lowse -> 3). CQI 0 (out of range) -> MCS 0; see
    :func:`cqi_out_of_range`. Comparisons use exact Qm*R, e.g. qam256 CQI 15
    (8 x 948/1024) -> MCS 27, qam64 CQI 15 -> MCS 28.
    """
    name = canonical_mcs_table(mcs_table)
    table = default_cqi_table(name) if cqi_table is None else cqi_table
    cqi_table_arrays(table)
    arr = check_cqi(cqi)
    return out(_mapping(name, int(table))[arr], is_scalar(cqi))
