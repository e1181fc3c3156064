"""BLER-vs-SINR and SINR -> CQI model (neuralemu.nr.link)."""

from __future__ import annotations

import numpy as np
import pytest

from neuralemu.nr import (MCS_TABLE_NAMES, bler, cqi_sinr_threshold_db, cqi_to_mcs, max_mcs,
                          mcs_sinr_threshold_db, sinr_threshold_db, sinr_to_cqi)

SINR = np.linspace(-20, 45, 651)


@pytest.mark.parametrize("table", MCS_TABLE_NAMES)
def test_bler_monotone_in_sinr_and_mcs(table):
    mcs = np.arange(max_mcs(table) + 1)
    grid = bler(SINR[:, None], mcs[None, :], table)
    assert grid.shape == (SINR.size, mcs.size)
    assert ((grid >= 0) & (grid <= 1)).all()
    assert (np.diff(grid, axis=0) <= 0).all()          # more SINR, fewer errors
    assert (np.diff(grid, axis=1) >= 0).all()          # higher MCS, more errors
    assert grid[0, -1] > 0.999 and grid[-1, 0] < 1e-6


def test_bler_is_ten_percent_at_threshold_and_nan_for_reserved():
    th = mcs_sinr_threshold_db(10, "qam256")
    assert bler(th, 10, "qam256") == pytest.approx(0.1)
    assert bler(th + 3, 10, "qam256") < 0.01
    assert bler(th - 3, 10, "qam256") > 0.5
    assert np.isnan(bler(10.0, 28, "qam256"))
    assert isinstance(bler(10.0, 3, "qam64"), float)
    with pytest.raises(ValueError):
        bler(10.0, 40, "qam64")


def test_shannon_gap_threshold():
    # SE 1 bit/s/Hz: Shannon needs SINR 1 (0 dB); plus the 2.5 dB gap.
    assert sinr_threshold_db(1.0) == pytest.approx(2.5)
    assert sinr_threshold_db(1.0, gap_db=0.0) == pytest.approx(0.0)


@pytest.mark.parametrize("cqi_table", [1, 2, 3])
def test_sinr_to_cqi_monotone_and_consistent(cqi_table):
    cqi = sinr_to_cqi(SINR, cqi_table)
    assert cqi.dtype == np.int64
    assert (np.diff(cqi) >= 0).all()
    assert cqi[0] == 0 and cqi[-1] == 15
    assert set(cqi.tolist()) == set(range(16))         # every CQI is reachable
    # The reported CQI is decodable at <= 10% BLER; the next one is not (38.214 5.2.2.1).
    for s, c in zip(SINR, cqi):
        if c > 0:
            assert cqi_sinr_threshold_db(c, cqi_table) <= s
        if c < 15:
            assert cqi_sinr_threshold_db(c + 1, cqi_table) > s
    assert sinr_to_cqi(float("nan"), cqi_table) == 0
    assert isinstance(sinr_to_cqi(3.0, cqi_table), int)


@pytest.mark.parametrize("table", MCS_TABLE_NAMES)
def test_mcs_from_reported_cqi_meets_the_target(table):
    # The closed loop the engine runs: SINR -> CQI -> MCS must not exceed 10% BLER
    # (except CQI 1 of tables where MCS 0 is above the CQI's efficiency).
    cqi = sinr_to_cqi(SINR, {"qam64": 1, "qam256": 2, "qam64lowse": 3}[table])
    mcs = cqi_to_mcs(cqi, table)
    ok = cqi >= 2
    assert (bler(SINR[ok], mcs[ok], table) <= 0.1 + 1e-12).all()
