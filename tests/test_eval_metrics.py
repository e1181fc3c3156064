"""Fidelity metrics (neuralemu.eval.metrics): exact values on small hand-checked cases."""

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from neuralemu.eval import metrics as M


def test_wasserstein_matches_scipy_and_shift():
    rng = np.random.default_rng(0)
    a, b = rng.exponential(5, 500), rng.normal(7, 2, 300)
    assert M.wasserstein1(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)
    assert M.wasserstein1(a, a + 3.0) == pytest.approx(3.0)
    assert M.wasserstein1(a, a) == 0.0


def test_delay_error_is_relative_to_truth_mean():
    truth = np.array([10.0, 20.0, 30.0])
    assert M.delay_w1_error(truth, truth + 4.0) == pytest.approx(4.0 / 20.0)
    with pytest.raises(ValueError):
        M.delay_w1_error([], [1.0])


def test_quantile_and_plt_errors():
    truth = np.arange(1, 101, dtype=float)
    emu = truth * 1.1
    parts = M.quantile_errors(truth, emu)
    assert parts[0.5] == pytest.approx(0.1)
    assert parts[0.95] == pytest.approx(0.1)
    err, _ = M.plt_error(truth, emu)
    assert err == pytest.approx(0.1)


def test_series_mape_on_common_grid():
    t = np.array([0, 1e6, 2e6])
    assert M.series_mape(t, [1.0, 2.0, 4.0], t, [1.0, 2.0, 4.0]) == 0.0
    # emulated series twice the truth everywhere: 100 %
    assert M.series_mape(t, [1.0, 2.0, 4.0], t, [2.0, 4.0, 8.0], step_us=250_000) == pytest.approx(1.0)
    grid = M.on_grid([10, 20], [1.0, 2.0], [5, 10, 15, 25])
    assert np.isnan(grid[0]) and list(grid[1:]) == [1.0, 1.0, 2.0]


def test_relative_error_and_acceptance_rule():
    assert M.relative_error(100.0, 90.0) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        M.relative_error(0.0, 1.0)
    assert M.error_ratio(0.1, 0.4) == pytest.approx(0.25)
    assert M.error_ratio(0.0, 0.0) == 0.0 and M.error_ratio(0.1, 0.0) == float("inf")
    assert M.passes(0.05, 0.2) and not M.passes(0.11, 0.2)
    # replay already under 5 %: learned must be under 5 % too
    assert M.passes(0.049, 0.01) and not M.passes(0.06, 0.01)
