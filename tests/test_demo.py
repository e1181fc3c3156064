"""`neuralemu demo --quick`: the demo's offline path end to end (bundled telemetry -> report).

The demo exits 1 with a one-line reason when a stage genuinely fails (the offline bulk transfer
carries nothing through the learned cell, or the live stage ran and failed), 0 otherwise. The
learned scheduler is being fixed elsewhere (it can serve a user 0 bytes), so these tests check
that the exit code and the summary agree with what the stages measured, not that the model
works; `test_demo_live.py` does the same for the live stage.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bulk_mbps(info: dict) -> float:
    return info["emulate"]["iperf3 (TCP-like bulk)"]["mean_mbps"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_quick_offline(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, NEURALEMU_QUIET="1")
    p = subprocess.run([sys.executable, "-m", "neuralemu.cli", "demo", "--quick", "--no-live",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "NeuralEmu demo done" in p.stdout
    assert "live: skipped: disabled with --no-live" in p.stdout
    info = json.loads((out / "summary.json").read_text())
    assert info["live"] == {"ran": False, "reason": "disabled with --no-live"}
    # exit code follows the stages: 1 with a one-line reason iff the bulk transfer got nothing
    if bulk_mbps(info) > 0:
        assert p.returncode == 0, p.stderr[-2000:]
    else:
        assert p.returncode == 1
        last = p.stderr.strip().splitlines()[-1]
        assert last.startswith("neuralemu demo: failed: offline emulation:"), last
    assert info["ingest"]["valid"] > 1000 and info["ingest"]["users"] > 1
    assert info["background"]["mean_users"] > 0
    assert (out / "learned" / "model.nemu").is_file()
    for name in ("index.html", "demo_bulk.png", "demo_ping.png", "demo_web.png"):
        assert (out / name).stat().st_size > 0, name
    # a second run loads the model instead of training again
    p2 = subprocess.run([sys.executable, "-m", "neuralemu.cli", "demo", "--quick", "--no-live",
                         "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert p2.returncode == p.returncode, p2.stderr[-2000:]
    assert "model: loaded" in p2.stdout


def test_demo_bad_prefix_is_input_error(tmp_path):
    p = subprocess.run([sys.executable, "-m", "neuralemu.cli", "demo", "--prefix", "Bad-Prefix!",
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, NEURALEMU_QUIET="1"), timeout=60)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "--prefix" in p.stderr


def test_stage_failures_and_summary_lines():
    from neuralemu.commands.demo import live_lines, stage_failures
    ok_live = {"ran": True, "ok": True, "failures": [], "apps": {
        "iperf3": {"ok": True, "goodput_mbps": 40.0, "seconds": 3.0, "retransmits": 0},
        "ping": {"ok": True, "sent": 20, "received": 20, "median_rtt_ms": 9.1, "p95_rtt_ms": 12.0},
        "page load": {"ok": True, "page": {"objects": 70, "total_bytes": 1549228},
                      "plt_ms": [900.0], "median_plt_ms": 900.0}}}
    info = {"emulate": {"iperf3 (TCP-like bulk)": {"mean_mbps": 30.0}}, "live": ok_live}
    assert stage_failures(info) == []
    text = "\n".join(live_lines(ok_live))
    assert "40.0 Mbit/s" in text and "median RTT 9.1 ms" in text and "median 900.0 ms" in text
    bad = dict(ok_live, ok=False, failures=["the learned cell served the phone 0 bytes downlink"])
    info = {"emulate": {"iperf3 (TCP-like bulk)": {"mean_mbps": 0.0}}, "live": bad}
    f = stage_failures(info)
    assert len(f) == 2 and f[0].startswith("offline emulation") and "0 bytes" in f[1]
    assert stage_failures({"emulate": {}, "live": {"ran": False, "reason": "needs root"}}) == []
