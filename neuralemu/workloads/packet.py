"""The packet record that every workload yields, and helpers shared by generators.

A workload is a time-ordered stream of :class:`Packet`: one IP packet arriving
at the gNB (``dl``) or generated at the UE (``ul``). This is exactly one row of
the workload CSV (``t_us,ue,direction,size_bytes``, DESIGN.md). ``unit`` is an
application data unit (a web page, a video frame) the packet belongs to, or -1;
it is not part of the CSV but can be kept in a sidecar (:mod:`.units`).
"""

from __future__ import annotations

import heapq
from typing import Iterable, Iterator, NamedTuple

import numpy as np

DIRECTIONS = ("dl", "ul")
MTU_BYTES = 1500               # Ethernet MTU: IP packets of at most this size
MAX_IP_PACKET_BYTES = 65535    # RFC 791 total-length field


class Packet(NamedTuple):
    t_us: int
    ue: int
    direction: str
    size_bytes: int
    unit: int = -1


def ue_rng(seed: int, ue: int, stream: int = 0) -> np.random.Generator:
    """An RNG for one user of one workload, independent of how many users there are.

    Seeding with ``(seed, ue, stream)`` makes user ``ue``'s packets the same
    whether it is generated alone or together with others.
    """
    return np.random.default_rng([int(seed), int(ue), int(stream)])


def split_bytes(total_bytes: int, packet_bytes: int = MTU_BYTES) -> list[int]:
    """Split an application message into IP packets of at most ``packet_bytes``."""
    total_bytes = int(total_bytes)
    if total_bytes <= 0:
        return []
    full, rest = divmod(total_bytes, packet_bytes)
    return [packet_bytes] * full + ([rest] if rest else [])


def serialization_us(size_bytes: int, rate_bps: float) -> float:
    """Time to put ``size_bytes`` on a link of ``rate_bps``."""
    return size_bytes * 8 * 1e6 / rate_bps


def merge_streams(streams: Iterable[Iterator[Packet]]) -> Iterator[Packet]:
    """Merge per-user, time-ordered packet streams into one stream sorted by ``t_us``.

    Ties keep user order, then each stream's own order (``heapq.merge`` is stable).
    """
    return heapq.merge(*streams, key=lambda p: p.t_us)
