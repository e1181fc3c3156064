"""Maximum transmission bandwidth in PRBs per channel bandwidth and SCS.

FR1: TS 38.101-1 Table 5.3.2-1, "Maximum transmission bandwidth configuration
N_RB". FR2-1: TS 38.101-2 Table 5.3.2-1. The tables are data below; a
combination that the spec marks N/A (for example 5 MHz at 60 kHz, or 60 MHz
at 15 kHz) is not in the table and raises ValueError.

Note that FR1 and FR2 differ at 50 MHz / 60 kHz (65 vs 66 PRBs), so the
frequency range is a parameter (default ``"FR1"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralemu.nr._vec import as_int_array, is_scalar, out

# {scs_khz: {channel bandwidth MHz: N_RB}}; TS 38.101-1 Table 5.3.2-1, latest releases
# (3 MHz at 15 kHz, and 35 and 45 MHz, are later additions to the table).
MAX_PRBS_FR1: dict[int, dict[int, int]] = {
    15: {3: 15, 5: 25, 10: 52, 15: 79, 20: 106, 25: 133, 30: 160, 35: 188, 40: 216,
         45: 242, 50: 270},
    30: {5: 11, 10: 24, 15: 38, 20: 51, 25: 65, 30: 78, 35: 92, 40: 106,
         45: 119, 50: 133, 60: 162, 70: 189, 80: 217, 90: 245, 100: 273},
    60: {10: 11, 15: 18, 20: 24, 25: 31, 30: 38, 35: 44, 40: 51, 45: 58,
         50: 65, 60: 79, 70: 93, 80: 107, 90: 121, 100: 135},
}

# TS 38.101-2 Table 5.3.2-1 (FR2-1).
MAX_PRBS_FR2: dict[int, dict[int, int]] = {
    60: {50: 66, 100: 132, 200: 264},
    120: {50: 32, 100: 66, 200: 132, 400: 264},
}

_TABLES = {"FR1": MAX_PRBS_FR1, "FR2": MAX_PRBS_FR2}


def _table(frequency_range: str) -> dict[int, dict[int, int]]:
    key = str(frequency_range).upper()
    if key not in _TABLES:
        raise ValueError(f"frequency range must be 'FR1' or 'FR2', got {frequency_range!r}")
    return _TABLES[key]


def max_prbs(bandwidth_mhz: Any, scs_khz: Any, frequency_range: str = "FR1") -> Any:
    """N_RB for a channel bandwidth and subcarrier spacing.

    TS 38.101-1 Table 5.3.2-1 (FR1) or TS 38.101-2 Table 5.3.2-1 (FR2).
    E.g. 20 MHz at 15 kHz = 106, 100 MHz at 30 kHz = 273. Both arguments may
    be arrays (broadcast together). ValueError names any combination the
    table does not list.
    """
    table = _table(frequency_range)
    bw = as_int_array(bandwidth_mhz, "channel bandwidth (MHz)")
    scs = as_int_array(scs_khz, "subcarrier spacing (kHz)")
    bw_b, scs_b = np.broadcast_arrays(bw, scs)
    result = np.empty(bw_b.shape, dtype=np.int64)
    for idx in np.ndindex(bw_b.shape):
        b, s = int(bw_b[idx]), int(scs_b[idx])
        n_rb = table.get(s, {}).get(b)
        if n_rb is None:
            raise ValueError(_not_listed(b, s, frequency_range, table))
        result[idx] = n_rb
    return out(result, is_scalar(bandwidth_mhz) and is_scalar(scs_khz))


def channel_bandwidths_mhz(scs_khz: int, frequency_range: str = "FR1") -> list[int]:
    """Channel bandwidths (MHz) the table lists for one subcarrier spacing."""
    table = _table(frequency_range)
    if int(scs_khz) not in table:
        raise ValueError(f"{frequency_range} has no {scs_khz} kHz subcarrier spacing; "
                         f"valid: {sorted(table)} kHz")
    return sorted(table[int(scs_khz)])


def _not_listed(bw: int, scs: int, fr: str, table: dict[int, dict[int, int]]) -> str:
    clause = "38.101-1" if str(fr).upper() == "FR1" else "38.101-2"
    if scs not in table:
        return (f"{bw} MHz at {scs} kHz is not a valid {fr.upper()} combination: "
                f"subcarrier spacing must be one of {sorted(table)} kHz (TS {clause} Table 5.3.2-1)")
    return (f"{bw} MHz at {scs} kHz is not a valid {fr.upper()} combination "
            f"(TS {clause} Table 5.3.2-1); at {scs} kHz the bandwidths are "
            f"{sorted(table[scs])} MHz")
