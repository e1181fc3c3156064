"""The four test workloads, each run on one cell (truth, learned or replay), and its figure.

Each runner takes ``make(traffic, workload) -> Emulation``: a function that
builds the system under test with the phone carrying ``traffic`` (scenario
traffic specs, for closed-loop senders) plus ``workload`` (open-loop arrivals,
a workload table), so the same runner drives every system. The workload's own
randomness depends only on the evaluation seed, never on the system.

| workload | what runs on the phone | figure returned |
|---|---|---|
| ``gaming`` | 60 fps cloud-gaming frames (dl) + input packets (ul), open loop | one-way delay (ms) of every dl packet |
| ``webrtc`` | GCC WebRTC-like video sender (dl), closed loop | encoder target bitrate over time |
| ``web`` | web page loads (requests ul, responses dl) | page load times (ms) |
| ``bulk`` | TCP-like CUBIC bulk transfer (dl), closed loop | mean throughput, and per 100 ms |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

WORKLOADS = ("gaming", "webrtc", "web", "bulk")

#: Parameters of the test workloads (docs/workloads.md has their meaning).
GAMING = {"fps": 60.0, "bitrate_mbps": 20.0}
WEB = {"think_mean_s": 1.0, "objects_median": 30.0}
GCC = {"kind": "gcc", "direction": "dl", "start_bitrate_bps": 1_000_000.0}
TCP = {"kind": "tcp", "direction": "dl", "cc": "cubic"}


@dataclass
class RunResult:
    workload: str
    samples: np.ndarray            # the distribution the metric compares (delay, PLT), or per-bin series
    series: pd.DataFrame           # t_s, value: what the report plots over time
    scalar: float | None = None    # bulk: mean throughput (Mbit/s)


def _packets(workload, ue: int, duration_s: float, seed: int, units: bool = False):
    from neuralemu.workloads import UnitRecorder, generate
    rec = UnitRecorder()
    pk = list(rec.record(generate(workload, [ue], duration_s, seed)))
    df = pd.DataFrame([tuple(p)[:4] for p in pk], columns=["t_us", "ue", "direction", "size_bytes"])
    return (df, rec.table()) if units else df


def run_gaming(make: Callable, ue: int, duration_s: float, seed: int) -> RunResult:
    from neuralemu.workloads import CloudGaming
    wl = _packets(CloudGaming(**GAMING), ue, duration_s, seed)
    emu = make([], wl)
    emu.run(duration_s)
    log = emu.engine.delivery_log()
    dl = log[(log["ue"] == ue) & (log["direction"] == "dl") & log["t_delivered_us"].notna()]
    delay_ms = (dl["t_delivered_us"].astype("float64") - dl["t_arrival_us"]).to_numpy() / 1e3
    series = pd.DataFrame({"t_s": dl["t_arrival_us"].to_numpy() / 1e6, "value": delay_ms})
    return RunResult("gaming", delay_ms, series)


def run_webrtc(make: Callable, ue: int, duration_s: float, seed: int) -> RunResult:
    emu = make([dict(GCC)], None)
    emu.run(duration_s)
    sender = emu.sources[0]
    br = sender.bitrate_series()
    series = pd.DataFrame({"t_s": br["t_us"].to_numpy() / 1e6,
                           "value": br["target_bitrate_bps"].to_numpy() / 1e6})
    return RunResult("webrtc", series["value"].to_numpy(), series)


def run_web(make: Callable, ue: int, duration_s: float, seed: int) -> RunResult:
    from neuralemu.workloads import WebBrowsing, unit_completion
    wl, units = _packets(WebBrowsing(**WEB), ue, duration_s, seed, units=True)
    emu = make([], wl)
    emu.run(duration_s + 5.0)                 # let the last pages finish
    done = unit_completion(emu.engine.delivery_log(), units, "dl")
    plt_ms = done.loc[done["complete"], "latency_us"].to_numpy(np.float64) / 1e3
    t_s = done.loc[done["complete"], "t_start_us"].to_numpy(np.float64) / 1e6
    return RunResult("web", plt_ms, pd.DataFrame({"t_s": t_s, "value": plt_ms}))


def run_bulk(make: Callable, ue: int, duration_s: float, seed: int) -> RunResult:
    emu = make([dict(TCP)], None)
    emu.run(duration_s)
    src = emu.sources[0]
    tput = src.throughput_series(100.0)
    series = pd.DataFrame({"t_s": tput["t_us"].to_numpy() / 1e6,
                           "value": tput["bps"].to_numpy() / 1e6})
    mean_mbps = src.delivered_bytes * 8 / duration_s / 1e6
    return RunResult("bulk", series["value"].to_numpy(), series, scalar=float(mean_mbps))


RUNNERS = {"gaming": run_gaming, "webrtc": run_webrtc, "web": run_web, "bulk": run_bulk}


def error_of(workload: str, truth: RunResult, emu: RunResult) -> dict:
    """The workload's fidelity metric (docs/evaluation.md): {"error": x, ...parts}."""
    from neuralemu.eval import metrics as M
    if workload == "gaming":
        if emu.samples.size == 0:
            return {"error": float("inf"), "note": "no packet delivered"}
        return {"error": M.delay_w1_error(truth.samples, emu.samples),
                "truth_mean_ms": float(np.mean(truth.samples)),
                "emu_mean_ms": float(np.mean(emu.samples))}
    if workload == "webrtc":
        t, e = truth.series, emu.series
        err = M.series_mape(t["t_s"] * 1e6, t["value"], e["t_s"] * 1e6, e["value"],
                            step_us=100_000.0)
        return {"error": err, "truth_mean_mbps": float(t["value"].mean()),
                "emu_mean_mbps": float(e["value"].mean()) if len(e) else float("nan")}
    if workload == "web":
        if emu.samples.size == 0:
            return {"error": float("inf"), "note": "no page completed"}
        err, parts = M.plt_error(truth.samples, emu.samples)
        return {"error": err, "median_error": parts[0.5], "p95_error": parts[0.95],
                "truth_median_ms": float(np.median(truth.samples)),
                "emu_median_ms": float(np.median(emu.samples))}
    if workload == "bulk":
        return {"error": M.relative_error(truth.scalar, emu.scalar),
                "truth_mbps": truth.scalar, "emu_mbps": emu.scalar}
    raise ValueError(f"unknown workload {workload!r}")
