"""`neuralemu ingest` / `inspect` in-process: formats, detection, and the summary figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralemu.cli import main
from neuralemu.errors import InputError
from neuralemu.telemetry import read_dci_parquet, write_nrscope
from neuralemu.telemetry.detect import detect_format
from neuralemu.telemetry.parquet import read_table_parquet
from neuralemu.telemetry.summary import dci_summary, prb_utilisation
from neuralemu.telemetry.schema import str_column


def _dl_table() -> pd.DataFrame:
    # slot 10: UE 1, 10 PRBs, MCS 9; slot 13: UE 2, 50 PRBs, MCS 20, plus a copy of it;
    # slot 13 also holds an invalid decode and UE 1's rv 2 retransmission on 0 extra PRBs
    n = 5
    df = pd.DataFrame({
        "slot": np.array([10, 13, 13, 13, 13]), "t_us": np.array([10, 13, 13, 13, 13]) * 1000,
        "rnti": np.array([1, 2, 2, 3, 1]), "direction": str_column(("dl",), np.zeros(n, np.int64)),
        "prb_start": np.array([0, 0, 0, 275, 0]), "prb_count": np.array([10, 50, 50, 0, 0]),
        "symbols": np.full(n, 12), "layers": np.ones(n, np.int64),
        "mcs": np.array([9, 20, 20, 0, 9]),
        "mcs_table": str_column(("qam256",), np.zeros(n, np.int64)),
        "tbs_bits": np.array([100, 200, 200, 0, 100]), "n_re": np.array([1, 1, 1, 0, 1]),
        "harq_id": np.array([0, 1, 1, 0, 0]), "ndi": np.zeros(n, np.int64),
        "rv": np.array([0, 0, 0, 0, 2]),
        "is_retx": np.array([False, False, False, False, True]),
        "valid": np.array([True, True, True, False, False])})
    df.attrs.update(mu=0, slot_us=1000, source="unit")
    return df


def test_summary_figures_follow_their_definitions():
    df = _dl_table()
    util = prb_utilisation(df, "dl", 50)
    assert util.tolist() == [0.2, 0.0, 0.0, 1.0]  # slots 10..13, the copy counted once
    s = dci_summary(df)
    assert s["slots"] == 4 and s["duration_s"] == pytest.approx(0.004)
    assert (s["dcis"], s["valid_dcis"], s["duplicate_dcis"]) == (5, 3, 1)
    assert (s["rntis"], s["valid_rntis"]) == (3, 2)
    assert s["valid_dcis_per_s"] == pytest.approx(750)
    dl = s["directions"]["dl"]
    assert dl["cell_prbs"] == 50
    assert dl["prb_util_mean"] == pytest.approx(0.3)
    assert dl["prb_util_p95"] == pytest.approx(np.percentile([0.2, 0, 0, 1.0], 95))
    assert dl["retx_rate"] == 0.0
    assert dl["mcs_counts"] == {9: 1, 20: 2}
    assert "ul" not in s["directions"]
    assert dci_summary(df, prbs=100)["directions"]["dl"]["prb_util_mean"] == pytest.approx(0.15)


def test_detect_format(tmp_path, nrscope_files, shared_data):
    assert detect_format(nrscope_files[0]) == "nrscope"
    assert detect_format(next((shared_data / "mahimahi").iterdir())) == "mahimahi"
    ue = tmp_path / "ue.csv"
    ue.write_text("t_us,ue,direction,buffer_bytes,cqi\n0,1,dl,0,1\n")
    assert detect_format(ue) == "ue"
    other = tmp_path / "x.csv"
    other.write_text("td,5G_TBS\n1,2\n")
    with pytest.raises(InputError, match="unknown format") as err:
        detect_format(other)
    assert err.value.line == 1


def test_ingest_every_format_and_inspect(tmp_path, nrscope_files, shared_data, capsys):
    out = tmp_path / "dci.parquet"
    assert main(["ingest", str(nrscope_files[1]), "--out", str(out)]) == 0
    df = read_dci_parquet(out)
    assert df.attrs["source"] == str(nrscope_files[1])
    assert main(["inspect", str(out), "--prbs", "52"]) == 0
    text = capsys.readouterr().out
    assert "[dl] cell PRBs:   52" in text and "retx rate" in text and "MCS counts" in text

    trace = shared_data / "mahimahi" / "ATT-LTE-driving-2016.up"
    out = tmp_path / "mm.parquet"
    assert main(["ingest", str(trace), "--out", str(out), "--mu", "1"]) == 0
    mm = read_table_parquet(out)
    assert mm.attrs["kind"] == "slot_bytes" and mm.attrs["slot_us"] == 500
    assert int(mm["bytes"].sum()) == 1500 * len(trace.read_text().split())
    with pytest.raises(InputError, match="per-DCI"):
        read_dci_parquet(out)
    assert main(["inspect", str(out)]) == 0
    assert "Mbit/s" in capsys.readouterr().out

    ue = tmp_path / "ue.csv"
    ue.write_text("t_us,ue,direction,buffer_bytes,cqi\n0,1,dl,10,7\n1000,2,ul,0,9\n")
    out = tmp_path / "ue.parquet"
    assert main(["ingest", str(ue), "--out", str(out), "--format", "ue"]) == 0
    assert read_table_parquet(out)["cqi"].tolist() == [7, 9]


def test_inspect_raw_csv_with_plot(tmp_path, capsys):
    df = _dl_table()
    raw = tmp_path / "dci.csv"
    write_nrscope(df, raw)
    png = tmp_path / "plot.png"
    assert main(["inspect", str(raw), "--plot", str(png), "--top", "1"]) == 0
    text = capsys.readouterr().out
    assert "RNTIs 2" in text  # the user with the most PRBs
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_options_exit_2(tmp_path, nrscope_files, capsys):
    assert main(["ingest", str(nrscope_files[0]), "--out", str(tmp_path / "x.parquet"),
                 "--mu", "5"]) == 2
    assert main(["inspect", str(nrscope_files[0]), "--prbs", "0"]) == 2
    assert main(["inspect", str(nrscope_files[0]), "--plot", str(tmp_path / "no" / "dir.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("neuralemu: error:") for line in err)
