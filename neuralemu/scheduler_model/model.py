"""The learned scheduler: a small permutation-equivariant transformer over the users of a slot.

One slot is a set of users. Each user's feature row goes through the same MLP
encoder; the slot's cell features (slot type, free PRBs, ...) are encoded and
added to every token; one extra learned token stands for "PRBs left unused".
A few pre-norm transformer blocks let users attend to each other (padding
masked out), so the output for a user depends on the others but not on their
order. Three heads read the final tokens:

* ``sched_logit`` [B, N]: P(user gets a new transmission this slot);
* ``share_logit`` [B, N+1]: softmax over users + the unused token = the share
  of the slot's free PRBs each user gets (the last entry is what stays unused);
* ``mcs_logit`` [B, N, n_mcs]: distribution over MCS indices 0..n_mcs-1
  (38.214 5.1.3.1). The head scores *offsets* -(n_mcs-1)..n_mcs-1 from each
  user's anchor MCS (its last MCS, or its CQI's MCS; an input), which are then
  placed on the absolute indices: link adaptation moves around the last MCS, so
  the same offset means the same thing for every user.

Everything here is plain torch (Linear, LayerNorm, ReLU, softmax) so that
:mod:`neuralemu.scheduler_model.runtime` can replay the same math in numpy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as Fn


@dataclass
class ModelConfig:
    n_user_features: int
    n_cell_features: int
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 2
    d_mlp: int = 64
    n_mcs: int = 29

    def to_json(self) -> dict:
        return asdict(self)


class Block(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.fc_out = nn.Linear(cfg.d_mlp, cfg.d_model)

    def attention(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(x).split(d, dim=2)
        q = q.view(b, t, h, d // h).transpose(1, 2)            # [B, H, T, dh]
        k = k.view(b, t, h, d // h).transpose(1, 2)
        v = v.view(b, t, h, d // h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // h)      # [B, H, T, T]
        att = att.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln_1(x), key_mask)
        x = x + self.fc_out(Fn.relu(self.fc(self.ln_2(x))))
        return x


class SchedulerModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.user_in = nn.Linear(cfg.n_user_features, d)
        self.user_hidden = nn.Linear(d, d)
        self.cell_in = nn.Linear(cfg.n_cell_features, d)
        self.unused_token = nn.Parameter(torch.zeros(d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.sched_head = nn.Linear(d, 1)
        self.share_head = nn.Linear(d, 1)
        self.mcs_head = nn.Linear(d, 2 * cfg.n_mcs - 1)
        nn.init.normal_(self.unused_token, std=0.02)

    def forward(self, user_x: torch.Tensor, cell_x: torch.Tensor, mask: torch.Tensor,
                anchor: torch.Tensor) -> dict[str, torch.Tensor]:
        """user_x [B, N, F], cell_x [B, C], mask [B, N] (True = real user), anchor [B, N] MCS."""
        b, n, _ = user_x.shape
        users = self.user_hidden(Fn.relu(self.user_in(user_x)))            # [B, N, d]
        unused = self.unused_token.expand(b, 1, -1)
        x = torch.cat([users, unused], dim=1) + self.cell_in(cell_x)[:, None, :]
        key_mask = torch.cat([mask, torch.ones(b, 1, dtype=torch.bool, device=mask.device)], 1)
        for block in self.blocks:
            x = block(x, key_mask)
        x = self.ln_f(x)
        share_logit = self.share_head(x).squeeze(-1).masked_fill(~key_mask, float("-inf"))
        return {
            "sched_logit": self.sched_head(x[:, :n]).squeeze(-1),
            "share_logit": share_logit,
            "mcs_logit": offsets_to_mcs(self.mcs_head(x[:, :n]), anchor, self.cfg.n_mcs),
        }


def offsets_to_mcs(offset_logit: torch.Tensor, anchor: torch.Tensor, n_mcs: int) -> torch.Tensor:
    """[B, N, 2 n_mcs - 1] offset scores -> [B, N, n_mcs]: class c takes offset c - anchor."""
    idx = torch.arange(n_mcs)[None, None, :] - anchor[..., None] + (n_mcs - 1)
    return torch.gather(offset_logit, 2, idx)

