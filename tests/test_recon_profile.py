"""Background profile: fit, validate on load, sample deterministically; CLI commands; bad logs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from neuralemu.cli import main
from neuralemu.errors import InputError
from neuralemu.traffic_recon.background import sample_background
from neuralemu.traffic_recon.distributions import fit_choose, sample
from neuralemu.traffic_recon.profile import fit_profile, load_profile, save_profile, validate_profile
from recon_helpers import grants_table, rr_user


def _synthetic_log(seed=0, n_users=12, duration_s=20):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t = int(rng.integers(0, duration_s * 1000 // 2))
        end = t + int(rng.integers(2000, duration_s * 1000 // 2))
        slots = []
        while t < end:
            n = int(rng.integers(1, 8))
            slots += list(range(t, t + n))
            t += n + int(rng.exponential(120)) + 7
        rows += rr_user(1000 + u, slots, tbs_bits=int(rng.choice([8000, 24000, 60000])), harq0=u,
                        mcs=int(rng.integers(3, 25)))
    return grants_table(rows)


@pytest.fixture(scope="module")
def profile():
    return fit_profile([("synthetic", _synthetic_log())])


def test_profile_round_trip_and_contents(profile, tmp_path):
    path = tmp_path / "bg.json"
    save_profile(profile, path)
    loaded = load_profile(path)
    assert loaded["version"] == 1 and loaded["format"] == "neuralemu-background-profile"
    assert loaded["population"]["sessions"] == 12
    assert abs(sum(c["share"] for c in loaded["classes"].values()) - 1) < 1e-6
    rec = loaded["classes"]["interactive"]["dl"]["burst_bytes"]
    assert rec["kind"] in ("empirical", "lognorm", "gamma", "weibull_min", "expon")
    assert "chosen_because" in rec and "ks" in rec
    ch = loaded["channel"]
    assert ch["kind"] == "mcs_markov" and len(ch["transition"]) == 28


@pytest.mark.parametrize("mutate, field", [
    (lambda p: p.update(version=99), "version"),
    (lambda p: p.update(format="x"), "format"),
    (lambda p: p["population"].pop("session_length_s"), "population.session_length_s"),
    (lambda p: p["classes"]["interactive"].update(share=2.0), "classes.interactive.share"),
    (lambda p: p["classes"]["interactive"]["dl"]["burst_bytes"].update(kind="pickle"),
     "classes.interactive.dl.burst_bytes.kind"),
    (lambda p: p["channel"]["transition"][0].__setitem__(0, 5.0), "channel.transition[0]"),
    (lambda p: p["cell"].update(slot_us=333), "cell.slot_us"),
    (lambda p: p["classes"].update(video={}), "classes"),
])
def test_profile_validation_names_the_field(profile, mutate, field):
    bad = copy.deepcopy(profile)
    mutate(bad)
    with pytest.raises(InputError) as exc:
        validate_profile(bad, "bg.json")
    assert exc.value.field == field


def test_profile_load_rejects_garbage(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_profile(p)
    p.write_text('{"format": "neuralemu-background-profile", "version": 1, "x": NaN}')
    with pytest.raises(InputError, match="non-finite"):
        load_profile(p)
    with pytest.raises(InputError, match="cannot read"):
        load_profile(tmp_path / "missing.json")


def test_background_is_deterministic_and_sized(profile):
    a = sample_background(profile, 30, seed=5)
    b = sample_background(profile, 30, seed=5)
    c = sample_background(profile, 30, seed=6)
    assert a.workload.equals(b.workload) and a.sessions.equals(b.sessions)
    assert not a.workload.equals(c.workload)
    assert (a.workload["size_bytes"] <= 1500).all() and (a.workload["t_us"] < 30e6).all()
    assert a.workload["ue"].min() >= 60000
    more = sample_background(profile, 30, seed=5, count=20)
    assert len(more.sessions) > len(a.sessions)
    ues = a.ue_configs()
    assert ues and all(u["channel"]["model"] == "trace" for u in ues)


def test_distribution_choice_by_ks():
    rng = np.random.default_rng(0)
    logn = fit_choose(rng.lognormal(6, 1, 2000))
    assert logn["kind"] == "lognorm"
    mixed = fit_choose(np.concatenate([np.full(500, 30.0), rng.lognormal(8, 0.3, 500)]))
    assert mixed["kind"] == "empirical"
    s = sample(mixed, np.random.default_rng(1), 20000)
    assert abs(np.mean(s == 30.0) - 0.5) < 0.03


def test_single_user_and_gap_of_minutes_are_refused():
    one = grants_table(rr_user(5, range(0, 3000, 3)))
    with pytest.raises(InputError, match="only 1 user"):
        fit_profile([("one.csv", one)])
    rows = rr_user(1, range(0, 2000, 4)) + rr_user(2, range(200_000, 202_000, 4), harq0=3)
    gap = grants_table(rows)
    with pytest.raises(InputError, match="3.3-minute gap"):
        fit_profile([("gap.csv", gap)])
    p = fit_profile([("gap.csv", gap)], allow_gaps=True)
    assert p["population"]["duration_s"] < 10


def test_cli_reconstruct_and_sample(tmp_path, capsys):
    log = _synthetic_log(1)
    csv = tmp_path / "dci.csv"
    log.to_csv(csv, index=False)
    prof = tmp_path / "bg.json"
    png = tmp_path / "report.png"
    assert main(["reconstruct", "--dci", str(csv), "--out", str(prof), "--report", str(png),
                 "--exclude-rnti", "1003"]) == 0
    assert png.stat().st_size > 10_000
    assert json.loads(prof.read_text())["population"]["sessions"] == 11
    w = tmp_path / "w.csv"
    assert main(["background", "sample", str(prof), "--duration-s", "10", "--out", str(w), "--seed", "3"]) == 0
    lines = w.read_text().splitlines()
    assert lines[0] == "t_us,ue,direction,size_bytes" and len(lines) > 1


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "neuralemu-background-profile", "version": 7}')
    assert main(["background", "sample", str(bad), "--duration-s", "1", "--out", str(tmp_path / "w.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unsupported profile version" in err[0]
    log = grants_table(rr_user(1, range(10)))
    log["valid"] = False
    csv = tmp_path / "invalid.csv"
    log.to_csv(csv, index=False)
    assert main(["reconstruct", "--dci", str(csv), "--out", str(tmp_path / "x.json")]) == 2
    assert "invalid decodes" in capsys.readouterr().err
