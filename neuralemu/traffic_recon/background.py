"""Background users sampled from a profile: sessions, traffic and channels.

:func:`sample_background` turns a profile (:mod:`.profile`) into

* a population of sessions (who is attached when, and with which traffic
  class): an initial population drawn from the steady state (count ~ Poisson
  with the profile's mean concurrency, residual session lengths drawn
  length-biased) plus session arrivals with the fitted inter-arrival
  distribution, rescaled to the target arrival rate;
* traffic: per session and direction, bursts at the fitted inter-burst gaps
  (start to start), each of a fitted burst size, written as packets of at most
  ``packet_bytes`` at the burst's arrival time: a workload table
  ``t_us, ue, direction, size_bytes`` (DESIGN.md);
* channels: per user an MCS trajectory from the profile's Markov chain, turned
  into an SINR trace (:func:`sinr_for_mcs_table`: the SINR at which the UE
  reports the CQI that maps to that MCS) that the engine's ``trace`` channel
  model accepts, so link adaptation reproduces the fitted MCS dynamics.

Everything is a pure function of ``(profile, duration_s, seed, count)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neuralemu.errors import InputError
from neuralemu.traffic_recon import distributions as dist
from neuralemu.traffic_recon.channel import McsMarkovChannel
from neuralemu.traffic_recon.classify import CLASSES

DEFAULT_UE_BASE = 60000          # background ids 60000.. stay clear of typical foreground ids
MAX_UE_ID = 65519                # C-RNTI range (38.321 Table 7.1-1)
PACKET_BYTES = 1500
SINR_MARGIN_DB = 0.5


@dataclass
class Background:
    sessions: pd.DataFrame      # ue, traffic_class, start_us, end_us, dl, ul
    workload: pd.DataFrame      # t_us, ue, direction, size_bytes
    channels: dict              # ue -> {"step_ms": float, "mcs": np.ndarray (from the session start)}
    profile_slot_us: float

    def ue_configs(self, sinr_margin_db: float = SINR_MARGIN_DB, mcs_table: str = "qam256") -> list[dict]:
        """Engine ``UeConfig`` dicts with ``trace`` channels (see docs/engine.md).

        The trace starts at t=0; before the session it holds the session's first value.
        """
        sinr_of_mcs = sinr_for_mcs_table(mcs_table, sinr_margin_db)
        out = []
        for row in self.sessions.itertuples(index=False):
            ch = self.channels[int(row.ue)]
            step_us = ch["step_ms"] * 1000.0
            lead = int(row.start_us // step_us)
            mcs = np.concatenate([np.full(lead, ch["mcs"][0]), ch["mcs"]]) if len(ch["mcs"]) else np.zeros(1, int)
            sinr = sinr_of_mcs[np.clip(mcs, 0, len(sinr_of_mcs) - 1)]
            dirs = [d for d in ("dl", "ul") if getattr(row, d)] or ["dl"]
            out.append({"ue_id": int(row.ue), "directions": dirs,
                        "channel": {"model": "trace", "values": [round(float(v), 2) for v in sinr],
                                    "step_ms": float(ch["step_ms"]), "ul_offset_db": 0.0}})
        return out


def sinr_for_mcs_table(mcs_table: str = "qam256", margin_db: float = SINR_MARGIN_DB) -> np.ndarray:
    """SINR (dB) per MCS index that makes CQI-based link adaptation pick about that MCS.

    For MCS m: the lowest CQI whose mapped MCS (``nr.cqi_to_mcs``, 38.214
    5.2.2.1 + 5.1.3.1) is >= m, at the SINR where the UE starts reporting that
    CQI (``nr.cqi_sinr_threshold_db``), plus ``margin_db``. Beyond CQI 15: the
    MCS's own 10%-BLER SINR.
    """
    from neuralemu.nr import cqi_sinr_threshold_db, cqi_to_mcs, default_cqi_table, max_mcs, mcs_sinr_threshold_db
    table = default_cqi_table(mcs_table)
    cqi_mcs = np.asarray(cqi_to_mcs(np.arange(1, 16), mcs_table, table))
    top = int(max_mcs(mcs_table))
    out = np.zeros(top + 1)
    for m in range(top + 1):
        c = np.flatnonzero(cqi_mcs >= m)
        if c.size:
            out[m] = float(cqi_sinr_threshold_db(int(c[0]) + 1, table)) + margin_db
        else:
            out[m] = float(mcs_sinr_threshold_db(m, mcs_table)) + margin_db
    return out


def _sample1(rec: dict, rng: np.random.Generator, fallback: dict | None = None) -> float:
    if rec.get("kind") == "none":
        if fallback is None or fallback.get("kind") == "none":
            return float("nan")
        rec = fallback
    return float(dist.sample(rec, rng, 1)[0])


def _mean_of(rec: dict, rng: np.random.Generator) -> float:
    if rec.get("kind") == "none":
        return float("nan")
    return float(np.mean(dist.sample(rec, rng, 4000)))


def sample_background(profile: dict, duration_s: float, *, seed: int = 0, count: float | None = None,
                      ue_base: int = DEFAULT_UE_BASE, directions: tuple[str, ...] | None = None,
                      packet_bytes: int = PACKET_BYTES,
                      served_bytes_grid: dict | None = None) -> Background:
    """Sample background sessions, their workload and channels (deterministic for ``seed``).

    ``count``: target mean number of concurrently attached background users;
    default the profile's. The arrival rate is scaled so that, by Little's law,
    arrivals x mean session length equals ``count``.

    ``served_bytes_grid`` (direction -> sorted byte counts, e.g.
    :meth:`.policy.BackgroundLinkPolicy.served_bytes_grid`): profile burst sizes
    are bytes the real gNB *served* (whole transport blocks, padding included);
    a sampled size below the grid's largest value is enqueued as the nearest
    grid value (on a log scale), so that the emulated cell serves about the
    sampled bytes in one grant rather than padding them once more.
    """
    if not duration_s > 0:
        raise InputError("background", f"duration must be positive, got {duration_s}", field="duration_s")
    if count is not None and count < 0:
        raise InputError("background", f"count must be >= 0, got {count}", field="count")
    rng = np.random.default_rng([int(seed), 0xB6])
    pop = profile["population"]
    classes = profile["classes"]
    dirs_ok = tuple(directions or profile["cell"]["directions"])
    horizon_us = float(duration_s) * 1e6
    shares = np.array([classes.get(c, {}).get("share", 0.0) for c in CLASSES], dtype=float)
    if shares.sum() <= 0:
        raise InputError("background", "the profile has no traffic classes with sessions", field="classes")
    shares /= shares.sum()

    mean_len_s = _mean_of(pop["session_length_s"], np.random.default_rng([int(seed), 1]))
    target = float(pop["concurrent_users"]["mean"]) if count is None else float(count)
    if not np.isfinite(mean_len_s) or mean_len_s <= 0:
        raise InputError("background", "the profile's session lengths are empty",
                         field="population.session_length_s")
    rate = target / mean_len_s if target > 0 else 0.0
    iat_rec = pop["session_interarrival_s"]
    iat_mean = _mean_of(iat_rec, np.random.default_rng([int(seed), 2]))
    iat_scale = (1.0 / rate) / iat_mean if rate > 0 and np.isfinite(iat_mean) and iat_mean > 0 else None

    # Sessions: initial population (steady state) + arrivals.
    starts, lengths = [], []
    n0 = int(rng.poisson(target)) if target > 0 else 0
    if n0:
        cand = dist.sample(pop["session_length_s"], rng, max(64, 20 * n0))
        w = cand / cand.sum()
        pick = rng.choice(cand, size=n0, p=w)            # length-biased: long sessions are more often "on"
        resid = pick * rng.random(n0)
        starts += [0.0] * n0
        lengths += list(resid)
    t = 0.0
    first = True
    while rate > 0:
        gap = (float(dist.sample(iat_rec, rng, 1)[0]) * iat_scale if iat_scale
               else float(rng.exponential(1.0 / rate)))
        if first:            # stationary start: the first arrival is a forward-recurrence time
            gap *= float(rng.random())
            first = False
        t += max(gap, 1e-6)
        if t * 1e6 >= horizon_us:
            break
        starts.append(t)
        lengths.append(np.nan)   # drawn per class below
    n = len(starts)
    if ue_base + n - 1 > MAX_UE_ID:
        raise InputError("background", f"{n} background sessions would need ids up to {ue_base + n - 1}, "
                         f"beyond the C-RNTI range ({MAX_UE_ID}); lower --ue-base, count or duration")
    cls_idx = rng.choice(len(CLASSES), size=n, p=shares) if n else np.zeros(0, int)
    ses_rows, wl_t, wl_ue, wl_dir, wl_size, channels = [], [], [], [], [], {}
    chan = McsMarkovChannel(profile["channel"])
    for i in range(n):
        c = CLASSES[int(cls_idx[i])]
        ce = classes[c]
        srng = np.random.default_rng([int(seed), 7, i])
        length_s = lengths[i]
        if not np.isfinite(length_s):
            length_s = _sample1(ce["session_length_s"], srng, pop["session_length_s"])
        s_us = starts[i] * 1e6
        e_us = min(horizon_us, s_us + max(length_s, 0.0) * 1e6)
        ue = ue_base + i
        used = {}
        for d in ("dl", "ul"):
            de = ce[d]
            if d not in dirs_ok or srng.random() >= de["session_share"] or de["burst_bytes"]["kind"] == "none":
                used[d] = False
                continue
            used[d] = True
            gap_rec = de["gap_s"]
            bt = s_us if starts[i] > 0 else s_us + srng.random() * max(_sample1(gap_rec, srng) * 1e6, 0.0) \
                if gap_rec["kind"] != "none" else s_us
            times = []
            while bt <= e_us and bt < horizon_us:
                times.append(bt)
                if gap_rec["kind"] == "none":
                    break
                bt += max(_sample1(gap_rec, srng) * 1e6, 1.0)
            if not times:
                continue
            sizes = np.maximum(1, np.round(dist.sample(de["burst_bytes"], srng, len(times)))).astype(np.int64)
            grid = None if served_bytes_grid is None else served_bytes_grid.get(d)
            if grid is not None and len(grid):
                small = sizes < grid[-1]
                lg = np.log(grid)
                k = np.clip(np.searchsorted(lg, np.log(sizes[small])), 1, len(grid) - 1)
                lo_closer = np.log(sizes[small]) - lg[k - 1] <= lg[k] - np.log(sizes[small])
                sizes[small] = grid[np.where(lo_closer, k - 1, k)]
            npk = (sizes + packet_bytes - 1) // packet_bytes
            tt = np.repeat(np.asarray(times), npk)
            sz = np.full(int(npk.sum()), packet_bytes, dtype=np.int64)
            last = np.cumsum(npk) - 1
            sz[last] = sizes - (npk - 1) * packet_bytes
            wl_t.append(tt)
            wl_ue.append(np.full(len(tt), ue))
            wl_dir.append(np.full(len(tt), d))
            wl_size.append(sz)
        if not used.get("dl") and not used.get("ul"):
            used["dl" if "dl" in dirs_ok else "ul"] = True
        steps = int(np.ceil((e_us - s_us) / (chan.step_us))) + 1
        channels[ue] = {"step_ms": chan.step_us / 1000.0,
                        "mcs": chan.trajectory(np.random.default_rng([int(seed), 9, i]), steps)}
        ses_rows.append((ue, c, int(s_us), int(e_us), bool(used.get("dl")), bool(used.get("ul"))))

    sessions = pd.DataFrame(ses_rows, columns=["ue", "traffic_class", "start_us", "end_us", "dl", "ul"])
    if wl_t:
        wl = pd.DataFrame({"t_us": np.floor(np.concatenate(wl_t)).astype(np.int64),
                           "ue": np.concatenate(wl_ue).astype(np.int64),
                           "direction": np.concatenate(wl_dir),
                           "size_bytes": np.concatenate(wl_size).astype(np.int64)})
        wl = wl.sort_values(["t_us", "ue", "direction"], kind="stable").reset_index(drop=True)
    else:
        wl = pd.DataFrame({"t_us": np.zeros(0, np.int64), "ue": np.zeros(0, np.int64),
                           "direction": np.zeros(0, dtype=object), "size_bytes": np.zeros(0, np.int64)})
    return Background(sessions=sessions, workload=wl, channels=channels,
                      profile_slot_us=float(profile["cell"]["slot_us"]))
