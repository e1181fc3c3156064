"""Ground truth: reconstruct synthetic telemetry whose true arrivals are known.

The slot engine (the same one `neuralemu synth` runs) serves several traffic
mixes of 5 to 30 users; its DCI log is inverted and compared with the true
arrivals. Acceptance (issue 5): per-user bytes in 100 ms windows within 10 %
(median), burst start times within 2 slots (median), traffic class right for
>= 90 % of users.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralemu.cell import Engine
from neuralemu.workloads.gaming import CloudGaming
from neuralemu.workloads.openloop import Bulk, Cbr, OnOff
from neuralemu.workloads.web import WebBrowsing

from recon_helpers import score

DURATION_S = 30

# workload -> (generator, true class)
KINDS = {
    "bulk": (Bulk(rate_mbps=4.0, initial_bytes=100_000), "bulk"),
    "cbr": (Cbr(rate_mbps=0.5, packet_bytes=1200), "periodic"),
    "gaming": (CloudGaming(bitrate_mbps=5.0, input_hz=0), "periodic"),
    "web": (WebBrowsing(think_mean_s=5.0), "interactive"),
    "onoff": (OnOff(rate_mbps=2.0, mean_on_s=0.05, mean_off_s=0.6), "interactive"),
    "signalling": (None, "signalling"),
}
MIXES = {
    "5 users": dict(bulk=1, cbr=1, gaming=1, web=1, signalling=1),
    "12 users": dict(bulk=2, cbr=3, gaming=2, web=3, onoff=1, signalling=1),
    "30 users": dict(bulk=3, cbr=8, gaming=3, web=8, onoff=4, signalling=4),
}


def _signalling(ue: int, duration_us: int, seed: int):
    rng = np.random.default_rng([seed, ue])
    t = np.sort(rng.integers(0, duration_us, int(rng.integers(2, 5))))
    return [(int(x), ue, "dl", int(rng.integers(60, 300))) for x in t]


def run_mix(mix: dict, seed: int = 1):
    ues, rows, truth = [], [], {}
    ue = 1000
    for kind, n in mix.items():
        gen, cls = KINDS[kind]
        for _ in range(n):
            ue += 1
            truth[ue] = cls
            dist_m = float(np.random.default_rng([seed, ue]).uniform(50, 400))
            ues.append({"ue_id": ue, "directions": ["dl", "ul"],
                        "channel": {"model": "stochastic", "distance_m": dist_m, "speed_mps": 1.0}})
            if gen is None:
                rows += _signalling(ue, DURATION_S * 10**6, seed)
            else:
                rows += [tuple(p[:4]) for p in gen.ue_packets(ue, DURATION_S * 10**6, seed)]
    wl = pd.DataFrame(rows, columns=["t_us", "ue", "direction", "size_bytes"])
    wl = wl[wl["direction"] == "dl"].sort_values("t_us", kind="stable").reset_index(drop=True)
    eng = Engine({"numerology": 0, "bandwidth_mhz": 20, "duplex": "FDD"}, ues, "pf", seed=seed,
                 record_dci=True)
    eng.load_arrivals(wl["t_us"].to_numpy(), wl["ue"].to_numpy(), wl["direction"].to_numpy(),
                      wl["size_bytes"].to_numpy())
    eng.run(DURATION_S * 1000)
    return wl, eng.dci_log(), truth


@pytest.mark.slow
@pytest.mark.parametrize("mix", list(MIXES))
def test_reconstruction_matches_ground_truth(mix):
    wl, dci, truth = run_mix(MIXES[mix])
    s = score(wl, dci, truth)
    print(mix, s)
    assert s["bytes_err_median"] <= 0.10, s
    assert s["burst_start_err_slots_median"] <= 2.0, s
    assert s["class_accuracy"] >= 0.90, s
