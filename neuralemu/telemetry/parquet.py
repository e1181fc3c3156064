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


def write_dci_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Validate ``df`` and write it to ``path`` (Parquet, zstd), attrs included."""
    validate_dci_table(df, str(path))
    table = pa.Table.from_pandas(df[list(DCI_COLUMNS)], preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps({
        "schema_version": SCHEMA_VERSION,
        "mu": int(df.attrs["mu"]),
        "slot_us": int(df.attrs["slot_us"]),
        "source": str(df.attrs.get("source", "")),
    }).encode()
    table = table.replace_schema_metadata(meta)
    try:
        pq.write_table(table, path, compression="zstd")
    except OSError as exc:
        raise InputError(str(path), f"cannot write: {exc}") from None


def read_dci_parquet(path: str | Path) -> pd.DataFrame:
    """Read a canonical per-DCI table written by :func:`write_dci_parquet`.

    InputError for a missing or unreadable file, a Parquet file that is not a
    canonical DCI table (missing/extra columns, wrong dtypes, missing metadata)
    or values out of range.
    """
    source = str(path)
    if not Path(path).is_file():
        raise InputError(source, "no such file" if not Path(path).exists() else "not a file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(source, f"not a readable Parquet file: {str(exc).splitlines()[0][:160]}") from None
    raw_meta = (table.schema.metadata or {}).get(META_KEY)
    if raw_meta is None:
        raise InputError(source, "no NeuralEmu metadata: not a canonical DCI table", field="mu")
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
    try:
        df = table.to_pandas()
    except (pa.ArrowException, ValueError) as exc:
        raise InputError(source, f"cannot convert Parquet data: {str(exc)[:160]}") from None
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
