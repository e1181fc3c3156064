"""Physical-layer abstraction: BLER vs SINR per MCS, and the CQI a UE reports.

Model (a Shannon-gap abstraction; no link-level simulation):

* Capacity: TR 36.942 Annex A.2 maps SINR to throughput with an attenuated,
  truncated Shannon bound; TR 38.803 and most system-level NR studies use the
  same family. Here the attenuation is written as an SNR gap: an MCS of
  spectral efficiency SE = Qm * R (38.214 5.1.3.1) is decoded at 10% BLER at

      SINR_10%(MCS) = 10 * log10(2**SE - 1) + SHANNON_GAP_DB      [dB]

  ``SHANNON_GAP_DB`` (default 2.5 dB) is the loss of a practical LDPC code,
  modulation and receiver against capacity at 10% BLER. It is a model
  parameter, not a 3GPP value; 2-3 dB is the range usually seen in published
  AWGN link-level curves.
* BLER curve: logistic in dB through that point,

      BLER(SINR) = 1 / (1 + 9 * exp(BLER_SLOPE_PER_DB * (SINR - SINR_10%)))

  so BLER = 10% exactly at SINR_10%, about 1% at +1.6 dB and 50% at -1.5 dB
  for the default slope of 1.5 per dB (a fading-averaged slope; AWGN curves
  are steeper).
* Monotonicity: the tables are not strictly ordered by SE (qam64 MCS 17,
  2.5664, is below MCS 16, 2.5703). The threshold of each MCS uses the running
  maximum of SE over the lower indices, so BLER never decreases with the MCS
  index. Reserved MCS indices (retransmissions) give NaN.
* CQI (38.214 5.2.2.1): the UE reports the highest CQI whose transport block
  at that CQI's Qm and code rate would have BLER <= 10%. Under this model that
  is the highest CQI with SINR_10%(CQI) <= SINR; 0 (out of range) when none.

Thresholds are precomputed per table, so both functions are a vector of
lookups plus one ``exp``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralemu.nr._vec import as_float_array, is_scalar, out
from neuralemu.nr.cqi import check_cqi, cqi_table_arrays
from neuralemu.nr.mcs import MCS_TABLE_NAMES, canonical_mcs_table, check_mcs, table_arrays

SHANNON_GAP_DB = 2.5
"""SNR gap to capacity at 10% BLER (model parameter, dB)."""

BLER_SLOPE_PER_DB = 1.5
"""Logistic slope of the BLER curve (1/dB)."""

BLER_TARGET = 0.1
"""The CQI definition's target: BLER not above 0.1 (38.214 5.2.2.1)."""


def sinr_threshold_db(spectral_efficiency: Any, gap_db: float = SHANNON_GAP_DB) -> Any:
    """SINR (dB) at which a code of this spectral efficiency has 10% BLER (Shannon gap)."""
    se = as_float_array(spectral_efficiency, "spectral efficiency")
    with np.errstate(divide="ignore"):
        th = 10.0 * np.log10(np.exp2(se) - 1.0) + gap_db
    return out(th, is_scalar(spectral_efficiency))


def _mcs_thresholds(mcs_table: str) -> np.ndarray:
    th = _MCS_TH.get(mcs_table)
    if th is None:
        tab = table_arrays(mcs_table)
        se = np.where(tab.reserved, np.nan, tab.spectral_efficiency)
        running = np.fmax.accumulate(np.nan_to_num(se, nan=-np.inf))
        th = np.asarray(sinr_threshold_db(running))
        th[tab.reserved] = np.nan
        _MCS_TH[mcs_table] = th
    return th


def _cqi_thresholds(cqi_table: int) -> np.ndarray:
    th = _CQI_TH.get(int(cqi_table))
    if th is None:
        tab = cqi_table_arrays(cqi_table)
        th = np.asarray(sinr_threshold_db(tab.spectral_efficiency[1:]))   # CQI 1..15
        assert np.all(np.diff(th) > 0)
        _CQI_TH[int(cqi_table)] = th
    return th


_MCS_TH: dict[str, np.ndarray] = {}
_CQI_TH: dict[int, np.ndarray] = {}


def mcs_sinr_threshold_db(mcs: Any, mcs_table: str) -> Any:
    """SINR (dB) at which ``mcs`` has 10% BLER under this module's model; NaN if reserved."""
    m, _ = check_mcs(mcs, mcs_table)
    return out(_mcs_thresholds(canonical_mcs_table(mcs_table))[m], is_scalar(mcs))


def cqi_sinr_threshold_db(cqi: Any, cqi_table: int) -> Any:
    """Lowest SINR (dB) at which the UE reports at least ``cqi`` (1..15); -inf for CQI 0."""
    th = np.concatenate([[-np.inf], _cqi_thresholds(cqi_table)])
    return out(th[check_cqi(cqi)], is_scalar(cqi))


def bler(sinr_db: Any, mcs: Any, mcs_table: str) -> Any:
    """Block error rate of a first transmission at ``sinr_db`` with ``mcs`` (vectorised).

    Logistic in dB around the Shannon-gap 10% point of the MCS (see the module
    docstring; model after TR 36.942 A.2). Monotone: non-increasing in SINR,
    non-decreasing in the MCS index. NaN for reserved MCS indices.
    """
    s = as_float_array(sinr_db, "SINR (dB)")
    m, _ = check_mcs(mcs, mcs_table)
    th = _mcs_thresholds(canonical_mcs_table(mcs_table))[m]
    with np.errstate(over="ignore"):
        result = 1.0 / (1.0 + (1.0 / BLER_TARGET - 1.0) * np.exp(BLER_SLOPE_PER_DB * (s - th)))
    return out(result, is_scalar(sinr_db) and is_scalar(mcs))


def sinr_to_cqi(sinr_db: Any, cqi_table: int) -> Any:
    """The CQI a UE reports at ``sinr_db`` (38.214 5.2.2.1): the highest CQI whose BLER at
    its own Qm and code rate is <= 10%; 0 (out of range) when even CQI 1 fails.

    Non-decreasing in SINR. NaN SINR gives CQI 0.
    """
    s = as_float_array(sinr_db, "SINR (dB)")
    th = _cqi_thresholds(cqi_table)
    cqi = np.searchsorted(th, s, side="right").astype(np.int64)
    cqi = np.where(np.isnan(s), 0, cqi)
    return out(cqi, is_scalar(sinr_db))


# Build every threshold table once at import: the calls above stay cheap and pure.
for _name in MCS_TABLE_NAMES:
    _mcs_thresholds(_name)
for _t in (1, 2, 3):
    _cqi_thresholds(_t)
