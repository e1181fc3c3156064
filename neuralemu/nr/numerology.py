"""NR numerology: subcarrier spacing and slot timing (TS 38.211 4.2, 4.3.1, 4.3.2).

The numerology ``mu`` (38.211 Table 4.2-1) sets the subcarrier spacing
``15 * 2**mu`` kHz. With the normal cyclic prefix a slot has 14 OFDM symbols
and a 1 ms subframe holds ``2**mu`` slots (38.211 Table 4.3.2-1), so a slot
lasts ``1000 / 2**mu`` microseconds. This module supports mu 0..3 (15, 30, 60
and 120 kHz), the numerologies that carry data in FR1 and FR2-1.

Every function takes a scalar or a numpy array; scalars give Python ints.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralemu.nr._vec import as_int_array, bad_values, is_scalar, out

MU_VALUES: tuple[int, ...] = (0, 1, 2, 3)
"""Numerologies supported here (38.211 Table 4.2-1, data channels)."""

SYMBOLS_PER_SLOT = 14
"""OFDM symbols per slot with the normal cyclic prefix (38.211 Table 4.3.2-1)."""

SUBFRAME_DURATION_US = 1000
"""A subframe is 1 ms (38.211 4.3.1)."""

SUBFRAMES_PER_FRAME = 10
"""A frame is 10 ms = 10 subframes (38.211 4.3.1)."""


def _check_mu(mu: Any) -> np.ndarray:
    arr = as_int_array(mu, "numerology mu")
    ok = (arr >= MU_VALUES[0]) & (arr <= MU_VALUES[-1])
    if not np.all(ok):
        raise ValueError(f"numerology mu must be one of {list(MU_VALUES)} "
                         f"(15/30/60/120 kHz, 38.211 Table 4.2-1), got {bad_values(arr, ok)}")
    return arr


def scs_khz(mu: Any) -> Any:
    """Subcarrier spacing in kHz: 15 * 2**mu (38.211 Table 4.2-1)."""
    arr = _check_mu(mu)
    return out(15 * (1 << arr), is_scalar(mu))


def slot_duration_us(mu: Any) -> Any:
    """Slot length in whole microseconds: 1000, 500, 250, 125 for mu 0..3 (38.211 4.3.2)."""
    arr = _check_mu(mu)
    return out(SUBFRAME_DURATION_US >> arr, is_scalar(mu))


def slots_per_subframe(mu: Any) -> Any:
    """Slots in a 1 ms subframe: 2**mu (38.211 Table 4.3.2-1, N_slot^subframe,mu)."""
    arr = _check_mu(mu)
    return out(1 << arr, is_scalar(mu))


def slots_per_frame(mu: Any) -> Any:
    """Slots in a 10 ms frame: 10 * 2**mu (38.211 Table 4.3.2-1, N_slot^frame,mu)."""
    arr = _check_mu(mu)
    return out(SUBFRAMES_PER_FRAME * (1 << arr), is_scalar(mu))


def mu_from_scs_khz(scs_khz: Any) -> Any:
    """The numerology mu for a subcarrier spacing of 15, 30, 60 or 120 kHz (38.211 Table 4.2-1)."""
    arr = as_int_array(scs_khz, "subcarrier spacing (kHz)")
    table = np.array([15 * (1 << m) for m in MU_VALUES])
    ok = np.isin(arr, table)
    if not np.all(ok):
        raise ValueError(f"subcarrier spacing must be one of {table.tolist()} kHz "
                         f"(38.211 Table 4.2-1), got {bad_values(arr, ok)}")
    mu = np.searchsorted(table, arr).astype(np.int64)
    return out(mu, is_scalar(scs_khz))
