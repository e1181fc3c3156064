"""Acceptance of issue 2: our TS 38.214 5.1.3.2 TBS equals every TBS that NR-Scope logged.

For every valid row of every NR-Scope CSV in ../shared/data/nrscope/,
``tbs_bits(nof_re // nof_layers, mcs_index, "qam256", nof_layers)`` must equal
``transport_block_size`` (bits). ``nof_re`` counts all layers (data README).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuralemu.nr import dmrs_re_per_prb, is_reserved_mcs, n_re, tbs_bits, tbs_bits_array

COLUMNS = ["time_length", "nof_dmrs_cdm_groups", "frequency_length", "modulation", "mcs_index", "transport_block_size",
           "redundancy_version", "nof_re", "nof_layers", "mcs_table"]


def _load(path: Path) -> pd.DataFrame:
    """One NR-Scope CSV by header names; repeated header lines inside the file are dropped."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert set(COLUMNS) <= set(raw.columns), f"{path.name}: missing columns"
    assert raw.shape[1] in (33, 34), f"{path.name}: {raw.shape[1]} columns"
    raw = raw[raw["timestamp"] != "timestamp"]
    df = raw[COLUMNS].copy()
    for col in COLUMNS:
        if col not in ("modulation", "mcs_table"):
            df[col] = pd.to_numeric(df[col]).astype(np.int64)
    return df


def _split(df: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(valid, empty decode, reserved-MCS retransmission) row masks."""
    empty = ((df["frequency_length"] == 0) | (df["transport_block_size"] == 0)
             | (df["modulation"] == "BPSK"))
    retx_reserved = df["mcs_index"].between(28, 31)
    return ~empty & ~retx_reserved, empty, retx_reserved


@pytest.fixture(scope="module")
def nrscope_tables(nrscope_files) -> dict[str, pd.DataFrame]:
    return {p.name: _load(p) for p in nrscope_files}


def test_every_valid_nrscope_row_matches_logged_tbs(nrscope_tables):
    checked = 0
    for name, df in nrscope_tables.items():
        valid, empty, retx = _split(df)
        assert (df["mcs_table"] == "256qam").all(), name
        rows = df[valid]
        layers = rows["nof_layers"].to_numpy()
        nof_re = rows["nof_re"].to_numpy()
        assert (nof_re % layers == 0).all(), f"{name}: nof_re not a multiple of the layers"
        ours = tbs_bits_array(nof_re // layers, rows["mcs_index"].to_numpy(), "qam256", layers)
        logged = rows["transport_block_size"].to_numpy()
        mismatch = np.flatnonzero(ours != logged)
        assert mismatch.size == 0, (
            f"{name}: {mismatch.size} of {len(rows)} rows differ, first: "
            f"{rows.iloc[mismatch[0]].to_dict()} ours={ours[mismatch[0]]}")
        # Excluded rows really carry no transport block of their own.
        assert (df.loc[~valid, "transport_block_size"] == 0).all(), name
        checked += len(rows)
    print(f"NR-Scope TBS oracle: {checked} valid rows checked, all equal")
    assert checked > 90_000


def test_scalar_tbs_matches_a_sample_of_nrscope_rows(nrscope_tables):
    rng = np.random.default_rng(2)
    sampled = 0
    for name, df in nrscope_tables.items():
        valid, _, _ = _split(df)
        rows = df[valid]
        for i in rng.choice(len(rows), size=min(150, len(rows)), replace=False):
            row = rows.iloc[int(i)]
            v = int(row["nof_layers"])
            got = tbs_bits(int(row["nof_re"]) // v, int(row["mcs_index"]), "qam256", v)
            assert isinstance(got, int)
            assert got == int(row["transport_block_size"]), (name, row.to_dict())
            sampled += 1
    assert sampled > 1500


def test_reserved_mcs_retransmissions_give_tbs_zero(nrscope_tables):
    seen = 0
    for df in nrscope_tables.values():
        _, _, retx = _split(df)
        rows = df[retx]
        if rows.empty:
            continue
        assert is_reserved_mcs(rows["mcs_index"].to_numpy(), "qam256").all()
        ours = tbs_bits_array(np.maximum(rows["nof_re"].to_numpy(), 1),
                              rows["mcs_index"].to_numpy(), "qam256",
                              np.clip(rows["nof_layers"].to_numpy(), 1, 4))
        assert (ours == 0).all()
        seen += len(rows)
    assert seen > 1000


def test_tbs_from_dci_fields_alone(nrscope_tables):
    """The TBS follows from the DCI's own fields: PRBs, symbols, CDM groups, MCS, layers.

    N_RE = min(156, 12 * symbols - N_DMRS) * PRBs with N_DMRS = 2 DM-RS symbols x 6 REs
    x CDM groups without data (type 1, 38.211 7.4.1.1.2): this reproduces NR-Scope's
    ``nof_re`` / layers on every valid row, and hence its TBS.
    """
    checked = 0
    for name, df in nrscope_tables.items():
        valid, _, _ = _split(df)
        rows = df[valid]
        layers = rows["nof_layers"].to_numpy()
        re = n_re(rows["frequency_length"].to_numpy(), rows["time_length"].to_numpy(),
                  dmrs_re_per_prb(2, rows["nof_dmrs_cdm_groups"].to_numpy()))
        assert (re * layers == rows["nof_re"].to_numpy()).all(), name
        ours = tbs_bits_array(re, rows["mcs_index"].to_numpy(), "qam256", layers)
        assert (ours == rows["transport_block_size"].to_numpy()).all(), name
        checked += len(rows)
    assert checked > 90_000
