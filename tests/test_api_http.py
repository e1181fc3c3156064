"""The API's own mechanics over real HTTP (uvicorn on 127.0.0.1), with a toy engine:
auth, validation, lifecycle, uploads, metrics, the /stream WebSocket and a fuzz run.
The real engine's behaviour through the API is in test_api_engine.py."""

from __future__ import annotations

import io
import json
import pickle
import random
import time
import zipfile

import httpx
import pytest
from websockets.sync.client import connect

from test_api_support import InProcessServer, wait_for
from test_api_uploads import valid_bundle_bytes

TOKEN = "s3cret-token"
SCENARIO = {"name": "two", "prbs": 100, "policy": "rr",
            "ues": [{"ue_id": 1, "sinr_db": 20, "ip": "10.0.0.1"},
                    {"ue_id": 2, "sinr_db": 10, "ip": "10.0.0.2"}]}


@pytest.fixture(scope="module")
def srv():
    s = InProcessServer(token=TOKEN)
    yield s
    s.close()


@pytest.fixture(scope="module")
def running(srv):
    sid = srv.client.post("/scenarios", json=SCENARIO).json()["id"]
    r = srv.client.post(f"/scenarios/{sid}/start")
    assert r.status_code == 200, r.text
    wait_for(lambda: len(srv.client.get("/ues").json()) == 2)
    return sid


def fields(resp) -> list:
    return [e["loc"][-1] for e in resp.json()["detail"]]


# ---- auth ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/health", "/ues", "/", "/docs", "/openapi.json", "/metrics",
                                  "/static/app.js"])
def test_every_endpoint_needs_the_token(srv, path):
    assert httpx.get(srv.base + path).status_code == 401
    assert httpx.get(srv.base + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(srv.base + path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_token_in_query_for_the_dashboard(srv):
    r = httpx.get(f"{srv.base}/?token={TOKEN}")
    assert r.status_code == 200 and "<canvas" in r.text and "LineChart" in r.text


def test_websocket_needs_the_token(srv):
    with pytest.raises(Exception):
        with connect(f"ws://127.0.0.1:{srv.port}/stream") as ws:
            ws.recv(timeout=5)
    with connect(f"ws://127.0.0.1:{srv.port}/stream?token={TOKEN}") as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"


def test_non_loopback_without_token_is_refused():
    from neuralemu.cli import main
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2


# ---- validation -----------------------------------------------------------------------------------
def test_openapi_lists_resources(srv):
    paths = srv.client.get("/openapi.json").json()["paths"]
    for p in ("/scenarios", "/scenarios/{scenario_id}/start", "/ues", "/ues/{ue_id}", "/cell",
              "/policy", "/background", "/models", "/traces", "/metrics", "/health", "/version"):
        assert p in paths, p


def test_scenario_unknown_field_and_wrong_type(srv):
    r = srv.client.post("/scenarios", json=SCENARIO | {"bogus": 1})
    assert r.status_code == 422 and "bogus" in fields(r)
    r = srv.client.post("/scenarios", json=SCENARIO | {"prbs": "many"})
    assert r.status_code == 422 and "prbs" in fields(r)


def test_body_too_large(srv):
    big = {"name": "x" * (2 << 20)}
    r = srv.client.post("/scenarios", json=big)
    assert r.status_code == 413


def test_body_too_large_streamed(srv):
    def chunks():
        for _ in range(40):
            yield b"x" * 65536
    r = srv.client.post("/scenarios", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_invalid_json(srv):
    r = srv.client.post("/scenarios", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_cell_and_ues_before_start(srv):
    # may run before or after `running`, so only check the shape
    assert srv.client.get("/cell").status_code == 200


# ---- lifecycle and control -----------------------------------------------------------------------
def test_lifecycle_and_ues(srv, running):
    sc = srv.client.get(f"/scenarios/{running}").json()
    assert sc["state"] == "running"
    ues = srv.client.get("/ues").json()
    assert {u["id"] for u in ues} == {1, 2}
    assert srv.client.get("/ues/1").json()["ip"] == "10.0.0.1"
    assert srv.client.get("/ues/99").status_code == 404
    assert srv.client.delete(f"/scenarios/{running}").status_code == 409
    other = srv.client.post("/scenarios", json=SCENARIO).json()["id"]
    assert srv.client.post(f"/scenarios/{other}/start").status_code == 409
    assert srv.client.post(f"/scenarios/{other}/pause").status_code == 409
    assert srv.client.delete(f"/scenarios/{other}").status_code == 204
    assert srv.client.get(f"/scenarios/{other}").status_code == 404


def test_attach_detach_and_duplicates(srv, running):
    r = srv.client.post("/ues", json={"ue_id": 3, "ip": "10.0.0.1"})
    assert r.status_code == 409 and "ip" in fields(r)
    r = srv.client.post("/ues", json={"ue_id": 1})
    assert r.status_code == 409 and "ue_id" in fields(r)
    r = srv.client.post("/ues", json={"ue_id": 3, "ip": "10.0.0.3", "colour": "red"})
    assert r.status_code == 422 and "colour" in fields(r)
    r = srv.client.post("/ues", json={"ue_id": 3, "ip": "10.0.0.3"})
    assert r.status_code == 201 and r.json()["id"] == 3
    assert wait_for(lambda: any(u["id"] == 3 for u in srv.client.get("/ues").json()))
    assert srv.client.delete("/ues/3").status_code == 204
    assert wait_for(lambda: all(u["id"] != 3 for u in srv.client.get("/ues").json()))
    assert srv.client.delete("/ues/3").status_code == 404


def test_patch_ue(srv, running):
    r = srv.client.patch("/ues/2", json={"priority": 2.5, "channel_offset_db": -3})
    assert r.status_code == 200, r.text
    assert r.json()["priority"] == 2.5 and r.json()["channel_offset_db"] == -3
    r = srv.client.patch("/ues/2", json={"priority": -1})
    assert r.status_code == 422 and "priority" in fields(r)
    r = srv.client.patch("/ues/2", json={"ip": "10.0.0.1"})
    assert r.status_code == 409 and "ip" in fields(r)
    r = srv.client.patch("/ues/2", json={"ip": "not-an-ip", "priority": 3})
    assert r.status_code == 422 and "ip" in fields(r)
    assert srv.client.get("/ues/2").json()["priority"] == 2.5      # nothing half-applied
    r = srv.client.patch("/ues/2", json={"channel_trace": "nope"})
    assert r.status_code == 404 and "channel_trace" in fields(r)
    assert srv.client.patch("/ues/77", json={"priority": 1}).status_code == 404


def test_policy_switch(srv, running):
    r = srv.client.put("/policy", json={"name": "maxcqi"})
    assert r.status_code == 200 and r.json()["applied_after_ms"] < 100
    assert wait_for(lambda: srv.client.get("/cell").json()["policy"]["name"] == "maxcqi", 1.0)
    r = srv.client.put("/policy", json={"name": "fancy"})
    assert r.status_code == 422 and "name" in fields(r)
    r = srv.client.put("/policy", json={"name": "learned", "model": "nope"})
    assert r.status_code == 404 and "model" in fields(r)
    srv.client.put("/policy", json={"name": "rr"})


def test_background(srv, running):
    r = srv.client.put("/background", json={"count": 3, "load_level": 0.5})
    assert r.status_code == 200
    r = srv.client.put("/background", json={"count": -1, "load_level": 0.5})
    assert r.status_code == 422 and "count" in fields(r)
    srv.client.put("/background", json={"count": 0, "load_level": 0.0})


def test_metrics_text(srv, running):
    text = srv.client.get("/metrics").text
    for name in ("neuralemu_ue_delivered_bytes_total{ue=\"1\"}", "neuralemu_ue_dropped_packets_total",
                 "neuralemu_ue_queue_bytes", "neuralemu_ue_queue_delay_seconds_bucket",
                 "neuralemu_slot_lateness_seconds_bucket", "neuralemu_scheduler_decision_seconds_count"):
        assert name in text, name
    for line in text.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2


def test_stream_snapshot_then_stats_every_100ms(srv, running):
    with connect(f"ws://127.0.0.1:{srv.port}/stream?token={TOKEN}") as ws:
        first = json.loads(ws.recv(timeout=5))
        assert first["type"] == "snapshot" and first["cell"] is not None
        times = []
        for _ in range(6):
            msg = json.loads(ws.recv(timeout=5))
            assert msg["type"] == "stats" and {u["id"] for u in msg["ues"]} >= {1, 2}
            times.append(time.monotonic())
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert 0.05 < sorted(gaps)[len(gaps) // 2] < 0.2


# ---- uploads over HTTP ----------------------------------------------------------------------------
def test_model_upload(srv):
    r = srv.client.post("/models", files={"file": ("good.nemu", valid_bundle_bytes())})
    assert r.status_code == 201, r.text
    assert any(m["name"] == "good" for m in srv.client.get("/models").json())
    r = srv.client.post("/models", files={"file": ("evil.nemu", pickle.dumps(object))})
    assert r.status_code == 422 and "file" in fields(r)
    r = srv.client.post("/models", files={"file": ("x.nemu", valid_bundle_bytes())},
                        data={"name": "../../etc/passwd"})
    assert r.status_code == 422 and "name" in fields(r)
    r = srv.client.post("/models", files={"file": ("../../evil.nemu", valid_bundle_bytes())})
    assert r.status_code == 422
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("weights.safetensors", b"\0" * (50 << 20))
        zf.writestr("config.json", b"{}")
    r = srv.client.post("/models", files={"file": ("bomb.nemu", buf.getvalue())})
    assert r.status_code == 422 and "bomb" in r.text.lower()
    r = srv.client.post("/models", files={"file": ("huge.nemu", b"PK\x03\x04" + b"\0" * (65 << 20))})
    assert r.status_code == 413
    assert [m["name"] for m in srv.client.get("/models").json()] == ["good"]


def test_trace_upload(srv, nrscope_files):
    small = min(nrscope_files, key=lambda p: p.stat().st_size)
    r = srv.client.post("/traces", files={"file": (small.name, small.read_bytes())},
                        data={"kind": "nrscope", "name": "tm"})
    assert r.status_code == 201, r.text
    r = srv.client.post("/traces", files={"file": ("x.csv", b"a,b\n1,2\n")},
                        data={"kind": "nrscope", "name": "bad"})
    assert r.status_code == 422 and "file" in fields(r)
    r = srv.client.post("/traces", files={"file": ("x.csv", b"1\n2\n")}, data={"kind": "pcap"})
    assert r.status_code == 422 and "kind" in fields(r)
    assert [t["name"] for t in srv.client.get("/traces").json()] == ["tm"]


# ---- fuzz -------------------------------------------------------------------------------------------
def _junk(rng: random.Random):
    choices = [None, True, -1, 0, 1e308, float("inf"), "", "x" * rng.randint(1, 300), [], {}, [1, "a"],
               {"a": {"b": [None]}}, "10.0.0.1", "../../../etc/passwd", "\u0000\ufffd", 2 ** 70]
    return rng.choice(choices)


def test_fuzz_500_malformed_requests_server_stays_healthy(srv, running):
    rng = random.Random(7)
    routes = [("POST", "/scenarios"), ("POST", "/ues"), ("PATCH", "/ues/1"), ("PATCH", "/ues/abc"),
              ("PUT", "/policy"), ("PUT", "/background"), ("POST", "/scenarios/zz/start"),
              ("DELETE", "/ues/-5"), ("GET", "/ues/99999999999999999999"), ("POST", "/models"),
              ("POST", "/traces"), ("GET", "/scenarios/%2e%2e%2f")]
    keys = ["ue_id", "ip", "priority", "name", "count", "load_level", "channel_offset_db", "model",
            "queue_limit_bytes", "ues", "prbs", "zzz"]
    statuses = []
    for i in range(600):
        method, path = rng.choice(routes)
        kind = rng.random()
        if kind < 0.4:
            body = json.dumps({rng.choice(keys): _junk(rng) for _ in range(rng.randint(0, 4))},
                              allow_nan=True).encode()
        elif kind < 0.6:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        elif kind < 0.8:
            body = json.dumps(_junk(rng), allow_nan=True).encode()
        else:
            body = b'{"ue_id": ' + b"9" * rng.randint(1, 5000) + b"}"
        ctype = rng.choice(["application/json", "text/plain", "multipart/form-data; boundary=xx", ""])
        r = srv.client.request(method, path, content=body, headers={"content-type": ctype})
        statuses.append(r.status_code)
        assert r.status_code < 500, (method, path, body[:200], r.status_code, r.text[:300])
    assert sum(400 <= s < 500 for s in statuses) > 450
    h = srv.client.get("/health").json()
    assert h["status"] == "ok" and h["engine_alive"]
    assert {u["id"] for u in srv.client.get("/ues").json()} >= {1, 2}
    assert srv.client.get("/ues/1").json()["ip"] == "10.0.0.1"
