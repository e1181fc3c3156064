"""Uploaded model bundles and traces: strict checks, then storage under a data folder.

Nothing uploaded is ever executed or unpickled. A model bundle (``.nemu``) is a
zip holding only ``*.safetensors`` and ``*.json`` members; pickles, nested
archives, path tricks and zip bombs are refused before anything is written.
Traces are parsed by the telemetry readers, which raise :class:`InputError`
for bad files; the API turns that into a 422 naming the line and field.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from neuralemu.errors import InputError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_BUNDLE_MEMBERS = 16
MAX_BUNDLE_UNPACKED_BYTES = 256 << 20
MAX_COMPRESSION_RATIO = 200
MAX_SAFETENSORS_HEADER_BYTES = 1 << 20
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
TRACE_KINDS = ("nrscope", "mahimahi")


def safe_name(name: str, field: str = "name") -> str:
    """A stored object's name: letters, digits, ``_.-``; no path parts, no ``..``."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InputError("request", "must be 1-64 characters of letters, digits, '_', '.', '-' "
                         "with no path separators or '..'", field=field)
    return name


def _check_safetensors(member: str, data: bytes) -> dict:
    """Parse a safetensors header (8-byte little-endian length, then JSON) and check offsets."""
    source = f"bundle member {member}"
    if len(data) < 8:
        raise InputError(source, "too short for a safetensors file", field="file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len == 0 or header_len > MAX_SAFETENSORS_HEADER_BYTES or 8 + header_len > len(data):
        raise InputError(source, "not a safetensors file (bad header length)", field="file")
    try:
        header = json.loads(data[8:8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(source, "not a safetensors file (header is not JSON)", field="file") from None
    if not isinstance(header, dict):
        raise InputError(source, "not a safetensors file (header is not an object)", field="file")
    payload = len(data) - 8 - header_len
    tensors = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if (not isinstance(info, dict) or not isinstance(info.get("data_offsets"), list)
                or len(info["data_offsets"]) != 2
                or not all(isinstance(v, int) for v in info["data_offsets"])):
            raise InputError(source, f"tensor {key!r} has no valid data_offsets", field="file")
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= payload:
            raise InputError(source, f"tensor {key!r} points outside the file", field="file")
        tensors[key] = {"dtype": info.get("dtype"), "shape": info.get("shape")}
    try:  # the reference parser too: it never runs code
        from safetensors import deserialize
        deserialize(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise InputError(source, f"not a valid safetensors file: {exc}", field="file") from None
    return tensors


def inspect_bundle(data: bytes) -> dict:
    """Check an uploaded ``.nemu`` bundle without trusting it; return a summary.

    Raises :class:`InputError` (field ``file``) for anything but a small zip of
    safetensors and JSON members.
    """
    if data[:2] in PICKLE_MAGIC or data[:1] == b"\x80":
        raise InputError("upload", "pickle files are refused; bundles hold safetensors + JSON only",
                         field="file")
    if not data.startswith(b"PK\x03\x04"):
        raise InputError("upload", "not a .nemu bundle (expected a zip of safetensors + JSON)",
                         field="file")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InputError("upload", f"corrupt zip: {exc}", field="file") from None
    if not infos or len(infos) > MAX_BUNDLE_MEMBERS:
        raise InputError("upload", f"a bundle holds 1 to {MAX_BUNDLE_MEMBERS} members", field="file")
    total = 0
    for info in infos:
        name = info.filename
        base = name.rsplit("/", 1)[-1]
        if (name.startswith(("/", "\\")) or ".." in name.split("/") or "\\" in name
                or ":" in name or not NAME_RE.match(base) or "/" in name):
            raise InputError("upload", f"member name {name!r} is not allowed (path or odd characters)",
                             field="file")
        if not name.endswith((".safetensors", ".json")):
            raise InputError("upload", f"member {name!r}: only .safetensors and .json members are "
                             "allowed (no pickles, no code)", field="file")
        if info.flag_bits & 0x1:
            raise InputError("upload", f"member {name!r} is encrypted", field="file")
        total += info.file_size
        if info.file_size > MAX_BUNDLE_UNPACKED_BYTES or total > MAX_BUNDLE_UNPACKED_BYTES:
            raise InputError("upload", "bundle unpacks to more than "
                             f"{MAX_BUNDLE_UNPACKED_BYTES} bytes (zip bomb?)", field="file")
        if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
            raise InputError("upload", f"member {name!r} compresses {MAX_COMPRESSION_RATIO}x+ "
                             "(zip bomb?)", field="file")
    members: dict[str, object] = {}
    for info in infos:
        with archive.open(info) as fh:   # read bounded: never trust the declared size
            blob = fh.read(info.file_size + 1)
        if len(blob) != info.file_size:
            raise InputError("upload", f"member {info.filename!r} size does not match its header",
                             field="file")
        if blob[:1] == b"\x80":
            raise InputError("upload", f"member {info.filename!r} is a pickle", field="file")
        if info.filename.endswith(".json"):
            try:
                members[info.filename] = json.loads(blob)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"bundle member {info.filename}", f"bad JSON: {exc}",
                                 field="file") from None
        else:
            members[info.filename] = {"tensors": _check_safetensors(info.filename, blob)}
    if not any(n.endswith(".safetensors") for n in members):
        raise InputError("upload", "bundle has no .safetensors member", field="file")
    return members


def _project_bundle_validator():
    """The scheduler_model package's strict loader, once it exists (else None)."""
    try:
        from neuralemu.scheduler_model import bundle as bundle_mod  # type: ignore[attr-defined]
    except ImportError:
        return None
    for attr in ("validate_bundle", "load_bundle"):
        fn = getattr(bundle_mod, attr, None)
        if callable(fn):
            return fn
    return None


def _project_trace_reader(kind: str):
    """``read_nrscope`` / ``read_mahimahi`` from the telemetry package (None until they exist)."""
    import importlib
    for module in ("neuralemu.telemetry", f"neuralemu.telemetry.{kind}"):
        try:
            fn = getattr(importlib.import_module(module), f"read_{kind}", None)
        except ImportError:
            continue
        if callable(fn):
            return fn
    return None


@dataclass
class StoredObject:
    name: str
    kind: str
    size_bytes: int
    created_unix: float
    summary: dict

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "size_bytes": self.size_bytes,
                "created_unix": self.created_unix, "summary": self.summary}


class UploadStore:
    """Model bundles and traces, kept as files under ``root/models`` and ``root/traces``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.models_dir = self.root / "models"
        self.traces_dir = self.root / "traces"
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.traces_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.models: dict[str, StoredObject] = {}
        self.traces: dict[str, StoredObject] = {}

    def add_model(self, name: str, data: bytes) -> StoredObject:
        safe_name(name)
        members = inspect_bundle(data)
        validator = _project_bundle_validator()
        with self._lock:
            if name in self.models:
                raise InputError("request", f"model {name!r} already exists", field="name")
            fd, tmp = tempfile.mkstemp(dir=self.models_dir, prefix=".upload-", suffix=".nemu")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                if validator is not None:
                    try:
                        validator(Path(tmp))
                    except InputError as exc:
                        raise InputError(f"{name}.nemu", exc.message.replace(tmp, name),
                                         field="file") from None
                    except Exception as exc:  # noqa: BLE001 - a loader crash on hostile input is bad input
                        raise InputError(f"{name}.nemu", f"bundle rejected by the loader: {exc}",
                                         field="file") from None
            except BaseException:
                os.unlink(tmp)
                raise
            os.replace(tmp, self.models_dir / f"{name}.nemu")
            summary = {"members": sorted(members)}
            for member, content in members.items():
                if member.endswith(".json") and isinstance(content, dict):
                    summary["config"] = {k: v for k, v in list(content.items())[:20]
                                         if isinstance(v, (str, int, float, bool))}
            obj = StoredObject(name, "nemu", len(data), time.time(), summary)
            self.models[name] = obj
            return obj

    def model_path(self, name: str) -> Path:
        if name not in self.models:
            raise KeyError(name)
        return self.models_dir / f"{name}.nemu"

    def add_trace(self, name: str, kind: str, data: bytes) -> StoredObject:
        safe_name(name)
        if kind not in TRACE_KINDS:
            raise InputError("request", f"must be one of {', '.join(TRACE_KINDS)}", field="kind")
        if b"\x00" in data[:65536]:
            raise InputError("upload", "binary data; traces are text files", field="file")
        ext = "csv" if kind == "nrscope" else "trace"
        with self._lock:
            if name in self.traces:
                raise InputError("request", f"trace {name!r} already exists", field="name")
            fd, tmp = tempfile.mkstemp(dir=self.traces_dir, prefix=".upload-", suffix=f".{ext}")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                summary = self._validate_trace(kind, Path(tmp), name)
            except BaseException:
                os.unlink(tmp)
                raise
            target = self.traces_dir / f"{name}.{ext}"
            os.replace(tmp, target)
            obj = StoredObject(name, kind, len(data), time.time(), summary)
            self.traces[name] = obj
            return obj

    def trace_path(self, name: str) -> Path:
        obj = self.traces[name]
        return self.traces_dir / f"{name}.{'csv' if obj.kind == 'nrscope' else 'trace'}"

    def _validate_trace(self, kind: str, path: Path, name: str) -> dict:
        reader = _project_trace_reader(kind)
        if reader is None:
            return _fallback_trace_summary(kind, path, name)
        try:
            table = reader(path)
        except InputError as exc:
            # re-label the temp path with the upload's name; keep line and field
            column = f" (column {exc.field!r})" if exc.field else ""
            raise InputError(f"{name}", exc.message + column, line=exc.line, field="file") from None
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise InputError(f"{name}", f"unreadable {kind} trace: {exc}", field="file") from None
        return _table_summary(table)


def _table_summary(table) -> dict:
    summary: dict = {}
    try:
        summary["rows"] = int(len(table))
        cols = getattr(table, "columns", None)
        if cols is not None:
            summary["columns"] = [str(c) for c in list(cols)[:40]]
    except TypeError:
        pass
    return summary


def _fallback_trace_summary(kind: str, path: Path, name: str) -> dict:
    """Minimal checks used only until the telemetry readers exist."""
    text = path.read_bytes().decode("utf-8", errors="strict") if path.stat().st_size else ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise InputError(name, "empty trace", field="file")
    if kind == "mahimahi":
        prev = -1
        for i, ln in enumerate(lines, 1):
            if not ln.strip().isdigit():
                raise InputError(name, f"not an integer millisecond: {ln[:40]!r}", line=i, field="file")
            if int(ln) < prev:
                raise InputError(name, "timestamps go backwards", line=i, field="file")
            prev = int(ln)
        return {"rows": len(lines), "duration_ms": prev}
    header = lines[0].split(",")
    for need in ("system_frame_index", "slot_index", "rnti", "transport_block_size"):
        if need not in header:
            raise InputError(name, f"missing NR-Scope column {need!r}", line=1, field="file")
    return {"rows": len(lines) - 1, "columns": header}
