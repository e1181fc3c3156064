"""TDD patterns (38.213 11.1, 38.331 TDD-UL-DL-ConfigCommon) and the FDD representation."""

from __future__ import annotations

import numpy as np
import pytest

from neuralemu.nr import TddPattern


def test_dddsu():
    p = TddPattern.parse("DDDSU", special_dl_symbols=10, special_gap_symbols=2,
                         special_ul_symbols=2)
    assert p.period_slots == 5 and not p.is_fdd
    assert [p.slot_type(s) for s in range(10)] == list("DDDSUDDDSU")
    assert [p.dl_symbols(s) for s in range(5)] == [14, 14, 14, 10, 0]
    assert [p.ul_symbols(s) for s in range(5)] == [0, 0, 0, 2, 14]
    assert [p.carries(s, "dl") for s in range(5)] == [True, True, True, True, False]
    assert [p.carries(s, "ul") for s in range(5)] == [False, False, False, True, True]
    assert p.slot_type(1003) == "S"
    assert isinstance(p.dl_symbols(3), int) and isinstance(p.carries(3, "dl"), bool)


def test_dddddddsuu_and_arrays():
    p = TddPattern.parse("DDDDDDDSUU", 6, 4, 4)
    assert p.period_slots == 10
    slots = np.arange(20)
    assert "".join(p.slot_type(slots)) == "DDDDDDDSUU" * 2
    assert p.dl_symbols(slots).tolist() == ([14] * 7 + [6, 0, 0]) * 2
    assert p.ul_symbols(slots).tolist() == ([0] * 7 + [4, 14, 14]) * 2
    assert p.carries(slots, "ul").sum() == 6
    assert p == TddPattern.from_tdd_ul_dl_config(mu=1, periodicity_ms=5, nrof_downlink_slots=7,
                                                 nrof_downlink_symbols=6, nrof_uplink_slots=2,
                                                 nrof_uplink_symbols=4)
    assert TddPattern.from_tdd_ul_dl_config(1, 2.5, 3, 10, 1, 2) == TddPattern.parse("DDDSU")


def test_fdd():
    f = TddPattern.fdd()
    assert f.is_fdd and f.period_slots == 1
    for s in (0, 1, 7):
        assert f.carries(s, "dl") and f.carries(s, "ul")
        assert f.dl_symbols(s) == 14 and f.ul_symbols(s) == 14
        assert f.slot_type(s, "dl") == "D" and f.slot_type(s, "ul") == "U"
    with pytest.raises(ValueError, match="direction"):
        f.slot_type(0)


@pytest.mark.parametrize("bad", ["", "   ", "DDXSU", "DDDSU1", "ddd f"])
def test_invalid_strings_name_the_string(bad):
    with pytest.raises(ValueError, match=repr(bad).replace("\\", "\\\\")):
        TddPattern.parse(bad)


def test_direct_construction_is_validated():
    assert TddPattern("DDDSU", 10, 2, 2) == TddPattern.parse("DDDSU")
    with pytest.raises(ValueError, match="'DDXU'"):
        TddPattern("DDXU")
    with pytest.raises(ValueError, match="add"):
        TddPattern("DDDSU", 10, 2, 1)


def test_other_errors():
    assert TddPattern.parse("dddsu") == TddPattern.parse("DDDSU")
    with pytest.raises(ValueError, match="add up to 14"):
        TddPattern.parse("DDDSU", 10, 2, 3)
    with pytest.raises(ValueError, match="direction"):
        TddPattern.parse("DDDSU").carries(0, "down")
    with pytest.raises(ValueError):
        TddPattern.parse("DDDSU").dl_symbols(-1)
    with pytest.raises(ValueError, match="Periodicity"):
        TddPattern.from_tdd_ul_dl_config(1, 7, 3, 0, 1, 0)
    with pytest.raises(ValueError, match="exceed"):
        TddPattern.from_tdd_ul_dl_config(0, 2, 2, 0, 1, 0)
