"""``reconstruct --report``: inferred bursts drawn over the grants, one panel per user."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuralemu.traffic_recon.inversion import Reconstruction


def draw_report(rec: Reconstruction, path: str | Path, *, max_users: int = 8,
                window_s: float | None = 3.0) -> list[tuple[int, str]]:
    """Write a PNG; returns the (rnti, direction) panels drawn (the busiest users).

    Each panel: observed grants (filled dots, bytes per grant), grants inferred
    from HARQ-id gaps (hollow), undecodable DCIs (x), each burst as a shaded
    span from its estimated arrival (dashed line) to its last grant, and the
    estimated buffer with its bounds (step lines, right axis).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    users = rec.users.sort_values("total_bytes", ascending=False).head(max_users)
    panels = list(zip(users["rnti"].tolist(), users["direction"].tolist()))
    n = max(1, len(panels))
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.1 * n + 0.6), squeeze=False)
    for ax, (rnti, d) in zip(axes[:, 0], panels):
        g = rec.grants[(rec.grants["rnti"] == rnti) & (rec.grants["direction"] == d)]
        b = rec.bursts[(rec.bursts["rnti"] == rnti) & (rec.bursts["direction"] == d)]
        buf = rec.buffer[(rec.buffer["rnti"] == rnti) & (rec.buffer["direction"] == d)]
        t0 = float(g["t_us"].min())
        if window_s is not None:      # the busiest window of the user's activity
            bt = b.sort_values("size_bytes", ascending=False)
            t_c = float(bt["start_t_us"].iloc[0]) if len(bt) else t0
            lo_t, hi_t = t_c - window_s * 0.5e6, t_c + window_s * 0.5e6
            g = g[(g["t_us"] >= lo_t) & (g["t_us"] <= hi_t)]
            b = b[(b["end_t_us"] >= lo_t) & (b["arrival_t_us"] <= hi_t)]
            buf = buf[(buf["t_us"] >= lo_t) & (buf["t_us"] <= hi_t)]
        ts = lambda x: (np.asarray(x, dtype=float)) / 1e6  # noqa: E731
        for row in b.itertuples(index=False):
            ax.axvspan(ts(row.arrival_t_us), ts(row.end_t_us + rec.slot_us), color="tab:orange", alpha=0.18, lw=0)
            ax.axvline(ts(row.arrival_t_us), color="tab:orange", lw=0.6, ls="--")
        obs = g[g["observed"] & g["decoded"]]
        inf = g[~g["observed"]]
        und = g[g["observed"] & ~g["decoded"]]
        ax.plot(ts(obs["t_us"]), obs["bytes_est"], "o", ms=3, color="tab:blue", label="grant (decoded)")
        ax.plot(ts(inf["t_us"]), inf["bytes_est"], "o", ms=3, mfc="none", color="tab:red",
                label="grant inferred (missed DCI)")
        ax.plot(ts(und["t_us"]), und["bytes_est"], "x", ms=4, color="tab:purple", label="undecodable DCI")
        ax.set_ylabel("bytes/grant")
        cls = rec.users[(rec.users["rnti"] == rnti) & (rec.users["direction"] == d)]["traffic_class"]
        ax.set_title(f"RNTI {rnti} {d}: {cls.iloc[0] if len(cls) else '?'}, {len(b)} bursts shown",
                     fontsize=9, loc="left")
        ax2 = ax.twinx()
        bt, b_est, b_lo, b_hi = _buffer_steps(buf, b, rec.slot_us)
        ax2.step(ts(bt), b_est, where="post", color="k", lw=0.7, label="buffer est.")
        ax2.fill_between(ts(bt), b_lo, b_hi, step="post", color="grey", alpha=0.25, label="buffer bounds")
        ax2.set_ylabel("buffer bytes", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    h1, l1 = axes[0, 0].get_legend_handles_labels()
    fig.legend(h1, l1, loc="upper right", fontsize=7, ncol=3)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return panels


def _buffer_steps(buf, bursts, slot_us: float):
    """Buffer step series with a drop to 0 one slot after each burst's last grant."""
    ends = bursts["end_t_us"].to_numpy(dtype=float) + slot_us
    t = np.concatenate([buf["t_us"].to_numpy(dtype=float), ends])
    z = np.zeros(len(ends))
    est = np.concatenate([buf["buffer_est_bytes"].to_numpy(dtype=float), z])
    lo = np.concatenate([buf["buffer_lo_bytes"].to_numpy(dtype=float), z])
    hi = np.concatenate([buf["buffer_hi_bytes"].to_numpy(dtype=float), z])
    o = np.argsort(t, kind="stable")
    return t[o], est[o], lo[o], hi[o]
