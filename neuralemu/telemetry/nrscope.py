"""NR-Scope DCI logs (CSV) to and from the canonical per-DCI table.

NR-Scope (PrincetonUniversity/NR-Scope; Wan et al., CoNEXT 2024) decodes every
DCI a gNB sends and writes one CSV row per DCI. :func:`read_nrscope` turns
such a file into the canonical table of :mod:`neuralemu.telemetry.schema`,
handling the quirks listed in ``docs/telemetry.md``:

* columns are selected by header name (33 columns, plus ``ports`` or
  ``carrier_index`` in some versions); the header line may repeat;
* rows are ordered by radio time (SFN, slot), with the SFN unwrapped at 1024
  frames (38.211 4.3.1); the host ``timestamp`` is used only to count wraps;
* empty/invalid decodes are kept with ``valid = False``;
* retransmissions are flagged (``is_retx``).

:func:`write_nrscope` writes a canonical table back in NR-Scope's 33-column
format, so that simulated runs produce files the same tools read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from neuralemu.errors import InputError
from neuralemu.nr import MU_VALUES, mcs_code_rate, mcs_qm, slot_duration_us
from neuralemu.nr.mcs import table_arrays
from neuralemu.telemetry._csv import read_bytes, scan_csv
from neuralemu.telemetry.schema import (DIRECTIONS, MAX_PRBS, MCS_TABLES, empty_dci_table,
                                        set_dci_attrs, str_column, validate_dci_table)

NRSCOPE_COLUMNS: tuple[str, ...] = (
    "timestamp", "system_frame_index", "slot_index", "rnti", "rnti_type", "dci_format", "k",
    "mapping", "time_start", "time_length", "frequency_start", "frequency_length",
    "nof_dmrs_cdm_groups", "beta_dmrs", "nof_layers", "n_scid", "tb_scaling_field", "modulation",
    "mcs_index", "transport_block_size", "code_rate", "redundancy_version", "new_data_indicator",
    "nof_re", "nof_bits", "mcs_table", "xoverhead", "harq_id", "downlink_assignment_index", "tpc",
    "pucch_resource", "harq_feedback", "bwp",
)
"""The 33 columns NR-Scope writes, in its order."""

NRSCOPE_OPTIONAL_COLUMNS: tuple[str, ...] = ("ports", "carrier_index")
"""Extra columns of some NR-Scope versions; accepted and ignored."""

# Columns the reader needs, with their parse dtypes.
_READ_DTYPES: dict[str, str] = {
    "timestamp": "float64", "system_frame_index": "int64", "slot_index": "int64",
    "rnti": "int64", "dci_format": "category", "time_length": "int64", "frequency_start": "int64",
    "frequency_length": "int64", "nof_layers": "int64", "mcs_index": "int64",
    "transport_block_size": "int64", "redundancy_version": "int64",
    "new_data_indicator": "int64", "nof_re": "int64", "mcs_table": "category", "harq_id": "int64",
}

DCI_FORMAT_DIRECTION: dict[str, str] = {
    "1_0": "dl", "1_1": "dl", "1_2": "dl",   # PDSCH scheduling, 38.212 7.3.1.2
    "0_0": "ul", "0_1": "ul", "0_2": "ul",   # PUSCH scheduling, 38.212 7.3.1.1
}

NRSCOPE_MCS_TABLE: dict[str, str] = {
    "64qam": "qam64", "256qam": "qam256", "qam64LowSE": "qam64lowse",
    # srsRAN's srsran_mcs_table_to_str() for an unset table; without mcs-Table
    # in PDSCH-Config, 38.214 5.1.3.1 uses Table 5.1.3.1-1 (qam64).
    "undefined": "qam64",
}
"""NR-Scope's ``mcs_table`` strings (srsRAN's names) to canonical names."""

_WRITE_MCS_TABLE = {"qam64": "64qam", "qam256": "256qam", "qam64lowse": "qam64LowSE"}

MAX_SLOT_INDEX = 10 * (1 << MU_VALUES[-1]) - 1
"""Largest slot index in a frame for the numerologies supported (38.211 Table 4.3.2-1)."""

SFN_PERIOD = 1024
"""System frame numbers wrap at 1024 frames (38.211 4.3.1, 38.331 MIB)."""

FRAMES_PER_SECOND = 100
"""A frame lasts 10 ms (38.211 4.3.1)."""

MAX_TIMESTAMP_GAP_S = 86400.0
"""A timestamp step longer than a day is treated as a glitch and ignored for unwrapping."""

NDI_RETX_WINDOW_SLOTS = 16
"""NDI rule window: a DCI is a retransmission when the previous DCI of the same
(rnti, direction, harq_id) is at most this many slots earlier, has the same
NDI and the same TBS (38.214 5.1 / 6.1: NDI not toggled = same transport block)."""

WRITE_TIMESTAMP_BASE_S = 1_700_000_000.0
"""write_nrscope writes timestamp = this + t_us / 1e6 (a plausible host clock)."""


def mu_from_slot_index(max_slot_index: int) -> int | None:
    """The smallest numerology whose frame has a slot ``max_slot_index`` (38.211 Table 4.3.2-1)."""
    for mu in MU_VALUES:
        if max_slot_index < 10 * (1 << mu):
            return mu
    return None


def _first_bad(checks: list[tuple[np.ndarray, str, str]]) -> tuple[int, str, str] | None:
    """The earliest row (in file order) failing any check: (row, field, message)."""
    best = None
    for bad, field, message in checks:
        if bad.any():
            row = int(np.argmax(bad))
            if best is None or row < best[0]:
                best = (row, field, message)
    return best


def _in_range(values: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return (values < lo) | (values > hi)


def read_nrscope(path: str | Path, mu: int | None = None, *, show_progress: bool = False) -> pd.DataFrame:
    """Read an NR-Scope DCI CSV into the canonical per-DCI table.

    ``mu`` is the numerology; when None it is inferred from the largest
    ``slot_index`` (0..9 -> 0, 0..19 -> 1, 0..39 -> 2, 0..79 -> 3). Raises
    InputError, naming the file, line and field, for any malformed input.
    """
    source = str(path)
    if mu is not None and (isinstance(mu, bool) or mu not in MU_VALUES):
        raise InputError(source, f"numerology mu must be one of {list(MU_VALUES)}, got {mu!r}",
                         field="mu")
    csvf = scan_csv(read_bytes(path), source, check_header=lambda names: _check_header(names, source))
    raw = csvf.read(_READ_DTYPES, list(_READ_DTYPES), show_progress=show_progress)
    n = len(raw)
    if n == 0:
        return empty_dci_table(0 if mu is None else mu, source)

    col = {name: raw[name].to_numpy() for name in _READ_DTYPES if _READ_DTYPES[name] != "category"}
    fmt_values, fmt_codes = _categories(raw["dci_format"])
    tab_values, tab_codes = _categories(raw["mcs_table"])
    fmt_ok = np.array([v in DCI_FORMAT_DIRECTION for v in fmt_values], dtype=bool)
    tab_ok = np.array([v in NRSCOPE_MCS_TABLE for v in tab_values], dtype=bool)

    sfn = col["system_frame_index"]
    slot_index = col["slot_index"]
    checks = [
        (_in_range(sfn, 0, SFN_PERIOD - 1), "system_frame_index", "must be 0..1023"),
        (_in_range(slot_index, 0, MAX_SLOT_INDEX), "slot_index",
         f"must be 0..{MAX_SLOT_INDEX} (mu <= {MU_VALUES[-1]})"),
        (_in_range(col["rnti"], 0, 65535), "rnti", "must be 0..65535"),
        (~fmt_ok[fmt_codes], "dci_format", f"must be one of {sorted(DCI_FORMAT_DIRECTION)}"),
        (_in_range(col["time_length"], 0, 14), "time_length", "must be 0..14 symbols"),
        (_in_range(col["frequency_start"], 0, MAX_PRBS), "frequency_start", f"must be 0..{MAX_PRBS}"),
        (_in_range(col["frequency_length"], 0, MAX_PRBS), "frequency_length", f"must be 0..{MAX_PRBS}"),
        (_in_range(col["nof_layers"], 1, 8), "nof_layers", "must be 1..8"),
        (_in_range(col["mcs_index"], 0, 31), "mcs_index", "must be 0..31"),
        (col["transport_block_size"] < 0, "transport_block_size", "must be >= 0"),
        (_in_range(col["redundancy_version"], 0, 3), "redundancy_version", "must be 0..3"),
        (_in_range(col["new_data_indicator"], 0, 1), "new_data_indicator", "must be 0 or 1"),
        (_in_range(col["nof_re"], 0, 10**9), "nof_re", "must be 0..1e9"),
        (_in_range(col["harq_id"], 0, 31), "harq_id", "must be 0..31"),
        (~tab_ok[tab_codes], "mcs_table", f"must be one of {sorted(NRSCOPE_MCS_TABLE)}"),
    ]
    if mu is not None:
        spf = 10 * (1 << mu)
        checks.append((slot_index >= spf, "slot_index", f"must be < {spf} for mu {mu}"))
    bad = _first_bad(checks)
    if bad is not None:
        row, field, message = bad
        value = raw[field].iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise InputError(source, f"{message}, got {value!r}", line=csvf.line_of(row), field=field)
    if mu is None:
        mu = mu_from_slot_index(int(slot_index.max()))
        assert mu is not None  # slot_index <= MAX_SLOT_INDEX was checked above

    spf = 10 * (1 << mu)
    slot_us = int(slot_duration_us(mu))
    slot = _absolute_slots(sfn, slot_index, col["timestamp"], spf)
    order = np.argsort(slot, kind="stable")
    slot = slot[order]

    direction_code = np.array([DIRECTIONS.index(DCI_FORMAT_DIRECTION[v]) for v in fmt_values],
                              dtype=np.int64)[fmt_codes][order]      # index into DIRECTIONS
    table_name = np.array([NRSCOPE_MCS_TABLE[v] for v in tab_values], dtype=object)
    table_code = np.array([MCS_TABLES.index(t) for t in table_name], dtype=np.int64)[tab_codes][order]

    def take(name: str) -> np.ndarray:
        return col[name][order]

    prb_start, prb_count = take("frequency_start"), take("frequency_length")
    layers, mcs = take("nof_layers"), take("mcs_index")
    tbs, rv, ndi = take("transport_block_size"), take("redundancy_version"), take("new_data_indicator")
    rnti, harq_id = take("rnti"), take("harq_id")
    valid, is_retx = dci_validity_and_retx(slot, rnti, direction_code, prb_start, prb_count, mcs,
                                           table_code, tbs, rv, ndi, harq_id)
    out = pd.DataFrame({
        "slot": slot,
        "t_us": slot * slot_us,
        "rnti": rnti,
        "direction": str_column(DIRECTIONS, direction_code),
        "prb_start": prb_start,
        "prb_count": prb_count,
        "symbols": take("time_length"),
        "layers": layers,
        "mcs": mcs,
        "mcs_table": str_column(MCS_TABLES, table_code),
        "tbs_bits": tbs,
        "n_re": take("nof_re") // layers,
        "harq_id": harq_id,
        "ndi": ndi,
        "rv": rv,
        "is_retx": is_retx,
        "valid": valid,
    })
    return set_dci_attrs(out, mu, source)


def _categories(series: pd.Series) -> tuple[list[str], np.ndarray]:
    """(values, codes) of a categorical column; an empty cell becomes the value ''."""
    values = [str(v) for v in series.cat.categories]
    codes = series.cat.codes.to_numpy().astype(np.int64)
    if (codes < 0).any():
        values.append("")
        codes[codes < 0] = len(values) - 1
    return values, codes


def _check_header(header: list[str], source: str) -> None:
    known = set(NRSCOPE_COLUMNS) | set(NRSCOPE_OPTIONAL_COLUMNS)
    seen: set[str] = set()
    for name in header:
        if name not in known:
            raise InputError(source, "unknown column in header: not an NR-Scope DCI log",
                             line=1, field=name[:40])
        if name in seen:
            raise InputError(source, "column appears twice in header", line=1, field=name)
        seen.add(name)
    for name in NRSCOPE_COLUMNS:
        if name not in seen:
            raise InputError(source, "missing column in header", line=1, field=name)


def _absolute_slots(sfn: np.ndarray, slot_index: np.ndarray, timestamp: np.ndarray,
                    slots_per_frame: int) -> np.ndarray:
    """Absolute slot numbers with the SFN unwrapped (see docs/telemetry.md, "SFN unwrapping").

    In file order, each step between consecutive rows changes the SFN by
    ``d`` (mod 1024). The true step is ``d + 1024 k``; ``k`` is the integer that
    brings it closest to the step the host timestamps suggest (100 frames/s).
    NR-Scope's timestamps are host time (jittery, not radio time) but are
    accurate to far better than the 10.24 s wrap period, so this also counts
    wraps across silences longer than 5.12 s, where plain nearest-neighbour
    unwrapping fails. Missing or absurd timestamp steps (non-finite, over a
    day) fall back to nearest-neighbour unwrapping (k minimising |step|).
    The result is shifted by a multiple of 1024 frames so that the earliest
    frame keeps its logged SFN: the first slot is SFN_0 * slots_per_frame.
    """
    frame = sfn + slot_index / slots_per_frame
    d = np.diff(frame)
    dt = np.diff(timestamp)
    est = dt * FRAMES_PER_SECOND
    ok = np.isfinite(est) & (np.abs(dt) <= MAX_TIMESTAMP_GAP_S)
    est = np.where(ok, est, 0.0)
    k = np.rint((est - d) / SFN_PERIOD).astype(np.int64)
    steps = np.diff(sfn) + SFN_PERIOD * k
    frames = np.empty(len(sfn), dtype=np.int64)
    frames[0] = sfn[0]
    np.cumsum(steps, out=frames[1:])
    frames[1:] += sfn[0]
    frames -= SFN_PERIOD * (frames.min() // SFN_PERIOD)
    return frames * slots_per_frame + slot_index


def dci_validity_and_retx(slot: np.ndarray, rnti: np.ndarray, direction_code: np.ndarray,
                          prb_start: np.ndarray, prb_count: np.ndarray, mcs: np.ndarray,
                          table_code: np.ndarray, tbs_bits: np.ndarray, rv: np.ndarray,
                          ndi: np.ndarray, harq_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``valid`` and ``is_retx`` flags (rows sorted by slot; rules in docs/telemetry.md).

    valid: ``prb_count > 0``, the PRBs fit in 275 (``prb_start + prb_count <= 275``),
    and ``tbs_bits > 0`` unless the MCS index is reserved (a retransmission,
    whose TBS NR-Scope logs as 0). Everything else (NR-Scope's empty decodes:
    start 275, length 0, BPSK, TBS 0) is invalid.

    is_retx (valid rows only): ``rv != 0``, or a reserved MCS (38.214
    5.1.3.1), or the NDI was not toggled: the previous valid DCI of the same
    (rnti, direction, harq_id) is at most NDI_RETX_WINDOW_SLOTS slots earlier,
    has the same NDI, and the same TBS (either TBS may be 0 from a reserved MCS).
    """
    reserved_lut = np.stack([table_arrays(t).reserved for t in MCS_TABLES])
    reserved = reserved_lut[table_code, mcs]
    valid = (prb_count > 0) & (prb_start + prb_count <= MAX_PRBS) & ((tbs_bits > 0) | reserved)
    is_retx = valid & ((rv != 0) | reserved)

    idx = np.flatnonzero(valid)
    if idx.size > 1:
        # group valid rows by HARQ process, in slot order (stable: file order within a slot)
        process = ((rnti[idx] * 2 + direction_code[idx]) * 32 + harq_id[idx])  # rnti < 2**16
        by_process = np.argsort(process, kind="stable")
        order = idx[by_process]
        process = process[by_process]
        same = process[1:] == process[:-1]
        cur, prev = order[1:], order[:-1]
        tb_cur, tb_prev = tbs_bits[cur], tbs_bits[prev]
        ndi_retx = (same & (ndi[cur] == ndi[prev])
                    & (slot[cur] > slot[prev])
                    & (slot[cur] - slot[prev] <= NDI_RETX_WINDOW_SLOTS)
                    & ((tb_cur == tb_prev) | (tb_cur == 0) | (tb_prev == 0)))
        is_retx[cur[ndi_retx]] = True
    return valid, is_retx


def duplicate_dcis(df: pd.DataFrame) -> np.ndarray:
    """Mask of rows that repeat an earlier row of the same slot field for field.

    NR-Scope sometimes logs one DCI several times (up to 6 copies seen). The
    copies stay in the table (they are what the file says), but tools that
    count PRBs or bytes should drop them: ``df[~duplicate_dcis(df)]``.
    """
    subset = [c for c in df.columns if c != "is_retx"]
    return df.duplicated(subset=subset, keep="first").to_numpy()


_MODULATION_BY_QM = ("BPSK", "BPSK", "QPSK", "", "16QAM", "", "64QAM", "", "256QAM")
"""srsRAN's srsran_mod_string() by Qm; NR-Scope writes BPSK for empty decodes."""


def _const_text(text: str, n: int) -> pa.Array:
    return pa.array([text], type=pa.string()).take(pa.array(np.zeros(n, dtype=np.int64)))


def _pick_text(values: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    return pa.array(list(values), type=pa.string()).take(pa.array(np.asarray(codes, dtype=np.int64)))


def _float6_text(values: np.ndarray) -> pa.Array:
    """``%.6f`` of each value (few distinct values: format each once)."""
    uniq, codes = np.unique(values, return_inverse=True)
    return _pick_text(tuple(f"{v:.6f}" for v in uniq), codes)


def _timestamp_text(t_us: np.ndarray) -> pa.Array:
    """WRITE_TIMESTAMP_BASE_S + t_us / 1e6 as exact ``seconds.micros`` text."""
    sec = pa.array(int(WRITE_TIMESTAMP_BASE_S) + t_us // 1_000_000).cast(pa.string())
    micros = pc.utf8_lpad(pa.array(t_us % 1_000_000).cast(pa.string()), 6, "0")
    return pc.binary_join_element_wise(sec, micros, ".")


def write_nrscope(df: pd.DataFrame, path: str | Path) -> None:
    """Write a canonical per-DCI table as an NR-Scope CSV (the 33 columns, in order).

    Fields the canonical table does not keep get plausible constants (see
    docs/telemetry.md). ``read_nrscope(path, mu=df.attrs["mu"])`` gives the
    same table back when its first slot is below 1024 frames and its ``valid``
    and ``is_retx`` flags follow the reader's rules (true of every table that
    :func:`read_nrscope` produced).
    """
    validate_dci_table(df, str(path))
    mu = int(df.attrs["mu"])
    spf = 10 * (1 << mu)
    n = len(df)
    slot = df["slot"].to_numpy()
    ul = (df["direction"] == "ul").to_numpy()
    symbols = df["symbols"].to_numpy()
    mcs = df["mcs"].to_numpy()
    layers = df["layers"].to_numpy()
    tbs = df["tbs_bits"].to_numpy()
    tables = df["mcs_table"].to_numpy(dtype=object)
    qm = np.zeros(n, dtype=np.int64)
    rate = np.zeros(n, dtype=np.float64)
    table_code = np.zeros(n, dtype=np.int64)
    for code, t in enumerate(MCS_TABLES):
        m = tables == t
        if m.any():
            table_code[m] = code
            qm[m] = mcs_qm(mcs[m], t)
            rate[m] = np.nan_to_num(mcs_code_rate(mcs[m], t), nan=0.0)
    empty = (tbs == 0) | ~df["valid"].to_numpy()
    qm[empty] = 1
    rate[empty] = 0.0
    nof_re = df["n_re"].to_numpy() * layers
    nof_bits = np.where(empty, 0, nof_re * qm)
    zeros = np.zeros(n, dtype=np.int64)
    ones = np.ones(n, dtype=np.int64)
    t_us = df["t_us"].to_numpy()
    columns = {
        "timestamp": _timestamp_text(t_us),
        "system_frame_index": (slot // spf) % SFN_PERIOD,
        "slot_index": slot % spf,
        "rnti": df["rnti"].to_numpy(),
        "rnti_type": _const_text("C-RNTI", n),
        "dci_format": _pick_text(("1_1", "0_1"), ul.astype(np.int64)),
        "k": np.where(ul, 2, 0),
        "mapping": _const_text("A", n),
        "time_start": np.where(ul, 0, np.maximum(14 - symbols, 0)),
        "time_length": symbols,
        "frequency_start": df["prb_start"].to_numpy(),
        "frequency_length": df["prb_count"].to_numpy(),
        "nof_dmrs_cdm_groups": ones,
        "beta_dmrs": _const_text("1.000000", n),
        "nof_layers": layers,
        "n_scid": zeros,
        "tb_scaling_field": zeros,
        "modulation": _pick_text(_MODULATION_BY_QM, qm),
        "mcs_index": mcs,
        "transport_block_size": tbs,
        "code_rate": _float6_text(rate),
        "redundancy_version": df["rv"].to_numpy(),
        "new_data_indicator": df["ndi"].to_numpy(),
        "nof_re": nof_re,
        "nof_bits": nof_bits,
        "mcs_table": _pick_text(tuple(_WRITE_MCS_TABLE[t] for t in MCS_TABLES), table_code),
        "xoverhead": zeros,
        "harq_id": df["harq_id"].to_numpy(),
        "downlink_assignment_index": zeros,
        "tpc": ones,
        "pucch_resource": zeros,
        "harq_feedback": zeros,
        "bwp": ones,
    }
    table = pa.table({name: (c if isinstance(c, (pa.Array, pa.ChunkedArray)) else pa.array(c))
                      for name, c in columns.items()})
    try:
        with open(path, "wb") as fh:
            fh.write((",".join(NRSCOPE_COLUMNS) + "\n").encode())
            pa_csv.write_csv(table, fh, pa_csv.WriteOptions(include_header=False,
                                                            quoting_style="none"))
    except OSError as exc:
        raise InputError(str(path), f"cannot write: {exc.strerror or exc}") from None
