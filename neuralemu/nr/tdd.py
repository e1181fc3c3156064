"""TDD slot patterns (TS 38.213 11.1; TS 38.331 TDD-UL-DL-ConfigCommon) and FDD.

A pattern is a string of slot letters repeated forever from slot 0:

* ``D``: all 14 symbols downlink,
* ``U``: all 14 symbols uplink,
* ``S``: special (mixed) slot: ``special_dl_symbols`` downlink, then a guard of
  ``special_gap_symbols`` (flexible symbols used as the DL->UL switch), then
  ``special_ul_symbols`` uplink; the three add up to 14.

``TddPattern.parse("DDDSU", special_dl_symbols=10, special_gap_symbols=2,
special_ul_symbols=2)`` is the common 2.5 ms pattern at 30 kHz
(``DDDDDDDSUU`` the 5 ms one). :meth:`TddPattern.from_tdd_ul_dl_config`
builds the same from the RRC fields of TDD-UL-DL-ConfigCommon pattern1.

FDD (:meth:`TddPattern.fdd`) is represented as a one-slot pattern in which
every slot carries both directions with 14 symbols each: ``is_fdd`` is True,
``carries(slot, "dl")`` and ``carries(slot, "ul")`` are both True, and
``slot_type(slot, direction)`` answers "D" for dl and "U" for ul (the
convention of ``cell.policy.SlotContext``). An FDD ``slot_type`` without a
direction is ambiguous and raises ValueError.

Slot arguments are absolute slot indices (>= 0) and may be numpy arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuralemu.nr._vec import as_int_array, is_scalar, out
from neuralemu.nr.numerology import SYMBOLS_PER_SLOT, slots_per_subframe

DIRECTIONS = ("dl", "ul")

TDD_PERIODICITIES_MS: tuple[float, ...] = (0.5, 0.625, 1, 1.25, 2, 2.5, 3, 4, 5, 10)
"""dl-UL-TransmissionPeriodicity values of TDD-UL-DL-Pattern (38.331; 38.213 11.1)."""

_LETTERS = re.compile(r"[DUS]+")


@dataclass(frozen=True)
class TddPattern:
    """A periodic TDD slot pattern, or FDD (see the module docstring)."""

    pattern: str
    special_dl_symbols: int = 0
    special_gap_symbols: int = 0
    special_ul_symbols: int = 0
    is_fdd: bool = False

    # ---- construction -------------------------------------------------------------
    @classmethod
    def parse(cls, pattern: str, special_dl_symbols: int = 10, special_gap_symbols: int = 2,
              special_ul_symbols: int = 2) -> "TddPattern":
        """A TDD pattern from a string of D, U and S (case-insensitive, spaces ignored).

        ValueError names the string when it is empty, has another letter, or the
        special-slot symbols do not add up to 14 (normal CP, 38.211 Table 4.3.2-1).
        """
        if not isinstance(pattern, str):
            raise ValueError(f"TDD pattern must be a string of D, U and S, got {pattern!r}")
        letters = re.sub(r"[\s_,-]", "", pattern).upper()
        if not letters:
            raise ValueError(f"TDD pattern {pattern!r} is empty: give slots as D, U and S, "
                             "e.g. 'DDDSU'")
        if not _LETTERS.fullmatch(letters):
            bad = sorted(set(letters) - set("DUS"))
            raise ValueError(f"TDD pattern {pattern!r} has letters {bad} other than D, U and S")
        counts = (special_dl_symbols, special_gap_symbols, special_ul_symbols)
        if any(not isinstance(c, (int, np.integer)) or c < 0 for c in counts):
            raise ValueError(f"special-slot symbols must be integers >= 0, got {counts}")
        if "S" in letters and sum(counts) != SYMBOLS_PER_SLOT:
            raise ValueError(f"TDD pattern {pattern!r}: special-slot symbols dl+gap+ul = "
                             f"{special_dl_symbols}+{special_gap_symbols}+{special_ul_symbols} "
                             f"must add up to {SYMBOLS_PER_SLOT}")
        return cls(letters, int(special_dl_symbols), int(special_gap_symbols),
                   int(special_ul_symbols))

    @classmethod
    def fdd(cls) -> "TddPattern":
        """FDD: every slot carries 14 DL symbols and 14 UL symbols (paired spectrum)."""
        return cls("F", 0, 0, 0, is_fdd=True)

    @classmethod
    def from_tdd_ul_dl_config(cls, mu: int, periodicity_ms: float, nrof_downlink_slots: int,
                              nrof_downlink_symbols: int, nrof_uplink_slots: int,
                              nrof_uplink_symbols: int) -> "TddPattern":
        """From TDD-UL-DL-ConfigCommon pattern1 (38.331; 38.213 11.1).

        The period has ``periodicity_ms * 2**mu`` slots: first the full DL
        slots, then (if any DL or UL symbols are left) one special slot with
        ``nrof_downlink_symbols`` DL symbols at its start and
        ``nrof_uplink_symbols`` UL symbols at its end, then the full UL slots.
        Remaining slots and symbols are flexible: here they are guard (not
        used by either direction). The special slot is the only partial slot
        this representation allows, so the flexible slots must be at most one.
        """
        if periodicity_ms not in TDD_PERIODICITIES_MS:
            raise ValueError(f"dl-UL-TransmissionPeriodicity must be one of "
                             f"{list(TDD_PERIODICITIES_MS)} ms, got {periodicity_ms!r}")
        slots = periodicity_ms * slots_per_subframe(mu)
        if slots != int(slots):
            raise ValueError(f"{periodicity_ms} ms is not a whole number of slots at mu={mu}")
        slots = int(slots)
        n_dl, n_ul = int(nrof_downlink_slots), int(nrof_uplink_slots)
        sym_dl, sym_ul = int(nrof_downlink_symbols), int(nrof_uplink_symbols)
        if min(n_dl, n_ul, sym_dl, sym_ul) < 0 or sym_dl + sym_ul > SYMBOLS_PER_SLOT:
            raise ValueError("TDD config: counts must be >= 0 and nrofDownlinkSymbols + "
                             f"nrofUplinkSymbols <= {SYMBOLS_PER_SLOT}")
        flexible = slots - n_dl - n_ul
        if flexible < 0:
            raise ValueError(f"TDD config: {n_dl} DL + {n_ul} UL slots exceed the period of "
                             f"{slots} slots")
        if flexible > 1:
            raise ValueError(f"TDD config: {flexible} flexible slots; only one special slot "
                             "per period is supported")
        if flexible == 1:
            letters = "D" * n_dl + "S" + "U" * n_ul
            gap = SYMBOLS_PER_SLOT - sym_dl - sym_ul
            return cls.parse(letters, sym_dl, gap, sym_ul)
        if sym_dl or sym_ul:
            raise ValueError("TDD config: DL/UL symbols given but no slot is left for them")
        return cls.parse("D" * n_dl + "U" * n_ul)

    # ---- queries ------------------------------------------------------------------
    @property
    def period_slots(self) -> int:
        """Slots in one period of the pattern (1 for FDD)."""
        return len(self.pattern)

    def __post_init__(self) -> None:
        if not self.is_fdd:
            if not isinstance(self.pattern, str) or not _LETTERS.fullmatch(self.pattern):
                raise ValueError(f"TDD pattern {self.pattern!r} must be upper-case D, U and S; "
                                 "use TddPattern.parse() for free-form strings")
            if "S" in self.pattern and (self.special_dl_symbols + self.special_gap_symbols
                                        + self.special_ul_symbols != SYMBOLS_PER_SLOT):
                raise ValueError(f"TDD pattern {self.pattern!r}: special-slot symbols must add "
                                 f"up to {SYMBOLS_PER_SLOT}")
        kinds = np.array(list(self.pattern))
        if self.is_fdd:
            dl = np.full(1, SYMBOLS_PER_SLOT, dtype=np.int64)
            ul = dl.copy()
        else:
            dl = np.where(kinds == "D", SYMBOLS_PER_SLOT,
                          np.where(kinds == "S", self.special_dl_symbols, 0)).astype(np.int64)
            ul = np.where(kinds == "U", SYMBOLS_PER_SLOT,
                          np.where(kinds == "S", self.special_ul_symbols, 0)).astype(np.int64)
        object.__setattr__(self, "_kinds", kinds)
        object.__setattr__(self, "_dl", dl)
        object.__setattr__(self, "_ul", ul)

    def _index(self, slot: Any) -> np.ndarray:
        arr = as_int_array(slot, "slot")
        if np.any(arr < 0):
            raise ValueError("slot index must be >= 0")
        return arr % self.period_slots

    def slot_type(self, slot: Any, direction: str | None = None) -> Any:
        """"D", "U" or "S" for TDD (direction ignored); FDD: "D" for dl, "U" for ul."""
        idx = self._index(slot)
        if self.is_fdd:
            if direction is None:
                raise ValueError("FDD slots carry both directions: pass direction='dl' or 'ul' "
                                 "(or use carries())")
            letter = "D" if _check_direction(direction) == "dl" else "U"
            kinds = np.full(idx.shape, letter)
        else:
            if direction is not None:
                _check_direction(direction)
            kinds = self._kinds[idx]
        return str(kinds) if is_scalar(slot) else kinds

    def dl_symbols(self, slot: Any) -> Any:
        """Downlink OFDM symbols in the slot (14, special_dl_symbols or 0)."""
        return out(self._dl[self._index(slot)], is_scalar(slot))

    def ul_symbols(self, slot: Any) -> Any:
        """Uplink OFDM symbols in the slot (14, special_ul_symbols or 0)."""
        return out(self._ul[self._index(slot)], is_scalar(slot))

    def symbols(self, slot: Any, direction: str) -> Any:
        """Symbols of ``direction`` ("dl"/"ul") in the slot."""
        if _check_direction(direction) == "dl":
            return self.dl_symbols(slot)
        return self.ul_symbols(slot)

    def carries(self, slot: Any, direction: str) -> Any:
        """True when the slot has at least one symbol of ``direction`` ("dl" or "ul")."""
        sym = np.asarray(self.symbols(slot, direction))
        return out(sym > 0, is_scalar(slot))

    def __str__(self) -> str:
        if self.is_fdd:
            return "FDD"
        if "S" in self.pattern:
            return (f"{self.pattern} (S = {self.special_dl_symbols} DL : "
                    f"{self.special_gap_symbols} guard : {self.special_ul_symbols} UL)")
        return self.pattern


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'dl' or 'ul', got {direction!r}")
    return direction
