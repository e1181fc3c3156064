"""Fast numpy inference: the math of :mod:`model` for one slot, without torch.

Torch eager costs tens of microseconds per call before any arithmetic; a slot
lasts 500 us at 30 kHz. This runtime loads the bundle's safetensors weights
into numpy and replays ``SchedulerModel.forward`` for a single slot (no batch,
no padding, so no masks). Algebraically identical rewrites keep it lean, each
done once at load time:

* the input standardisation ``(x - mean) / std`` is folded into the first
  linear layer (and into the cell encoder);
* LayerNorm gains and biases are folded into the linear layer that follows
  them (``ln_1`` into ``qkv``, ``ln_2`` into ``fc``, ``ln_f`` into the heads);
* the attention scale ``1/sqrt(d_head)`` is folded into the query weights;
* the three heads are one matrix.

:meth:`Runtime.forward` is the readable numpy version; :meth:`Runtime.forward_fast`
runs the same folded math in one numba-compiled function (matrix products
still go to BLAS; LayerNorm, softmax and the element-wise work become loops, so
a slot costs one call instead of ~60 numpy calls). It falls back to the numpy
version where numba is missing. ``tests/test_model_runtime.py`` checks that
both match the torch model (``allclose``). :func:`allocate` turns the outputs into PRBs and MCS under the
slot's constraints; the policy and the evaluation both use it.
"""

from __future__ import annotations

import math

import numpy as np

from neuralemu.scheduler_model.bundle import Bundle
from neuralemu.scheduler_model.features import anchor_mcs

LN_EPS = 1e-5   # torch.nn.LayerNorm default


def _normalise(x: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    return xc / np.sqrt(var + LN_EPS)


class Runtime:
    """One slot in, ``(sched_logit [N], share_logit [N+1], mcs_logit [N, n_mcs])`` out."""

    def __init__(self, bundle: Bundle) -> None:
        w = {k: v.astype(np.float32) for k, v in bundle.weights.items()}
        cfg = bundle.model
        self.d = d = cfg["d_model"]
        self.n_heads = h = cfg["n_heads"]
        self.dh = d // h
        self.n_mcs = cfg["n_mcs"]
        inv_std = (1.0 / bundle.user_std).astype(np.float32)
        w_in = w["user_in.weight"] * inv_std[None, :]                # fold standardisation
        self.w_in = np.ascontiguousarray(w_in.T)
        self.b_in = w["user_in.bias"] - w_in @ bundle.user_mean.astype(np.float32)
        self.w_hid = np.ascontiguousarray(w["user_hidden.weight"].T)
        self.b_hid = w["user_hidden.bias"]
        c_inv = (1.0 / bundle.cell_std).astype(np.float32)
        w_cell = w["cell_in.weight"] * c_inv[None, :]
        self.w_cell = np.ascontiguousarray(w_cell.T)
        self.b_cell = w["cell_in.bias"] - w_cell @ bundle.cell_mean.astype(np.float32)
        self.unused = w["unused_token"]
        scale = np.ones(3 * d, dtype=np.float32)
        scale[:d] = 1.0 / math.sqrt(self.dh)                           # fold attention scale
        self.blocks = []
        for i in range(cfg["n_layers"]):
            p = f"blocks.{i}."
            w_qkv, b_qkv = self._fold_ln(w[p + "ln_1.weight"], w[p + "ln_1.bias"],
                                         w[p + "qkv.weight"], w[p + "qkv.bias"])
            w_fc, b_fc = self._fold_ln(w[p + "ln_2.weight"], w[p + "ln_2.bias"],
                                       w[p + "fc.weight"], w[p + "fc.bias"])
            self.blocks.append((
                np.ascontiguousarray(w_qkv * scale[None, :]), b_qkv * scale,
                np.ascontiguousarray(w[p + "proj.weight"].T), w[p + "proj.bias"],
                w_fc, b_fc,
                np.ascontiguousarray(w[p + "fc_out.weight"].T), w[p + "fc_out.bias"]))
        heads_w = np.concatenate([w["sched_head.weight"], w["share_head.weight"],
                                  w["mcs_head.weight"]], axis=0)
        heads_b = np.concatenate([w["sched_head.bias"], w["share_head.bias"], w["mcs_head.bias"]])
        self.w_heads, self.b_heads = self._fold_ln(w["ln_f.weight"], w["ln_f.bias"], heads_w,
                                                   heads_b)
        self.b_in = self.b_in.astype(np.float32)
        self.b_cell = self.b_cell.astype(np.float32)
        self._blocks_tuple = tuple(self.blocks)
        self._classes = np.arange(self.n_mcs)

    @staticmethod
    def _fold_ln(gain, bias, weight, lin_bias):
        """LN(x) @ W.T + c == normalise(x) @ (gain[:, None] * W.T) + (bias @ W.T + c)."""
        wt = weight.T.astype(np.float32)
        return np.ascontiguousarray(gain[:, None] * wt), (bias @ wt + lin_bias).astype(np.float32)

    def forward(self, user_x: np.ndarray, cell_x: np.ndarray):
        n = user_x.shape[0]
        anchor = anchor_mcs(user_x)
        d, h, dh = self.d, self.n_heads, self.dh
        users = np.maximum(user_x @ self.w_in + self.b_in, 0.0) @ self.w_hid + self.b_hid
        x = np.empty((n + 1, d), dtype=np.float32)
        x[:n] = users
        x[n] = self.unused
        x += cell_x @ self.w_cell + self.b_cell
        t = n + 1
        for w_qkv, b_qkv, w_proj, b_proj, w_fc, b_fc, w_out, b_out in self.blocks:
            qkv = _normalise(x) @ w_qkv + b_qkv                         # [T, 3d]
            heads = qkv.reshape(t, 3, h, dh).transpose(1, 2, 0, 3)       # [3, H, T, dh]
            att = heads[0] @ heads[1].transpose(0, 2, 1)                 # [H, T, T]
            att = np.exp(att - att.max(axis=-1, keepdims=True))
            att /= att.sum(axis=-1, keepdims=True)
            y = (att @ heads[2]).transpose(1, 0, 2).reshape(t, d)
            x = x + y @ w_proj + b_proj
            x = x + np.maximum(_normalise(x) @ w_fc + b_fc, 0.0) @ w_out + b_out
        out = _normalise(x) @ self.w_heads + self.b_heads               # [T, 2 + 2 n_mcs - 1]
        return out[:n, 0], out[:, 1], self._place(out[:n, 2:], anchor)

    def _place(self, offsets: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        """Offset scores -> absolute MCS logits (model.offsets_to_mcs)."""
        idx = self._classes[None, :] - anchor[:, None] + (self.n_mcs - 1)
        return np.take_along_axis(offsets, idx, axis=1)

    def forward_fast(self, user_x: np.ndarray, cell_x: np.ndarray):
        """Same outputs as :meth:`forward`, from the compiled kernel when numba is present."""
        if _forward_kernel is None:
            return self.forward(user_x, cell_x)
        n = user_x.shape[0]
        anchor = anchor_mcs(user_x)
        out = _forward_kernel(np.ascontiguousarray(user_x, dtype=np.float32),
                              np.ascontiguousarray(cell_x, dtype=np.float32), self.w_in, self.b_in,
                              self.w_hid, self.b_hid, self.w_cell, self.b_cell, self.unused,
                              self._blocks_tuple, self.w_heads, self.b_heads, self.n_heads)
        return out[:n, 0], out[:, 1], self._place(out[:n, 2:], anchor)


from neuralemu.scheduler_model.kernels import (  # noqa: E402  (compiled loops, one module)
    _forward_loops, _layer_norm_loops, allocate_kernel as _allocate_jit, decide_kernel,
    forward_kernel as _forward_kernel)


def allocate(sched_logit: np.ndarray, share_logit: np.ndarray, mcs_logit: np.ndarray, *,
             prbs_available: int, max_ues: int, mcs_top: int,
             rng: np.random.Generator | None = None, buffer_bits: np.ndarray | None = None,
             bits_per_prb_by_mcs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """PRBs and MCS per user from the model's outputs, within the slot's constraints.

    Deterministic (``rng`` None): users with P(scheduled) > 0.5, at most
    ``max_ues`` of them (the most likely), the free PRBs split by the share
    softmax over those users + "unused" (largest remainder rounding, at least
    one PRB each while PRBs last), MCS = argmax over 0..``mcs_top``.
    Sampling (``rng`` given): scheduled ~ Bernoulli, MCS ~ the softmax.

    Buffer cap (when ``buffer_bits`` and ``bits_per_prb_by_mcs`` [32] are
    given): no user gets more PRBs than its buffer needs at its MCS
    (ceil(bits / bits-per-PRB)); PRBs freed that way go to the scheduled users
    that still need more, largest share first, the rest stay unused. A gNB
    does not pad transport blocks it could fill with nothing.

    Work conservation (with the buffer known): a gNB does not leave a slot
    wholly unused while a user has data waiting. When the model schedules
    nobody in such a slot -- an out-of-distribution state, typically a user it
    has no grant history for, whose features then never change -- the user with
    data and the highest P(scheduled) is scheduled, sized by the share head and
    the buffer cap like any other. The model's own decisions take over from the
    next slot, once the user has a history.
    """
    n = sched_logit.shape[0]
    prbs = np.zeros(n, dtype=np.int64)
    mcs = np.zeros(n, dtype=np.int64)
    if n == 0 or prbs_available <= 0 or max_ues <= 0:
        return prbs, mcs
    if rng is None:
        chosen = np.flatnonzero(sched_logit > 0.0)
    else:
        p = 1.0 / (1.0 + np.exp(-sched_logit.astype(np.float64)))
        chosen = np.flatnonzero(rng.random(n) < p)
    if chosen.size == 0 and buffer_bits is not None and bits_per_prb_by_mcs is not None:
        waiting = np.flatnonzero((buffer_bits > 0) & np.isfinite(sched_logit))   # work conservation
        if waiting.size:
            chosen = waiting[[int(np.argmax(sched_logit[waiting]))]]
    if chosen.size == 0:
        return prbs, mcs
    if chosen.size > max_ues:
        chosen = chosen[np.argsort(-sched_logit[chosen], kind="stable")[:max_ues]]
    logits = np.append(share_logit[chosen], share_logit[n]).astype(np.float64)
    share = np.exp(logits - logits.max())
    share /= share.sum()
    raw = share[:-1] * prbs_available
    base = np.floor(raw).astype(np.int64)
    left = int(round(raw.sum())) - int(base.sum())
    if left > 0:
        base[np.argsort(-(raw - base), kind="stable")[:left]] += 1
    short = base == 0                               # a scheduled user gets at least one PRB
    while short.any() and base.sum() < prbs_available:
        i = int(np.flatnonzero(short)[0])
        base[i] = 1
        short[i] = False
    over = int(base.sum()) - prbs_available
    while over > 0:                                  # never exceed the budget
        i = int(np.argmax(base))
        take = min(over, int(base[i]))
        base[i] -= take
        over -= take
    logits_mcs = mcs_logit[chosen, :mcs_top + 1]
    if rng is None:
        m = np.argmax(logits_mcs, axis=1)
    else:
        pm = np.exp(logits_mcs - logits_mcs.max(axis=1, keepdims=True))
        cdf = np.cumsum(pm / pm.sum(axis=1, keepdims=True), axis=1)
        m = np.minimum((cdf < rng.random((chosen.size, 1))).sum(axis=1), mcs_top)
    if buffer_bits is not None and bits_per_prb_by_mcs is not None:
        need = np.ceil(buffer_bits[chosen] / np.maximum(bits_per_prb_by_mcs[m], 1.0))
        need = np.maximum(need, 1).astype(np.int64)
        capped = np.minimum(base, need)
        spare = int(base.sum() - capped.sum())
        if spare > 0:
            for i in np.argsort(-share[:-1], kind="stable"):
                give = min(spare, int(need[i] - capped[i]))
                if give > 0:
                    capped[i] += give
                    spare -= give
                if spare <= 0:
                    break
        base = capped
    prbs[chosen] = base
    mcs[chosen] = m
    mcs[prbs == 0] = 0
    return prbs, mcs


def bits_per_prb_by_mcs(cell, direction: str, symbols: int, layers: int, mcs_table: str) -> np.ndarray:
    """[32] information bits one PRB carries at each MCS: N_RE per PRB (as seen in training,
    38.214 5.1.3.2) x layers x Qm x R. For the buffer cap of :func:`allocate`."""
    from neuralemu.scheduler_model import mcs_info
    re = cell.re_per_prb.get(direction, {}).get(str(int(symbols)), 12 * int(symbols) - 12)
    return max(re, 1) * max(layers, 1) * mcs_info.se_lookup(mcs_table)


def allocate_fast(sched_logit, share_logit, mcs_logit, *, prbs_available: int, max_ues: int,
                  mcs_top: int, buffer_bits=None, bits_per_prb_by_mcs=None):
    """:func:`allocate` in deterministic mode, compiled (same result)."""
    n = sched_logit.shape[0]
    prbs = np.zeros(n, dtype=np.int64)
    mcs = np.zeros(n, dtype=np.int64)
    best = np.argmax(mcs_logit[:, :mcs_top + 1], axis=1).astype(np.int64) if n else \
        np.zeros(0, dtype=np.int64)
    use_cap = buffer_bits is not None and bits_per_prb_by_mcs is not None
    _allocate_jit(np.ascontiguousarray(sched_logit, dtype=np.float32),
                  np.ascontiguousarray(share_logit, dtype=np.float32), best, int(prbs_available),
                  int(max_ues), np.asarray(buffer_bits if use_cap else np.zeros(n), dtype=np.float64),
                  np.asarray(bits_per_prb_by_mcs if use_cap else np.ones(32), dtype=np.float64),
                  use_cap, prbs, mcs)
    return prbs, mcs
