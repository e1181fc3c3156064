"""Unit tests of the app drivers' pure parts: page generation, the offline page-load mirror,
iperf3 JSON parsing and the video schedule. No root, no network namespaces."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from neuralemu.apps.iperf import IperfError, parse_iperf_json
from neuralemu.apps.pageload import BrowserModel, PageLoadSource
from neuralemu.apps.webpage import make_page, object_bytes, write_page

SCENARIO = "neuralemu/apps/scenarios/apps_fdd10.yaml"


def test_page_is_deterministic_and_exact(tmp_path):
    a, b = make_page(5), make_page(5)
    assert a == b
    assert make_page(6) != a
    assert a.html.path == "/index.html" and len(a.objects) > 10
    root = write_page(a, tmp_path)
    for obj in a.objects:
        data = (root / obj.path.lstrip("/")).read_bytes()
        assert len(data) == obj.size_bytes
        assert data == object_bytes(a, obj)
    html = (root / "index.html").read_text()
    for obj in a.objects[1:]:
        assert f'"{obj.path}"' in html
    assert 'rel="icon"' in html        # no favicon request


def test_page_pngs_are_valid(tmp_path):
    page = make_page(4)
    root = write_page(page, tmp_path)
    img = next(o for o in page.objects if o.kind == "img")
    data = (root / img.path.lstrip("/")).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + body)
        kinds.append(kind)
        pos += 12 + n
    assert kinds == [b"IHDR", b"fiLl", b"IDAT", b"IEND"]


def test_page_sizes_follow_the_web_model():
    from neuralemu.workloads import WebBrowsing
    totals = sorted(make_page(s).total_bytes for s in range(40))
    median = totals[len(totals) // 2]
    assert 0.8e6 < median < 4e6          # HTTP Archive: about 2 MB at the median
    small = make_page(1, WebBrowsing(objects_median=5, object_median_bytes=1000))
    assert len(small.objects) < 40


def _run_mirror(page, model=None, sinr_db=None):
    import yaml
    from neuralemu.scenario import build_emulation
    sc = yaml.safe_load(open(SCENARIO))
    if sinr_db is not None:
        sc["ues"][0]["channel"]["sinr_db"] = sinr_db
    emu = build_emulation(sc, load_traffic=False, keep_log=False)
    src = PageLoadSource(page, sc["ues"][0]["ue_id"], model=model, t0_us=1000)
    while src.done_us is None and emu.engine.t_us < 60e6:
        emu.engine.run(200, sources=[src])
    return src, emu.engine


def test_page_load_mirror_moves_every_byte():
    page = make_page(7)
    src, eng = _run_mirror(page)
    assert src.done_us is not None
    assert set(src.obj_done_us) == set(range(len(page.objects)))
    m = src.m
    body = sum(o.size_bytes + m.response_header_bytes for o in page.objects)
    segs = sum(-(-(o.size_bytes + m.response_header_bytes) // m.mss_bytes) for o in page.objects)
    conns = min(m.connections, len(page.objects))
    assert src.bytes["dl"] == body + segs * m.header_bytes + conns * m.syn_bytes
    assert eng.stats()[1]["dl"]["bytes_out"] == src.bytes["dl"]
    # the HTML first, then everything else; never more than 6 connections
    assert min(src.obj_request_us.values()) == src.obj_request_us[0]
    assert all(src.obj_request_us[i] >= src.obj_done_us[0] for i in range(1, len(page.objects)))


def test_page_load_mirror_slower_cell_and_browser_delays_add():
    page = make_page(7)
    fast, _ = _run_mirror(page, sinr_db=15)
    slow, _ = _run_mirror(page, sinr_db=2)
    assert slow.plt_us > 1.5 * fast.plt_us
    # page load time is at least the bytes over the cell's capacity
    delayed, _ = _run_mirror(page, BrowserModel(nav_start_us=50_000, tail_us=20_000), sinr_db=15)
    assert delayed.plt_us == pytest.approx(fast.plt_us + 70_000, abs=10_000)


IPERF_TCP = {"start": {}, "intervals": [{"sum": {"bits_per_second": 9e6}},
                                        {"sum": {"bits_per_second": 11e6}}],
             "end": {"sum_sent": {"retransmits": 3, "bits_per_second": 10.1e6},
                     "sum_received": {"seconds": 2.0, "bits_per_second": 10e6}}}


def test_parse_iperf_json():
    r = parse_iperf_json(json.dumps(IPERF_TCP), "tcp", "cubic")
    assert r.goodput_bps == 10e6 and r.retransmits == 3 and r.interval_bps == [9e6, 11e6]
    udp = {"intervals": [], "end": {"sum": {"seconds": 1.0, "bits_per_second": 5e6,
                                            "lost_percent": 1.5, "jitter_ms": 0.2}}}
    u = parse_iperf_json(json.dumps(udp), "udp", None)
    assert u.goodput_bps == 5e6 and u.lost_percent == 1.5
    with pytest.raises(IperfError, match="unable to connect"):
        parse_iperf_json(json.dumps({"error": "unable to connect to server"}), "tcp", "cubic")
    with pytest.raises(IperfError, match="no JSON"):
        parse_iperf_json("garbage", "tcp", "cubic")


def test_video_schedule_is_30fps_at_the_bitrate():
    from neuralemu.apps.video import video_schedule
    s = video_schedule(bitrate_mbps=2.0, duration_s=4.0, seed=3)
    assert s.equals(video_schedule(bitrate_mbps=2.0, duration_s=4.0, seed=3))
    assert s["t_us"].is_monotonic_increasing
    assert 110 <= s["frame"].nunique() <= 121
    mbps = s["size_bytes"].sum() * 8 / 4.0 / 1e6
    assert 1.3 < mbps < 2.7
    assert s["size_bytes"].max() <= 1228


def test_frame_delays():
    import numpy as np
    from neuralemu.apps.video import frame_delays_ms
    d = frame_delays_ms(np.array([0, 0, 1]), np.array([0, 10, 1000]), np.array([3000, 5000, 2000]))
    assert list(d) == [5.0, 1.0]


def test_apps_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from neuralemu.cli import main
    assert main(["apps", "run", "--scenario", str(tmp_path / "none.yaml"), "--app", "web"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["apps", "run", "--scenario", SCENARIO, "--app", "iperf-tcp", "--cc", "nosuchcc"]) == 2
    err = capsys.readouterr().err
    assert "nosuchcc" in err and "not available" in err and len(err.strip().splitlines()) == 1
    assert main(["apps", "run", "--scenario", SCENARIO, "--app", "web", "--policy", "learned"]) == 2
    assert "needs --model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["apps", "run", "--scenario", SCENARIO, "--app", "web", "--runs", "0"])
    assert exc.value.code == 2


def test_apps_page_command(tmp_path, capsys):
    from neuralemu.cli import main
    assert main(["apps", "page", "--seed", "5", "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "objects=70" in out and "total_bytes=1549228" in out
    assert (tmp_path / "p" / "index.html").is_file()
