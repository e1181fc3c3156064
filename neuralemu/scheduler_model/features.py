"""The learned scheduler's input features: ONE definition for training and inference.

History-as-features: the model sees no sequence, only the current slot. What it
knows about the past comes from running per-user state kept by
:class:`HistoryTracker` (last MCS and PRBs of a new transmission, slots since
the last grant, exponentially averaged granted throughput over several time
windows). The same tracker runs

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
:class:`Allocation` with its :class:`SlotContext`. The averages are EWMAs with
``alpha = 1/W`` per slot that carries the direction (W in ``AVG_WINDOWS_SLOTS``),
the way a proportional-fair scheduler keeps them; the count of such slots is a
function of the absolute slot index and the TDD pattern
(:func:`direction_slot_index`), so it is the same in telemetry and in the engine
even for slots in which nobody was scheduled.

Besides absolute values, the features include *relative* ones over the users
with data in the slot (gap of the user's log proportional-fair metric, log
spectral efficiency and log slots-since-grant to the best such user, in each
window), so that metric-ordered schedulers (pf with any window, max-CQI,
round robin) are easy to represent; the model still has to learn which one, with
which window, and how PRBs and MCS follow.
"""

from __future__ import annotations

import numpy as np

from neuralemu.scheduler_model import mcs_info

MAX_USERS = 64                  # users per slot the model handles (padded + masked)
N_MCS_CLASSES = 29              # MCS indices 0..28 of a new transmission (38.214 5.1.3.1)
AVG_WINDOWS_SLOTS = (10, 30, 100, 300, 1000)   # EWMA windows of the averaged granted throughput
SLOT_TYPES = ("D", "U", "S")

USER_FEATURE_NAMES = (
    "log_buffer", "has_data", "cqi", "sinr", "last_mcs", "last_prbs_frac",
    "log_slots_since_grant",
    *[f"log_avg_{w}" for w in AVG_WINDOWS_SLOTS],
    *[f"avg_share_{w}" for w in AVG_WINDOWS_SLOTS],
    "pending_retx", "is_ul", "need_frac", "log_need", "log_se_cqi", "cqi_mcs", "se_gap",
    "since_gap",
    *[f"pf_metric_{w}" for w in AVG_WINDOWS_SLOTS],
    *[f"pf_gap_{w}" for w in AVG_WINDOWS_SLOTS],
    *[f"pf_la_gap_{w}" for w in AVG_WINDOWS_SLOTS],
)
CELL_FEATURE_NAMES = ("slot_D", "slot_U", "slot_S", "prbs_available_frac", "symbols_frac",
                      "n_users_frac", "max_ues_frac", "is_ul")
N_USER_FEATURES = len(USER_FEATURE_NAMES)
N_CELL_FEATURES = len(CELL_FEATURE_NAMES)


I_LAST_MCS = USER_FEATURE_NAMES.index("last_mcs")
I_CQI_MCS = USER_FEATURE_NAMES.index("cqi_mcs")


def anchor_mcs(user_x: np.ndarray) -> np.ndarray:
    """The MCS a user's distribution is centred on, from its *raw* feature rows [..., F]:
    the ``last_mcs`` feature (the MCS of its last new transmission, or the CQI's MCS if it
    never had one)."""
    m = user_x[..., I_LAST_MCS] * 28.0
    return np.clip(np.rint(m), 0, N_MCS_CLASSES - 1).astype(np.int64)


def raw_bits(prbs, symbols, layers, mcs, mcs_table: str) -> np.ndarray:
    """PRBs x 12 x symbols x layers x Qm x R: the information bits before overhead (38.214 5.1.3.2)."""
    se = mcs_info.spectral_efficiency(mcs_table, np.asarray(mcs))
    return np.asarray(prbs, dtype=np.float64) * 12.0 * np.asarray(symbols, dtype=np.float64) \
        * np.asarray(layers, dtype=np.float64) * se


class HistoryTracker:
    """Running per-user state of one direction, updated after every scheduling decision.

    The averaged throughput is, for each window W, the EWMA of the granted raw
    bits per direction slot: after slot c, ``avg <- (1 - 1/W) avg + bits/W``.
    It is kept lazily per user (the value after its last grant and that
    slot's index), so a slot costs O(users): between grants it only decays.
    """

    def __init__(self, windows_slots=AVG_WINDOWS_SLOTS) -> None:
        self.keep = 1.0 - 1.0 / np.asarray(windows_slots, dtype=np.float64)
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
        self.last_grant_slot = grow(getattr(self, "last_grant_slot", None), -1e18)
        self.avg_value = grow(getattr(self, "avg_value", None), 0.0, (len(self.keep),))
        self.avg_at = grow(getattr(self, "avg_at", None), 0.0)
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

    def averages(self, rows: np.ndarray, dslot: float) -> np.ndarray:
        """[n, n_windows] averaged granted raw bits per direction slot, before slot ``dslot``."""
        gap = np.maximum(dslot - 1.0 - self.avg_at[rows], 0.0)[:, None]
        return self.avg_value[rows] * self.keep ** gap

    def update(self, rows: np.ndarray, slot: int, dslot: float, prbs: np.ndarray,
               mcs: np.ndarray, symbols: int, layers, mcs_table: str) -> None:
        """Record the new transmissions of one decision (``prbs > 0`` = granted)."""
        layers = np.ascontiguousarray(np.broadcast_to(np.asarray(layers, dtype=np.float64),
                                                      rows.shape))
        _update_kernel(rows, np.asarray(prbs, dtype=np.float64), np.asarray(mcs, dtype=np.int64),
                       layers, float(symbols), float(slot), float(dslot), self.keep,
                       mcs_info.se_lookup(mcs_table), self.last_mcs, self.last_prbs,
                       self.last_grant_slot, self.avg_value, self.avg_at)


def direction_slot_index(slot, period_slots: int, positions) -> np.ndarray:
    """How many slots carrying the direction come before ``slot`` (TDD pattern positions
    within a period of ``period_slots``); the clock of the throughput averages."""
    pos = np.sort(np.asarray([int(p) for p in positions], dtype=np.int64))
    slot = np.asarray(slot, dtype=np.int64)
    return ((slot // period_slots) * len(pos)
            + np.searchsorted(pos, slot % period_slots, side="left")).astype(np.float64)


def user_features(*, rows: np.ndarray, tracker: HistoryTracker, slot: int, dslot: float,
                  direction: str, buffer_bytes: np.ndarray, cqi: np.ndarray,
                  sinr_db: np.ndarray | None, pending_retx: np.ndarray, prbs_available: int,
                  prbs_total: int, symbols: int, layers: int, mcs_table: str) -> np.ndarray:
    """[n_users, N_USER_FEATURES] float32 model input for one slot and direction.

    The arithmetic is in :func:`_features_kernel` (compiled with numba); this
    wrapper only gathers the arrays. Train and inference both call it.
    """
    n = len(rows)
    out = np.empty((n, N_USER_FEATURES), dtype=np.float32)
    sinr = np.zeros(n) if sinr_db is None else np.asarray(sinr_db, dtype=np.float64)
    _features_kernel(rows, tracker.last_mcs, tracker.last_prbs, tracker.last_grant_slot,
                     tracker.avg_value, tracker.avg_at, tracker.keep, float(slot), float(dslot),
                     direction == "ul", np.asarray(buffer_bytes, dtype=np.float64),
                     np.asarray(cqi, dtype=np.float64), sinr, sinr_db is not None,
                     np.asarray(pending_retx, dtype=np.float64), float(prbs_available),
                     float(prbs_total), float(symbols), float(layers),
                     mcs_info.se_lookup(mcs_table), mcs_info.cqi_se_lookup(mcs_table),
                     mcs_info.cqi_mcs_lookup(mcs_table), out)
    return out


from neuralemu.scheduler_model.kernels import (  # noqa: E402  (compiled loops, one module)
    SINCE_CAP_SLOTS, _features_loops, features_kernel as _features_kernel, update_kernel as _update_kernel)

features_kernel = _features_kernel      # for other compiled loops (the dataset builder)
update_kernel = _update_kernel


def cell_features_array(*, is_ul, slot_type_code, prbs_available, prbs_total, symbols, n_users,
                        max_ues) -> np.ndarray:
    """[S, N_CELL_FEATURES] float32: the slot's cell features, vectorised over slots."""
    code = np.asarray(slot_type_code)
    avail = np.asarray(prbs_available, dtype=np.float64)
    s = avail.shape[0]
    out = np.empty((s, N_CELL_FEATURES), dtype=np.float32)
    for i in range(len(SLOT_TYPES)):
        out[:, i] = code == i
    out[:, 3] = avail / max(prbs_total, 1)
    out[:, 4] = np.asarray(symbols, dtype=np.float64) / 14.0
    out[:, 5] = np.asarray(n_users, dtype=np.float64) / MAX_USERS
    out[:, 6] = min(max_ues, 32) / 32.0
    out[:, 7] = np.asarray(is_ul, dtype=np.float64)
    return out


def cell_features(*, direction: str, slot_type: str, prbs_available: int, prbs_total: int,
                  symbols: int, n_users: int, max_ues: int) -> np.ndarray:
    """[N_CELL_FEATURES] float32 model input describing one slot (see cell_features_array)."""
    return cell_features_array(is_ul=[direction == "ul"], slot_type_code=[SLOT_TYPES.index(slot_type)
                               if slot_type in SLOT_TYPES else -1], prbs_available=[prbs_available],
                               prbs_total=prbs_total, symbols=[symbols], n_users=[n_users],
                               max_ues=max_ues)[0]
