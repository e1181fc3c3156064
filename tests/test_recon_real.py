"""Real data: background fitted on a T-Mobile cell's other files vs a held-out file (KS).

Runs one leave-one-out fold per cell (the full table: benchmarks/recon_real.py).
Active users per slot, PRB utilisation per slot and inter-burst gaps meet the
KS <= 0.15 bound on every fold; burst bytes and MCS do not yet on most folds
(see docs/traffic-reconstruction.md, "Real-data fidelity"), which the xfail test
records so that it turns into a pass when they do.
"""

from __future__ import annotations

import pytest

from neuralemu.telemetry.nrscope import read_nrscope
from neuralemu.traffic_recon.real_eval import KS_BOUND, evaluate_cell

FOLDS = {"t_mobile1": "t_mobile1_ueactivity_afternoon_1", "t_mobile2": "t_mobile2_ueactivity_morning_3"}


@pytest.fixture(scope="module")
def results(nrscope_files):
    out = {}
    for cell, held_out in FOLDS.items():
        logs = {p.stem: read_nrscope(p) for p in nrscope_files if p.stem.startswith(cell + "_")}
        assert len(logs) == 6
        out[cell] = evaluate_cell(cell, logs, max_duration_s=60.0, held_out=[held_out])[0]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("cell", list(FOLDS))
@pytest.mark.parametrize("metric", ["active_users", "prb_util", "burst_gap_s"])
def test_background_matches_held_out_file(results, cell, metric):
    r = results[cell]
    assert r.ks[metric] <= KS_BOUND, (cell, metric, r.ks)


@pytest.mark.slow
@pytest.mark.xfail(reason="burst bytes and MCS exceed KS 0.15 on most folds (engine MCS is quantised "
                          "to the CQI grid; TBS padding); see docs/traffic-reconstruction.md",
                   strict=False)
@pytest.mark.parametrize("cell", list(FOLDS))
def test_burst_bytes_and_mcs_within_bound(results, cell):
    r = results[cell]
    assert r.ks["burst_bytes"] <= KS_BOUND and r.ks["mcs"] <= KS_BOUND, r.ks
