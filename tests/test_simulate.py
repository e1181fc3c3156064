"""``neuralemu simulate`` and ``neuralemu synth``: outputs, round trip, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralemu.cli import main

SCENARIO = """
name: t
duration_s: 0.5
seed: 4
cell: {numerology: 1, bandwidth_mhz: 40, duplex: DDDSU, max_ues_per_slot: 4}
ues:
  - {ue_id: 1, channel: {model: fixed, sinr_db: 18}}
  - {ue_id: 2, channel: {model: stochastic, distance_m: 300, fading_std_db: 4}}
"""

SYNTH = """
name: synth
duration_s: 1.0
seed: 5
cell: {numerology: 1, bandwidth_mhz: 40, duplex: DDDSU, max_ues_per_slot: 4, queue_limit_bytes: 100000000}
ues:
  - ue_id: 11
    channel: {model: fixed, sinr_db: 20}
    traffic: {kind: bulk, rate_mbps: 600, direction: dl, initial_bytes: 5000000}
  - ue_id: 12
    channel: {model: stochastic, distance_m: 250, fading_std_db: 5}
    traffic: {kind: bulk, rate_mbps: 600, direction: dl, initial_bytes: 5000000}
  - ue_id: 13
    channel: {model: fixed, sinr_db: 12}
    traffic: {kind: cbr, rate_mbps: 2, direction: ul}
"""


@pytest.fixture
def files(tmp_path):
    sc = tmp_path / "s.yaml"
    sc.write_text(SCENARIO)
    rng = np.random.default_rng(0)
    n = 3000
    wl = pd.DataFrame({"t_us": np.sort(rng.integers(0, 400_000, n)),
                       "ue": rng.choice([1, 2], n), "direction": rng.choice(["dl", "ul"], n),
                       "size_bytes": rng.integers(40, 1500, n)})
    wl_path = tmp_path / "w.csv"
    wl.to_csv(wl_path, index=False)
    return tmp_path, sc, wl_path, wl


def test_simulate_writes_delivery_log_and_telemetry(files):
    tmp, sc, wl_path, wl = files
    out = tmp / "d.csv"
    rc = main(["simulate", "--scenario", str(sc), "--workload", str(wl_path), "--out", str(out),
               "--telemetry-out", str(tmp / "tel")])
    assert rc == 0
    log = pd.read_csv(out, dtype={"t_delivered_us": "Int64"})
    assert list(log.columns) == ["packet_id", "ue", "direction", "size_bytes", "t_arrival_us",
                                 "t_delivered_us", "dropped"]
    assert list(log["packet_id"]) == list(range(len(wl)))
    assert (log["ue"].to_numpy() == wl["ue"].to_numpy()).all()
    assert (log["size_bytes"].to_numpy() == wl["size_bytes"].to_numpy()).all()
    assert (log["t_arrival_us"].to_numpy() == wl["t_us"].to_numpy()).all()
    done = log["t_delivered_us"].notna()
    assert done.mean() > 0.95
    assert log.loc[log["dropped"] == 1, "t_delivered_us"].isna().all()
    from neuralemu.telemetry import read_dci_parquet, read_nrscope
    dci = read_nrscope(tmp / "tel" / "dci.csv", mu=1)
    pq = read_dci_parquet(tmp / "tel" / "dci.parquet")
    assert len(dci) == len(pq) > 0
    assert (dci["tbs_bits"].to_numpy() == pq["tbs_bits"].to_numpy()).all()
    # same seed -> byte-identical delivery log
    out2 = tmp / "d2.csv"
    assert main(["simulate", "--scenario", str(sc), "--workload", str(wl_path),
                 "--out", str(out2)]) == 0
    assert out.read_bytes() == out2.read_bytes()


def test_synth_round_trip(tmp_path):
    sc = tmp_path / "s.yaml"
    sc.write_text(SYNTH)
    out = tmp_path / "o"
    assert main(["synth", "--scenario", str(sc), "--duration-s", "0.5", "--out", str(out),
                 "--ue-log-every-slots", "2"]) == 0
    from neuralemu.telemetry import read_dci_parquet, read_nrscope, read_ue_log
    from neuralemu.workloads import read_workload_csv
    dci = read_nrscope(out / "dci.csv", mu=1)
    pq = read_dci_parquet(out / "dci.parquet")
    cols = ["slot", "rnti", "direction", "prb_start", "prb_count", "symbols", "layers", "mcs",
            "tbs_bits", "n_re", "harq_id", "ndi", "rv", "is_retx"]
    pd.testing.assert_frame_equal(dci[cols].reset_index(drop=True), pq[cols].reset_index(drop=True),
                                  check_dtype=False)
    assert dci["is_retx"].any() and (dci.loc[dci["is_retx"], "rv"] != 0).all()
    log = pd.read_csv(out / "deliveries.csv", dtype={"t_delivered_us": "Int64"})
    last_slot = int(dci["slot"].max())
    for ue, direction in ((11, "dl"), (12, "dl")):
        mine = dci[(dci["rnti"] == ue) & (dci["direction"] == direction)]
        new = mine[~mine["is_retx"]]
        dci_bytes = int(new["tbs_bits"].sum() // 8)
        sel = (log["ue"] == ue) & (log["direction"] == direction)
        delivered = int(log.loc[sel & log["t_delivered_us"].notna(), "size_bytes"].sum())
        lost = int(log.loc[sel & (log["dropped"] == 1), "size_bytes"].sum())
        in_flight = int(new.loc[new["slot"] > last_slot - 4 * 8 - 1, "tbs_bits"].sum() // 8)
        assert delivered > 1_000_000
        assert delivered <= dci_bytes <= delivered + lost + in_flight + 3000, (ue, dci_bytes, delivered)
        assert abs(dci_bytes - delivered) / delivered < 0.02
    ue_log = read_ue_log(out / "ue.csv")
    assert set(ue_log["ue"]) == {11, 12, 13}
    assert len(ue_log) == 3 * 2 * 500          # every 2nd of 1000 slots, 3 users x 2 directions
    assert (ue_log["cqi"].between(0, 15)).all() and ue_log["buffer_bytes"].max() > 0
    arrivals = read_workload_csv(out / "arrivals.csv")
    assert len(arrivals) == len(log)
    assert arrivals["size_bytes"].sum() == log["size_bytes"].sum()
    assert (arrivals["t_us"] < 500_000).all()


def test_bad_input_exits_2(files, capsys):
    tmp, sc, wl_path, _ = files
    bad_sc = tmp / "bad.yaml"
    bad_sc.write_text("ues: [{ue_id: 1, channel: {model: fixed, sinr_db: 200}}]\n")
    assert main(["simulate", "--scenario", str(bad_sc), "--workload", str(wl_path),
                 "--out", str(tmp / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "ues[0].channel.sinr_db" in err and "Traceback" not in err
    bad_wl = tmp / "bad.csv"
    bad_wl.write_text("t_us,ue,direction,size_bytes\n0,1,dl,100\n5,1,sideways,100\n")
    assert main(["simulate", "--scenario", str(sc), "--workload", str(bad_wl),
                 "--out", str(tmp / "x.csv")]) == 2
    other_ue = tmp / "other.csv"
    other_ue.write_text("t_us,ue,direction,size_bytes\n0,77,dl,100\n")
    assert main(["simulate", "--scenario", str(sc), "--workload", str(other_ue),
                 "--out", str(tmp / "x.csv")]) == 2
    assert main(["synth", "--scenario", str(tmp / "none.yaml"), "--out", str(tmp / "o")]) == 2
