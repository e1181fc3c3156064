"""Inversion of DCI logs: served bytes, missed DCIs, bursts, buffer bounds, classes, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from neuralemu.errors import InputError
from neuralemu.traffic_recon import ReconParams, reconstruct
from recon_helpers import grants_table, rr_user


def test_one_burst_bytes_and_arrival():
    rows = rr_user(100, range(50, 60), tbs_bits=8000)            # 10 grants of 1000 bytes
    rec = reconstruct(grants_table(rows))
    served = rec.served_per_slot()
    assert served["bytes_est"].sum() == pytest.approx(10_000)
    assert len(rec.bursts) == 1
    b = rec.bursts.iloc[0]
    assert b["size_bytes"] == pytest.approx(10_000)
    assert b["start_slot"] == 50 and b["arrival_t_us"] == 49_000   # one slot of scheduling delay
    assert rec.diagnostics["missed_grants_inferred"] == 0
    buf = rec.buffer
    assert buf["buffer_est_bytes"].iloc[0] == pytest.approx(10_000)
    assert buf["buffer_est_bytes"].iloc[-1] == pytest.approx(1000)
    assert (buf["buffer_lo_bytes"] <= buf["buffer_est_bytes"]).all()
    assert (buf["buffer_est_bytes"] <= buf["buffer_hi_bytes"]).all()
    assert rec.buffer_at(100, "dl", np.array([10, 49, 50, 59, 60, 500])).tolist() == \
        [0.0, 10_000.0, 10_000.0, 1000.0, 0.0, 0.0]


def test_missed_dcis_are_inferred_from_harq_ids():
    full = rr_user(7, range(100, 140), tbs_bits=8000)
    for burst in range(4):   # needs >= 20 one-slot pairs to trust round robin
        full += rr_user(8, range(1000 + 100 * burst, 1010 + 100 * burst), harq0=burst * 10)
    rng = np.random.default_rng(3)
    drop = set(rng.choice(np.arange(1, 39), size=12, replace=False).tolist())   # keep first and last
    seen = [r for k, r in enumerate(full) if not (r["rnti"] == 7 and k in drop)]
    rec = reconstruct(grants_table(seen))
    assert rec.diagnostics["harq_mode"]["dl"]["round_robin"]
    assert rec.diagnostics["missed_grants_inferred"] == 12
    g7 = rec.grants[rec.grants["rnti"] == 7]
    assert g7["bytes_est"].sum() == pytest.approx(40_000)
    assert g7["bytes_lo"].sum() <= 40_000 <= g7["bytes_hi"].sum()
    assert (~g7["observed"]).sum() == 12
    assert len(rec.bursts[rec.bursts["rnti"] == 7]) == 1


def test_retransmissions_counted_once():
    rows = rr_user(9, range(10, 40))
    rows.append({"rnti": 9, "slot": 45, "tbs_bits": 0, "harq_id": 3, "ndi": rows[3]["ndi"], "rv": 2,
                 "is_retx": True, "mcs": 29})
    # a retransmission with rv 0 on the same process and the same NDI (is_retx not set)
    rows.append({"rnti": 9, "slot": 41, "tbs_bits": 8000, "harq_id": 29 % 16, "ndi": rows[29]["ndi"]})
    rec = reconstruct(grants_table(rows))
    assert rec.grants["bytes_est"].sum() == pytest.approx(30 * 1000)
    assert rec.diagnostics["rows_duplicate_tb"] == 1


def test_undecodable_dci_is_a_grant_of_unknown_size():
    rows = rr_user(5, range(10, 40), tbs_bits=[8000] * 10 + [16000] * 20)
    rows[20]["valid"] = False
    rec = reconstruct(grants_table(rows))
    g = rec.grants.sort_values("slot")
    unknown = g[~g["decoded"]].iloc[0]
    assert unknown["bytes_lo"] == 1000 and unknown["bytes_hi"] == 2000
    assert g["bytes_lo"].sum() <= 10_000 + 20 * 2000 <= g["bytes_hi"].sum()


def test_bursts_split_on_silence_and_class_periodic():
    slots = []
    for k in range(30):                        # a 3-slot burst every 20 ms: periodic
        slots += [k * 20, k * 20 + 1, k * 20 + 2]
    rec = reconstruct(grants_table(rr_user(11, slots)))
    assert len(rec.bursts) == 30
    assert rec.users.set_index("rnti").loc[11, "traffic_class"] == "periodic"


def test_classes_bulk_and_signalling():
    rows = rr_user(21, range(0, 3500, 2), tbs_bits=40000)        # 3.5 s busy: bulk
    rows += rr_user(22, [3000, 3001, 9000], tbs_bits=800)        # a few small grants: signalling
    irregular = np.cumsum(np.random.default_rng(1).exponential(150, 30)).astype(int) + 5000
    rows += rr_user(23, sorted(set(irregular.tolist())), tbs_bits=24000)
    cls = reconstruct(grants_table(rows)).users.set_index("rnti")["traffic_class"]
    assert cls[21] == "bulk" and cls[22] == "signalling" and cls[23] == "interactive"


def test_exclude_rnti_and_uplink_separately():
    rows = rr_user(1, range(10, 30)) + rr_user(1, range(10, 30), direction="ul", tbs_bits=800) \
        + rr_user(2, range(100, 130))
    rec = reconstruct(grants_table(rows), exclude_rnti=[2])
    assert set(rec.grants["rnti"]) == {1}
    users = rec.users.set_index(["rnti", "direction"])
    assert users.loc[(1, "ul"), "total_bytes"] == pytest.approx(2000)


def test_bad_logs_raise_clear_errors():
    rows = rr_user(1, range(10, 30))
    for r in rows:
        r["valid"] = False
    with pytest.raises(InputError, match="all 20 DCI rows are invalid"):
        reconstruct(grants_table(rows))
    df = grants_table(rr_user(1, range(5)))
    with pytest.raises(InputError, match="no rows"):
        reconstruct(df.iloc[0:0])
    with pytest.raises(InputError, match="lacks columns"):
        reconstruct(df.drop(columns=["harq_id"]))
    with pytest.raises(InputError, match="no valid DCI rows left"):
        reconstruct(df, exclude_rnti=[1])


def test_params_change_burst_gap():
    slots = [0, 1, 2, 10, 11, 12]
    assert len(reconstruct(grants_table(rr_user(3, slots))).bursts) == 2
    assert len(reconstruct(grants_table(rr_user(3, slots)), ReconParams(burst_gap_us=20_000)).bursts) == 1
