"""Live mode without a testbed: what the datapath's loop sees through ``LiveEngine``, the CLI's
checks of `serve --live`, and the start body's validation (no root needed)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from neuralemu.api.adapter import make_adapter
from neuralemu.api.live import DETACH_KIND, LiveAdapter, LiveEngine
from test_api_support import PROJECT_ROOT, InProcessServer

CELL = {"numerology": 1, "bandwidth_mhz": 20, "duplex": "FDD"}


def live_adapter() -> LiveAdapter:
    a = make_adapter({"cell": CELL, "policy": "pf",
                      "ues": [{"ue_id": 1, "directions": ["dl", "ul"],
                               "channel": {"model": "fixed", "sinr_db": 20.0}}]})
    out = LiveAdapter(a.engine, ue_configs=a.ue_cfg)
    out.hosts = {1: 1, 2: 2}
    return out


def test_packets_of_a_detached_host_become_drop_events():
    a = live_adapter()
    eng = LiveEngine(a)
    t = int(eng.t_us)
    # host 1 (attached) and host 2 (spare, not attached yet): both reach the loop as engine ids
    ids = eng.load_arrivals(np.array([t, t, t]), np.array([1, 2, 1]), np.array([0, 0, 1]),
                            np.array([1200, 800, 100]))
    assert len(ids) == 3 and len(set(ids.tolist())) == 3
    delivered, dropped = set(), {}
    for _ in range(40):
        res = eng.step()
        for pid, ue, d, size, t_arr, t_ev, kind in res._ev.T.tolist():
            if kind == 0:
                delivered.add(pid)
            else:
                dropped[pid] = (ue, size, kind)
    # host 2's packet is dropped (so the loop gives the kernel an NF_DROP), never held forever
    assert dropped == {int(ids[1]): (2, 800, DETACH_KIND)}
    assert int(ids[0]) in delivered                  # the attached user's packets go through
    # the adapter counted host 1's delivery like any other
    assert a.cum[1]["bytes_delivered"] >= 1200
    # attach host 2's user: from now on its packets reach the engine
    a.add_ue({"ue_id": 2, "directions": ["dl"], "channel": {"model": "fixed", "sinr_db": 20.0},
              "traffic": {"kind": "bulk", "rate_mbps": 100.0, "direction": "dl"}})
    assert 2 not in a.ue_sources                     # a testbed user's traffic is real, not synthetic
    ids = eng.load_arrivals(np.array([int(eng.t_us)]), np.array([2]), np.array([0]), np.array([900]))
    got = set()
    for _ in range(40):
        got |= {row[0] for row in eng.step()._ev.T.tolist() if row[6] == 0}
    assert int(ids[0]) in got
    assert len(eng.step_s) > 0


def test_serve_live_flag_checks():
    r = subprocess.run([sys.executable, "-m", "neuralemu.cli", "serve", "--live", "--unpaced",
                        "--port", "1"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "--unpaced" in r.stderr


def test_start_body_is_validated():
    srv = InProcessServer()
    try:
        sid = srv.client.post("/scenarios", json={"ues": [{"ue_id": 1}]}).json()["id"]
        r = srv.client.post(f"/scenarios/{sid}/start", json={"mode": "satellite"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "mode"]
        r = srv.client.post(f"/scenarios/{sid}/start", json={"mode": "live", "spare_ue_ids": [0]})
        assert r.status_code == 422 and "spare_ue_ids" in r.json()["detail"][0]["loc"]
        r = srv.client.post(f"/scenarios/{sid}/start", json={"mode": "live", "bogus": 1})
        assert r.status_code == 422
        # an empty body (or none) is the server's default mode, offline here
        r = srv.client.post(f"/scenarios/{sid}/start")
        assert r.status_code == 200 and r.json()["mode"] == "offline", r.text
        assert srv.client.get("/health").json()["mode"] == "offline-paced"
    finally:
        srv.close()
