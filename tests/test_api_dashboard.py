"""The dashboard in headless Chromium: the values it shows come from the engine.

Chromium (Debian's ``chromium``) loads ``/?token=...`` from a real server,
follows /stream, and the test reads the DOM over the DevTools protocol and
compares it with GET /ues. A screenshot goes to test-artifacts/.
"""

from __future__ import annotations

import pytest

from test_api_support import ARTIFACTS, Browser, InProcessServer, chromium_path, wait_for

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium not installed "
                                "(deploy/install-deps.sh installs it)")

TOKEN = "dash-token"

READ_DOM = """(() => {
  if (!document.getElementById('conn') || !document.getElementById('cell-util')) return null;
  const rows = [...document.querySelectorAll('#ue-rows tr')].map(tr => {
    const o = {id: Number(tr.dataset.ue)};
    tr.querySelectorAll('td[data-metric]').forEach(td => { o[td.dataset.metric] = Number(td.dataset.value); });
    return o;
  });
  const pixels = [...document.querySelectorAll('canvas')].map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; });
  return {state: document.body.dataset.state, seq: Number(document.body.dataset.seq),
          mode: document.body.dataset.mode,
          conn: document.getElementById('conn').textContent, rows, pixels,
          util: Number(document.getElementById('cell-util').dataset.value),
          policy: document.getElementById('policy-name').textContent};
})()"""


def check_dashboard(base: str, client, shot_name: str) -> dict:
    browser = Browser()
    try:
        browser.goto(f"{base}/?token={TOKEN}")
        dom = wait_for(lambda: (lambda d: d if d and d["state"] == "running" and len(d["rows"]) >= 2
                                and d["seq"] > 20 else None)(browser.eval(READ_DOM)), 30.0, 0.2)
        assert dom, browser.eval(READ_DOM)
        api_ues = {u["id"]: u for u in client.get("/ues").json()}
        dom = browser.eval(READ_DOM)
        assert dom["conn"] == "live"
        assert {r["id"] for r in dom["rows"]} == set(api_ues)
        for row in dom["rows"]:
            api = api_ues[row["id"]]
            # the page shows the engine's numbers (sampled up to a few hundred ms apart)
            assert row["throughput_bps"] == pytest.approx(api["throughput_bps"], rel=0.35, abs=1e5)
            assert row["prbs_avg"] == pytest.approx(api["prbs_avg"], rel=0.35, abs=1.0)
        assert all(p > 500 for p in dom["pixels"]), dom["pixels"]   # every chart drew something
        wait_for(lambda: False, 1.0)                                  # let the plots fill a little
        browser.screenshot(ARTIFACTS / shot_name)
        return dom
    finally:
        browser.close()


def test_dashboard_shows_engine_values_toy():
    srv = InProcessServer(token=TOKEN)
    try:
        sid = srv.client.post("/scenarios", json={
            "name": "toy", "ues": [{"ue_id": 1, "sinr_db": 20}, {"ue_id": 2, "sinr_db": 12}]}).json()["id"]
        assert srv.client.post(f"/scenarios/{sid}/start").status_code == 200
        dom = check_dashboard(srv.base, srv.client, "dashboard_toy.png")
        # toy engine: round robin splits 100 PRBs evenly, 100 bytes per PRB per 0.5 ms slot
        for row in dom["rows"]:
            assert row["prbs_avg"] == pytest.approx(50, abs=1)
            assert row["throughput_bps"] == pytest.approx(80e6, rel=0.2)
    finally:
        srv.close()


def test_dashboard_shows_real_engine_values():
    from test_api_support import Server, bulk_ue, cbr_ue
    srv = Server(token=TOKEN)
    try:
        cell = {"numerology": 1, "bandwidth_mhz": 20, "duplex": "FDD"}
        sid = srv.client.post("/scenarios", json={
            "name": "dashboard", "cell": cell, "policy": "pf",
            "ues": [bulk_ue(1, sinr_db=22.0), bulk_ue(2, sinr_db=12.0), cbr_ue(3, 5.0)]}).json()["id"]
        assert srv.client.post(f"/scenarios/{sid}/start").status_code == 200
        assert srv.client.put("/background", json={"count": 2, "load_level": 0.3}).status_code == 200
        dom = check_dashboard(srv.base, srv.client, "dashboard.png")
        assert len(dom["rows"]) == 5 and 0 < dom["util"] <= 1.0
        assert dom["policy"] == "pf"
        assert dom["mode"] == "offline-paced"
    finally:
        srv.close()
