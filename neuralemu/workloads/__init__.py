"""Application traffic for offline runs (docs/workloads.md).

Open loop (a packet list written as the workload CSV): ``bulk``, ``cbr``,
``onoff``, ``gaming``, ``web``. Closed loop (sources that react to delivery
feedback from the engine): the GCC-like WebRTC sender and the TCP-like bulk
sender.
"""

from neuralemu.workloads.closedloop import ClosedLoopSource
from neuralemu.workloads.csv_io import iter_packets, read_workload_csv, write_workload_csv
from neuralemu.workloads.factory import (CLOSED_LOOP_KINDS, OPEN_LOOP_KINDS, make_closed_loop,
                                         make_open_loop)
from neuralemu.workloads.gaming import CloudGaming
from neuralemu.workloads.gcc import GccParams, GccSender
from neuralemu.workloads.openloop import Bulk, Cbr, OnOff, generate
from neuralemu.workloads.packet import Packet
from neuralemu.workloads.tcp import TcpLikeSource, TcpParams
from neuralemu.workloads.units import (UnitRecorder, assign_units, read_units_csv,
                                       unit_completion, write_units_csv)
from neuralemu.workloads.web import WebBrowsing

__all__ = [
    "Bulk", "CLOSED_LOOP_KINDS", "Cbr", "ClosedLoopSource", "CloudGaming", "GccParams",
    "GccSender", "OnOff", "OPEN_LOOP_KINDS", "Packet", "TcpLikeSource", "TcpParams",
    "UnitRecorder", "make_closed_loop", "make_open_loop",
    "WebBrowsing", "assign_units", "generate", "iter_packets", "read_units_csv",
    "read_workload_csv", "unit_completion", "write_units_csv", "write_workload_csv",
]
