"""Mahimahi traces: byte-identical round trips, bad input, per-slot byte conversion."""

from __future__ import annotations

import numpy as np
import pytest

from neuralemu.errors import InputError
from neuralemu.telemetry import (MTU_BYTES, mahimahi_to_slot_bytes, read_mahimahi,
                                 slot_bytes_to_mahimahi, write_mahimahi)


@pytest.fixture(scope="module")
def traces(shared_data):
    files = sorted((shared_data / "mahimahi").iterdir())
    assert files
    return files


def test_every_shared_trace_round_trips_byte_identical(traces, tmp_path):
    for path in traces:
        ms = read_mahimahi(path)
        assert ms.dtype == np.int64 and ms.size > 1000
        assert (np.diff(ms) >= 0).all()
        out = tmp_path / path.name
        write_mahimahi(ms, out)
        assert out.read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("slot_us", [1000, 500, 250, 125, 2000])
def test_slot_bytes_conserve_bytes_and_invert(traces, slot_us):
    for path in traces:
        ms = read_mahimahi(path)
        per_slot = mahimahi_to_slot_bytes(ms, slot_us)
        assert per_slot.dtype == np.int64
        assert per_slot.sum() == MTU_BYTES * ms.size
        assert per_slot.size * slot_us >= (ms[-1] + 1) * 1000
        back = slot_bytes_to_mahimahi(per_slot, slot_us)
        if slot_us <= 1000:
            assert np.array_equal(back, ms), path.name
        else:  # a 2 ms slot delivers at its first ms
            assert np.array_equal(back, ms - ms % (slot_us // 1000))


def test_sub_ms_slots_spread_a_ms_evenly():
    ms = np.array([0, 0, 2])
    assert mahimahi_to_slot_bytes(ms, 500).tolist() == [1500, 1500, 0, 0, 750, 750]
    assert mahimahi_to_slot_bytes(np.array([0]), 125).tolist() == [188] * 4 + [187] * 4
    assert mahimahi_to_slot_bytes(ms, 1000, n_slots=5).tolist() == [3000, 0, 1500, 0, 0]
    assert mahimahi_to_slot_bytes(ms, 1000, n_slots=1).tolist() == [3000]


def test_slot_bytes_to_mahimahi_carries_remainders():
    # 1000 bytes per 1 ms slot: a line every 1.5 ms, no byte lost but the last remainder
    ms = slot_bytes_to_mahimahi(np.full(6, 1000), 1000)
    assert ms.tolist() == [1, 2, 4, 5]
    assert slot_bytes_to_mahimahi(np.array([0, 0]), 500).size == 0
    with pytest.raises(InputError):
        slot_bytes_to_mahimahi(np.array([-1]), 1000)
    with pytest.raises(InputError):
        mahimahi_to_slot_bytes(np.array([0]), 300)


@pytest.mark.parametrize("text, line, match", [
    ("", 1, "empty"),
    ("\n\n", 1, "empty"),
    ("1\n2\n1\n", 3, "decreases"),
    ("1\n2.5\n", 2, "not an integer"),
    ("1\n-3\n", 2, "negative"),
    ("1\nabc\n", 2, "not a millisecond"),
    ("1\n\n2\n", 2, "blank line"),
    ("1\n2 3\n", 2, "not a millisecond"),
    ("1\n" + "9" * 30 + "\n", 2, "digits"),
])
def test_bad_traces_name_file_and_line(tmp_path, text, line, match):
    path = tmp_path / "trace.up"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as err:
        read_mahimahi(path)
    assert err.value.source == str(path)
    assert err.value.line == line


def test_trailing_blank_lines_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "t"
    path.write_bytes(b"0\r\n0\r\n5\r\n\r\n\r\n")
    assert read_mahimahi(path).tolist() == [0, 0, 5]


def test_binary_and_missing_files(tmp_path):
    path = tmp_path / "bin"
    path.write_bytes(b"1\n2\n\x00\x01\x02\n")
    with pytest.raises(InputError, match="binary") as err:
        read_mahimahi(path)
    assert err.value.line == 3
    with pytest.raises(InputError, match="no such file"):
        read_mahimahi(tmp_path / "missing")


def test_write_rejects_bad_arrays(tmp_path):
    with pytest.raises(InputError):
        write_mahimahi(np.array([3, 1]), tmp_path / "x")
    with pytest.raises(InputError):
        write_mahimahi(np.array([], dtype=np.int64), tmp_path / "x")
