"""TBS procedure of TS 38.214 5.1.3.2: hand-computed boundary cases and the fast paths."""

from __future__ import annotations

import numpy as np
import pytest

from neuralemu.nr import (TBS_TABLE_BITS, TbsLookup, codeword_layers, dmrs_re_per_prb,
                          mcs_spectral_efficiency, n_re, n_re_per_prb, tbs_bits, tbs_bits_array)

# (n_re per layer, mcs, table, layers, expected TBS bits), each worked out by hand below.
HAND_CASES = [
    # Smallest: N_RE = 1, qam64lowse MCS 0 (Qm 2, R 30/1024): N_info = 60/1024 = 0.059.
    # Step 3: n = max(3, -5 - 6) = 3; N'_info = max(24, 8 * 0) = 24 -> TBS 24.
    (1, 0, "qam64lowse", 1, 24),
    # N_info = 3824 exactly (last value of step 3): qam64lowse MCS 3 (Qm 2, R 64/1024),
    # N_RE = 30592: 30592 * 64 * 2 / 1024 = 3824. n = max(3, 11 - 6) = 5;
    # N'_info = 32 * floor(3824 / 32) = 32 * 119 = 3808 -> smallest table TBS >= 3808 = 3824.
    (30592, 3, "qam64lowse", 1, 3824),
    # N_info = 3825 (first value of step 4), R > 1/4: qam64 MCS 10 (Qm 4, R 340/1024),
    # N_RE = 2880: 2880 * 340 * 4 / 1024 = 3825. n = floor(log2(3801)) - 5 = 6;
    # round(3801 / 64) = round(59.39) = 59 -> 3776; N'_info = max(3840, 3776) = 3840 <= 8424:
    # TBS = 8 * ceil(3864 / 8) - 24 = 3864 - 24 = 3840.
    (2880, 10, "qam64", 1, 3840),
    # N_info = 3825 with R <= 1/4: qam64 MCS 0 (Qm 2, R 120/1024), N_RE = 16320:
    # 16320 * 120 * 2 / 1024 = 3825. N'_info = 3840 as above; C = ceil(3864 / 3816) = 2;
    # TBS = 16 * ceil(3864 / 16) - 24 = 16 * 242 - 24 = 3848.
    (16320, 0, "qam64", 1, 3848),
    # R <= 1/4 and large: qam64 MCS 0, N_RE = 156 * 273 = 42588, 4 layers:
    # N_info = 42588 * 120 * 2 * 4 / 1024 = 39926.25; N_info - 24 = 39902.25, n = 15 - 5 = 10;
    # round(39902.25 / 1024) = round(38.97) = 39 -> N'_info = 39936;
    # C = ceil(39960 / 3816) = 11; TBS = 88 * ceil(39960 / 88) - 24 = 88 * 455 - 24 = 40016.
    # (The R > 1/4 branch would give C = 5 and 39936: this case tells the branches apart.)
    (42588, 0, "qam64", 4, 40016),
    # Just under 8424: qam64 MCS 10 (Qm 4, R 340/1024), N_RE = 6200: N_info = 8234.375;
    # n = floor(log2(8210.375)) - 5 = 8; round(8210.375 / 256) = round(32.07) = 32
    # -> N'_info = 8192 <= 8424: TBS = 8 * ceil(8216 / 8) - 24 = 8192.
    (6200, 10, "qam64", 1, 8192),
    # N'_info > 8424, R > 1/4: N_RE = 6300: N_info = 8367.1875; round(8343.1875 / 256) =
    # round(32.59) = 33 -> N'_info = 8448 > 8424: C = ceil(8472 / 8424) = 2;
    # TBS = 16 * ceil(8472 / 16) - 24 = 16 * 530 - 24 = 8456.
    (6300, 10, "qam64", 1, 8456),
    # Tie in round(): qam64 MCS 12 (Qm 4, R 434/1024), N_RE = 3072: N_info = 3 * 1736 = 5208;
    # N_info - 24 = 5184, n = 12 - 5 = 7; 5184 / 128 = 40.5 rounds up to 41 -> N'_info = 5248;
    # TBS = 8 * ceil(5272 / 8) - 24 = 5248 (rounding down would give 5120).
    (3072, 12, "qam64", 1, 5248),
    # Step 3 quantisation, an NR-Scope row: qam256 MCS 26 (Qm 8, R 916.5/1024), N_RE = 468:
    # N_info = 3351.09; n = 11 - 6 = 5; N'_info = 32 * 104 = 3328 -> next table TBS 3368.
    (468, 26, "qam256", 1, 3368),
    # Largest: 273 PRBs x 156 REs, qam256 MCS 27 (Qm 8, R 948/1024), 4 layers:
    # N_info = 42588 * 948 * 8 * 4 / 1024 = 1261669.5; N_info - 24 = 1261645.5, n = 20 - 5 = 15;
    # round(1261645.5 / 32768) = round(38.50) = 39 -> N'_info = 1277952;
    # C = ceil(1277976 / 8424) = 152; TBS = 1216 * ceil(1277976 / 1216) - 24
    # = 1216 * 1051 - 24 = 1277992.
    (42588, 27, "qam256", 4, 1277992),
    # 275 PRBs (the largest N_RE, 42900) gives the same N'_info and TBS.
    (42900, 27, "qam256", 4, 1277992),
]


@pytest.mark.parametrize("re, mcs, table, layers, expected", HAND_CASES)
def test_tbs_hand_computed(re, mcs, table, layers, expected):
    assert tbs_bits(re, mcs, table, layers) == expected
    assert tbs_bits_array(np.array([re]), np.array([mcs]), table, np.array([layers]))[0] == expected


def test_tbs_table_5_1_3_2_1():
    assert len(TBS_TABLE_BITS) == 93
    assert TBS_TABLE_BITS[0] == 24 and TBS_TABLE_BITS[-1] == 3824
    assert list(TBS_TABLE_BITS) == sorted(set(TBS_TABLE_BITS))
    assert all(t % 8 == 0 for t in TBS_TABLE_BITS)
    for v in (208, 1032, 1064, 1128, 2024, 2976, 3104):     # spot checks against the spec
        assert v in TBS_TABLE_BITS


def test_tbs_zero_cases_and_reserved():
    assert tbs_bits(0, 10, "qam64", 1) == 0
    for table, reserved in (("qam64", (29, 30, 31)), ("qam256", (28, 29, 30, 31)),
                            ("qam64lowse", (29, 30, 31))):
        for m in reserved:
            assert tbs_bits(1000, m, table, 2) == 0
    assert tbs_bits(1000, 28, "qam64", 1) > 0


def test_tb_scaling_field():
    # qam64 MCS 5 (Qm 2, R 379/1024), N_RE = 1000: N_info = 740.23 -> 8 * 92 = 736 -> TBS 736.
    # S = 0.5 (Table 5.1.3.2-2): N_info = 370.12 -> 8 * 46 = 368 -> TBS 368.
    assert tbs_bits(1000, 5, "qam64", 1) == 736
    assert tbs_bits(1000, 5, "qam64", 1, tb_scaling=1) == 368
    with pytest.raises(ValueError, match="scaling"):
        tbs_bits(1000, 5, "qam64", 1, tb_scaling=3)


def test_tbs_bad_input():
    with pytest.raises(ValueError, match="MCS index"):
        tbs_bits(100, 32, "qam64", 1)
    with pytest.raises(ValueError, match="unknown MCS table"):
        tbs_bits(100, 3, "qam1024", 1)
    with pytest.raises(ValueError, match="codeword_layers"):
        tbs_bits(100, 3, "qam64", 5)
    with pytest.raises(ValueError, match="n_re"):
        tbs_bits(-1, 3, "qam64", 1)


def test_n_re():
    assert n_re_per_prb(14) == 156
    assert n_re_per_prb(14, 12, 6) == 150
    assert n_re_per_prb(12, 24) == 120
    assert n_re(10, 14) == 1560
    assert n_re(10, 14, 0) == 1560              # 168 REs capped at 156 per PRB
    assert n_re(273, 12, 12, 0) == 273 * 132
    assert np.array_equal(n_re(np.array([0, 1, 52]), 14), [0, 156, 52 * 156])
    with pytest.raises(ValueError, match="symbols"):
        n_re_per_prb(15)
    with pytest.raises(ValueError):
        n_re_per_prb(1, 24)


def test_dmrs_re_per_prb():
    assert dmrs_re_per_prb() == 12                       # 1 symbol, 2 CDM groups, type 1
    assert dmrs_re_per_prb(2, 1) == 12 and dmrs_re_per_prb(2, 2) == 24
    assert dmrs_re_per_prb(1, 3, dmrs_type=2) == 12
    assert dmrs_re_per_prb(np.array([1, 2]), 2).tolist() == [12, 24]
    with pytest.raises(ValueError, match="CDM"):
        dmrs_re_per_prb(1, 3)
    with pytest.raises(ValueError, match="type"):
        dmrs_re_per_prb(1, 1, dmrs_type=3)


def test_codeword_layers():
    assert [codeword_layers(v) for v in range(1, 9)] == [
        (1,), (2,), (3,), (4,), (2, 3), (3, 3), (3, 4), (4, 4)]
    with pytest.raises(ValueError):
        codeword_layers(9)


def test_vectorised_equals_scalar_everywhere():
    rng = np.random.default_rng(7)
    for table in ("qam64", "qam256", "qam64lowse"):
        re = rng.integers(0, 42901, 400)
        mcs = rng.integers(0, 32, 400)
        layers = rng.integers(1, 5, 400)
        vec = tbs_bits_array(re, mcs, table, layers)
        assert vec.dtype == np.int64
        assert vec.tolist() == [tbs_bits(int(a), int(b), table, int(c))
                                for a, b, c in zip(re, mcs, layers)]
        for scaling in (1, 2):
            vec = tbs_bits_array(re[:100], mcs[:100], table, layers[:100], tb_scaling=scaling)
            assert vec.tolist() == [tbs_bits(a, b, table, c, tb_scaling=scaling)   # numpy ints
                                    for a, b, c in zip(re[:100], mcs[:100], layers[:100])]
    assert tbs_bits(468.0, 26, "qam256", 1) == 3368       # integral floats take the array path
    with pytest.raises(ValueError, match="integer"):
        tbs_bits(468.5, 26, "qam256", 1)


def test_tbs_monotone_in_re_and_spectral_efficiency():
    # Non-decreasing in N_RE, and in the MCS once ordered by Qm * R. (The index order is not
    # always the SE order: qam64 MCS 17, 2.5664, is below MCS 16, 2.5703, and its TBS can be too.)
    re = np.arange(0, 42901, 37)
    for table, top in (("qam64", 28), ("qam256", 27), ("qam64lowse", 28)):
        mcs = np.arange(top + 1)
        order = np.argsort(mcs_spectral_efficiency(mcs, table), kind="stable")
        grid = tbs_bits_array(re[:, None], mcs[order][None, :], table, 1)
        assert (np.diff(grid, axis=0) >= 0).all()
        assert (np.diff(grid, axis=1) >= 0).all()
    # N_RE = 162: MCS 16 N_info = 162 * 658 * 4 / 1024 = 416.39 -> 416 -> TBS 432;
    #             MCS 17 N_info = 162 * 438 * 6 / 1024 = 415.76 -> 408 -> TBS 408.
    assert tbs_bits(162, 16, "qam64", 1) == 432
    assert tbs_bits(162, 17, "qam64", 1) == 408


def test_lookup_equals_direct_and_is_fast():
    lookup = TbsLookup("qam256", symbols=12, dmrs_re_per_prb=12, overhead_re_per_prb=0,
                       max_prbs=106, max_layers=2)
    per_prb = 12 * 12 - 12
    for prbs in (0, 1, 52, 106):
        for mcs in (0, 13, 27, 28, 31):
            for v in (1, 2):
                assert lookup.tbs_bits(prbs, mcs, v) == tbs_bits(prbs * per_prb, mcs, "qam256", v)
    p = np.array([1, 50, 106]); m = np.array([0, 20, 27]); v = np.array([1, 2, 2])
    assert lookup.tbs_bits_array(p, m, v).tolist() == [lookup.tbs_bits(*t) for t in zip(p, m, v)]
    with pytest.raises(IndexError):
        lookup.tbs_bits(107, 3, 1)
    with pytest.raises(ValueError):
        lookup.tbs_bits(-1, 3, 1)
    with pytest.raises(ValueError):
        lookup.tbs_bits_array([107], [3], [1])
