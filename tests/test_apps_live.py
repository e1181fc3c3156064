"""Real applications through the live middlebox, compared with the offline run of the same
workload (acceptance of issue 8 part 2). Every test builds its own testbed (unique prefix);
the comparison functions remove it on exit, also on failure, and each test checks that
nothing of it is left in the kernel.

Fewer and shorter runs than the benchmark (benchmarks/live_vs_offline.py does 5 runs each),
but the same 10 % agreement on the medians for iperf3 TCP and for Chromium's page load time.
"""

from __future__ import annotations

import os

import pytest

from neuralemu.apps import compare
from neuralemu.apps.browser import chromium_binary
from neuralemu.apps.iperf import available_ccs
from neuralemu.datapath import testbed

pytestmark = [pytest.mark.root, pytest.mark.slow]

SCENARIO = "neuralemu/apps/scenarios/apps_fdd10.yaml"
PID = os.getpid() % 1000


def _clean(prefix: str) -> None:
    assert testbed.status(prefix) == []


@pytest.mark.parametrize("cc", ["cubic", "bbr"])
def test_iperf_tcp_live_matches_offline(cc):
    if cc not in available_ccs():
        pytest.skip(f"this kernel has no {cc} (tcp_available_congestion_control: "
                    f"{' '.join(available_ccs())})")
    prefix = f"at{PID}{cc[0]}"
    r = compare.compare_iperf(SCENARIO, protocol="tcp", cc=cc, runs=3, seconds=4, prefix=prefix)
    _clean(prefix)
    assert len(r.live) == 3 and r.offline > 1.0
    assert abs(r.ratio - 1) <= 0.10, "\n".join(r.lines())


def test_iperf_udp_through_the_cli_matches_offline(tmp_path, capsys):
    import json
    from neuralemu.cli import main
    prefix = f"at{PID}u"
    out = tmp_path / "udp.json"
    rc = main(["apps", "run", "--scenario", SCENARIO, "--app", "iperf-udp", "--runs", "1",
               "--seconds", "3", "--prefix", prefix, "--json", str(out)])
    assert rc == 0
    _clean(prefix)
    text = capsys.readouterr().out
    assert "app=iperf-udp" in text and "live_over_offline=" in text
    r = json.loads(out.read_text())
    assert abs(r["ratio"] - 1) <= 0.10, r


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium (deploy/install-deps.sh installs it)")
def test_chromium_page_load_live_matches_offline():
    prefix = f"at{PID}w"
    r = compare.compare_web(SCENARIO, page_seed=5, runs=5, prefix=prefix)
    _clean(prefix)
    assert len(r.live) == 5
    for load in r.details["live_loads"]:
        assert load["n_resources"] == r.details["page_objects"] - 1
        assert load["scripts_run"] == r.details["page_n_js"]
    # the cell, not the browser, is what the page waits for
    import statistics
    assert r.details["offline_network_only_plt_ms"] > 1.5 * statistics.median(r.details["plain_plt_ms"])
    assert abs(r.ratio - 1) <= 0.10, "\n".join(r.lines())


def test_udp_video_flow_one_way_delay():
    prefix = f"at{PID}v"
    r = compare.compare_video(SCENARIO, bitrate_mbps=2.0, seconds=4, runs=1, prefix=prefix)
    _clean(prefix)
    assert r.details["live_loss"][0] < 0.01
    # same cell, same frames: the per-packet delay is set by the slot engine in both
    assert 0.5 <= r.ratio <= 1.5, r.as_dict()
    assert r.details["live_frame_delay_ms_median"][0] >= r.live[0]
