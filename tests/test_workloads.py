"""Open-loop workloads: distributions, determinism, units, CSV reading and writing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralemu.errors import InputError
from neuralemu.workloads import (OPEN_LOOP_KINDS, Bulk, Cbr, CloudGaming, OnOff, UnitRecorder,
                                 WebBrowsing, assign_units, generate, read_units_csv,
                                 read_workload_csv, unit_completion, write_units_csv,
                                 write_workload_csv)
from neuralemu.workloads.packet import split_bytes


def _df(packets) -> pd.DataFrame:
    return pd.DataFrame(list(packets), columns=["t_us", "ue", "direction", "size_bytes", "unit"])


def _rate_mbps(df, direction, duration_s, ue=None):
    d = df[df.direction == direction]
    if ue is not None:
        d = d[d.ue == ue]
    return d.size_bytes.sum() * 8 / duration_s / 1e6


SMALL = {
    "bulk": Bulk(rate_mbps=20, initial_bytes=50_000),
    "cbr": Cbr(rate_mbps=2),
    "onoff": OnOff(rate_mbps=5, mean_on_s=0.2, mean_off_s=0.3),
    "gaming": CloudGaming(),
    "web": WebBrowsing(think_mean_s=0.5),
}


@pytest.mark.parametrize("kind", sorted(OPEN_LOOP_KINDS))
def test_deterministic_sorted_and_independent_of_other_users(kind):
    wl = SMALL[kind]
    a = list(generate(wl, [1, 2, 3], 3.0, seed=11))
    b = list(generate(wl, [1, 2, 3], 3.0, seed=11))
    c = list(generate(wl, [1, 2, 3], 3.0, seed=12))
    assert a == b and a != c and len(a) > 0
    t = [p.t_us for p in a]
    assert t == sorted(t) and t[0] >= 0 and t[-1] < 3_000_000
    assert all(1 <= p.size_bytes <= 1500 and p.direction in ("dl", "ul") for p in a)
    alone = list(generate(wl, [2], 3.0, seed=11))
    assert alone == [p for p in a if p.ue == 2]


def test_cbr_rate_and_spacing():
    df = _df(generate(Cbr(rate_mbps=4.0, packet_bytes=1000, direction="both"), [5], 10.0, 1))
    for d in ("dl", "ul"):
        assert _rate_mbps(df, d, 10.0) == pytest.approx(4.0, rel=0.01)
        gaps = np.diff(df[df.direction == d].t_us.to_numpy())
        assert gaps.min() >= 1999 and gaps.max() <= 2001     # 1000 B at 4 Mbps = 2 ms


def test_bulk_is_a_burst_then_a_high_rate():
    wl = Bulk(rate_mbps=100.0, initial_bytes=1_000_000)
    df = _df(generate(wl, [1], 2.0, 3))
    t0 = df.t_us.iloc[0]
    burst = df[df.t_us == t0].size_bytes.sum()
    assert burst == 1_000_000
    assert _rate_mbps(df[df.t_us > t0], "dl", 2.0 - t0 / 1e6) == pytest.approx(100.0, rel=0.01)


@pytest.mark.parametrize("distribution", ["exponential", "pareto"])
def test_onoff_periods_and_duty_cycle(distribution):
    wl = OnOff(rate_mbps=1.0, mean_on_s=0.5, mean_off_s=1.5, distribution=distribution,
               pareto_shape=2.5)
    periods = [p for ue in range(40) for p in wl.periods_us(ue, 200_000_000, seed=4)]
    lengths_s = np.array([(e - s) / 1e6 for s, e in periods])
    on_fraction = lengths_s.sum() / (40 * 200.0)
    assert np.mean(lengths_s) == pytest.approx(0.5, rel=0.1)
    assert on_fraction == pytest.approx(0.25, rel=0.1)
    # packets only inside on periods, at the CBR rate there
    df = _df(generate(wl, [0], 20.0, 4))
    on_s = sum(e - s for s, e in wl.periods_us(0, 20_000_000, 4)) / 1e6
    assert df.size_bytes.sum() * 8 / on_s / 1e6 == pytest.approx(1.0, rel=0.05)


def test_gaming_frames_bitrate_and_uplink():
    wl = CloudGaming(bitrate_mbps=25.0, fps=60, gop_frames=60, input_hz=250, input_bytes=100)
    rec = UnitRecorder()
    df = _df(rec.record(generate(wl, [1], 20.0, 9)))
    frames = rec.table()
    frames = frames[frames.direction == "dl"]
    assert len(frames) == pytest.approx(20 * 60, abs=2)
    assert frames.size_bytes.mean() * 8 * 60 / 1e6 == pytest.approx(25.0, rel=0.05)
    sizes = frames.sort_values("unit_id").size_bytes.to_numpy()
    i_frames, p_frames = sizes[::60], np.delete(sizes, np.s_[::60])
    assert i_frames.mean() / p_frames.mean() == pytest.approx(wl.i_frame_ratio, rel=0.15)
    assert np.std(np.log(p_frames)) == pytest.approx(wl.p_sigma, rel=0.1)
    starts = np.sort(frames.t_first_us.to_numpy())
    assert np.median(np.diff(starts)) == pytest.approx(1e6 / 60, rel=0.05)
    assert (frames.t_first_us.to_numpy()[1:] > frames.t_last_us.to_numpy()[:-1]).all()
    assert (frames.t_last_us - frames.t_first_us).max() < 5_000
    ul = df[df.direction == "ul"]
    assert len(ul) == pytest.approx(20 * 250, abs=2) and (ul.size_bytes == 100).all()
    assert (df[df.direction == "dl"].size_bytes <= 1500).all()


def test_web_page_distributions_match_http_archive_medians():
    wl = WebBrowsing()
    rng = np.random.default_rng(0)
    pages = [wl.draw_page(rng) for _ in range(3000)]
    assert np.median([len(p) for p in pages]) == pytest.approx(70, rel=0.1)
    assert np.median([p.sum() for p in pages]) == pytest.approx(2.0e6, rel=0.15)
    assert np.median([p[0] for p in pages]) == pytest.approx(30_000, rel=0.15)


def test_web_units_recover_pages_and_think_time():
    wl = WebBrowsing(think_mean_s=2.0, objects_median=20)
    rec = UnitRecorder()
    df = _df(rec.record(generate(wl, [1, 2], 120.0, 5)))
    units = rec.table()
    dl = units[units.direction == "dl"]
    ul = units[units.direction == "ul"]
    assert len(dl) > 20 and len(ul) == len(dl)
    # every request is one ul packet: objects per page = ul packets
    assert (ul.n_packets >= 1).all()
    # the click (first uplink request) starts the page
    assert (dl.t_start_us.to_numpy() == ul.t_first_us.to_numpy()).all()
    assert (assign_units(df, units) == df.unit.to_numpy()).all()
    for ue, g in dl.groupby("ue"):
        g = g.sort_values("unit_id")
        gaps_s = (g.t_start_us.to_numpy()[1:] - g.t_last_us.to_numpy()[:-1]) / 1e6
        assert (gaps_s > 0).all()
    gaps = np.concatenate([(g.sort_values("unit_id").t_start_us.to_numpy()[1:]
                            - g.sort_values("unit_id").t_last_us.to_numpy()[:-1]) / 1e6
                           for _, g in dl.groupby("ue")])
    assert gaps.mean() == pytest.approx(2.0, rel=0.35)


def test_unit_completion_gives_page_load_times(tmp_path):
    wl = WebBrowsing(think_mean_s=1.0, objects_median=10)
    rec = UnitRecorder()
    df = _df(rec.record(generate(wl, [3], 30.0, 2)))
    units = rec.table()
    write_units_csv(tmp_path / "u.csv", units)
    units = read_units_csv(tmp_path / "u.csv")
    # a fake cell: every packet delivered 5 ms after arrival, except one dropped packet
    log = pd.DataFrame({"packet_id": np.arange(len(df)), "ue": df.ue, "direction": df.direction,
                        "size_bytes": df.size_bytes, "t_arrival_us": df.t_us,
                        "t_delivered_us": df.t_us + 5000, "dropped": False})
    victim = df[(df.direction == "dl") & (df.unit == 1)].index[0]
    log.loc[victim, "dropped"] = True
    log.loc[victim, "t_delivered_us"] = np.nan
    # the engine's delivery log: nullable Int64 times, dropped as 0/1
    log["t_delivered_us"] = log["t_delivered_us"].astype("Int64")
    log["dropped"] = log["dropped"].astype("int64")
    plt = unit_completion(log, units, "dl")
    assert len(plt) == len(units[units.direction == "dl"])
    ok = plt[plt.complete]
    assert not plt[plt.unit_id == 1].complete.iloc[0]
    expected = ok.t_last_us + 5000 - ok.t_start_us
    assert np.allclose(ok.latency_us, expected)


def test_split_bytes():
    assert split_bytes(3001, 1500) == [1500, 1500, 1]
    assert split_bytes(0) == []


# ---- CSV ----------------------------------------------------------------------

def test_csv_round_trip(tmp_path):
    packets = list(generate(SMALL["gaming"], [1, 2], 1.0, 3))
    n = write_workload_csv(tmp_path / "w.csv", packets)
    df = read_workload_csv(tmp_path / "w.csv")
    assert n == len(df) == len(packets)
    assert list(df.columns) == ["t_us", "ue", "direction", "size_bytes"]
    assert df.t_us.dtype == np.int64 and df.size_bytes.dtype == np.int64
    assert [tuple(r) for r in df.itertuples(index=False)] == [p[:4] for p in packets]
    write_workload_csv(tmp_path / "w2.csv", df.sample(frac=1.0, random_state=1))
    assert read_workload_csv(tmp_path / "w2.csv").t_us.tolist() == df.t_us.tolist()


def test_csv_unsorted_rows_are_sorted_stably_and_extra_columns_ignored(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("size_bytes,direction,t_us,ue,note\n100,dl,50,1,a\n200,ul,10,2,b\n"
                 "\n300,dl,50,3,c\n")
    df = read_workload_csv(p)
    assert df.t_us.tolist() == [10, 50, 50] and df.ue.tolist() == [2, 1, 3]


def test_csv_header_only_is_an_empty_workload(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("t_us,ue,direction,size_bytes\n")
    assert len(read_workload_csv(p)) == 0


@pytest.mark.parametrize("body, line, field, words", [
    ("0,1,dl,100\n5,x,dl,100\n", 3, "ue", "not an integer"),
    ("0,1,dl,100\n5,1,down,100\n", 3, "direction", "'dl' or 'ul'"),
    ("0,1,dl,-5\n", 2, "size_bytes", "out of range"),
    ("0,1,dl,0\n", 2, "size_bytes", "out of range"),
    ("0,1,dl,70000\n", 2, "size_bytes", "out of range"),
    ("-1,1,dl,100\n", 2, "t_us", "out of range"),
    ("1.5,1,dl,100\n", 2, "t_us", "not an integer"),
    ("0,1,dl,100\n\n7,1,dl\n", 4, None, "expected 4 fields"),
])
def test_csv_bad_rows_name_file_line_field(tmp_path, body, line, field, words):
    p = tmp_path / "bad.csv"
    p.write_text("t_us,ue,direction,size_bytes\n" + body)
    with pytest.raises(InputError) as exc:
        read_workload_csv(p)
    assert exc.value.line == line and exc.value.field == field
    assert words in str(exc.value) and "bad.csv" in str(exc.value)


def test_csv_bad_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_workload_csv(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty file"):
        read_workload_csv(tmp_path / "empty.csv")
    (tmp_path / "hdr.csv").write_text("t,ue,direction,size_bytes\n1,1,dl,1\n")
    with pytest.raises(InputError) as exc:
        read_workload_csv(tmp_path / "hdr.csv")
    assert exc.value.field == "t_us" and exc.value.line == 1
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError):
        read_workload_csv(tmp_path / "bin.csv")


def test_writer_rejects_out_of_order_iterables(tmp_path):
    from neuralemu.workloads import Packet
    with pytest.raises(ValueError, match="out of time order"):
        write_workload_csv(tmp_path / "w.csv", [Packet(5, 1, "dl", 10), Packet(4, 1, "dl", 10)])


@pytest.mark.parametrize("kind", sorted(OPEN_LOOP_KINDS))
def test_endless_streams_are_lazy(kind):
    """The API streams ue_packets(ue, ~forever, seed): nothing may be drawn up front."""
    import itertools
    import time
    t0 = time.perf_counter()
    first = list(itertools.islice(SMALL[kind].ue_packets(1, 10 ** 13, 5), 200))
    assert len(first) == 200 and time.perf_counter() - t0 < 2.0
    assert [p.t_us for p in first] == sorted(p.t_us for p in first)
