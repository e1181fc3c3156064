"""The background-traffic profile: fitted from DCI logs, saved as versioned JSON.

A profile describes a cell's *uncontrolled* users well enough to generate
statistically similar ones (:mod:`.background`):

* ``population``: session (RNTI lifetime) arrivals, session lengths, and the
  number of concurrently active users;
* ``classes``: per traffic class, its share of sessions and, per direction, the
  chance a session uses that direction, the burst-size distribution and the
  inter-burst gap distribution (start to start); each distribution records
  whether a parametric fit or the empirical quantiles were kept, by KS
  (:mod:`.distributions`);
* ``channel``: an MCS Markov chain (:mod:`.channel`);
* ``observation``: how much of the cell the decoder saw (detection ratio per
  direction, share of undecodable DCIs), so emulated telemetry can be thinned
  the same way before it is compared with real logs.

Loading validates every field and raises :class:`InputError`; nothing in the
file is executed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from neuralemu.errors import InputError
from neuralemu.traffic_recon import distributions as dist
from neuralemu.traffic_recon.channel import fit_mcs_markov, validate_mcs_markov
from neuralemu.traffic_recon.classify import CLASSES
from neuralemu.traffic_recon.inversion import ReconParams, Reconstruction, reconstruct

FORMAT = "neuralemu-background-profile"
VERSION = 1
DEFAULT_MAX_SILENCE_S = 30.0


def _silences(rec: Reconstruction, max_silence_s: float) -> list[tuple[float, float]]:
    """Cell-wide silences (no grant of anyone) longer than ``max_silence_s``, in us."""
    t = np.sort(rec.grants["t_us"].to_numpy(np.float64))
    gaps = np.diff(t)
    idx = np.flatnonzero(gaps > max_silence_s * 1e6)
    return [(float(t[i]), float(t[i + 1])) for i in idx]


def _sessions(rec: Reconstruction, silences: list[tuple[float, float]]) -> pd.DataFrame:
    """One session per RNTI (split at recording gaps): start, end, class."""
    g = rec.grants
    seg = np.zeros(len(g), dtype=np.int64)
    for a, _b in silences:
        seg += (g["t_us"].to_numpy() > a).astype(np.int64)
    key = pd.DataFrame({"rnti": g["rnti"].to_numpy(), "seg": seg, "t_us": g["t_us"].to_numpy()})
    s = key.groupby(["rnti", "seg"]).agg(start_us=("t_us", "min"), end_us=("t_us", "max")).reset_index()
    s["length_s"] = (s["end_us"] - s["start_us"] + rec.slot_us) / 1e6
    u = rec.users.set_index(["rnti", "direction"])["traffic_class"]
    dl = u.xs("dl", level="direction") if "dl" in u.index.get_level_values(1) else pd.Series(dtype=object)
    ul = u.xs("ul", level="direction") if "ul" in u.index.get_level_values(1) else pd.Series(dtype=object)
    s["traffic_class"] = s["rnti"].map(dl).fillna(s["rnti"].map(ul)).fillna("signalling")
    s["has_dl"] = s["rnti"].isin(dl.index)
    s["has_ul"] = s["rnti"].isin(ul.index)
    return s


def _concurrency(sessions: pd.DataFrame, t0: float, t1: float, step_us: float = 1e6) -> np.ndarray:
    grid = np.arange(t0, t1, step_us)
    if len(grid) == 0:
        return np.zeros(0)
    st = np.sort(sessions["start_us"].to_numpy())
    en = np.sort(sessions["end_us"].to_numpy())
    return (np.searchsorted(st, grid, side="right") - np.searchsorted(en, grid, side="left")).astype(float)


def fit_profile(logs: list[tuple[str, pd.DataFrame]], *, params: ReconParams | None = None,
                exclude_rnti=(), max_silence_s: float = DEFAULT_MAX_SILENCE_S,
                allow_gaps: bool = False, seed: int = 0) -> dict:
    """Fit a profile from one or more canonical DCI tables ``[(source, table), ...]``."""
    if not logs:
        raise InputError("reconstruct", "no DCI logs given")
    recs: list[tuple[str, Reconstruction]] = []
    for source, table in logs:
        recs.append((source, reconstruct(table, params, exclude_rnti=exclude_rnti, source=source)))
    slot_us = recs[0][1].slot_us
    for source, r in recs[1:]:
        if r.slot_us != slot_us:
            raise InputError(source, f"slot duration {r.slot_us} us differs from {slot_us} us of "
                             f"{recs[0][0]}; fit one cell (one numerology) per profile")

    all_sessions, burst_rows, grants_all, sources = [], [], [], []
    iat, conc = [], []
    total_s = 0.0
    det = {"dl": [0, 0], "ul": [0, 0]}
    invalid, rows = 0, 0
    for source, r in recs:
        sil = _silences(r, max_silence_s)
        if sil and not allow_gaps:
            a, b = max(sil, key=lambda ab: ab[1] - ab[0])
            raise InputError(source, f"the log has a {(b - a) / 60e6:.1f}-minute gap with no DCI at all "
                             f"(t={a / 1e6:.1f}s to {b / 1e6:.1f}s); the decoder probably lost the cell. "
                             "Split the log there, or pass --allow-gaps to leave gaps out of the fit")
        t0 = float(r.grants["t_us"].min())
        t1 = float(r.grants["t_us"].max()) + r.slot_us
        dur_s = (t1 - t0 - sum(b - a for a, b in sil)) / 1e6
        total_s += dur_s
        ses = _sessions(r, sil)
        ses["source"] = source
        all_sessions.append(ses)
        st = np.sort(ses["start_us"].to_numpy())
        d_st = np.diff(st)
        spans_gap = np.zeros(len(d_st), dtype=bool)
        for a, bb in sil:     # an inter-arrival across a recording hole is not one
            spans_gap |= (st[:-1] <= a) & (st[1:] >= bb)
        iat.append(d_st[~spans_gap] / 1e6)
        cc = _concurrency(ses, t0, t1)
        if sil:
            grid = np.arange(t0, t1, 1e6)[: len(cc)]
            inside = np.zeros(len(grid), bool)
            for a, b in sil:
                inside |= (grid > a) & (grid < b)
            cc = cc[~inside]
        conc.append(cc)
        cls = r.users.set_index(["rnti", "direction"])["traffic_class"]
        b = r.bursts.copy()
        ses_cls = ses.groupby("rnti")["traffic_class"].first()
        b["traffic_class"] = b["rnti"].map(ses_cls).fillna("signalling")
        b = b.sort_values(["rnti", "direction", "start_t_us"])
        b["gap_s"] = b.groupby(["rnti", "direction"])["start_t_us"].diff() / 1e6
        for a, bb in sil:   # a gap that spans a recording hole is not an inter-burst gap
            prev = b["start_t_us"] - b["gap_s"] * 1e6
            b.loc[(prev < a) & (b["start_t_us"] > bb), "gap_s"] = np.nan
        burst_rows.append(b)
        grants_all.append(r.grants)
        for d in ("dl", "ul"):
            gd = r.grants[r.grants["direction"] == d]
            det[d][0] += int(gd["observed"].sum())
            det[d][1] += int(len(gd))
        invalid += r.diagnostics["rows_invalid"]
        rows += r.diagnostics["rows_in"]
        sources.append({"source": str(source), "rows": int(r.diagnostics["rows_in"]),
                        "duration_s": round(dur_s, 3), "users": int(r.diagnostics["users"]),
                        "harq_mode": r.diagnostics["harq_mode"], "recording_gaps": len(sil)})

    sessions = pd.concat(all_sessions, ignore_index=True)
    if sessions["rnti"].nunique() < 2 or len(sessions) < 2:
        raise InputError(recs[0][0], f"only {sessions['rnti'].nunique()} user in the log(s); a background "
                         "profile needs at least 2 users to fit population dynamics "
                         "(did --exclude-rnti remove everyone else?)")
    bursts = pd.concat(burst_rows, ignore_index=True)
    grants = pd.concat(grants_all, ignore_index=True)
    iat_all = np.concatenate(iat) if iat else np.zeros(0)
    conc_all = np.concatenate(conc) if conc else np.zeros(0)

    classes = {}
    n_ses = len(sessions)
    for c in CLASSES:
        sc = sessions[sessions["traffic_class"] == c]
        entry = {"share": round(len(sc) / n_ses, 6), "sessions": int(len(sc))}
        for d in ("dl", "ul"):
            bd = bursts[(bursts["traffic_class"] == c) & (bursts["direction"] == d)]
            has = sc["has_dl" if d == "dl" else "has_ul"]
            entry[d] = {
                "session_share": round(float(has.mean()) if len(sc) else 0.0, 6),
                "burst_bytes": dist.fit_choose(bd["size_bytes"].to_numpy(), name=f"{c}.{d}.burst_bytes",
                                               seed=seed),
                "gap_s": dist.fit_choose(bd["gap_s"].dropna().to_numpy(), name=f"{c}.{d}.gap_s", seed=seed),
            }
        entry["session_length_s"] = dist.fit_choose(sc["length_s"].to_numpy(), seed=seed)
        classes[c] = entry

    dirs = sorted(grants["direction"].unique().tolist())
    decoded = grants[grants["decoded"]]
    profile = {
        "format": FORMAT,
        "version": VERSION,
        "fitted_from": sources,
        "cell": {
            "slot_us": float(slot_us),
            "directions": dirs,
            "max_prbs_seen": int(decoded["prb_count"].max()) if len(decoded) else 0,
            "mcs_table": "qam256",
        },
        "observation": {
            "detection_ratio": {d: (round(det[d][0] / det[d][1], 6) if det[d][1] else 1.0) for d in det},
            "invalid_share": round(invalid / rows, 6) if rows else 0.0,
        },
        "population": {
            "duration_s": round(total_s, 3),
            "sessions": int(n_ses),
            "session_arrival_rate_per_s": round(n_ses / total_s, 6) if total_s > 0 else 0.0,
            "session_interarrival_s": dist.fit_choose(iat_all, seed=seed),
            "session_length_s": dist.fit_choose(sessions["length_s"].to_numpy(), seed=seed),
            "concurrent_users": {
                "mean": round(float(conc_all.mean()), 4) if len(conc_all) else 0.0,
                "quantiles": [float(v) for v in np.quantile(conc_all, np.linspace(0, 1, 21))]
                if len(conc_all) else [0.0],
            },
        },
        "classes": classes,
        "channel": fit_mcs_markov(grants, slot_us),
        "recon_params": recs[0][1].diagnostics["params"],
    }
    if not any(classes[c]["sessions"] and (classes[c]["dl"]["burst_bytes"]["kind"] != "none"
                                          or classes[c]["ul"]["burst_bytes"]["kind"] != "none")
               for c in CLASSES):
        raise InputError(recs[0][0], "no bursts could be reconstructed; the profile would be empty")
    return profile


def save_profile(profile: dict, path: str | Path) -> None:
    validate_profile(profile, str(path))
    Path(path).write_text(json.dumps(profile, indent=1, sort_keys=False) + "\n")


def load_profile(path: str | Path) -> dict:
    """Read and validate a profile JSON; raises :class:`InputError` on anything wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(str(path), f"cannot read profile: {exc.strerror or exc}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    except ValueError as exc:
        raise InputError(str(path), str(exc)) from None
    validate_profile(data, str(path))
    return data


def _reject_constant(name):
    raise ValueError(f"non-finite number {name} is not allowed in a profile")


def _need(obj, key, source, where, typ=None):
    if not isinstance(obj, dict) or key not in obj:
        raise InputError(source, "missing", field=f"{where}.{key}" if where else key)
    v = obj[key]
    if typ is not None and (not isinstance(v, typ) or isinstance(v, bool) and typ is not bool):
        raise InputError(source, f"expected {getattr(typ, '__name__', typ)}", field=f"{where}.{key}" if where else key)
    return v


def _nonneg(v, source, where):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise InputError(source, f"expected a non-negative number, got {v!r}", field=where)
    return float(v)


def validate_profile(p, source: str = "profile") -> None:
    if not isinstance(p, dict):
        raise InputError(source, "a profile must be a JSON object")
    if p.get("format") != FORMAT:
        raise InputError(source, f"not a background profile (format must be {FORMAT!r})", field="format")
    ver = p.get("version")
    if ver != VERSION:
        raise InputError(source, f"unsupported profile version {ver!r}; this NeuralEmu reads version {VERSION}",
                         field="version")
    cell = _need(p, "cell", source, "", dict)
    slot_us = _nonneg(_need(cell, "slot_us", source, "cell"), source, "cell.slot_us")
    if slot_us not in (1000.0, 500.0, 250.0, 125.0, 62.5):
        raise InputError(source, "slot_us must be 1000/2^mu (38.211 4.3.2)", field="cell.slot_us")
    dirs = _need(cell, "directions", source, "cell", list)
    if not dirs or any(d not in ("dl", "ul") for d in dirs):
        raise InputError(source, "directions must be a non-empty list of 'dl'/'ul'", field="cell.directions")
    obs = _need(p, "observation", source, "", dict)
    dr = _need(obs, "detection_ratio", source, "observation", dict)
    for d, v in dr.items():
        if _nonneg(v, source, f"observation.detection_ratio.{d}") > 1:
            raise InputError(source, "detection ratio must be in [0, 1]", field=f"observation.detection_ratio.{d}")
    pop = _need(p, "population", source, "", dict)
    rate = _nonneg(_need(pop, "session_arrival_rate_per_s", source, "population"), source,
                   "population.session_arrival_rate_per_s")
    for k in ("session_interarrival_s", "session_length_s"):
        dist.validate_record(_need(pop, k, source, "population"), f"population.{k}", source)
    cu = _need(pop, "concurrent_users", source, "population", dict)
    _nonneg(_need(cu, "mean", source, "population.concurrent_users"), source, "population.concurrent_users.mean")
    classes = _need(p, "classes", source, "", dict)
    unknown = set(classes) - set(CLASSES)
    if unknown:
        raise InputError(source, f"unknown traffic class {sorted(unknown)[0]!r}", field="classes")
    share_sum = 0.0
    for c, entry in classes.items():
        where = f"classes.{c}"
        share = _nonneg(_need(entry, "share", source, where), source, f"{where}.share")
        if share > 1:
            raise InputError(source, "share must be in [0, 1]", field=f"{where}.share")
        share_sum += share
        for d in ("dl", "ul"):
            de = _need(entry, d, source, where, dict)
            ss = _nonneg(_need(de, "session_share", source, f"{where}.{d}"), source, f"{where}.{d}.session_share")
            if ss > 1:
                raise InputError(source, "session_share must be in [0, 1]", field=f"{where}.{d}.session_share")
            for k in ("burst_bytes", "gap_s"):
                dist.validate_record(_need(de, k, source, f"{where}.{d}"), f"{where}.{d}.{k}", source)
        dist.validate_record(_need(entry, "session_length_s", source, where), f"{where}.session_length_s", source)
    if rate > 0 and abs(share_sum - 1.0) > 1e-3:
        raise InputError(source, f"class shares sum to {share_sum:.4f}, not 1", field="classes")
    validate_mcs_markov(_need(p, "channel", source, "", dict), source)
