"""The stages of a fidelity evaluation, each a small function over files.

1. :func:`record_telemetry`: the truth cell (``neuralemu synth``) runs the
   phone's training mix next to the background; NeuralEmu keeps the DCI log
   (NR-Scope CSV, every user) and the phone's own UE-side log.
2. :func:`learn`: from that telemetry only, infer the carrier, train the
   scheduler (``scheduler_model``) and fit a background profile from the
   other users' DCIs (``traffic_recon``).
3. :func:`record_saturator`: the record-and-replay baseline: a saturating
   sender on the phone (Saturator-style, both directions) at another time;
   what the phone received, per millisecond, becomes Mahimahi traces.
4. :func:`record_channel`: the phone's channel (SINR per slot) during the
   evaluation runs, from its UE-side log, for the learned cell's trace channel.
5. :func:`learned_scenario`, :func:`replay_scenario`: scenarios for the two
   emulators, built from the files above and nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuralemu.errors import InputError
from neuralemu.eval.truth import Truth, truth_variant, write_scenario

SATURATOR_TRAFFIC = [{"kind": "bulk", "rate_mbps": 400.0, "direction": "dl"},
                     {"kind": "bulk", "rate_mbps": 100.0, "direction": "ul"}]
REPLAY_SINR_DB = 40.0        # the replayed user's channel: the trace, not the SINR, limits it


@dataclass
class LearnConfig:
    epochs: int = 12
    patience: int = 4
    batch_size: int = 256
    seed: int = 0
    threads: int = 1


@dataclass
class Learned:
    model: Path
    cell: dict                 # scheduler_model CellConfig as JSON (inferred from telemetry)
    fg: list[int]              # RNTIs in the UE-side log (the phone)
    profile: Path | None       # background profile, None when no other user was seen
    bg_mean_users: float
    samples: int


def record_telemetry(truth: Truth, out_dir: Path, *, seed: int, duration_s: float) -> dict:
    """Run the truth (``neuralemu synth``); return paths of dci.csv and the phone's UE log."""
    from neuralemu.commands.simulate import cmd_synth
    from neuralemu.telemetry import read_ue_log, write_ue_log
    out_dir.mkdir(parents=True, exist_ok=True)
    sc_path = write_scenario(truth_variant(truth, seed=seed, duration_s=duration_s,
                                           name=f"{truth.name}-recording"),
                             out_dir / "truth-recording.yaml")
    tel = out_dir / "telemetry"
    args = argparse.Namespace(scenario=str(sc_path), duration_s=duration_s, out=str(tel),
                              ue_log_every_slots=1, workload=None, policy=None)
    with contextlib.redirect_stderr(io.StringIO()):
        cmd_synth(args)
    log = read_ue_log(tel / "ue.csv")
    phone = log[log["ue"] == truth.fg].reset_index(drop=True)
    write_ue_log(phone, tel / "ue_phone.csv")
    (tel / "ue.csv").unlink()                   # the other users' logs are not observable
    for name in ("arrivals.csv", "deliveries.csv", "dci.parquet"):
        (tel / name).unlink(missing_ok=True)    # truth-only files: NeuralEmu must not see them
    return {"scenario": sc_path, "dci": tel / "dci.csv", "ue_log": tel / "ue_phone.csv"}


def learn(dci_path: Path, ue_log_path: Path, out_dir: Path, cfg: LearnConfig) -> Learned:
    """Train the scheduler and fit the background, from the telemetry files only."""
    from neuralemu.scheduler_model.bundle import save_bundle
    from neuralemu.scheduler_model.dataset import build_dataset, infer_cell
    from neuralemu.scheduler_model.train import TrainConfig, fit
    from neuralemu.telemetry import read_nrscope, read_ue_log
    dci = read_nrscope(dci_path)
    ue_log = read_ue_log(ue_log_path)
    fg = sorted(int(u) for u in ue_log["ue"].unique())
    cell = infer_cell(dci, ue_log, source=str(dci_path))
    data = build_dataset(dci, ue_log, cell, source=str(dci_path))
    tc = TrainConfig(epochs=cfg.epochs, patience=cfg.patience, batch_size=cfg.batch_size,
                     seed=cfg.seed, threads=cfg.threads)
    bundle = fit(data, cell, tc, sources=[str(dci_path)], log=lambda *a, **k: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = save_bundle(out_dir / "model.nemu", bundle)
    profile, mean_users = fit_background(dci, fg, out_dir, str(dci_path))
    return Learned(model=Path(model), cell=cell.to_json(), fg=fg, profile=profile,
                   bg_mean_users=mean_users, samples=len(data))


def fit_background(dci: pd.DataFrame, fg: list[int], out_dir: Path,
                   source: str) -> tuple[Path | None, float]:
    """A traffic_recon profile of every user but the phone; (None, 0) when there is none."""
    from neuralemu.traffic_recon.profile import fit_profile, save_profile
    others = dci[~dci["rnti"].isin(fg) & dci["valid"].astype(bool)]
    if others.empty:
        return None, 0.0
    profile = fit_profile([(source, dci)], exclude_rnti=fg, allow_gaps=True)
    path = out_dir / "background.json"
    save_profile(profile, path)
    return path, float(profile["population"]["concurrent_users"]["mean"])


def record_saturator(truth: Truth, out_dir: Path, *, seed: int, duration_s: float) -> dict:
    """Saturator-style recording on the truth cell: Mahimahi down/up traces of the phone."""
    from neuralemu.scenario import build_emulation
    from neuralemu.telemetry import slot_bytes_to_mahimahi, write_mahimahi
    sc = truth_variant(truth, seed=seed, duration_s=duration_s, fg_traffic=SATURATOR_TRAFFIC,
                       name=f"{truth.name}-saturator")
    write_scenario(sc, out_dir / "truth-saturator.yaml")
    emu = build_emulation(sc)
    emu.run(duration_s)
    log = emu.engine.delivery_log()
    log = log[(log["ue"] == truth.fg) & log["t_delivered_us"].notna()]
    n_ms = int(np.ceil(duration_s * 1000))
    paths = {}
    for d in ("dl", "ul"):
        rows = log[log["direction"] == d]
        ms = np.minimum(rows["t_delivered_us"].to_numpy(np.int64) // 1000, n_ms - 1)
        per_ms = np.bincount(ms, weights=rows["size_bytes"].to_numpy(np.float64),
                             minlength=n_ms).astype(np.int64)
        trace = slot_bytes_to_mahimahi(per_ms, 1000.0)
        if len(trace) == 0:
            raise InputError("saturator", f"the saturating sender got nothing through in {d}")
        path = out_dir / f"saturator.{'down' if d == 'dl' else 'up'}"
        write_mahimahi(trace, path)
        paths[d] = path
    return paths


def record_channel(truth: Truth, out_dir: Path, *, seed: int, duration_s: float) -> dict:
    """The phone's UE-side SINR per slot during the evaluation runs (traffic does not change it)."""
    from neuralemu.scenario import build_emulation
    sc = truth_variant(truth, seed=seed, duration_s=duration_s, fg_traffic=[])
    emu = build_emulation(sc, load_traffic=False)
    rows = []

    def sample(engine) -> None:
        snap = engine.ue_snapshot()
        sel = snap["ue"] == truth.fg
        for d, s in zip(snap["direction"][sel], snap["sinr_db"][sel]):
            rows.append((engine.t_us, int(d), float(s)))

    sample(emu.engine)
    emu.run(duration_s, chunk_slots=1, on_chunk=sample)
    rows.pop()
    df = pd.DataFrame(rows, columns=["t_us", "d", "sinr_db"])
    dl = df[df["d"] == 0]["sinr_db"].to_numpy()
    ul = df[df["d"] == 1]["sinr_db"].to_numpy()
    slot_us = emu.engine.slot_us
    path = out_dir / "phone_channel.csv"
    pd.DataFrame({"sinr_db": np.round(dl, 2)}).to_csv(path, index=False)
    offset = float(np.median(ul[:len(dl)] - dl[:len(ul)])) if len(ul) and len(dl) else -3.0
    return {"path": path, "step_ms": slot_us / 1000.0, "ul_offset_db": round(offset, 2)}


# ------------------------------------------------------------------ the emulators' scenarios
def engine_cell(cell: dict) -> dict:
    """An engine cell (docs/scenario.md) from the carrier that ``infer_cell`` saw in telemetry."""
    from neuralemu.nr.bandwidth import channel_bandwidths_mhz, max_prbs
    slot_us = float(cell["slot_us"])
    mu = int(round(np.log2(1000.0 / slot_us)))
    scs = 15 * 2 ** mu
    prbs = max(cell["prbs_total"].values())
    bws = [b for b in channel_bandwidths_mhz(scs) if max_prbs(b, scs) >= prbs]
    if not bws:
        raise InputError("telemetry", f"{prbs} PRBs at {scs} kHz exceed every channel bandwidth")
    types = cell["slot_types"]
    dl, ul = types.get("dl", {}), types.get("ul", {})
    period = int(cell["period_slots"])
    fdd = bool(dl) and bool(ul) and set(dl) == set(ul) and "S" not in set(dl.values()) \
        and "S" not in set(ul.values())
    out = {"numerology": mu, "bandwidth_mhz": int(bws[0]),
           "mcs_table": cell["mcs_table"].get("dl", "qam256"),
           "ul_mcs_table": cell["mcs_table"].get("ul", "qam64"),
           "max_layers": int(cell["layers"].get("dl", 1)),
           "max_layers_ul": int(cell["layers"].get("ul", 1)),
           "max_ues_per_slot": int(max(1, min(64, max(cell["max_ues"].values()))))}
    if fdd:
        out["duplex"] = "FDD"
        return out
    pattern = []
    for p in range(period):
        t_dl, t_ul = dl.get(str(p)), ul.get(str(p))
        pattern.append("S" if "S" in (t_dl, t_ul) else "U" if t_ul and not t_dl else "D")
    s = "".join(pattern)
    for n in range(1, len(s) + 1):                  # the shortest repeating pattern
        if len(s) % n == 0 and s[:n] * (len(s) // n) == s:
            s = s[:n]
            break
    out["duplex"] = s
    if "S" in s:
        p = str(s.index("S"))
        d_sym = int(cell["symbols"].get("dl", {}).get(p, 10))
        pdcch = 2
        u_sym = int(cell["symbols"].get("ul", {}).get(p, 2))
        d_all = min(14, d_sym + pdcch)
        guard = 14 - d_all - u_sym
        if guard >= 0:
            out["special_slot"] = f"{d_all}:{guard}:{u_sym}"
    return out


def learned_scenario(learned: Learned, channel: dict, *, fg: int, seed: int, duration_s: float,
                     traffic: list[dict]) -> dict:
    sc = {"name": "learned", "seed": int(seed), "duration_s": float(duration_s),
          "cell": engine_cell(learned.cell),
          "policy": {"name": "learned", "params": {"model": str(learned.model)}},
          "ues": [{"ue_id": fg, "name": "phone", "traffic": list(traffic),
                   "channel": {"model": "trace", "path": str(channel["path"]),
                               "step_ms": channel["step_ms"],
                               "ul_offset_db": channel["ul_offset_db"]}}]}
    if learned.profile is not None and learned.bg_mean_users > 0:
        sc["background"] = {"profile": str(learned.profile), "count": 0,
                            "directions": list(learned.cell["directions"])}
    return sc


def replay_scenario(traces: dict, learned_cell: dict, *, fg: int, seed: int, duration_s: float,
                    traffic: list[dict]) -> dict:
    cell = engine_cell(learned_cell)
    cell["max_ues_per_slot"] = 1
    return {"name": "replay", "seed": int(seed), "duration_s": float(duration_s), "cell": cell,
            "policy": {"name": "replay", "params": {"mahimahi_down": str(traces["dl"]),
                                                    "mahimahi_up": str(traces["ul"])}},
            "ues": [{"ue_id": fg, "name": "phone", "traffic": list(traffic),
                     "channel": {"model": "fixed", "sinr_db": REPLAY_SINR_DB, "ul_offset_db": 0.0}}]}


def learned_to_json(learned: Learned) -> dict:
    d = asdict(learned)
    d["model"] = str(learned.model)
    d["profile"] = str(learned.profile) if learned.profile else None
    return json.loads(json.dumps(d))
