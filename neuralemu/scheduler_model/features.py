"""The learned scheduler's input features: ONE definition for training and inference.

History-as-features: the model sees no sequence, only the current slot. What it
knows about the past comes from running per-user state kept by
:class:`HistoryTracker` (last MCS and PRBs of a new transmission, slots since
the last grant, exponentially averaged granted throughput over several time
constants). The same tracker runs

* in :mod:`neuralemu.scheduler_model.dataset`, fed with the new-transmission
  DCIs of the telemetry, slot by slot, and
* in :class:`neuralemu.scheduler_model.policy.LearnedPolicy`, fed through
  ``Policy.observe`` with the allocation the engine actually applied,

and :func:`user_features` / :func:`cell_features` turn "what the gNB knows now"
(buffer, CQI, SINR, pending HARQ retransmissions: from :class:`UeFeatures` at
inference, from the UE-side log and the DCI log in training) plus the tracker's
state into the model's input rows. Train and inference therefore compute every
feature with the same code.

Throughput is counted in "raw bits": PRBs x 12 subcarriers x symbols x layers x
Qm x R of the MCS (38.214 5.1.3.1), i.e. the TBS before DMRS/overhead and
rounding (38.214 5.1.3.2). It is exactly reproducible from a DCI row and from an
:class:`Allocation` with its :class:`SlotContext`.
"""

from __future__ import annotations

import numpy as np

from neuralemu.scheduler_model import mcs_info

MAX_USERS = 64                  # users per slot the model handles (padded + masked)
N_MCS_CLASSES = 29              # MCS indices 0..28 of a new transmission (38.214 5.1.3.1)
AVG_TAUS_MS = (10.0, 50.0, 200.0, 1000.0)   # time constants of the averaged granted throughput
SLOT_TYPES = ("D", "U", "S")

USER_FEATURE_NAMES = (
    "log_buffer", "has_data", "cqi", "sinr", "last_mcs", "never_granted", "last_prbs_frac",
    "log_slots_since_grant",
    *[f"log_avg_kbps_{int(t)}ms" for t in AVG_TAUS_MS],
    *[f"avg_share_{int(t)}ms" for t in AVG_TAUS_MS],
    "pending_retx", "is_ul", "need_frac", "log_se_cqi", "cqi_mcs",
    *[f"pf_metric_{int(t)}ms" for t in AVG_TAUS_MS],
)
CELL_FEATURE_NAMES = ("slot_D", "slot_U", "slot_S", "prbs_available_frac", "symbols_frac",
                      "n_users_frac", "max_ues_frac", "is_ul")
N_USER_FEATURES = len(USER_FEATURE_NAMES)
N_CELL_FEATURES = len(CELL_FEATURE_NAMES)


def raw_bits(prbs, symbols, layers, mcs, mcs_table: str) -> np.ndarray:
    """PRBs x 12 x symbols x layers x Qm x R: the information bits before overhead (38.214 5.1.3.2)."""
    se = mcs_info.spectral_efficiency(mcs_table, np.asarray(mcs))
    return np.asarray(prbs, dtype=np.float64) * 12.0 * np.asarray(symbols, dtype=np.float64) \
        * np.asarray(layers, dtype=np.float64) * se


class HistoryTracker:
    """Running per-user state of one direction, updated after every scheduling decision.

    The averaged throughput is a continuous-time exponential average of the
    granted raw bits: ``avg(t) = sum_k bits_k * exp(-(t - t_k)/tau) / tau``,
    kept lazily per user so that a slot costs O(users) numpy work.
    """

    def __init__(self, taus_ms=AVG_TAUS_MS) -> None:
        self.taus_us = np.asarray(taus_ms, dtype=np.float64) * 1000.0
        self._index: dict[int, int] = {}
        self._cap = 0
        self._grow(64)
        self._last_ids: np.ndarray | None = None
        self._last_rows: np.ndarray | None = None

    def _grow(self, cap: int) -> None:
        old = self._cap
        def grow(a, fill, shape=()):
            new = np.full((cap, *shape), fill, dtype=np.float64)
            if old:
                new[:old] = a
            return new
        self.last_mcs = grow(getattr(self, "last_mcs", None), -1.0)
        self.last_prbs = grow(getattr(self, "last_prbs", None), 0.0)
        self.last_grant_slot = grow(getattr(self, "last_grant_slot", None), -np.inf)
        self.avg_value = grow(getattr(self, "avg_value", None), 0.0, (len(self.taus_us),))
        self.avg_t_us = grow(getattr(self, "avg_t_us", None), 0.0)
        self._cap = cap

    def rows(self, ue_ids: np.ndarray) -> np.ndarray:
        """Row indices of these users in the state arrays (new users start empty)."""
        if self._last_ids is not None and self._last_ids.shape == ue_ids.shape \
                and np.array_equal(self._last_ids, ue_ids):
            return self._last_rows
        index = self._index
        out = np.empty(len(ue_ids), dtype=np.int64)
        for i, ue in enumerate(ue_ids.tolist()):
            row = index.get(ue)
            if row is None:
                row = len(index)
                if row >= self._cap:
                    self._grow(self._cap * 2)
                index[ue] = row
            out[i] = row
        self._last_ids = ue_ids.copy()
        self._last_rows = out
        return out

    def averages_bps(self, rows: np.ndarray, t_us: float) -> np.ndarray:
        """[n, n_taus] averaged granted raw throughput in bits/s at time ``t_us``."""
        dt = np.maximum(t_us - self.avg_t_us[rows], 0.0)[:, None]
        return self.avg_value[rows] * np.exp(-dt / self.taus_us) * 1e6 / self.taus_us

    def update(self, rows: np.ndarray, slot: int, t_us: float, prbs: np.ndarray,
               mcs: np.ndarray, bits: np.ndarray) -> None:
        """Record the new transmissions of one decision (``prbs > 0`` = granted)."""
        granted = prbs > 0
        if not granted.any():
            return
        r = rows[granted]
        self.last_mcs[r] = mcs[granted]
        self.last_prbs[r] = prbs[granted]
        self.last_grant_slot[r] = slot
        dt = np.maximum(t_us - self.avg_t_us[r], 0.0)[:, None]
        self.avg_value[r] = self.avg_value[r] * np.exp(-dt / self.taus_us) + bits[granted][:, None]
        self.avg_t_us[r] = t_us


def user_features(*, rows: np.ndarray, tracker: HistoryTracker, slot: int, t_us: float,
                  direction: str, buffer_bytes: np.ndarray, cqi: np.ndarray,
                  sinr_db: np.ndarray | None, pending_retx: np.ndarray, prbs_available: int,
                  prbs_total: int, symbols: int, layers: int, mcs_table: str) -> np.ndarray:
    """[n_users, N_USER_FEATURES] float32 model input for one slot and direction."""
    n = len(rows)
    x = np.empty((n, N_USER_FEATURES), dtype=np.float64)
    buf = np.asarray(buffer_bytes, dtype=np.float64)
    cqi = np.asarray(cqi, dtype=np.float64)
    last_mcs = tracker.last_mcs[rows]
    never = last_mcs < 0
    since = slot - tracker.last_grant_slot[rows]
    since = np.where(np.isfinite(since), since, 1e5)
    avg = tracker.averages_bps(rows, t_us)                       # [n, T]
    nt = avg.shape[1]
    x[:, 0] = np.log1p(buf) / 10.0
    x[:, 1] = buf > 0
    x[:, 2] = cqi / 15.0
    x[:, 3] = 0.0 if sinr_db is None else np.clip(np.asarray(sinr_db, dtype=np.float64), -20, 40) / 30.0
    x[:, 4] = np.where(never, 0.0, last_mcs) / 28.0
    x[:, 5] = never
    x[:, 6] = tracker.last_prbs[rows] / max(prbs_total, 1)
    x[:, 7] = np.log1p(np.minimum(since, 1e5)) / 8.0
    log_avg = np.log1p(avg / 1e3)
    x[:, 8:8 + nt] = log_avg / 10.0
    total = avg.sum(axis=0, keepdims=True)
    x[:, 8 + nt:8 + 2 * nt] = avg / np.maximum(total, 1e-9)
    c = 8 + 2 * nt
    x[:, c] = np.asarray(pending_retx, dtype=np.float64) / 4.0
    x[:, c + 1] = direction == "ul"
    # PRBs this user's buffer needs at its expected MCS, as a fraction of what is free
    cqi_mcs = mcs_info.cqi_to_mcs(mcs_table, cqi)
    est_mcs = np.where(never, cqi_mcs, last_mcs)
    bits_per_prb = raw_bits(1, symbols, layers, est_mcs, mcs_table)
    need = buf * 8.0 / np.maximum(bits_per_prb, 1.0) / max(prbs_available, 1)
    x[:, c + 2] = np.minimum(need, 4.0)
    se_cqi = mcs_info.cqi_spectral_efficiency(mcs_table, cqi)
    log_se = np.log(np.maximum(se_cqi, 0.05))
    x[:, c + 3] = log_se
    x[:, c + 4] = cqi_mcs / 28.0
    x[:, c + 5:c + 5 + nt] = (log_se[:, None] - np.log(avg + 1e3)) / 10.0
    return x.astype(np.float32)


def cell_features(*, direction: str, slot_type: str, prbs_available: int, prbs_total: int,
                  symbols: int, n_users: int, max_ues: int) -> np.ndarray:
    """[N_CELL_FEATURES] float32 model input describing the slot."""
    return np.array([slot_type == "D", slot_type == "U", slot_type == "S",
                     prbs_available / max(prbs_total, 1), symbols / 14.0,
                     n_users / MAX_USERS, min(max_ues, 32) / 32.0, direction == "ul"],
                    dtype=np.float32)


