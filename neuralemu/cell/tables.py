"""Lookup tables the compiled slot kernel reads, built once per cell from :mod:`neuralemu.nr`.

Everything 3GPP lives in ``nr``; this module only samples it onto dense
arrays (TBS per PRB count, BLER on a SINR grid, CQI per SINR, CQI -> MCS) so
that the kernel does O(1) lookups. 38.321 BSR levels and the 38.214 RBG size
table are data here because only the cell uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from neuralemu import nr
from neuralemu.cell.config import CellConfig

SINR_MIN_DB = -20.0
SINR_STEP_DB = 0.05
SINR_MAX_DB = 50.0
N_SINR = int(round((SINR_MAX_DB - SINR_MIN_DB) / SINR_STEP_DB)) + 1

SHORT_BSR_LEVELS_BYTES = (
    0, 10, 14, 20, 28, 38, 53, 74, 102, 142, 198, 276, 384, 535, 745, 1038, 1446, 2014, 2806,
    3909, 5446, 7587, 10570, 14726, 20516, 28581, 39818, 55474, 77284, 107669, 150000,
)
"""38.321 Table 6.1.3.1-1: upper bound (bytes) of each 5-bit Buffer Size index 0..30; index 31 is > 150000."""

LONG_BSR_LEVELS_BYTES = (
    0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 25, 26, 28, 30, 32, 34, 36, 38, 40,
    43, 46, 49, 52, 55, 59, 62, 66, 71, 75, 80, 85, 91, 97, 103, 110, 117, 124, 132, 141, 150,
    160, 170, 181, 193, 205, 218, 233, 248, 264, 281, 299, 318, 339, 361, 384, 409, 436, 464,
    494, 526, 560, 597, 635, 677, 720, 767, 817, 870, 926, 987, 1051, 1119, 1191, 1269, 1351,
    1439, 1532, 1631, 1737, 1850, 1970, 2098, 2234, 2379, 2533, 2698, 2873, 3059, 3258, 3469,
    3694, 3934, 4189, 4461, 4751, 5059, 5387, 5737, 6109, 6506, 6928, 7378, 7857, 8367, 8910,
    9488, 10104, 10760, 11458, 12202, 12994, 13838, 14736, 15692, 16711, 17795, 18951, 20181,
    21491, 22885, 24371, 25953, 27638, 29431, 31342, 33376, 35543, 37850, 40307, 42923, 45709,
    48676, 51836, 55200, 58784, 62599, 66663, 70990, 75598, 80505, 85730, 91295, 97221, 103532,
    110252, 117409, 125030, 133146, 141789, 150992, 160793, 171231, 182345, 194182, 206786,
    220209, 234503, 249725, 265935, 283197, 301579, 321155, 342002, 364202, 387842, 413018,
    439827, 468377, 498780, 531156, 565634, 602350, 641449, 683087, 727427, 774645, 824928,
    878475, 935498, 996222, 1060888, 1129752, 1203085, 1281179, 1364342, 1452903, 1547213,
    1647644, 1754595, 1868488, 1989774, 2118933, 2256475, 2402946, 2558924, 2725027, 2901912,
    3090279, 3290873, 3504487, 3731968, 3974215, 4232186, 4506902, 4799451, 5110989, 5442750,
    5796046, 6172275, 6572925, 6999582, 7453933, 7937777, 8453028, 9001725, 9586039, 10208280,
    10870913, 11576557, 12328006, 13128233, 13980403, 14887889, 15854280, 16883401, 17979324,
    19146385, 20389201, 21712690, 23122088, 24622972, 26221280, 27923336, 29735875, 31666069,
    33721553, 35910462, 38241455, 40723756, 43367187, 46182206, 49179951, 52372284, 55771835,
    59392055, 63247269, 67352729, 71724679, 76380419, 81338368,
)
"""38.321 Table 6.1.3.1-2: upper bound (bytes) of each 8-bit Buffer Size index 0..254; 255 is > 81338368."""

RBG_SIZE_TABLE = ((1, 36, 2, 4), (37, 72, 4, 8), (73, 144, 8, 16), (145, 275, 16, 16))
"""38.214 Table 5.1.2.2.1-1: (BWP size from, to, RBG size P for configuration 1, configuration 2)."""

LARGE_SLOTS = 1 << 40


def rbg_size(bwp_prbs: int, config: int = 1) -> int:
    """Nominal RBG size P for allocation type 0 (38.214 Table 5.1.2.2.1-1)."""
    for lo, hi, p1, p2 in RBG_SIZE_TABLE:
        if lo <= bwp_prbs <= hi:
            return p1 if config == 1 else p2
    raise ValueError(f"BWP of {bwp_prbs} PRBs is outside 38.214 Table 5.1.2.2.1-1")


def bsr_levels(fmt: str) -> np.ndarray:
    """Quantisation levels (bytes) a BSR can report, the last one standing for 'more'."""
    levels = SHORT_BSR_LEVELS_BYTES if fmt == "short" else LONG_BSR_LEVELS_BYTES
    # the top index (> last bound) is reported as twice the last bound
    return np.array(levels + (2 * levels[-1],), dtype=np.int64)


@dataclass(frozen=True)
class CellTables:
    prbs_total: int
    slot_us: int
    period: int
    pattern_kind: np.ndarray     # int64 [2, period]: -1 no symbols, 0 full slot, 1 special slot
    symbols: np.ndarray          # int64 [2, 2]: data symbols per (direction, kind)
    tbs: np.ndarray              # int64 [2, 2, 4, 32, prbs_total + 1] TBS bits per (dir, kind, layers-1, mcs, prbs)
    re_per_prb: np.ndarray       # int64 [2, 2]: N_RE per PRB of one layer
    bler: np.ndarray             # float64 [2, 32, N_SINR]
    cqi_of_sinr: np.ndarray      # int64 [2, N_SINR]
    cqi_to_mcs: np.ndarray       # int64 [2, 16]
    max_mcs: np.ndarray          # int64 [2]: highest non-reserved MCS index
    bsr_levels: np.ndarray       # int64
    rbg: int
    mcs_tables: tuple[str, str]  # (dl, ul)


def _data_symbols(total_symbols: int, direction: str, pdcch_symbols: int) -> int:
    """PDSCH keeps the first ``pdcch_symbols`` for the CORESET in slots starting with DL."""
    if total_symbols <= 0:
        return 0
    if direction == "dl":
        return max(1, total_symbols - pdcch_symbols)
    return total_symbols


def tdd_pattern(cell: CellConfig) -> nr.TddPattern:
    if cell.is_fdd:
        return nr.TddPattern.fdd()
    dl, gap, ul = (int(x) for x in cell.special_slot.split(":"))
    return nr.TddPattern.parse(cell.duplex, dl, gap, ul)


def build_tables(cell: CellConfig) -> CellTables:
    return _build_tables(cell.model_dump_json())


@lru_cache(maxsize=16)
def _build_tables(cell_json: str) -> CellTables:
    cell = CellConfig.model_validate_json(cell_json)
    prbs_total = cell.prbs
    pat = tdd_pattern(cell)
    period = pat.period_slots
    kinds = np.full((2, period), -1, dtype=np.int64)
    symbols = np.zeros((2, 2), dtype=np.int64)
    full_sym = nr.SYMBOLS_PER_SLOT
    for d, name in enumerate(("dl", "ul")):
        for s in range(period):
            n = int(pat.symbols(s, name))
            if n <= 0:
                continue
            kinds[d, s] = 0 if n == full_sym else 1
            symbols[d, kinds[d, s]] = _data_symbols(n, name, cell.pdcch_symbols)
        if symbols[d, 1] == 0:
            symbols[d, 1] = symbols[d, 0]
    tables = (cell.mcs_table, cell.ul_mcs_table)
    tbs = np.zeros((2, 2, 4, 32, prbs_total + 1), dtype=np.int64)
    re_per_prb = np.zeros((2, 2), dtype=np.int64)
    for d in range(2):
        for k in range(2):
            sym = int(symbols[d, k])
            if sym <= 0:
                continue
            dmrs = min(cell.dmrs_re_per_prb, 12 * sym)
            oh = cell.overhead_re_per_prb if 12 * sym - dmrs - cell.overhead_re_per_prb >= 0 else 0
            lut = nr.TbsLookup(tables[d], sym, dmrs, oh, max_prbs=prbs_total, max_layers=4)
            tbs[d, k] = lut.table
            re_per_prb[d, k] = lut.re_per_prb
    grid = SINR_MIN_DB + SINR_STEP_DB * np.arange(N_SINR)
    bler = np.ones((2, 32, N_SINR), dtype=np.float64)
    max_mcs = np.zeros(2, dtype=np.int64)
    for d in range(2):
        mx = nr.max_mcs(tables[d])
        max_mcs[d] = mx
        for m in range(mx + 1):
            bler[d, m] = nr.bler(grid, m, tables[d])
    cqi_table = cell.cqi_table or nr.default_cqi_table(cell.mcs_table)
    cqi_of_sinr = np.zeros((2, N_SINR), dtype=np.int64)
    c2m = np.zeros((2, 16), dtype=np.int64)
    for d in range(2):
        # UL: the gNB's own SINR estimate quantised on the table matching the UL MCS table
        ct = cqi_table if d == 0 else nr.default_cqi_table(tables[1])
        cqi_of_sinr[d] = nr.sinr_to_cqi(grid, ct)
        c2m[d] = nr.cqi_to_mcs(np.arange(16), tables[d], ct)
    rbg = rbg_size(prbs_total, cell.rbg_config) if cell.prb_allocation == "type0" else 1
    for arr in (kinds, symbols, tbs, re_per_prb, bler, cqi_of_sinr, c2m, max_mcs):
        arr.flags.writeable = False
    return CellTables(prbs_total=prbs_total, slot_us=cell.slot_us, period=period,
                      pattern_kind=kinds, symbols=symbols, tbs=tbs, re_per_prb=re_per_prb,
                      bler=bler, cqi_of_sinr=cqi_of_sinr, cqi_to_mcs=c2m, max_mcs=max_mcs,
                      bsr_levels=bsr_levels(cell.uplink.bsr_format), rbg=rbg,
                      mcs_tables=tables)
