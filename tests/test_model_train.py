"""Training loop: early stopping, checkpoints, seeds, the CLI, and 2-process torchrun (gloo DDP)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuralemu.cli import main
from neuralemu.scheduler_model.bundle import load_bundle
from neuralemu.scheduler_model.dataset import build_dataset, infer_cell
from neuralemu.scheduler_model.train import TrainConfig, fit
from neuralemu.telemetry import write_dci_parquet, write_ue_log
from neuralemu.telemetry.schema import str_column
from test_model_toydata import toy_telemetry

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(d_model=8, n_heads=2, n_layers=1, d_mlp=16, batch_size=64)


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    dci, ue = toy_telemetry(n_slots=800, seed=3)
    dci = dci.copy()
    dci["direction"] = str_column(("dl", "ul"), np.zeros(len(dci), dtype=np.int64))
    dci["mcs_table"] = str_column(("qam64", "qam256", "qam64lowse"),
                                  np.ones(len(dci), dtype=np.int64))
    ue = ue.copy()
    ue["direction"] = str_column(("dl", "ul"), np.zeros(len(ue), dtype=np.int64))
    write_dci_parquet(dci, tmp / "dci.parquet")
    write_ue_log(ue, tmp / "ue.csv")
    return tmp / "dci.parquet", tmp / "ue.csv", dci, ue


def test_fit_is_seeded_and_stops_early(toy_files, tmp_path):
    *_, dci, ue = toy_files
    cell = infer_cell(dci, ue)
    data = build_dataset(dci, ue, cell)
    cfg = TrainConfig(epochs=3, seed=5, patience=1, checkpoint_dir=str(tmp_path / "ck"), **TINY)
    a = fit(data, cell, cfg, out_path=tmp_path / "a.nemu", log=None)
    b = fit(data, cell, TrainConfig(epochs=3, seed=5, patience=1, **TINY), log=None)
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k])
    assert sorted(p.name for p in (tmp_path / "ck").iterdir())[-1] == "epoch_%03d.nemu" % (
        len(a.training["history"]) - 1)
    assert (tmp_path / "ck" / "best.nemu").is_file()
    loaded = load_bundle(tmp_path / "a.nemu")
    assert loaded.training["epoch"] == a.training["epoch"]
    # early stopping: an impossible improvement threshold stops after patience + 1 epochs
    stop = fit(data, cell, TrainConfig(epochs=20, seed=5, patience=1, lr=1e-9, **TINY), log=None)
    assert len(stop.training["history"]) < 20


def test_cli_train_and_evaluate(toy_files, tmp_path, capsys):
    dci_path, ue_path, *_ = toy_files
    out = tmp_path / "m.nemu"
    assert main(["train", "--dci", str(dci_path), "--ue-log", str(ue_path), "--out", str(out),
                 "--epochs", "2", "--d-model", "8", "--layers", "1", "--batch-size", "64"]) == 0
    assert "2 epochs" in capsys.readouterr().out
    assert main(["evaluate-model", "--model", str(out), "--dci", str(dci_path), "--ue-log",
                 str(ue_path), "--plot", str(tmp_path / "p.png")]) == 0
    text = capsys.readouterr().out
    assert "F1 scheduled" in text and "pf_w100" in text and (tmp_path / "p.png").stat().st_size > 0


def test_cli_bad_arguments_are_one_line_errors(toy_files, tmp_path, capsys):
    dci_path, ue_path, *_ = toy_files
    assert main(["train", "--dci", str(dci_path), "--ue-log", str(ue_path), "--out",
                 str(tmp_path / "x.nemu"), "--epochs", "0"]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert main(["train", "--dci", str(ue_path), "--ue-log", str(ue_path), "--out",
                 str(tmp_path / "x.nemu")]) == 2
    assert "expected a DCI log" in capsys.readouterr().err
    bad = tmp_path / "bad.nemu"
    bad.write_bytes(b"\x80\x04garbage")
    assert main(["evaluate-model", "--model", str(bad), "--dci", str(dci_path), "--ue-log",
                 str(ue_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pickle" in err


@pytest.mark.slow
def test_torchrun_two_processes(toy_files, tmp_path):
    dci_path, ue_path, *_ = toy_files
    out = tmp_path / "ddp.nemu"
    env = {**os.environ, "NEURALEMU_QUIET": "1", "OMP_NUM_THREADS": "1"}
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2",
           "-m", "neuralemu.cli", "train", "--dci", str(dci_path), "--ue-log", str(ue_path),
           "--out", str(out), "--epochs", "2", "--d-model", "8", "--layers", "1",
           "--batch-size", "64"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "world size 2" in res.stdout
    assert load_bundle(out).training["world_size"] == 2
