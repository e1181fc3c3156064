"""Which telemetry format a file holds, from its first bytes (for ``neuralemu ingest``)."""

from __future__ import annotations

import re
from pathlib import Path

from neuralemu.errors import InputError

FORMATS = ("nrscope", "ue", "mahimahi", "parquet")

_NRSCOPE_MARKERS = {"system_frame_index", "slot_index", "rnti", "dci_format"}
_UE_MARKERS = {"t_us", "ue", "buffer_bytes", "cqi"}
_MAHIMAHI_LINE = re.compile(rb"^\s*\d+\s*$")


def detect_format(path: str | Path) -> str:
    """``"nrscope"``, ``"ue"``, ``"mahimahi"`` or ``"parquet"``; InputError if none fits.

    NR-Scope and UE-side logs are told apart by their header names, a
    Mahimahi trace by a first line holding one integer, and Parquet by its
    ``PAR1`` magic bytes.
    """
    source = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except IsADirectoryError:
        raise InputError(source, "is a directory, expected a file") from None
    except OSError as exc:
        raise InputError(source, f"cannot read: {exc.strerror or exc}") from None
    if head.startswith(b"PAR1"):
        return "parquet"
    if not head.strip():
        raise InputError(source, "empty file", line=1)
    if b"\x00" in head:
        raise InputError(source, "binary data (NUL byte), not a telemetry file",
                         line=head.count(b"\n", 0, head.find(b"\x00")) + 1)
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    names = {n.strip() for n in first.decode("utf-8", "replace").split(",")}
    if _NRSCOPE_MARKERS <= names:
        return "nrscope"
    if _UE_MARKERS <= names:
        return "ue"
    if _MAHIMAHI_LINE.match(first):
        return "mahimahi"
    shown = first[:60].decode("utf-8", "replace")
    raise InputError(source, f"unknown format (first line {shown!r}); expected an NR-Scope CSV, "
                     "a UE-side log CSV, a Mahimahi trace or a NeuralEmu Parquet file; "
                     "use --format", line=1)
