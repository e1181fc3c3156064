"""Corrupted telemetry never escapes as anything but InputError naming the file.

Seeded, so every run checks the same variants: small excerpts of the shared
NR-Scope logs and Mahimahi traces (and a generated UE-side log), truncated,
byte-flipped, with junk lines, deleted columns, fields turned to text, binary
garbage, or empty. Each variant either parses to a valid table or raises
InputError whose message names the file. A few go through the real CLI.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from neuralemu.cli import main
from neuralemu.errors import InputError
from neuralemu.telemetry import (read_mahimahi, read_nrscope, read_ue_log, validate_dci_table,
                                 validate_ue_log)
from neuralemu.telemetry.detect import detect_format

SEED = 20241105
NRSCOPE_EXCERPTS = {  # file -> lines kept (header included)
    "t_mobile1_ueactivity_morning_1.csv": 40,   # starts with 4 header lines
    "t_mobile2_ueactivity_morning_3.csv": 40,   # dl and ul
    "lab_srsgnb_ue_activity.csv": 30,           # 34 columns (ports)
}
MAHIMAHI_EXCERPTS = {"TMobile-LTE-short.up": 300, "ATT-LTE-driving-2016.down": 300}
VARIANTS_PER_FILE = {"nrscope": 50, "mahimahi": 30, "ue": 30}


def _ue_log_text(rng: random.Random) -> bytes:
    lines = ["t_us,ue,direction,buffer_bytes,cqi,sinr_db"]
    t = 0
    for _ in range(30):
        t += rng.randrange(0, 5000)
        lines.append(f"{t},{rng.choice([17921, 17922])},{rng.choice(['dl', 'ul'])},"
                     f"{rng.randrange(0, 100000)},{rng.randrange(0, 16)},{rng.uniform(-5, 30):.2f}")
    return ("\n".join(lines) + "\n").encode()


def _excerpt(path, n_lines: int) -> bytes:
    with open(path, "rb") as fh:
        return b"".join(fh.readline() for _ in range(n_lines))


JUNK_FIELDS = [b"abc", b"", b"NaN", b"1e3", b"-1", b"3.7", b"9" * 25, b"0x1F", b"\xff\xfe", b"nan",
               b"inf", b" 7", b"\"5\"", b"1_1", b"256qam", b"\x00"]


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    lines = data.split(b"\n")
    kind = rng.choice(["truncate", "flip", "junk_line", "delete_column", "field_to_text",
                       "binary", "empty", "swap_lines", "duplicate_header", "drop_header"])
    if kind == "truncate":
        return kind, data[:rng.randrange(0, len(data))]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return kind, bytes(b)
    if kind == "junk_line":
        junk = rng.choice([b"garbage", b",,,,", b"\x01\x02\x03", b"#comment", b"1,2,3",
                           bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 80)))])
        lines.insert(rng.randrange(len(lines) + 1), junk)
        return kind, b"\n".join(lines)
    if kind == "delete_column":
        col = rng.randrange(40)
        scope = rng.choice(["all", "header", "one_row"])
        target = rng.randrange(1, max(2, len(lines) - 1))
        out = []
        for i, line in enumerate(lines):
            fields = line.split(b",")
            if col < len(fields) and (scope == "all" or (scope == "header" and i == 0)
                                      or (scope == "one_row" and i == target)):
                del fields[col]
            out.append(b",".join(fields))
        return kind, b"\n".join(out)
    if kind == "field_to_text":
        i = rng.randrange(len(lines))
        fields = lines[i].split(b",")
        fields[rng.randrange(len(fields))] = rng.choice(JUNK_FIELDS)
        lines[i] = b",".join(fields)
        return kind, b"\n".join(lines)
    if kind == "binary":
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        return kind, rng.choice([garbage, data[:len(data) // 2] + garbage, garbage + data])
    if kind == "empty":
        return kind, rng.choice([b"", b"\n", b"   \n\n"])
    if kind == "swap_lines":
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return kind, b"\n".join(lines)
    if kind == "duplicate_header":
        lines.insert(rng.randrange(1, len(lines) + 1), lines[0])
        lines.insert(rng.randrange(1, len(lines) + 1), b"")
        return kind, b"\n".join(lines)
    return kind, b"\n".join(lines[1:])  # drop_header


def _check(fmt: str, path: str) -> str:
    """Parse ``path``; 'ok' or 'error'. Anything but InputError fails the test."""
    try:
        if fmt == "nrscope":
            df = read_nrscope(path)
            validate_dci_table(df, path)
        elif fmt == "ue":
            validate_ue_log(read_ue_log(path), path)
        else:
            ms = read_mahimahi(path)
            assert ms.dtype == np.int64 and (np.diff(ms) >= 0).all() and ms.size > 0
    except InputError as exc:
        assert path in str(exc), f"error does not name the file: {exc}"
        assert "\n" not in str(exc), f"error is more than one line: {exc!r}"
        return "error"
    return "ok"


@pytest.fixture(scope="module")
def sources(shared_data):
    rng = random.Random(SEED)
    out = [("nrscope", name, _excerpt(shared_data / "nrscope" / name, n))
           for name, n in NRSCOPE_EXCERPTS.items()]
    out += [("mahimahi", name, _excerpt(shared_data / "mahimahi" / name, n))
            for name, n in MAHIMAHI_EXCERPTS.items()]
    out.append(("ue", "ue_log.csv", _ue_log_text(rng)))
    return out


def test_fuzzed_files_parse_or_raise_input_error(sources, tmp_path):
    rng = random.Random(SEED)
    outcomes: dict[str, int] = {}
    n = 0
    for fmt, name, data in sources:
        assert _check(fmt, _write(tmp_path, f"clean_{name}", data)) == "ok", name
        for i in range(VARIANTS_PER_FILE[fmt]):
            kind, variant = mutate(data, rng)
            path = _write(tmp_path, f"v{n:03d}_{kind}_{name}", variant)
            result = _check(fmt, path)
            outcomes[result] = outcomes.get(result, 0) + 1
            # format detection never raises anything but InputError either
            try:
                detect_format(path)
            except InputError as exc:
                assert path in str(exc)
            n += 1
    assert n >= 200
    # the mutations must actually break most files, and leave some parseable
    assert outcomes.get("error", 0) > n // 2 and outcomes.get("ok", 0) > 5, outcomes


def _write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NEURALEMU_QUIET="1")
    return subprocess.run([sys.executable, "-m", "neuralemu.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_bad_input_exits_2_with_one_line(sources, tmp_path, capsys):
    nrscope = sources[0][2]
    header, first = nrscope.split(b"\n")[0], nrscope.split(b"\n")[4]
    cases = {
        "empty.csv": b"",
        "binary.csv": bytes(range(256)) * 4,
        "truncated.csv": header + b"\n" + first + b"\n" + first[:60] + b"\n",
        "text_field.csv": header + b"\n" + first.replace(b",256qam,", b",256qam,").replace(
            first.split(b",")[3], b"rnti?", 1) + b"\n",
        "unknown_header.csv": b"when,who,what\n1,2,3\n",
        "decreasing.up": b"0\n5\n3\n",
    }
    through_subprocess = {("ingest", "binary.csv"), ("ingest", "decreasing.up"),
                          ("inspect", "truncated.csv")}
    for name, data in cases.items():
        path = _write(tmp_path, name, data)
        for cmd in (["ingest", path, "--out", str(tmp_path / "x.parquet")], ["inspect", path]):
            if (cmd[0], name) in through_subprocess:
                proc = _cli(*cmd)
                rc, stderr = proc.returncode, proc.stderr
            else:  # the same entry point in-process: far cheaper than a new interpreter
                capsys.readouterr()
                rc = main(cmd)
                stderr = capsys.readouterr().err
            assert rc == 2, (name, stderr)
            lines = stderr.strip().splitlines()
            assert len(lines) == 1, (name, stderr)
            assert "Traceback" not in stderr
            assert path in lines[0], (name, lines[0])
    proc = _cli("ingest", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x.parquet"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_ingest_and_inspect_a_real_excerpt(sources, tmp_path, capsys):
    path = _write(tmp_path, "excerpt.csv", sources[1][2])
    out = tmp_path / "excerpt.parquet"
    proc = _cli("ingest", path, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    capsys.readouterr()
    assert main(["inspect", str(out), "--plot", str(tmp_path / "p.png")]) == 0
    stdout = capsys.readouterr().out
    assert "duration:" in stdout and "PRB util" in stdout
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert pd.read_parquet(out).shape[0] == 39
