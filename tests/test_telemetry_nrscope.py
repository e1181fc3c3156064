"""NR-Scope reader/writer: acceptance against a plain pandas reading, quirks, round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralemu.errors import InputError
from neuralemu.nr import is_reserved_mcs, tbs_bits_array
from neuralemu.telemetry import (DCI_COLUMNS, NRSCOPE_COLUMNS, duplicate_dcis, read_nrscope,
                                 validate_dci_table, write_nrscope)
from neuralemu.telemetry.schema import str_column

HEADER = ",".join(NRSCOPE_COLUMNS)

# One empty decode and one 1_1 grant, as NR-Scope writes them (t_mobile1 file).
DEFAULTS = dict(timestamp="1727288904.984403", system_frame_index=394, slot_index=3, rnti=22734,
                rnti_type="C-RNTI", dci_format="1_1", k=0, mapping="A", time_start=2,
                time_length=12, frequency_start=0, frequency_length=8, nof_dmrs_cdm_groups=1,
                beta_dmrs="1.000000", nof_layers=2, n_scid=0, tb_scaling_field=0,
                modulation="QPSK", mcs_index=0, transport_block_size=504,
                code_rate="0.117188", redundancy_version=0, new_data_indicator=0, nof_re=2112,
                nof_bits=4224, mcs_table="256qam", xoverhead=0, harq_id=1,
                downlink_assignment_index=0, tpc=1, pucch_resource=1, harq_feedback=0, bwp=1)


def row(**kw) -> str:
    values = {**DEFAULTS, **kw}
    return ",".join(str(values[c]) for c in NRSCOPE_COLUMNS)


def write(tmp_path, lines, name="dci.csv", header=HEADER) -> str:
    path = tmp_path / name
    path.write_text("\n".join([header] + lines) + "\n")
    return str(path)


def plain_reading(path) -> pd.DataFrame:
    """An independent reading: every cell as text, repeated header lines dropped."""
    raw = pd.read_csv(path, dtype=str)
    return raw[raw["timestamp"] != "timestamp"]


def test_every_shared_file_matches_a_plain_pandas_reading(nrscope_files):
    for path in nrscope_files:
        raw = plain_reading(path)
        assert (raw["mcs_table"] == "256qam").all()  # so the reserved MCS indices are 28..31
        start = raw["frequency_start"].astype(int)
        length = raw["frequency_length"].astype(int)
        tbs = raw["transport_block_size"].astype(int)
        mcs = raw["mcs_index"].astype(int)
        valid = (length > 0) & (start + length <= 275) & ((tbs > 0) | (mcs >= 28))

        df = read_nrscope(path)
        validate_dci_table(df, str(path))
        assert len(df) == len(raw), path.name
        assert df["rnti"].nunique() == raw["rnti"].nunique(), path.name
        assert int(df["valid"].sum()) == int(valid.sum()), path.name
        assert df.attrs["mu"] == 0 and df.attrs["slot_us"] == 1000
        assert df.attrs["source"] == str(path)
        assert list(df.columns) == list(DCI_COLUMNS)
        assert (np.diff(df["slot"].to_numpy()) >= 0).all()
        # ul exists only where the file has DCI 0_x
        assert int((df["direction"] == "ul").sum()) == int(raw["dci_format"].str.startswith("0").sum())


def test_logged_tbs_equals_38214_tbs_for_valid_rows(nrscope_files):
    df = pd.concat([read_nrscope(p) for p in nrscope_files[:4]], ignore_index=True)
    ok = df[df["valid"] & ~is_reserved_mcs(df["mcs"].to_numpy(), "qam256")]
    tbs = tbs_bits_array(ok["n_re"].to_numpy(), ok["mcs"].to_numpy(), "qam256", ok["layers"].to_numpy())
    assert np.array_equal(tbs, ok["tbs_bits"].to_numpy())


def test_duration_matches_host_clock_across_long_silences(nrscope_files):
    # lab_srsgnb has 30 silences longer than 5.12 s: nearest-SFN unwrapping would lose wraps.
    path = next(p for p in nrscope_files if p.name.startswith("lab_srsgnb"))
    raw = plain_reading(path)
    ts = raw["timestamp"].astype(float)
    df = read_nrscope(path)
    span_s = (df["t_us"].iloc[-1] - df["t_us"].iloc[0]) / 1e6
    assert abs(span_s - (ts.max() - ts.min())) < 1.0


def test_write_read_round_trip_of_every_shared_file(nrscope_files, tmp_path):
    for path in nrscope_files:
        df = read_nrscope(path)
        out = tmp_path / "back.csv"
        write_nrscope(df, out)
        back = read_nrscope(out, mu=df.attrs["mu"])
        pd.testing.assert_frame_equal(back, df, check_exact=True)
        assert back.attrs["mu"] == df.attrs["mu"]
        assert out.read_text().splitlines()[0] == HEADER


def _table(slots, mu, **cols) -> pd.DataFrame:
    n = len(slots)
    slot = np.asarray(slots, dtype=np.int64)
    base = dict(rnti=np.full(n, 17921), prb_start=np.zeros(n, np.int64), prb_count=np.full(n, 10),
                symbols=np.full(n, 12), layers=np.ones(n, np.int64), mcs=np.full(n, 9),
                n_re=np.full(n, 1200), harq_id=np.arange(n) % 16, ndi=np.zeros(n, np.int64),
                rv=np.zeros(n, np.int64))
    base.update({k: np.asarray(v) for k, v in cols.items()})
    from neuralemu.nr import slot_duration_us
    tbs = tbs_bits_array(base["n_re"], base["mcs"], "qam256", base["layers"])
    df = pd.DataFrame({
        "slot": slot, "t_us": slot * slot_duration_us(mu), "rnti": base["rnti"],
        "direction": str_column(("dl", "ul"), np.asarray(cols.get("ul", np.zeros(n, np.int64)))),
        "prb_start": base["prb_start"], "prb_count": base["prb_count"], "symbols": base["symbols"],
        "layers": base["layers"], "mcs": base["mcs"],
        "mcs_table": str_column(("qam256",), np.zeros(n, np.int64)), "tbs_bits": tbs,
        "n_re": base["n_re"], "harq_id": base["harq_id"], "ndi": base["ndi"], "rv": base["rv"],
        "is_retx": np.zeros(n, bool), "valid": np.ones(n, bool)})
    df.attrs.update(mu=mu, slot_us=int(slot_duration_us(mu)), source="synthetic")
    return df


def test_round_trip_with_mu1_long_gaps_and_uplink(tmp_path):
    spf = 20
    # gaps of 3 s, 7 s (> 5.12 s) and 25 s (> two SFN periods)
    slots = [5, 6, 6, 19, 3 * 2000, 3 * 2000 + 7, 10 * 2000, 35 * 2000 + 1, 35 * 2000 + 19]
    df = _table(slots, 1, ul=[0, 0, 1, 0, 1, 0, 0, 1, 0])
    out = tmp_path / "mu1.csv"
    write_nrscope(df, out)
    back = read_nrscope(out, mu=1)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert back.attrs["slot_us"] == 500
    # max slot_index 19 -> mu 1 is inferred
    assert read_nrscope(out).attrs["mu"] == 1
    assert read_nrscope(out)["slot"].max() < 1024 * spf * 4


def test_sfn_wrap_without_usable_timestamps(tmp_path):
    # constant timestamps: unwrapping falls back to the nearest SFN step
    lines = [row(system_frame_index=s, slot_index=i, timestamp="5.0")
             for s, i in [(1022, 0), (1023, 4), (1023, 2), (0, 1), (1023, 9), (1, 0)]]
    df = read_nrscope(write(tmp_path, lines))
    assert df["slot"].tolist() == [10220, 10232, 10234, 10239, 10241, 10250]


def test_rows_out_of_file_order_are_sorted_by_slot(tmp_path):
    lines = [row(system_frame_index=10, slot_index=5, timestamp="100.05", rnti=1),
             row(system_frame_index=10, slot_index=2, timestamp="100.06", rnti=2),
             row(system_frame_index=9, slot_index=9, timestamp="100.07", rnti=3),
             row(system_frame_index=10, slot_index=5, timestamp="100.08", rnti=4)]
    df = read_nrscope(write(tmp_path, lines))
    assert df["rnti"].tolist() == [3, 2, 1, 4]  # stable within slot 105
    assert df["slot"].tolist() == [99, 102, 105, 105]
    assert df["t_us"].tolist() == [99000, 102000, 105000, 105000]


def test_repeated_headers_and_columns_by_name(tmp_path):
    # carrier_index (35 columns) and a shuffled column order: selected by name
    cols = list(NRSCOPE_COLUMNS) + ["ports", "carrier_index"]
    shuffled = cols[::-1]
    values = [dict(DEFAULTS, ports=0, carrier_index=0, system_frame_index=s) for s in (1, 2, 3)]
    lines = [",".join(str(v[c]) for c in shuffled) for v in values]
    header = ",".join(shuffled)
    path = write(tmp_path, [lines[0], header, lines[1], "", header, lines[2]], header=header)
    df = read_nrscope(path)
    assert df["slot"].tolist() == [13, 23, 33]
    assert (df["prb_count"] == 8).all() and (df["n_re"] == 1056).all()


def test_invalid_decodes_and_retransmissions(tmp_path):
    lines = [
        # empty decode: start 275, length 0, BPSK, TBS 0
        row(slot_index=0, frequency_start=275, frequency_length=0, modulation="BPSK",
            transport_block_size=0, nof_re=0, nof_bits=0, code_rate="0.000000"),
        # PRBs but BPSK and TBS 0 with a normal MCS: invalid
        row(slot_index=1, modulation="BPSK", transport_block_size=0, nof_re=0),
        # new transmission, harq 3, ndi 0
        row(slot_index=2, harq_id=3, new_data_indicator=0),
        # reserved MCS 29 with TBS 0 and rv 2: a valid retransmission
        row(slot_index=5, harq_id=3, mcs_index=29, transport_block_size=0, modulation="BPSK",
            redundancy_version=2, nof_re=0),
        # rv 0, NDI not toggled, same TBS, 8 slots later: retransmission (NDI rule)
        row(slot_index=3, system_frame_index=395, harq_id=3),
        # NDI toggled: new data
        row(slot_index=4, system_frame_index=395, harq_id=3, new_data_indicator=1),
        # same DCI logged twice in one slot: a copy, not a retransmission
        row(slot_index=4, system_frame_index=395, harq_id=3, new_data_indicator=1),
        # NDI not toggled but 40 slots later: treated as new data (missed DCIs)
        row(slot_index=4, system_frame_index=399, harq_id=3, new_data_indicator=1),
        # uplink DCI 0_1, rv 3
        row(slot_index=6, system_frame_index=399, dci_format="0_1", redundancy_version=3,
            harq_id=3),
    ]
    df = read_nrscope(write(tmp_path, lines))
    assert df["valid"].tolist() == [False, False, True, True, True, True, True, True, True]
    assert df["is_retx"].tolist() == [False, False, False, True, True, False, False, False, True]
    assert df["direction"].tolist() == ["dl"] * 8 + ["ul"]
    assert duplicate_dcis(df).tolist() == [False] * 6 + [True, False, False]


def test_mcs_table_names_and_reserved_indices(tmp_path):
    lines = [row(slot_index=0, mcs_table="64qam", mcs_index=28, transport_block_size=0),
             row(slot_index=1, mcs_table="qam64LowSE", mcs_index=28, transport_block_size=100),
             row(slot_index=2, mcs_table="256qam", mcs_index=28, transport_block_size=0,
                 redundancy_version=1)]
    df = read_nrscope(write(tmp_path, lines))
    assert df["mcs_table"].tolist() == ["qam64", "qam64lowse", "qam256"]
    # MCS 28 is a data MCS in 38.214 Table 5.1.3.1-1 and -3, reserved only in Table 5.1.3.1-2
    assert df["valid"].tolist() == [False, True, True]
    assert df["is_retx"].tolist() == [False, False, True]


@pytest.mark.parametrize("lines, line, field", [
    ([row(), row(mcs_index="x")], 3, "mcs_index"),
    ([row(), row(rnti="")], 3, "rnti"),
    ([row(), row(nof_re="3.5")], 3, "nof_re"),
    ([row(), row(dci_format="2_0")], 3, "dci_format"),
    ([row(), row(mcs_table="1024qam")], 3, "mcs_table"),
    ([row(), row(system_frame_index=1024)], 3, "system_frame_index"),
    ([row(), row(redundancy_version=4)], 3, "redundancy_version"),
    ([row(), row(slot_index=80)], 3, "slot_index"),
    ([row(), row(timestamp="abc")], 3, "timestamp"),
    ([row(), row().rsplit(",", 5)[0]], 3, "downlink_assignment_index"),
])
def test_bad_values_name_file_line_and_field(tmp_path, lines, line, field):
    path = write(tmp_path, lines)
    with pytest.raises(InputError) as err:
        read_nrscope(path)
    assert err.value.source == path
    assert err.value.line == line
    assert err.value.field == field


def test_explicit_mu_must_fit_slot_index(tmp_path):
    path = write(tmp_path, [row(slot_index=15)])
    assert read_nrscope(path).attrs["mu"] == 1
    with pytest.raises(InputError) as err:
        read_nrscope(path, mu=0)
    assert err.value.field == "slot_index" and err.value.line == 2
    with pytest.raises(InputError):
        read_nrscope(path, mu=7)


def test_header_problems(tmp_path):
    with pytest.raises(InputError, match="unknown column") as err:
        read_nrscope(write(tmp_path, [row()], header=HEADER.replace("rnti,", "rnty,")))
    assert err.value.line == 1 and err.value.field == "rnty"
    cut = ",".join(c for c in NRSCOPE_COLUMNS if c != "harq_id")
    with pytest.raises(InputError, match="missing column") as err:
        read_nrscope(write(tmp_path, [row()], header=cut))
    assert err.value.field == "harq_id"


def test_header_only_file_is_an_empty_table(tmp_path):
    df = read_nrscope(write(tmp_path, []))
    assert len(df) == 0 and list(df.columns) == list(DCI_COLUMNS)
    validate_dci_table(df, "x")


def test_chunked_parse_under_a_progress_bar_gives_the_same_table(nrscope_files, monkeypatch):
    import neuralemu.telemetry._csv as csv_mod
    path = next(p for p in nrscope_files if p.name.startswith("t_mobile2_ueactivity_morning_2"))
    whole = read_nrscope(path)
    monkeypatch.setattr(csv_mod, "PROGRESS_MIN_ROWS", 1000)
    monkeypatch.setattr(csv_mod, "PROGRESS_CHUNK_ROWS", 700)  # chunks see different categories
    chunked = read_nrscope(path, show_progress=True)
    pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
