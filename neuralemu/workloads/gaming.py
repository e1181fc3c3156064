"""Cloud gaming: 60 fps video frames down, small controller/pose packets up.

Model (parameters and sources in docs/workloads.md):
- Frames every 1/fps seconds with a truncated Gaussian arrival jitter
  (std 2 ms, within +-4 ms), as in the cloud-gaming / XR traffic model of
  3GPP TR 38.838 section 5.1.
- A group of pictures: an I-frame every ``gop_frames`` frames, ``i_frame_ratio``
  times larger on average than a P-frame; P-frame sizes are lognormal
  (``p_sigma``), I-frame sizes lognormal (``i_sigma``). The P-frame mean is set
  so that the long-run bitrate equals ``bitrate_mbps``.
- Each frame is split into MTU packets that reach the gNB back to back at
  ``burst_rate_mbps`` (the server's access link), so a frame is a short burst.
- Uplink: ``input_bytes`` packets at ``input_hz`` (TR 38.838: 100-byte pose
  updates every 4 ms, 250 Hz; game-pad input is commonly 125 Hz).

Every downlink packet carries its frame index as ``unit`` so frame delivery
times can be recovered (:mod:`neuralemu.workloads.units`). A frame never
starts before the previous frame's last packet, so frames do not overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from neuralemu.workloads.packet import (MTU_BYTES, Packet, merge_streams, serialization_us,
                                        split_bytes, ue_rng)


@dataclass(frozen=True)
class CloudGaming:
    fps: float = 60.0
    bitrate_mbps: float = 25.0
    gop_frames: int = 120            # an I-frame every 2 s at 60 fps
    i_frame_ratio: float = 5.0       # mean I-frame size / mean P-frame size
    p_sigma: float = 0.35            # lognormal sigma of P-frame sizes
    i_sigma: float = 0.15            # lognormal sigma of I-frame sizes
    jitter_std_ms: float = 2.0       # TR 38.838: truncated Gaussian, std 2 ms
    jitter_max_ms: float = 4.0       # TR 38.838: truncated to [-4, 4] ms
    packet_bytes: int = MTU_BYTES
    burst_rate_mbps: float = 1000.0  # pacing of a frame's packets into the gNB
    input_hz: float = 250.0          # uplink input/pose packets per second (0: none)
    input_bytes: int = 100

    kind = "gaming"

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.bitrate_mbps <= 0 or self.gop_frames < 1:
            raise ValueError("gaming needs fps > 0, bitrate_mbps > 0 and gop_frames >= 1")
        if self.i_frame_ratio <= 0 or self.p_sigma < 0 or self.i_sigma < 0:
            raise ValueError("gaming needs i_frame_ratio > 0 and sigmas >= 0")
        if not 1 <= self.packet_bytes <= MTU_BYTES or not 1 <= self.input_bytes <= MTU_BYTES:
            raise ValueError("packet sizes must be 1..1500 bytes")
        if self.input_hz < 0 or self.burst_rate_mbps <= 0 or self.jitter_std_ms < 0:
            raise ValueError("gaming needs input_hz >= 0, burst_rate_mbps > 0, jitter_std_ms >= 0")

    @property
    def mean_frame_bytes(self) -> float:
        return self.bitrate_mbps * 1e6 / 8 / self.fps

    @property
    def mean_p_frame_bytes(self) -> float:
        g = self.gop_frames
        if g == 1:
            return self.mean_frame_bytes / self.i_frame_ratio
        return g * self.mean_frame_bytes / (g - 1 + self.i_frame_ratio)

    def frame_sizes_bytes(self, n_frames: int, rng: np.random.Generator,
                          first_frame: int = 0) -> np.ndarray:
        """Sizes of frames first..first+n-1 (frame 0 of a stream is an I-frame)."""
        is_i = ((first_frame + np.arange(n_frames)) % self.gop_frames) == 0
        mean = np.where(is_i, self.i_frame_ratio * self.mean_p_frame_bytes, self.mean_p_frame_bytes)
        sigma = np.where(is_i, self.i_sigma, self.p_sigma)
        z = rng.standard_normal(n_frames)
        size = mean * np.exp(sigma * z - sigma ** 2 / 2)   # lognormal with the given mean
        return np.maximum(1, np.round(size)).astype(np.int64)

    def _jitter_us(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.jitter_std_ms == 0:
            return np.zeros(n)
        j = rng.standard_normal(n) * self.jitter_std_ms
        bad = np.abs(j) > self.jitter_max_ms
        while bad.any():                                   # truncate by redrawing
            j[bad] = rng.standard_normal(int(bad.sum())) * self.jitter_std_ms
            bad = np.abs(j) > self.jitter_max_ms
        return j * 1000.0

    def _video(self, ue: int, duration_us: int, rng: np.random.Generator,
               chunk_frames: int = 600) -> Iterator[Packet]:
        frame_us = 1e6 / self.fps
        phase_us = rng.uniform(0, frame_us)
        pkt_us = serialization_us(self.packet_bytes, self.burst_rate_mbps * 1e6)
        next_free_us = 0
        frame = 0
        while True:                        # draw frames a chunk at a time: runs may be endless
            sizes = self.frame_sizes_bytes(chunk_frames, rng, frame)
            starts = (phase_us + (frame + np.arange(chunk_frames)) * frame_us
                      + self._jitter_us(chunk_frames, rng))
            for start, size in zip(starts.tolist(), sizes.tolist()):
                t0 = max(int(round(start)), next_free_us, 0)
                if t0 >= duration_us:
                    return
                parts = split_bytes(size, self.packet_bytes)
                times = [t0 + int(k * pkt_us) for k in range(len(parts))]
                if times[-1] >= duration_us:       # only whole frames inside the run
                    return
                for t_us, part in zip(times, parts):
                    yield Packet(t_us, ue, "dl", part, frame)
                next_free_us = times[-1] + 1
                frame += 1

    def _input(self, ue: int, duration_us: int, rng: np.random.Generator) -> Iterator[Packet]:
        if self.input_hz == 0:
            return
        interval_us = 1e6 / self.input_hz
        t = rng.uniform(0, interval_us)
        while t < duration_us:
            yield Packet(int(t), ue, "ul", self.input_bytes)
            t += interval_us

    def ue_packets(self, ue: int, duration_us: int, seed: int) -> Iterator[Packet]:
        video = self._video(ue, duration_us, ue_rng(seed, ue, 0))
        inputs = self._input(ue, duration_us, ue_rng(seed, ue, 1))
        return merge_streams([video, inputs])
