"""Real data: background fitted on a T-Mobile cell's other files vs a held-out file (KS).

One leave-one-out fold per cell (all 12 folds: benchmarks/recon_real.py, which
prints the table and writes CDF plots). The folds here are ``morning_3`` of
each cell: deterministic (seed 0, 60 s), about 70 s in all. On them active
users per slot, PRB utilisation per slot, inter-burst gaps and burst bytes
meet KS <= 0.15. In the full benchmark burst bytes meet it on 8 of 12 folds
and MCS on 1 of 12 (docs/traffic-reconstruction.md, "Real-data fidelity"):
the real files differ from each other on MCS by more than 0.15 on 8 of the 12
folds, so an MCS bound against a single held-out file is only asserted
relative to that real-vs-real distance.
"""

from __future__ import annotations

import pytest

from neuralemu.telemetry.nrscope import read_nrscope
from neuralemu.traffic_recon.real_eval import KS_BOUND, evaluate_cell

FOLDS = {"t_mobile1": "t_mobile1_ueactivity_morning_3", "t_mobile2": "t_mobile2_ueactivity_morning_3"}


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
@pytest.mark.parametrize("metric", ["active_users", "prb_util", "burst_gap_s", "burst_bytes"])
def test_background_matches_held_out_file(results, cell, metric):
    r = results[cell]
    assert r.ks[metric] <= KS_BOUND, (cell, metric, r.ks)


@pytest.mark.slow
@pytest.mark.parametrize("cell", list(FOLDS))
def test_mcs_no_further_than_real_files_from_each_other(results, cell):
    r = results[cell]
    assert r.ks["mcs"] <= max(KS_BOUND, r.ks_real_vs_train["mcs"]) + 0.05, (r.ks, r.ks_real_vs_train)


@pytest.mark.slow
@pytest.mark.parametrize("cell", list(FOLDS))
def test_nonempty_slot_figures_reported(results, cell):
    r = results[cell]
    for m in ("active_users_nonempty", "prb_util_nonempty"):
        assert 0.0 <= r.ks[m] <= 1.0
        assert len(r.real[m]) and len(r.emulated[m])
