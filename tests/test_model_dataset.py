"""Per-slot samples from a canonical DCI table + UE-side log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralemu.errors import InputError
from neuralemu.scheduler_model import features as F
from neuralemu.scheduler_model.dataset import SlotDataset, build_dataset, infer_cell
from test_model_toydata import toy_telemetry


@pytest.fixture(scope="module")
def toy():
    dci, ue = toy_telemetry(n_slots=600, seed=1)
    cell = infer_cell(dci, ue)
    return dci, ue, cell, build_dataset(dci, ue, cell)


def test_cell_inferred(toy):
    _, _, cell, _ = toy
    assert cell.directions == ["dl"] and cell.prbs_total["dl"] <= 51
    assert cell.mcs_table["dl"] == "qam256" and cell.slot_us == 500
    assert set(cell.slot_types["dl"].values()) == {"D"}
    assert cell.re_per_prb["dl"] == {"13": 144}


def test_samples_match_dcis(toy):
    dci, _, cell, ds = toy
    full = dci[dci.is_retx].groupby("slot").prb_count.sum() >= cell.prbs_total["dl"]
    n = 600 - int(dci.slot.min()) - int(full.sum())   # no decision when retx fill the slot
    assert len(ds) == n and ds.user_x.shape == (n, 6, F.N_USER_FEATURES)
    assert np.isfinite(ds.user_x).all() and np.isfinite(ds.cell_x).all()
    new = dci[~dci.is_retx]
    assert ds.sched.sum() == len(new)
    assert ds.prbs.sum() == new.prb_count.sum()
    assert ds.tbs_bits.sum() == new.tbs_bits.sum()
    retx_prbs = dci[dci.is_retx].groupby("slot").prb_count.sum()
    for slot, prbs in retx_prbs[retx_prbs < cell.prbs_total["dl"]].items():
        i = int(np.flatnonzero(ds.slot == slot)[0])
        assert ds.prbs_available[i] == cell.prbs_total["dl"] - prbs
    assert (ds.prbs.sum(axis=1) <= ds.prbs_available).all()
    assert ((ds.mcs >= 0) == (ds.sched > 0)).all()


def test_history_features_follow_grants(toy):
    dci, _, _, ds = toy
    col = F.USER_FEATURE_NAMES.index("last_mcs")
    cqi_mcs = F.USER_FEATURE_NAMES.index("cqi_mcs")
    since = F.USER_FEATURE_NAMES.index("log_slots_since_grant")
    # before its first grant a user looks granted long ago (the cap) at its CQI's MCS;
    # after it, last_mcs is the MCS of its latest new transmission
    first = dci[~dci.is_retx].iloc[0]
    i = int(np.flatnonzero(ds.slot == first.slot)[0])
    j = int(np.flatnonzero(ds.ue_id[i] == first.rnti)[0])
    assert ds.user_x[i, j, col] == pytest.approx(ds.user_x[i, j, cqi_mcs])
    assert ds.user_x[i, j, since] == pytest.approx(np.log1p(F.SINCE_CAP_SLOTS) / 8.0)
    assert ds.user_x[i + 1, j, since] < ds.user_x[i, j, since]
    assert ds.user_x[i + 1, j, col] == pytest.approx(first.mcs / 28.0)


def test_split_by_time_and_concat(toy):
    *_, ds = toy
    train, val = ds.split_by_time(0.25)
    assert len(train) + len(val) == len(ds)
    assert train.t_us.max() < val.t_us.min()
    both = SlotDataset.concat([train, val])
    assert len(both) == len(ds) and set(both.group) == {0, 1}


def test_bad_tables_are_input_errors():
    dci, ue = toy_telemetry(n_slots=50)
    with pytest.raises(InputError, match="missing columns"):
        infer_cell(dci.drop(columns=["mcs"]), ue)
    cell = infer_cell(dci, ue)
    with pytest.raises(InputError, match="missing columns"):
        build_dataset(dci, ue.drop(columns=["cqi"]), cell)
    empty = dci.assign(valid=False)
    with pytest.raises(InputError, match="no valid"):
        infer_cell(empty, ue)
    other_ues = ue.assign(t_us=ue.t_us + 10**9)
    with pytest.raises(InputError, match="same time span"):
        build_dataset(dci, other_ues, cell)
    no_attr = pd.DataFrame(dci)
    no_attr.attrs = {}
    with pytest.raises(InputError, match="slot_us"):
        infer_cell(no_attr, ue)
