"""PRBs and MCS over time for the busiest users of a per-DCI table (``inspect --plot``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from neuralemu.errors import InputError


def busiest_rntis(df: pd.DataFrame, top: int) -> list[int]:
    """The ``top`` RNTIs with the most PRBs over valid DCIs, busiest first."""
    valid = df[df["valid"]]
    prbs = valid.groupby("rnti")["prb_count"].sum().sort_values(ascending=False, kind="stable")
    return [int(r) for r in prbs.index[:top]]


def plot_busiest_users(df: pd.DataFrame, path: str | Path, top: int = 4) -> list[int]:
    """Save a PNG/PDF/SVG with PRBs (top) and MCS (bottom) over time per busy user."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rntis = busiest_rntis(df, top)
    valid = df[df["valid"]]
    t0 = int(df["t_us"].iloc[0]) if len(df) else 0
    fig, (ax_prb, ax_mcs) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for rnti in rntis:
        u = valid[valid["rnti"] == rnti]
        for direction, marker in (("dl", "o"), ("ul", "^")):
            d = u[u["direction"] == direction]
            if d.empty:
                continue
            t_s = (d["t_us"] - t0) / 1e6
            label = f"{rnti} {direction}"
            ax_prb.scatter(t_s, d["prb_count"], s=6, marker=marker, label=label)
            new = d[~d["is_retx"]]
            ax_mcs.scatter((new["t_us"] - t0) / 1e6, new["mcs"], s=6, marker=marker, label=label)
    ax_prb.set_ylabel("PRBs per DCI")
    ax_mcs.set_ylabel("MCS (new transmissions)")
    ax_mcs.set_xlabel("time since first DCI (s)")
    title = Path(str(df.attrs.get("source", ""))).name
    ax_prb.set_title(f"busiest users: {title}" if title else "busiest users")
    if rntis:
        ax_prb.legend(loc="upper right", fontsize=7, markerscale=2, ncol=2)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except (OSError, ValueError) as exc:
        raise InputError(str(path), f"cannot write plot: {exc}") from None
    finally:
        plt.close(fig)
    return rntis
