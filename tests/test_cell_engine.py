"""Acceptance tests of the slot engine: conservation, TBS, HARQ, TDD, uplink access, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralemu import nr
from neuralemu.cell import (Allocation, CellConfig, Engine, UeConfig, make_policy)
from neuralemu.cell.policies import PythonPath
from neuralemu.errors import InputError


def fdd_cell(**kw) -> CellConfig:
    base = dict(numerology=0, bandwidth_mhz=20, duplex="FDD", max_ues_per_slot=4)
    base.update(kw)
    return CellConfig(**base)


def ue(ue_id: int, sinr_db: float = 15.0, **kw) -> UeConfig:
    return UeConfig(ue_id=ue_id, channel={"model": "fixed", "sinr_db": sinr_db}, **kw)


def random_workload(rng, ues, n, t_max_us, dirs=("dl", "ul")):
    t = np.sort(rng.integers(0, t_max_us, n))
    u = rng.choice(ues, n)
    d = rng.choice(list(dirs), n)
    size = rng.integers(1, 3000, n)
    return t, u, d, size


def test_conservation_every_packet_accounted_once():
    cell = fdd_cell(harq={"max_tx": 2, "combining_gain_db": 0.5}, queue_limit_bytes=60_000)
    ues = [ue(1, 4.0), ue(2, 12.0), UeConfig(ue_id=3, channel={"model": "stochastic",
                                                                "fading_std_db": 6.0})]
    eng = Engine(cell, ues, "pf", seed=3, record_dci=True)
    rng = np.random.default_rng(0)
    t, u, d, size = random_workload(rng, [1, 2, 3], 6000, 400_000)
    pids = eng.load_arrivals(t, u, d, size)
    eng.run_until(420_000)
    log = eng.delivery_log()
    queued = eng.queued_packets()
    # every packet exactly once: delivered, dropped, or still in the cell
    seen = np.concatenate([log["packet_id"].to_numpy(), queued["packet_id"].to_numpy()])
    assert len(seen) == len(set(seen.tolist())) == len(pids)
    assert set(seen.tolist()) == set(pids.tolist())
    assert log["dropped"].sum() > 0 and (log["dropped"] == 0).sum() > 0
    # per user and direction: bytes in = delivered + dropped + still queued
    st = eng.stats()
    for ue_id in (1, 2, 3):
        for dname in ("dl", "ul"):
            s = st[ue_id][dname]
            sel = (log["ue"] == ue_id) & (log["direction"] == dname)
            offered = int(size[(u == ue_id) & (d == dname)].sum())
            delivered = int(log.loc[sel & (log["dropped"] == 0), "size_bytes"].sum())
            dropped = int(log.loc[sel & (log["dropped"] == 1), "size_bytes"].sum())
            qsel = (queued["ue"] == ue_id) & (queued["direction"] == dname)
            still = int(queued.loc[qsel, "size_bytes"].sum())
            assert offered == s["bytes_in"] == delivered + dropped + still
            assert s["bytes_out"] == delivered and s["dropped_bytes"] == dropped
    # no byte served twice: the bytes put into new TBs are exactly the accepted stream
    # (bytes in - queue drops) minus what is not yet in any TB
    dci = eng.dci_log()
    new = dci[~dci["is_retx"]]
    assert (new["bytes"] * 8 <= new["tbs_bits"]).all()
    assert set(log["drop_reason"]) == {"", "queue", "harq"}
    for ue_id in (1, 2, 3):
        for dname in ("dl", "ul"):
            sent = int(new.loc[(new["rnti"] == ue_id) & (new["direction"] == dname), "bytes"].sum())
            s = st[ue_id][dname]
            qdrop = int(log.loc[(log["ue"] == ue_id) & (log["direction"] == dname)
                                & (log["drop_reason"] == "queue"), "size_bytes"].sum())
            assert sent == s["bytes_in"] - qdrop - s["untransmitted_bytes"]
    # delivery never precedes arrival; delays are whole slots past the arrival
    ok = log[log["dropped"] == 0]
    assert (ok["t_delivered_us"].astype(np.int64) > ok["t_arrival_us"]).all()


def test_every_dci_tbs_matches_nr():
    for cell in (fdd_cell(max_layers=2), CellConfig(numerology=1, bandwidth_mhz=100,
                                                     duplex="DDDSU", prb_allocation="type0")):
        ues = [ue(10 + i, 3.0 + 6 * i) for i in range(4)]
        eng = Engine(cell, ues, "pf", seed=1, record_dci=True)
        rng = np.random.default_rng(1)
        eng.load_arrivals(*random_workload(rng, [10, 11, 12, 13], 4000, 100_000))
        eng.run_until(120_000)
        dci = eng.dci_log()
        assert len(dci) > 100
        for row in dci.drop_duplicates(["direction", "symbols", "prb_count", "mcs",
                                        "layers"]).itertuples():
            n_re = nr.n_re(row.prb_count, row.symbols, cell.dmrs_re_per_prb,
                           cell.overhead_re_per_prb)
            assert row.n_re == n_re
            assert row.tbs_bits == nr.tbs_bits(n_re, row.mcs, row.mcs_table, row.layers)
        # PRBs of one slot and direction never overlap and stay in the carrier
        for (_, _), g in dci.groupby(["slot", "direction"]):
            used = np.zeros(cell.prbs, dtype=int)
            for r in g.itertuples():
                assert 0 <= r.prb_start and r.prb_start + r.prb_count <= cell.prbs
                used[r.prb_start:r.prb_start + r.prb_count] += 1
            assert used.max() <= 1
            assert len(g) <= cell.max_ues_per_slot
        if cell.prb_allocation == "type0":
            from neuralemu.cell.tables import rbg_size
            p = rbg_size(cell.prbs)
            new = dci[~dci["is_retx"]]
            assert ((new["prb_count"] % p == 0) | (new["prb_start"] + new["prb_count"] == cell.prbs)
                    | (new["prb_count"] < p)).all()


class ForceMcs:
    """A Python policy: serve every user with data at a fixed MCS (to force HARQ failures)."""

    name = "force"

    def __init__(self, mcs: int) -> None:
        self.mcs = mcs

    def decide(self, ctx, ues):
        n = len(ues)
        prbs = np.where(ues.buffer_bytes > 0, min(10, ctx.prbs_available // max(1, n)), 0)
        return Allocation(prbs=prbs, mcs=np.full(n, self.mcs), layers=np.ones(n, np.int64))

    def observe(self, ctx, ues, alloc):
        pass


def test_harq_retx_after_exact_rtt_and_packet_delayed():
    rtt = 6
    cell = fdd_cell(harq={"rtt_slots": rtt, "combining_gain_db": 10.0, "max_tx": 4})
    # first transmission at MCS 27 and 5 dB SINR fails (BLER ~ 1); the retx gets +10 dB
    eng = Engine(cell, [ue(1, 14.0, directions=["dl"])], ForceMcs(20), seed=0, record_dci=True)
    eng.enqueue(1, "dl", 100, t_us=0)
    for _ in range(3 * rtt):
        eng.step()
    dci = eng.dci_log()
    first = dci[~dci["is_retx"]].iloc[0]
    retx = dci[dci["is_retx"]]
    assert not first["ok"] and len(retx) >= 1
    r = retx.iloc[0]
    assert r["slot"] - first["slot"] == rtt
    assert r["harq_id"] == first["harq_id"] and r["ndi"] == first["ndi"]
    assert r["tbs_bits"] == first["tbs_bits"] and r["rv"] == 2
    assert r["ok"]
    log = eng.delivery_log()
    assert log.loc[0, "t_delivered_us"] == (r["slot"] + 1) * eng.slot_us
    # the same packet without the failure is delivered at the end of the first slot
    eng2 = Engine(cell, [ue(1, 30.0, directions=["dl"])], ForceMcs(20), seed=0, record_dci=True)
    eng2.enqueue(1, "dl", 100, t_us=0)
    eng2.run(3)
    assert eng2.delivery_log().loc[0, "t_delivered_us"] == 1000
    assert log.loc[0, "t_delivered_us"] - 1000 == rtt * 1000


def test_harq_max_tx_drops_the_packets_of_the_tb():
    cell = fdd_cell(harq={"rtt_slots": 4, "combining_gain_db": 0.0, "max_tx": 3})
    eng = Engine(cell, [ue(1, -5.0, directions=["dl"])], ForceMcs(27), seed=0, record_dci=True)
    eng.enqueue(1, "dl", 100, t_us=0)
    eng.run(20)
    dci = eng.dci_log()
    first_hp = dci[dci["harq_id"] == dci.iloc[0]["harq_id"]].iloc[:3]
    assert list(first_hp["rv"]) == [0, 2, 3] and not first_hp["ok"].any()
    log = eng.delivery_log()
    assert log.loc[0, "dropped"] == 1
    assert eng.stats()[1]["dl"]["drops"] == 1


def test_tdd_directions_and_special_slot_symbols():
    cell = CellConfig(numerology=1, bandwidth_mhz=100, duplex="DDDSU", special_slot="10:2:2")
    eng = Engine(cell, [ue(1, 20.0), ue(2, 10.0)], "rr", seed=2, record_dci=True)
    rng = np.random.default_rng(2)
    eng.load_arrivals(*random_workload(rng, [1, 2], 3000, 50_000))
    eng.run_until(60_000)
    dci = eng.dci_log()
    pat = nr.TddPattern.parse("DDDSU", 10, 2, 2)
    for r in dci.itertuples():
        assert pat.carries(r.slot, r.direction)
    kinds = np.array(list("DDDSU"))[dci["slot"] % 5]
    assert set(dci.loc[dci["direction"] == "ul", "slot"] % 5) <= {3, 4}
    assert set(dci.loc[dci["direction"] == "dl", "slot"] % 5) <= {0, 1, 2, 3}
    s_dl = dci[(kinds == "S") & (dci["direction"] == "dl")]
    s_ul = dci[(kinds == "S") & (dci["direction"] == "ul")]
    assert len(s_dl) > 0 and (s_dl["symbols"] == 10 - cell.pdcch_symbols).all()
    assert len(s_ul) == 0 or (s_ul["symbols"] == 2).all()
    assert (dci.loc[(kinds == "D"), "symbols"] == 14 - cell.pdcch_symbols).all()


@pytest.mark.parametrize("arrival_slot", [0, 3, 17])
def test_uplink_idle_user_waits_sr_and_grant(arrival_slot):
    up = {"sr_period_slots": 10, "sr_to_grant_slots": 3, "bsr_delay_slots": 2}
    cell = fdd_cell(uplink=up, harq={"k2_slots": 2})
    eng = Engine(cell, [ue(7, 20.0, directions=["ul"], sr_offset_slots=5)], "pf", seed=0,
                 record_dci=True)
    eng.run(arrival_slot)
    eng.enqueue(7, "ul", 5000, t_us=arrival_slot * 1000)
    eng.run(40)
    dci = eng.dci_log()
    first = int(dci["slot"].min())
    sr_slot = arrival_slot + ((5 - arrival_slot) % 10)
    assert first == sr_slot + 3 + 2
    # the first grant is the small post-SR grant; the BSR then brings the rest
    # (the smallest PRB count whose TBS holds sr_grant_bytes)
    assert cell.uplink.sr_grant_bytes <= dci.iloc[0]["bytes"] < 2 * cell.uplink.sr_grant_bytes
    log = eng.delivery_log()
    assert len(log) == 1 and log.loc[0, "dropped"] == 0
    assert log.loc[0, "t_delivered_us"] > (first + 2) * 1000


def test_uplink_bsr_quantised_known_buffer():
    from neuralemu.cell.kernel import quantise_bsr
    from neuralemu.cell.tables import bsr_levels
    short = bsr_levels("short")
    assert quantise_bsr(short, 0) == 0
    assert quantise_bsr(short, 10) == 10 and quantise_bsr(short, 11) == 14
    assert quantise_bsr(short, 150000) == 150000 and quantise_bsr(short, 150001) == 300000
    long = bsr_levels("long")
    assert quantise_bsr(long, 21) == 22 and quantise_bsr(long, 81338368) == 81338368
    assert (np.diff(long) > 0).all()


def _run_logs(seed, stepwise=False):
    cell = CellConfig(numerology=1, bandwidth_mhz=40, duplex="DDDSU")
    ues = [UeConfig(ue_id=i, channel={"model": "stochastic", "distance_m": 100 + 50 * i,
                                      "speed_mps": 3.0}) for i in range(1, 5)]
    eng = Engine(cell, ues, "pf", seed=seed, record_dci=True)
    rng = np.random.default_rng(5)
    eng.load_arrivals(*random_workload(rng, [1, 2, 3, 4], 3000, 80_000))
    if stepwise:
        for _ in range(200):
            eng.step()
    else:
        eng.run(200)
    return eng.delivery_log(), eng.dci_log()


def test_determinism_same_seed_identical_different_seed_differs():
    a_log, a_dci = _run_logs(11)
    b_log, b_dci = _run_logs(11)
    c_log, c_dci = _run_logs(11, stepwise=True)
    d_log, d_dci = _run_logs(12)
    assert a_log.to_csv(index=False) == b_log.to_csv(index=False) == c_log.to_csv(index=False)
    assert a_dci.to_csv(index=False) == b_dci.to_csv(index=False) == c_dci.to_csv(index=False)
    assert a_dci.to_csv(index=False) != d_dci.to_csv(index=False)


def test_python_policy_path_matches_kernel_path():
    def run(policy):
        cell = fdd_cell()
        ues = [UeConfig(ue_id=i, channel={"model": "stochastic", "distance_m": 80 * i})
               for i in range(1, 6)]
        eng = Engine(cell, ues, policy, seed=4, record_dci=True)
        rng = np.random.default_rng(9)
        eng.load_arrivals(*random_workload(rng, [1, 2, 3, 4, 5], 4000, 150_000))
        eng.run(150)
        return eng.dci_log().to_csv(index=False), eng.delivery_log().to_csv(index=False)

    for name in ("pf", "rr", "maxcqi"):
        assert run(make_policy(name)) == run(PythonPath(make_policy(name))), name


def test_engine_clamps_a_bad_policy():
    class Greedy:
        name = "greedy"

        def decide(self, ctx, ues):
            n = len(ues)
            return Allocation(prbs=np.full(n, 10_000), mcs=np.full(n, 99),
                              layers=np.full(n, 9))

    cell = fdd_cell(max_ues_per_slot=2, max_layers=2)
    eng = Engine(cell, [ue(i, 20.0) for i in range(1, 6)], Greedy(), seed=0, record_dci=True)
    for i in range(1, 6):
        eng.enqueue(i, "dl", 50_000, 0)
    eng.run(5)
    dci = eng.dci_log()
    per = dci.groupby(["slot", "direction"])
    assert per["prb_count"].sum().max() <= cell.prbs
    assert per.size().max() <= 2
    for dname, table in (("dl", cell.mcs_table), ("ul", cell.ul_mcs_table)):
        assert dci.loc[dci["direction"] == dname, "mcs"].max() <= nr.max_mcs(table)
    assert dci["layers"].max() <= 2

    class Broken:
        name = "broken"

        def decide(self, ctx, ues):
            return Allocation(prbs=np.zeros(1), mcs=np.zeros(1), layers=np.ones(1))

    eng.set_policy(Broken())
    with pytest.raises(InputError):
        eng.run(3)


def test_runtime_controls():
    eng = Engine(fdd_cell(), [ue(1, 15.0)], "pf", seed=0)
    eng.add_ue(ue(2, 15.0))
    with pytest.raises(InputError):
        eng.add_ue(ue(2, 15.0))
    eng.set_queue_limit(2, "dl", 3000)
    assert eng.enqueue(2, "dl", 2000, 0) is not None
    assert eng.enqueue(2, "dl", 2000, 0) is None        # drop-tail
    eng.set_channel_offset_db(1, -10.0)
    res = eng.step()
    assert [d.reason for d in res.dropped] == ["queue"]
    assert eng.stats()[1]["dl"]["sinr_db"] == pytest.approx(5.0)
    eng.enqueue(1, "dl", 10_000_000 // 10, 0)
    eng.remove_ue(1)
    res = eng.step()
    assert any(d.reason == "detach" for d in res.dropped)
    assert 1 not in eng.stats()
    eng.set_policy("rr")
    eng.run(5)
    with pytest.raises(InputError):
        eng.enqueue(99, "dl", 100, 0)
    with pytest.raises(InputError):
        eng.enqueue(2, "xx", 100, 0)
    with pytest.raises(InputError):
        make_policy("nope")


def test_closed_loop_source_gets_feedback():
    class Pinger:
        def __init__(self):
            self.sent = 0
            self.delivered = []
            self.outstanding = False

        def on_slot(self, view, t_us):
            if not self.outstanding and self.sent < 5:
                self.outstanding = True
                self.sent += 1
                return [(t_us, 1, "dl", 1200)]
            return []

        def on_delivered(self, d):
            self.outstanding = False
            self.delivered.append(d)

        def on_dropped(self, d):
            self.outstanding = False

    src = Pinger()
    eng = Engine(fdd_cell(), [ue(1, 20.0)], "pf", seed=0)
    eng.run(30, sources=[src])
    assert src.sent == 5 and len(src.delivered) == 5
    assert all(d.t_delivered_us - d.t_arrival_us == 1000 for d in src.delivered)


def test_trace_and_stochastic_channels(tmp_path):
    p = tmp_path / "sinr.csv"
    p.write_text("t_ms,sinr_db\n0,5\n1,25\n")
    cell = fdd_cell(cqi_period_slots=1, cqi_delay_slots=0)
    eng = Engine(cell, [UeConfig(ue_id=1, channel={"model": "trace", "path": str(p)})], "pf")
    cqis = []
    for _ in range(4):
        eng.step()
        cqis.append(eng.stats()[1]["dl"]["cqi"])
    assert cqis[0] < cqis[1] and cqis[0] == cqis[2] and cqis[1] == cqis[3]
    bad = tmp_path / "bad.csv"
    bad.write_text("sinr_db\n5\nx\n")
    with pytest.raises(InputError) as ei:
        Engine(cell, [UeConfig(ue_id=1, channel={"model": "trace", "path": str(bad)})], "pf")
    assert ":3" in str(ei.value)
    eng = Engine(cell, [UeConfig(ue_id=1, channel={"model": "stochastic", "fading_std_db": 5.0,
                                                   "coherence_ms": 5.0})], "pf", seed=3)
    s = []
    for _ in range(2000):
        eng.step()
        s.append(eng.stats()[1]["dl"]["sinr_db"])
    s = np.array(s)
    mean = 25.0 - 30.0 * np.log10(200 / 100)
    assert abs(s.mean() - mean) < 1.5 and 3.5 < s.std() < 6.5


def test_wall_clock_processes_every_missed_slot():
    from neuralemu.cell import WallClock
    now = [0]
    clock = WallClock(500, start_ns=0, now_ns=lambda: now[0], sleep=lambda s: None)
    now[0] = 0
    assert clock.wait(0) == [(0, 0)]
    now[0] = 2_300_000          # woke up 1.8 ms late for slot 1: slots 1..4 are due
    due = clock.wait(1)
    assert [s for s, _ in due] == [1, 2, 3, 4]
    assert [late for _, late in due] == [1800, 1300, 800, 300]
    assert clock.lateness_us == [0, 1800, 1300, 800, 300]


def test_run_realtime_keeps_pace_with_the_wall_clock():
    from neuralemu.cell import WallClock, run_realtime
    eng = Engine(fdd_cell(numerology=1, bandwidth_mhz=20), [ue(1, 20.0)], "pf", seed=0)
    eng.enqueue(1, "dl", 50_000, 0)
    seen = []
    clock = run_realtime(eng, 0.03, WallClock(eng.slot_us),
                         on_slot=lambda res, late: seen.append((res.slot, late)))
    assert [s for s, _ in seen] == list(range(60))
    assert len(clock.lateness_us) >= 60 and min(clock.lateness_us) >= 0
    assert eng.stats()[1]["dl"]["bytes_out"] > 0


def test_enqueue_batch_matches_single_enqueues():
    def run(batch):
        eng = Engine(fdd_cell(queue_limit_bytes=20_000), [ue(1, 15.0), ue(2, 8.0)], "pf", seed=0)
        ids = [1, 2, 1, 1, 2] * 20
        dirs = ["dl", "ul", "ul", "dl", "dl"] * 20
        sizes = [1500, 700, 1200, 90, 3000] * 20
        if batch:
            got = eng.enqueue_batch(ids, dirs, sizes, 0).tolist()
        else:
            got = [eng.enqueue(i, d, s, 0) for i, d, s in zip(ids, dirs, sizes)]
            got = [-1 if g is None else g for g in got]
        eng.run(50)
        return got, eng.delivery_log().to_csv(index=False)

    a, b = run(True), run(False)
    assert a == b and -1 in a[0]


@pytest.mark.parametrize("channel", [{"model": "fixed", "sinr_db": 13.3},
                                     {"model": "stochastic", "fading_std_db": 3.0,
                                      "coherence_ms": 50}])
def test_outer_loop_converges_to_the_bler_target(channel):
    cell = fdd_cell(queue_limit_bytes=10**10, bler_target=0.1)
    eng = Engine(cell, [UeConfig(ue_id=1, directions=["dl"], channel=channel)], "pf", seed=2,
                 record_dci=True, keep_log=False)
    eng.enqueue(1, "dl", 10**9, 0)
    eng.run(20_000)
    new = eng.dci_log()
    new = new[~new["is_retx"]].iloc[5000:]
    assert abs((1 - new["ok"].mean()) - 0.1) < 0.015
