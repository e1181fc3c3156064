"""Application traffic for offline runs (docs/workloads.md).

Open loop (a packet list written as the workload CSV): ``bulk``, ``cbr``,
``onoff``, ``gaming``, ``web``. Closed loop (sources that react to delivery
feedback from the engine): the GCC-like WebRTC sender and the TCP-like bulk
sender.
"""

from neuralemu.workloads.csv_io import iter_packets, read_workload_csv, write_workload_csv
from neuralemu.workloads.gaming import CloudGaming
from neuralemu.workloads.openloop import Bulk, Cbr, OnOff, generate
from neuralemu.workloads.packet import Packet
from neuralemu.workloads.units import (UnitRecorder, assign_units, read_units_csv,
                                       unit_completion, write_units_csv)
from neuralemu.workloads.web import WebBrowsing

OPEN_LOOP_KINDS = {cls.kind: cls for cls in (Bulk, Cbr, OnOff, CloudGaming, WebBrowsing)}

__all__ = [
    "Bulk", "Cbr", "CloudGaming", "OnOff", "OPEN_LOOP_KINDS", "Packet", "UnitRecorder",
    "WebBrowsing", "assign_units", "generate", "iter_packets", "read_units_csv",
    "read_workload_csv", "unit_completion", "write_units_csv", "write_workload_csv",
]
