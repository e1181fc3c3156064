"""Cell and user configuration for the slot engine (pydantic; extra fields forbidden).

The scenario file nests these models (``cell:``, ``ues:``), so a validation
error names the field path, e.g. ``ues[1].channel.sinr_db``.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DIRECTIONS = ("dl", "ul")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=False)


class HarqConfig(_Strict):
    """HARQ timing (38.213 9.2.3 k1; 38.214 6.1.2.1 k2) and retransmission limits (38.321 5.3.2)."""

    processes: int = Field(16, ge=1, le=32, description="HARQ processes per UE and direction (38.321: 16)")
    k1_slots: int = Field(4, ge=0, le=15, description="PDSCH -> HARQ-ACK delay (38.213 9.2.3)")
    k2_slots: int = Field(4, ge=0, le=32, description="UL grant (PDCCH) -> PUSCH delay (38.214 6.1.2.1)")
    processing_slots: int = Field(4, ge=0, le=32, description="gNB processing after the ACK/NACK or PUSCH")
    rtt_slots: int | None = Field(None, ge=1, le=64,
                                  description="HARQ RTT: first tx -> earliest retx; default k1 + processing")
    max_tx: int = Field(4, ge=1, le=16, description="transmissions of one TB before it is dropped")
    combining_gain_db: float = Field(3.0, ge=0.0, le=10.0,
                                     description="chase-combining SINR gain per retransmission")

    @property
    def dl_rtt_slots(self) -> int:
        return int(self.rtt_slots if self.rtt_slots is not None else self.k1_slots + self.processing_slots)

    @property
    def ul_rtt_slots(self) -> int:
        return int(self.rtt_slots if self.rtt_slots is not None else self.k2_slots + self.processing_slots)


class UplinkConfig(_Strict):
    """Uplink access: scheduling request (38.321 5.4.4) and buffer status reports (38.321 5.4.5)."""

    sr_period_slots: int = Field(10, ge=1, le=640, description="SR opportunity period (38.331 SchedulingRequestResourceConfig)")
    sr_to_grant_slots: int = Field(2, ge=0, le=64, description="gNB delay from SR reception to the grant DCI")
    sr_grant_bytes: int = Field(256, ge=1, description="size the gNB assumes after an SR (first grant)")
    bsr_delay_slots: int = Field(2, ge=0, le=63, description="slots until the gNB has decoded a BSR")
    bsr_format: Literal["short", "long"] = Field("long", description="38.321 Table 6.1.3.1-1 (short, 5 bit) or -2 (long, 8 bit)")


class CellConfig(_Strict):
    """One NR carrier and its scheduler limits."""

    numerology: int = Field(1, ge=0, le=3, description="mu: SCS = 15 * 2^mu kHz (38.211 4.2)")
    bandwidth_mhz: int = Field(100, gt=0, description="channel bandwidth; PRBs from 38.101-1 Table 5.3.2-1")
    duplex: str = Field("DDDSU", description="'FDD' or a TDD pattern string such as 'DDDSU' (38.213 11.1)")
    special_slot: str = Field("10:2:2", description="TDD special slot 'dl:guard:ul' symbols")
    mcs_table: Literal["qam64", "qam256", "qam64lowse"] = "qam256"
    ul_mcs_table: Literal["qam64", "qam256", "qam64lowse"] = "qam64"
    cqi_table: int | None = Field(None, ge=1, le=3, description="38.214 Table 5.2.2.1-2/3/4; default matches mcs_table")
    max_layers: int = Field(2, ge=1, le=4, description="DL layers per TB")
    max_layers_ul: int = Field(1, ge=1, le=4)
    max_ues_per_slot: int = Field(8, ge=1, le=64, description="users per slot and direction (PDCCH limit)")
    prb_allocation: Literal["type0", "type1"] = Field("type1", description="38.214 5.1.2.2: type0 = RBGs, type1 = contiguous")
    rbg_config: Literal[1, 2] = Field(1, description="38.214 Table 5.1.2.2.1-1 configuration (RBG size)")
    pdcch_symbols: int = Field(2, ge=0, le=3, description="symbols at the start of a DL slot kept for PDCCH")
    dmrs_re_per_prb: int = Field(12, ge=0, le=48, description="DM-RS REs per PRB (12 = one symbol, 2 CDM groups)")
    overhead_re_per_prb: Literal[0, 6, 12, 18] = Field(0, description="xOverhead (38.214 5.1.3.2)")
    bler_target: float = Field(0.1, gt=0.0, lt=0.5, description="outer-loop link adaptation target")
    olla_step_up: float = Field(0.01, ge=0.0, le=1.0, description="OLLA MCS offset step per ACK")
    cqi_period_slots: int = Field(10, ge=1, le=320, description="periodic CSI report period (38.214 5.2.2)")
    cqi_delay_slots: int = Field(4, ge=0, le=60, description="measurement -> report seen by the gNB")
    queue_limit_bytes: int = Field(2_000_000, ge=0, description="default RLC queue limit per UE and direction")
    harq: HarqConfig = Field(default_factory=HarqConfig)
    uplink: UplinkConfig = Field(default_factory=UplinkConfig)

    @field_validator("duplex")
    @classmethod
    def _check_duplex(cls, v: str) -> str:
        s = v.strip().upper()
        if s == "FDD":
            return "FDD"
        if not s or any(c not in "DSU" for c in s) or len(s) > 80:
            raise ValueError("must be 'FDD' or a TDD pattern of D, S and U slots such as 'DDDSU'")
        return s

    @field_validator("special_slot")
    @classmethod
    def _check_special(cls, v: str) -> str:
        parts = v.split(":")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            nums = []
        if len(nums) != 3 or min(nums) < 0 or sum(nums) != 14:
            raise ValueError("must be 'dl:guard:ul' symbols adding up to 14, e.g. '10:2:2'")
        return v

    @model_validator(mode="after")
    def _check_bandwidth(self) -> "CellConfig":
        from neuralemu.nr.bandwidth import max_prbs
        try:
            max_prbs(self.bandwidth_mhz, 15 * 2 ** self.numerology)
        except ValueError as exc:
            raise ValueError(f"bandwidth_mhz {self.bandwidth_mhz} at {15 * 2 ** self.numerology} kHz: {exc}")
        return self

    @property
    def is_fdd(self) -> bool:
        return self.duplex == "FDD"

    @property
    def scs_khz(self) -> int:
        return 15 * 2 ** self.numerology

    @property
    def slot_us(self) -> int:
        return 1000 // 2 ** self.numerology

    @property
    def prbs(self) -> int:
        from neuralemu.nr.bandwidth import max_prbs
        return int(max_prbs(self.bandwidth_mhz, self.scs_khz))


class FixedChannel(_Strict):
    """Constant SINR (plus run-time offsets)."""

    model: Literal["fixed"] = "fixed"
    sinr_db: float = Field(15.0, ge=-20.0, le=50.0)
    ul_offset_db: float = Field(-3.0, ge=-40.0, le=40.0, description="UL SINR = DL SINR + this")


class StochasticChannel(_Strict):
    """Log-distance path loss with mobility, plus Gauss-Markov (AR(1)) fading in dB.

    SINR(t) = sinr_at_ref_db - 10 * pathloss_exponent * log10(d(t) / ref_distance_m) + f(t),
    with d(t) moving at ``speed_mps`` back and forth between ``min_distance_m``
    and ``max_distance_m``, and f(t) = rho f(t-1) + sqrt(1-rho^2) sigma N(0,1) per slot,
    rho = exp(-slot / coherence_ms).
    """

    model: Literal["stochastic"] = "stochastic"
    distance_m: float = Field(200.0, gt=0.0)
    speed_mps: float = Field(0.0, ge=0.0, le=150.0)
    min_distance_m: float = Field(10.0, gt=0.0)
    max_distance_m: float = Field(1000.0, gt=0.0)
    sinr_at_ref_db: float = Field(25.0, ge=-20.0, le=60.0, description="mean SINR at ref_distance_m")
    ref_distance_m: float = Field(100.0, gt=0.0)
    pathloss_exponent: float = Field(3.0, ge=1.0, le=6.0)
    fading_std_db: float = Field(4.0, ge=0.0, le=20.0)
    coherence_ms: float = Field(20.0, gt=0.0)
    ul_offset_db: float = Field(-3.0, ge=-40.0, le=40.0)

    @model_validator(mode="after")
    def _check_range(self) -> "StochasticChannel":
        if not self.min_distance_m <= self.distance_m <= self.max_distance_m:
            raise ValueError("distance_m must lie within [min_distance_m, max_distance_m]")
        return self


class TraceChannel(_Strict):
    """SINR (dB) or CQI per sample from a file, one value per ``step_ms``, looped.

    The file is a CSV with a header holding ``sinr_db`` (or ``cqi``, mapped to
    the SINR at the middle of that CQI's range) and optionally ``t_ms``; or a
    plain text file with one SINR value per line. ``values`` may be given
    inline instead of ``path``.
    """

    model: Literal["trace"] = "trace"
    path: str | None = None
    values: list[float] | None = None
    column: Literal["sinr_db", "cqi"] = "sinr_db"
    step_ms: float = Field(1.0, gt=0.0)
    ul_offset_db: float = Field(-3.0, ge=-40.0, le=40.0)

    @model_validator(mode="after")
    def _check_source(self) -> "TraceChannel":
        if (self.path is None) == (self.values is None):
            raise ValueError("give exactly one of 'path' or 'values'")
        if self.values is not None and len(self.values) == 0:
            raise ValueError("'values' is empty")
        return self


ChannelConfig = Union[FixedChannel, StochasticChannel, TraceChannel]


class UeConfig(_Strict):
    """One emulated user."""

    ue_id: int = Field(..., ge=1, le=65519, description="engine id; the RNTI in telemetry (C-RNTI range)")
    directions: list[Literal["dl", "ul"]] = Field(default_factory=lambda: ["dl", "ul"])
    channel: ChannelConfig = Field(default_factory=FixedChannel, discriminator="model")
    queue_limit_bytes: int | None = Field(None, ge=0, description="RLC queue limit; default the cell's")
    priority: float = Field(1.0, gt=0.0, le=1000.0, description="scheduling weight (pf multiplies its metric)")
    sr_offset_slots: int | None = Field(None, ge=0, description="SR opportunity offset; default ue_id mod period")

    @field_validator("directions")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must list 'dl' and/or 'ul' once each")
        return v
