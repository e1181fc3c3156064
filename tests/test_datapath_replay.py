"""The replay policy through the scenario layer: `neuralemu simulate` with `policy: replay` in a
fresh process (the scenario layer imports the plug-in policy by name; cell never does)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_simulate_replay_scenario_from_a_fresh_process(tmp_path):
    trace = tmp_path / "down.trace"
    trace.write_text("".join(f"{ms}\n{ms}\n" for ms in range(1, 1001)))     # 2 x 1500 B/ms = 24 Mbps
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: replay-simulate\n"
        "cell: {numerology: 0, bandwidth_mhz: 50, duplex: FDD, mcs_table: qam256, max_layers: 2}\n"
        "ues: [{ue_id: 7, channel: {model: fixed, sinr_db: 40.0}}]\n"
        f"policy: {{name: replay, params: {{mahimahi_down: '{trace}', mahimahi_up: '{trace}'}}}}\n"
        "duration_s: 2.0\n")
    # 40 Mbps offered downlink for 2 s: the trace, not the cell, is the bottleneck
    n = 2 * 40_000_000 // (1500 * 8)
    workload = tmp_path / "w.csv"
    pd.DataFrame({"t_us": [i * 2_000_000 // n for i in range(n)], "ue": 7, "direction": "dl",
                  "size_bytes": 1500}).to_csv(workload, index=False)
    out = tmp_path / "d.csv"
    proc = subprocess.run([sys.executable, "-m", "neuralemu.cli", "simulate", "--scenario",
                           str(scenario), "--workload", str(workload), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(out)
    delivered = df[df.t_delivered_us.notna()]
    capacity_bytes = 2 * 2 * 1000 * 1500          # the trace looped over the 2 s run
    assert abs(delivered.size_bytes.sum() / capacity_bytes - 1) <= 0.05, delivered.size_bytes.sum()


def test_cell_and_scenario_do_not_import_plugin_policies():
    code = ("import sys, neuralemu.scenario, neuralemu.cell\n"
            "bad = [m for m in ('neuralemu.replay', 'neuralemu.scheduler_model.policy') "
            "if m in sys.modules]\n"
            "sys.exit(1 if bad else 0)\n")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
