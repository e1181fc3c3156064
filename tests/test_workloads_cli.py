"""``neuralemu workload gen`` / ``info``."""

from __future__ import annotations

import pytest

from neuralemu.cli import main
from neuralemu.commands.workload import parse_ues
from neuralemu.errors import InputError
from neuralemu.workloads import read_units_csv, read_workload_csv


@pytest.mark.parametrize("kind, extra", [
    ("bulk", ["--rate-mbps", "20", "--initial-bytes", "30000"]),
    ("cbr", ["--rate-mbps", "2", "--direction", "both"]),
    ("onoff", ["--distribution", "pareto", "--mean-on-s", "0.2"]),
    ("gaming", ["--bitrate-mbps", "10", "--input-hz", "125"]),
    ("web", ["--think-mean-s", "0.5"]),
])
def test_gen_each_kind(tmp_path, capsys, kind, extra):
    out = tmp_path / "w.csv"
    rc = main(["workload", "gen", "--kind", kind, "--ues", "2", "--duration-s", "2",
               "--seed", "3", "--out", str(out), *extra])
    assert rc == 0
    df = read_workload_csv(out)
    assert len(df) > 0 and set(df.ue) <= {1, 2}
    assert (tmp_path / "w.units.csv").exists() == (kind in ("gaming", "web"))
    if kind in ("gaming", "web"):
        assert len(read_units_csv(tmp_path / "w.units.csv")) > 0
    assert main(["workload", "info", str(out)]) == 0
    assert "packets" in capsys.readouterr().out


def test_gen_is_deterministic(tmp_path):
    args = ["workload", "gen", "--kind", "gaming", "--ues", "5-6", "--duration-s", "1",
            "--seed", "9", "--units-out", "none"]
    assert main(args + ["--out", str(tmp_path / "a.csv")]) == 0
    assert main(args + ["--out", str(tmp_path / "b.csv")]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert not (tmp_path / "a.units.csv").exists()


@pytest.mark.parametrize("extra, words", [
    (["--ues", "2", "--think-mean-s", "3"], "does not apply to --kind cbr"),
    (["--ues", "2,x"], "--ues must be"),
    (["--ues", "0"], "--ues count"),
    (["--ues", "2", "--rate-mbps", "-1"], "rate_mbps"),
    (["--ues", "1,1"], "distinct"),
])
def test_gen_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, words):
    rc = main(["workload", "gen", "--kind", "cbr", "--duration-s", "1",
               "--out", str(tmp_path / "w.csv"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_info_bad_file_exit_2(tmp_path, capsys):
    p = tmp_path / "w.csv"
    p.write_text("t_us,ue,direction,size_bytes\n0,1,sideways,10\n")
    assert main(["workload", "info", str(p)]) == 2
    assert "w.csv:2: field 'direction'" in capsys.readouterr().err


def test_parse_ues():
    assert parse_ues("3") == [1, 2, 3]
    assert parse_ues("17921-17923,5") == [17921, 17922, 17923, 5]
    assert parse_ues("7,") == [7]
    with pytest.raises(InputError):
        parse_ues("5-2")
