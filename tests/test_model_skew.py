"""Train/inference skew: the features a policy computes inside the engine equal the features the
dataset builder computes from the telemetry of the same run.

A proportional-fair policy runs through the engine's Python policy path with a
:class:`features.HistoryTracker` fed in ``observe``, exactly as
:class:`LearnedPolicy` does, and records the learned model's input rows per
slot; ``neuralemu synth`` writes the DCI and UE-side logs of that very run; the
dataset built from them must give the same rows (history and relative
features exactly; the buffer up to the padding of the last TBS, which the
telemetry cannot tell from data). This is the check that would have caught
the stale compiled dataset builder (history features computed by old code in
training only) and a never-granted user being off-distribution.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import pytest
import yaml

from neuralemu.cell import kernel as K
from neuralemu.cell import register_policy
from neuralemu.cell.policies import ProportionalFair
from neuralemu.cli import main
from neuralemu.commands.model import load_dci, load_ue_log
from neuralemu.scheduler_model import features as F
from neuralemu.scheduler_model import fidelity as FI
from neuralemu.scheduler_model.dataset import build_dataset, infer_cell

DL_POSITIONS = [p for p in range(20) if p % 5 < 4]       # DDDSU at 30 kHz: D and S slots carry dl
PERIOD = 20


class _RecordingPf(ProportionalFair):
    """pf through the Python path, computing the learned policy's features on the side."""

    kernel_id = K.POLICY_PYTHON
    rows_by_slot: dict = {}

    def __init__(self) -> None:
        super().__init__(100)
        self.tracker = F.HistoryTracker()

    @staticmethod
    def _dslot(slot: int) -> float:
        q, r = divmod(int(slot), PERIOD)
        return float(q * len(DL_POSITIONS) + bisect_left(DL_POSITIONS, r))

    def decide(self, ctx, ues):
        alloc = super().decide(ctx, ues)
        if ctx.direction == "dl":
            x = F.user_features(
                rows=self.tracker.rows(ues.ue_id), tracker=self.tracker, slot=ctx.slot,
                dslot=self._dslot(ctx.slot), direction="dl", buffer_bytes=ues.buffer_bytes,
                cqi=ues.cqi, sinr_db=None, pending_retx=ues.pending_retx,
                prbs_available=ctx.prbs_available, prbs_total=ctx.prbs_total,
                symbols=ctx.symbols, layers=ctx.max_layers, mcs_table=ctx.mcs_table)
            type(self).rows_by_slot[ctx.slot] = (ues.ue_id.copy(), x)
        return alloc

    def observe(self, ctx, ues, alloc):
        if ctx.direction == "dl":
            self.tracker.update(self.tracker.rows(ues.ue_id), ctx.slot, self._dslot(ctx.slot),
                                alloc.prbs, alloc.mcs, ctx.symbols, alloc.layers, ctx.mcs_table)


@pytest.mark.slow
def test_engine_features_equal_dataset_features(tmp_path):
    _RecordingPf.rows_by_slot = {}
    register_policy("test-recording-pf", _RecordingPf)
    sc = FI.scenario({"name": "test-recording-pf", "params": {}}, 47, 5, 2, 1.0)
    (tmp_path / "sc.yaml").write_text(yaml.safe_dump(sc))
    assert main(["synth", "--scenario", str(tmp_path / "sc.yaml"), "--duration-s", "1",
                 "--out", str(tmp_path / "s")]) == 0
    dci = load_dci(str(tmp_path / "s" / "dci.parquet"))
    ue = load_ue_log(str(tmp_path / "s" / "ue.csv")).drop(columns=["sinr_db"])
    cell = infer_cell(dci, ue)
    assert cell.period_slots == PERIOD
    assert sorted(int(p) for p in cell.slot_types["dl"]) == DL_POSITIONS
    ds = build_dataset(dci, ue, cell)
    names = F.USER_FEATURE_NAMES
    approx = [names.index(n) for n in ("log_buffer", "need_frac", "log_need")]
    exact = [i for i in range(len(names)) if i not in approx]
    pairs = 0
    # a failed transmission is seen as a pending retransmission only through its retransmission's
    # DCI: the last HARQ round trip of the log cannot know it
    for k in np.flatnonzero(~ds.is_ul & (ds.slot < ds.slot.max() - 40)):
        ids, x = _RecordingPf.rows_by_slot[int(ds.slot[k])]
        for j, u in enumerate(ds.ue_id[k]):
            if u < 0:
                continue
            i = int(np.flatnonzero(ids == u)[0])
            train, infer = ds.user_x[k, j], x[i]
            bad = [names[f] for f in exact if abs(train[f] - infer[f]) > 1e-4]
            assert not bad, (int(ds.slot[k]), int(u), bad, train, infer)
            # buffer: the log shows what was left, plus the whole TBS of the slot's grant
            assert abs(train[approx[0]] - infer[approx[0]]) < 0.05, (int(ds.slot[k]), int(u))
            pairs += 1
    assert pairs > 5000
