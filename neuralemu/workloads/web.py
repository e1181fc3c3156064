"""Web page loads: pages of many objects, think time between pages.

Model (parameters and sources in docs/workloads.md):
- A page has N objects, N lognormal with median ``objects_median`` (HTTP
  Archive: about 70 requests per page at the median). The first object is the
  HTML document (lognormal, median ``html_median_bytes``); the other N-1 are
  lognormal with median ``object_median_bytes`` and sigma ``object_sigma``,
  which gives a median page weight of about 2 MB (HTTP Archive).
- The user clicks at t: one uplink request packet; the HTML arrives at the gNB
  one ``server_rtt_ms`` later, paced at ``server_rate_mbps``. After an
  exponential parsing time (mean ``parse_mean_s``, 3GPP2 C.R1002 / IEEE
  802.16m EMD HTTP model) the embedded objects are fetched over
  ``connections`` parallel connections: each connection sends a request, the
  response arrives one RTT later at ``server_rate_mbps/connections``, and the
  next request follows the end of the response.
- After the page's last packet, the user reads for an exponential think time
  (mean ``think_mean_s``) and clicks again.

This is open loop: arrival times at the gNB do not wait for delivery to the
user, so page load times measured from a run are a lower bound on what a
closed-loop browser would see when the cell is the bottleneck.

Every packet (requests up, responses down) carries its page index as
``unit``; pages of one user never overlap in time, so page load times can be
computed from a delivery log (:mod:`neuralemu.workloads.units`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from neuralemu.workloads.packet import MTU_BYTES, Packet, serialization_us, split_bytes, ue_rng


@dataclass(frozen=True)
class WebBrowsing:
    objects_median: float = 70.0
    objects_sigma: float = 0.7
    max_objects: int = 1000
    html_median_bytes: float = 30_000.0
    html_sigma: float = 1.0
    object_median_bytes: float = 8_000.0
    object_sigma: float = 1.6
    max_object_bytes: int = 20_000_000
    think_mean_s: float = 10.0
    parse_mean_s: float = 0.13
    server_rtt_ms: float = 20.0
    server_rate_mbps: float = 100.0
    connections: int = 6
    request_bytes: int = 500
    packet_bytes: int = MTU_BYTES

    kind = "web"

    def __post_init__(self) -> None:
        positive = ("objects_median", "html_median_bytes", "object_median_bytes",
                    "think_mean_s", "server_rate_mbps")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"web needs {name} > 0")
        if self.connections < 1 or self.max_objects < 1 or self.server_rtt_ms < 0:
            raise ValueError("web needs connections >= 1, max_objects >= 1, server_rtt_ms >= 0")
        if not 1 <= self.request_bytes <= MTU_BYTES or not 1 <= self.packet_bytes <= MTU_BYTES:
            raise ValueError("packet sizes must be 1..1500 bytes")

    def draw_page(self, rng: np.random.Generator) -> np.ndarray:
        """Object sizes of one page in bytes; element 0 is the HTML document."""
        n = int(np.clip(round(self.objects_median * np.exp(self.objects_sigma
                                                           * rng.standard_normal())),
                        1, self.max_objects))
        html = self.html_median_bytes * np.exp(self.html_sigma * rng.standard_normal())
        objs = self.object_median_bytes * np.exp(self.object_sigma * rng.standard_normal(n - 1))
        sizes = np.concatenate([[html], objs])
        return np.clip(np.round(sizes), 1, self.max_object_bytes).astype(np.int64)

    def _object(self, ue: int, page: int, request_us: int, size: int, rate_bps: float
                ) -> tuple[list[Packet], int]:
        """One request up and its response down; returns packets and the last dl time."""
        out = [Packet(request_us, ue, "ul", self.request_bytes, page)]
        t0 = request_us + int(self.server_rtt_ms * 1000)
        pkt_us = serialization_us(self.packet_bytes, rate_bps)
        last = t0
        for k, part in enumerate(split_bytes(size, self.packet_bytes)):
            last = t0 + int(k * pkt_us)
            out.append(Packet(last, ue, "dl", part, page))
        return out, last

    def page_packets(self, ue: int, page: int, click_us: int, rng: np.random.Generator
                     ) -> tuple[list[Packet], int]:
        """All packets of one page, time-ordered, and the time of its last packet."""
        sizes = self.draw_page(rng)
        rate_bps = self.server_rate_mbps * 1e6
        packets, html_end = self._object(ue, page, click_us, int(sizes[0]), rate_bps)
        start = html_end + 1 + int(rng.exponential(self.parse_mean_s) * 1e6)
        end = html_end
        per_conn_bps = rate_bps / self.connections
        for c in range(self.connections):
            t = start
            for size in sizes[1 + c::self.connections].tolist():
                pkts, last = self._object(ue, page, t, int(size), per_conn_bps)
                packets.extend(pkts)
                end = max(end, last)
                t = last + 1
        packets.sort(key=lambda p: p.t_us)  # stable: ties keep request-before-response order
        return packets, end

    def ue_packets(self, ue: int, duration_us: int, seed: int) -> Iterator[Packet]:
        rng = ue_rng(seed, ue)
        click = int(rng.exponential(self.think_mean_s) * 1e6)  # users start reading
        page = 0
        while click < duration_us:
            packets, end = self.page_packets(ue, page, click, rng)
            if end >= duration_us:           # only whole pages inside the run
                return
            yield from packets
            page += 1
            click = end + 1 + int(rng.exponential(self.think_mean_s) * 1e6)
