"""The ``replay`` policy: per-slot capacity recorded in telemetry, served by the slot engine.

Record-and-replay runs on the same engine as every other policy (so the
datapath, the delivery log and the telemetry are the same); only the decision
changes. Each slot and direction, the policy grants a user the bytes its trace
recorded for that slot:

* Mahimahi traces (``mahimahi_down`` / ``mahimahi_up``): each line is a
  1500-byte delivery opportunity at its millisecond
  (:func:`neuralemu.telemetry.mahimahi.mahimahi_to_slot_bytes` spreads them
  over slots). The trace loops, as in ``mm-link``.
* NR-Scope DCI logs (``nrscope`` + ``rnti``): the TBS of every valid new
  transmission (38.214 5.1.3.2; retransmissions carry no new bytes) of that
  RNTI in that slot, per direction (DCI 1_1 downlink, 0_1 uplink). Loops too.

A grant is a PRB count at one MCS (the highest whose first-transmission BLER
at the user's SINR is at most :data:`MAX_BLER`, so HARQ rarely interferes), as
many PRBs as keep the TBS at or below the recorded bytes plus the carry of
earlier slots (TBS granularity; the carry never exceeds one slot's maximum
TBS). Recorded capacity that a user leaves unused is lost, as in Mahimahi.
Downlink grants go only to users with data (the gNB knows its buffer);
uplink grants are given whether or not the gNB knows of data (an uplink
delivery opportunity, as in Mahimahi).

Registered in the engine's policy registry as ``replay``:
``make_policy("replay", mahimahi_down=..., mahimahi_up=..., nrscope=..., rnti=...)``.
Without ``ue_id`` every user replays the same trace.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuralemu.cell.policies import register_policy
from neuralemu.cell.policy import Allocation, SlotContext, UeFeatures
from neuralemu.errors import InputError

MAX_BLER = 1e-5
NAME = "replay"


def mahimahi_capacity(path: str | Path, slot_us: int) -> np.ndarray:
    """Bytes per slot of a Mahimahi trace (one loop period)."""
    from neuralemu.telemetry.mahimahi import mahimahi_to_slot_bytes, read_mahimahi
    ms = read_mahimahi(path)
    return mahimahi_to_slot_bytes(ms, slot_us)


def nrscope_capacity(path: str | Path, rnti: int) -> tuple[dict[str, np.ndarray], int]:
    """({"dl": bytes per slot, "ul": ...}, mu) of one RNTI in an NR-Scope log."""
    from neuralemu.telemetry.nrscope import read_nrscope
    df = read_nrscope(path)
    mu = int(df.attrs.get("mu", 0))
    if df.empty:
        raise InputError(str(path), "no DCIs in the log")
    first = int(df["slot"].min())
    n_slots = int(df["slot"].max()) - first + 1
    sel = df[(df["rnti"] == rnti) & df["valid"] & ~df["is_retx"]]
    if sel.empty:
        raise InputError(str(path), f"RNTI {rnti} has no valid new transmissions", field="rnti")
    out = {}
    for d in ("dl", "ul"):
        s = sel[sel["direction"] == d]
        cap = np.zeros(n_slots, dtype=np.int64)
        np.add.at(cap, s["slot"].to_numpy(np.int64) - first, s["tbs_bits"].to_numpy(np.int64) // 8)
        out[d] = cap
    return out, mu


class ReplayPolicy:
    """Serve recorded per-slot capacity. ``capacity``: {direction: bytes per slot} for every
    user, or {(ue_id, direction): bytes per slot} per user; a missing entry means none."""

    name = NAME
    avg_window_slots = 100

    def __init__(self, capacity: dict | None = None, *, mahimahi_down: str | None = None,
                 mahimahi_up: str | None = None, nrscope: str | None = None, rnti: int | None = None,
                 ue_id: int | None = None, loop: bool = True, max_bler: float = MAX_BLER) -> None:
        self._sources = dict(mahimahi_down=mahimahi_down, mahimahi_up=mahimahi_up,
                             nrscope=nrscope, rnti=rnti)
        if nrscope is not None and rnti is None:
            raise InputError("policy replay", "nrscope needs rnti", field="params.rnti")
        if capacity is None and not (mahimahi_down or mahimahi_up or nrscope):
            raise InputError("policy replay", "give mahimahi_down/mahimahi_up, or nrscope and rnti",
                             field="params")
        self.capacity = dict(capacity or {})
        self.ue_id = ue_id
        self.loop = loop
        self.max_bler = max_bler
        self.carry_bits: dict = {}
        self.granted_bits: dict = {}
        self._tbs = None
        self._mcs_cache: dict = {}
        self.slot_us: int | None = None

    # -- set-up ---------------------------------------------------------------------
    def bind(self, engine) -> None:
        """Called by ``engine.set_policy``: TBS tables, and the traces at the engine's slot length."""
        self._tbs = engine.tables.tbs
        self._symbols = engine.tables.symbols
        self.slot_us = int(engine.slot_us)
        s = self._sources
        key = (lambda d: d) if self.ue_id is None else (lambda d: (self.ue_id, d))
        if s["mahimahi_down"]:
            self.capacity[key("dl")] = mahimahi_capacity(s["mahimahi_down"], self.slot_us)
            up = s["mahimahi_up"] or s["mahimahi_down"]
            self.capacity[key("ul")] = mahimahi_capacity(up, self.slot_us)
        elif s["mahimahi_up"]:
            self.capacity[key("ul")] = mahimahi_capacity(s["mahimahi_up"], self.slot_us)
        if s["nrscope"]:
            caps, mu = nrscope_capacity(s["nrscope"], int(s["rnti"]))
            if 1000 // 2 ** mu != self.slot_us:
                raise InputError(str(s["nrscope"]), f"log has {1000 // 2 ** mu} us slots, the cell "
                                 f"{self.slot_us} us: use numerology {mu}", field="numerology")
            for d, cap in caps.items():
                self.capacity[key(d)] = cap

    def _capacity_bytes(self, ue: int, d: str, slot: int) -> int:
        cap = self.capacity.get((ue, d))
        if cap is None:
            cap = self.capacity.get(d)
        if cap is None or len(cap) == 0:
            return 0
        if slot >= len(cap):
            if not self.loop:
                return 0
            slot %= len(cap)
        return int(cap[slot])

    def _mcs_for(self, sinr_db: float, table: str) -> int:
        k = (round(float(sinr_db), 1), table)
        m = self._mcs_cache.get(k)
        if m is None:
            from neuralemu.nr import bler, max_mcs
            mcs = np.arange(max_mcs(table) + 1)
            ok = np.nonzero(np.asarray(bler(float(sinr_db), mcs, table)) <= self.max_bler)[0]
            m = int(ok.max()) if ok.size else 0
            self._mcs_cache[k] = m
        return m

    # -- the decision ---------------------------------------------------------------------
    def decide(self, ctx: SlotContext, ues: UeFeatures) -> Allocation:
        n = len(ues)
        alloc = Allocation.empty(n)
        if self._tbs is None:
            raise RuntimeError("replay policy must be bound to an engine (engine.set_policy)")
        d = ctx.direction
        di = 0 if d == "dl" else 1
        kind = 0 if ctx.symbols == self._symbols[di, 0] else 1
        layers = int(ctx.max_layers)
        left = int(ctx.prbs_available)
        users = 0
        for i in range(n):
            ue = int(ues.ue_id[i])
            if self.ue_id is not None and ue != self.ue_id:
                continue
            want_bits = self._capacity_bytes(ue, d, ctx.slot) * 8
            carry = self.carry_bits.get((ue, d), 0)
            if d == "dl" and ues.buffer_bytes[i] <= 0:
                self.carry_bits[(ue, d)] = 0      # unused capacity is lost
                continue
            target = want_bits + carry
            if target <= 0 or left <= 0 or users >= ctx.max_ues:
                continue
            mcs = self._mcs_for(ues.sinr_db[i], ctx.mcs_table)
            row = self._tbs[di, kind, layers - 1, mcs, :left + 1]
            prbs = int(np.searchsorted(row, target, side="right")) - 1
            granted = int(row[prbs]) if prbs > 0 else 0
            # carry the TBS rounding (and capacity beyond the slot's PRBs) at most one slot's worth
            self.carry_bits[(ue, d)] = min(target - granted, int(row[-1]))
            if prbs <= 0:
                continue
            alloc.prbs[i] = prbs
            alloc.mcs[i] = mcs
            alloc.layers[i] = layers
            self.granted_bits[(ue, d)] = self.granted_bits.get((ue, d), 0) + granted
            left -= prbs
            users += 1
        return alloc

    def observe(self, ctx: SlotContext, ues: UeFeatures, alloc: Allocation) -> None:
        return None

    def __repr__(self) -> str:
        return f"ReplayPolicy({', '.join(f'{k}={v!r}' for k, v in self._sources.items() if v)})"


register_policy(NAME, ReplayPolicy)


def replay_cell(numerology: int = 0, bandwidth_mhz: int | None = None) -> dict:
    """A cell that can carry any recorded capacity: FDD, wide, 256QAM both ways, 2 layers.

    Numerology 0 (1 ms slots) by default: Mahimahi traces have 1 ms resolution,
    and a Python policy costs the engine a fixed time per slot.
    """
    if bandwidth_mhz is None:
        bandwidth_mhz = 50 if numerology == 0 else 100
    # k2 = 0: an uplink opportunity carries data in the slot it is granted, as in Mahimahi
    return dict(numerology=numerology, bandwidth_mhz=bandwidth_mhz, duplex="FDD",
                mcs_table="qam256", ul_mcs_table="qam256", max_layers=2, max_layers_ul=2,
                harq={"k2_slots": 0})


def replay_engine(*, mahimahi_down: str | None = None, mahimahi_up: str | None = None,
                  nrscope: str | None = None, rnti: int | None = None, base_delay_ms: float = 0.0,
                  sinr_db: float = 40.0, record_dci: bool = False, seed: int = 1,
                  queue_limit_bytes: int | None = None, numerology: int = 0):
    """An engine with one user that replays a trace: (engine, [ue_id], base_delay_us)."""
    from neuralemu.cell import Engine
    if base_delay_ms < 0:
        raise InputError("--delay-ms", f"must be >= 0, got {base_delay_ms}")
    ue_id = 1
    if nrscope:
        from neuralemu.telemetry.nrscope import read_nrscope
        numerology = int(read_nrscope(nrscope).attrs.get("mu", 0))
        ue_id = int(rnti)
        if not 1 <= ue_id <= 65519:
            raise InputError("--rnti", f"must be a C-RNTI 1..65519, got {rnti}")
    cell = replay_cell(numerology)
    if queue_limit_bytes is not None:
        cell["queue_limit_bytes"] = queue_limit_bytes
    ues = [dict(ue_id=ue_id, channel={"model": "fixed", "sinr_db": sinr_db, "ul_offset_db": 0.0})]
    policy = ReplayPolicy(mahimahi_down=mahimahi_down, mahimahi_up=mahimahi_up, nrscope=nrscope,
                          rnti=rnti)
    kwargs = {"record_dci": True} if record_dci else {}
    try:
        engine = Engine(cell, ues, policy, seed=seed, **kwargs)
    except TypeError:
        engine = Engine(cell, ues, policy, seed=seed)
    return engine, [ue_id], int(round(base_delay_ms * 1000))
