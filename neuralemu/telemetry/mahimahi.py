"""Mahimahi packet-delivery traces: read, write, and convert to/from per-slot bytes.

A Mahimahi trace (Netravali et al., ATC 2015; the format of ``mm-link``) is a
text file with one non-negative integer per line: a millisecond timestamp at
which the link may deliver one 1500-byte packet. A timestamp repeats when
several packets fit in the same millisecond; timestamps never decrease.
``mm-link`` loops the file at its end.

The slot conversions map that onto the NR slot grid (38.211 4.3.2: a slot is
``1000 / 2**mu`` us); see docs/telemetry.md for the exact rules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuralemu.errors import InputError
from neuralemu.telemetry._csv import check_text, read_bytes

MTU_BYTES = 1500
"""Bytes per Mahimahi delivery opportunity (one line of the trace)."""

MS_US = 1000
_MAX_DIGITS = 15  # 1e15 ms is ~31,000 years: anything longer is corrupt

_DIGIT_LO, _DIGIT_HI, _NL = ord("0"), ord("9"), ord("\n")


def read_mahimahi(path: str | Path) -> np.ndarray:
    """Read a Mahimahi trace: int64 millisecond timestamps, one per delivery opportunity.

    Blank lines at the end and CRLF line ends are accepted. InputError (file,
    line) for an empty file, a blank line inside, a non-integer or negative
    value, or a timestamp smaller than the one before it.
    """
    source = str(path)
    data = read_bytes(path)
    check_text(data, source)
    body = data.replace(b"\r\n", b"\n").rstrip(b"\n \t\r")
    arr = np.frombuffer(body, dtype=np.uint8)
    bad = ~(((arr >= _DIGIT_LO) & (arr <= _DIGIT_HI)) | (arr == _NL))
    if bad.any():
        pos = int(np.argmax(bad))
        line = body.count(b"\n", 0, pos) + 1
        start = body.rfind(b"\n", 0, pos) + 1
        end = body.find(b"\n", pos)
        text = body[start:end if end >= 0 else len(body)].decode("utf-8", "replace")
        char = chr(arr[pos])
        if char == "-":
            msg = "negative timestamp"
        elif char in ".eE":
            msg = "timestamp is not an integer number of milliseconds"
        else:
            msg = "not a millisecond timestamp"
        raise InputError(source, f"{msg}: {text[:40]!r}", line=line, field="ms")
    newlines = np.flatnonzero(arr == _NL)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(body)]))
    lengths = ends - starts
    if (lengths == 0).any():
        line = int(np.argmax(lengths == 0)) + 1
        raise InputError(source, "blank line inside the trace", line=line, field="ms")
    if (lengths > _MAX_DIGITS).any():
        line = int(np.argmax(lengths > _MAX_DIGITS)) + 1
        raise InputError(source, f"timestamp longer than {_MAX_DIGITS} digits", line=line, field="ms")
    ms = np.array(body.split(b"\n")).astype(np.int64)
    drops = np.diff(ms) < 0
    if drops.any():
        i = int(np.argmax(drops)) + 1
        raise InputError(source, f"timestamp decreases: {ms[i]} after {ms[i - 1]}",
                         line=i + 1, field="ms")
    return ms


def _check_ms(ms: np.ndarray, source: str) -> np.ndarray:
    ms = np.asarray(ms)
    if ms.ndim != 1 or (ms.size and ms.dtype.kind not in "iu"):
        raise InputError(source, "timestamps must be a 1-D integer array")
    ms = ms.astype(np.int64, copy=False)
    if ms.size and ms[0] < 0:
        raise InputError(source, "negative timestamp", line=1)
    if (np.diff(ms) < 0).any():
        i = int(np.argmax(np.diff(ms) < 0)) + 1
        raise InputError(source, f"timestamp decreases: {ms[i]} after {ms[i - 1]}", line=i + 1)
    return ms


def write_mahimahi(ms: np.ndarray, path: str | Path) -> None:
    """Write millisecond timestamps as a Mahimahi trace (one integer and a newline per line)."""
    source = str(path)
    ms = _check_ms(ms, source)
    if ms.size == 0:
        raise InputError(source, "a Mahimahi trace needs at least one delivery opportunity")
    text = "\n".join(ms.astype(str).tolist()) + "\n"
    try:
        Path(path).write_text(text, encoding="ascii")
    except OSError as exc:
        raise InputError(source, f"cannot write: {exc.strerror or exc}") from None


def _slots_per_ms(slot_us: float) -> tuple[int, int]:
    """(slots per ms, ms per slot): exactly one of them is 1."""
    if not np.isfinite(slot_us) or slot_us <= 0:
        raise InputError("slot_us", f"slot length must be positive, got {slot_us!r}")
    if slot_us <= MS_US:
        per_ms = MS_US / slot_us
        if per_ms != int(per_ms):
            raise InputError("slot_us", f"{slot_us} us slots do not divide 1 ms")
        return int(per_ms), 1
    per_slot = slot_us / MS_US
    if per_slot != int(per_slot):
        raise InputError("slot_us", f"{slot_us} us slots are not a whole number of ms")
    return 1, int(per_slot)


def mahimahi_to_slot_bytes(ms: np.ndarray, slot_us: float, n_slots: int | None = None) -> np.ndarray:
    """Per-slot delivery opportunities in bytes (int64) for a Mahimahi trace.

    Each line is 1500 bytes at its millisecond. Slot 0 starts at ms 0. When a
    slot is shorter than 1 ms, a millisecond's bytes are spread evenly over
    its slots; the integer remainder goes to its first slots (so 1500 bytes
    over 8 slots of 125 us: 188, 188, 188, 188, 187, 187, 187, 187). When a
    slot spans several ms, it gets the bytes of all of them. ``n_slots``
    defaults to the slots up to the end of the last millisecond; a smaller
    value drops later bytes, a larger one pads with zeros. Bytes are conserved.
    """
    ms = _check_ms(ms, "mahimahi trace")
    per_ms, ms_per_slot = _slots_per_ms(slot_us)
    n_ms = int(ms[-1]) + 1 if ms.size else 0
    bytes_ms = np.bincount(ms, minlength=n_ms).astype(np.int64) * MTU_BYTES
    if per_ms > 1:
        base = bytes_ms // per_ms
        rem = bytes_ms % per_ms
        slots = base[:, None] + (np.arange(per_ms)[None, :] < rem[:, None])
        out = slots.reshape(-1)
    else:
        n_full = -(-n_ms // ms_per_slot)
        padded = np.zeros(n_full * ms_per_slot, dtype=np.int64)
        padded[:n_ms] = bytes_ms
        out = padded.reshape(n_full, ms_per_slot).sum(axis=1)
    if n_slots is not None:
        if n_slots < 0:
            raise InputError("n_slots", f"must be >= 0, got {n_slots}")
        if n_slots <= out.size:
            out = out[:n_slots]
        else:
            out = np.concatenate((out, np.zeros(n_slots - out.size, dtype=np.int64)))
    return out.astype(np.int64, copy=False)


def slot_bytes_to_mahimahi(bytes_per_slot: np.ndarray, slot_us: float) -> np.ndarray:
    """Millisecond timestamps of a Mahimahi trace carrying ``bytes_per_slot``.

    Bytes are summed per millisecond (a slot longer than 1 ms counts at its
    first ms), then cut into 1500-byte lines with the remainder carried to the
    next millisecond, so every byte is delivered no earlier than its slot and
    the trace holds ``floor(total / 1500)`` lines: only the final remainder
    (< 1500 bytes) is dropped. Exact inverse of :func:`mahimahi_to_slot_bytes`.
    """
    b = np.asarray(bytes_per_slot)
    if b.ndim != 1 or (b.size and b.dtype.kind not in "iu"):
        raise InputError("bytes_per_slot", "must be a 1-D integer array")
    b = b.astype(np.int64, copy=False)
    if (b < 0).any():
        raise InputError("bytes_per_slot", f"negative bytes in slot {int(np.argmax(b < 0))}")
    per_ms, ms_per_slot = _slots_per_ms(slot_us)
    if per_ms > 1:
        n_ms = -(-b.size // per_ms)
        padded = np.zeros(n_ms * per_ms, dtype=np.int64)
        padded[:b.size] = b
        bytes_ms = padded.reshape(n_ms, per_ms).sum(axis=1)
    else:
        bytes_ms = np.zeros(b.size * ms_per_slot, dtype=np.int64)
        bytes_ms[::ms_per_slot] = b
    lines_upto = np.cumsum(bytes_ms) // MTU_BYTES
    lines = np.diff(lines_upto, prepend=0)
    return np.repeat(np.arange(bytes_ms.size, dtype=np.int64), lines)


def mahimahi_slot_table(ms: np.ndarray, mu: int, source: str = "") -> "pd.DataFrame":
    """A per-slot table ``slot, t_us, bytes`` (int64) of a Mahimahi trace at numerology ``mu``.

    attrs: ``mu``, ``slot_us``, ``source``. This is what ``neuralemu ingest``
    stores for a Mahimahi trace (Parquet kind ``slot_bytes``).
    """
    import pandas as pd

    from neuralemu.nr import slot_duration_us

    slot_us = int(slot_duration_us(mu))
    per_slot = mahimahi_to_slot_bytes(ms, slot_us)
    slot = np.arange(per_slot.size, dtype=np.int64)
    df = pd.DataFrame({"slot": slot, "t_us": slot * slot_us, "bytes": per_slot})
    df.attrs.update(mu=int(mu), slot_us=slot_us, source=str(source))
    return df
