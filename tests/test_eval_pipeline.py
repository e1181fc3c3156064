"""The fidelity evaluation end to end on a tiny budget (neuralemu.eval.pipeline).

The full matrix (two truth schedulers x 0 and 8 background users x four
workloads, with the acceptance rule) is benchmarks/fidelity.py; this reduced
version checks that every stage runs from telemetry only, that the report is
complete, and that the same seed gives identical offline tables.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neuralemu.eval.pipeline import EvalConfig, run_eval
from neuralemu.eval.stages import LearnConfig, engine_cell

ROOT = Path(__file__).resolve().parents[1]
TRUTH = ROOT / "traces" / "scenarios" / "eval-pf.yaml"


def tiny(seed: int = 3) -> EvalConfig:
    return EvalConfig(seed=seed, record_s=6.0, saturator_s=3.0, workload_s=2.0,
                      learn=LearnConfig(epochs=2, patience=2, seed=seed),
                      workloads=("gaming", "bulk"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_eval_runs_writes_report_and_is_deterministic(tmp_path):
    a = run_eval(TRUTH, tmp_path / "a", cfg=tiny(), background=2)
    b = run_eval(TRUTH, tmp_path / "b", cfg=tiny(), background=2)
    assert [r["workload"] for r in a["rows"]] == ["gaming", "bulk"]
    for r in a["rows"]:
        assert r["learned_error"] >= 0 and r["replay_error"] >= 0
        assert isinstance(r["pass"], bool)
    assert (tmp_path / "a" / "errors.csv").read_text() == (tmp_path / "b" / "errors.csv").read_text()
    for name in ("index.html", "errors.png", "cdf_gaming.png", "series_bulk.png", "results.json"):
        assert (tmp_path / "a" / name).stat().st_size > 0, name
    html = (tmp_path / "a" / "index.html").read_text()
    assert "learned / replay" in html and "neuralemu eval" in html
    # NeuralEmu saw only telemetry: the truth's other users' logs and true arrivals are gone
    tel = tmp_path / "a" / "work" / "telemetry"
    assert sorted(p.name for p in tel.iterdir()) == ["dci.csv", "ue_phone.csv"]
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["learned"]["profile"] is not None        # background reconstructed from DCIs
    assert res["background_users"] == 2


def test_engine_cell_from_inferred_tdd_and_fdd():
    fdd = {"slot_us": 1000.0, "period_slots": 10, "directions": ["dl", "ul"],
           "prbs_total": {"dl": 106, "ul": 106}, "mcs_table": {"dl": "qam256", "ul": "qam64"},
           "layers": {"dl": 2, "ul": 1}, "max_ues": {"dl": 3, "ul": 2},
           "slot_types": {"dl": {str(i): "D" for i in range(10)}, "ul": {str(i): "U" for i in range(10)}},
           "symbols": {}, "re_per_prb": {}, "use_sinr": True}
    c = engine_cell(fdd)
    assert c["duplex"] == "FDD" and c["numerology"] == 0 and c["bandwidth_mhz"] == 20
    assert c["max_ues_per_slot"] == 3
    tdd = dict(fdd, slot_us=500.0, period_slots=20, prbs_total={"dl": 51, "ul": 51},
               slot_types={"dl": {str(p): ("S" if p % 5 == 3 else "D") for p in range(20) if p % 5 != 4},
                           "ul": {str(p): ("S" if p % 5 == 3 else "U") for p in range(20) if p % 5 >= 3}},
               symbols={"dl": {"3": 8}, "ul": {"3": 2}})
    c = engine_cell(tdd)
    assert c["duplex"] == "DDDSU" and c["numerology"] == 1 and c["bandwidth_mhz"] == 20
    assert c["special_slot"] == "10:2:2"


def test_eval_command_bad_input_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ues: []\n")
    for args in (["--truth-scenario", str(tmp_path / "missing.yaml")],
                 ["--truth-scenario", str(bad)],
                 ["--truth-scenario", str(TRUTH), "--background", "99"],
                 ["--truth-scenario", str(TRUTH), "--workloads", "video"]):
        p = subprocess.run([sys.executable, "-m", "neuralemu.cli", "eval", *args, "--out",
                            str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
        assert p.returncode == 2, (args, p.stderr)
        assert "Traceback" not in p.stderr and p.stderr.startswith("neuralemu: error:")
