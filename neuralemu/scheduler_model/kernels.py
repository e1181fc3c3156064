"""The compiled loops of the learned scheduler, in ONE module.

numba caches a compiled function on disk keyed on the file that defines it;
a kernel that calls a kernel of another file would keep running the stale
callee after that file changed. Keeping every kernel here (features, history
update, forward pass, allocation and the fused decision) makes any edit
invalidate all of them together. The readable wrappers live in
:mod:`features` and :mod:`runtime`.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a project dependency (the cell kernel)
    njit = None

LN_EPS = 1e-5   # torch.nn.LayerNorm default
# "slots since the last grant" saturates here (features.SINCE_CAP_SLOTS); a user never granted
# is a user granted this long ago at its CQI's MCS, as a proportional-fair average sees it
SINCE_CAP_SLOTS = 1000.0


def _features_loops(rows, last_mcs, last_prbs, last_grant_slot, avg_value, avg_at, keep,
                    slot, dslot, is_ul, buf, cqi, sinr, use_sinr, pending, prbs_available,
                    prbs_total, symbols, layers, se_lut, cqi_se_lut, cqi_mcs_lut, out):
    """The feature definitions, one user at a time (see USER_FEATURE_NAMES for the order)."""
    n = rows.shape[0]
    nw = keep.shape[0]
    avg = np.empty((n, nw))
    pf = np.empty((n, nw))
    total = np.zeros(nw)
    best_pf = np.full(nw, -1e9)
    best_se = -1e9
    best_since = -1e9
    pf_la = np.empty((n, nw))
    best_pf_la = np.full(nw, -1e9)
    for i in range(n):
        r = rows[i]
        gap = max(dslot - 1.0 - avg_at[r], 0.0)
        c = min(max(int(cqi[i]), 0), 15)
        log_se = np.log(max(cqi_se_lut[c], 0.05))
        # the rate a link-adapted scheduler expects: the last granted MCS (CQI's MCS if none)
        la = cqi_mcs_lut[c] if last_mcs[r] < 0 else int(last_mcs[r])
        log_se_la = np.log(max(se_lut[min(max(la, 0), 31)], 0.05))
        log_since = np.log1p(min(slot - last_grant_slot[r], SINCE_CAP_SLOTS))
        for k in range(nw):
            avg[i, k] = avg_value[r, k] * keep[k] ** gap
            total[k] += avg[i, k]
            pf[i, k] = log_se - np.log(avg[i, k] + 100.0)
            pf_la[i, k] = log_se_la - np.log(avg[i, k] + 100.0)
            if buf[i] > 0:
                best_pf[k] = max(best_pf[k], pf[i, k])
                best_pf_la[k] = max(best_pf_la[k], pf_la[i, k])
        if buf[i] > 0:
            best_se = max(best_se, log_se)
            best_since = max(best_since, log_since)
    j = 7 + 2 * nw
    for i in range(n):
        r = rows[i]
        never = last_mcs[r] < 0
        since = min(slot - last_grant_slot[r], SINCE_CAP_SLOTS)
        c = min(max(int(cqi[i]), 0), 15)
        log_se = np.log(max(cqi_se_lut[c], 0.05))
        out[i, 0] = np.log1p(max(buf[i], 0.0)) / 10.0
        out[i, 1] = 1.0 if buf[i] > 0 else 0.0
        out[i, 2] = c / 15.0
        out[i, 3] = min(max(sinr[i], -20.0), 40.0) / 30.0 if use_sinr else 0.0
        # never granted = granted long ago at the CQI's MCS (no separate flag: a user without a
        # grant is rare in telemetry of a fair scheduler, and a flag would be off-distribution)
        out[i, 4] = (cqi_mcs_lut[c] if never else last_mcs[r]) / 28.0
        out[i, 5] = last_prbs[r] / max(prbs_total, 1.0)
        out[i, 6] = np.log1p(since) / 8.0
        for k in range(nw):
            out[i, 7 + k] = np.log1p(avg[i, k] / 100.0) / 10.0
            out[i, 7 + nw + k] = avg[i, k] / max(total[k], 1e-9)
        out[i, j] = pending[i] / 4.0
        out[i, j + 1] = 1.0 if is_ul else 0.0
        # PRBs this user's buffer needs at its expected MCS, as a fraction of what is free
        est_mcs = cqi_mcs_lut[c] if never else int(last_mcs[r])
        bits_per_prb = 12.0 * symbols * layers * se_lut[min(max(est_mcs, 0), 31)]
        need = max(buf[i], 0.0) * 8.0 / max(bits_per_prb, 1.0) / max(prbs_available, 1.0)
        out[i, j + 2] = min(need, 4.0)
        out[i, j + 3] = np.log(min(max(need, 1e-3), 4.0))
        out[i, j + 4] = log_se
        out[i, j + 5] = cqi_mcs_lut[c] / 28.0
        has = buf[i] > 0
        out[i, j + 6] = max(log_se - best_se, -3.0) if has else -3.0
        out[i, j + 7] = max(np.log1p(since) - best_since, -5.0) if has else -5.0
        for k in range(nw):
            out[i, j + 8 + k] = pf[i, k] / 10.0
            out[i, j + 8 + nw + k] = max(pf[i, k] - best_pf[k], -3.0) if has else -3.0
            out[i, j + 8 + 2 * nw + k] = max(pf_la[i, k] - best_pf_la[k], -3.0) if has else -3.0


def _update_loops(rows, prbs, mcs, layers, symbols, slot, dslot, keep, se_lut, last_mcs,
                  last_prbs, last_grant_slot, avg_value, avg_at):
    """Granted users: last MCS / PRBs / slot, and the raw bits into the lazy averages."""
    for i in range(rows.shape[0]):
        if prbs[i] <= 0:
            continue
        r = rows[i]
        m = min(max(mcs[i], 0), 31)
        bits = prbs[i] * 12.0 * symbols * layers[i] * se_lut[m]
        last_mcs[r] = mcs[i]
        last_prbs[r] = prbs[i]
        last_grant_slot[r] = slot
        gap = max(dslot - 1.0 - avg_at[r], 0.0)
        for k in range(keep.shape[0]):
            avg_value[r, k] = avg_value[r, k] * keep[k] ** gap * keep[k] + (1.0 - keep[k]) * bits
        avg_at[r] = dslot


def _layer_norm_loops(x, out):
    """out = (x - mean) / sqrt(var + eps) per row (gain and bias are folded elsewhere)."""
    t, d = x.shape
    for i in range(t):
        m = 0.0
        for j in range(d):
            m += x[i, j]
        m /= d
        v = 0.0
        for j in range(d):
            z = x[i, j] - m
            v += z * z
        r = 1.0 / np.sqrt(v / d + LN_EPS)
        for j in range(d):
            out[i, j] = (x[i, j] - m) * r


def _forward_loops(user_x, cell_x, w_in, b_in, w_hid, b_hid, w_cell, b_cell, unused, blocks,
                   w_heads, b_heads, n_heads):
    """:meth:`Runtime.forward` written for numba: returns [T, 2 + n_mcs]."""
    n = user_x.shape[0]
    d = w_hid.shape[0]
    t = n + 1
    dh = d // n_heads
    h1 = np.dot(user_x, w_in)
    for i in range(n):
        for j in range(h1.shape[1]):
            z = h1[i, j] + b_in[j]
            h1[i, j] = z if z > 0.0 else 0.0
    h2 = np.dot(h1, w_hid)
    c = np.dot(cell_x, w_cell)
    x = np.empty((t, d), dtype=np.float32)
    for j in range(d):
        cj = c[j] + b_cell[j]
        for i in range(n):
            x[i, j] = h2[i, j] + b_hid[j] + cj
        x[n, j] = unused[j] + cj
    a = np.empty((t, d), dtype=np.float32)
    q = np.empty((t, dh), dtype=np.float32)
    kt = np.empty((dh, t), dtype=np.float32)
    v = np.empty((t, dh), dtype=np.float32)
    y = np.empty((t, d), dtype=np.float32)
    for w_qkv, b_qkv, w_proj, b_proj, w_fc, b_fc, w_out, b_out in blocks:
        _layer_norm_jit(x, a)
        qkv = np.dot(a, w_qkv)
        for h in range(n_heads):
            o = h * dh
            for i in range(t):
                for j in range(dh):
                    q[i, j] = qkv[i, o + j] + b_qkv[o + j]
                    kt[j, i] = qkv[i, d + o + j] + b_qkv[d + o + j]
                    v[i, j] = qkv[i, 2 * d + o + j] + b_qkv[2 * d + o + j]
            att = np.dot(q, kt)
            for i in range(t):
                mx = att[i, 0]
                for j in range(1, t):
                    mx = max(mx, att[i, j])
                s = 0.0
                for j in range(t):
                    e = np.exp(att[i, j] - mx)
                    att[i, j] = e
                    s += e
                for j in range(t):
                    att[i, j] /= s
            yh = np.dot(att, v)
            for i in range(t):
                for j in range(dh):
                    y[i, o + j] = yh[i, j]
        p = np.dot(y, w_proj)
        for i in range(t):
            for j in range(d):
                x[i, j] += p[i, j] + b_proj[j]
        _layer_norm_jit(x, a)
        f = np.dot(a, w_fc)
        for i in range(t):
            for j in range(f.shape[1]):
                z = f[i, j] + b_fc[j]
                f[i, j] = z if z > 0.0 else 0.0
        p = np.dot(f, w_out)
        for i in range(t):
            for j in range(d):
                x[i, j] += p[i, j] + b_out[j]
    _layer_norm_jit(x, a)
    out = np.dot(a, w_heads)
    for i in range(t):
        for j in range(out.shape[1]):
            out[i, j] += b_heads[j]
    return out


# --- compiled decision path ------------------------------------------------------------------
# The whole deterministic ``decide`` of the learned policy as compiled code: features
# (features._features_loops), the forward pass (_forward_loops), the MCS argmax around each
# user's anchor and the allocation (_allocate_loops, the same rules as :func:`allocate`).


def _pick_order(key, idx, count, take):
    """The first ``take`` of ``idx[:count]`` by descending ``key[idx]``, ties in idx order
    (np.argsort(-key, kind="stable")[:take]); returns a new array."""
    used = np.zeros(count, dtype=np.bool_)
    out = np.empty(take, dtype=np.int64)
    for t in range(take):
        best = -1
        for j in range(count):
            if not used[j] and (best < 0 or key[j] > key[best]):
                best = j
        used[best] = True
        out[t] = best
    return out


def _allocate_loops(sched_logit, share_logit, best_mcs, prbs_available, max_ues, buffer_bits,
                    bits_per_prb, use_cap, prbs, mcs):
    """Deterministic :func:`allocate` given each user's argmax MCS ``best_mcs``; fills prbs, mcs."""
    n = sched_logit.shape[0]
    for i in range(n):
        prbs[i] = 0
        mcs[i] = 0
    if n == 0 or prbs_available <= 0 or max_ues <= 0:
        return
    chosen = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        if sched_logit[i] > 0.0:
            chosen[k] = i
            k += 1
    if k == 0 and use_cap:              # work conservation (see runtime.allocate)
        pick = -1
        for i in range(n):
            if buffer_bits[i] > 0.0 and np.isfinite(sched_logit[i]) and \
                    (pick < 0 or sched_logit[i] > sched_logit[pick]):
                pick = i
        if pick >= 0:
            chosen[0] = pick
            k = 1
    if k == 0:
        return
    if k > max_ues:
        key = np.empty(k)
        for j in range(k):
            key[j] = sched_logit[chosen[j]]
        order = _pick_order_jit(key, chosen, k, max_ues)
        top = np.empty(max_ues, dtype=np.int64)
        for j in range(max_ues):
            top[j] = chosen[order[j]]
        chosen = top
        k = max_ues
    share = np.empty(k + 1)
    mx = float(share_logit[n])
    for j in range(k):
        mx = max(mx, float(share_logit[chosen[j]]))
    s = 0.0
    for j in range(k):
        share[j] = np.exp(float(share_logit[chosen[j]]) - mx)
        s += share[j]
    share[k] = np.exp(float(share_logit[n]) - mx)
    s += share[k]
    for j in range(k + 1):
        share[j] /= s
    raw = np.empty(k)
    base = np.empty(k, dtype=np.int64)
    raw_sum = 0.0
    base_sum = 0
    for j in range(k):
        raw[j] = share[j] * prbs_available
        base[j] = int(np.floor(raw[j]))
        raw_sum += raw[j]
        base_sum += base[j]
    left = int(np.rint(raw_sum)) - base_sum
    if left > 0:
        frac = np.empty(k)
        for j in range(k):
            frac[j] = raw[j] - base[j]
        order = _pick_order_jit(frac, chosen, k, min(left, k))
        for j in range(order.shape[0]):
            base[order[j]] += 1
            base_sum += 1
    for j in range(k):                       # a scheduled user gets at least one PRB
        if base_sum >= prbs_available:
            break
        if base[j] == 0:
            base[j] = 1
            base_sum += 1
    over = base_sum - prbs_available
    while over > 0:                          # never exceed the budget
        i = 0
        for j in range(1, k):
            if base[j] > base[i]:
                i = j
        take = min(over, base[i])
        base[i] -= take
        over -= take
    if use_cap:
        need = np.empty(k, dtype=np.int64)
        spare = 0
        for j in range(k):
            bpp = max(bits_per_prb[best_mcs[chosen[j]]], 1.0)
            need[j] = max(int(np.ceil(buffer_bits[chosen[j]] / bpp)), 1)
            capped = min(base[j], need[j])
            spare += base[j] - capped
            base[j] = capped
        if spare > 0:
            order = _pick_order_jit(share, chosen, k, k)
            for t in range(k):
                j = order[t]
                give = min(spare, need[j] - base[j])
                if give > 0:
                    base[j] += give
                    spare -= give
                if spare <= 0:
                    break
    for j in range(k):
        c = chosen[j]
        prbs[c] = base[j]
        mcs[c] = best_mcs[c] if base[j] > 0 else 0


def _decide_loops(rows, last_mcs, last_prbs, last_grant_slot, avg_value, avg_at, keep, slot, dslot,
                  is_ul, buf, cqi, sinr, use_sinr, pending, prbs_available, prbs_total, symbols,
                  layers, se_lut, cqi_se_lut, cqi_mcs_lut, slot_code, n_users_frac, max_ues_frac,
                  w_in, b_in, w_hid, b_hid, w_cell, b_cell, unused, blocks, w_heads, b_heads,
                  n_heads, n_mcs, max_ues, mcs_top, bits_per_prb, use_cap, i_last_mcs,
                  user_x, prbs, mcs):
    """Features -> model -> allocation for one slot (the compiled ``LearnedPolicy.decide``)."""
    _features_jit(rows, last_mcs, last_prbs, last_grant_slot, avg_value, avg_at, keep, slot, dslot,
                  is_ul, buf, cqi, sinr, use_sinr, pending, prbs_available, prbs_total, symbols,
                  layers, se_lut, cqi_se_lut, cqi_mcs_lut, user_x)
    cell_x = np.zeros(8, dtype=np.float32)         # features.CELL_FEATURE_NAMES
    if 0 <= slot_code < 3:
        cell_x[slot_code] = 1.0
    cell_x[3] = prbs_available / max(prbs_total, 1.0)
    cell_x[4] = symbols / 14.0
    cell_x[5] = n_users_frac
    cell_x[6] = max_ues_frac
    cell_x[7] = 1.0 if is_ul else 0.0
    out = _forward_kernel(user_x, cell_x, w_in, b_in, w_hid, b_hid, w_cell, b_cell, unused, blocks,
                          w_heads, b_heads, n_heads)
    n = user_x.shape[0]
    best = np.zeros(n, dtype=np.int64)
    for i in range(n):
        anchor = min(max(int(np.rint(user_x[i, i_last_mcs] * 28.0)), 0), n_mcs - 1)
        bm = 0
        bv = -np.inf
        for m in range(mcs_top + 1):
            v = out[i, 2 + m - anchor + n_mcs - 1]
            if v > bv:
                bv = v
                bm = m
        best[i] = bm
    sl = np.empty(n, dtype=np.float32)
    sh = np.empty(n + 1, dtype=np.float32)
    for i in range(n):
        sl[i] = out[i, 0]
        sh[i] = out[i, 1]
    sh[n] = out[n, 1]
    _allocate_jit(sl, sh, best, prbs_available, max_ues, buf * 8.0 if use_cap else buf,
                  bits_per_prb, use_cap, prbs, mcs)



# --- dataset builder -------------------------------------------------------------------------
# Here and not in dataset.py: it calls the feature and history kernels, and numba's on-disk cache
# of a function in another file would keep the OLD feature code after an edit of this one (the
# training data and the policy would then compute different features).


def _build_loop(slots, dslots, default_sym, attached, buffer, cqi, sinr, use_sinr, pending, lo, hi,
                r_col, r_prbs, r_mcs, r_layers, r_sym, r_tbs, r_retx, prbs_total, default_layers,
                top, is_ul, max_users, keep, se_lut, cqi_se_lut, cqi_mcs_lut, last_mcs,
                last_prbs, last_grant_slot, avg_value, avg_at, o_user_x, o_col, o_sched, o_prbs,
                o_mcs, o_tbs, o_layers, o_buf, o_cqi, o_avg, o_since, o_avail, o_sym, o_n):
    """Slot by slot (compiled with numba): candidates, targets, features, then the tracker.

    A slot's candidates are the users attached in the UE-side log that have no
    retransmission in it (busy, as in the engine); the PRBs of retransmissions
    and of users missing from the UE log are not available. No sample (o_n = 0)
    when nothing is available or nobody is a candidate: the engine asks the
    policy nothing then either.
    """
    n_slots, n_ues = attached.shape
    nt = keep.shape[0]
    busy = np.zeros(n_ues, dtype=np.bool_)
    slot_of = np.full(n_ues, -1, dtype=np.int64)
    for k in range(n_slots):
        a, b = lo[k], hi[k]
        taken = 0.0
        sym = default_sym[k]
        for i in range(a, b):
            sym = max(sym, r_sym[i]) if i > a else r_sym[i]
            if r_retx[i] or r_col[i] < 0:
                taken += r_prbs[i]
                if r_col[i] >= 0:
                    busy[r_col[i]] = True
        avail = prbs_total - taken
        granted = np.zeros(n_ues, dtype=np.bool_)
        for i in range(a, b):
            if not r_retx[i] and r_col[i] >= 0:
                granted[r_col[i]] = True
        cand = np.empty(n_ues, dtype=np.int64)
        n = 0
        for j in range(n_ues):
            if attached[k, j] and not busy[j]:
                cand[n] = j
                n += 1
        for i in range(a, b):
            if r_col[i] >= 0:
                busy[r_col[i]] = False
        if n == 0 or avail <= 0:
            continue
        if n > max_users:            # keep the granted users, then the fullest buffers
            score = np.empty(n)
            for i in range(n):
                j = cand[i]
                score[i] = (1e18 if granted[j] else 0.0) + buffer[k, j]
            order = np.argsort(-score)[:max_users]
            cand = np.sort(cand[order])
            n = max_users
        for i in range(n):
            slot_of[cand[i]] = i
        o_n[k] = n
        o_avail[k] = int(avail)
        o_sym[k] = sym
        for i in range(a, b):
            j = r_col[i]
            if r_retx[i] or j < 0 or slot_of[j] < 0:
                continue
            u = slot_of[j]
            before = o_prbs[k, u]
            o_sched[k, u] = 1.0
            o_prbs[k, u] += r_prbs[i]
            if r_prbs[i] >= before:                  # the larger grant names the MCS
                o_mcs[k, u] = min(r_mcs[i], top)
                o_layers[k, u] = r_layers[i]
            o_tbs[k, u] += r_tbs[i]
        rows = cand[:n].copy()
        for i in range(n):
            j = rows[i]
            o_col[k, i] = j
            o_buf[k, i] = buffer[k, j]
            o_cqi[k, i] = cqi[k, j]
            o_since[k, i] = slots[k] - last_grant_slot[j]
            gap = max(dslots[k] - 1.0 - avg_at[j], 0.0)
            for t in range(nt):
                o_avg[k, i, t] = avg_value[j, t] * keep[t] ** gap
            slot_of[j] = -1
        _features_jit(rows, last_mcs, last_prbs, last_grant_slot, avg_value, avg_at, keep,
                          slots[k], dslots[k], is_ul, buffer[k][rows], cqi[k][rows],
                          sinr[k][rows], use_sinr, pending[k][rows], avail, prbs_total,
                          float(sym), default_layers, se_lut, cqi_se_lut, cqi_mcs_lut,
                          o_user_x[k, :n])
        _update_jit(rows, o_prbs[k, :n].astype(np.float64), o_mcs[k, :n],
                        o_layers[k, :n].astype(np.float64), float(sym), slots[k], dslots[k],
                        keep, se_lut, last_mcs, last_prbs, last_grant_slot, avg_value, avg_at)


if njit is not None:
    features_kernel = _features_jit = njit(cache=True)(_features_loops)
    update_kernel = _update_jit = njit(cache=True)(_update_loops)
    build_loop = njit(cache=True)(_build_loop)
    _layer_norm_jit = njit(cache=True)(_layer_norm_loops)
    forward_kernel = _forward_kernel = njit(cache=True)(_forward_loops)
    _pick_order_jit = njit(cache=True)(_pick_order)
    allocate_kernel = _allocate_jit = njit(cache=True)(_allocate_loops)
    decide_kernel = njit(cache=True)(_decide_loops)
else:  # pragma: no cover
    features_kernel = _features_jit = _features_loops
    update_kernel = _update_jit = _update_loops
    build_loop = _build_loop
    _layer_norm_jit = _layer_norm_loops
    forward_kernel = _forward_kernel = None
    _pick_order_jit = _pick_order
    allocate_kernel = _allocate_jit = _allocate_loops
    decide_kernel = None
