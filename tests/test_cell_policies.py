"""The analytical policies against their closed forms (full-buffer users, one cell)."""

from __future__ import annotations

import numpy as np
import pytest

from neuralemu.cell import CellConfig, Engine, UeConfig, make_policy, policy_names, register_policy


def backlogged(policy, sinrs, priorities=None, n_slots=3000, **cell_kw):
    cell = CellConfig(numerology=0, bandwidth_mhz=20, duplex="FDD", queue_limit_bytes=10**10,
                      **cell_kw)
    priorities = priorities or [1.0] * len(sinrs)
    ues = [UeConfig(ue_id=i + 1, directions=["dl"], priority=p,
                    channel={"model": "fixed", "sinr_db": s})
           for i, (s, p) in enumerate(zip(sinrs, priorities))]
    eng = Engine(cell, ues, policy, seed=1, record_dci=True, keep_log=False)
    for i in range(len(sinrs)):
        eng.enqueue(i + 1, "dl", 10**9, 0)
    eng.run(n_slots)
    dci = eng.dci_log()
    prbs = dci.groupby("rnti")["prb_count"].sum().reindex(range(1, len(sinrs) + 1), fill_value=0)
    share = (prbs / prbs.sum()).to_numpy()
    bits = dci[dci["ok"]].groupby("rnti")["tbs_bits"].sum().reindex(range(1, len(sinrs) + 1),
                                                                   fill_value=0).to_numpy()
    return share, bits, dci


def test_pf_equal_channels_equal_time_shares():
    share, bits, _ = backlogged(make_policy("pf", window_slots=50), [15.0] * 4)
    assert np.allclose(share, 0.25, atol=0.01)
    assert np.allclose(bits / bits.sum(), 0.25, atol=0.02)


def test_pf_unequal_channels_pf_optimal_shares():
    # PF maximises sum log(throughput): with full buffers, equal resource shares,
    # so each user's throughput is proportional to its own rate (closed form).
    share, bits, dci = backlogged(make_policy("pf", window_slots=50), [5.0, 22.0])
    assert np.allclose(share, 0.5, atol=0.02)
    rate = dci[dci["ok"]].groupby("rnti").apply(lambda g: g["tbs_bits"].sum() / g["prb_count"].sum())
    expected = rate.to_numpy() * share / (rate.to_numpy() * share).sum()
    assert np.allclose(bits / bits.sum(), expected, atol=0.02)
    assert bits[1] > 2 * bits[0]


def test_pf_weights_give_weighted_shares():
    # argmax sum w_i log(x_i r_i) s.t. sum x_i = 1  ->  x_i = w_i / sum w
    share, _, _ = backlogged(make_policy("pf", window_slots=50), [12.0, 12.0, 12.0],
                             priorities=[2.0, 1.0, 1.0])
    assert np.allclose(share, [0.5, 0.25, 0.25], atol=0.02)


def test_maxcqi_starves_the_weak_user():
    share, bits, _ = backlogged(make_policy("maxcqi"), [5.0, 22.0], n_slots=500)
    assert share[0] == 0 and bits[0] == 0 and bits[1] > 0


def test_rr_alternates():
    _, _, dci = backlogged(make_policy("rr"), [30.0, 10.0, 20.0], n_slots=60)
    new = dci[~dci["is_retx"]]
    order = new.sort_values("slot")["rnti"].to_numpy()
    assert list(order[:9]) == [1, 2, 3] * 3
    assert (np.bincount(order)[1:].max() - np.bincount(order)[1:].min()) <= 1


def test_users_per_slot_limit_and_sharing():
    # small buffers: several users share one slot, never more than max_ues_per_slot
    cell = CellConfig(numerology=0, bandwidth_mhz=20, duplex="FDD", max_ues_per_slot=3)
    ues = [UeConfig(ue_id=i, directions=["dl"], channel={"model": "fixed", "sinr_db": 15.0})
           for i in range(1, 9)]
    eng = Engine(cell, ues, "pf", seed=0, record_dci=True)
    for i in range(1, 9):
        for k in range(20):
            eng.enqueue(i, "dl", 300, k * 1000)
    eng.run(40)
    per_slot = eng.dci_log().groupby("slot").size()
    assert per_slot.max() == 3


def test_registry_lets_outside_policies_plug_in():
    class Idle:
        name = "idle"

        def __init__(self, note="x"):
            self.note = note

        def decide(self, ctx, ues):
            from neuralemu.cell import Allocation
            return Allocation.empty(len(ues))

    register_policy("idle-test", Idle)
    assert "idle-test" in policy_names() and {"pf", "rr", "maxcqi"} <= set(policy_names())
    p = make_policy("idle-test", note="y")
    assert p.note == "y"
    eng = Engine(CellConfig(numerology=0, bandwidth_mhz=20, duplex="FDD"),
                 [UeConfig(ue_id=1)], "idle-test", seed=0)
    eng.enqueue(1, "dl", 1000, 0)
    eng.run(5)
    assert eng.stats()[1]["dl"]["bytes_out"] == 0
    eng.set_policy("pf")
    eng.run(5)
    assert eng.stats()[1]["dl"]["bytes_out"] == 1000
    with pytest.raises(Exception):
        make_policy("pf", nonsense=1)
