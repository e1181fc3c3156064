"""PUT /policy for the policies that plug in from outside the cell package: `learned` (an uploaded
.nemu bundle, through neuralemu.scheduler_model's registry entry) and `replay` (an uploaded Mahimahi
trace or NR-Scope log, through neuralemu.replay's). Real engine, `neuralemu serve` over HTTP."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from test_api_support import bulk_ue, engine_server, wait_for

CELL = {"numerology": 1, "bandwidth_mhz": 20, "duplex": "FDD"}     # 51 PRBs, 0.5 ms slots


@pytest.fixture(scope="module")
def srv():
    s = engine_server(engine="process")
    yield s
    s.close()


@pytest.fixture
def running(srv):
    """A fresh pf scenario with two backlogged UEs; stopped afterwards."""
    def start(cell=CELL, ues=None):
        while started:
            srv.client.post(f"/scenarios/{started.pop()}/stop")
        r = srv.client.post("/scenarios", json={"name": "pol", "cell": cell, "policy": "pf",
                                                "ues": ues or [bulk_ue(1), bulk_ue(2, sinr_db=12.0)]})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert srv.client.post(f"/scenarios/{sid}/start").status_code == 200
        started.append(sid)
        return sid
    started: list[str] = []
    yield start
    for sid in started:
        srv.client.post(f"/scenarios/{sid}/stop")


def emulated_s(srv) -> float:
    return srv.client.get("/cell").json()["t_us"] / 1e6


def settle(srv, seconds: float) -> None:
    t_end = emulated_s(srv) + seconds
    assert wait_for(lambda: emulated_s(srv) >= t_end, 30.0, 0.05)


def sample(srv, ue_id: int, key: str, seconds: float = 0.5) -> float:
    values = []
    t_end = emulated_s(srv) + seconds
    while emulated_s(srv) < t_end or len(values) < 3:    # a loaded host: slow GETs
        values.append(srv.client.get(f"/ues/{ue_id}").json()[key])
        time.sleep(0.05)
    return statistics.median(values)


def random_bundle_bytes(tmp_path) -> bytes:
    """A bundle built with the scheduler_model's public classes, for this test's cell."""
    import torch

    from neuralemu.scheduler_model import features as F
    from neuralemu.scheduler_model.bundle import Bundle, save_bundle
    from neuralemu.scheduler_model.dataset import CellConfig
    from neuralemu.scheduler_model.model import ModelConfig, SchedulerModel

    torch.manual_seed(0)
    cfg = ModelConfig(n_user_features=F.N_USER_FEATURES, n_cell_features=F.N_CELL_FEATURES,
                      d_model=16, n_heads=2, n_layers=1, d_mlp=32, n_mcs=F.N_MCS_CLASSES)
    model = SchedulerModel(cfg).eval()
    cell = CellConfig(slot_us=500.0, period_slots=20, directions=["dl"], prbs_total={"dl": 51},
                      mcs_table={"dl": "qam256"}, layers={"dl": 1}, max_ues={"dl": 4},
                      slot_types={"dl": {str(p): "D" for p in range(20)}},
                      symbols={"dl": {str(p): 13 for p in range(20)}},
                      re_per_prb={"dl": {"13": 144}})
    nu, nc = F.N_USER_FEATURES, F.N_CELL_FEATURES
    bundle = Bundle(model=cfg.to_json(),
                    weights={k: v.detach().numpy().copy() for k, v in model.state_dict().items()},
                    cell=cell, user_mean=np.zeros(nu, np.float32), user_std=np.ones(nu, np.float32),
                    cell_mean=np.zeros(nc, np.float32), cell_std=np.ones(nc, np.float32),
                    training={})
    return save_bundle(tmp_path / "m.nemu", bundle).read_bytes()


def test_switch_to_learned(srv, running, tmp_path):
    r = srv.client.post("/models", files={"file": ("tiny.nemu", random_bundle_bytes(tmp_path))})
    assert r.status_code == 201, r.text
    running()
    settle(srv, 0.2)
    # errors name the field and change nothing
    r = srv.client.put("/policy", json={"name": "learned"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model"]
    r = srv.client.put("/policy", json={"name": "learned", "model": "nope"})
    assert r.status_code == 404
    r = srv.client.put("/policy", json={"name": "learned", "model": "tiny", "params": {"bogus": 1}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "params.bogus"]
    r = srv.client.put("/policy", json={"name": "learned", "model": "tiny",
                                        "params": {"mode": "fancy"}})
    assert r.status_code == 422, r.text
    assert srv.client.get("/cell").json()["policy"]["name"] == "pf"
    # the switch
    r = srv.client.put("/policy", json={"name": "learned", "model": "tiny",
                                        "params": {"mode": "sample", "seed": 3}})
    assert r.status_code == 200, r.text
    body = r.json()
    # loading the bundle (prepare_ms) happens before the slot boundary; the swap itself is quick
    assert body["applied_after_ms"] - body["prepare_ms"] < 100, body
    cell = srv.client.get("/cell").json()
    assert cell["policy"] == {"name": "learned", "params": {"mode": "sample", "seed": 3},
                              "model": "tiny"}
    settle(srv, 0.3)
    # the model decides every slot now: a Python policy, so the step takes far longer than pf's
    # in-kernel decision, and the engine keeps running in real time
    t0 = emulated_s(srv)
    settle(srv, 0.3)
    assert emulated_s(srv) > t0
    assert srv.client.get("/health").json()["engine_alive"]
    assert srv.client.get("/cell").json()["decision_time_us"]["p50"] > 20


def mahimahi_constant(rate_bps: float, seconds: int = 5) -> bytes:
    pps = rate_bps / 8 / 1500
    ms = np.floor(np.arange(int(pps * seconds)) * 1000 / pps).astype(int)
    return ("\n".join(map(str, ms)) + "\n").encode()


def test_switch_to_replay_mahimahi(srv, running):
    r = srv.client.post("/traces", data={"kind": "mahimahi", "name": "c12"},
                        files={"file": ("c12.trace", mahimahi_constant(12e6))})
    assert r.status_code == 201, r.text
    running(ues=[bulk_ue(1)])
    settle(srv, 0.3)
    assert sample(srv, 1, "throughput_bps") > 30e6           # pf: the whole 20 MHz cell
    r = srv.client.put("/policy", json={"name": "replay", "trace": "c12"})
    assert r.status_code == 200, r.text
    assert srv.client.get("/cell").json()["policy"]["trace"] == "c12"
    settle(srv, 0.5)
    # replay grants the recorded 12 Mbps (1500 bytes a millisecond), no more
    assert sample(srv, 1, "throughput_bps", 0.6) == pytest.approx(12e6, rel=0.1)


def test_switch_to_replay_nrscope(srv, running, nrscope_files):
    from neuralemu.telemetry.nrscope import read_nrscope
    path = min(nrscope_files, key=lambda p: p.stat().st_size if p.name.startswith("t_mobile1")
               else 1 << 60)
    df = read_nrscope(path)
    new = df[df["valid"] & ~df["is_retx"] & (df["direction"] == "dl")]
    rnti = int(new.groupby("rnti")["tbs_bits"].sum().idxmax())
    r = srv.client.post("/traces", data={"kind": "nrscope", "name": "tm1"},
                        files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text
    running(ues=[bulk_ue(1)])
    settle(srv, 0.2)
    # an NR-Scope log needs the RNTI to replay, and a cell with its numerology (15 kHz)
    r = srv.client.put("/policy", json={"name": "replay", "trace": "tm1"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "params.rnti"]
    r = srv.client.put("/policy", json={"name": "replay", "trace": "tm1", "params": {"rnti": rnti}})
    assert r.status_code == 422 and "numerology" in r.text
    assert srv.client.get("/cell").json()["policy"]["name"] == "pf"
    running(cell={"numerology": 0, "bandwidth_mhz": 10, "duplex": "FDD"}, ues=[bulk_ue(1)])
    settle(srv, 0.2)
    r = srv.client.put("/policy", json={"name": "replay", "trace": "tm1", "params": {"rnti": rnti}})
    assert r.status_code == 200, r.text
    assert srv.client.get("/cell").json()["policy"] == {"name": "replay", "params": {"rnti": rnti},
                                                        "trace": "tm1"}


def test_patch_priority_uses_engine_weight(srv, running):
    """PATCH priority goes to Engine.set_priority: pf weights that user's metric."""
    running(ues=[bulk_ue(1), bulk_ue(2)])
    settle(srv, 0.3)
    r = srv.client.patch("/ues/2", json={"priority": 4.0})
    assert r.status_code == 200, r.text
    assert r.json()["priority"] == 4.0
    settle(srv, 0.6)
    p1, p2 = sample(srv, 1, "prbs_avg"), sample(srv, 2, "prbs_avg")
    assert p2 > 2.0 * p1, (p1, p2)          # equal channels: the weight alone shifts the share
