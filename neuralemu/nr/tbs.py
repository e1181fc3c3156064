"""Transport block size (TS 38.214 5.1.3.2, PDSCH; 6.1.4.2 applies it to PUSCH).

The procedure, step by step (v = layers, R = code rate, Qm = modulation order):

1. N'_RE = 12 * N_symb - N_DMRS - N_oh (REs per PRB) and
   N_RE = min(156, N'_RE) * n_PRB.                       -> :func:`n_re_per_prb`, :func:`n_re`
2. N_info = N_RE * R * Qm * v (times the scaling S of Table 5.1.3.2-2 for
   P-RNTI / RA-RNTI / MsgB). N_info <= 3824 goes to step 3, else step 4.
3. n = max(3, floor(log2 N_info) - 6); N'_info = max(24, 2^n * floor(N_info / 2^n));
   TBS = the smallest entry of Table 5.1.3.2-1 that is >= N'_info.
4. n = floor(log2(N_info - 24)) - 5;
   N'_info = max(3840, 2^n * round((N_info - 24) / 2^n)) (ties round up);
   R <= 1/4:          C = ceil((N'_info + 24) / 3816),  TBS = 8C * ceil((N'_info + 24) / 8C) - 24
   else N'_info > 8424: C = ceil((N'_info + 24) / 8424),  same formula
   else:               TBS = 8 * ceil((N'_info + 24) / 8) - 24

Everything is computed in exact integer arithmetic: R x 1024 is a multiple of
0.5 in every MCS table, so 2048 * N_info is an integer. The scalar
:func:`tbs_bits`, the vectorised :func:`tbs_bits_array` and the precomputed
:class:`TbsLookup` give identical results.

A reserved MCS index (a retransmission: the TBS is that of the first
transmission, 38.214 5.1.3.2) gives TBS 0, as does ``n_re == 0``.

One transport block maps onto at most 4 layers (38.211 7.3.1.3); for 5..8
layers there are two transport blocks, see :func:`codeword_layers`.
"""

from __future__ import annotations

import bisect
import operator
from typing import Any

import numpy as np

from neuralemu.nr._vec import as_int_array, bad_values, is_scalar, out
from neuralemu.nr.mcs import MCS_TABLE_NAMES, canonical_mcs_table, check_mcs, table_arrays

TBS_TABLE_BITS: tuple[int, ...] = (
    24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 160, 168,
    176, 184, 192, 208, 224, 240, 256, 272, 288, 304, 320, 336, 352, 368, 384, 408, 432,
    456, 480, 504, 528, 552, 576, 608, 640, 672, 704, 736, 768, 808, 848, 888, 928, 984,
    1032, 1064, 1128, 1160, 1192, 1224, 1256, 1288, 1320, 1352, 1416, 1480, 1544, 1608,
    1672, 1736, 1800, 1864, 1928, 2024, 2088, 2152, 2216, 2280, 2408, 2472, 2536, 2600,
    2664, 2728, 2792, 2856, 2976, 3104, 3240, 3368, 3496, 3624, 3752, 3824,
)
"""TS 38.214 Table 5.1.3.2-1: TBS for N_info <= 3824 (93 entries, bits)."""

_TBS_TABLE = np.array(TBS_TABLE_BITS, dtype=np.int64)

MAX_RE_PER_PRB = 156
"""N_RE per PRB is capped at 156 (38.214 5.1.3.2 step 1)."""

SUBCARRIERS_PER_PRB = 12
"""N_sc^RB (38.211 4.4.4.1)."""

MAX_LAYERS_PER_TB = 4
"""One codeword (transport block) maps onto at most 4 layers (38.211 Table 7.3.1.3-1)."""

N_INFO_TABLE_MAX = 3824
"""Step 3 (the table) applies up to this N_info, step 4 (the formula) above it."""

TB_SCALING: dict[int, tuple[int, int]] = {0: (1, 1), 1: (1, 2), 2: (1, 4)}
"""TS 38.214 Table 5.1.3.2-2: TB scaling field -> S as a fraction (1, 0.5, 0.25)."""

# 2048 * N_info is an integer; these are the constants of the procedure in those units.
_SCALE = 2048


DMRS_RE_PER_CDM_GROUP = {1: 6, 2: 4}
"""REs of one DM-RS CDM group per PRB per DM-RS symbol: 6 for type 1, 4 for type 2
(38.211 7.4.1.1.2 Tables 7.4.1.1.2-1/-2)."""


def dmrs_re_per_prb(dmrs_symbols: Any = 1, cdm_groups_without_data: Any = 2,
                    dmrs_type: int = 1) -> Any:
    """N_DMRS^PRB: DM-RS REs per PRB, counting the CDM groups without data (38.214 5.1.3.2).

    ``dmrs_symbols`` is the number of DM-RS symbols in the allocation (front-loaded
    plus dmrs-AdditionalPosition, 38.211 7.4.1.1.2), ``cdm_groups_without_data``
    comes from the antenna-port table of the DCI (38.212 7.3.1.2.2). NR-Scope's
    ``nof_dmrs_cdm_groups`` with 2 DM-RS symbols reproduces its ``nof_re``.
    """
    if dmrs_type not in DMRS_RE_PER_CDM_GROUP:
        raise ValueError(f"DM-RS type must be 1 or 2 (38.211 7.4.1.1), got {dmrs_type!r}")
    sym = as_int_array(dmrs_symbols, "DM-RS symbols")
    cdm = as_int_array(cdm_groups_without_data, "CDM groups without data")
    max_cdm = 2 if dmrs_type == 1 else 3
    if np.any((sym < 1) | (sym > 4)):
        raise ValueError(f"DM-RS symbols must be 1..4, got {bad_values(sym, (sym >= 1) & (sym <= 4))}")
    if np.any((cdm < 1) | (cdm > max_cdm)):
        raise ValueError(f"CDM groups without data must be 1..{max_cdm} for DM-RS type "
                         f"{dmrs_type}, got {bad_values(cdm, (cdm >= 1) & (cdm <= max_cdm))}")
    result = sym * cdm * DMRS_RE_PER_CDM_GROUP[dmrs_type]
    return out(result, is_scalar(dmrs_symbols) and is_scalar(cdm_groups_without_data))


def n_re_per_prb(symbols: Any, dmrs_re_per_prb: Any = 12, overhead_re_per_prb: Any = 0) -> Any:
    """N'_RE = 12 * N_symb^sh - N_DMRS^PRB - N_oh^PRB, REs per PRB (38.214 5.1.3.2 step 1).

    ``symbols`` is the PDSCH/PUSCH length in OFDM symbols (1..14),
    ``dmrs_re_per_prb`` the DM-RS REs per PRB including CDM groups without data
    (12 = one DM-RS symbol with 2 CDM groups), ``overhead_re_per_prb`` the
    xOverhead of PDSCH-ServingCellConfig (0, 6, 12 or 18).
    """
    sym = as_int_array(symbols, "symbols")
    dmrs = as_int_array(dmrs_re_per_prb, "DM-RS REs per PRB")
    oh = as_int_array(overhead_re_per_prb, "overhead REs per PRB")
    ok = (sym >= 1) & (sym <= 14)
    if not np.all(ok):
        raise ValueError(f"symbols must be 1..14 (38.214 5.1.2.1), got {bad_values(sym, ok)}")
    if np.any(dmrs < 0) or np.any(oh < 0):
        raise ValueError("DM-RS and overhead REs per PRB must be >= 0")
    result = SUBCARRIERS_PER_PRB * sym - dmrs - oh
    if np.any(result < 0):
        raise ValueError("DM-RS plus overhead REs exceed the REs of the allocation "
                         f"(12 * symbols - dmrs - overhead < 0 for symbols={bad_values(sym, result < 0)})")
    return out(result, is_scalar(symbols) and is_scalar(dmrs_re_per_prb)
               and is_scalar(overhead_re_per_prb))


def n_re(prb_count: Any, symbols: Any, dmrs_re_per_prb: Any = 12,
         overhead_re_per_prb: Any = 0) -> Any:
    """N_RE = min(156, N'_RE) * n_PRB, REs of one layer (38.214 5.1.3.2 step 1)."""
    per_prb = np.asarray(n_re_per_prb(symbols, dmrs_re_per_prb, overhead_re_per_prb))
    prbs = as_int_array(prb_count, "PRB count")
    if np.any(prbs < 0):
        raise ValueError(f"PRB count must be >= 0, got {bad_values(prbs, prbs >= 0)}")
    result = np.minimum(MAX_RE_PER_PRB, per_prb) * prbs
    scalar = all(is_scalar(x) for x in (prb_count, symbols, dmrs_re_per_prb, overhead_re_per_prb))
    return out(result, scalar)


def codeword_layers(layers: int) -> tuple[int, ...]:
    """Layers of each transport block for a total layer count 1..8 (38.211 Table 7.3.1.3-1).

    1..4 layers: one codeword; 5 -> (2, 3), 6 -> (3, 3), 7 -> (3, 4), 8 -> (4, 4).
    """
    v = int(layers)
    if not 1 <= v <= 8:
        raise ValueError(f"layers must be 1..8 (38.211 Table 7.3.1.3-1), got {layers!r}")
    if v <= MAX_LAYERS_PER_TB:
        return (v,)
    return (v // 2, v - v // 2)


def _check_layers(layers: Any) -> np.ndarray:
    arr = as_int_array(layers, "layers")
    ok = (arr >= 1) & (arr <= MAX_LAYERS_PER_TB)
    if not np.all(ok):
        raise ValueError(f"layers per transport block must be 1..4 (38.211 7.3.1.3; for 5..8 "
                         f"layers use codeword_layers() and one TBS per codeword), "
                         f"got {bad_values(arr, ok)}")
    return arr


def _check_scaling(tb_scaling: Any) -> tuple[int, int]:
    if tb_scaling not in TB_SCALING:
        raise ValueError(f"TB scaling field must be 0, 1 or 2 (38.214 Table 5.1.3.2-2), "
                         f"got {tb_scaling!r}")
    return TB_SCALING[tb_scaling]


def _tbs_from_info_x2048(info: np.ndarray, low_rate: np.ndarray) -> np.ndarray:
    """Steps 3 and 4 on int64 arrays: ``info`` = 2048 * N_info (> 0), ``low_rate`` = R <= 1/4."""
    tbs = np.zeros(info.shape, dtype=np.int64)
    small = info <= N_INFO_TABLE_MAX * _SCALE
    if np.any(small):
        x = info[small]
        # floor(log2(N_info)) = floor(log2(x)) - 11 exactly, for integer x.
        n = np.maximum(3, _floor_log2(x) - 11 - 6)
        step = _SCALE << n
        n_info_q = np.maximum(24, (x // step) << n)
        tbs[small] = _TBS_TABLE[np.searchsorted(_TBS_TABLE, n_info_q, side="left")]
    big = ~small
    if np.any(big):
        y = info[big] - 24 * _SCALE                   # 2048 * (N_info - 24), > 0
        n = _floor_log2(y) - 11 - 5
        step = _SCALE << n
        n_info_q = np.maximum(3840, ((y + step // 2) // step) << n)   # round half up
        plus = n_info_q + 24
        c = np.where(low_rate[big], -(-plus // 3816),
                     np.where(n_info_q > 8424, -(-plus // 8424), 1))
        tbs[big] = 8 * c * (-(-plus // (8 * c))) - 24
    return tbs


def _floor_log2(x: np.ndarray) -> np.ndarray:
    """floor(log2(x)) for positive int64 values, exact."""
    # frexp is exact for integers below 2**53; x here is at most ~1e11.
    _, exp = np.frexp(x.astype(np.float64))
    return exp.astype(np.int64) - 1


def tbs_bits_array(n_re: Any, mcs: Any, mcs_table: str, layers: Any = 1,
                   tb_scaling: int = 0) -> np.ndarray:
    """Vectorised TBS in bits (38.214 5.1.3.2); arguments broadcast together.

    ``n_re`` is N_RE of ONE layer (see :func:`n_re`). Returns an int64 array;
    0 where the MCS is reserved or ``n_re`` is 0. ``tb_scaling`` is the DCI 1_0
    TB scaling field (Table 5.1.3.2-2; 0 = no scaling).
    """
    num, den = _check_scaling(tb_scaling)
    re = as_int_array(n_re, "n_re")
    if np.any(re < 0):
        raise ValueError(f"n_re must be >= 0, got {bad_values(re, re >= 0)}")
    m, tab = check_mcs(mcs, mcs_table)
    v = _check_layers(layers)
    re, m, v = np.broadcast_arrays(re, m, v)
    r2 = tab.r_x2048[m]
    info = re * r2 * tab.qm[m] * v                    # 2048 * N_info
    if den != 1:
        # S = 1/2 or 1/4 keeps 2048 * N_info integral: r2 * Qm is a multiple of 4 in every
        # row (r2 even and Qm even, or r2 odd (682.5, 916.5) and Qm = 8).
        info = info * num // den
    valid = (info > 0) & ~tab.reserved[m]
    result = np.zeros(info.shape, dtype=np.int64)
    if np.any(valid):
        result[valid] = _tbs_from_info_x2048(info[valid], r2[valid] <= 512)
    return result


def tbs_bits(n_re: int, mcs: int, mcs_table: str, layers: int = 1, tb_scaling: int = 0) -> int:
    """TBS in bits for one transport block (TS 38.214 5.1.3.2), exact.

    ``n_re``: N_RE of one layer, min(156, N'_RE) * n_PRB (:func:`n_re`);
    ``mcs``: I_MCS in ``mcs_table`` ("qam64", "qam256", "qam64lowse", 38.214
    5.1.3.1); ``layers``: v, 1..4. Returns 0 for a reserved MCS (a
    retransmission) or ``n_re == 0``. Array arguments are accepted and give
    :func:`tbs_bits_array`'s result. Integer scalars take a pure-Python path
    (a few microseconds) that gives the same result as the vectorised one.
    """
    try:
        re, m, v = operator.index(n_re), operator.index(mcs), operator.index(layers)
    except TypeError:
        result = tbs_bits_array(n_re, mcs, mcs_table, layers, tb_scaling)
        return int(result) if all(is_scalar(x) for x in (n_re, mcs, layers)) else result
    num, den = _check_scaling(tb_scaling)
    rows = _SCALAR_ROWS.get(mcs_table)
    if rows is None:
        rows = _SCALAR_ROWS[canonical_mcs_table(mcs_table)]
    if re < 0:
        raise ValueError(f"n_re must be >= 0, got {re}")
    if not 0 <= m < 32:
        raise ValueError(f"MCS index must be 0..31 (38.214 5.1.3.1), got {m}")
    if not 1 <= v <= MAX_LAYERS_PER_TB:
        _check_layers(v)
    qm, r2 = rows[m]
    if r2 == 0 or re == 0:                            # reserved MCS, or nothing allocated
        return 0
    info = re * r2 * qm * v * num // den              # 2048 * N_info, exact
    if info <= N_INFO_TABLE_MAX * _SCALE:             # step 3
        n = max(3, info.bit_length() - 1 - 11 - 6)
        n_info_q = max(24, (info // (_SCALE << n)) << n)
        return TBS_TABLE_BITS[bisect.bisect_left(TBS_TABLE_BITS, n_info_q)]
    y = info - 24 * _SCALE                            # step 4
    n = y.bit_length() - 1 - 11 - 5
    step = _SCALE << n
    n_info_q = max(3840, ((y + step // 2) // step) << n)
    plus = n_info_q + 24
    if r2 <= 512:                                     # R <= 1/4
        c = -(-plus // 3816)
    elif n_info_q > 8424:
        c = -(-plus // 8424)
    else:
        c = 1
    return 8 * c * (-(-plus // (8 * c))) - 24


# Per table, per MCS index: (Qm, 2048 * R) as Python ints; 2048 * R = 0 when reserved.
_SCALAR_ROWS: dict[str, list[tuple[int, int]]] = {
    name: [(int(q), int(r)) for q, r in zip(table_arrays(name).qm, table_arrays(name).r_x2048)]
    for name in MCS_TABLE_NAMES
}


class TbsLookup:
    """O(1) TBS for the slot engine: a table precomputed over (layers, MCS, PRBs).

    One instance covers one allocation shape (symbols, DM-RS and overhead REs
    per PRB) and one MCS table; build one per shape the engine uses (for
    example one for full slots and one for TDD special slots).
    ``tbs_bits(prb_count, mcs, layers)`` is a nested-list index (well under
    1 us in CPython) and returns exactly what :func:`tbs_bits` returns. Reserved
    MCS indices give 0.
    """

    def __init__(self, mcs_table: str, symbols: int, dmrs_re_per_prb: int = 12,
                 overhead_re_per_prb: int = 0, max_prbs: int = 275, max_layers: int = 4) -> None:
        if not 1 <= int(max_layers) <= MAX_LAYERS_PER_TB:
            raise ValueError(f"max_layers must be 1..4 per transport block, got {max_layers!r}")
        if int(max_prbs) < 0:
            raise ValueError(f"max_prbs must be >= 0, got {max_prbs!r}")
        self.mcs_table = canonical_mcs_table(mcs_table)
        self.symbols = int(symbols)
        self.dmrs_re_per_prb = int(dmrs_re_per_prb)
        self.overhead_re_per_prb = int(overhead_re_per_prb)
        self.max_prbs = int(max_prbs)
        self.max_layers = int(max_layers)
        self.re_per_prb = min(MAX_RE_PER_PRB, int(n_re_per_prb(symbols, dmrs_re_per_prb,
                                                               overhead_re_per_prb)))
        layers = np.arange(1, self.max_layers + 1)[:, None, None]
        mcs = np.arange(32)[None, :, None]
        prbs = np.arange(self.max_prbs + 1)[None, None, :]
        # table[layers - 1, mcs, prbs]; index 0 of the layer axis is 1 layer.
        self.table = tbs_bits_array(prbs * self.re_per_prb, mcs, mcs_table, layers)
        self.table.flags.writeable = False
        # Lists of lists of ints: the fastest O(1) indexing from Python; a dummy row
        # at layer index 0 lets callers index by the layer count directly.
        self._rows = [None] + [[row.tolist() for row in self.table[v]]
                               for v in range(self.max_layers)]

    def tbs_bits(self, prb_count: int, mcs: int, layers: int = 1) -> int:
        """TBS in bits. ValueError for negative arguments, IndexError above the table."""
        if layers < 1 or prb_count < 0 or mcs < 0:
            raise ValueError(f"bad TBS lookup (prb_count={prb_count}, mcs={mcs}, layers={layers})")
        return self._rows[layers][mcs][prb_count]

    def tbs_bits_array(self, prb_count: Any, mcs: Any, layers: Any = 1) -> np.ndarray:
        """Vectorised lookup; arguments broadcast together."""
        p = as_int_array(prb_count, "PRB count")
        m = as_int_array(mcs, "MCS index")
        v = as_int_array(layers, "layers")
        if (np.any(p < 0) or np.any(p > self.max_prbs) or np.any(m < 0) or np.any(m > 31)
                or np.any(v < 1) or np.any(v > self.max_layers)):
            raise ValueError(f"TBS lookup outside its table (PRBs 0..{self.max_prbs}, "
                             f"MCS 0..31, layers 1..{self.max_layers})")
        return self.table[v - 1, m, p]
