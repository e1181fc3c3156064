"""The compiled slot kernel (numba): every per-slot computation of the engine.

State is a tuple of preallocated numpy arrays (struct of arrays, one column per
user index) with field indices below; the tables come from
:mod:`neuralemu.cell.tables`. :class:`neuralemu.cell.engine.Engine` owns the
arrays and grows them from Python; this module never allocates per slot except
the small argsort of a built-in policy.

Pieces and the 3GPP clause they follow:

* channel: fixed / trace / log-distance path loss with mobility and AR(1)
  (Gauss-Markov) fading in dB,
* periodic CQI reports with a delay (38.214 5.2.2), CQI -> MCS + outer loop,
* HARQ (38.321 5.3.2 / 5.4.2): RV sequence 0, 2, 3, 1 (38.214 Table
  5.1.2.1-2), chase-combining gain per retransmission, max transmissions,
* uplink SR (38.321 5.4.4) and BSR (38.321 5.4.5, Tables 6.1.3.1-1/-2),
* TBS from the precomputed 38.214 5.1.3.2 table, PRB placement type 0 / type 1
  (38.214 5.1.2.2),
* RLC byte stream per user and direction, in-order delivery.

Random numbers: a counter-based generator (splitmix64 of seed, slot, ue_id,
purpose), so results do not depend on how the run is cut into calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# ---- globals gs[] -------------------------------------------------------------------
GS_SLOT, GS_ARR_POS, GS_ARR_N, GS_EV_N, GS_DCI_N, GS_FREE_HEAD, GS_FREE_N, GS_POOL_USED, \
    GS_NCAP, GS_T0_US, GS_EV_CAP, GS_DCI_CAP = range(12)
N_GS = 12

# ---- per-user ints ui[F, u] ------------------------------------------------------------
UI_ID, UI_KIND, UI_TR_OFF, UI_TR_LEN, UI_TR_STEP_US, UI_SR_OFF, UI_ATTACHED = range(7)
N_UI = 7
KIND_FIXED, KIND_STOCHASTIC, KIND_TRACE = 0, 1, 2

# ---- per-user floats uf[F, u] ----------------------------------------------------------
UF_BASE_DB, UF_OFFSET_DB, UF_FAD_DB, UF_RHO, UF_SIGMA, UF_D0, UF_SPEED, UF_DMIN, UF_DMAX, \
    UF_REF_D, UF_PLE, UF_SINR_DB, UF_PRIO = range(13)
N_UF = 13

# ---- per (field, direction, user) ints di[F, d, u] ----------------------------------
DI_ACTIVE, DI_QLIM, DI_ENQ_OFF, DI_TX_OFF, DI_HEAD, DI_TAIL, DI_CQI, DI_LAST_MCS, DI_LAST_PRBS, \
    DI_LAST_GRANT, DI_PENDING_RETX, DI_BYTES_IN, DI_BYTES_OUT, DI_DROPS, DI_DROP_BYTES, \
    DI_NDELIV, DI_KNOWN, DI_SR_GRANT_SLOT, DI_GRANT_CUM, DI_BUSY_SLOT, DI_SERVED_BITS, \
    DI_DELAY_SUM, DI_LAST_BSR_SLOT, DI_LAST_BSR_VAL, DI_NPKT, DI_TBS_OK_BITS = range(26)
N_DI = 26

# ---- per (field, direction, user) floats df[F, d, u] --------------------------------
DF_DIR_OFF_DB, DF_REP_SINR, DF_OLLA, DF_AVG_BPS = range(4)
N_DF = 4

# ---- HARQ hq[F, d, u, h] ---------------------------------------------------------------
HQ_STATE, HQ_UNTIL, HQ_DUE, HQ_TBS, HQ_PRBS, HQ_MCS, HQ_LAYERS, HQ_KIND, HQ_START, HQ_END, \
    HQ_NTX, HQ_NDI = range(12)
N_HQ = 12
HQ_FREE, HQ_WAIT_RETX, HQ_BUSY = 0, 1, 2

# ---- packet pool pk[F, p] --------------------------------------------------------------
PK_ID, PK_SIZE, PK_ARR, PK_END, PK_NEXT, PK_LOST, PK_UE, PK_DIR = range(8)
N_PK = 8

# ---- arrival schedule arr[F, i] --------------------------------------------------------
AR_T, AR_UE, AR_DIR, AR_SIZE, AR_PID = range(5)
N_AR = 5

# ---- events ev[F, i] ------------------------------------------------------------------
EV_PID, EV_UE, EV_DIR, EV_SIZE, EV_ARR, EV_T, EV_KIND = range(7)
N_EV = 7
EVK_DELIVERED, EVK_DROP_QUEUE, EVK_DROP_HARQ, EVK_DROP_DETACH = 0, 1, 2, 3

# ---- DCI records dci[F, i] ------------------------------------------------------------
DC_SLOT, DC_T, DC_RNTI, DC_DIR, DC_PRB_START, DC_PRB_COUNT, DC_SYMBOLS, DC_LAYERS, DC_MCS, \
    DC_TBS, DC_NRE, DC_HARQ, DC_NDI, DC_RV, DC_RETX, DC_OK, DC_BYTES = range(17)
N_DC = 17

# ---- candidate features feat[F, c] (float64) ------------------------------------------
FT_UE, FT_BUF, FT_CQI, FT_SINR, FT_LA_MCS, FT_AVG, FT_LAST_MCS, FT_LAST_PRBS, FT_SINCE, \
    FT_PENDING, FT_PRIO, FT_RATE = range(12)
N_FT = 12

# ---- config ints cf[] and floats cff[] --------------------------------------------------
CF_PRBS, CF_SLOT_US, CF_PERIOD, CF_MAX_UES, CF_LAYERS_DL, CF_LAYERS_UL, CF_RBG, CF_HARQ_P, \
    CF_RTT_DL, CF_RTT_UL, CF_MAX_TX, CF_CQI_PERIOD, CF_CQI_DELAY, CF_SR_PERIOD, CF_SR_TO_GRANT, \
    CF_SR_GRANT_BYTES, CF_BSR_DELAY, CF_SEED, CF_POLICY = range(19)
N_CF = 19
CFF_SLOT_S, CFF_BLER_TARGET, CFF_OLLA_UP, CFF_OLLA_DOWN, CFF_COMB_GAIN, CFF_AVG_ALPHA, \
    CFF_SINR_MIN, CFF_SINR_STEP = range(8)
N_CFF = 8

POLICY_PYTHON, POLICY_PF, POLICY_RR, POLICY_MAXCQI = 0, 1, 2, 3

HIST = 64                  # slots of SINR / BSR history kept per user (ring)
RV_SEQ = np.array([0, 2, 3, 1], dtype=np.int64)   # 38.214 Table 5.1.2.1-2
NEVER = -(1 << 40)
OLLA_MIN, OLLA_MAX = -15.0, 5.0

ST_OK, ST_NEED_ROOM = 0, 1

# purposes of the counter-based RNG
RP_FADING, RP_TB = 1, 10

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xD1B54A32D192ED03)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)


@njit(cache=True)
def mix64(z):
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


@njit(cache=True)
def rand_u01(seed, slot, ue_id, purpose):
    """Uniform in [0, 1) from (seed, slot, ue_id, purpose): splitmix64, counter based."""
    z = mix64(np.uint64(seed) + np.uint64(slot + 1) * _M1)
    z = mix64(z ^ (np.uint64(ue_id) * _M2 + np.uint64(purpose)))
    return np.float64(z >> _S11) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def rand_normal(seed, slot, ue_id, purpose):
    u1 = rand_u01(seed, slot, ue_id, purpose)
    u2 = rand_u01(seed, slot, ue_id, purpose + 1)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)


@njit(cache=True)
def sinr_index(s, cff, n):
    i = int((s - cff[CFF_SINR_MIN]) / cff[CFF_SINR_STEP] + 0.5)
    if i < 0:
        return 0
    if i >= n:
        return n - 1
    return i


# ---------------------------------------------------------------- events and DCIs
@njit(cache=True)
def emit_event(S, pid, ue_id, d, size, t_arr, t, kind):
    gs = S[0]
    ev = S[10]
    n = gs[GS_EV_N]
    ev[EV_PID, n] = pid
    ev[EV_UE, n] = ue_id
    ev[EV_DIR, n] = d
    ev[EV_SIZE, n] = size
    ev[EV_ARR, n] = t_arr
    ev[EV_T, n] = t
    ev[EV_KIND, n] = kind
    gs[GS_EV_N] = n + 1


@njit(cache=True)
def room_ok(S, margin_dci):
    gs = S[0]
    if gs[GS_EV_CAP] - gs[GS_EV_N] < gs[GS_POOL_USED] + 2:
        return False
    if gs[GS_DCI_CAP] - gs[GS_DCI_N] < margin_dci:
        return False
    return True


# ---------------------------------------------------------------- RLC queue
@njit(cache=True)
def enqueue_one(S, u, d, size, t_arr, pid):
    """Drop-tail enqueue of one packet; 1 if queued, 0 if dropped. Caller ensures pool/event room."""
    gs = S[0]
    ui = S[1]
    di = S[3]
    pk = S[8]
    di[DI_BYTES_IN, d, u] += size
    if di[DI_ACTIVE, d, u] == 0:
        di[DI_DROPS, d, u] += 1
        di[DI_DROP_BYTES, d, u] += size
        emit_event(S, pid, ui[UI_ID, u], d, size, t_arr, t_arr, EVK_DROP_DETACH)
        return 0
    q = di[DI_ENQ_OFF, d, u] - di[DI_TX_OFF, d, u]
    if q + size > di[DI_QLIM, d, u]:
        di[DI_DROPS, d, u] += 1
        di[DI_DROP_BYTES, d, u] += size
        emit_event(S, pid, ui[UI_ID, u], d, size, t_arr, t_arr, EVK_DROP_QUEUE)
        return 0
    p = gs[GS_FREE_HEAD]
    gs[GS_FREE_HEAD] = pk[PK_NEXT, p]
    gs[GS_FREE_N] -= 1
    gs[GS_POOL_USED] += 1
    end = di[DI_ENQ_OFF, d, u] + size
    pk[PK_ID, p] = pid
    pk[PK_SIZE, p] = size
    pk[PK_ARR, p] = t_arr
    pk[PK_END, p] = end
    pk[PK_NEXT, p] = -1
    pk[PK_LOST, p] = 0
    pk[PK_UE, p] = u
    pk[PK_DIR, p] = d
    di[DI_ENQ_OFF, d, u] = end
    tail = di[DI_TAIL, d, u]
    if tail == -1:
        di[DI_HEAD, d, u] = p
    else:
        pk[PK_NEXT, tail] = p
    di[DI_TAIL, d, u] = p
    di[DI_NPKT, d, u] += 1
    return 1


@njit(cache=True)
def enqueue_many(S, u_idx, d_idx, sizes, t_arr, pids, out_ok):
    """enqueue_one for each packet (the caller made room for all of them)."""
    for i in range(u_idx.shape[0]):
        out_ok[i] = enqueue_one(S, u_idx[i], d_idx[i], sizes[i], t_arr[i], pids[i])


@njit(cache=True)
def pop_head(S, u, d):
    gs = S[0]
    di = S[3]
    pk = S[8]
    p = di[DI_HEAD, d, u]
    nxt = pk[PK_NEXT, p]
    di[DI_HEAD, d, u] = nxt
    if nxt == -1:
        di[DI_TAIL, d, u] = -1
    pk[PK_NEXT, p] = gs[GS_FREE_HEAD]
    gs[GS_FREE_HEAD] = p
    gs[GS_FREE_N] += 1
    gs[GS_POOL_USED] -= 1
    di[DI_NPKT, d, u] -= 1


@njit(cache=True)
def deliver_ready(S, u, d, t_end):
    """Deliver (or drop, if marked lost) every packet whose bytes all precede the in-order prefix."""
    ui = S[1]
    di = S[3]
    hq = S[7]
    pk = S[8]
    prefix = di[DI_TX_OFF, d, u]
    if di[DI_PENDING_RETX, d, u] > 0:
        for h in range(hq.shape[3]):
            if hq[HQ_STATE, d, u, h] == HQ_WAIT_RETX and hq[HQ_START, d, u, h] < prefix:
                prefix = hq[HQ_START, d, u, h]
    ue_id = ui[UI_ID, u]
    p = di[DI_HEAD, d, u]
    while p != -1 and pk[PK_END, p] <= prefix:
        size = pk[PK_SIZE, p]
        if pk[PK_LOST, p]:
            di[DI_DROPS, d, u] += 1
            di[DI_DROP_BYTES, d, u] += size
            emit_event(S, pk[PK_ID, p], ue_id, d, size, pk[PK_ARR, p], t_end, EVK_DROP_HARQ)
        else:
            di[DI_BYTES_OUT, d, u] += size
            di[DI_NDELIV, d, u] += 1
            di[DI_DELAY_SUM, d, u] += t_end - pk[PK_ARR, p]
            emit_event(S, pk[PK_ID, p], ue_id, d, size, pk[PK_ARR, p], t_end, EVK_DELIVERED)
        pop_head(S, u, d)
        p = di[DI_HEAD, d, u]


@njit(cache=True)
def mark_lost(S, u, d, a, b):
    di = S[3]
    pk = S[8]
    if b <= a:
        return
    p = di[DI_HEAD, d, u]
    while p != -1:
        end = pk[PK_END, p]
        if end - pk[PK_SIZE, p] >= b:
            break
        if end > a:
            pk[PK_LOST, p] = 1
        p = pk[PK_NEXT, p]


@njit(cache=True)
def detach_queue(S, u, d, t_us):
    """Drop every queued packet of (u, d) (the user left the cell)."""
    ui = S[1]
    di = S[3]
    hq = S[7]
    pk = S[8]
    ue_id = ui[UI_ID, u]
    while di[DI_HEAD, d, u] != -1:
        p = di[DI_HEAD, d, u]
        size = pk[PK_SIZE, p]
        di[DI_DROPS, d, u] += 1
        di[DI_DROP_BYTES, d, u] += size
        emit_event(S, pk[PK_ID, p], ue_id, d, size, pk[PK_ARR, p], t_us, EVK_DROP_DETACH)
        pop_head(S, u, d)
    di[DI_TX_OFF, d, u] = di[DI_ENQ_OFF, d, u]
    for h in range(hq.shape[3]):
        hq[HQ_STATE, d, u, h] = HQ_FREE
    di[DI_PENDING_RETX, d, u] = 0
    di[DI_ACTIVE, d, u] = 0


# ---------------------------------------------------------------- arrivals
@njit(cache=True)
def process_arrivals(S, t_us):
    """Enqueue scheduled arrivals with t <= t_us. ST_NEED_ROOM if the pool or event buffer is full."""
    gs = S[0]
    arr = S[9]
    i = gs[GS_ARR_POS]
    n = gs[GS_ARR_N]
    while i < n and arr[AR_T, i] <= t_us:
        if gs[GS_FREE_N] == 0 or gs[GS_EV_CAP] - gs[GS_EV_N] < gs[GS_POOL_USED] + 2:
            gs[GS_ARR_POS] = i
            return ST_NEED_ROOM
        enqueue_one(S, arr[AR_UE, i], arr[AR_DIR, i], arr[AR_SIZE, i], arr[AR_T, i], arr[AR_PID, i])
        i += 1
    gs[GS_ARR_POS] = i
    return ST_OK


# ---------------------------------------------------------------- channel, CQI, uplink access
@njit(cache=True)
def channel_sinr(S, u, slot, t_us, seed):
    """This slot's DL SINR (dB) of user index u; advances the fading state."""
    ui = S[1]
    uf = S[2]
    trace = S[14]
    kind = ui[UI_KIND, u]
    if kind == KIND_FIXED:
        s = uf[UF_BASE_DB, u]
    elif kind == KIND_STOCHASTIC:
        d0 = uf[UF_D0, u]
        v = uf[UF_SPEED, u]
        dmin = uf[UF_DMIN, u]
        span = uf[UF_DMAX, u] - dmin
        dist = d0
        if v > 0.0 and span > 0.0:
            x = (d0 - dmin + v * t_us * 1e-6) % (2.0 * span)
            dist = dmin + (x if x <= span else 2.0 * span - x)
        mean = uf[UF_BASE_DB, u] - 10.0 * uf[UF_PLE, u] * np.log10(dist / uf[UF_REF_D, u])
        rho = uf[UF_RHO, u]
        if uf[UF_SIGMA, u] > 0.0:
            z = rand_normal(seed, slot, ui[UI_ID, u], RP_FADING)
            uf[UF_FAD_DB, u] = rho * uf[UF_FAD_DB, u] + np.sqrt(1.0 - rho * rho) * uf[UF_SIGMA, u] * z
        s = mean + uf[UF_FAD_DB, u]
    else:
        idx = (t_us // ui[UI_TR_STEP_US, u]) % ui[UI_TR_LEN, u]
        s = trace[ui[UI_TR_OFF, u] + idx]
    return s + uf[UF_OFFSET_DB, u]


@njit(cache=True)
def quantise_bsr(levels, q):
    """Smallest level >= q (38.321 Tables 6.1.3.1-1/-2 report the upper bound of q's range)."""
    lo = 0
    hi = levels.shape[0] - 1
    if q <= 0:
        return 0
    if q > levels[hi - 1]:
        return levels[hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if levels[mid] >= q:
            hi = mid
        else:
            lo = mid + 1
    return levels[lo]


@njit(cache=True)
def slot_begin(S, T, slot, t_us):
    """Arrivals, channels, CQI reports, uplink SR/BSR bookkeeping for one slot."""
    st = process_arrivals(S, t_us)
    if st != ST_OK:
        return st
    gs = S[0]
    ui = S[1]
    uf = S[2]
    di = S[3]
    df = S[4]
    hs = S[5]
    hb = S[6]
    cqi_of_sinr = T[5]
    cf = T[9]
    cff = T[10]
    seed = cf[CF_SEED]
    ncap = gs[GS_NCAP]
    h = slot % HIST
    m = slot - cf[CF_CQI_DELAY]
    report = m >= 0 and m % cf[CF_CQI_PERIOD] == 0
    mb = slot - cf[CF_BSR_DELAY]
    nsinr = cqi_of_sinr.shape[1]
    for u in range(ncap):
        if ui[UI_ATTACHED, u] == 0:
            continue
        s = channel_sinr(S, u, slot, t_us, seed)
        uf[UF_SINR_DB, u] = s
        hs[u, h] = s
        if report:
            for d in range(2):
                if di[DI_ACTIVE, d, u]:
                    sr = hs[u, m % HIST] + df[DF_DIR_OFF_DB, d, u]
                    di[DI_CQI, d, u] = cqi_of_sinr[d, sinr_index(sr, cff, nsinr)]
                    df[DF_REP_SINR, d, u] = sr
        if di[DI_ACTIVE, 1, u]:
            # uplink: BSR arrival, scheduling request
            if mb >= 0 and hb[0, u, mb % HIST] == mb:
                k = hb[1, u, mb % HIST] - (di[DI_GRANT_CUM, 1, u] - hb[2, u, mb % HIST])
                di[DI_KNOWN, 1, u] = k if k > 0 else 0
            q = di[DI_ENQ_OFF, 1, u] - di[DI_TX_OFF, 1, u]
            if di[DI_SR_GRANT_SLOT, 1, u] >= 0:
                if slot >= di[DI_SR_GRANT_SLOT, 1, u]:
                    if di[DI_KNOWN, 1, u] < cf[CF_SR_GRANT_BYTES]:
                        di[DI_KNOWN, 1, u] = cf[CF_SR_GRANT_BYTES]
                    di[DI_SR_GRANT_SLOT, 1, u] = -1
            elif q > 0 and di[DI_KNOWN, 1, u] == 0:
                bsr_coming = (di[DI_LAST_BSR_SLOT, 1, u] + cf[CF_BSR_DELAY] > slot
                              and di[DI_LAST_BSR_VAL, 1, u] > 0)
                if not bsr_coming:
                    per = cf[CF_SR_PERIOD]
                    sr_slot = slot + ((ui[UI_SR_OFF, u] - slot) % per)
                    di[DI_SR_GRANT_SLOT, 1, u] = sr_slot + cf[CF_SR_TO_GRANT]
    return ST_OK


@njit(cache=True)
def la_mcs(T, d, cqi, olla):
    c2m = T[6]
    max_mcs = T[7]
    m = c2m[d, cqi] + int(np.floor(olla + 0.5))
    if m < 0:
        return 0
    if m > max_mcs[d]:
        return max_mcs[d]
    return m


# ---------------------------------------------------------------- PRB placement
@njit(cache=True)
def place(bitmap, nprb, p, hint):
    """Mark p contiguous free PRBs (at ``hint`` if free there, else first fit, else the
    largest free run). Returns (start, count)."""
    if hint >= 0 and hint + p <= nprb:
        ok = True
        for i in range(hint, hint + p):
            if bitmap[i]:
                ok = False
                break
        if ok:
            for i in range(hint, hint + p):
                bitmap[i] = 1
            return hint, p
    best_s = -1
    best_n = 0
    i = 0
    while i < nprb:
        if bitmap[i]:
            i += 1
            continue
        j = i
        while j < nprb and not bitmap[j]:
            j += 1
        if j - i >= p:
            for k in range(i, i + p):
                bitmap[k] = 1
            return i, p
        if j - i > best_n:
            best_n = j - i
            best_s = i
        i = j
    if best_n > 0:
        for k in range(best_s, best_s + best_n):
            bitmap[k] = 1
    return best_s, best_n


# ---------------------------------------------------------------- HARQ and transmission
@njit(cache=True)
def free_process(S, d, u, slot):
    hq = S[7]
    for h in range(hq.shape[3]):
        st = hq[HQ_STATE, d, u, h]
        if st == HQ_FREE or (st == HQ_BUSY and hq[HQ_UNTIL, d, u, h] <= slot):
            return h
    return -1


@njit(cache=True)
def attempt(S, T, d, u, h, slot, t_us, start, is_retx):
    """One transmission of HARQ process h: draw the outcome, log the DCI, update HARQ/OLLA/delivery."""
    gs = S[0]
    ui = S[1]
    uf = S[2]
    di = S[3]
    df = S[4]
    hq = S[7]
    dci = S[11]
    bler = T[4]
    sym = T[1]
    re_per_prb = T[3]
    cf = T[9]
    cff = T[10]
    ntx = hq[HQ_NTX, d, u, h] + 1
    hq[HQ_NTX, d, u, h] = ntx
    mcs = hq[HQ_MCS, d, u, h]
    kind = hq[HQ_KIND, d, u, h]
    eff = uf[UF_SINR_DB, u] + df[DF_DIR_OFF_DB, d, u] + cff[CFF_COMB_GAIN] * (ntx - 1)
    p_err = bler[d, mcs, sinr_index(eff, cff, bler.shape[2])]
    ue_id = ui[UI_ID, u]
    ok = rand_u01(cf[CF_SEED], slot, ue_id, RP_TB + d) >= p_err
    n = gs[GS_DCI_N]
    prbs = hq[HQ_PRBS, d, u, h]
    dci[DC_SLOT, n] = slot
    dci[DC_T, n] = t_us
    dci[DC_RNTI, n] = ue_id
    dci[DC_DIR, n] = d
    dci[DC_PRB_START, n] = start
    dci[DC_PRB_COUNT, n] = prbs
    dci[DC_SYMBOLS, n] = sym[d, kind]
    dci[DC_LAYERS, n] = hq[HQ_LAYERS, d, u, h]
    dci[DC_MCS, n] = mcs
    dci[DC_TBS, n] = hq[HQ_TBS, d, u, h]
    dci[DC_NRE, n] = re_per_prb[d, kind] * prbs
    dci[DC_HARQ, n] = h
    dci[DC_NDI, n] = hq[HQ_NDI, d, u, h]
    dci[DC_RV, n] = RV_SEQ[(ntx - 1) % 4]
    dci[DC_RETX, n] = 1 if is_retx else 0
    dci[DC_OK, n] = 1 if ok else 0
    dci[DC_BYTES, n] = 0 if is_retx else hq[HQ_END, d, u, h] - hq[HQ_START, d, u, h]
    gs[GS_DCI_N] = n + 1
    if ntx == 1:
        o = df[DF_OLLA, d, u] + (cff[CFF_OLLA_UP] if ok else -cff[CFF_OLLA_DOWN])
        df[DF_OLLA, d, u] = min(OLLA_MAX, max(OLLA_MIN, o))
    rtt = cf[CF_RTT_DL] if d == 0 else cf[CF_RTT_UL]
    t_end = t_us + cf[CF_SLOT_US]
    if ok:
        di[DI_TBS_OK_BITS, d, u] += hq[HQ_TBS, d, u, h]
    if is_retx:
        di[DI_PENDING_RETX, d, u] -= 1
    if ok:
        hq[HQ_STATE, d, u, h] = HQ_BUSY
        hq[HQ_UNTIL, d, u, h] = slot + rtt
        deliver_ready(S, u, d, t_end)
    elif ntx >= cf[CF_MAX_TX]:
        hq[HQ_STATE, d, u, h] = HQ_BUSY
        hq[HQ_UNTIL, d, u, h] = slot + rtt
        mark_lost(S, u, d, hq[HQ_START, d, u, h], hq[HQ_END, d, u, h])
        deliver_ready(S, u, d, t_end)
    else:
        hq[HQ_STATE, d, u, h] = HQ_WAIT_RETX
        hq[HQ_DUE, d, u, h] = slot + rtt
        di[DI_PENDING_RETX, d, u] += 1
    return ok


@njit(cache=True)
def new_tx(S, T, d, u, h, slot, t_us, kind, start, prbs, mcs, layers, tbs):
    di = S[3]
    hq = S[7]
    cf = T[9]
    levels = T[8]
    q = di[DI_ENQ_OFF, d, u] - di[DI_TX_OFF, d, u]
    cap = tbs // 8
    take = q if q < cap else cap
    a = di[DI_TX_OFF, d, u]
    hq[HQ_TBS, d, u, h] = tbs
    hq[HQ_PRBS, d, u, h] = prbs
    hq[HQ_MCS, d, u, h] = mcs
    hq[HQ_LAYERS, d, u, h] = layers
    hq[HQ_KIND, d, u, h] = kind
    hq[HQ_START, d, u, h] = a
    hq[HQ_END, d, u, h] = a + take
    hq[HQ_NTX, d, u, h] = 0
    hq[HQ_NDI, d, u, h] ^= 1
    di[DI_TX_OFF, d, u] = a + take
    di[DI_SERVED_BITS, d, u] += take * 8
    di[DI_LAST_MCS, d, u] = mcs
    di[DI_LAST_PRBS, d, u] = prbs
    di[DI_LAST_GRANT, d, u] = slot
    if d == 1:
        hb = S[6]
        k = di[DI_KNOWN, 1, u] - cap
        di[DI_KNOWN, 1, u] = k if k > 0 else 0
        di[DI_GRANT_CUM, 1, u] += cap
        val = quantise_bsr(levels, q - take)
        hm = slot % HIST
        hb[0, u, hm] = slot
        hb[1, u, hm] = val
        hb[2, u, hm] = di[DI_GRANT_CUM, 1, u]
        di[DI_LAST_BSR_SLOT, 1, u] = slot
        di[DI_LAST_BSR_VAL, 1, u] = val
    attempt(S, T, d, u, h, slot, t_us, start, False)


@njit(cache=True)
def do_retx(S, T, d, slot, t_us, kind, bitmap, nprb, max_ues):
    """Due retransmissions first (38.214 5.1: same TBS). Returns (PRBs used, users served)."""
    gs = S[0]
    di = S[3]
    hq = S[7]
    used = 0
    nsched = 0
    for u in range(gs[GS_NCAP]):
        if di[DI_PENDING_RETX, d, u] == 0 or di[DI_ACTIVE, d, u] == 0:
            continue
        if nsched >= max_ues:
            break
        for h in range(hq.shape[3]):
            if (hq[HQ_STATE, d, u, h] == HQ_WAIT_RETX and hq[HQ_DUE, d, u, h] <= slot
                    and hq[HQ_KIND, d, u, h] == kind):
                p = hq[HQ_PRBS, d, u, h]
                if used + p > nprb:
                    continue
                start, got = place(bitmap, nprb, p, -1)
                if got < p:
                    # fragmented: give the PRBs back and try next slot
                    for i in range(start, start + got):
                        bitmap[i] = 0
                    continue
                used += p
                nsched += 1
                di[DI_BUSY_SLOT, d, u] = slot
                attempt(S, T, d, u, h, slot, t_us, start, True)
                break
    return used, nsched


# ---------------------------------------------------------------- features and policies
@njit(cache=True)
def build_candidates(S, T, d, slot, kind):
    """Fill feat[:, :n] and cand[:n] with the users of direction d free this slot."""
    gs = S[0]
    ui = S[1]
    uf = S[2]
    di = S[3]
    df = S[4]
    feat = S[12]
    cand = S[15]
    tbs = T[2]
    cf = T[9]
    nprb = cf[CF_PRBS]
    layers = cf[CF_LAYERS_DL] if d == 0 else cf[CF_LAYERS_UL]
    n = 0
    for u in range(gs[GS_NCAP]):
        if di[DI_ACTIVE, d, u] == 0 or di[DI_BUSY_SLOT, d, u] == slot:
            continue
        cand[n] = u
        if d == 0:
            buf = di[DI_ENQ_OFF, 0, u] - di[DI_TX_OFF, 0, u]
        else:
            buf = di[DI_KNOWN, 1, u]
        cqi = di[DI_CQI, d, u]
        m = la_mcs(T, d, cqi, df[DF_OLLA, d, u])
        feat[FT_UE, n] = ui[UI_ID, u]
        feat[FT_BUF, n] = buf
        feat[FT_CQI, n] = cqi
        feat[FT_SINR, n] = df[DF_REP_SINR, d, u]
        feat[FT_LA_MCS, n] = m
        feat[FT_AVG, n] = df[DF_AVG_BPS, d, u]
        feat[FT_LAST_MCS, n] = di[DI_LAST_MCS, d, u]
        feat[FT_LAST_PRBS, n] = di[DI_LAST_PRBS, d, u]
        feat[FT_SINCE, n] = slot - di[DI_LAST_GRANT, d, u]
        feat[FT_PENDING, n] = di[DI_PENDING_RETX, d, u]
        feat[FT_PRIO, n] = uf[UF_PRIO, u]
        feat[FT_RATE, n] = tbs[d, kind, layers - 1, m, nprb]
        n += 1
    return n


@njit(cache=True)
def prbs_for_bytes(tbs_row, need_bits, avail):
    """Smallest PRB count whose TBS carries need_bits (at most avail)."""
    if avail <= 0:
        return 0
    if tbs_row[avail] <= need_bits:
        return avail
    lo = 1
    hi = avail
    while lo < hi:
        mid = (lo + hi) // 2
        if tbs_row[mid] >= need_bits:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True)
def policy_fill(kind_policy, feat, n, tbs_dk, layers, avail, max_ues, out_prbs, out_mcs, out_layers):
    """The built-in policies: order users by the policy's metric, then give each the PRBs
    its buffer needs at its link-adaptation MCS until PRBs or users run out.

    pf: priority * rate / average throughput; rr: slots since last grant
    (longest first); maxcqi: rate. Ties keep candidate order.
    """
    for c in range(n):
        out_prbs[c] = 0
        out_mcs[c] = int(feat[FT_LA_MCS, c])
        out_layers[c] = layers
    metric = np.empty(n)
    for c in range(n):
        if kind_policy == POLICY_PF:
            avg = feat[FT_AVG, c]
            metric[c] = feat[FT_PRIO, c] * feat[FT_RATE, c] / (avg if avg > 1.0 else 1.0)
        elif kind_policy == POLICY_RR:
            metric[c] = feat[FT_SINCE, c]
        else:
            metric[c] = feat[FT_RATE, c]
    order = np.argsort(-metric, kind="mergesort")
    left = avail
    nsel = 0
    for i in range(n):
        if nsel >= max_ues or left <= 0:
            break
        c = order[i]
        buf = feat[FT_BUF, c]
        if buf <= 0:
            continue
        m = out_mcs[c]
        p = prbs_for_bytes(tbs_dk[layers - 1, m], buf * 8.0, left)
        if p <= 0:
            continue
        out_prbs[c] = p
        left -= p
        nsel += 1


@njit(cache=True)
def apply_alloc(S, T, d, slot, t_us, kind, n, bitmap, nprb_left, max_ues, has_start):
    """Clamp the allocation in alloc[:, :n] and transmit it. alloc[0] is rewritten to what was granted."""
    di = S[3]
    alloc = S[13]
    cand = S[15]
    tbs = T[2]
    max_mcs = T[7]
    cf = T[9]
    nprb = cf[CF_PRBS]
    rbg = cf[CF_RBG]
    max_layers = cf[CF_LAYERS_DL] if d == 0 else cf[CF_LAYERS_UL]
    count = 0
    for c in range(n):
        p = alloc[0, c]
        if p < 0:
            p = 0
        if p > nprb:
            p = nprb
        if rbg > 1 and p > 0:
            p = ((p + rbg - 1) // rbg) * rbg
        alloc[0, c] = p
        if alloc[1, c] < 0:
            alloc[1, c] = 0
        if alloc[1, c] > max_mcs[d]:
            alloc[1, c] = max_mcs[d]
        if alloc[2, c] < 1:
            alloc[2, c] = 1
        if alloc[2, c] > max_layers:
            alloc[2, c] = max_layers
        if p > 0:
            count += 1
    # per-slot user limit: drop the smallest allocations (later ones first on ties)
    while count > max_ues:
        worst = -1
        for c in range(n):
            if alloc[0, c] > 0 and (worst < 0 or alloc[0, c] <= alloc[0, worst]):
                worst = c
        alloc[0, worst] = 0
        count -= 1
    left = nprb_left
    for c in range(n):
        p = alloc[0, c]
        if p <= 0:
            continue
        u = cand[c]
        if left <= 0:
            alloc[0, c] = 0
            continue
        if p > left:
            p = left
        h = free_process(S, d, u, slot)
        if h < 0:
            alloc[0, c] = 0
            continue
        mcs = alloc[1, c]
        layers = alloc[2, c]
        hint = alloc[3, c] if has_start else -1
        start, got = place(bitmap, nprb, p, hint)
        if got <= 0:
            alloc[0, c] = 0
            continue
        t = tbs[d, kind, layers - 1, mcs, got]
        if t <= 0:
            for i in range(start, start + got):
                bitmap[i] = 0
            alloc[0, c] = 0
            continue
        left -= got
        alloc[0, c] = got
        alloc[3, c] = start
        new_tx(S, T, d, u, h, slot, t_us, kind, start, got, mcs, layers, t)


@njit(cache=True)
def update_averages(S, T, d):
    """PF throughput average: EWMA of served bits per second over the policy's window."""
    gs = S[0]
    di = S[3]
    df = S[4]
    cff = T[10]
    a = cff[CFF_AVG_ALPHA]
    inv = 1.0 / cff[CFF_SLOT_S]
    for u in range(gs[GS_NCAP]):
        if di[DI_ACTIVE, d, u] == 0:
            continue
        df[DF_AVG_BPS, d, u] = (1.0 - a) * df[DF_AVG_BPS, d, u] + a * di[DI_SERVED_BITS, d, u] * inv
        di[DI_SERVED_BITS, d, u] = 0


@njit(cache=True)
def prepare_direction(S, T, d, slot, t_us, kind, bitmap):
    """Retransmissions, then candidates. Returns (n candidates, PRBs left, users left)."""
    cf = T[9]
    nprb = cf[CF_PRBS]
    for i in range(nprb):
        bitmap[i] = 0
    used, nsched = do_retx(S, T, d, slot, t_us, kind, bitmap, nprb, cf[CF_MAX_UES])
    n = build_candidates(S, T, d, slot, kind)
    return n, nprb - used, cf[CF_MAX_UES] - nsched


@njit(cache=True)
def finish_direction(S, T, d, slot, t_us, kind, n, bitmap, nprb_left, max_ues, has_start):
    """Python-policy path: apply the allocation in alloc[:, :n] (if n > 0), then the averages."""
    if n > 0:
        apply_alloc(S, T, d, slot, t_us, kind, n, bitmap, nprb_left, max_ues, has_start)
    update_averages(S, T, d)


@njit(cache=True)
def run_slots(S, T, n_slots):
    """Run up to n_slots slots with the built-in policy cf[CF_POLICY].

    Returns (slots done, status); stops early with ST_NEED_ROOM when the event
    or DCI buffers or the packet pool need Python's attention.
    """
    gs = S[0]
    alloc = S[13]
    feat = S[12]
    bitmap = S[16]
    pattern = T[0]
    tbs = T[2]
    cf = T[9]
    policy = cf[CF_POLICY]
    margin = 2 * gs[GS_NCAP] + 2
    for i in range(n_slots):
        if not room_ok(S, margin):
            return i, ST_NEED_ROOM
        slot = gs[GS_SLOT]
        t_us = gs[GS_T0_US] + slot * cf[CF_SLOT_US]
        st = slot_begin(S, T, slot, t_us)
        if st != ST_OK:
            return i, st
        for d in range(2):
            kind = pattern[d, slot % cf[CF_PERIOD]]
            if kind < 0:
                continue
            n, left, max_u = prepare_direction(S, T, d, slot, t_us, kind, bitmap)
            layers = cf[CF_LAYERS_DL] if d == 0 else cf[CF_LAYERS_UL]
            if n > 0 and left > 0 and max_u > 0:
                policy_fill(policy, feat, n, tbs[d, kind], layers, left, max_u,
                            alloc[0], alloc[1], alloc[2])
                apply_alloc(S, T, d, slot, t_us, kind, n, bitmap, left, max_u, False)
            update_averages(S, T, d)
        gs[GS_SLOT] = slot + 1
    return n_slots, ST_OK
