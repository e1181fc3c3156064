"""Held-out fidelity of a learned scheduler, next to the best-fitting analytical policy.

Open loop ("teacher forcing"): every slot of the held-out telemetry is
rebuilt with the users' true state (buffer, CQI, history of real grants), the
learned policy decides, and its decision is compared with the DCIs the real
gNB sent. The figures:

* ``sched_f1``: F1 of "this user gets a new transmission in this slot";
* ``prb_mae``: mean |predicted - true| PRBs over (slot, user) pairs where
  either side scheduled the user, and ``prb_mae_frac`` = that / carrier PRBs;
* ``mcs_exact`` / ``mcs_within1``: MCS accuracy over the truly scheduled users
  (the model's MCS head for that user, whether or not it scheduled it);
* ``tput_err_median`` / ``tput_err_p90``: per-user throughput error in 100 ms
  windows, |predicted - true| / true bits over windows where the user got
  data (TBS of 38.214 5.1.3.2 from the predicted PRBs and MCS);

Baselines: ``pf`` (the window fitted among the feature time constants),
``rr`` and ``maxcqi``, each serving users with data in its order with the PRBs
their buffer needs at the CQI's MCS (38.214 5.2.2.1) up to the user limit;
the one with the best ``tput_err_median`` is reported as the best baseline.
"""

from __future__ import annotations

import numpy as np

from neuralemu.nr.tbs import tbs_bits_array
from neuralemu.scheduler_model import features as F
from neuralemu.scheduler_model import mcs_info
from neuralemu.scheduler_model.bundle import Bundle
from neuralemu.scheduler_model.dataset import SlotDataset
from neuralemu.scheduler_model.runtime import Runtime, allocate, bits_per_prb_by_mcs

WINDOW_US = 100_000


def predict(bundle: Bundle, data: SlotDataset, *, seed: int | None = None):
    """(prbs [S,N], mcs [S,N] of the decision, mcs_head [S,N] argmax for every user)."""
    rt = Runtime(bundle)
    rng = None if seed is None else np.random.default_rng(seed)
    s, n = data.mask.shape
    prbs = np.zeros((s, n), dtype=np.int64)
    mcs = np.zeros((s, n), dtype=np.int64)
    mcs_head = np.zeros((s, n), dtype=np.int64)
    counts = data.mask.sum(axis=1)
    for i in range(s):
        k = int(counts[i])
        d = "ul" if data.is_ul[i] else "dl"
        sl, sh, ml = rt.forward(data.user_x[i, :k], data.cell_x[i])
        top = int(data.mcs_top[i])
        bpp = bits_per_prb_by_mcs(bundle.cell, d, int(data.symbols[i]), bundle.cell.layers[d],
                                  bundle.cell.mcs_table[d])
        p, m = allocate(sl, sh, ml, prbs_available=int(data.prbs_available[i]),
                        max_ues=bundle.cell.max_ues.get(d, F.MAX_USERS), mcs_top=top, rng=rng,
                        buffer_bits=data.buffer_bytes[i, :k] * 8.0, bits_per_prb_by_mcs=bpp)
        prbs[i, :k] = p
        mcs[i, :k] = m
        mcs_head[i, :k] = np.argmax(ml[:, :top + 1], axis=1)
    return prbs, mcs, mcs_head


def tbs_of(data: SlotDataset, cell, prbs: np.ndarray, mcs: np.ndarray) -> np.ndarray:
    """TBS bits per (slot, user) for PRBs and MCS (38.214 5.1.3.2), with the cell's N_RE per PRB."""
    out = np.zeros(prbs.shape, dtype=np.float64)
    for is_ul in (False, True):
        d = "ul" if is_ul else "dl"
        rows = np.flatnonzero(data.is_ul == is_ul)
        if rows.size == 0 or d not in cell.mcs_table:
            continue
        table = cell.mcs_table[d]
        re_map = cell.re_per_prb.get(d, {})
        sym = data.symbols[rows]
        re = np.array([re_map.get(str(int(x)), 12 * int(x) - 12) for x in sym])[:, None]
        p = prbs[rows]
        n_re = np.minimum(re, 156) * p
        m = np.clip(mcs[rows], 0, mcs_info.top_mcs(table))
        tbs = tbs_bits_array(n_re.ravel(), m.ravel(), table, data.layers[rows].ravel().clip(1, 4))
        out[rows] = np.where(p > 0, np.asarray(tbs).reshape(p.shape), 0)
    return out


def metrics(data: SlotDataset, prbs: np.ndarray, mcs_pred: np.ndarray,
            tbs_pred: np.ndarray) -> dict[str, float]:
    m = data.mask
    true_s = (data.sched > 0) & m
    pred_s = (prbs > 0) & m
    tp = float((true_s & pred_s).sum())
    prec = tp / max(float(pred_s.sum()), 1.0)
    rec = tp / max(float(true_s.sum()), 1.0)
    f1 = 2 * prec * rec / max(prec + rec, 1e-12)
    either = true_s | pred_s
    err = np.abs(prbs - data.prbs)[either]
    prb_mae = float(err.mean()) if err.size else 0.0
    prbs_total = float(np.median(data.prbs_total)) if len(data) else 1.0
    dm = (mcs_pred - data.mcs)[true_s]
    tput = throughput_errors(data, tbs_pred)
    return {"sched_f1": f1, "sched_precision": prec, "sched_recall": rec,
            "prb_mae": prb_mae, "prb_mae_frac": prb_mae / max(prbs_total, 1.0),
            "mcs_exact": float((dm == 0).mean()) if dm.size else float("nan"),
            "mcs_within1": float((np.abs(dm) <= 1).mean()) if dm.size else float("nan"),
            "tput_err_median": float(np.median(tput)) if tput.size else float("nan"),
            "tput_err_p90": float(np.quantile(tput, 0.9)) if tput.size else float("nan"),
            "tput_windows": int(tput.size), "samples": int(len(data))}


def window_throughput(data: SlotDataset, tbs: np.ndarray) -> dict[tuple[int, int, int], float]:
    """{(ue, is_ul, window): bits} summed over 100 ms windows."""
    w = (data.t_us // WINDOW_US).astype(np.int64)
    sel = data.mask & (tbs > 0)
    s_idx, u_idx = np.nonzero(sel)
    keys = np.stack([data.ue_id[s_idx, u_idx], data.is_ul[s_idx].astype(np.int64), w[s_idx]], 1)
    out: dict[tuple[int, int, int], float] = {}
    for key, bits in zip(map(tuple, keys.tolist()), tbs[s_idx, u_idx].tolist()):
        out[key] = out.get(key, 0.0) + bits
    return out


def throughput_errors(data: SlotDataset, tbs_pred: np.ndarray) -> np.ndarray:
    true = window_throughput(data, data.tbs_bits)
    pred = window_throughput(data, tbs_pred)
    # complete windows only: drop each recording's first and last window
    w = (data.t_us // WINDOW_US).astype(np.int64)
    if len(w) == 0:
        return np.zeros(0)
    lo, hi = int(w.min()), int(w.max())
    errs = [abs(pred.get(k, 0.0) - v) / v for k, v in true.items() if lo < k[2] < hi and v > 0]
    return np.asarray(errs, dtype=np.float64)


def baseline_predict(data: SlotDataset, cell, rule: str, tau_index: int = 1):
    """(prbs, mcs) of an analytical policy on the same slots: ``pf``, ``rr`` or ``maxcqi``."""
    s, n = data.mask.shape
    prbs = np.zeros((s, n), dtype=np.int64)
    mcs = np.zeros((s, n), dtype=np.int64)
    for i in range(s):
        d = "ul" if data.is_ul[i] else "dl"
        table = cell.mcs_table[d]
        k = int(data.mask[i].sum())
        cqi = data.cqi[i, :k]
        la = mcs_info.cqi_to_mcs(table, cqi)
        se = mcs_info.cqi_spectral_efficiency(table, cqi)
        if rule == "pf":
            key = -(se / (data.avg_bps[i, :k, tau_index] + 100.0))
        elif rule == "rr":
            key = -data.since_grant[i, :k]
        else:
            key = -se
        buf = data.buffer_bytes[i, :k]
        bits_prb = F.raw_bits(1, int(data.symbols[i]), int(data.layers[i, 0]), la, table)
        left = int(data.prbs_available[i])
        served = 0
        for j in np.argsort(key, kind="stable"):
            if left <= 0 or served >= cell.max_ues.get(d, F.MAX_USERS):
                break
            if buf[j] <= 0:
                continue
            need = int(np.ceil(buf[j] * 8.0 / max(bits_prb[j], 1.0)))
            give = max(1, min(need, left))
            prbs[i, j] = give
            mcs[i, j] = la[j]
            left -= give
            served += 1
        mcs[i, :k] = np.where(prbs[i, :k] > 0, mcs[i, :k], la)
    return prbs, mcs


def evaluate(bundle: Bundle, data: SlotDataset, *, seed: int | None = None) -> dict:
    """Figures for the learned policy and the analytical baselines on ``data``."""
    cell = bundle.cell
    prbs, _, mcs_head = predict(bundle, data, seed=seed)
    learned = metrics(data, prbs, mcs_head, tbs_of(data, cell, prbs, mcs_head))
    baselines = {}
    for name, tau in [("pf", i) for i in range(len(F.AVG_WINDOWS_SLOTS))] + [("rr", 0), ("maxcqi", 0)]:
        bp, bm = baseline_predict(data, cell, name, tau)
        label = f"pf_w{F.AVG_WINDOWS_SLOTS[tau]}" if name == "pf" else name
        baselines[label] = metrics(data, bp, bm, tbs_of(data, cell, bp, bm))
    best = min(baselines, key=lambda k: (np.nan_to_num(baselines[k]["tput_err_median"], nan=9e9)))
    return {"learned": learned, "baselines": baselines, "best_baseline": best,
            "predictions": {"prbs": prbs, "mcs": mcs_head}}


def plot(data: SlotDataset, result: dict, path: str, max_slots: int = 400) -> None:
    """Predicted vs true PRBs of the busiest users over the first slots, and a PRB scatter."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prbs = result["predictions"]["prbs"]
    sel = slice(0, min(max_slots, len(data)))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    busiest = np.argsort(-data.prbs[sel].sum(axis=0))[:3]
    for j in busiest:
        axes[0].plot(data.t_us[sel] / 1e3, data.prbs[sel, j], lw=1, label=f"true user {j}")
        axes[0].plot(data.t_us[sel] / 1e3, prbs[sel, j], lw=1, ls="--", label=f"learned user {j}")
    axes[0].set_xlabel("time (ms)")
    axes[0].set_ylabel("PRBs")
    axes[0].legend(fontsize=7)
    m = data.mask & ((data.prbs > 0) | (prbs > 0))
    axes[1].scatter(data.prbs[m], prbs[m], s=3, alpha=0.3)
    top = float(np.max(data.prbs_total)) if len(data) else 1.0
    axes[1].plot([0, top], [0, top], "k:", lw=1)
    axes[1].set_xlabel("true PRBs")
    axes[1].set_ylabel("learned PRBs")
    fig.suptitle("learned scheduler vs telemetry (held out)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
