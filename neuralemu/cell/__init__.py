"""The slot engine: cell configuration, per-user state, HARQ, link adaptation, clocks and the
analytical policies. See docs/engine.md.

``cell`` depends on ``nr`` only; learned and replay policies register from outside
through :func:`register_policy`.
"""

from neuralemu.cell.clock import VirtualClock, WallClock, run_realtime
from neuralemu.cell.config import (CellConfig, FixedChannel, HarqConfig, StochasticChannel,
                                   TraceChannel, UeConfig, UplinkConfig)
from neuralemu.cell.engine import Dci, Engine, SlotResult
from neuralemu.cell.policies import make_policy, policy_names, register_policy
from neuralemu.cell.policy import Allocation, Policy, SlotContext, UeFeatures
from neuralemu.cell.traffic import Delivery, Drop, TrafficSource

__all__ = [
    "Allocation", "CellConfig", "Dci", "Delivery", "Drop", "Engine", "FixedChannel", "HarqConfig",
    "Policy", "SlotContext", "SlotResult", "StochasticChannel", "TraceChannel", "TrafficSource",
    "UeConfig", "UeFeatures", "UplinkConfig", "VirtualClock", "WallClock", "make_policy",
    "policy_names", "register_policy", "run_realtime",
]
