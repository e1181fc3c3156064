"""A closed-loop, TCP-like bulk sender: ACK-clocked window with CUBIC or Reno.

The sender keeps at most ``min(cwnd, max_window)`` full-size packets in
flight. Each delivery the cell reports becomes an ACK that reaches the sender
``ack_delay_ms`` later (the return path); each drop the cell reports is
detected ``ack_delay_ms`` after it happened (standing in for three duplicate
ACKs) and the segment is retransmitted. Every new ACK or loss clocks out new
packets, which reach the gNB ``forward_delay_ms`` after they are sent.

Congestion control:
- slow start: cwnd += 1 segment per ACK below ssthresh (RFC 5681);
- ``cubic`` (RFC 9438): W(t) = C (t - K)^3 + W_max with C = 0.4, beta = 0.7,
  fast convergence, and the Reno-friendly region;
- ``reno`` (RFC 5681): cwnd += 1/cwnd per ACK, halved on loss;
- at most one window reduction per round trip (a loss of a segment sent
  before the last reduction does not reduce again).

Simplifications, stated plainly: no retransmission timeout (the cell reports
every loss, so none is needed), no delayed ACKs, SACK-like recovery (every
reported loss is retransmitted at once), no pacing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from neuralemu.workloads.closedloop import ClosedLoopSource


@dataclass(frozen=True)
class TcpParams:
    cc: str = "cubic"                  # or "reno"
    mss_bytes: int = 1448
    header_bytes: int = 52             # IPv4 20 + TCP 20 + timestamps 12: 1500-byte packets
    initial_cwnd: int = 10             # RFC 6928
    max_window_bytes: int = 6_291_456  # receive window cap (Linux tcp_rmem max, 6 MiB)
    forward_delay_ms: float = 10.0     # sender -> gNB
    ack_delay_ms: float = 10.0         # receiver -> sender
    start_s: float = 0.0
    flow_bytes: int | None = None      # None: backlogged forever; else a finite transfer

    def __post_init__(self) -> None:
        if self.cc not in ("cubic", "reno"):
            raise ValueError(f"cc must be cubic or reno, got {self.cc!r}")
        if self.mss_bytes < 1 or self.header_bytes < 0 or self.mss_bytes + self.header_bytes > 1500:
            raise ValueError("need mss_bytes >= 1 and mss_bytes + header_bytes <= 1500")
        if self.initial_cwnd < 1 or self.max_window_bytes < self.mss_bytes:
            raise ValueError("need initial_cwnd >= 1 and max_window_bytes >= mss_bytes")
        if self.forward_delay_ms < 0 or self.ack_delay_ms < 0 or self.start_s < 0:
            raise ValueError("delays and start_s must be >= 0")
        if self.flow_bytes is not None and self.flow_bytes < 1:
            raise ValueError("flow_bytes must be >= 1 (or None for a backlogged flow)")


class TcpLikeSource(ClosedLoopSource):
    """A ``TrafficSource`` for the engine; see the module docstring."""

    C = 0.4
    BETA_CUBIC = 0.7

    def __init__(self, ue: int, direction: str = "dl", params: TcpParams | None = None) -> None:
        p = params or TcpParams()
        super().__init__(ue, direction, forward_delay_us=int(p.forward_delay_ms * 1000),
                         feedback_delay_us=int(p.ack_delay_ms * 1000))
        self.params = p
        self.packet_bytes = p.mss_bytes + p.header_bytes
        self.cwnd = float(p.initial_cwnd)
        self.ssthresh = float("inf")
        self._max_window_pkts = max(1, p.max_window_bytes // p.mss_bytes)
        self._total_segments = (None if p.flow_bytes is None
                                else -(-int(p.flow_bytes) // p.mss_bytes))
        self._next_new = 0
        self._retx: deque[int] = deque()
        self._inflight: dict[int, tuple[int, bool]] = {}   # seq -> (t_send_us, retransmitted)
        self._acked = 0
        self._started = False
        self._last_reduction_us = -1
        self.srtt_us: float | None = None
        self.min_rtt_us: float | None = None
        # CUBIC state (RFC 9438 4)
        self._w_max = 0.0
        self._w_last_max = 0.0
        self._epoch_us: int | None = None
        self._k_s = 0.0
        self._origin = 0.0
        self._w_est = 0.0
        self.completion_us: int | None = None
        self.retransmissions = 0
        self._deliveries: list[tuple[int, int]] = []        # (t_received_us, wire bytes)
        self._series: list[tuple[int, float, float, float]] = []

    # -- sending ---------------------------------------------------------------
    def _window_pkts(self) -> int:
        return max(1, min(int(self.cwnd), self._max_window_pkts))

    def _send(self, now_us: int) -> None:
        while len(self._inflight) < self._window_pkts():
            if self._retx:
                seq = self._retx.popleft()
                retx = True
                self.retransmissions += 1
            elif self._total_segments is None or self._next_new < self._total_segments:
                seq = self._next_new
                self._next_new += 1
                retx = False
            else:
                return
            self._inflight[seq] = (now_us, retx)
            self._emit(now_us, seq, self.packet_bytes)

    def _advance(self, t_us: int) -> None:
        start_us = int(self.params.start_s * 1e6)
        if not self._started and start_us < t_us:
            self._started = True
            self._send(start_us)

    # -- ACKs and losses -------------------------------------------------------
    def _on_feedback(self, t_us: int, seq: int, t_received_us: int | None) -> None:
        sent = self._inflight.pop(seq, None)
        if sent is None:
            return
        t_send, retx = sent
        if t_received_us is None:
            self._retx.append(seq)
            if t_send > self._last_reduction_us:      # one reduction per round trip
                self._on_congestion(t_us)
            return
        self._acked += 1
        self._deliveries.append((int(t_received_us), self.packet_bytes))
        if not retx:                                   # Karn: no samples from retransmissions
            rtt = t_us - t_send
            self.srtt_us = rtt if self.srtt_us is None else 0.875 * self.srtt_us + 0.125 * rtt
            self.min_rtt_us = rtt if self.min_rtt_us is None else min(self.min_rtt_us, rtt)
        self._on_ack(t_us)
        if self._total_segments is not None and self._acked >= self._total_segments:
            self.completion_us = t_us if self.completion_us is None else self.completion_us

    def _on_ack(self, now_us: int) -> None:
        if self.cwnd < self.ssthresh:
            self.cwnd += 1.0
            return
        if self.params.cc == "reno":
            self.cwnd += 1.0 / self.cwnd
            return
        if self._epoch_us is None:
            self._epoch_us = now_us
            if self.cwnd < self._w_max:
                self._k_s = ((self._w_max - self.cwnd) / self.C) ** (1 / 3)
                self._origin = self._w_max
            else:
                self._k_s = 0.0
                self._origin = self.cwnd
            self._w_est = self.cwnd
        rtt_s = (self.min_rtt_us or 0.0) / 1e6
        t_s = (now_us - self._epoch_us) / 1e6 + rtt_s
        target = self._origin + self.C * (t_s - self._k_s) ** 3
        target = min(max(target, self.cwnd), 1.5 * self.cwnd)
        self.cwnd += (target - self.cwnd) / self.cwnd
        beta = self.BETA_CUBIC
        self._w_est += 3 * (1 - beta) / (1 + beta) / self.cwnd
        if self._w_est > self.cwnd:                    # Reno-friendly region
            self.cwnd = self._w_est

    def _on_congestion(self, now_us: int) -> None:
        self._last_reduction_us = now_us
        if self.params.cc == "reno":
            self.ssthresh = max(self.cwnd / 2, 2.0)
        else:
            beta = self.BETA_CUBIC
            if self.cwnd < self._w_last_max:           # fast convergence
                self._w_last_max = self.cwnd
                self._w_max = self.cwnd * (1 + beta) / 2
            else:
                self._w_last_max = self.cwnd
                self._w_max = self.cwnd
            self.ssthresh = max(self.cwnd * beta, 2.0)
            self._epoch_us = None
        self.cwnd = self.ssthresh

    def _end_of_feedback_batch(self, t_us: int) -> None:
        self._series.append((t_us, self.cwnd, self.ssthresh, self.srtt_us or np.nan))
        self._send(t_us)

    # -- outputs ---------------------------------------------------------------
    def cwnd_series(self) -> pd.DataFrame:
        """``t_us``, ``cwnd_packets``, ``ssthresh_packets``, ``srtt_us`` after each ACK batch."""
        return pd.DataFrame(self._series, columns=["t_us", "cwnd_packets", "ssthresh_packets",
                                                   "srtt_us"])

    def throughput_series(self, bin_ms: float = 100.0) -> pd.DataFrame:
        """Delivered wire throughput per bin at the receiver: ``t_us`` (bin start), ``bps``."""
        if not self._deliveries:
            return pd.DataFrame({"t_us": np.empty(0, np.int64), "bps": np.empty(0)})
        t = np.array([d[0] for d in self._deliveries], dtype=np.int64)
        b = np.array([d[1] for d in self._deliveries], dtype=np.int64)
        bin_us = int(bin_ms * 1000)
        idx = t // bin_us
        bins = np.arange(idx.min(), idx.max() + 1)
        sums = np.bincount(idx - idx.min(), weights=b, minlength=len(bins))
        return pd.DataFrame({"t_us": bins * bin_us, "bps": sums * 8e6 / bin_us})

    @property
    def delivered_bytes(self) -> int:
        return sum(d[1] for d in self._deliveries)
