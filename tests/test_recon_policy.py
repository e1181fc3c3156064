"""BackgroundLinkPolicy: MCS from the sampled trajectory, small payloads at the lowest MCS that fits."""

from __future__ import annotations

import numpy as np

from neuralemu.cell import CellConfig, Engine
from neuralemu.cell.policy import SlotContext, UeFeatures
from neuralemu.traffic_recon.policy import BackgroundLinkPolicy
from neuralemu.traffic_recon.real_eval import CELLS


def _ctx(prbs=52):
    return SlotContext(slot=0, t_us=25_000, direction="dl", slot_type="D", prbs_available=prbs,
                       prbs_total=prbs, symbols=12, max_ues=8, mcs_table="qam256", max_layers=2)


def _ues(ids, buffers, la_mcs):
    n = len(ids)
    z = np.zeros(n, dtype=np.int64)
    return UeFeatures(ue_id=np.asarray(ids, np.int64), buffer_bytes=np.asarray(buffers, float),
                      cqi=z + 7, sinr_db=np.zeros(n), la_mcs=np.asarray(la_mcs, np.int64),
                      avg_tput_bps=np.ones(n), last_mcs=z - 1, last_prbs=z, slots_since_grant=z + 100,
                      pending_retx=z, priority=np.ones(n))


def test_small_payload_lowest_mcs_large_payload_link_mcs():
    # ue 1: trajectory MCS 14 (steps of 10 ms: t=25 ms is step 2); ue 2: trajectory MCS 12; ue 3 foreground
    pol = BackgroundLinkPolicy({1: (0.0, 10_000.0, np.array([3, 3, 14, 14])),
                                2: (0.0, 10_000.0, np.array([12, 12, 12]))}, small_payload_prbs=8)
    a = pol.decide(_ctx(), _ues([1, 2, 3], [60, 3_000, 2_000], [5, 5, 9]))
    assert (a.prbs[0], a.mcs[0]) == (8, 0)             # 60 bytes: MCS 0 on 8 PRBs (63-byte TB)
    assert a.mcs[1] == 12 and a.prbs[1] > 8            # large: the trajectory's MCS, odd or even
    assert a.mcs[2] == 9                               # no trajectory: engine link adaptation
    assert a.prbs.sum() <= 52
    tb = pol._lut(_ctx())[0]
    assert tb[0, 8] // 8 == 63                         # 38.214 5.1.3.2 with 12 symbols, 2 layers


def test_served_bytes_grid_matches_t_mobile1_tbs():
    cell = CellConfig(**CELLS["t_mobile1"])
    grid = BackgroundLinkPolicy(small_payload_prbs=8).served_bytes_grid(cell)["dl"]
    # TBS (bytes) of 8-PRB grants at MCS 0..9 as logged in the t_mobile1 NR-Scope files
    assert grid[:10].tolist() == [63, 101, 161, 233, 309, 388, 453, 504, 560, 640]


def test_engine_runs_policy_and_uses_even_mcs():
    cell = CellConfig(**CELLS["t_mobile1"])
    traj = np.array([10] * 50 + [13] * 50)
    pol = BackgroundLinkPolicy({60000: (0.0, 10_000.0, traj)}, small_payload_prbs=8)
    ue = {"ue_id": 60000, "directions": ["dl"], "channel": {"model": "fixed", "sinr_db": 25.0}}
    eng = Engine(cell, [ue], pol, seed=1, record_dci=True)
    n = 300
    eng.load_arrivals(np.arange(n) * 3000, np.full(n, 60000), np.array(["dl"] * n), np.full(n, 1500))
    eng.run(1000)
    d = eng.dci_log()
    new = d[~d["is_retx"] & (d["tbs_bits"] >= 4000 * 8 // 8)]
    assert set(new["mcs"].unique()) <= {10, 13} | set(range(0, 13))
    assert (new["mcs"] == 10).any() and (new["mcs"] == 13).any()
