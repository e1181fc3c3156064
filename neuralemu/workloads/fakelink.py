"""A FIFO bottleneck of known capacity that drives closed-loop sources like the engine does.

For tests and quick experiments with :class:`~neuralemu.workloads.gcc.GccSender`
and :class:`~neuralemu.workloads.tcp.TcpLikeSource` without a cell: every slot
it asks each source for packets (``on_slot(view, t_us)``), serves
``capacity_bps x slot`` bytes from one shared drop-tail FIFO, and reports
``Delivery`` / ``Drop`` (the engine's own records) back to the source that
sent each packet. A packet is delivered at the end of the slot in which its
last byte is served; packets arriving in a slot are served from the next slot
on, as in the engine.
"""

from __future__ import annotations

from collections import deque

from neuralemu.cell.traffic import Delivery, Drop


class FakeBottleneck:
    def __init__(self, capacity_bps: float, *, slot_us: int = 1000,
                 queue_limit_bytes: int = 2_000_000) -> None:
        if capacity_bps < 0 or slot_us <= 0 or queue_limit_bytes <= 0:
            raise ValueError("need capacity_bps >= 0, slot_us > 0 and queue_limit_bytes > 0")
        self.capacity_bps = float(capacity_bps)
        self.slot_us = int(slot_us)
        self.queue_limit_bytes = int(queue_limit_bytes)
        self.slot = 0
        self._queue: deque[list] = deque()  # [packet_id, source_index, ue, dir, size, t_arr, left]
        self._queue_bytes = 0
        self._budget_bytes = 0.0
        self._next_id = 0
        self.delivered_bytes = 0

    @property
    def t_us(self) -> int:
        return self.slot * self.slot_us

    def set_capacity_bps(self, capacity_bps: float) -> None:
        self.capacity_bps = float(capacity_bps)

    def run(self, n_slots: int, sources=()) -> None:
        sources = list(sources)
        for _ in range(int(n_slots)):
            self._step(sources)

    def run_until(self, t_us: int, sources=()) -> None:
        sources = list(sources)
        while self.t_us < t_us:
            self._step(sources)

    def _step(self, sources) -> None:
        t0 = self.t_us
        t_end = t0 + self.slot_us
        delivered: list[tuple[int, Delivery]] = []
        dropped: list[tuple[int, Drop]] = []
        # serve what was queued before this slot
        self._budget_bytes += self.capacity_bps * self.slot_us / 8e6
        q = self._queue
        while q and self._budget_bytes > 0:
            head = q[0]
            take = min(head[6], self._budget_bytes)
            head[6] -= take
            self._budget_bytes -= take
            if head[6] <= 1e-9:
                q.popleft()
                self._queue_bytes -= head[4]
                self.delivered_bytes += head[4]
                delivered.append((head[1], Delivery(head[0], head[2], head[3], head[4], head[5],
                                                    t_end)))
        if not q:
            self._budget_bytes = 0.0     # an idle link does not bank capacity
        # then take this slot's arrivals (served from the next slot on)
        for i, src in enumerate(sources):
            for pkt in src.on_slot(self, t0):
                t_arr, ue, direction, size = int(pkt[0]), int(pkt[1]), str(pkt[2]), int(pkt[3])
                pid = self._next_id
                self._next_id += 1
                if self._queue_bytes + size > self.queue_limit_bytes:
                    dropped.append((i, Drop(pid, ue, direction, size, t_arr, t_arr, "queue")))
                    continue
                q.append([pid, i, ue, direction, size, t_arr, float(size)])
                self._queue_bytes += size
        for i, d in delivered:
            sources[i].on_delivered(d)
        for i, d in dropped:
            sources[i].on_dropped(d)
        self.slot += 1
