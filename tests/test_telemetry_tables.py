"""Canonical table validation, Parquet round trips and UE-side logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from neuralemu.errors import InputError
from neuralemu.telemetry import (DCI_COLUMNS, read_dci_parquet, read_nrscope, read_ue_log,
                                 validate_dci_table, write_dci_parquet, write_ue_log)


@pytest.fixture(scope="module")
def table(nrscope_files):
    path = next(p for p in nrscope_files if p.name.startswith("t_mobile2_ueactivity_morning_1"))
    return read_nrscope(path)


def test_parquet_round_trip_keeps_dtypes_and_attrs(table, tmp_path):
    out = tmp_path / "dci.parquet"
    write_dci_parquet(table, out)
    back = read_dci_parquet(out)
    pd.testing.assert_frame_equal(back, table, check_exact=True)
    assert back.attrs == table.attrs
    meta = pq.read_schema(out).metadata[b"neuralemu"]
    assert b'"mu": 0' in meta and b'"slot_us": 1000' in meta


def test_validate_rejects_wrong_tables(table):
    validate_dci_table(table, "ok")
    bad = table.drop(columns=["rv"])
    bad.attrs.update(table.attrs)
    with pytest.raises(InputError, match="missing column") as err:
        validate_dci_table(bad, "t")
    assert err.value.field == "rv"
    bad = table.astype({"mcs": "int32"})
    bad.attrs.update(table.attrs)
    with pytest.raises(InputError, match="dtype") as err:
        validate_dci_table(bad, "t")
    assert err.value.field == "mcs"
    bad = table.copy()
    bad.loc[3, "mcs"] = 40
    with pytest.raises(InputError, match="outside") as err:
        validate_dci_table(bad, "t")
    assert err.value.field == "mcs"
    bad = table.copy()
    bad.attrs["mu"] = 9
    with pytest.raises(InputError):
        validate_dci_table(bad, "t")
    bad = table.iloc[::-1].copy()
    bad.attrs.update(table.attrs)
    with pytest.raises(InputError, match="sorted"):
        validate_dci_table(bad, "t")


def test_read_parquet_rejects_foreign_and_corrupt_files(table, tmp_path):
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    with pytest.raises(InputError, match="metadata"):
        read_dci_parquet(foreign)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="Parquet") as err:
        read_dci_parquet(junk)
    assert str(junk) in str(err.value)
    with pytest.raises(InputError, match="no such file"):
        read_dci_parquet(tmp_path / "missing.parquet")
    # right metadata, wrong dtype
    good = tmp_path / "good.parquet"
    write_dci_parquet(table, good)
    t = pq.read_table(good)
    t = t.set_column(t.schema.get_field_index("rnti"), "rnti", t["rnti"].cast(pa.float64()))
    pq.write_table(t, good)
    with pytest.raises(InputError, match="dtype") as err:
        read_dci_parquet(good)
    assert err.value.field == "rnti"


UE_LOG = """t_us,ue,direction,buffer_bytes,cqi,sinr_db
2000,17921,dl,1500,12,14.5
1000,17921,ul,0,9,
1000,17922,dl,30000,15,20.25
"""


def test_ue_log_reads_sorted_and_round_trips(tmp_path):
    path = tmp_path / "ue.csv"
    path.write_text(UE_LOG)
    df = read_ue_log(path)
    assert df["t_us"].tolist() == [1000, 1000, 2000]
    assert df["ue"].tolist() == [17921, 17922, 17921]
    assert df["direction"].tolist() == ["ul", "dl", "dl"]
    assert np.isnan(df["sinr_db"].iloc[0])
    assert {c: str(t) for c, t in df.dtypes.items()} == {
        "t_us": "int64", "ue": "int64", "direction": "str", "buffer_bytes": "int64",
        "cqi": "int64", "sinr_db": "float64"}
    out = tmp_path / "back.csv"
    write_ue_log(df, out)
    pd.testing.assert_frame_equal(read_ue_log(out), df)
    # without the optional column
    path.write_text("direction,t_us,ue,buffer_bytes,cqi\ndl,5,1,0,3\n")
    assert list(read_ue_log(path).columns) == ["t_us", "ue", "direction", "buffer_bytes", "cqi"]


@pytest.mark.parametrize("body, line, field", [
    ("t_us,ue,direction,buffer_bytes\n1,1,dl,0\n", 1, "cqi"),
    ("t_us,ue,direction,buffer_bytes,cqi,rsrp\n1,1,dl,0,3,-80\n", 1, "rsrp"),
    ("t_us,ue,direction,buffer_bytes,cqi\n1,1,dl,0,3\n2,1,up,0,3\n", 3, "direction"),
    ("t_us,ue,direction,buffer_bytes,cqi\n1,1,dl,0,16\n", 2, "cqi"),
    ("t_us,ue,direction,buffer_bytes,cqi\n1,1,dl,-5,1\n", 2, "buffer_bytes"),
    ("t_us,ue,direction,buffer_bytes,cqi\n1,1,dl,0,1\nx,1,dl,0,1\n", 3, "t_us"),
    ("t_us,ue,direction,buffer_bytes,cqi\n1,1,dl,0,1\n2,1,dl\n", 3, "buffer_bytes"),
])
def test_bad_ue_logs(tmp_path, body, line, field):
    path = tmp_path / "ue.csv"
    path.write_text(body)
    with pytest.raises(InputError) as err:
        read_ue_log(path)
    assert err.value.source == str(path)
    assert (err.value.line, err.value.field) == (line, field)


def test_empty_dci_table_is_valid():
    from neuralemu.telemetry import empty_dci_table
    df = empty_dci_table(1, "nothing")
    assert list(df.columns) == list(DCI_COLUMNS) and df.attrs["slot_us"] == 500
    validate_dci_table(df, "x")


def test_bundled_nrscope_sample_matches_its_source(shared_data):
    from pathlib import Path
    sample = Path(__file__).resolve().parents[1] / "traces" / "nrscope" / "t_mobile2_morning_2_excerpt.csv"
    assert (sample.parent / "README.md").read_text().count("AGPL-3.0") >= 1
    source = (shared_data / "nrscope" / "t_mobile2_ueactivity_morning_2.csv").read_bytes()
    assert source.startswith(sample.read_bytes())  # an unmodified cut
    df = read_nrscope(sample)
    assert len(df) == 2995 and set(df["direction"]) == {"dl", "ul"}
