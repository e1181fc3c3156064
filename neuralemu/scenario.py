"""Scenarios: THE single place where a scenario becomes a running emulation.

A scenario (YAML or JSON; docs/scenario.md) names the cell, the users (channel,
queue, priority, traffic), the policy, background users, the duration and the
seed. :func:`load_scenario` reads and validates it (pydantic, extra fields
forbidden; every error is an :class:`InputError` naming the field path, e.g.
``ues[1].channel.sinr_db``), and :func:`build_emulation` turns it into an
:class:`Emulation`: the engine with its policy, users, open-loop traffic and
background loaded, plus the closed-loop sources to drive. The CLI, the API and
evaluation all call :func:`build_emulation`; none builds an engine itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from neuralemu.cell import CellConfig, Engine, UeConfig, make_policy
from neuralemu.errors import InputError

CHANNEL_TAGS = ("fixed", "stochastic", "trace")
# Policies that plug into the engine from outside ``cell``: the module that registers each.
# Imported by name the first time a scenario asks for one (cell never imports them).
PLUGIN_POLICIES = {"replay": "neuralemu.replay", "learned": "neuralemu.scheduler_model.policy"}
CLOSED_LOOP = ("gcc", "tcp")
BACKGROUND_UE_BASE = 60000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrafficSpec(_Strict):
    """Built-in traffic of one user: ``kind`` plus that workload's parameters.

    Open loop (neuralemu.workloads): ``bulk``, ``cbr``, ``onoff``, ``gaming``, ``web``;
    closed loop: ``gcc`` (WebRTC-like), ``tcp``. Parameters are checked by
    neuralemu.workloads when the scenario is loaded.
    """

    model_config = ConfigDict(extra="allow")
    kind: str


class UeSpec(UeConfig):
    """A scenario user: the engine's :class:`UeConfig` plus name, IP and traffic."""

    name: str | None = None
    ip: str | None = None
    traffic: list[TrafficSpec] = Field(default_factory=list)

    @field_validator("traffic", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return [v]
        return v

    def engine_config(self) -> UeConfig:
        return UeConfig.model_validate(self.model_dump(include=set(UeConfig.model_fields)))


class PolicySpec(_Strict):
    name: str = "pf"
    params: dict[str, Any] = Field(default_factory=dict)


class BackgroundSpec(_Strict):
    """Users you do not control. With ``profile`` (a traffic_recon JSON), sessions, traffic and
    channels are sampled from it; without, ``count`` CBR users at ``rate_mbps`` each."""

    count: float = Field(0, ge=0, le=4000)
    profile: str | None = None
    rate_mbps: float = Field(2.0, ge=0.0, le=10_000.0)
    sinr_db: float = Field(15.0, ge=-20.0, le=50.0)
    directions: list[Literal["dl", "ul"]] = Field(default_factory=lambda: ["dl"])
    ue_base: int = Field(BACKGROUND_UE_BASE, ge=1, le=65519)


class Scenario(_Strict):
    name: str = "scenario"
    cell: CellConfig = Field(default_factory=CellConfig)
    ues: list[UeSpec] = Field(default_factory=list)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    background: BackgroundSpec = Field(default_factory=BackgroundSpec)
    duration_s: float = Field(10.0, gt=0.0, le=86_400.0 * 30)
    seed: int = Field(0, ge=0)

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _unique_ids(self) -> "Scenario":
        seen = set()
        for i, ue in enumerate(self.ues):
            if ue.ue_id in seen:
                raise ValueError(f"ues[{i}].ue_id {ue.ue_id} appears twice")
            seen.add(ue.ue_id)
        return self


# ------------------------------------------------------------------------------ loading
def _field_path(loc: tuple) -> str:
    out = ""
    prev = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif prev == "channel" and part in CHANNEL_TAGS:
            pass      # the discriminated-union tag pydantic inserts
        elif part.startswith("function-") or part in ("list[...]",):
            pass
        else:
            out += ("." if out else "") + part
        prev = part
    return out


def validation_error(exc: ValidationError, source: str) -> InputError:
    err = exc.errors()[0]
    path = _field_path(tuple(err.get("loc", ())))
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"
    return InputError(source, msg, field=path or None)


def parse_scenario(data: Any, source: str = "scenario", base_dir: Path | None = None) -> Scenario:
    """Validate a scenario mapping; relative file paths resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise InputError(source, "a scenario must be a mapping (YAML/JSON object)")
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source) from None
    if base_dir is not None:
        for ue in sc.ues:
            path = getattr(ue.channel, "path", None)
            if path and not Path(path).is_absolute():
                ue.channel.path = str(base_dir / path)
        if sc.background.profile and not Path(sc.background.profile).is_absolute():
            sc.background.profile = str(base_dir / sc.background.profile)
    _check_traffic(sc, source)
    return sc


def load_scenario(path: str | Path) -> Scenario:
    """Read a YAML or JSON scenario file; InputError (file, line, field) when it is bad."""
    import yaml
    p = Path(path)
    source = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, f"cannot read: {exc}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(source, f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
                         line=line) from None
    return parse_scenario(data, source, base_dir=p.parent)


def _check_traffic(sc: Scenario, source: str) -> None:
    from neuralemu.workloads import make_closed_loop, make_open_loop
    for i, ue in enumerate(sc.ues):
        for j, t in enumerate(ue.traffic):
            params = t.model_dump()
            kind = params.pop("kind")
            where = f"ues[{i}].traffic[{j}]"
            try:
                if kind in CLOSED_LOOP:
                    make_closed_loop({"kind": kind, "ue": ue.ue_id, **params}, seed=sc.seed,
                                     source=source)
                else:
                    make_open_loop(kind, params, source=source)
            except InputError as exc:
                raise InputError(source, exc.message,
                                 field=where + ("." + exc.field if exc.field else "")) from None


# ------------------------------------------------------------------------------ building
@dataclass
class Emulation:
    """A scenario made runnable: the engine (users, policy, open-loop arrivals loaded) and the
    closed-loop sources that :meth:`run` drives."""

    scenario: Scenario
    engine: Engine
    sources: list = field(default_factory=list)
    background_sources: list = field(default_factory=list)
    arrivals: pd.DataFrame | None = None     # open-loop arrivals loaded (workload CSV columns)
    background_ues: list[int] = field(default_factory=list)
    background_arrivals: pd.DataFrame | None = None   # attach_background: not loaded

    def run(self, duration_s: float | None = None, *, show_progress: bool = False,
            chunk_slots: int = 2000, on_chunk=None) -> None:
        """Run the emulation offline for ``duration_s`` (default the scenario's)."""
        from neuralemu.progress import progress
        duration = self.scenario.duration_s if duration_s is None else float(duration_s)
        eng = self.engine
        end_slot = eng.slot + int(round(duration * 1e6 / eng.slot_us))
        sources = list(self.sources) + list(self.background_sources)
        bar = (progress(total=end_slot - eng.slot, desc="emulating", unit="slot")
               if show_progress else None)
        while eng.slot < end_slot:
            n = min(chunk_slots, end_slot - eng.slot)
            eng.run(n, sources=sources)
            if on_chunk is not None:
                on_chunk(eng)
            if bar is not None:
                bar.update(n)
        if bar is not None:
            bar.close()


def _background(sc: Scenario, duration_s: float) -> tuple[list[UeConfig], pd.DataFrame]:
    bg = sc.background
    if bg.count <= 0 and not bg.profile:
        return [], pd.DataFrame(columns=["t_us", "ue", "direction", "size_bytes"])
    if bg.profile:
        from neuralemu.traffic_recon.background import sample_background
        from neuralemu.traffic_recon.profile import load_profile
        profile = load_profile(bg.profile)
        sample = sample_background(profile, duration_s, seed=sc.seed,
                                   count=bg.count if bg.count > 0 else None,
                                   ue_base=bg.ue_base, directions=tuple(bg.directions))
        cfgs = [UeConfig.model_validate(c) for c in
                sample.ue_configs(mcs_table=sc.cell.mcs_table)]
        return cfgs, sample.workload
    from neuralemu.workloads import Cbr, generate
    n = int(round(bg.count))
    ids = list(range(bg.ue_base, bg.ue_base + n))
    if ids and ids[-1] > 65519:
        raise InputError("scenario", "background ids run past the C-RNTI range", field="background.count")
    cfgs = [UeConfig(ue_id=i, directions=list(bg.directions),
                     channel={"model": "fixed", "sinr_db": bg.sinr_db}) for i in ids]
    frames = []
    for d in bg.directions:
        wl = Cbr(rate_mbps=bg.rate_mbps, direction=d) if bg.rate_mbps > 0 else None
        if wl is not None:
            frames.append(_packets_frame(generate(wl, ids, duration_s, sc.seed + 7)))
    df = pd.concat(frames, ignore_index=True) if frames else _packets_frame([])
    return cfgs, df


def _packets_frame(packets) -> pd.DataFrame:
    rows = [tuple(p)[:4] for p in packets]
    return pd.DataFrame(rows, columns=["t_us", "ue", "direction", "size_bytes"])


def scenario_policy(name: str, **params: Any):
    """``make_policy(name, **params)``, importing a plug-in policy's module first
    (:data:`PLUGIN_POLICIES`) if it has not registered yet."""
    from neuralemu.cell import policy_names
    if name not in policy_names() and name in PLUGIN_POLICIES:
        import importlib
        importlib.import_module(PLUGIN_POLICIES[name])
    return make_policy(name, **params)


def build_emulation(scenario: Scenario | dict | str | Path, *, workload: pd.DataFrame | None = None,
                    duration_s: float | None = None, record_dci: bool = False,
                    keep_log: bool = True, load_traffic: bool = True,
                    attach_background: bool = False) -> Emulation:
    """Turn a scenario into an :class:`Emulation` (engine + policy + traffic + background).

    ``scenario``: a :class:`Scenario`, a mapping, or a YAML/JSON file path.
    ``workload``: extra open-loop arrivals (workload CSV columns). ``load_traffic``:
    also generate the users' built-in open-loop traffic for ``duration_s``
    (default the scenario's) and the background. ``attach_background`` (with
    ``load_traffic=False``: the live datapath) adds the background users to the engine and
    returns their arrivals in ``Emulation.background_arrivals`` without loading them.
    """
    if isinstance(scenario, (str, Path)):
        sc = load_scenario(scenario)
    elif isinstance(scenario, Scenario):
        sc = scenario
    else:
        sc = parse_scenario(scenario)
    duration = sc.duration_s if duration_s is None else float(duration_s)
    policy = scenario_policy(sc.policy.name, **sc.policy.params)
    engine = Engine(sc.cell, [ue.engine_config() for ue in sc.ues], policy, seed=sc.seed,
                    record_dci=record_dci, keep_log=keep_log)
    emu = Emulation(scenario=sc, engine=engine)
    frames = []
    if workload is not None and len(workload):
        frames.append(workload[["t_us", "ue", "direction", "size_bytes"]])
    if load_traffic:
        from neuralemu.workloads import generate, make_closed_loop, make_open_loop
        for ue in sc.ues:
            for t in ue.traffic:
                params = t.model_dump()
                kind = params.pop("kind")
                if kind in CLOSED_LOOP:
                    emu.sources.append(make_closed_loop({"kind": kind, "ue": ue.ue_id, **params},
                                                        seed=sc.seed))
                else:
                    wl = make_open_loop(kind, params)
                    frames.append(_packets_frame(generate(wl, [ue.ue_id], duration, sc.seed)))
        bg_cfgs, bg_wl = _background(sc, duration)
        for cfg in bg_cfgs:
            if cfg.ue_id in engine._ue_index:
                raise InputError("scenario", f"background user {cfg.ue_id} collides with a user",
                                 field="background.ue_base")
            engine.add_ue(cfg)
            emu.background_ues.append(cfg.ue_id)
        if len(bg_wl):
            frames.append(bg_wl[["t_us", "ue", "direction", "size_bytes"]])
    elif attach_background:
        bg_cfgs, bg_wl = _background(sc, duration)
        for cfg in bg_cfgs:
            if cfg.ue_id in engine._ue_index:
                raise InputError("scenario", f"background user {cfg.ue_id} collides with a user",
                                 field="background.ue_base")
            engine.add_ue(cfg)
            emu.background_ues.append(cfg.ue_id)
        emu.background_arrivals = bg_wl
    if frames:
        arr = pd.concat(frames, ignore_index=True)
        arr = arr.astype({"t_us": np.int64, "ue": np.int64, "size_bytes": np.int64})
        known = set(engine.ue_ids)
        unknown = sorted(set(arr["ue"].tolist()) - known)
        if unknown:
            raise InputError("workload", f"user {unknown[0]} is not in the scenario", field="ue")
        engine.load_arrivals(arr["t_us"].to_numpy(), arr["ue"].to_numpy(),
                             arr["direction"].to_numpy(dtype=object),
                             arr["size_bytes"].to_numpy())
        emu.arrivals = arr
    return emu
