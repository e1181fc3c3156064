"""Pydantic models of the REST API: the single source of truth for validation and /docs.

The scenario body itself is the engine's scenario model
(:mod:`neuralemu.scenario`), imported, not duplicated. Everything here forbids
unknown fields, so a typo is a 422 naming the field instead of being ignored.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every 4xx/5xx body: FastAPI's shape; ``loc`` names the offending field."""
    detail: list[ErrorItem]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    engine_alive: bool
    engine_mode: Literal["thread", "process"]
    state: str
    mode: str | None = Field(None, description="offline-paced | offline | live")
    engine_realtime: int = Field(0, description="SCHED_FIFO priority the slot loop got (0: none)")
    uptime_s: float


class VersionOut(BaseModel):
    name: str
    version: str
    api: str


# ---- scenarios -------------------------------------------------------------------------------
class ScenarioOut(BaseModel):
    id: str
    name: str | None
    state: Literal["stored", "running", "paused", "stopped"]
    created_unix: float
    scenario: dict


class StartSpec(Strict):
    """POST /scenarios/{id}/start body (optional): offline (the engine paced by the server's
    clock, synthetic traffic) or live (real packets through a netns testbed; needs root)."""
    mode: Literal["offline", "live"] | None = Field(
        None, description="default: the server's (`serve --live` makes it live)")
    prefix: str | None = Field(None, description="live: testbed prefix (default: the server's, 'ne')")
    spare_ue_ids: list[int] = Field(default_factory=list, max_length=64,
                                    description="live: UE ids reserved for testbed hosts N+1.. "
                                                "(attach them later with POST /ues)")
    base_delay_ms: float | None = Field(None, ge=0, le=10_000,
                                        description="live: fixed one-way delay added to every packet")
    unclassified: Literal["pass", "drop"] | None = Field(None, description="live: traffic of no UE")
    realtime: int | None = Field(None, ge=0, le=99,
                                 description="live: SCHED_FIFO priority of the loop thread (0 = off)")

    @field_validator("spare_ue_ids")
    @classmethod
    def _ids(cls, v: list[int]) -> list[int]:
        for ue in v:
            if not 1 <= ue <= 65519:
                raise ValueError("UE ids are C-RNTIs: 1..65519")
        return v


class StateOut(BaseModel):
    id: str
    state: str
    applied_slot: int | None = None
    mode: str | None = None


# ---- UEs ----------------------------------------------------------------------------------
def _check_ip(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("not an IPv4/IPv6 address") from None


class UePatch(Strict):
    """PATCH /ues/{id}: any subset; all of it is applied at one slot boundary, or none of it."""
    channel_offset_db: float | None = Field(None, ge=-60, le=60,
                                            description="added to the UE's SINR trace, dB")
    channel_trace: str | None = Field(None, description="name of an uploaded trace (POST /traces)")
    priority: float | None = Field(None, gt=0, le=1000, description="scheduler priority weight")
    queue_limit_bytes: int | None = Field(None, ge=1500, le=1 << 30,
                                          description="per-UE holding-queue limit, bytes")
    ip: str | None = Field(None, description="IP address mapped to this UE (live mode)")

    _ip = field_validator("ip")(classmethod(lambda cls, v: _check_ip(v)))


class UeOut(BaseModel):
    """One UE now. Rates and averages are over the last 100 ms of emulated time."""
    id: int
    name: str | None = None
    ip: str | None = None
    priority: float = 1.0
    channel_offset_db: float = 0.0
    queue_limit_bytes: int | None = None
    buffer_bytes: float = Field(0, description="bytes waiting in the UE's queue (RLC buffer)")
    prbs_avg: float = Field(0, description="PRBs granted per slot, averaged")
    mcs: int = Field(-1, description="MCS of the last new transmission (-1 = none yet)")
    cqi: int = 0
    throughput_bps: float = 0
    delay_ms_p50: float = 0
    delay_ms_p95: float = 0
    bytes_delivered: int = 0
    drops: int = 0
    background: bool = False
    model_config = ConfigDict(extra="allow")


class UeAttachOut(BaseModel):
    id: int
    applied_slot: int | None = None


# ---- cell, policy, background -----------------------------------------------------------------
class CellOut(BaseModel):
    scenario_id: str | None
    state: str
    slot: int
    t_us: int
    config: dict | None
    slot_us: int | None = None
    prbs_total: int | None = None
    prb_utilization: float
    policy: dict | None
    background: dict | None
    slot_lateness_us: dict
    decision_time_us: dict
    mode: str | None = Field(None, description="offline-paced | offline | live")
    live: dict | None = Field(None, description="live mode: testbed prefix, hosts (UE id, netns, "
                                                "addresses), server, per-queue datapath counters; "
                                                "after stop the conservation summary")


PolicyName = Literal["pf", "rr", "maxcqi", "learned", "replay"]


class PolicySpec(Strict):
    """PUT /policy: switch the scheduler while running (applied at the next slot boundary)."""
    name: PolicyName
    model: str | None = Field(None, description="uploaded model name (POST /models), for 'learned'")
    trace: str | None = Field(None, description="uploaded trace name (POST /traces), for 'replay'")
    trace_up: str | None = Field(None, description="replay of a Mahimahi trace: uploaded uplink "
                                                   "trace (default: the same as `trace`)")
    params: dict[str, bool | int | float | str] = Field(
        default_factory=dict,
        description="policy parameters: pf `window_slots`; learned `mode` (deterministic|sample), "
                    "`seed`; replay `rnti` (NR-Scope logs: required), `ue_id`, `loop`, `max_bler`")


class PolicyOut(BaseModel):
    name: str
    applied_slot: int | None = Field(None, description="the first slot run with the new policy")
    request_slot: int | None = Field(None, description="paced offline mode: the slot that was due "
                                                       "(wall clock) when the API got the request")
    applied_after_ms: float = Field(..., description="from the API receiving the request to the "
                                                     "engine swapping the policy in, wall time")
    round_trip_ms: float | None = Field(None, description="API process: command posted -> reply")
    prepare_ms: float = Field(0.0, description="part of applied_after_ms spent building the policy "
                                               "(loading a model or trace) before the boundary")


class BackgroundSpec(Strict):
    """PUT /background: the reconstructed background users sharing the cell."""
    count: int = Field(..., ge=0, le=256, description="number of background UEs")
    load_level: float = Field(..., ge=0, le=2.0,
                              description="offered load as a fraction of cell capacity")
    profile: str | None = Field(None, description="background profile name (traffic_recon JSON)")


class StoredOut(BaseModel):
    name: str
    kind: str
    size_bytes: int
    created_unix: float
    summary: dict
