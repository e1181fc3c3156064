"""Clocks that drive the engine: virtual (as fast as possible) and wall (real time).

A clock only says which slots are due; the engine runs them. ``WallClock``
never skips a slot: when the process wakes up late it returns every slot whose
boundary has passed, so the cell's capacity is never lost to scheduling
jitter, and it records how late each slot was released (µs).
"""

from __future__ import annotations

import time
from typing import Callable


class VirtualClock:
    """Offline time: every slot is due at once."""

    def __init__(self, slot_us: int) -> None:
        self.slot_us = int(slot_us)

    def wait(self, next_slot: int) -> list[tuple[int, int]]:
        """[(slot, lateness_us)] for the slots to run now: just ``next_slot``, on time."""
        return [(next_slot, 0)]


class WallClock:
    """Real time: slot n is due at ``start + n * slot_us``."""

    def __init__(self, slot_us: int, *, start_ns: int | None = None,
                 now_ns: Callable[[], int] = time.monotonic_ns,
                 sleep: Callable[[float], None] = time.sleep, max_record: int = 1_000_000) -> None:
        self.slot_us = int(slot_us)
        self._now = now_ns
        self._sleep = sleep
        self.start_ns = int(start_ns if start_ns is not None else now_ns())
        self.lateness_us: list[int] = []
        self._max_record = int(max_record)

    def boundary_ns(self, slot: int) -> int:
        return self.start_ns + slot * self.slot_us * 1000

    def wait(self, next_slot: int) -> list[tuple[int, int]]:
        """Sleep until ``next_slot``'s boundary; return every slot now due with its lateness."""
        target = self.boundary_ns(next_slot)
        now = self._now()
        if now < target:
            self._sleep((target - now) / 1e9)
            now = self._now()
        due = []
        slot = next_slot
        while self.boundary_ns(slot) <= now:
            late = (now - self.boundary_ns(slot)) // 1000
            due.append((slot, int(late)))
            slot += 1
        if not due:  # woke up a hair early: the slot is due now
            due.append((next_slot, 0))
        if len(self.lateness_us) < self._max_record:
            self.lateness_us.extend(late for _, late in due)
        return due


def run_realtime(engine, duration_s: float, clock: WallClock | None = None,
                 on_slot: Callable | None = None) -> WallClock:
    """Drive ``engine`` from a wall clock for ``duration_s``; ``on_slot(result, lateness_us)`` per slot."""
    clock = clock or WallClock(engine.slot_us)
    end_slot = engine.slot + int(round(duration_s * 1e6 / engine.slot_us))
    while engine.slot < end_slot:
        for _slot, late in clock.wait(engine.slot):
            if engine.slot >= end_slot:
                break
            res = engine.step()
            if on_slot is not None:
                on_slot(res, late)
    return clock
