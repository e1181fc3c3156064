"""Telemetry in and out: the canonical per-DCI table and the readers/writers around it.

* :mod:`~neuralemu.telemetry.schema`: the canonical per-DCI table (columns,
  dtypes, attrs) and :func:`validate_dci_table`.
* :mod:`~neuralemu.telemetry.parquet`: :func:`write_dci_parquet`, :func:`read_dci_parquet`.
* :mod:`~neuralemu.telemetry.nrscope`: :func:`read_nrscope`, :func:`write_nrscope`.
* :mod:`~neuralemu.telemetry.ue_log`: :func:`read_ue_log`, :func:`write_ue_log`.
* :mod:`~neuralemu.telemetry.mahimahi`: Mahimahi traces and per-slot bytes.
* :mod:`~neuralemu.telemetry.summary`: the figures ``neuralemu inspect`` prints.

Every reader raises :class:`neuralemu.errors.InputError` (file, line, field)
for malformed input. Formats are documented in docs/telemetry.md.
"""

from neuralemu.telemetry.mahimahi import (MTU_BYTES, mahimahi_to_slot_bytes, read_mahimahi,
                                          slot_bytes_to_mahimahi, write_mahimahi)
from neuralemu.telemetry.nrscope import (NRSCOPE_COLUMNS, duplicate_dcis, read_nrscope,
                                         write_nrscope)
from neuralemu.telemetry.parquet import read_dci_parquet, write_dci_parquet
from neuralemu.telemetry.schema import (DCI_COLUMNS, DIRECTIONS, MCS_TABLES, UE_LOG_COLUMNS,
                                        empty_dci_table, validate_dci_table)
from neuralemu.telemetry.ue_log import read_ue_log, validate_ue_log, write_ue_log

__all__ = [
    "DCI_COLUMNS", "DIRECTIONS", "MCS_TABLES", "MTU_BYTES", "NRSCOPE_COLUMNS", "UE_LOG_COLUMNS",
    "duplicate_dcis", "empty_dci_table", "mahimahi_to_slot_bytes", "read_dci_parquet",
    "read_mahimahi", "read_nrscope", "read_ue_log", "slot_bytes_to_mahimahi",
    "validate_dci_table", "validate_ue_log", "write_dci_parquet", "write_mahimahi",
    "write_nrscope", "write_ue_log",
]
