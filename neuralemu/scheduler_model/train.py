"""The training loop: telemetry samples in, a validated ``.nemu`` bundle out.

Plain torch, nanoGPT style: AdamW, fixed-size batches of slots, a time-based
validation split (the last ``val_frac`` of every recording), early stopping on
the validation loss with ``patience`` epochs, one checkpoint bundle per epoch.

Multi-process: started under ``torchrun --nproc_per_node K`` (``WORLD_SIZE`` >
1) it joins a ``gloo`` process group, wraps the model in
``DistributedDataParallel`` and gives every rank its own shard of each epoch's
batches; validation losses are summed over ranks, so every rank takes the same
early-stopping decision. Only rank 0 writes checkpoints and the bundle.

Loss per batch (over real users only):

* binary cross-entropy of ``sched_logit`` against "got a new transmission";
* cross-entropy of ``share_logit`` (softmax over users + unused) against the
  PRB shares ``prbs / prbs_available`` with the rest on the unused token;
* cross-entropy of ``mcs_logit`` against the MCS of scheduled users (indices
  above the table's top MCS are masked out).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as Fn

from neuralemu.progress import progress
from neuralemu.scheduler_model import features as F
from neuralemu.scheduler_model.bundle import Bundle, save_bundle
from neuralemu.scheduler_model.dataset import CellConfig, SlotDataset
from neuralemu.scheduler_model.model import ModelConfig, SchedulerModel


@dataclass
class TrainConfig:
    epochs: int = 40
    seed: int = 0
    val_frac: float = 0.2
    patience: int = 5
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 2
    d_mlp: int = 64
    mcs_weight: float = 0.5
    threads: int = 1
    max_seconds: float | None = None       # stop after this wall time (keeps the best epoch)
    checkpoint_dir: str | None = None


def _masked_stats(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = x[mask] if mask is not None else x
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    std = np.where(std < 1e-3, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def _tensors(data: SlotDataset) -> dict[str, torch.Tensor]:
    share_ok = data.prbs_available > 0
    share = np.where(share_ok[:, None], data.prbs / np.maximum(data.prbs_available, 1)[:, None], 0)
    share = np.minimum(share, 1.0)
    unused = np.clip(1.0 - share.sum(axis=1), 0.0, 1.0)
    return {
        "user_x": torch.from_numpy(data.user_x), "cell_x": torch.from_numpy(data.cell_x),
        "anchor": torch.from_numpy(data.anchor),
        "mask": torch.from_numpy(data.mask), "sched": torch.from_numpy(data.sched),
        "share": torch.from_numpy(np.concatenate([share, unused[:, None]], 1).astype(np.float32)),
        "share_ok": torch.from_numpy(share_ok),
        "mcs": torch.from_numpy(data.mcs), "mcs_top": torch.from_numpy(data.mcs_top),
    }


def losses(out: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
           mcs_weight: float = 0.5) -> dict[str, torch.Tensor]:
    """Per-batch losses; each is a mean over the items it is defined on."""
    mask = b["mask"]
    bce = Fn.binary_cross_entropy_with_logits(out["sched_logit"], b["sched"], reduction="none")
    sched = (bce * mask).sum() / mask.sum().clamp(min=1)
    key_mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    logp = torch.log_softmax(out["share_logit"], dim=1)
    logp = torch.where(key_mask, logp, torch.zeros_like(logp))
    share_ce = -(b["share"] * logp).sum(1)
    ok = b["share_ok"].float()
    share = (share_ce * ok).sum() / ok.sum().clamp(min=1)
    has_mcs = (b["mcs"] >= 0) & mask
    n_mcs = out["mcs_logit"].shape[-1]
    classes = torch.arange(n_mcs)
    logits = out["mcs_logit"].masked_fill(classes > b["mcs_top"][:, None, None], float("-inf"))
    if has_mcs.any():
        mcs = Fn.cross_entropy(logits[has_mcs], b["mcs"][has_mcs])
    else:
        mcs = out["mcs_logit"].sum() * 0.0
    return {"sched": sched, "share": share, "mcs": mcs,
            "total": sched + share + mcs_weight * mcs}


def _batch(t: dict[str, torch.Tensor], idx: np.ndarray) -> dict[str, torch.Tensor]:
    ii = torch.from_numpy(idx)
    return {k: v[ii] for k, v in t.items()}


def _dist():
    """(rank, world_size, torch.distributed module or None)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), dist


def normalise(data: SlotDataset, user_mean, user_std, cell_mean, cell_std) -> SlotDataset:
    out = data.subset(np.arange(len(data)))
    out.anchor = F.anchor_mcs(data.user_x)                 # from the raw features
    out.user_x = ((data.user_x - user_mean) / user_std * data.mask[..., None]).astype(np.float32)
    out.cell_x = ((data.cell_x - cell_mean) / cell_std).astype(np.float32)
    return out


def fit(data: SlotDataset, cell: CellConfig, cfg: TrainConfig, *, sources: list[str] | None = None,
        out_path: str | Path | None = None, log=print) -> Bundle:
    """Train on ``data`` (split by time into train/validation) and return the best bundle."""
    rank, world, dist = _dist()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    train_set, val_set = data.split_by_time(cfg.val_frac)
    if len(train_set) == 0:
        raise ValueError("no training samples left after the validation split")
    user_mean, user_std = _masked_stats(train_set.user_x, train_set.mask)
    cell_mean, cell_std = _masked_stats(train_set.cell_x, None)
    tr = _tensors(normalise(train_set, user_mean, user_std, cell_mean, cell_std))
    va = _tensors(normalise(val_set, user_mean, user_std, cell_mean, cell_std)) \
        if len(val_set) else None
    mcfg = ModelConfig(n_user_features=F.N_USER_FEATURES, n_cell_features=F.N_CELL_FEATURES,
                       d_model=cfg.d_model, n_heads=cfg.n_heads, n_layers=cfg.n_layers,
                       d_mlp=cfg.d_mlp, n_mcs=F.N_MCS_CLASSES)
    model = SchedulerModel(mcfg)
    net = model
    if dist is not None:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(train_set)
    per_rank = n // world
    n_batches = max(1, per_rank // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * n_batches,
                                                pct_start=0.1)
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    best = (float("inf"), None, -1)
    history = []
    stale = 0
    t0 = time.monotonic()
    bar = progress(total=cfg.epochs * n_batches, desc="train", unit="batch") if rank == 0 else None
    for epoch in range(cfg.epochs):
        net.train()
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(n)[rank * per_rank:(rank + 1) * per_rank]
        train_loss = 0.0
        for i in range(n_batches):
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size] if per_rank >= cfg.batch_size \
                else perm
            b = _batch(tr, idx)
            out = net(b["user_x"], b["cell_x"], b["mask"], b["anchor"])
            loss = losses(out, b, cfg.mcs_weight)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            train_loss += loss.item()
            if bar is not None:
                bar.update(1)
        val_loss = _validate(model, va, cfg, rank, world, dist) if va is not None \
            else train_loss / n_batches
        history.append({"epoch": epoch, "train_loss": train_loss / n_batches, "val_loss": val_loss})
        if bar is not None:
            bar.set_postfix(val=f"{val_loss:.4f}")
        improved = val_loss < best[0] - 1e-5
        if improved:
            best = (val_loss, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch)
            stale = 0
        else:
            stale += 1
        if rank == 0 and ckpt_dir is not None:
            snap = _bundle(model.state_dict(), mcfg, cell, user_mean, user_std, cell_mean, cell_std,
                           cfg, history, sources, epoch)
            save_bundle(ckpt_dir / f"epoch_{epoch:03d}.nemu", snap)
        over_time = cfg.max_seconds is not None and time.monotonic() - t0 > cfg.max_seconds
        if dist is not None:        # every rank must stop at the same epoch
            flag = torch.tensor([float(stale >= cfg.patience or over_time)])
            dist.all_reduce(flag)
            stop = bool(flag.item() > 0)
        else:
            stop = stale >= cfg.patience or over_time
        if stop:
            break
    if bar is not None:
        bar.close()
    model.load_state_dict(best[1])
    bundle = _bundle(model.state_dict(), mcfg, cell, user_mean, user_std, cell_mean, cell_std,
                     cfg, history, sources, best[2])
    bundle.training["seconds"] = round(time.monotonic() - t0, 2)
    bundle.training["world_size"] = world
    if rank == 0 and out_path is not None:
        save_bundle(out_path, bundle)
        if ckpt_dir is not None:
            save_bundle(ckpt_dir / "best.nemu", bundle)
    if dist is not None:
        dist.barrier()
    return bundle


@torch.no_grad()
def _validate(model, va, cfg: TrainConfig, rank: int, world: int, dist) -> float:
    model.eval()
    n = va["user_x"].shape[0]
    idx = np.arange(rank, n, world)
    total, count = 0.0, 0
    for i in range(0, len(idx), 1024):
        b = _batch(va, idx[i:i + 1024])
        out = model(b["user_x"], b["cell_x"], b["mask"], b["anchor"])
        k = len(b["mask"])
        total += float(losses(out, b, cfg.mcs_weight)["total"]) * k
        count += k
    if dist is not None:
        t = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(count, 1)


def _bundle(state, mcfg, cell, user_mean, user_std, cell_mean, cell_std, cfg, history, sources,
            epoch) -> Bundle:
    weights = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in state.items()}
    training = {"config": asdict(cfg), "epoch": epoch, "history": history,
                "sources": list(sources or [])}
    return Bundle(model=mcfg.to_json(), weights=weights, cell=cell, user_mean=user_mean,
                  user_std=user_std, cell_mean=cell_mean, cell_std=cell_std, training=training)
