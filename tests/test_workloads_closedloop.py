"""Closed-loop sources (GCC video sender, TCP-like bulk) against a bottleneck of known capacity."""

from __future__ import annotations

import numpy as np
import pytest

from neuralemu.workloads.fakelink import FakeBottleneck
from neuralemu.workloads.gcc import GccParams, GccSender, TrendlineEstimator


def _mean_target(series, t0_s, t1_s):
    s = series[(series.t_us >= t0_s * 1e6) & (series.t_us < t1_s * 1e6)]
    return s.target_bitrate_bps.mean()


def _run_gcc(capacity_bps, seconds, halve_at_s=None, seed=0, **params):
    link = FakeBottleneck(capacity_bps, queue_limit_bytes=300_000)
    src = GccSender(1, params=GccParams(**params), seed=seed)
    if halve_at_s is None:
        link.run(int(seconds * 1000), [src])
    else:
        link.run(int(halve_at_s * 1000), [src])
        link.set_capacity_bps(capacity_bps / 2)
        link.run(int((seconds - halve_at_s) * 1000), [src])
    return link, src


def test_gcc_converges_below_capacity_and_backs_off_when_it_halves():
    cap = 4e6
    link, src = _run_gcc(cap, 50.0, halve_at_s=30.0)
    series = src.bitrate_series()
    assert len(series) == pytest.approx(50 * 30, abs=2)          # 30 fps
    before = _mean_target(series, 22, 30)
    after = _mean_target(series, 40, 50)
    assert 0.7 * cap <= before <= 1.05 * cap, before
    assert 0.6 * cap / 2 <= after <= 1.05 * cap / 2, after
    assert src.unmatched_callbacks == 0
    # frames follow the target: encoded bytes over the last 10 s ~ target
    late = series[series.t_us >= 40e6]
    assert late.frame_bytes.sum() * 8 / 10 == pytest.approx(after, rel=0.1)


def test_gcc_is_deterministic_by_seed():
    _, a = _run_gcc(3e6, 5.0, seed=3)
    _, b = _run_gcc(3e6, 5.0, seed=3)
    _, c = _run_gcc(3e6, 5.0, seed=4)
    assert a.bitrate_series().equals(b.bitrate_series())
    assert not a.bitrate_series().frame_bytes.equals(c.bitrate_series().frame_bytes)


def test_gcc_loss_based_control_reacts_to_heavy_loss():
    # a tiny buffer: the queue overflows before the delay gradient shows much
    link = FakeBottleneck(2e6, queue_limit_bytes=6_000)
    src = GccSender(1, params=GccParams(start_bitrate_bps=6e6))
    link.run(10_000, [src])
    s = src.bitrate_series()
    assert s.loss_based_bps.iloc[-1] < 3e6 and _mean_target(s, 5, 10) < 2.5e6


def test_trendline_flags_a_growing_queue_and_not_a_stable_one():
    est = TrendlineEstimator()
    states = [est.update(5.0, 5.0, 5.0 * i) for i in range(1, 100)]
    assert set(states) == {"normal"}
    est = TrendlineEstimator()
    states = [est.update(5.0, 6.0, 6.0 * i) for i in range(1, 100)]  # +1 ms per group
    assert "overuse" in states


def test_sources_only_emit_packets_inside_the_slot():
    class View:
        slot_us = 500
    src = GccSender(2, direction="ul")
    for slot in range(2000):
        t0 = slot * 500
        for p in src.on_slot(View, t0):
            assert t0 <= p.t_us < t0 + 500 and p.ue == 2 and p.direction == "ul"
            assert 1 <= p.size_bytes <= 1200


# ---- TCP-like bulk ---------------------------------------------------------------

from neuralemu.workloads.tcp import TcpLikeSource, TcpParams  # noqa: E402


@pytest.mark.parametrize("cc", ["cubic", "reno"])
def test_tcp_fills_the_link_and_follows_a_capacity_drop(cc):
    link = FakeBottleneck(20e6, queue_limit_bytes=150_000)
    src = TcpLikeSource(1, params=TcpParams(cc=cc))
    link.run(10_000, [src])
    link.set_capacity_bps(10e6)
    link.run(10_000, [src])
    th = src.throughput_series(1000).set_index("t_us").bps
    assert th.loc[3e6:9e6].mean() == pytest.approx(20e6, rel=0.05)
    assert th.loc[13e6:19e6].mean() == pytest.approx(10e6, rel=0.05)
    assert src.retransmissions > 0 and src.unmatched_callbacks == 0
    cw = src.cwnd_series()
    assert cw.cwnd_packets.diff().min() < -10            # multiplicative decreases happened


def test_tcp_flows_share_a_link_and_finite_flows_complete():
    link = FakeBottleneck(12e6, queue_limit_bytes=100_000)
    a = TcpLikeSource(1, params=TcpParams())
    b = TcpLikeSource(2, params=TcpParams(start_s=1.0))
    link.run(20_000, [a, b])
    ta = a.throughput_series(1000).set_index("t_us").bps.loc[10e6:19e6].mean()
    tb = b.throughput_series(1000).set_index("t_us").bps.loc[10e6:19e6].mean()
    assert ta + tb == pytest.approx(12e6, rel=0.05)
    assert min(ta, tb) / max(ta, tb) > 0.5
    link = FakeBottleneck(8e6)
    f = TcpLikeSource(1, params=TcpParams(flow_bytes=1_000_000))
    link.run(5_000, [f])
    assert f.completion_us is not None and f.completion_us < 3_000_000
    assert f.delivered_bytes == -(-1_000_000 // 1448) * 1500


# ---- building sources from dicts ------------------------------------------------

from neuralemu.errors import InputError  # noqa: E402
from neuralemu.workloads import make_closed_loop, make_open_loop  # noqa: E402


def test_factory_builds_sources_and_names_bad_fields():
    src = make_closed_loop({"kind": "gcc", "ue": 3, "direction": "ul",
                            "start_bitrate_bps": 2e6}, seed=2)
    assert isinstance(src, GccSender) and src.ue == 3 and src.direction == "ul"
    assert src.target_bps == 2e6
    tcp = make_closed_loop({"kind": "tcp", "ue": 4, "cc": "reno"})
    assert isinstance(tcp, TcpLikeSource) and tcp.params.cc == "reno"
    assert make_open_loop("web", {"think_mean_s": 3}).think_mean_s == 3
    cases = [
        ({"kind": "quic", "ue": 1}, "kind"),
        ({"kind": "gcc"}, "ue"),
        ({"kind": "gcc", "ue": "x"}, "ue"),
        ({"kind": "gcc", "ue": 1, "direction": "up"}, "direction"),
        ({"kind": "gcc", "ue": 1, "fps_typo": 30}, "fps_typo"),
        ({"kind": "tcp", "ue": 1, "cc": "bbr"}, None),
    ]
    for spec, field in cases:
        with pytest.raises(InputError) as exc:
            make_closed_loop(spec, source="scenario.yaml")
        assert exc.value.field == field and exc.value.source == "scenario.yaml"
    with pytest.raises(InputError) as exc:
        make_open_loop("cbr", {"rate_mbps": "fast"})
    with pytest.raises(InputError) as exc:
        make_open_loop("video", {})
    assert exc.value.field == "kind"


def test_gcc_startup_probing_reaches_the_capacity_quickly():
    link = FakeBottleneck(10e6, queue_limit_bytes=300_000)
    probed = GccSender(1, params=GccParams(start_bitrate_bps=300e3))
    link.run(2000, [probed])
    link = FakeBottleneck(10e6, queue_limit_bytes=300_000)
    plain = GccSender(1, params=GccParams(start_bitrate_bps=300e3, probing=False))
    link.run(2000, [plain])
    # exponential probing finds several Mbps within the first second; without it GCC
    # climbs at 8 % per second from 300 kbps
    assert probed.bitrate_series().target_bitrate_bps.iloc[-15:].mean() > 2.5e6
    assert plain.bitrate_series().target_bitrate_bps.iloc[-15:].mean() < 0.5e6
