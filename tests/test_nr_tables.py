"""Spot checks of the NR tables against the spec: numerology, PRBs, MCS and CQI tables."""

from __future__ import annotations

import numpy as np
import pytest

from neuralemu.nr import (MCS_TABLE_NAMES, canonical_mcs_table, channel_bandwidths_mhz,
                          cqi_code_rate, cqi_out_of_range, cqi_qm, cqi_spectral_efficiency,
                          cqi_to_mcs, default_cqi_table, is_reserved_mcs, max_mcs, max_prbs,
                          mcs_code_rate, mcs_qm, mcs_spectral_efficiency, mu_from_scs_khz,
                          scs_khz, slot_duration_us, slots_per_frame, slots_per_subframe)


# ---- numerology, 38.211 Table 4.2-1 / 4.3.2-1 -----------------------------------------------
def test_numerology_scalars():
    assert [scs_khz(m) for m in range(4)] == [15, 30, 60, 120]
    assert [slot_duration_us(m) for m in range(4)] == [1000, 500, 250, 125]
    assert [slots_per_subframe(m) for m in range(4)] == [1, 2, 4, 8]
    assert [slots_per_frame(m) for m in range(4)] == [10, 20, 40, 80]
    assert [mu_from_scs_khz(s) for s in (15, 30, 60, 120)] == [0, 1, 2, 3]
    assert isinstance(slot_duration_us(1), int)


def test_numerology_arrays_and_errors():
    mu = np.array([0, 3, 1])
    assert slot_duration_us(mu).tolist() == [1000, 125, 500]
    assert mu_from_scs_khz(np.array([30, 120])).tolist() == [1, 3]
    for bad in (-1, 4, 1.5):
        with pytest.raises(ValueError, match="mu"):
            scs_khz(bad)
    with pytest.raises(ValueError, match="subcarrier spacing"):
        mu_from_scs_khz(45)
    with pytest.raises(ValueError):
        slot_duration_us(np.array([0, 7]))


# ---- PRBs, 38.101-1 Table 5.3.2-1 / 38.101-2 Table 5.3.2-1 -----------------------------------
@pytest.mark.parametrize("bw, scs, n_rb", [
    (3, 15, 15), (5, 15, 25), (10, 15, 52), (35, 15, 188), (45, 15, 242), (15, 15, 79), (20, 15, 106), (40, 15, 216), (50, 15, 270),
    (10, 30, 24), (20, 30, 51), (35, 30, 92), (45, 30, 119), (40, 30, 106), (50, 30, 133), (80, 30, 217), (100, 30, 273),
    (10, 60, 11), (15, 60, 18), (35, 60, 44), (50, 60, 65), (60, 60, 79), (100, 60, 135),
])
def test_max_prbs_fr1(bw, scs, n_rb):
    assert max_prbs(bw, scs) == n_rb


def test_max_prbs_fr2_arrays_and_errors():
    assert max_prbs(100, 120, "FR2") == 66
    assert max_prbs(50, 60, "FR2") == 66 and max_prbs(50, 60) == 65
    assert max_prbs(np.array([10, 15]), 15).tolist() == [52, 79]     # NR-Scope's T-Mobile BWPs
    assert channel_bandwidths_mhz(15)[-1] == 50
    with pytest.raises(ValueError, match="60 MHz at 15 kHz"):
        max_prbs(60, 15)
    with pytest.raises(ValueError, match="5 MHz at 60 kHz"):
        max_prbs(5, 60)
    with pytest.raises(ValueError, match="subcarrier spacing"):
        max_prbs(20, 120)
    with pytest.raises(ValueError):
        max_prbs(20, 15, "FR3")


# ---- MCS tables, 38.214 Tables 5.1.3.1-1/-2/-3 ------------------------------------------------
@pytest.mark.parametrize("table, mcs, qm, r_x1024", [
    ("qam64", 0, 2, 120), ("qam64", 9, 2, 679), ("qam64", 10, 4, 340), ("qam64", 16, 4, 658),
    ("qam64", 17, 6, 438), ("qam64", 28, 6, 948),
    ("qam256", 0, 2, 120), ("qam256", 4, 2, 602), ("qam256", 5, 4, 378), ("qam256", 11, 6, 466),
    ("qam256", 19, 6, 873), ("qam256", 20, 8, 682.5), ("qam256", 26, 8, 916.5),
    ("qam256", 27, 8, 948),
    ("qam64lowse", 0, 2, 30), ("qam64lowse", 5, 2, 99), ("qam64lowse", 14, 2, 602),
    ("qam64lowse", 15, 4, 340), ("qam64lowse", 21, 6, 438), ("qam64lowse", 28, 6, 772),
])
def test_mcs_entries(table, mcs, qm, r_x1024):
    assert mcs_qm(mcs, table) == qm
    assert mcs_code_rate(mcs, table) == r_x1024 / 1024
    assert mcs_spectral_efficiency(mcs, table) == pytest.approx(qm * r_x1024 / 1024, abs=0)
    assert not is_reserved_mcs(mcs, table)


def test_mcs_spectral_efficiency_matches_printed_values():
    # The spec prints Qm * R rounded to 4 decimals.
    for mcs, table, printed in ((20, "qam256", 5.3320), (27, "qam256", 7.4063),
                                (17, "qam64", 2.5664), (0, "qam64lowse", 0.0586)):
        assert mcs_spectral_efficiency(mcs, table) == pytest.approx(printed, abs=0.5e-4)


@pytest.mark.parametrize("table, reserved_qm", [
    ("qam64", {29: 2, 30: 4, 31: 6}),
    ("qam256", {28: 2, 29: 4, 30: 6, 31: 8}),
    ("qam64lowse", {29: 2, 30: 4, 31: 6}),
])
def test_reserved_mcs(table, reserved_qm):
    flags = is_reserved_mcs(np.arange(32), table)
    assert set(np.flatnonzero(flags).tolist()) == set(reserved_qm)
    for m, qm in reserved_qm.items():
        assert mcs_qm(m, table) == qm
        assert np.isnan(mcs_code_rate(m, table))
        assert np.isnan(mcs_spectral_efficiency(m, table))
    assert max_mcs(table) == min(reserved_qm) - 1


def test_mcs_names_and_errors():
    assert MCS_TABLE_NAMES == ("qam64", "qam256", "qam64lowse")
    assert canonical_mcs_table("256qam") == "qam256"
    assert canonical_mcs_table("qam64LowSE") == "qam64lowse"
    with pytest.raises(ValueError, match="unknown MCS table 'qam1024'"):
        mcs_qm(3, "qam1024")
    with pytest.raises(ValueError, match="0..31"):
        mcs_qm(32, "qam64")
    with pytest.raises(ValueError, match="0..31"):
        mcs_qm(np.array([1, -1]), "qam64")
    assert mcs_qm(np.array([0, 28]), "qam256").tolist() == [2, 2]


# ---- CQI tables, 38.214 Tables 5.2.2.1-2/-3/-4 ------------------------------------------------
@pytest.mark.parametrize("cqi_table, cqi, qm, r_x1024", [
    (1, 1, 2, 78), (1, 6, 2, 602), (1, 7, 4, 378), (1, 10, 6, 466), (1, 15, 6, 948),
    (2, 1, 2, 78), (2, 3, 2, 449), (2, 4, 4, 378), (2, 12, 8, 711), (2, 15, 8, 948),
    (3, 1, 2, 30), (3, 8, 2, 602), (3, 9, 4, 378), (3, 12, 6, 466), (3, 15, 6, 772),
])
def test_cqi_entries(cqi_table, cqi, qm, r_x1024):
    assert cqi_qm(cqi, cqi_table) == qm
    assert cqi_code_rate(cqi, cqi_table) == r_x1024 / 1024
    assert cqi_spectral_efficiency(cqi, cqi_table) == qm * r_x1024 / 1024


def test_cqi_zero_and_errors():
    for t in (1, 2, 3):
        assert cqi_spectral_efficiency(0, t) == 0.0
        se = cqi_spectral_efficiency(np.arange(16), t)
        assert (np.diff(se) > 0).all()
    assert cqi_out_of_range(0) and not cqi_out_of_range(1)
    with pytest.raises(ValueError, match="CQI table"):
        cqi_spectral_efficiency(3, 4)
    with pytest.raises(ValueError, match="0..15"):
        cqi_spectral_efficiency(16, 1)


def test_cqi_to_mcs():
    assert [default_cqi_table(t) for t in MCS_TABLE_NAMES] == [1, 2, 3]
    # Highest MCS with Qm*R <= the CQI's (exact): equal efficiencies map onto each other.
    assert cqi_to_mcs(15, "qam64") == 28          # 6 x 948 both
    assert cqi_to_mcs(15, "qam256") == 27         # 8 x 948 both
    assert cqi_to_mcs(12, "qam256") == 21         # 8 x 711 both
    assert cqi_to_mcs(7, "qam64") == 11           # 4 x 378 both
    assert cqi_to_mcs(1, "qam64") == 0            # 0.1523 < MCS 0's 0.2344: nothing fits -> 0
    assert cqi_to_mcs(0, "qam256") == 0           # out of range -> MCS 0
    assert cqi_to_mcs(15, "qam64lowse") == 28
    assert cqi_to_mcs(1, "qam64lowse") == 0
    assert cqi_to_mcs(15, "qam256", cqi_table=1) == 21   # 6 x 948 = 8 x 711 = 5.5547
    assert cqi_to_mcs(14, "qam256", cqi_table=1) == 19   # 5.1152 both
    m = cqi_to_mcs(np.arange(16), "qam256")
    assert (np.diff(m) >= 0).all()
    # CQI 1 (0.1523) is below every MCS of qam256 and maps to MCS 0; from CQI 2 on, the MCS
    # never exceeds the CQI's efficiency, and MCS + 1 would.
    se_m = mcs_spectral_efficiency(m[2:], "qam256")
    se_next = mcs_spectral_efficiency(np.minimum(m[2:] + 1, 27), "qam256")
    se_c = cqi_spectral_efficiency(np.arange(2, 16), 2)
    assert (se_m <= se_c).all()
    assert ((se_next > se_c) | (m[2:] == 27)).all()


def test_nr_depends_on_nothing_else_in_neuralemu():
    """DESIGN.md: nr depends on nothing (numpy only)."""
    import ast
    from pathlib import Path

    import neuralemu.nr

    for path in Path(neuralemu.nr.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("neuralemu"):
                    assert name.startswith("neuralemu.nr"), f"{path.name} imports {name}"
                else:
                    assert name.split(".")[0] in {"numpy", "__future__", "typing", "dataclasses",
                                                  "re", "bisect", "operator"}, (path.name, name)
