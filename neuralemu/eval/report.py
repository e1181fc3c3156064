"""The evaluation report: ``index.html`` plus one PNG per figure (matplotlib, Agg).

* ``cdf_gaming.png``: CDF of the cloud-gaming packet delay, truth / learned / replay;
* ``series_webrtc.png``: the WebRTC-like encoder bitrate over time;
* ``cdf_web.png``: CDF of page load times;
* ``series_bulk.png``: TCP-like throughput per 100 ms;
* ``errors.png``: each workload's learned and replay error, with the 5 % floor.

``index.html`` holds the error table (learned error as a fraction of replay
error, pass/fail), the figures, the stage timings and the commands that
reproduce the run. It is static (no scripts) and references the PNGs by
relative path, so the folder can be copied as is.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

COLORS = {"truth": "#222222", "learned": "#1f77b4", "replay": "#d62728"}
STYLES = {"truth": "-", "learned": "--", "replay": ":"}
TITLES = {"gaming": "Cloud gaming (60 fps): downlink packet one-way delay",
          "webrtc": "WebRTC-like video (GCC): encoder target bitrate",
          "web": "Web page loads: page load time",
          "bulk": "TCP-like bulk transfer (CUBIC): throughput per 100 ms"}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _cdf(ax, samples: dict, xlabel: str) -> None:
    from neuralemu.eval.metrics import ecdf
    for name, x in samples.items():
        x = np.asarray(x, dtype=float)
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        v, p = ecdf(x)
        ax.step(v, p, where="post", color=COLORS[name], ls=STYLES[name], lw=1.8,
                label=f"{name} (n={x.size}, median {np.median(x):.1f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("CDF")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def _series(ax, series: dict, ylabel: str) -> None:
    for name, df in series.items():
        if len(df) == 0:
            continue
        ax.plot(df["t_s"], df["value"], color=COLORS[name], ls=STYLES[name], lw=1.5, label=name)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def draw_figures(out: Path, results: dict, rows: list[dict], title: str) -> list[tuple[str, str]]:
    """Write the PNGs; return (file name, caption) pairs."""
    plt = _plt()
    figs = []
    for w, res in results.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        if w == "gaming":
            _cdf(ax, {k: r.samples for k, r in res.items()}, "one-way delay (ms)")
            name = "cdf_gaming.png"
        elif w == "web":
            _cdf(ax, {k: r.samples for k, r in res.items()}, "page load time (ms)")
            name = "cdf_web.png"
        elif w == "webrtc":
            _series(ax, {k: r.series for k, r in res.items()}, "encoder bitrate (Mbit/s)")
            name = "series_webrtc.png"
        else:
            _series(ax, {k: r.series for k, r in res.items()}, "throughput (Mbit/s)")
            name = "series_bulk.png"
        row = next((r for r in rows if r["workload"] == w), None)
        sub = "" if row is None else \
            f"\nerror: learned {row['learned_error']:.3f}, replay {row['replay_error']:.3f}"
        ax.set_title(f"{TITLES[w]}{sub}", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        figs.append((name, TITLES[w]))
    if rows:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        x = np.arange(len(rows))
        le = [min(r["learned_error"], 10.0) for r in rows]
        re = [min(r["replay_error"], 10.0) for r in rows]
        ax.bar(x - 0.2, le, 0.4, color=COLORS["learned"], label="learned")
        ax.bar(x + 0.2, re, 0.4, color=COLORS["replay"], label="replay")
        ax.axhline(0.05, color="grey", ls="--", lw=1, label="5 % floor")
        ax.set_xticks(x, [r["workload"] for r in rows])
        ax.set_ylabel("relative error (lower is better)")
        ax.set_title(f"Fidelity error per workload: {title}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "errors.png", dpi=110)
        plt.close(fig)
        figs.insert(0, ("errors.png", "Error per workload (learned vs replay)"))
    return figs


def write_report(out: Path, summary: dict, results: dict) -> Path:
    out = Path(out)
    rows = summary["rows"]
    title = f"{Path(summary['truth']).name}, {summary['background_users']} background users, " \
            f"seed {summary['seed']}"
    figs = draw_figures(out, results, rows, title)
    e = html.escape
    trs = "".join(
        f"<tr><td>{e(r['workload'])}</td><td>{e(r['metric'])}</td>"
        f"<td>{r['learned_error']:.4f}</td><td>{r['replay_error']:.4f}</td>"
        f"<td>{r['learned_over_replay']:.3f}</td>"
        f"<td class='{'ok' if r['pass'] else 'bad'}'>{'pass' if r['pass'] else 'FAIL'}</td></tr>"
        for r in rows)
    details = "".join(f"<tr><td>{e(r['workload'])}</td><td>{e(str(r['learned_detail']))}</td>"
                      f"<td>{e(str(r['replay_detail']))}</td></tr>" for r in rows)
    imgs = "".join(f"<figure><img src='{e(n)}' alt='{e(c)}'><figcaption>{e(c)}</figcaption></figure>"
                   for n, c in figs)
    timings = "".join(f"<tr><td>{e(k)}</td><td>{v:.1f}</td></tr>" for k, v in summary["timings_s"].items())
    cmds = e("\n".join(summary["commands"]))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>NeuralEmu fidelity: {e(title)}</title>
<style>
body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:4px 8px;font-size:14px}}
th{{background:#f3f3f3}} .ok{{color:#0a0;font-weight:bold}} .bad{{color:#c00;font-weight:bold}}
figure{{display:inline-block;margin:0.5em}} img{{max-width:460px}} pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}
</style></head><body>
<h1>NeuralEmu fidelity evaluation</h1>
<p>Truth: <code>{e(summary['truth'])}</code> (policy <code>{e(summary['truth_policy'])}</code>,
{summary['background_users']} background users), seed {summary['seed']}.
Learned error is shown as a fraction of replay error; a workload passes when learned &le; 0.5 &times; replay,
or, where replay is already under 5&nbsp;%, when learned is under 5&nbsp;% too.</p>
<h2>Errors</h2>
<table><tr><th>workload</th><th>metric</th><th>learned error</th><th>replay error</th>
<th>learned / replay</th><th>verdict</th></tr>{trs}</table>
<h2>Figures</h2>{imgs}
<h2>Details</h2><table><tr><th>workload</th><th>learned</th><th>replay</th></tr>{details}</table>
<h2>Stage timings (s)</h2><table>{timings}</table>
<h2>Reproduce</h2><pre>{cmds}</pre>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page)
    return path
