"""A WebRTC-like video sender with Google Congestion Control (GCC).

Follows draft-ietf-rmcat-gcc-02 with the send-side structure and constants of
libwebrtc's GoogCC (transport-wide feedback, trendline estimator):

- :class:`InterArrival`: packets are grouped by send time into 5 ms bursts
  (gcc-02 5.2); for consecutive groups the delay variation is
  d = (arrival delta) - (send delta).
- :class:`TrendlineEstimator`: accumulated delay, exponentially smoothed
  (0.9), and the slope of a least-squares line over the last 20 groups;
  the overuse detector (gcc-02 5.4) compares the slope, scaled by
  min(groups, 60) x 4, with an adaptive threshold (initially 12.5 ms,
  k_up 0.0087, k_down 0.039, in [6, 600]); overuse needs 10 ms of sustained,
  non-decreasing excess.
- :class:`AimdRateControl` (gcc-02 5.5): overuse -> decrease to 0.85 x the
  acknowledged bitrate; underuse -> hold; normal -> increase, multiplicatively
  (8 % per second) far from the last congestion point, additively (one
  packet per response time) near it; never above 1.5 x the acknowledged rate.
- :class:`LossBasedControl` (gcc-02 6): loss > 10 % -> rate x (1 - 0.5 loss);
  loss < 2 % -> rate x 1.05; in between -> hold.
- :class:`GccSender`: 30 fps encoder at the target rate min(delay-based,
  loss-based), frames split into ``packet_bytes`` RTP packets and paced at
  2.5 x the target. The receiver sends feedback every
  ``feedback_interval_ms``; it reaches the sender ``feedback_delay_ms`` later.

:meth:`GccSender.bitrate_series` is the encoder bitrate time series (a fidelity
metric: compare it between an emulated and a real run).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from neuralemu.workloads.closedloop import ClosedLoopSource
from neuralemu.workloads.packet import ue_rng

BURST_GROUP_US = 5_000     # gcc-02 5.2: packets sent within 5 ms form a group


class InterArrival:
    """Groups packets by send time and yields (send delta, arrival delta) per group pair."""

    def __init__(self, group_us: int = BURST_GROUP_US) -> None:
        self.group_us = group_us
        self._cur: list[int] | None = None    # [first_send, last_send, last_arrival]
        self._prev: list[int] | None = None

    def add(self, t_send_us: int, t_arrival_us: int) -> tuple[int, int, int] | None:
        """Feed one received packet (in arrival order). Returns (send_delta_us,
        arrival_delta_us, group_arrival_us) when a group completes."""
        cur = self._cur
        if cur is None:
            self._cur = [t_send_us, t_send_us, t_arrival_us]
            return None
        if t_send_us < cur[0]:                 # reordered packet of an older group
            return None
        if t_send_us - cur[0] <= self.group_us:
            cur[1] = max(cur[1], t_send_us)
            cur[2] = max(cur[2], t_arrival_us)
            return None
        out = None
        if self._prev is not None:
            out = (cur[1] - self._prev[1], cur[2] - self._prev[2], cur[2])
        self._prev = cur
        self._cur = [t_send_us, t_send_us, t_arrival_us]
        return out


class TrendlineEstimator:
    """Delay-gradient trend and the overuse detector (libwebrtc trendline_estimator)."""

    WINDOW = 20
    SMOOTHING = 0.9
    THRESHOLD_GAIN = 4.0
    MIN_DELTAS = 60
    OVERUSE_TIME_MS = 10.0
    K_UP, K_DOWN = 0.0087, 0.039
    MAX_ADAPT_OFFSET_MS = 15.0

    def __init__(self) -> None:
        self.num_deltas = 0
        self.accumulated_ms = 0.0
        self.smoothed_ms = 0.0
        self.first_arrival_ms: float | None = None
        self.window: deque[tuple[float, float]] = deque(maxlen=self.WINDOW)
        self.trend = 0.0
        self.prev_trend = 0.0
        self.threshold_ms = 12.5
        self.last_update_ms: float | None = None
        self.time_over_using_ms = -1.0
        self.overuse_counter = 0
        self.state = "normal"          # normal | overuse | underuse

    def update(self, send_delta_ms: float, arrival_delta_ms: float, arrival_ms: float) -> str:
        delta_ms = arrival_delta_ms - send_delta_ms
        self.num_deltas = min(self.num_deltas + 1, 1000)
        if self.first_arrival_ms is None:
            self.first_arrival_ms = arrival_ms
        self.accumulated_ms += delta_ms
        self.smoothed_ms = (self.SMOOTHING * self.smoothed_ms
                            + (1 - self.SMOOTHING) * self.accumulated_ms)
        self.window.append((arrival_ms - self.first_arrival_ms, self.smoothed_ms))
        if len(self.window) == self.WINDOW:
            x = np.array([p[0] for p in self.window])
            y = np.array([p[1] for p in self.window])
            dx = x - x.mean()
            denom = float((dx * dx).sum())
            if denom > 0:
                self.trend = float((dx * (y - y.mean())).sum() / denom)
        self._detect(send_delta_ms, arrival_ms)
        return self.state

    def _detect(self, send_delta_ms: float, now_ms: float) -> None:
        if self.num_deltas < 2:
            self.state = "normal"
            return
        modified = min(self.num_deltas, self.MIN_DELTAS) * self.trend * self.THRESHOLD_GAIN
        if modified > self.threshold_ms:
            if self.time_over_using_ms == -1:
                self.time_over_using_ms = send_delta_ms / 2
            else:
                self.time_over_using_ms += send_delta_ms
            self.overuse_counter += 1
            if (self.time_over_using_ms > self.OVERUSE_TIME_MS and self.overuse_counter > 1
                    and self.trend >= self.prev_trend):
                self.time_over_using_ms = 0.0
                self.overuse_counter = 0
                self.state = "overuse"
        elif modified < -self.threshold_ms:
            self.time_over_using_ms = -1.0
            self.overuse_counter = 0
            self.state = "underuse"
        else:
            self.time_over_using_ms = -1.0
            self.overuse_counter = 0
            self.state = "normal"
        self.prev_trend = self.trend
        self._update_threshold(modified, now_ms)

    def _update_threshold(self, modified: float, now_ms: float) -> None:
        if self.last_update_ms is None:
            self.last_update_ms = now_ms
        if abs(modified) > self.threshold_ms + self.MAX_ADAPT_OFFSET_MS:
            self.last_update_ms = now_ms       # a spike: do not adapt to it
            return
        k = self.K_DOWN if abs(modified) < self.threshold_ms else self.K_UP
        dt_ms = min(now_ms - self.last_update_ms, 100.0)
        self.threshold_ms += k * (abs(modified) - self.threshold_ms) * dt_ms
        self.threshold_ms = min(max(self.threshold_ms, 6.0), 600.0)
        self.last_update_ms = now_ms


class LinkCapacityEstimator:
    """Running estimate of the rate at which overuse happens (libwebrtc link_capacity_estimator)."""

    def __init__(self) -> None:
        self.estimate_kbps: float | None = None
        self.deviation = 0.4

    def on_overuse(self, acked_kbps: float) -> None:
        if self.estimate_kbps is None:
            self.estimate_kbps = acked_kbps
        else:
            self.estimate_kbps = 0.95 * self.estimate_kbps + 0.05 * acked_kbps
        norm = max(self.estimate_kbps, 1.0)
        err = self.estimate_kbps - acked_kbps
        self.deviation = min(max(0.95 * self.deviation + 0.05 * err * err / norm, 0.4), 2.5)

    def _dev_kbps(self) -> float:
        return math.sqrt(self.deviation * (self.estimate_kbps or 0.0))

    def upper_kbps(self) -> float:
        return math.inf if self.estimate_kbps is None else self.estimate_kbps + 3 * self._dev_kbps()

    def reset(self) -> None:
        self.estimate_kbps = None


class AimdRateControl:
    """The delay-based rate controller of gcc-02 5.5 (libwebrtc aimd_rate_control)."""

    BETA = 0.85

    def __init__(self, start_bps: float, min_bps: float, max_bps: float) -> None:
        self.rate_bps = float(start_bps)
        self.min_bps = float(min_bps)
        self.max_bps = float(max_bps)
        self.state = "increase"
        self.link = LinkCapacityEstimator()
        self.last_change_us: int | None = None
        self.rtt_us = 100_000

    def update(self, signal: str, acked_bps: float | None, now_us: int) -> float:
        # state machine (gcc-02 Figure 2)
        if signal == "overuse":
            self.state = "decrease"
        elif signal == "underuse":
            self.state = "hold"
        elif self.state == "hold":
            self.state = "increase"
        if self.last_change_us is None:
            self.last_change_us = now_us
        dt_us = now_us - self.last_change_us
        if self.state == "increase":
            if acked_bps is not None and acked_bps / 1000 > self.link.upper_kbps():
                self.link.reset()
            if self.link.estimate_kbps is not None:      # near the last congestion point
                bits_per_frame = self.rate_bps / 30.0
                packets_per_frame = max(1.0, math.ceil(bits_per_frame / (1200 * 8)))
                avg_packet_bits = bits_per_frame / packets_per_frame
                response_ms = self.rtt_us / 1000 + 100.0
                rate_per_s = max(4000.0, avg_packet_bits * 1000.0 / response_ms)
                increase = rate_per_s * dt_us / 1e6
            else:
                alpha = 1.08 ** min(dt_us / 1e6, 1.0)
                increase = max(self.rate_bps * (alpha - 1.0), 1000.0 * min(dt_us / 1e6, 1.0))
            new = self.rate_bps + increase
            if acked_bps is not None:      # never run far ahead of what gets through
                new = min(new, max(self.rate_bps, 1.5 * acked_bps + 10_000))
            self.rate_bps = new
            self.last_change_us = now_us
        elif self.state == "decrease":
            if acked_bps is not None:
                decreased = self.BETA * acked_bps
                if decreased < self.rate_bps:
                    self.rate_bps = decreased
                self.link.on_overuse(acked_bps / 1000)
            else:
                self.rate_bps *= self.BETA
            self.state = "hold"
            self.last_change_us = now_us
        else:
            self.last_change_us = now_us
        self.rate_bps = min(max(self.rate_bps, self.min_bps), self.max_bps)
        return self.rate_bps


class LossBasedControl:
    """The loss-based controller of gcc-02 section 6."""

    def __init__(self, start_bps: float, min_bps: float, max_bps: float,
                 min_decrease_interval_us: int = 300_000) -> None:
        self.rate_bps = float(start_bps)
        self.min_bps, self.max_bps = float(min_bps), float(max_bps)
        self.min_decrease_interval_us = min_decrease_interval_us
        self._last_decrease_us = -10**12

    def update(self, loss_fraction: float, now_us: int, rtt_us: int) -> float:
        if loss_fraction > 0.10:
            if now_us - self._last_decrease_us >= self.min_decrease_interval_us + rtt_us:
                self.rate_bps *= 1.0 - 0.5 * loss_fraction
                self._last_decrease_us = now_us
        elif loss_fraction < 0.02:
            self.rate_bps *= 1.05
        self.rate_bps = min(max(self.rate_bps, self.min_bps), self.max_bps)
        return self.rate_bps


class AckedBitrate:
    """Receive rate from feedback over a sliding window (libwebrtc bitrate_estimator: the
    first estimate over 500 ms, then over ``window_us``, 150 ms)."""

    INITIAL_WINDOW_US = 500_000

    def __init__(self, window_us: int = 150_000) -> None:
        self.window_us = window_us
        self._samples: deque[tuple[int, int]] = deque()   # (t_received_us, size)
        self._bytes = 0
        self._first_us: int | None = None

    def add(self, t_received_us: int, size_bytes: int) -> None:
        if self._first_us is None:
            self._first_us = t_received_us
        self._samples.append((t_received_us, size_bytes))
        self._bytes += size_bytes

    def rate_bps(self, now_received_us: int) -> float | None:
        if self._first_us is None:
            return None
        elapsed_us = now_received_us - self._first_us
        window_us = self.INITIAL_WINDOW_US if elapsed_us < self.INITIAL_WINDOW_US else self.window_us
        s = self._samples
        while s and s[0][0] <= now_received_us - window_us:
            self._bytes -= s.popleft()[1]
        span_us = min(window_us, elapsed_us)
        if span_us < 100_000:
            return None
        return self._bytes * 8e6 / span_us


class ProbeTracker:
    """Probe clusters and their bitrate estimate (libwebrtc probe_bitrate_estimator).

    Estimate = min(send rate, receive rate) of a cluster; when the receive rate
    is below 90 % of the send rate the link is saturated and the estimate is
    95 % of the receive rate. Needs at least 80 % of the cluster received.
    """

    def __init__(self) -> None:
        self._clusters: list[dict] = []

    @property
    def n_clusters(self) -> int:
        return len(self._clusters)

    def new_cluster(self, rate_bps: float, n_packets: int) -> int:
        self._clusters.append({"rate": rate_bps, "left": n_packets, "n": n_packets,
                               "sent": [], "recv": []})
        return len(self._clusters) - 1

    def on_feedback(self, cid: int, t_send_us: int, size: int, t_received_us: int | None
                    ) -> tuple[float, float | None] | None:
        """Returns (probe rate, estimate or None) once the whole cluster is reported."""
        c = self._clusters[cid]
        c["left"] -= 1
        c["sent"].append((t_send_us, size))
        if t_received_us is not None:
            c["recv"].append((t_received_us, size))
        if c["left"] > 0:
            return None
        sent = sorted(c["sent"])
        recv = sorted(c["recv"])
        if len(recv) < 0.8 * c["n"] or len(recv) < 2:
            return c["rate"], None
        send_us = sent[-1][0] - sent[0][0]
        recv_us = recv[-1][0] - recv[0][0]
        if send_us <= 0 or recv_us <= 0 or send_us > 1e6 or recv_us > 1e6:
            return c["rate"], None
        send_bps = sum(sz for _, sz in sent[:-1]) * 8e6 / send_us
        recv_bps = sum(sz for _, sz in recv[1:]) * 8e6 / recv_us
        if recv_bps < 0.9 * send_bps:
            return c["rate"], 0.95 * recv_bps
        return c["rate"], min(send_bps, recv_bps)


@dataclass(frozen=True)
class GccParams:
    fps: float = 30.0
    start_bitrate_bps: float = 1_000_000.0
    min_bitrate_bps: float = 50_000.0
    max_bitrate_bps: float = 50_000_000.0
    packet_bytes: int = 1200               # RTP packets of WebRTC video
    pacing_factor: float = 2.5
    frame_size_sigma: float = 0.1          # encoder frame size spread around target/fps
    feedback_interval_ms: float = 50.0     # transport-cc / RTCP report period
    feedback_delay_ms: float = 20.0        # report -> sender (return path)
    forward_delay_ms: float = 10.0         # sender -> gNB (wired path)
    probing: bool = True                   # start-up probe clusters (libwebrtc ProbeController)
    probe_duration_ms: float = 15.0        # one probe cluster
    max_probes: int = 8                    # exponential probing stops after this many clusters

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.feedback_interval_ms <= 0 or self.pacing_factor <= 0:
            raise ValueError("fps, feedback_interval_ms and pacing_factor must be > 0")
        if not 0 < self.min_bitrate_bps <= self.start_bitrate_bps <= self.max_bitrate_bps:
            raise ValueError("need 0 < min_bitrate_bps <= start_bitrate_bps <= max_bitrate_bps")
        if not 1 <= self.packet_bytes <= 1500 or self.frame_size_sigma < 0:
            raise ValueError("need 1 <= packet_bytes <= 1500 and frame_size_sigma >= 0")
        if self.feedback_delay_ms < 0 or self.forward_delay_ms < 0:
            raise ValueError("delays must be >= 0")
        if self.probe_duration_ms <= 0 or self.max_probes < 0:
            raise ValueError("need probe_duration_ms > 0 and max_probes >= 0")


class GccSender(ClosedLoopSource):
    """A 30 fps video sender whose bitrate follows GCC; a ``TrafficSource`` for the engine."""

    def __init__(self, ue: int, direction: str = "dl", params: GccParams | None = None,
                 seed: int = 0) -> None:
        p = params or GccParams()
        super().__init__(ue, direction, forward_delay_us=int(p.forward_delay_ms * 1000),
                         feedback_delay_us=int(p.feedback_delay_ms * 1000))
        self.params = p
        self._rng = ue_rng(seed, ue, 7)
        self._interval_us = int(p.feedback_interval_ms * 1000)
        self.inter_arrival = InterArrival()
        self.trendline = TrendlineEstimator()
        self.delay_control = AimdRateControl(p.start_bitrate_bps, p.min_bitrate_bps,
                                             p.max_bitrate_bps)
        self.loss_control = LossBasedControl(p.start_bitrate_bps, p.min_bitrate_bps,
                                             p.max_bitrate_bps)
        self.acked = AckedBitrate()
        self.target_bps = float(p.start_bitrate_bps)
        self._seq = 0
        self._sent: dict[int, tuple[int, int]] = {}     # seq -> (t_send_us, size)
        self._next_frame_us = 0.0
        self._frame = 0
        self._pacer_free_us = 0.0
        self._batch_received = 0
        self._batch_lost = 0
        self._last_rx_us: int | None = None
        self._series: list[tuple[int, float, int, float, float, float]] = []
        self._rtt_us = 100_000.0
        self._probes = ProbeTracker() if p.probing and p.max_probes > 0 else None
        self._probe_seq: dict[int, int] = {}             # seq -> probe cluster id

    # -- sender clock: encoder + pacer ---------------------------------------
    def _send_probe(self, t_us: float, rate_bps: float) -> None:
        """A cluster of padding packets at ``rate_bps`` for ``probe_duration_ms`` (min 5 packets)."""
        p = self.params
        n = max(5, math.ceil(rate_bps * p.probe_duration_ms / 1000 / 8 / p.packet_bytes))
        cid = self._probes.new_cluster(rate_bps, n)
        t_send = max(t_us, self._pacer_free_us)
        for _ in range(n):
            self._sent[self._seq] = (int(t_send), p.packet_bytes)
            self._probe_seq[self._seq] = cid
            self._emit(t_send, self._seq, p.packet_bytes)
            self._seq += 1
            t_send += p.packet_bytes * 8e6 / rate_bps
        self._pacer_free_us = t_send

    def _advance(self, t_us: int) -> None:
        p = self.params
        if self._probes is not None and self._probes.n_clusters == 0 and t_us > 0:
            # libwebrtc starts with two clusters at 3x and 6x the start bitrate
            self._send_probe(0, 3 * p.start_bitrate_bps)
            self._send_probe(0, 6 * p.start_bitrate_bps)
        while self._next_frame_us < t_us:
            t_frame = self._next_frame_us
            mean_bytes = self.target_bps / 8 / p.fps
            size = max(1, int(round(mean_bytes * math.exp(
                p.frame_size_sigma * self._rng.standard_normal() - p.frame_size_sigma ** 2 / 2))))
            self._series.append((int(t_frame), self.target_bps, size,
                                 self.delay_control.rate_bps, self.loss_control.rate_bps,
                                 self.trendline.threshold_ms))
            pacing_bps = p.pacing_factor * self.target_bps
            t_send = max(t_frame, self._pacer_free_us)
            n_full, rest = divmod(size, p.packet_bytes)
            for part in [p.packet_bytes] * n_full + ([rest] if rest else []):
                self._sent[self._seq] = (int(t_send), part)
                self._emit(t_send, self._seq, part)
                self._seq += 1
                t_send += part * 8e6 / pacing_bps
            self._pacer_free_us = t_send
            self._frame += 1
            self._next_frame_us = self._frame * 1e6 / p.fps

    def feedback_arrival_us(self, t_event_us: int) -> int:
        report = -(-int(t_event_us) // self._interval_us) * self._interval_us
        return report + self.feedback_delay_us

    # -- feedback --------------------------------------------------------------
    def _on_feedback(self, t_us: int, seq: int, t_received_us: int | None) -> None:
        sent = self._sent.pop(seq, None)
        if sent is None:
            return
        t_send, size = sent
        cid = self._probe_seq.pop(seq, None)
        if cid is not None:
            result = self._probes.on_feedback(cid, t_send, size, t_received_us)
            if result is not None:
                self._on_probe_result(t_us, cid, *result)
        if t_received_us is None:
            self._batch_lost += 1
            return
        self._batch_received += 1
        self.acked.add(t_received_us, size)
        self._last_rx_us = t_received_us if self._last_rx_us is None else max(self._last_rx_us,
                                                                              t_received_us)
        rtt = t_us - t_send
        self._rtt_us = 0.9 * self._rtt_us + 0.1 * rtt
        group = self.inter_arrival.add(t_send, t_received_us)
        if group is not None:
            send_d, arr_d, arr_t = group
            self.trendline.update(send_d / 1000, arr_d / 1000, arr_t / 1000)

    def _end_of_feedback_batch(self, t_us: int) -> None:
        n = self._batch_received + self._batch_lost
        if n == 0:
            return
        acked = self.acked.rate_bps(self._last_rx_us) if self._last_rx_us is not None else None
        self.delay_control.rtt_us = int(self._rtt_us)
        delay_bps = self.delay_control.update(self.trendline.state, acked, t_us)
        loss = self._batch_lost / n
        loss_bps = self.loss_control.update(loss, t_us, int(self._rtt_us))
        # the loss-based rate never runs ahead of the delay-based one (libwebrtc caps it too)
        self.loss_control.rate_bps = min(loss_bps, delay_bps)
        self.target_bps = self.loss_control.rate_bps
        self._batch_received = self._batch_lost = 0

    def _on_probe_result(self, t_us: int, cid: int, probe_rate_bps: float,
                         estimate_bps: float | None) -> None:
        p = self.params
        if estimate_bps is None:
            return
        estimate_bps = min(estimate_bps, p.max_bitrate_bps)
        if estimate_bps > self.delay_control.rate_bps:
            self.delay_control.rate_bps = estimate_bps
            self.delay_control.last_change_us = t_us
            self.loss_control.rate_bps = max(self.loss_control.rate_bps, estimate_bps)
            self.target_bps = min(self.delay_control.rate_bps, self.loss_control.rate_bps)
        # exponential probing: go on while the link absorbed at least 70 % of the probe
        if (cid == self._probes.n_clusters - 1 and estimate_bps >= 0.7 * probe_rate_bps
                and estimate_bps < p.max_bitrate_bps and self._probes.n_clusters < p.max_probes):
            self._send_probe(t_us, 2 * estimate_bps)

    # -- outputs ---------------------------------------------------------------
    def bitrate_series(self) -> pd.DataFrame:
        """One row per encoded frame: ``t_us`` (capture), ``target_bitrate_bps``,
        ``frame_bytes``, and the two controllers' rates and the detector threshold."""
        return pd.DataFrame(self._series, columns=["t_us", "target_bitrate_bps", "frame_bytes",
                                                   "delay_based_bps", "loss_based_bps",
                                                   "threshold_ms"])
