"""Leave-one-out evaluation of background profiles against real NR-Scope logs.

For one cell (e.g. all ``t_mobile1_*`` files): for every file, fit a profile
on the *other* files of the cell, sample background users from it (no replay),
run the slot engine with them, and compare the emulated cell with the held-out
file by the KS distance of five distributions:

* ``active_users``: distinct RNTIs with a DCI per slot (all slots of the span);
* ``prb_util``: decoded PRBs per slot / carrier PRBs (all slots);
* ``burst_bytes``: reconstructed burst sizes;
* ``burst_gap_s``: inter-burst gaps (start to start) per user and direction;
* ``mcs``: MCS index of decoded new transmissions of at least 500 bytes
  (channel-limited grants; the channel model's figure);
* ``active_users_nonempty``, ``prb_util_nonempty``: the same over the slots with
  at least one DCI only (informational: most slots of a real log are empty in
  both, which makes the all-slot figures easy to match);
* ``mcs_all``: MCS of every decoded new transmission (informational: real gNBs
  send small payloads at MCS 0 whatever the channel, which is scheduler
  behaviour that the ``pf`` policy used here does not have).

Like is compared with like. The per-slot figures of the real log are what
NR-Scope saw, so the emulated DCI log is first passed through the profile's
observation model: each DCI is kept with the fitted detection ratio, and a
kept DCI becomes an undecodable one (no PRBs, no MCS) with the fitted
invalid share. Burst figures of the real log come from reconstruction, which
fills in missed DCIs; those of the emulated log come from its full DCI log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from neuralemu.traffic_recon import reconstruct
from neuralemu.traffic_recon.background import sample_background
from neuralemu.traffic_recon.channel import MIN_CHANNEL_GRANT_BYTES
from neuralemu.traffic_recon.policy import BackgroundLinkPolicy
from neuralemu.traffic_recon.profile import fit_profile

METRICS = ("active_users", "prb_util", "burst_bytes", "burst_gap_s", "mcs", "mcs_all",
           "active_users_nonempty", "prb_util_nonempty")
#: Figures that the KS bound applies to (the rest are reported only).
BOUNDED = ("active_users", "prb_util", "burst_bytes", "burst_gap_s", "mcs")
KS_BOUND = 0.15

#: Engine cells matching the shared T-Mobile logs (15 kHz SCS; 52 and 79 PRBs, 38.101-1 Table 5.3.2-1).
#: PDSCH symbols as logged (t_mobile1: 12, t_mobile2: 11, i.e. 2 and 3 PDCCH symbols) and 2 layers, so
#: that a grant of N PRBs at MCS m carries the bytes it carries in the log (38.214 5.1.3.2; e.g. 8 PRBs
#: at MCS 0: 63 bytes in t_mobile1, 16 PRBs at MCS 0: 116 bytes in t_mobile2).
CELLS = {
    "t_mobile1": {"numerology": 0, "bandwidth_mhz": 10, "duplex": "FDD", "mcs_table": "qam256",
                  "ul_mcs_table": "qam256", "max_layers": 2, "pdcch_symbols": 2,
                  "uplink": {"sr_grant_bytes": 64}},
    "t_mobile2": {"numerology": 0, "bandwidth_mhz": 15, "duplex": "FDD", "mcs_table": "qam256",
                  "ul_mcs_table": "qam256", "max_layers": 2, "pdcch_symbols": 3,
                  "uplink": {"sr_grant_bytes": 64}},
}


def observe(dci: pd.DataFrame, profile: dict, seed: int = 0) -> pd.DataFrame:
    """Thin an emulated DCI log the way the profile says the real decoder saw its cell."""
    rng = np.random.default_rng([seed, 0x0B5])
    det = profile["observation"]["detection_ratio"]
    p_keep = dci["direction"].map(lambda d: det.get(d, 1.0)).to_numpy(dtype=float)
    out = dci[rng.random(len(dci)) < p_keep].copy()
    bad = rng.random(len(out)) < profile["observation"].get("invalid_share", 0.0)
    out.loc[bad, ["prb_count", "tbs_bits", "mcs"]] = 0
    out.loc[bad, "valid"] = False
    out.attrs = dict(dci.attrs)
    return out


def slot_figures(dci: pd.DataFrame, prbs_total: int, span: tuple[int, int] | None = None) -> dict:
    """Per-slot distributions over every slot of the span (empty slots count as 0)."""
    s0, s1 = span if span else (int(dci["slot"].min()), int(dci["slot"].max()) + 1)
    n = max(1, s1 - s0)
    d = dci[(dci["slot"] >= s0) & (dci["slot"] < s1)]
    users = d.groupby("slot")["rnti"].nunique()
    act = np.zeros(n)
    act[users.index.to_numpy() - s0] = users.to_numpy()
    v = d[d["valid"] & (d["direction"] == "dl")]
    prb = v.groupby("slot")["prb_count"].sum()
    util = np.zeros(n)
    util[prb.index.to_numpy() - s0] = np.minimum(prb.to_numpy() / prbs_total, 1.0)
    busy = act > 0
    return {"active_users": act, "prb_util": util,
            "active_users_nonempty": act[busy], "prb_util_nonempty": util[busy]}


def burst_figures(dci: pd.DataFrame) -> dict:
    if len(dci) == 0 or not dci["valid"].any():
        return {"burst_bytes": np.zeros(0), "burst_gap_s": np.zeros(0), "mcs": np.zeros(0),
                "mcs_all": np.zeros(0)}
    rec = reconstruct(dci)
    b = rec.bursts.sort_values(["rnti", "direction", "start_t_us"])
    gaps = b.groupby(["rnti", "direction"])["start_t_us"].diff().dropna().to_numpy() / 1e6
    g = rec.grants
    dec = g[g["observed"] & g["decoded"]]
    mcs = dec[dec["bytes_est"] >= MIN_CHANNEL_GRANT_BYTES]["mcs"].to_numpy()
    return {"burst_bytes": b["size_bytes"].to_numpy(), "burst_gap_s": gaps, "mcs": mcs.astype(float),
            "mcs_all": dec["mcs"].to_numpy().astype(float)}


@dataclass
class HeldOutResult:
    cell: str
    held_out: str
    ks: dict
    real: dict
    emulated: dict
    ks_real_vs_train: dict


def _ks(a, b) -> float:
    return float(stats.ks_2samp(a, b).statistic) if len(a) and len(b) else float("nan")


def emulate(profile: dict, cell_cfg: dict, duration_s: float, seed: int,
            link_policy: bool = True) -> tuple[pd.DataFrame, int]:
    """Run the engine with background users sampled from ``profile``; return its DCI log."""
    from neuralemu.cell import CellConfig, Engine
    cell = CellConfig(**cell_cfg)
    if link_policy:
        grid = BackgroundLinkPolicy.from_background(None, profile, cell).served_bytes_grid(cell)
        bg = sample_background(profile, duration_s, seed=seed, served_bytes_grid=grid)
        policy = BackgroundLinkPolicy.from_background(bg, profile, cell)
    else:
        bg = sample_background(profile, duration_s, seed=seed)
        policy = "pf"
    eng = Engine(cell, bg.ue_configs(), policy, seed=seed, record_dci=True)
    wl = bg.workload
    eng.load_arrivals(wl["t_us"].to_numpy(), wl["ue"].to_numpy(), wl["direction"].to_numpy(),
                      wl["size_bytes"].to_numpy())
    eng.run(int(duration_s * 1e6 / eng.slot_us))
    dci = eng.dci_log()
    return dci, int(eng.prbs_total)


def evaluate_cell(cell: str, tables: dict[str, pd.DataFrame], *, max_duration_s: float = 120.0,
                  seed: int = 0, held_out: list[str] | None = None) -> list[HeldOutResult]:
    """Leave-one-out over ``tables`` (name -> canonical DCI table, all of one cell)."""
    results = []
    names = sorted(tables)
    for name in (held_out or names):
        train = [(n, tables[n]) for n in names if n != name]
        profile = fit_profile(train, allow_gaps=True, seed=seed)
        real = tables[name]
        real_rec_span = (int(real["slot"].min()), int(real["slot"].max()) + 1)
        duration_s = min(max_duration_s, (real_rec_span[1] - real_rec_span[0]) * real.attrs["slot_us"] / 1e6)
        emu, prbs_total = emulate(profile, CELLS[cell], duration_s, seed)
        emu_obs = observe(emu, profile, seed)
        real_fig = {**slot_figures(real[real["slot"] < real_rec_span[0] + int(duration_s * 1e6
                                                                              / real.attrs["slot_us"])],
                                   prbs_total),
                    **burst_figures(real)}
        emu_fig = {**slot_figures(emu_obs, prbs_total, (0, int(duration_s * 1e6 / emu.attrs["slot_us"]))),
                   **burst_figures(emu)}
        ks = {m: _ks(real_fig[m], emu_fig[m]) for m in METRICS}
        # reference: how far the held-out file is from the pooled training files themselves
        pooled = [burst_figures(t) for _, t in train]
        ks_real = {m: _ks(real_fig[m], np.concatenate([f[m] for f in pooled]))
                   for m in ("burst_bytes", "burst_gap_s", "mcs", "mcs_all")}
        results.append(HeldOutResult(cell, name, ks, real_fig, emu_fig, ks_real))
    return results


def results_table(results: list[HeldOutResult]) -> pd.DataFrame:
    rows = [{"cell": r.cell, "held_out": r.held_out, **{f"ks_{m}": round(r.ks[m], 4) for m in METRICS},
             **{f"ref_{m}": round(v, 4) for m, v in r.ks_real_vs_train.items()}}
            for r in results]
    return pd.DataFrame(rows)


def plot_cdfs(results: list[HeldOutResult], path: str | Path) -> None:
    """One row per held-out file, one column per metric: real vs emulated CDFs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(results), len(METRICS), figsize=(3.0 * len(METRICS), 2.2 * len(results)),
                             squeeze=False)
    for i, r in enumerate(results):
        for j, m in enumerate(METRICS):
            ax = axes[i, j]
            for fig_data, label, color in ((r.real, "real (held out)", "tab:blue"),
                                           (r.emulated, "emulated", "tab:orange")):
                x = np.sort(np.asarray(fig_data[m], dtype=float))
                if len(x):
                    ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", label=label, color=color)
            if m in ("burst_bytes", "burst_gap_s"):
                ax.set_xscale("log")
            ax.set_title(f"{r.held_out[-22:]}\n{m}: KS {r.ks[m]:.3f}", fontsize=7)
            ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
