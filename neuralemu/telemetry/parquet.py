"""Canonical per-DCI tables on disk: Parquet with the table's attrs in the schema metadata.

The attrs (``mu``, ``slot_us``, ``source``) are stored as JSON under the
schema-metadata key ``neuralemu`` together with ``schema_version``. Reading
validates columns, dtypes and values (:func:`validate_dci_table`), so a file
that loads is a canonical table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from neuralemu.errors import InputError
from neuralemu.telemetry.schema import DCI_COLUMNS, META_KEY, SCHEMA_VERSION, validate_dci_table


KINDS = ("dci", "ue_log", "slot_bytes")
"""What a NeuralEmu Parquet file holds: the per-DCI table, a UE-side log, or
per-slot delivery bytes (from a Mahimahi trace)."""


def write_dci_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Validate ``df`` and write it to ``path`` (Parquet, zstd), attrs included."""
    validate_dci_table(df, str(path))
    write_table_parquet(df[list(DCI_COLUMNS)], path, "dci", attrs=df.attrs)


def write_table_parquet(df: pd.DataFrame, path: str | Path, kind: str, attrs: dict | None = None) -> None:
    """Write any NeuralEmu table with its attrs and ``kind`` in the schema metadata."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    attrs = dict(df.attrs if attrs is None else attrs)
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    info = {"schema_version": SCHEMA_VERSION, "kind": kind, "source": str(attrs.get("source", ""))}
    for key in ("mu", "slot_us"):
        if key in attrs:
            info[key] = int(attrs[key])
    meta[META_KEY] = json.dumps(info).encode()
    table = table.replace_schema_metadata(meta)
    try:
        pq.write_table(table, path, compression="zstd")
    except OSError as exc:
        raise InputError(str(path), f"cannot write: {exc}") from None


def read_table_parquet(path: str | Path) -> pd.DataFrame:
    """Read a NeuralEmu Parquet file of any kind; ``df.attrs["kind"]`` says which.

    A ``dci`` table is validated as by :func:`read_dci_parquet`.
    """
    source = str(path)
    table, meta = _open(path)
    kind = meta.get("kind", "dci")
    if kind == "dci":
        return _dci_from(table, meta, source)
    if kind not in KINDS:
        raise InputError(source, f"unknown table kind {kind!r}", field="kind")
    df = _to_pandas(table, source)
    df.attrs.clear()
    df.attrs.update({k: v for k, v in meta.items() if k != "schema_version"})
    return df


def _open(path: str | Path) -> tuple[pa.Table, dict]:
    source = str(path)
    if not Path(path).is_file():
        raise InputError(source, "no such file" if not Path(path).exists() else "not a file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(source, f"not a readable Parquet file: {str(exc).splitlines()[0][:160]}") from None
    raw_meta = (table.schema.metadata or {}).get(META_KEY)
    if raw_meta is None:
        raise InputError(source, "no NeuralEmu metadata: not a NeuralEmu table", field="mu")
    try:
        meta = json.loads(raw_meta)
        if not isinstance(meta, dict):
            raise ValueError
    except ValueError:
        raise InputError(source, "corrupt NeuralEmu metadata (not a JSON object)", field="mu") from None
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(source, f"schema_version {version!r} is not supported "
                         f"(this NeuralEmu reads {SCHEMA_VERSION})", field="schema_version")
    return table, meta


def _to_pandas(table: pa.Table, source: str) -> pd.DataFrame:
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError) as exc:
        raise InputError(source, f"cannot convert Parquet data: {str(exc)[:160]}") from None


def read_dci_parquet(path: str | Path) -> pd.DataFrame:
    """Read a canonical per-DCI table written by :func:`write_dci_parquet`.

    InputError for a missing or unreadable file, a Parquet file that is not a
    canonical DCI table (missing/extra columns, wrong dtypes, missing metadata)
    or values out of range.
    """
    source = str(path)
    table, meta = _open(path)
    kind = meta.get("kind", "dci")
    if kind != "dci":
        raise InputError(source, f"holds a {kind!r} table, not a per-DCI table", field="kind")
    return _dci_from(table, meta, source)


def _dci_from(table: pa.Table, meta: dict, source: str) -> pd.DataFrame:
    df = _to_pandas(table, source)
    df.attrs.clear()
    df.attrs["mu"] = meta.get("mu")
    df.attrs["slot_us"] = meta.get("slot_us")
    df.attrs["source"] = str(meta.get("source", ""))
    validate_dci_table(df, source)
    cols = [c for c in DCI_COLUMNS]
    if list(df.columns) != cols:
        attrs = dict(df.attrs)
        df = df[cols]
        df.attrs.update(attrs)
    return df
