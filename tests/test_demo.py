"""`neuralemu demo --quick`: the demo's offline path end to end (bundled telemetry -> report)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_quick_offline(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, NEURALEMU_QUIET="1")
    p = subprocess.run([sys.executable, "-m", "neuralemu.cli", "demo", "--quick", "--no-live",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "NeuralEmu demo done" in p.stdout
    assert "live: skipped: disabled with --no-live" in p.stdout
    info = json.loads((out / "summary.json").read_text())
    assert info["ingest"]["valid"] > 1000 and info["ingest"]["users"] > 1
    assert info["background"]["mean_users"] > 0
    assert (out / "learned" / "model.nemu").is_file()
    for name in ("index.html", "demo_bulk.png", "demo_ping.png", "demo_web.png"):
        assert (out / name).stat().st_size > 0, name
    # a second run loads the model instead of training again
    p2 = subprocess.run([sys.executable, "-m", "neuralemu.cli", "demo", "--quick", "--no-live",
                         "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert p2.returncode == 0, p2.stderr[-2000:]
    assert "model: loaded" in p2.stdout
