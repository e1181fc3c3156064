"""Open-loop workloads: seeded, deterministic packet generators that ignore delivery.

Each workload is a frozen dataclass of its parameters with one method,
``ue_packets(ue, duration_us, seed)``, that yields one user's packets in time
order. :func:`generate` merges users into one stream sorted by ``t_us``. A
user's packets depend only on ``(seed, ue)`` and the parameters, never on
which other users are generated with it.

The kinds here are ``bulk``, ``cbr`` and ``onoff``; ``gaming`` and ``web``
live in their own modules. docs/workloads.md gives every parameter's source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from neuralemu.workloads.packet import MTU_BYTES, Packet, merge_streams, ue_rng

_CHUNK_US = 1_000_000  # generate periodic streams one second at a time


def _directions(direction: str) -> tuple[str, ...]:
    if direction == "both":
        return ("dl", "ul")
    if direction in ("dl", "ul"):
        return (direction,)
    raise ValueError(f"direction must be dl, ul or both, got {direction!r}")


def _periodic(t0_us: float, t1_us: float, interval_us: float, phase_us: float) -> np.ndarray:
    """Integer times phase + k*interval within [t0, t1) (k >= 0)."""
    k0 = max(0, int(np.ceil((t0_us - phase_us) / interval_us)))
    k1 = int(np.ceil((t1_us - phase_us) / interval_us))
    if k1 <= k0:
        return np.empty(0, dtype=np.int64)
    t = phase_us + np.arange(k0, k1, dtype=np.float64) * interval_us
    t = np.floor(t).astype(np.int64)
    return t[(t >= t0_us) & (t < t1_us)]


def _interleave(per_direction: dict[str, Iterator[Packet]]) -> Iterator[Packet]:
    return merge_streams(per_direction[d] for d in sorted(per_direction))


@dataclass(frozen=True)
class Cbr:
    """Constant bit rate: ``packet_bytes`` packets every ``packet_bytes*8/rate`` seconds.

    Each user's first packet comes at a seeded random phase within one
    interval so that users do not arrive in lock step.
    """

    rate_mbps: float = 1.0
    packet_bytes: int = 1200
    direction: str = "dl"           # dl, ul or both (the same stream each way)

    kind = "cbr"

    def __post_init__(self) -> None:
        if self.rate_mbps <= 0 or not 1 <= self.packet_bytes <= MTU_BYTES:
            raise ValueError("cbr needs rate_mbps > 0 and 1 <= packet_bytes <= 1500")
        _directions(self.direction)

    @property
    def interval_us(self) -> float:
        return self.packet_bytes * 8 / self.rate_mbps

    def _stream(self, ue: int, direction: str, duration_us: int, phase_us: float,
                start_us: float = 0.0) -> Iterator[Packet]:
        for c0 in range(int(start_us), duration_us, _CHUNK_US):
            c1 = min(c0 + _CHUNK_US, duration_us)
            for t in _periodic(max(c0, start_us), c1, self.interval_us, phase_us).tolist():
                yield Packet(t, ue, direction, self.packet_bytes)

    def ue_packets(self, ue: int, duration_us: int, seed: int) -> Iterator[Packet]:
        rng = ue_rng(seed, ue)
        streams = {d: self._stream(ue, d, duration_us, float(rng.uniform(0, self.interval_us)))
                   for d in _directions(self.direction)}
        return _interleave(streams)


@dataclass(frozen=True)
class Bulk:
    """A backlogged sender that keeps the user's buffer full.

    Model: an initial burst of ``initial_bytes`` (MTU packets, all at the
    user's start time) followed by a constant ``rate_mbps`` stream that should
    be well above what the cell can give one user, so the buffer never drains;
    the engine's buffer limit then decides what is dropped. This is the
    open-loop stand-in for iperf-UDP-style saturation; the closed-loop, TCP-like
    bulk source is :class:`neuralemu.workloads.tcp.TcpLikeSource`.
    """

    rate_mbps: float = 300.0
    initial_bytes: int = 1_000_000
    packet_bytes: int = MTU_BYTES
    direction: str = "dl"
    start_spread_us: int = 1000     # users start at a seeded time in [0, this)

    kind = "bulk"

    def __post_init__(self) -> None:
        if self.rate_mbps < 0 or self.initial_bytes < 0 or not 1 <= self.packet_bytes <= MTU_BYTES:
            raise ValueError("bulk needs rate_mbps >= 0, initial_bytes >= 0, 1 <= packet_bytes <= 1500")
        _directions(self.direction)

    def _stream(self, ue: int, direction: str, duration_us: int, start_us: int) -> Iterator[Packet]:
        if start_us >= duration_us:
            return
        full, rest = divmod(self.initial_bytes, self.packet_bytes)
        for _ in range(full):
            yield Packet(start_us, ue, direction, self.packet_bytes)
        if rest:
            yield Packet(start_us, ue, direction, rest)
        if self.rate_mbps > 0:
            cbr = Cbr(self.rate_mbps, self.packet_bytes, direction)
            # the stream starts one interval after the burst
            yield from cbr._stream(ue, direction, duration_us, start_us + cbr.interval_us,
                                   start_us + cbr.interval_us)

    def ue_packets(self, ue: int, duration_us: int, seed: int) -> Iterator[Packet]:
        rng = ue_rng(seed, ue)
        streams = {d: self._stream(ue, d, duration_us,
                                   int(rng.integers(0, max(1, self.start_spread_us))))
                   for d in _directions(self.direction)}
        return _interleave(streams)


@dataclass(frozen=True)
class OnOff:
    """On-off source: CBR at ``rate_mbps`` during on periods, silence during off periods.

    Period lengths are exponential, or Pareto with shape ``pareto_shape``
    (heavy-tailed, the classic model of self-similar traffic: Willinger et
    al., SIGCOMM 1995), scaled to the configured means. The source starts on
    with the stationary probability on/(on+off).
    """

    rate_mbps: float = 10.0
    packet_bytes: int = 1200
    mean_on_s: float = 1.0
    mean_off_s: float = 1.0
    distribution: str = "exponential"   # or "pareto"
    pareto_shape: float = 1.5           # > 1 so that the mean exists
    direction: str = "dl"

    kind = "onoff"

    def __post_init__(self) -> None:
        if self.distribution not in ("exponential", "pareto"):
            raise ValueError(f"distribution must be exponential or pareto, got {self.distribution!r}")
        if self.mean_on_s <= 0 or self.mean_off_s <= 0 or self.rate_mbps <= 0:
            raise ValueError("onoff needs rate_mbps, mean_on_s and mean_off_s > 0")
        if self.distribution == "pareto" and self.pareto_shape <= 1:
            raise ValueError("pareto_shape must be > 1 for the mean to exist")
        if not 1 <= self.packet_bytes <= MTU_BYTES:
            raise ValueError("packet_bytes must be 1..1500")
        _directions(self.direction)

    def draw_period_s(self, rng: np.random.Generator, mean_s: float) -> float:
        if self.distribution == "exponential":
            return float(rng.exponential(mean_s))
        a = self.pareto_shape
        x_m = mean_s * (a - 1) / a            # Pareto scale for the requested mean
        return float(x_m * (1.0 + rng.pareto(a)))  # numpy's pareto is Lomax: shift by 1

    def iter_periods_us(self, ue: int, duration_us: int, seed: int, stream: int = 0
                        ) -> Iterator[tuple[int, int]]:
        """The on periods [start, end) of one user and direction, in microseconds (lazy)."""
        rng = ue_rng(seed, ue, stream)
        on = rng.random() < self.mean_on_s / (self.mean_on_s + self.mean_off_s)
        t_us = 0.0
        while t_us < duration_us:
            length_us = self.draw_period_s(rng, self.mean_on_s if on else self.mean_off_s) * 1e6
            if on and int(min(t_us + length_us, duration_us)) > int(t_us):
                yield int(t_us), int(min(t_us + length_us, duration_us))
            t_us += length_us
            on = not on

    def periods_us(self, ue: int, duration_us: int, seed: int, stream: int = 0
                   ) -> list[tuple[int, int]]:
        return list(self.iter_periods_us(ue, duration_us, seed, stream))

    def _stream(self, ue: int, direction: str, duration_us: int, seed: int, stream: int
                ) -> Iterator[Packet]:
        interval_us = self.packet_bytes * 8 / self.rate_mbps
        for start_us, end_us in self.iter_periods_us(ue, duration_us, seed, stream):
            for c0 in range(start_us, end_us, _CHUNK_US):
                for t in _periodic(c0, min(c0 + _CHUNK_US, end_us), interval_us, start_us).tolist():
                    yield Packet(t, ue, direction, self.packet_bytes)

    def ue_packets(self, ue: int, duration_us: int, seed: int) -> Iterator[Packet]:
        streams = {d: self._stream(ue, d, duration_us, seed, i)
                   for i, d in enumerate(_directions(self.direction))}
        return _interleave(streams)


def generate(workload, ues: Sequence[int], duration_s: float, seed: int) -> Iterator[Packet]:
    """All users' packets of ``workload`` in ``[0, duration_s)``, sorted by ``t_us``."""
    duration_us = int(round(duration_s * 1e6))
    return merge_streams(workload.ue_packets(int(ue), duration_us, int(seed)) for ue in ues)
