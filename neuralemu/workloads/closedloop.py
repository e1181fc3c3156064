"""Shared machinery of closed-loop sources (the engine's ``TrafficSource`` hook).

A closed-loop source (docs/engine.md, ``neuralemu/cell/traffic.py``) is asked
once per slot for the packets that reach the cell in ``[t_us, t_us + slot_us)``
and is told, after the slot, which of its packets were delivered or dropped.

:class:`ClosedLoopSource` does the bookkeeping that every sender needs:
- a heap of packets scheduled to reach the cell at a future time (a sender
  decides at time t; the packet crosses the wired path and reaches the gNB at
  t + ``forward_delay_us``);
- matching engine callbacks to the sender's own sequence numbers by
  ``t_arrival_us`` (every packet of one source gets a distinct arrival time,
  so this is exact; ties, should the engine round times, resolve first in
  first out, which in-order delivery makes correct);
- feedback timing: what the receiver learns at ``t_delivered_us`` reaches
  the sender ``feedback_delay_us`` later (:meth:`feedback_arrival_us`).

Subclasses implement :meth:`_advance` (run the sender up to a time) and
:meth:`_on_feedback` (one delivered or lost packet, at the time the sender
learns of it).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Iterable

from neuralemu.workloads.packet import Packet


class ClosedLoopSource:
    """Base class; see the module docstring."""

    def __init__(self, ue: int, direction: str = "dl", *, forward_delay_us: int = 10_000,
                 feedback_delay_us: int = 10_000) -> None:
        if direction not in ("dl", "ul"):
            raise ValueError(f"direction must be dl or ul, got {direction!r}")
        if forward_delay_us < 0 or feedback_delay_us < 0:
            raise ValueError("delays must be >= 0")
        self.ue = int(ue)
        self.direction = direction
        self.forward_delay_us = int(forward_delay_us)
        self.feedback_delay_us = int(feedback_delay_us)
        self._outbox: list[tuple[int, int, int]] = []     # (t_arrival_us, seq, size)
        self._last_arrival_us = -1
        self._by_arrival: dict[int, deque[int]] = {}     # t_arrival_us -> seqs in flight
        self._feedback: list[tuple[int, int, int, int | None]] = []  # (t_learn, order, seq, t_rx)
        self._feedback_order = 0
        self._now_us = 0
        self.unmatched_callbacks = 0

    # -- for subclasses -------------------------------------------------------
    def _emit(self, t_send_us: float, seq: int, size_bytes: int) -> int:
        """Schedule packet ``seq`` sent at ``t_send_us``; returns its arrival time at the cell."""
        t_arrival = max(int(t_send_us) + self.forward_delay_us, self._last_arrival_us + 1)
        self._last_arrival_us = t_arrival
        heapq.heappush(self._outbox, (t_arrival, seq, int(size_bytes)))
        return t_arrival

    def feedback_arrival_us(self, t_event_us: int) -> int:
        """When the sender learns of an event the receiver saw at ``t_event_us``."""
        return int(t_event_us) + self.feedback_delay_us

    def _advance(self, t_us: int) -> None:
        """Run the sender's own clock (frames, timers) up to ``t_us`` (exclusive)."""
        raise NotImplementedError

    def _on_feedback(self, t_us: int, seq: int, t_received_us: int | None) -> None:
        """The sender learns at ``t_us`` that ``seq`` was received at ``t_received_us`` (None: lost)."""
        raise NotImplementedError

    def _end_of_feedback_batch(self, t_us: int) -> None:
        """Called after all feedback learned at the same ``t_us`` was handed over."""

    # -- the TrafficSource protocol -------------------------------------------
    def run_until(self, t_end_us: int) -> None:
        """Process feedback and sender timers in time order up to ``t_end_us`` (exclusive)."""
        fb = self._feedback
        while fb and fb[0][0] < t_end_us:
            t_learn = fb[0][0]
            self._advance(t_learn)
            while fb and fb[0][0] == t_learn:
                _, _, seq, t_rx = heapq.heappop(fb)
                self._on_feedback(t_learn, seq, t_rx)
            self._end_of_feedback_batch(t_learn)
        self._advance(t_end_us)
        self._now_us = t_end_us

    def on_slot(self, view, t_us: int) -> Iterable[Packet]:
        slot_us = int(getattr(view, "slot_us", 1000))
        t_end = int(t_us) + slot_us
        self.run_until(t_end)
        out = []
        box = self._outbox
        while box and box[0][0] < t_end:
            t_arrival, seq, size = heapq.heappop(box)
            t_arrival = max(t_arrival, int(t_us))
            self._by_arrival.setdefault(t_arrival, deque()).append(seq)
            out.append(Packet(t_arrival, self.ue, self.direction, size))
        return out

    def _match(self, t_arrival_us: int) -> int | None:
        q = self._by_arrival.get(int(t_arrival_us))
        if not q:
            self.unmatched_callbacks += 1
            return None
        seq = q.popleft()
        if not q:
            del self._by_arrival[int(t_arrival_us)]
        return seq

    def _push_feedback(self, t_learn_us: int, seq: int, t_received_us: int | None) -> None:
        self._feedback_order += 1
        heapq.heappush(self._feedback, (int(t_learn_us), self._feedback_order, seq, t_received_us))

    def on_delivered(self, delivery) -> None:
        seq = self._match(delivery.t_arrival_us)
        if seq is not None:
            self._push_feedback(self.feedback_arrival_us(delivery.t_delivered_us), seq,
                                int(delivery.t_delivered_us))

    def on_dropped(self, drop) -> None:
        seq = self._match(drop.t_arrival_us)
        if seq is not None:
            self._push_feedback(self.feedback_arrival_us(drop.t_drop_us), seq, None)
