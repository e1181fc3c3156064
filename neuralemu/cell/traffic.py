"""Closed-loop traffic hook: how a workload talks to the slot engine offline.

A :class:`TrafficSource` is asked once per slot for the packets that arrive
during that slot, and is told when each of its packets is delivered or dropped.
That is enough for a rate-adaptive sender (WebRTC-like, a congestion
controller) to react to the delay and loss it observes, offline and
deterministically. Open-loop workloads (a workload CSV) do not need this hook:
:meth:`neuralemu.cell.engine.Engine.load_arrivals` takes them in bulk, which is
much faster.

``cell`` never imports ``workloads``; sources implement this protocol from
outside. A packet handed back by :meth:`TrafficSource.on_slot` is any tuple
whose first four fields are ``(t_us, ue, direction, size_bytes)``, for example
``neuralemu.workloads.packet.Packet``.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Protocol, runtime_checkable


class Delivery(NamedTuple):
    """One packet that left the cell: its last byte was decoded in slot ending at ``t_delivered_us``."""

    packet_id: int
    ue_id: int
    direction: str          # "dl" or "ul"
    size_bytes: int
    t_arrival_us: int
    t_delivered_us: int


class Drop(NamedTuple):
    """One packet that the cell lost: ``reason`` is ``"queue"`` (drop-tail) or ``"harq"``
    (a transport block carrying part of it failed its last HARQ transmission)."""

    packet_id: int
    ue_id: int
    direction: str
    size_bytes: int
    t_arrival_us: int
    t_drop_us: int
    reason: str


@runtime_checkable
class TrafficSource(Protocol):
    """A workload that reacts to what the cell does with its packets."""

    def on_slot(self, view, t_us: int) -> Iterable[tuple]:
        """Packets arriving in ``[t_us, t_us + slot_us)``: tuples ``(t_us, ue, direction, size_bytes, ...)``.

        ``view`` is the engine (read it, e.g. ``view.stats()``, ``view.slot_us``;
        do not step it). Return an empty list when nothing arrives.
        """
        ...

    def on_delivered(self, delivery: Delivery) -> None:
        """Called for each of this source's packets once delivered (in slot order)."""
        ...

    def on_dropped(self, drop: Drop) -> None:
        """Called for each of this source's packets that the cell dropped."""
        ...
