"""Fast MCS / CQI lookups for the learned scheduler's hot path.

The tables themselves live in :mod:`neuralemu.nr` (38.214 5.1.3.1 for MCS,
38.214 5.2.2.1 for CQI); this module only caches them as flat numpy arrays so
that a slot's features cost one fancy-index each, with out-of-range and
reserved indices mapped to 0 instead of raising.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from neuralemu.nr.cqi import cqi_table_arrays, cqi_to_mcs as nr_cqi_to_mcs, default_cqi_table
from neuralemu.nr.mcs import canonical_mcs_table, max_mcs, table_arrays


@lru_cache(maxsize=None)
def _se_lookup(mcs_table: str) -> np.ndarray:
    tab = table_arrays(mcs_table)
    se = np.where(tab.reserved, 0.0, tab.spectral_efficiency)
    return np.nan_to_num(se, nan=0.0)


def se_lookup(mcs_table: str) -> np.ndarray:
    """[32] Qm x R per MCS index of the table, 0 for reserved indices (float64)."""
    return _se_lookup(mcs_table)


def cqi_se_lookup(mcs_table: str) -> np.ndarray:
    """[16] Qm x R per CQI index, in the CQI table that goes with ``mcs_table``."""
    return _cqi_se_lookup(mcs_table)


def cqi_mcs_lookup(mcs_table: str) -> np.ndarray:
    """[16] MCS index per CQI index (:func:`neuralemu.nr.cqi.cqi_to_mcs`)."""
    return _cqi_to_mcs_lookup(mcs_table)


def top_mcs(mcs_table: str) -> int:
    """Highest MCS index of a new transmission in this table (27 or 28, 38.214 5.1.3.1)."""
    return max_mcs(mcs_table)


def canonical(mcs_table: str) -> str:
    return canonical_mcs_table(mcs_table)


def spectral_efficiency(mcs_table: str, mcs) -> np.ndarray:
    """Qm x R per MCS index (0 for reserved or unknown indices)."""
    lut = _se_lookup(mcs_table)
    idx = np.clip(np.asarray(mcs, dtype=np.int64), 0, 31)
    se = lut[idx]
    return np.where(np.asarray(mcs) < 0, 0.0, se)


@lru_cache(maxsize=None)
def _cqi_se_lookup(mcs_table: str) -> np.ndarray:
    return cqi_table_arrays(default_cqi_table(mcs_table)).spectral_efficiency.copy()


@lru_cache(maxsize=None)
def _cqi_to_mcs_lookup(mcs_table: str) -> np.ndarray:
    return np.asarray(nr_cqi_to_mcs(np.arange(16), mcs_table), dtype=np.int64)


def _cqi_index(cqi) -> np.ndarray:
    return np.clip(np.asarray(cqi, dtype=np.float64), 0, 15).astype(np.int64)


def cqi_spectral_efficiency(mcs_table: str, cqi) -> np.ndarray:
    """Qm x R of a CQI in the CQI table that goes with ``mcs_table`` (38.214 5.2.2.1); 0 for CQI 0."""
    return _cqi_se_lookup(mcs_table)[_cqi_index(cqi)]


def cqi_to_mcs(mcs_table: str, cqi) -> np.ndarray:
    """Highest MCS not above the CQI's spectral efficiency (:func:`neuralemu.nr.cqi.cqi_to_mcs`)."""
    return _cqi_to_mcs_lookup(mcs_table)[_cqi_index(cqi)]
