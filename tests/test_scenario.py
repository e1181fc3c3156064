"""Scenario files: validation with field paths, examples, build_emulation."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuralemu.errors import InputError
from neuralemu.scenario import Scenario, build_emulation, load_scenario, parse_scenario

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "traces" / "scenarios").glob("*.yaml"))


def test_examples_load_and_run():
    assert len(EXAMPLES) >= 3
    for path in EXAMPLES:
        sc = load_scenario(path)
        emu = build_emulation(sc, duration_s=0.2)
        emu.run(0.2)
        st = emu.engine.stats()
        assert sum(v["dl"]["bytes_out"] + v["ul"]["bytes_out"] for v in st.values()) > 0, path


def test_example_cells():
    cells = {p.stem: load_scenario(p).cell for p in EXAMPLES}
    assert cells["fdd20_15khz"].prbs == 106 and cells["fdd20_15khz"].is_fdd
    assert cells["tdd100_30khz_dddsu"].prbs == 273 and cells["tdd100_30khz_dddsu"].duplex == "DDDSU"
    sc = load_scenario(EXAMPLES[[p.stem for p in EXAMPLES].index("multi_ue_background")])
    emu = build_emulation(sc, duration_s=0.1)
    assert len(emu.background_ues) == 8 and len(emu.engine.ue_ids) == 11


@pytest.mark.parametrize("data, field", [
    ({"ues": [{"ue_id": 1}, {"ue_id": 2, "channel": {"model": "fixed", "sinr_db": 99}}]},
     "ues[1].channel.sinr_db"),
    ({"ues": [{"ue_id": 1, "bogus": 3}]}, "ues[0].bogus"),
    ({"cell": {"bandwidth_mhz": 100, "numerology": 0}}, "cell"),
    ({"cell": {"duplex": "DDXU"}}, "cell.duplex"),
    ({"policy": {"name": "pf", "params": {}, "extra": 1}}, "policy.extra"),
    ({"ues": [{"ue_id": 1, "traffic": {"kind": "cbr", "rate_mbps": "fast"}}]},
     "ues[0].traffic[0]"),
    ({"ues": [{"ue_id": 1, "traffic": {"kind": "nope"}}]}, "ues[0].traffic[0].kind"),
    ({"duration_s": -1}, "duration_s"),
    ({"ues": [{"ue_id": 1, "channel": {"model": "trace"}}]}, "ues[0].channel"),
])
def test_errors_name_the_field_path(data, field):
    with pytest.raises(InputError) as ei:
        parse_scenario(data, "s.yaml")
    assert ei.value.field is not None and ei.value.field.startswith(field), ei.value


def test_duplicate_ue_and_unknown_policy():
    with pytest.raises(InputError):
        parse_scenario({"ues": [{"ue_id": 1}, {"ue_id": 1}]})
    sc = parse_scenario({"policy": "nope", "ues": [{"ue_id": 1}]})
    with pytest.raises(InputError):
        build_emulation(sc)


def test_yaml_syntax_error_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("cell:\n  numerology: 1\n ues: [\n")
    with pytest.raises(InputError) as ei:
        load_scenario(p)
    assert ei.value.line is not None
    with pytest.raises(InputError):
        load_scenario(tmp_path / "missing.yaml")


def test_relative_trace_path_resolves_next_to_the_scenario(tmp_path):
    (tmp_path / "ch.csv").write_text("sinr_db\n10\n20\n")
    (tmp_path / "s.yaml").write_text(
        "ues:\n  - ue_id: 5\n    channel: {model: trace, path: ch.csv, step_ms: 2}\n")
    sc = load_scenario(tmp_path / "s.yaml")
    emu = build_emulation(sc, duration_s=0.01)
    emu.run(0.01)
    assert 5 in emu.engine.stats()


def test_closed_loop_traffic_becomes_a_source():
    sc = parse_scenario({"cell": {"numerology": 0, "bandwidth_mhz": 20, "duplex": "FDD"},
                         "ues": [{"ue_id": 1, "traffic": {"kind": "gcc", "direction": "dl"}}],
                         "duration_s": 0.5})
    emu = build_emulation(sc)
    assert len(emu.sources) == 1
    emu.run(0.5)
    assert emu.engine.stats()[1]["dl"]["bytes_out"] > 0


def test_schema_is_json_schema_exportable():
    schema = Scenario.model_json_schema()
    assert "cell" in schema["properties"] and "ues" in schema["properties"]


def test_build_emulation_accepts_a_path():
    emu = build_emulation(str(EXAMPLES[0]), duration_s=0.05)
    emu.run(0.05)
    assert emu.engine.slot == int(0.05 * 1e6 / emu.engine.slot_us)


@pytest.mark.slow
def test_background_from_a_recon_profile(tmp_path):
    from neuralemu.cli import main
    excerpt = Path(__file__).resolve().parents[1] / "traces" / "nrscope" / "t_mobile2_morning_2_excerpt.csv"
    prof = tmp_path / "bg.json"
    assert main(["reconstruct", "--dci", str(excerpt), "--out", str(prof), "--allow-gaps"]) == 0
    (tmp_path / "s.yaml").write_text(
        "cell: {numerology: 0, bandwidth_mhz: 20, duplex: FDD}\n"
        "ues: [{ue_id: 1}]\nduration_s: 2\nseed: 3\n"
        "background: {profile: bg.json, count: 5}\n")
    sc = load_scenario(tmp_path / "s.yaml")
    emu = build_emulation(sc)
    assert emu.background_ues and all(u >= 60000 for u in emu.background_ues)
    assert emu.arrivals is not None and len(emu.arrivals) > 0
    emu.run()
    st = emu.engine.stats()
    assert sum(st[u]["dl"]["bytes_out"] + st[u]["ul"]["bytes_out"] for u in emu.background_ues) > 0
