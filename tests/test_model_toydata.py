"""A tiny hand-made telemetry generator for the learned-scheduler unit tests.

It writes canonical DCI tables and UE-side logs (the shapes ``telemetry``
produces) from a toy proportional-fair or max-CQI gNB, so the dataset / model /
bundle / runtime code can be unit-tested without the real ``synth``. The
acceptance tests (``test_model_acceptance.py``) use the real ``synth``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuralemu.scheduler_model import mcs_info

SLOT_US = 500


def toy_telemetry(*, n_ues: int = 6, n_slots: int = 3000, seed: int = 0, rule: str = "pf",
                  prbs_total: int = 51, max_ues: int = 4, window_slots: float = 50.0,
                  retx_prob: float = 0.05, rnti0: int = 17000):
    """(dci DataFrame, ue_log DataFrame): dl only, FDD, 30 kHz (mu=1), MCS table qam256."""
    rng = np.random.default_rng(seed)
    table = "qam256"
    ids = np.arange(rnti0, rnti0 + n_ues)
    rate = rng.uniform(2e3, 2e4, n_ues)                      # bytes per slot arriving
    buf = np.zeros(n_ues)
    cqi = rng.integers(4, 15, n_ues).astype(float)
    avg = np.ones(n_ues)
    dci_rows, log_rows = [], []
    pending = []                                            # (slot_due, ue, prbs, mcs, tbs, harq)
    harq = np.zeros(n_ues, dtype=int)
    for s in range(n_slots):
        t = s * SLOT_US
        burst = rng.random(n_ues) < 0.3
        buf += burst * rng.exponential(rate / 0.3)
        if s % 10 == 0:
            cqi = np.clip(cqi + rng.integers(-1, 2, n_ues), 1, 15)
        for j in range(n_ues):
            log_rows.append((t, int(ids[j]), "dl", int(buf[j]), int(cqi[j])))
        avail = prbs_total
        busy = set()
        for p in [p for p in pending if p[0] == s]:
            pending.remove(p)
            _, j, prbs, mcs, tbs, h = p
            busy.add(j)
            dci_rows.append((s, t, int(ids[j]), "dl", 0, prbs, 13, 1, 29, table, 0, 0, h, 0, 2,
                             True, True))
            avail -= prbs
        la = mcs_info.cqi_to_mcs(table, cqi)
        bits_prb = 12 * 12 * mcs_info.spectral_efficiency(table, la)
        se = mcs_info.cqi_spectral_efficiency(table, cqi)
        metric = se / avg if rule == "pf" else se
        order = [j for j in np.argsort(-metric, kind="stable")
                 if buf[j] > 0 and j not in busy][:max_ues]
        served = np.zeros(n_ues)
        start = 0
        for j in order:
            if avail <= 0:
                break
            need = int(np.ceil(buf[j] * 8 / bits_prb[j]))
            prbs = int(min(need, avail))
            tbs = int(prbs * bits_prb[j])
            h = int(harq[j] % 16)
            harq[j] += 1
            dci_rows.append((s, t, int(ids[j]), "dl", start, prbs, 13, 1, int(la[j]), table, tbs,
                             prbs * 144, h, 1, 0, False, True))
            start += prbs
            avail -= prbs
            buf[j] = max(buf[j] - tbs / 8, 0)
            served[j] = tbs
            if rng.random() < retx_prob:
                pending.append((s + 8, j, prbs, int(la[j]), tbs, h))
        avg = (1 - 1 / window_slots) * avg + served / window_slots
    cols = ["slot", "t_us", "rnti", "direction", "prb_start", "prb_count", "symbols", "layers",
            "mcs", "mcs_table", "tbs_bits", "n_re", "harq_id", "ndi", "rv", "is_retx", "valid"]
    dci = pd.DataFrame(dci_rows, columns=cols)
    dci.attrs.update({"mu": 1, "slot_us": SLOT_US, "source": "toy"})
    ue_log = pd.DataFrame(log_rows, columns=["t_us", "ue", "direction", "buffer_bytes", "cqi"])
    return dci, ue_log


def test_toy_generator_shapes():
    dci, ue = toy_telemetry(n_slots=200)
    assert len(dci) > 100 and len(ue) == 200 * 6
    per_slot = dci[~dci.is_retx].groupby("slot").prb_count.sum()
    assert per_slot.max() <= 51
