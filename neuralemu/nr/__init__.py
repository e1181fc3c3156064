"""3GPP NR facts as data and small pure functions (no dependency on the rest of NeuralEmu).

* numerology (38.211 4.2/4.3): :func:`scs_khz`, :func:`slot_duration_us`, ...
* bandwidth (38.101-1/-2 Table 5.3.2-1): :func:`max_prbs`
* MCS tables 1-3 (38.214 5.1.3.1): :func:`mcs_qm`, :func:`mcs_code_rate`, ...
* CQI tables 1-3 (38.214 5.2.2.1): :func:`cqi_spectral_efficiency`, :func:`cqi_to_mcs`
* TBS (38.214 5.1.3.2): :func:`tbs_bits`, :func:`tbs_bits_array`, :class:`TbsLookup`
* link abstraction (Shannon gap, TR 36.942 A.2): :func:`bler`, :func:`sinr_to_cqi`
* TDD patterns (38.213 11.1): :class:`TddPattern`

Every function takes scalars or numpy arrays. See docs/nr.md.
"""

from neuralemu.nr.bandwidth import MAX_PRBS_FR1, MAX_PRBS_FR2, channel_bandwidths_mhz, max_prbs
from neuralemu.nr.cqi import (CQI_TABLE_FOR_MCS_TABLE, CQI_TABLES, CqiTableArrays, check_cqi,
                              cqi_code_rate, cqi_table_arrays,
                              cqi_out_of_range, cqi_qm, cqi_spectral_efficiency, cqi_to_mcs,
                              default_cqi_table)
from neuralemu.nr.link import (BLER_SLOPE_PER_DB, SHANNON_GAP_DB, bler, cqi_sinr_threshold_db,
                               mcs_sinr_threshold_db, sinr_threshold_db, sinr_to_cqi)
from neuralemu.nr.mcs import (MCS_TABLE_NAMES, MCS_TABLES, McsTableArrays, canonical_mcs_table,
                              check_mcs, is_reserved_mcs, max_mcs, mcs_code_rate, mcs_qm,
                              mcs_spectral_efficiency, table_arrays)
from neuralemu.nr.numerology import (MU_VALUES, SYMBOLS_PER_SLOT, mu_from_scs_khz, scs_khz,
                                     slot_duration_us, slots_per_frame, slots_per_subframe)
from neuralemu.nr.tbs import (TBS_TABLE_BITS, TbsLookup, codeword_layers, dmrs_re_per_prb, n_re,
                              n_re_per_prb, tbs_bits, tbs_bits_array)
from neuralemu.nr.tdd import TddPattern

__all__ = [
    "BLER_SLOPE_PER_DB", "CQI_TABLES", "CqiTableArrays", "McsTableArrays", "check_cqi",
    "check_mcs", "cqi_table_arrays", "table_arrays", "CQI_TABLE_FOR_MCS_TABLE", "MAX_PRBS_FR1", "MAX_PRBS_FR2",
    "MCS_TABLES", "MCS_TABLE_NAMES", "MU_VALUES", "SHANNON_GAP_DB", "SYMBOLS_PER_SLOT",
    "TBS_TABLE_BITS", "TbsLookup", "TddPattern", "bler", "canonical_mcs_table",
    "channel_bandwidths_mhz", "codeword_layers", "dmrs_re_per_prb", "cqi_code_rate", "cqi_out_of_range", "cqi_qm",
    "cqi_sinr_threshold_db", "cqi_spectral_efficiency", "cqi_to_mcs", "default_cqi_table",
    "is_reserved_mcs", "max_mcs", "max_prbs", "mcs_code_rate", "mcs_qm",
    "mcs_sinr_threshold_db", "mcs_spectral_efficiency", "mu_from_scs_khz", "n_re",
    "n_re_per_prb", "scs_khz", "sinr_threshold_db", "sinr_to_cqi", "slot_duration_us",
    "slots_per_frame", "slots_per_subframe", "tbs_bits", "tbs_bits_array",
]
