"""The scheduling-policy interface: per-user features in, per-user allocation out.

Every policy (``pf``, ``rr``, ``maxcqi``, ``learned``, ``replay``) implements
:class:`Policy`. The engine calls :meth:`Policy.decide` once per slot and per
direction that the slot can carry (TDD pattern, 38.213 11.1), after it has set
aside the PRBs of due HARQ retransmissions (38.214 5.1 / 6.1: retransmissions
are not the policy's business; they keep their TBS and go first).

The engine owns everything around the decision: PRB placement (type 0 / type 1,
38.214 5.1.2.2), TBS (38.214 5.1.3.2), HARQ, and clamping. A policy may be
wrong, but the engine never lets a decision break the slot's PRB budget, the
per-slot user limit, a valid MCS index or the slot's direction.

This module depends on numpy only; ``cell`` never imports a learned or replay
policy, they plug in from outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class SlotContext:
    """What the scheduler knows about the slot it is filling."""

    slot: int              # absolute slot index since the start of the run
    t_us: int              # slot start time in microseconds
    direction: str         # "dl" or "ul": the link being scheduled now
    slot_type: str         # "D", "U" or "S" (TDD special slot) ; FDD slots are "D" for dl, "U" for ul
    prbs_available: int    # PRBs free for new transmissions (after retransmissions)
    prbs_total: int        # PRBs in the carrier (38.101-1 Table 5.3.2-1)
    symbols: int           # PDSCH/PUSCH symbols in this slot for this direction
    max_ues: int           # users that may still be scheduled this slot (PDCCH limit)
    mcs_table: str         # "qam64", "qam256" or "qam64lowse" (38.214 5.1.3.1)
    max_layers: int


@dataclass
class UeFeatures:
    """Per-user state for one direction; every array has one entry per candidate user.

    Candidates are the attached users of this direction, in a stable order.
    Users with nothing to send are included (buffer_bytes == 0) so that a
    policy may learn when a cell leaves PRBs unused.
    """

    ue_id: np.ndarray                # int64, the engine's user id (RNTI in telemetry)
    buffer_bytes: np.ndarray         # float64, RLC bytes the gNB knows of (ul: last BSR)
    cqi: np.ndarray                  # int64, last reported wideband CQI (0 = none yet)
    sinr_db: np.ndarray              # float64, last reported SINR
    la_mcs: np.ndarray               # int64, the MCS link adaptation recommends (CQI + OLLA)
    avg_tput_bps: np.ndarray         # float64, exponentially averaged served throughput
    last_mcs: np.ndarray             # int64, MCS of the last new transmission (-1 = never)
    last_prbs: np.ndarray            # int64, PRBs of the last new transmission (0 = never)
    slots_since_grant: np.ndarray    # int64, slots since the last grant (large if never)
    pending_retx: np.ndarray         # int64, HARQ processes waiting for a retransmission
    priority: np.ndarray             # float64, scenario priority weight (1.0 default)

    def __len__(self) -> int:
        return int(self.ue_id.shape[0])


@dataclass
class Allocation:
    """The decision: PRBs, MCS and layers per candidate user (same order as UeFeatures).

    ``prbs == 0`` means not scheduled. ``prb_start`` is optional: when None the
    engine places the allocation itself (contiguous type 1 by default).
    """

    prbs: np.ndarray                       # int64
    mcs: np.ndarray                        # int64
    layers: np.ndarray                     # int64
    prb_start: np.ndarray | None = None    # int64, or None for engine placement
    info: dict = field(default_factory=dict)  # free-form diagnostics (e.g. decision time)

    @classmethod
    def empty(cls, n_users: int) -> "Allocation":
        z = np.zeros(n_users, dtype=np.int64)
        return cls(prbs=z.copy(), mcs=z.copy(), layers=np.ones(n_users, dtype=np.int64))


@runtime_checkable
class Policy(Protocol):
    """A scheduler. ``name`` is what scenarios and the API call it."""

    name: str

    def decide(self, ctx: SlotContext, ues: UeFeatures) -> Allocation:
        ...

    def observe(self, ctx: SlotContext, ues: UeFeatures, alloc: Allocation) -> None:
        """Called after the engine applied (and clamped) ``alloc``; stateful policies update here."""
        ...
