"""Fast, strict CSV loading shared by the telemetry readers (private).

The readers parse with pandas' C engine for speed. Before that, this module
scans the raw bytes once with numpy to find what pandas would either reject
with an unhelpful message or silently accept: missing files, empty files,
binary data, rows with the wrong number of fields, and repeated header lines.
Every problem becomes an :class:`InputError` naming the file, the 1-based line
and, where known, the field. When pandas itself rejects a value, the slow
diagnostic path (:meth:`CsvFile.diagnose`) finds the first bad cell.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from neuralemu.errors import InputError
from neuralemu.progress import progress

_NL = 10
_COMMA = 44
_CR = 13
_NOT_COMMA_OR_NL = bytes(b for b in range(256) if b not in (_COMMA, _NL))

PROGRESS_MIN_ROWS = 500_000
"""Files with more data rows than this are parsed in chunks under a progress bar."""
PROGRESS_CHUNK_ROWS = 200_000


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, or InputError for a missing/unreadable file."""
    source = str(path)
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except IsADirectoryError:
        raise InputError(source, "is a directory, expected a file") from None
    except OSError as exc:
        raise InputError(source, f"cannot read: {exc.strerror or exc}") from None


def check_text(data: bytes, source: str) -> None:
    """InputError unless ``data`` is non-empty UTF-8 text without NUL bytes."""
    if not data or data.isspace():
        raise InputError(source, "empty file", line=1)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(source, "binary data (NUL byte), not a text file",
                         line=data.count(b"\n", 0, nul) + 1)
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(source, "binary data (not UTF-8 text)",
                             line=data.count(b"\n", 0, exc.start) + 1) from None


@dataclass
class CsvFile:
    """A comma-separated file checked for shape; rows map back to file lines."""

    source: str
    data: bytes
    header: list[str]              # column names from line 1
    data_lines: np.ndarray         # int64, 1-based file line of each data row
    repeated_header_lines: list[int]  # 0-based line indices of repeated headers

    def line_of(self, row: int) -> int:
        return int(self.data_lines[row])

    def read(self, dtypes: dict[str, str], usecols: list[str] | None = None, *,
             show_progress: bool = False) -> pd.DataFrame:
        """Parse with the C engine; InputError (with line and field) on a bad value.

        With ``show_progress`` and a big file, parses in chunks under a progress bar.
        """
        cols = usecols or list(dtypes)
        n_rows = len(self.data_lines)
        chunked = show_progress and n_rows > PROGRESS_MIN_ROWS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return self._read(dtypes, cols, chunked, n_rows)
        except (ValueError, TypeError, OverflowError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            self.diagnose(dtypes, cols)
            raise InputError(self.source, f"cannot parse CSV: {_short(exc)}") from None

    def _read(self, dtypes: dict[str, str], cols: list[str], chunked: bool, n_rows: int) -> pd.DataFrame:
        reader = pd.read_csv(io.BytesIO(self.data), skiprows=self.repeated_header_lines,
                             usecols=cols, dtype=dtypes, engine="c", quoting=csv.QUOTE_NONE,
                             keep_default_na=False, na_values=[""], skip_blank_lines=True,
                             encoding="utf-8", on_bad_lines="error",
                             chunksize=PROGRESS_CHUNK_ROWS if chunked else None)
        if chunked:
            parts = []
            with progress(total=n_rows, desc=f"parsing {Path(self.source).name}",
                          unit="row", unit_scale=True) as bar:
                for part in reader:
                    parts.append(part)
                    bar.update(len(part))
            df = pd.concat(parts, ignore_index=True)
            for name, dtype in dtypes.items():  # chunks with different categories give object
                if dtype == "category" and name in df and df[name].dtype != "category":
                    df[name] = df[name].astype("category")
        else:
            df = reader
        if len(df) != n_rows:  # the byte scan and pandas disagree (e.g. a lone CR)
            raise InputError(self.source, f"parsed {len(df)} rows but found {n_rows} data lines "
                             "(stray carriage return?)")
        return df

    def diagnose(self, dtypes: dict[str, str], cols: list[str]) -> None:
        """Find the first cell that does not parse as its dtype and raise InputError for it."""
        try:
            raw = pd.read_csv(io.BytesIO(self.data), skiprows=self.repeated_header_lines,
                              usecols=cols, dtype=str, engine="c", quoting=csv.QUOTE_NONE,
                              keep_default_na=False, skip_blank_lines=True, encoding="utf-8",
                              encoding_errors="replace")
        except (ValueError, pd.errors.ParserError):
            return
        if len(raw) != len(self.data_lines):
            return
        first: tuple[int, str, str] | None = None
        for name in cols:
            kind = dtypes.get(name)
            if kind not in ("int64", "float64"):
                continue
            text = raw[name].astype(str)
            num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            if kind == "int64":
                bad = ~np.isfinite(num) | (num != np.floor(num)) | (np.abs(num) > 2.0**62)
                bad |= ~text.str.fullmatch(r"\s*[+-]?\d+\s*").to_numpy(dtype=bool, na_value=False)
            else:
                bad = np.isnan(num) & (text.str.strip().str.lower() != "nan").to_numpy(dtype=bool)
            if bad.any():
                row = int(np.argmax(bad))
                if first is None or row < first[0]:
                    what = "an integer" if kind == "int64" else "a number"
                    first = (row, name, f"expected {what}, got {_show(text.iloc[row])}")
        if first is not None:
            row, name, msg = first
            raise InputError(self.source, msg, line=self.line_of(row), field=name)


def scan_csv(data: bytes, source: str, *,
             check_header: Callable[[list[str]], None] | None = None) -> CsvFile:
    """Check shape: a header line, then rows that all have the header's field count.

    Repeated copies of the header line inside the file are allowed (NR-Scope
    writes them) and skipped; blank lines are skipped. ``check_header`` is
    called with line 1's names before any row is checked.
    """
    check_text(data, source)
    arr = np.frombuffer(data, dtype=np.uint8)
    if b"\r" in data:
        crs = np.flatnonzero(arr == _CR)
        lone = crs[(crs + 1 >= len(arr)) | (arr[np.minimum(crs + 1, len(arr) - 1)] != _NL)]
        if lone.size:
            raise InputError(source, "stray carriage return inside a line",
                             line=data.count(b"\n", 0, int(lone[0])) + 1)
    newlines = np.flatnonzero(arr == _NL)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(data)]))
    # commas per line: keep only commas and newlines (fast, in C), then measure the gaps
    skeleton = np.frombuffer(data.translate(None, _NOT_COMMA_OR_NL), dtype=np.uint8)
    n_commas = np.diff(np.flatnonzero(skeleton == _NL), prepend=-1, append=len(skeleton)) - 1
    if starts[-1] == len(data):  # file ends with a newline: no last line
        starts, ends, n_commas = starts[:-1], ends[:-1], n_commas[:-1]
    lengths = ends - starts
    if b"\r" in data:  # CRLF: a trailing CR is not part of the line
        nonempty = lengths > 0
        has_cr = np.zeros(len(starts), dtype=bool)
        has_cr[nonempty] = arr[ends[nonempty] - 1] == _CR
        lengths = lengths - has_cr
    blank = lengths == 0

    first = int(np.argmax(~blank))
    if first != 0:
        raise InputError(source, "blank line before the header", line=1)
    header_bytes = data[starts[0]:starts[0] + lengths[0]]
    header = header_bytes.decode("utf-8").split(",")
    if check_header is not None:
        check_header(header)
    n_fields = len(header)

    repeated: list[int] = []
    pos = data.find(header_bytes, starts[0] + 1)
    while pos >= 0:
        line_idx = int(np.searchsorted(starts, pos, side="right") - 1)
        if starts[line_idx] == pos and lengths[line_idx] == len(header_bytes):
            repeated.append(line_idx)
        pos = data.find(header_bytes, pos + 1)

    is_data = ~blank
    is_data[0] = False
    if repeated:
        is_data[np.asarray(repeated)] = False
    wrong = is_data & (n_commas != n_fields - 1)
    if wrong.any():
        i = int(np.argmax(wrong))
        got = int(n_commas[i]) + 1
        line = data[starts[i]:starts[i] + lengths[i]]
        if got < n_fields:
            raise InputError(source, f"truncated row: {got} fields, expected {n_fields} "
                             f"({_show(line.decode('utf-8', 'replace'))})",
                             line=i + 1, field=header[got] if got < len(header) else None)
        raise InputError(source, f"row has {got} fields, expected {n_fields}", line=i + 1)
    data_lines = np.flatnonzero(is_data).astype(np.int64) + 1
    return CsvFile(source, data, header, data_lines, repeated)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:200] if text else type(exc).__name__


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
