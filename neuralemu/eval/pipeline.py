"""``neuralemu eval``: the fidelity evaluation, stage by stage (docs/evaluation.md).

truth telemetry -> learned model + background profile; saturator -> Mahimahi
traces; then every test workload on truth, learned and replay with the same
seed; errors per workload; the report. Every stage writes its files under
``out/work/`` so a run can be inspected, and the report lists the commands
that reproduce it.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from neuralemu.errors import InputError
from neuralemu.eval import runs as R
from neuralemu.eval import stages as S
from neuralemu.eval.metrics import error_ratio, passes
from neuralemu.eval.truth import load_truth
from neuralemu.progress import progress

SYSTEMS = ("truth", "learned", "replay")


@dataclass
class EvalConfig:
    seed: int = 1
    record_s: float = 60.0        # truth telemetry for training and background fitting
    saturator_s: float = 30.0     # the record-and-replay recording
    workload_s: float = 20.0      # each test workload
    learn: S.LearnConfig = field(default_factory=S.LearnConfig)
    workloads: tuple[str, ...] = R.WORKLOADS

    @classmethod
    def quick(cls, seed: int = 1) -> "EvalConfig":
        return cls(seed=seed, record_s=20.0, saturator_s=10.0, workload_s=6.0,
                   learn=S.LearnConfig(epochs=6, patience=3, seed=seed))


def _plugins() -> None:
    """Register the learned and replay policies with the engine (cell never imports them)."""
    import neuralemu.replay  # noqa: F401
    import neuralemu.scheduler_model.policy  # noqa: F401


def run_eval(truth_path: str | Path, out_dir: str | Path, *, cfg: EvalConfig | None = None,
             background: int | None = None, command: str | None = None) -> dict:
    """Run the whole evaluation; write ``out_dir/index.html``, ``results.json``, ``errors.csv``."""
    from neuralemu.scenario import build_emulation
    cfg = cfg or EvalConfig()
    _plugins()
    truth = load_truth(truth_path, background)
    out = Path(out_dir)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.seed)
    # Three different times of day: recording, saturator, evaluation (other background, same cell).
    seeds = {"record": seed, "saturator": seed + 1000, "eval": seed + 2000}
    timings: dict[str, float] = {}
    stages = ["record telemetry", "learn", "saturator", "phone channel"] + \
        [f"{w}:{s}" for w in cfg.workloads for s in SYSTEMS]
    bar = progress(total=len(stages), desc="eval", unit="stage")

    def stage(name):
        bar.set_description(f"eval: {name}")
        return time.monotonic()

    def done(name, t0):
        timings[name] = round(time.monotonic() - t0, 2)
        bar.update(1)

    t0 = stage("record telemetry")
    tel = S.record_telemetry(truth, work, seed=seeds["record"], duration_s=cfg.record_s)
    done("record telemetry", t0)
    t0 = stage("learn")
    learn_cfg = S.LearnConfig(**{**asdict(cfg.learn), "seed": seed})
    learned = S.learn(tel["dci"], tel["ue_log"], work / "learned", learn_cfg)
    done("learn", t0)
    t0 = stage("saturator")
    traces = S.record_saturator(truth, work, seed=seeds["saturator"], duration_s=cfg.saturator_s)
    done("saturator", t0)
    t0 = stage("phone channel")
    eval_s = cfg.workload_s + 6.0
    channel = S.record_channel(truth, work, seed=seeds["eval"], duration_s=eval_s)
    done("phone channel", t0)

    fg = truth.fg

    def maker(system: str):
        def make(traffic, workload):
            if system == "truth":
                from neuralemu.eval.truth import truth_variant
                sc = truth_variant(truth, seed=seeds["eval"], fg_traffic=traffic, duration_s=eval_s)
            elif system == "learned":
                sc = S.learned_scenario(learned, channel, fg=fg, seed=seeds["eval"],
                                        duration_s=eval_s, traffic=traffic)
            else:
                sc = S.replay_scenario(traces, learned.cell, fg=fg, seed=seeds["eval"],
                                       duration_s=eval_s, traffic=traffic)
            return build_emulation(sc, workload=workload, duration_s=eval_s)
        return make

    results: dict[str, dict[str, R.RunResult]] = {}
    for w in cfg.workloads:
        results[w] = {}
        for system in SYSTEMS:
            t0 = stage(f"{w}:{system}")
            results[w][system] = R.RUNNERS[w](maker(system), fg, cfg.workload_s, seeds["eval"])
            done(f"{w}:{system}", t0)
    bar.close()

    rows = []
    for w in cfg.workloads:
        res = results[w]
        le = R.error_of(w, res["truth"], res["learned"])
        re = R.error_of(w, res["truth"], res["replay"])
        rows.append({"workload": w, "metric": METRIC_NAMES[w],
                     "learned_error": _r(le["error"]), "replay_error": _r(re["error"]),
                     "learned_over_replay": _r(error_ratio(le["error"], re["error"])),
                     "pass": bool(passes(le["error"], re["error"])),
                     "learned_detail": {k: _r(v) for k, v in le.items() if k != "error"},
                     "replay_detail": {k: _r(v) for k, v in re.items() if k != "error"}})
    table = pd.DataFrame([{k: v for k, v in r.items() if not k.endswith("detail")} for r in rows])
    table.to_csv(out / "errors.csv", index=False)
    summary = {
        "truth": str(truth.path), "truth_policy": truth.policy_name, "background_users": len(truth.bg_ids),
        "seed": seed, "config": _cfg_json(cfg), "rows": rows,
        "learned": S.learned_to_json(learned), "timings_s": timings,
        "commands": reproduce_commands(truth_path, out, cfg, background, command, tel, learned),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    from neuralemu.eval.report import write_report
    write_report(out, summary, results)
    return summary


METRIC_NAMES = {"gaming": "packet delay W1 / truth mean delay",
                "webrtc": "encoder bitrate MAPE (100 ms grid)",
                "web": "page load time: mean of median and p95 relative errors",
                "bulk": "TCP throughput relative error"}


def _r(x):
    if isinstance(x, (float, np.floating)):
        return float(round(float(x), 6)) if np.isfinite(x) else float(x)
    return x


def _cfg_json(cfg: EvalConfig) -> dict:
    d = asdict(cfg)
    d["workloads"] = list(cfg.workloads)
    return d


def reproduce_commands(truth_path, out: Path, cfg: EvalConfig, background, command, tel,
                       learned: S.Learned) -> list[str]:
    q = shlex.quote
    cmds = [command or f"neuralemu eval --truth-scenario {q(str(truth_path))} --out {q(str(out))} "
                       f"--seed {cfg.seed}" + (f" --background {background}" if background is not None else "")]
    cmds.append(f"neuralemu synth --scenario {q(str(tel['scenario']))} --duration-s {cfg.record_s:g} "
                f"--out {q(str(Path(tel['dci']).parent))}   # truth telemetry (then keep only the phone's UE log)")
    cmds.append(f"neuralemu train --dci {q(str(tel['dci']))} --ue-log {q(str(tel['ue_log']))} "
                f"--out {q(str(learned.model))} --epochs {cfg.learn.epochs} --seed {cfg.seed}")
    if learned.profile:
        cmds.append(f"neuralemu reconstruct {q(str(tel['dci']))} --exclude-rnti "
                    f"{','.join(map(str, learned.fg))} --profile-out {q(str(learned.profile))}")
    return cmds


def check_config(cfg: EvalConfig) -> None:
    for name in ("record_s", "saturator_s", "workload_s"):
        if not getattr(cfg, name) > 0:
            raise InputError(f"--{name.replace('_', '-')}", "must be > 0")
    bad = [w for w in cfg.workloads if w not in R.WORKLOADS]
    if bad:
        raise InputError("--workloads", f"unknown workload {bad[0]!r}; known: {', '.join(R.WORKLOADS)}")
