"""The truth cell of an evaluation, and the scenarios derived from it.

A truth scenario (``traces/scenarios/eval-*.yaml``) is an ordinary scenario
(docs/scenario.md) read with one convention: ``ues[0]`` is the user under
test, the phone the experimenter controls; every other user, and the
scenario's ``background`` section, is background traffic that the experimenter
neither controls nor logs. ``ues[0].traffic`` is what the phone runs while
telemetry is recorded (the training mix); the evaluation replaces it with each
test workload.

The evaluation never reads the truth's cell, channel or policy configuration
for the emulated runs: only :mod:`neuralemu.eval.stages` runs the truth, and
what it hands on is telemetry (NR-Scope CSV, UE-side log, Mahimahi traces).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuralemu.errors import InputError


@dataclass
class Truth:
    path: Path
    data: dict            # the validated scenario, as a plain mapping (absolute paths)
    fg: int               # the user under test (ues[0])
    bg_ids: list[int]     # background users listed in ``ues``

    @property
    def name(self) -> str:
        return str(self.data.get("name") or self.path.stem)

    @property
    def policy_name(self) -> str:
        return str(self.data["policy"]["name"])


def load_truth(path: str | Path, background: int | None = None) -> Truth:
    """Load a truth scenario; ``background``: keep only the first N background users (0: none)."""
    from neuralemu.scenario import load_scenario
    p = Path(path)
    sc = load_scenario(p)
    if not sc.ues:
        raise InputError(str(p), "a truth scenario needs at least one user: ues[0] is the user "
                         "under test", field="ues")
    data = sc.model_dump(mode="json")
    bg = data["ues"][1:]
    if background is not None:
        if background < 0:
            raise InputError("--background", f"must be >= 0, got {background}")
        if background > len(bg):
            raise InputError(str(p), f"--background {background} asks for more background users "
                             f"than the scenario lists ({len(bg)})", field="ues")
        data["ues"] = data["ues"][:1] + bg[:background]
        if background == 0:
            data["background"]["count"] = 0
            data["background"]["profile"] = None
        bg = bg[:background]
    return Truth(path=p, data=data, fg=int(data["ues"][0]["ue_id"]),
                 bg_ids=[int(u["ue_id"]) for u in bg])


def truth_variant(truth: Truth, *, seed: int, fg_traffic: list[dict] | None = None,
                  duration_s: float | None = None, name: str | None = None) -> dict:
    """The truth scenario at another seed (another time of day), with the phone's traffic replaced."""
    import copy
    d = copy.deepcopy(truth.data)
    d["seed"] = int(seed)
    if duration_s is not None:
        d["duration_s"] = float(duration_s)
    if fg_traffic is not None:
        d["ues"][0]["traffic"] = list(fg_traffic)
    if name:
        d["name"] = name
    return d


def write_scenario(data: dict, path: str | Path) -> Path:
    """Write a scenario mapping as YAML (for the record, and for ``neuralemu synth``)."""
    import yaml
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    clean = _drop_none(data)
    p.write_text(yaml.safe_dump(clean, sort_keys=False, width=100))
    return p


def _drop_none(x):
    if isinstance(x, dict):
        return {k: _drop_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_drop_none(v) for v in x]
    return x
