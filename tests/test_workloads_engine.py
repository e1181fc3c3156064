"""Workloads through the real slot engine: closed-loop GCC and TCP, open-loop frames and units."""

from __future__ import annotations

import numpy as np
import pytest

from neuralemu.cell import CellConfig, Engine, UeConfig, make_policy
from neuralemu.workloads import (Bulk, CloudGaming, GccParams, GccSender, TcpLikeSource,
                                 UnitRecorder, generate, unit_completion)

CELL = CellConfig(numerology=0, bandwidth_mhz=5, duplex="FDD")


def _engine(n_ues=2):
    ues = [UeConfig(ue_id=u, directions=["dl", "ul"],
                    channel={"model": "fixed", "sinr_db": 10.0}) for u in range(1, n_ues + 1)]
    return Engine(CELL, ues, make_policy("pf"), seed=1)


def _load(engine, packets):
    cols = list(zip(*[p[:4] for p in packets]))
    engine.load_arrivals(*[np.asarray(c) for c in cols])


@pytest.fixture(scope="module")
def capacity_bps():
    """What one backlogged user gets from this cell alone."""
    eng = _engine()
    _load(eng, generate(Bulk(rate_mbps=40), [1], 2.0, 1))
    eng.run(2000)
    return eng.stats()[1]["dl"]["bytes_out"] * 8 / 2.0


def test_gcc_on_the_engine_converges_and_backs_off_when_a_user_joins(capacity_bps):
    eng = _engine()
    # user 2 turns backlogged at 10 s: PF then gives user 1 about half the cell
    _load(eng, [p for p in generate(Bulk(rate_mbps=40), [2], 20.0, 1) if p.t_us >= 10_000_000])
    src = GccSender(1, params=GccParams(start_bitrate_bps=0.6 * capacity_bps))
    eng.run(20_000, sources=[src])
    s = src.bitrate_series()
    alone = s[(s.t_us >= 4e6) & (s.t_us < 10e6)].target_bitrate_bps.mean() / capacity_bps
    shared = s[s.t_us >= 15e6].target_bitrate_bps.mean() / capacity_bps
    assert 0.7 <= alone <= 1.05, alone
    assert 0.25 <= shared <= 0.6, shared
    assert src.unmatched_callbacks == 0


def test_tcp_on_the_engine_fills_the_cell(capacity_bps):
    eng = _engine(1)
    src = TcpLikeSource(1)
    eng.run(6000, sources=[src])
    th = src.throughput_series(1000).set_index("t_us").bps
    assert th.loc[2e6:5e6].mean() == pytest.approx(capacity_bps, rel=0.12)
    assert src.unmatched_callbacks == 0


def test_frame_delays_from_the_engine_delivery_log(capacity_bps):
    eng = _engine(1)
    rec = UnitRecorder()
    wl = CloudGaming(bitrate_mbps=0.3 * capacity_bps / 1e6)
    _load(eng, list(rec.record(generate(wl, [1], 3.0, 2))))
    eng.run(3100)
    frames = unit_completion(eng.delivery_log(), rec.table(), "dl")
    assert len(frames) == pytest.approx(180, abs=3)
    assert frames.complete.mean() > 0.95
    delay_ms = frames[frames.complete].latency_us / 1e3
    assert 0.5 < delay_ms.median() < 100
