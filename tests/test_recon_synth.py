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
from neuralemu.traffic_recon import reconstruct
from neuralemu.workloads.gaming import CloudGaming
from neuralemu.workloads.openloop import Bulk, Cbr, OnOff
from neuralemu.workloads.web import WebBrowsing

DURATION_S = 30
WINDOW_US = 100_000
BURST_GAP_US = 6000

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


def score(wl: pd.DataFrame, dci: pd.DataFrame, truth: dict) -> dict:
    rec = reconstruct(dci)
    arr = rec.arrivals()
    arr = arr[arr["direction"] == "dl"]
    true_w = wl.groupby(["ue", wl["t_us"] // WINDOW_US])["size_bytes"].sum()
    rec_w = arr.groupby(["ue", arr["t_us"] // WINDOW_US])["size_bytes"].sum()
    j = pd.concat([true_w.rename("true"), rec_w.rename("rec")], axis=1).fillna(0)
    j = j[j["true"] > 0]
    bytes_err = float(((j["rec"] - j["true"]).abs() / j["true"]).median())

    w = wl.sort_values(["ue", "t_us"])
    starts = np.r_[True, (w["ue"].to_numpy()[1:] != w["ue"].to_numpy()[:-1])
                   | (np.diff(w["t_us"].to_numpy()) > BURST_GAP_US)]
    errs = []
    for ue, g in w[starts].groupby("ue"):
        rb = np.sort(rec.bursts[(rec.bursts["rnti"] == ue) & (rec.bursts["direction"] == "dl")]
                     ["arrival_t_us"].to_numpy())
        if len(rb) == 0:
            continue
        i = np.searchsorted(rb, g["t_us"].to_numpy())
        near = np.stack([rb[np.clip(i - 1, 0, len(rb) - 1)], rb[np.clip(i, 0, len(rb) - 1)]])
        errs.append(np.min(np.abs(near - g["t_us"].to_numpy()), axis=0) / rec.slot_us)
    start_err = float(np.median(np.concatenate(errs)))

    active = set(wl["ue"])           # a user with no traffic in the run has no class to find
    cls = rec.users[rec.users["direction"] == "dl"].set_index("rnti")["traffic_class"]
    hits = [cls.get(u, "none") == c for u, c in truth.items() if u in active]
    return {"bytes_err_median": bytes_err, "burst_start_err_slots_median": start_err,
            "class_accuracy": float(np.mean(hits)), "users": len(hits)}


@pytest.mark.slow
@pytest.mark.parametrize("mix", list(MIXES))
def test_reconstruction_matches_ground_truth(mix):
    wl, dci, truth = run_mix(MIXES[mix])
    s = score(wl, dci, truth)
    print(mix, s)
    assert s["bytes_err_median"] <= 0.10, s
    assert s["burst_start_err_slots_median"] <= 2.0, s
    assert s["class_accuracy"] >= 0.90, s
