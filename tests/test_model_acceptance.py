"""Issue-4 acceptance: the same code learns two different reference schedulers from real `synth` runs.

The pipeline (workloads, caching, figures, checks) is
:mod:`neuralemu.scheduler_model.fidelity`; the full run with the issue's
targets is ``benchmarks/model_fidelity.py`` (about 8 minutes here, exit code 1
on a miss). In the normal suite runs a reduced version (pf only, shorter
recordings, a few epochs): it checks that the learned model clearly beats the
mismatched analytical baseline (max-CQI) on an unseen workload where the two
reference schedulers differ, and that its MCS is within +-1 for >= 90% of the
scheduled users. ``NEURALEMU_ACCEPTANCE=1`` runs the full targets as tests
(NOT YET MET, see docs/learned-scheduler.md).
"""

from __future__ import annotations

import os

import pytest

from neuralemu.scheduler_model import fidelity as FI

REDUCED = FI.Plan(train_sets=((0, 6, 11), (3, 7, 13)), train_s=3.0, eval_s=3.0, epochs=4,
                  max_minutes=0.75)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("fidelity")


@pytest.mark.slow
def test_reduced_learns_pf_and_beats_mismatched_baseline(cache):
    model = FI.train_model(cache, "pf", REDUCED)
    r = FI.open_loop(cache, "pf", model, REDUCED)
    learned, mismatched = r["learned"], r["baselines"][FI.MISMATCHED["pf"]]
    print({k: round(v, 3) for k, v in learned.items()}, "maxcqi", mismatched["tput_err_median"])
    assert learned["mcs_within1"] >= 0.90
    assert learned["tput_err_median"] < 0.6 * mismatched["tput_err_median"]
    assert learned["sched_f1"] >= 0.6


@pytest.mark.slow
def test_dagger_rollout_labels_learned_states_with_the_reference(cache):
    model = FI.train_model(cache, "pf", REDUCED)          # cached by the test above
    sc = FI.scenario(FI.REFERENCES["pf"], 5, 4, 1, 0.3)
    ds = FI.expert_rollout(model, "pf", sc, 0.3)
    assert len(ds) > 100 and ds.mask.any(axis=1).all()
    assert not (ds.sched.astype(bool) & ~ds.mask).any()
    assert ((ds.mcs >= 0) == ds.sched.astype(bool)).all()
    assert (ds.prbs.sum(axis=1) <= ds.prbs_available).all()
    # the reference serves somebody in most slots with data
    has_data = (ds.buffer_bytes > 0).any(axis=1)
    assert ds.sched[has_data].any(axis=1).mean() > 0.8


full = pytest.mark.skipif(os.environ.get("NEURALEMU_ACCEPTANCE") != "1",
                          reason="issue-4 acceptance targets not yet met; run "
                                 "benchmarks/model_fidelity.py or set NEURALEMU_ACCEPTANCE=1")


@full
@pytest.mark.slow
@pytest.mark.parametrize("ref", list(FI.REFERENCES))
def test_full_acceptance_open_loop(cache, ref):
    plan = FI.Plan()
    r = FI.open_loop(cache, ref, FI.train_model(cache, ref, plan), plan)
    assert FI.check_open_loop(ref, r) == []


@full
@pytest.mark.slow
def test_full_acceptance_closed_loop(cache):
    plan = FI.Plan()
    users = FI.closed_loop("pf", FI.train_model(cache, "pf", plan), plan)
    assert FI.check_closed_loop("pf", users) == []
