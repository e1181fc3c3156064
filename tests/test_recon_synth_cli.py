"""Ground truth through the real ``neuralemu synth`` command: its dci.csv vs its arrivals.csv.

Scenarios with 5, 12 and 30 users and several traffic mixes (bulk, CBR, cloud
gaming, web, on-off; 15 kHz FDD 20 MHz, pf, stochastic channels) are written
to YAML and run with ``neuralemu synth``; the NR-Scope-format ``dci.csv`` it
writes is read back with ``read_nrscope`` and inverted, and compared with the
true arrivals in ``arrivals.csv``. Acceptance (issue 5): per-user bytes in
100 ms windows within 10 % (median), burst start within 2 slots (median),
traffic class right for >= 90 % of users.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from neuralemu.cli import main
from neuralemu.telemetry.nrscope import read_nrscope
from recon_helpers import score

DURATION_S = 20

# traffic spec -> true class
KINDS = {
    "bulk": ({"kind": "bulk", "rate_mbps": 4.0, "initial_bytes": 100_000, "direction": "dl"}, "bulk"),
    "cbr": ({"kind": "cbr", "rate_mbps": 0.5, "packet_bytes": 1200, "direction": "dl"}, "periodic"),
    "gaming": ({"kind": "gaming", "bitrate_mbps": 5.0, "input_hz": 0}, "periodic"),
    "web": ({"kind": "web", "think_mean_s": 5.0}, "interactive"),
    "onoff": ({"kind": "onoff", "rate_mbps": 2.0, "mean_on_s": 0.05, "mean_off_s": 0.6, "direction": "dl"},
              "interactive"),
}
MIXES = {
    "5 users": dict(bulk=1, cbr=2, gaming=1, web=1),
    "12 users web-heavy": dict(bulk=1, cbr=2, gaming=1, web=6, onoff=2),
    "30 users": dict(bulk=3, cbr=9, gaming=3, web=9, onoff=6),
}


def _scenario(mix: dict, seed: int = 3) -> tuple[dict, dict]:
    ues, truth = [], {}
    ue = 2000
    for kind, n in mix.items():
        spec, cls = KINDS[kind]
        for _ in range(n):
            ue += 1
            truth[ue] = cls
            d = float(np.random.default_rng([seed, ue]).uniform(50, 400))
            ues.append({"ue_id": ue, "directions": ["dl", "ul"], "traffic": [dict(spec)],
                        "channel": {"model": "stochastic", "distance_m": d, "speed_mps": 1.0}})
    sc = {"name": "recon-ground-truth", "seed": seed, "duration_s": DURATION_S,
          "cell": {"numerology": 0, "bandwidth_mhz": 20, "duplex": "FDD"}, "policy": "pf", "ues": ues}
    return sc, truth


@pytest.mark.slow
@pytest.mark.parametrize("mix", list(MIXES))
def test_synth_command_output_reconstructs(mix, tmp_path):
    sc, truth = _scenario(MIXES[mix])
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sc))
    out = tmp_path / "out"
    assert main(["synth", "--scenario", str(path), "--out", str(out), "--ue-log-every-slots", "1000"]) == 0
    dci = read_nrscope(out / "dci.csv", mu=0)
    wl = pd.read_csv(out / "arrivals.csv")
    wl = wl[wl["direction"] == "dl"].reset_index(drop=True)
    s = score(wl, dci, truth)
    print(mix, s)
    assert s["users"] >= 0.9 * len(truth)
    assert s["bytes_err_median"] <= 0.10, s
    assert s["burst_start_err_slots_median"] <= 2.0, s
    assert s["class_accuracy"] >= 0.90, s
