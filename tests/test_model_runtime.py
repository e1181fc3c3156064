"""The numpy runtime replays the torch model exactly, and allocations respect the slot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralemu.scheduler_model import features as F
from neuralemu.scheduler_model.bundle import Bundle, expected_shapes
from neuralemu.scheduler_model.dataset import CellConfig
from neuralemu.scheduler_model.model import ModelConfig, SchedulerModel
from neuralemu.scheduler_model.runtime import Runtime, allocate, allocate_fast


def random_bundle(seed: int = 0, n_layers: int = 2) -> tuple[Bundle, SchedulerModel]:
    torch.manual_seed(seed)
    cfg = ModelConfig(n_user_features=F.N_USER_FEATURES, n_cell_features=F.N_CELL_FEATURES,
                      d_model=32, n_heads=2, n_layers=n_layers, d_mlp=64, n_mcs=F.N_MCS_CLASSES)
    model = SchedulerModel(cfg).eval()
    with torch.no_grad():                      # non-trivial LayerNorm gains and token
        for name, p in model.named_parameters():
            if "ln" in name or name == "unused_token":
                p.add_(0.3 * torch.randn_like(p))
    rng = np.random.default_rng(seed)
    cell = CellConfig(slot_us=500.0, period_slots=20, directions=["dl"], prbs_total={"dl": 51},
                      mcs_table={"dl": "qam256"}, layers={"dl": 1}, max_ues={"dl": 4},
                      slot_types={"dl": {str(p): "D" for p in range(20)}},
                      symbols={"dl": {str(p): 13 for p in range(20)}},
                      re_per_prb={"dl": {"13": 144}})
    bundle = Bundle(model=cfg.to_json(),
                    weights={k: v.detach().numpy().copy() for k, v in model.state_dict().items()},
                    cell=cell,
                    user_mean=rng.normal(size=F.N_USER_FEATURES).astype(np.float32),
                    user_std=rng.uniform(0.5, 2, F.N_USER_FEATURES).astype(np.float32),
                    cell_mean=rng.normal(size=F.N_CELL_FEATURES).astype(np.float32),
                    cell_std=rng.uniform(0.5, 2, F.N_CELL_FEATURES).astype(np.float32),
                    training={})
    return bundle, model


def test_expected_shapes_match_torch_model():
    bundle, model = random_bundle(n_layers=3)
    bundle.model["n_layers"] = 3
    assert expected_shapes(bundle.model) == {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("n_users", [1, 5, 32, 64])
def test_numpy_runtime_matches_torch(n_users):
    bundle, model = random_bundle(seed=n_users)
    rt = Runtime(bundle)
    rng = np.random.default_rng(n_users)
    ux = rng.normal(size=(n_users, F.N_USER_FEATURES)).astype(np.float32) * 2
    cx = rng.normal(size=F.N_CELL_FEATURES).astype(np.float32)
    sl, sh, ml = rt.forward(ux, cx)
    fast = rt.forward_fast(ux, cx)
    for a, b in zip((sl, sh, ml), fast):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        u = torch.from_numpy((ux - bundle.user_mean) / bundle.user_std)[None]
        c = torch.from_numpy((cx - bundle.cell_mean) / bundle.cell_std)[None]
        a = torch.from_numpy(F.anchor_mcs(ux))[None]
        out = model(u, c, torch.ones(1, n_users, dtype=torch.bool), a)
    np.testing.assert_allclose(sl, out["sched_logit"][0].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sh, out["share_logit"][0].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ml, out["mcs_logit"][0].numpy(), rtol=1e-4, atol=1e-4)


def test_padding_does_not_change_outputs_and_order_is_equivariant():
    bundle, model = random_bundle(seed=3)
    rng = np.random.default_rng(0)
    ux = torch.from_numpy(rng.normal(size=(1, 6, F.N_USER_FEATURES)).astype(np.float32))
    cx = torch.from_numpy(rng.normal(size=(1, F.N_CELL_FEATURES)).astype(np.float32))
    anchor = torch.tensor([[3, 27, 0, 14, 9, 20]])
    with torch.no_grad():
        ref = model(ux, cx, torch.ones(1, 6, dtype=torch.bool), anchor)
        padded = model(torch.cat([ux, torch.zeros(1, 3, F.N_USER_FEATURES)], 1), cx,
                       torch.tensor([[True] * 6 + [False] * 3]),
                       torch.cat([anchor, torch.zeros(1, 3, dtype=torch.long)], 1))
        perm = torch.tensor([3, 1, 5, 0, 2, 4])
        permuted = model(ux[:, perm], cx, torch.ones(1, 6, dtype=torch.bool), anchor[:, perm])
    torch.testing.assert_close(padded["sched_logit"][:, :6], ref["sched_logit"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded["share_logit"][:, [0, 1, 2, 3, 4, 5, 9]], ref["share_logit"],
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(permuted["mcs_logit"], ref["mcs_logit"][:, perm], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", range(20))
def test_allocate_respects_budget_user_limit_and_mcs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    avail = int(rng.integers(0, 273))
    max_ues = int(rng.integers(1, 16))
    top = int(rng.choice([27, 28]))
    sl = rng.normal(size=n) * 3
    sh = rng.normal(size=n + 1) * 3
    ml = rng.normal(size=(n, 29))
    for r in (None, np.random.default_rng(seed)):
        prbs, mcs = allocate(sl, sh, ml, prbs_available=avail, max_ues=max_ues, mcs_top=top, rng=r)
        assert prbs.sum() <= avail and (prbs >= 0).all()
        assert (prbs > 0).sum() <= max_ues
        assert ((mcs >= 0) & (mcs <= top)).all()
        if r is None:
            assert set(np.flatnonzero(prbs > 0)) <= set(np.flatnonzero(sl > 0))


def test_sampling_mode_is_seeded():
    rng = np.random.default_rng(0)
    sl, sh, ml = rng.normal(size=10), rng.normal(size=11), rng.normal(size=(10, 29))
    a = allocate(sl, sh, ml, prbs_available=100, max_ues=8, mcs_top=27, rng=np.random.default_rng(5))
    b = allocate(sl, sh, ml, prbs_available=100, max_ues=8, mcs_top=27, rng=np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("seed", range(40))
def test_compiled_allocate_matches_numpy(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 65))
    avail = int(rng.integers(0, 274))
    max_ues = int(rng.integers(1, 20))
    sl = (rng.normal(size=n) * 3).astype(np.float32)
    sh = (rng.normal(size=n + 1) * 3).astype(np.float32)
    ml = rng.normal(size=(n, 29)).astype(np.float32)
    buf = rng.exponential(3000, n) * 8 * (rng.random(n) < 0.8)
    bpp = 144 * np.linspace(0.2, 7.4, 32)
    for cap in ((None, None), (buf, bpp)):
        a = allocate(sl, sh, ml, prbs_available=avail, max_ues=max_ues, mcs_top=27,
                     buffer_bits=cap[0], bits_per_prb_by_mcs=cap[1])
        b = allocate_fast(sl, sh, ml, prbs_available=avail, max_ues=max_ues, mcs_top=27,
                          buffer_bits=cap[0], bits_per_prb_by_mcs=cap[1])
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_compiled_decide_matches_numpy_path():
    """LearnedPolicy: the one-call compiled decide == features + forward + allocate in numpy."""
    from neuralemu.cell.policy import SlotContext, UeFeatures
    from neuralemu.scheduler_model.policy import LearnedPolicy

    bundle, _ = random_bundle(3)
    bundle.weights["sched_head.bias"] = bundle.weights["sched_head.bias"] + 1.0   # some scheduled
    fast, ref = LearnedPolicy(bundle), LearnedPolicy(bundle)
    ref._decide_compiled = ref._decide_numpy          # force the readable path
    rng = np.random.default_rng(7)
    scheduled = 0
    for n in (1, 5, 30, 70):
        ids = np.arange(n, dtype=np.int64) + 100
        for s in range(40):
            ctx = SlotContext(slot=s, t_us=s * 500, direction="dl", slot_type="D",
                              prbs_available=int(rng.integers(1, 52)), prbs_total=51, symbols=13,
                              max_ues=int(rng.integers(1, 8)), mcs_table="qam256", max_layers=1)
            ues = UeFeatures(ue_id=ids, buffer_bytes=rng.exponential(9000, n) * (rng.random(n) < .7),
                             cqi=rng.integers(1, 16, n), sinr_db=rng.normal(15, 5, n),
                             la_mcs=rng.integers(0, 28, n), avg_tput_bps=np.zeros(n),
                             last_mcs=np.full(n, -1), last_prbs=np.zeros(n, np.int64),
                             slots_since_grant=np.zeros(n, np.int64),
                             pending_retx=rng.integers(0, 2, n), priority=np.ones(n))
            a, b = fast.decide(ctx, ues), ref.decide(ctx, ues)
            assert np.array_equal(a.prbs, b.prbs) and np.array_equal(a.mcs, b.mcs)
            scheduled += int((a.prbs > 0).sum())
            fast.observe(ctx, ues, a)
            ref.observe(ctx, ues, b)
    assert scheduled > 0
