"""The policy registry and the analytical policies ``pf``, ``rr`` and ``maxcqi``.

``register_policy(name, factory)`` lets ``learned`` and ``replay`` plug in from
outside (``cell`` never imports them); ``make_policy(name, **params)`` builds
any registered policy by name (scenarios, the API, the CLI).

The built-ins carry a ``kernel_id`` so the engine runs them inside the
compiled slot kernel; their :meth:`decide` calls the very same compiled
function (:func:`neuralemu.cell.kernel.policy_fill`), so a built-in used
through the Python policy path gives identical decisions.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from neuralemu.cell import kernel as K
from neuralemu.cell.policy import Allocation, Policy, SlotContext, UeFeatures
from neuralemu.errors import InputError

_REGISTRY: dict[str, Callable[..., Policy]] = {}


def register_policy(name: str, factory: Callable[..., Policy]) -> None:
    """Make ``make_policy(name, **params)`` call ``factory(**params)``."""
    if not name or not isinstance(name, str):
        raise ValueError("policy name must be a non-empty string")
    _REGISTRY[name] = factory


def policy_names() -> list[str]:
    return sorted(_REGISTRY)


def make_policy(name: str, **params: Any) -> Policy:
    """Build a registered policy; InputError for an unknown name or bad parameters."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise InputError("policy", f"unknown policy {name!r}; known: {', '.join(policy_names())}",
                         field="name")
    try:
        return factory(**params)
    except TypeError as exc:
        raise InputError("policy", f"bad parameters for {name!r}: {exc}", field="params") from None


class _Builtin:
    """Shared by pf / rr / maxcqi: metric-ordered filling of PRBs by buffer need."""

    name = ""
    kernel_id = K.POLICY_PYTHON
    avg_window_slots = 100

    def __init__(self) -> None:
        self._tbs = None
        self._symbols = None

    def bind(self, engine) -> None:
        """Called by the engine on set_policy: the TBS table to size allocations exactly."""
        self._tbs = engine.tables.tbs
        self._symbols = engine.tables.symbols

    def decide(self, ctx: SlotContext, ues: UeFeatures) -> Allocation:
        n = len(ues)
        if self._tbs is None:
            raise RuntimeError(f"policy {self.name!r} must be bound to an engine (engine.set_policy)")
        d = 0 if ctx.direction == "dl" else 1
        kind = 0 if ctx.symbols == self._symbols[d, 0] else 1
        tbs_dk = self._tbs[d, kind]
        layers = int(ctx.max_layers)
        feat = np.zeros((K.N_FT, n), dtype=np.float64)
        feat[K.FT_UE] = ues.ue_id
        feat[K.FT_BUF] = ues.buffer_bytes
        feat[K.FT_CQI] = ues.cqi
        feat[K.FT_SINR] = ues.sinr_db
        feat[K.FT_LA_MCS] = ues.la_mcs
        feat[K.FT_AVG] = ues.avg_tput_bps
        feat[K.FT_SINCE] = ues.slots_since_grant
        feat[K.FT_PRIO] = ues.priority
        feat[K.FT_RATE] = tbs_dk[layers - 1, np.asarray(ues.la_mcs, dtype=np.int64), ctx.prbs_total]
        alloc = Allocation(prbs=np.zeros(n, np.int64), mcs=np.zeros(n, np.int64),
                           layers=np.ones(n, np.int64))
        K.policy_fill(self.kernel_id, feat, n, tbs_dk, layers, int(ctx.prbs_available),
                      int(ctx.max_ues), alloc.prbs, alloc.mcs, alloc.layers)
        return alloc

    def observe(self, ctx: SlotContext, ues: UeFeatures, alloc: Allocation) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ProportionalFair(_Builtin):
    """PF: serve users in order of priority x achievable rate / average throughput.

    The average is the engine's EWMA of served bits per second with window
    ``window_slots`` (alpha = 1 / window). With full buffers this converges to
    equal time shares (weighted by priority), the PF optimum
    argmax sum_i w_i log(T_i).
    """

    name = "pf"
    kernel_id = K.POLICY_PF

    def __init__(self, window_slots: int = 100) -> None:
        super().__init__()
        if not (isinstance(window_slots, (int, float)) and window_slots >= 1):
            raise InputError("policy", f"window_slots must be >= 1, got {window_slots!r}",
                             field="params.window_slots")
        self.avg_window_slots = float(window_slots)

    def __repr__(self) -> str:
        return f"ProportionalFair(window_slots={self.avg_window_slots:g})"


class RoundRobin(_Builtin):
    """RR: users with data in order of the longest time since their last grant."""

    name = "rr"
    kernel_id = K.POLICY_RR


class MaxCqi(_Builtin):
    """Max-CQI (max rate): users in order of achievable rate at their link-adaptation MCS."""

    name = "maxcqi"
    kernel_id = K.POLICY_MAXCQI


class PythonPath:
    """Wraps a policy so that the engine calls it from Python (testing the generic path)."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.name = f"python:{getattr(inner, 'name', '?')}"
        self.avg_window_slots = getattr(inner, "avg_window_slots", 100)

    def bind(self, engine) -> None:
        bind = getattr(self.inner, "bind", None)
        if callable(bind):
            bind(engine)

    def decide(self, ctx: SlotContext, ues: UeFeatures) -> Allocation:
        return self.inner.decide(ctx, ues)

    def observe(self, ctx: SlotContext, ues: UeFeatures, alloc: Allocation) -> None:
        observe = getattr(self.inner, "observe", None)
        if callable(observe):
            observe(ctx, ues, alloc)


register_policy("pf", ProportionalFair)
register_policy("rr", RoundRobin)
register_policy("maxcqi", MaxCqi)
