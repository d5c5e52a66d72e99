"""Numba ports of the batch core: the shipped model's batch path and the fused legacy path.

The peer a quant would write instead of our Cython core: same algorithm, same state,
line for line (see ``hourmm_core/quant/vol.pyx``, ``features.pyx``, ``pricer.pyx``, ``minute.pyx``), in
``@njit`` functions with the state in locals. Only the normal model (``nu = 0``, the
default) is ported. Ported batch functions:

* what the shipped model's research path calls (``hourmm_core/research/fair.py``,
  ``calibration.py``): :func:`minute_path_batch` (the seasonal ``MinutePricer`` streamed
  over a tick history, priced at grid instants), :func:`ewma_vol_batch`,
  :func:`fair_prob_batch`;
* the fused legacy path :func:`price_path_batch` (EwmaVol + ReturnFeatures + fair price).
 ``benchmarks/test_bench_numba_peer.py`` checks it gives the same
numbers as the compiled core before timing it, so a model change in the core shows up
there as "port out of date" instead of a meaningless ratio.

Two call forms:
* batch: :func:`price_path_batch`, one jitted loop over all ticks with the state in
  local variables (what a quant would write for numba; the fair peer of the fused
  Cython loop);
* per tick from Python: :class:`NumbaTickPricer`, one jitted call per tick with the
  state in numpy arrays (numba's best per-call form: no jitclass, no per-call
  allocation; its dispatch cost is what the compiled ``TickPricer`` avoids).

Import only where numba is installed (``pip install -e ".[bench]"``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

LN2 = math.log(2.0)
SQRT1_2 = math.sqrt(0.5)
RING_CAP = 1 << 19          # > 300 001 distinct ms in the longest (5 min) window: never full
RING_MASK = RING_CAP - 1
TS_SENTINEL = np.iinfo(np.int64).max    # the batch history's empty slots: later than any tick
WINDOWS = np.array([1_000, 10_000, 60_000, 300_000], dtype=np.int64)

# int state slots
(I_V_STARTED, I_V_BUCKET, I_V_NEXT, I_V_LAST_TS, I_F_HEAD, I_F_TAIL, I_F_STARTED, I_F_LAST_TS, I_F_HOUR_START,
 I_F_GNEXT, I_F_NEXT_HOUR, I_F_HAVE_OPEN, I_F_GBUCKET, I_PTR0) = range(14)
N_INT = I_PTR0 + 4
# float state slots
(F_V_LAST_PRICE, F_V_ANCHOR, F_F_LAST_LP, F_F_OPEN_PX, F_F_OPEN_LP, F_F_GANCHOR, F_F_PREV_ABS, F_F_RV,
 F_F_BV, F_LAST_P) = range(10)
N_FLT = 10


def new_state(halflives_s=(30.0, 120.0, 600.0), sample_ms: int = 1000, var_floor: float = 1e-12):
    """Fresh state arrays: (ints, floats, vol[4, k] = alpha1/halflife/num|wsum/sig, ring ts, ring lp, out[7])."""
    hl = np.asarray(halflives_s, dtype=np.float64)
    k = hl.size
    vol = np.zeros((5, k))
    vol[0] = np.exp(-LN2 * (sample_ms / 1000.0) / hl)   # alpha1
    vol[1] = hl
    vol[4] = math.sqrt(var_floor)                        # sig
    ist = np.zeros(N_INT, dtype=np.int64)
    ist[I_PTR0:I_PTR0 + 4] = -1
    fst = np.zeros(N_FLT)
    fst[[F_F_LAST_LP, F_F_OPEN_PX, F_F_OPEN_LP, F_F_GANCHOR, F_LAST_P]] = np.nan
    out = np.full(7, np.nan)
    return ist, fst, vol, np.zeros(RING_CAP, dtype=np.int64), np.zeros(RING_CAP), out


@njit(cache=False, nogil=True)
def _vol_update(ist, fst, vol, ts, price, sample_ms, var_floor):
    if not (math.isfinite(price) and price > 0.0):
        return 0
    if ist[I_V_STARTED] == 0:
        ist[I_V_STARTED] = 1
        b = ts // sample_ms
        ist[I_V_BUCKET] = b
        ist[I_V_NEXT] = (b + 1) * sample_ms
        ist[I_V_LAST_TS] = ts
        fst[F_V_LAST_PRICE] = price
        fst[F_V_ANCHOR] = price
        return 1
    if ts < ist[I_V_LAST_TS]:
        return 0
    if ts >= ist[I_V_NEXT]:
        if ts < ist[I_V_NEXT] + sample_ms and ist[I_V_NEXT] >= 0:
            b = ist[I_V_BUCKET] + 1      # the next grid cell (= ts // sample_ms without a division)
        else:
            b = ts // sample_ms
        r = math.log(fst[F_V_LAST_PRICE] / fst[F_V_ANCHOR])
        k = vol.shape[1]
        if b == ist[I_V_BUCKET] + 1:
            dt = sample_ms / 1000.0
            obs = r * r if dt == 1.0 else r * r / dt      # x / 1.0 == x exactly (the 1 s grid)
            for i in range(k):
                a = vol[0, i]
                vol[2, i] = a * vol[2, i] + (1.0 - a) * obs
                vol[3, i] = a * vol[3, i] + (1.0 - a)
                v = vol[2, i] / vol[3, i]
                vol[4, i] = math.sqrt(v if v > var_floor else var_floor)
        else:
            dt = (b - ist[I_V_BUCKET]) * (sample_ms / 1000.0)
            obs = r * r / dt
            for i in range(k):
                a = math.exp(-LN2 * dt / vol[1, i])
                vol[2, i] = a * vol[2, i] + (1.0 - a) * obs
                vol[3, i] = a * vol[3, i] + (1.0 - a)
                v = vol[2, i] / vol[3, i]
                vol[4, i] = math.sqrt(v if v > var_floor else var_floor)
        fst[F_V_ANCHOR] = fst[F_V_LAST_PRICE]
        ist[I_V_BUCKET] = b
        ist[I_V_NEXT] = (b + 1) * sample_ms
    ist[I_V_LAST_TS] = ts
    fst[F_V_LAST_PRICE] = price
    return 1


@njit(cache=False, nogil=True)
def _start_hour(ist, fst, hour_start, open_px, open_lp, hour_ms, grid_ms):
    ist[I_F_HOUR_START] = hour_start
    fst[F_F_OPEN_PX] = open_px
    fst[F_F_OPEN_LP] = open_lp
    ist[I_F_HAVE_OPEN] = 1
    gb = hour_start // grid_ms
    ist[I_F_GBUCKET] = gb
    ist[I_F_GNEXT] = (gb + 1) * grid_ms
    ist[I_F_NEXT_HOUR] = hour_start - hour_start % hour_ms + hour_ms
    fst[F_F_GANCHOR] = open_lp
    fst[F_F_LAST_LP] = open_lp
    fst[F_F_PREV_ABS] = 0.0
    fst[F_F_RV] = 0.0
    fst[F_F_BV] = 0.0


@njit(cache=False, nogil=True)
def _feat_update(ist, fst, rts, rlp, out, ts, price, hour_ms, grid_ms):
    if not (math.isfinite(price) and price > 0.0) or (ist[I_F_STARTED] == 1 and ts < ist[I_F_LAST_TS]):
        return 0
    lp = math.log(price)
    if ist[I_F_HAVE_OPEN] == 0 or ts >= ist[I_F_NEXT_HOUR]:
        _start_hour(ist, fst, ts - ts % hour_ms, price, lp, hour_ms, grid_ms)
    if ts >= ist[I_F_GNEXT]:
        b = ts // grid_ms
        r = fst[F_F_LAST_LP] - fst[F_F_GANCHOR]
        ar = abs(r)
        fst[F_F_RV] += r * r
        fst[F_F_BV] += ar * fst[F_F_PREV_ABS]
        fst[F_F_PREV_ABS] = ar if b == ist[I_F_GBUCKET] + 1 else 0.0
        fst[F_F_GANCHOR] = fst[F_F_LAST_LP]
        ist[I_F_GBUCKET] = b
        ist[I_F_GNEXT] = (b + 1) * grid_ms
    fst[F_F_LAST_LP] = lp
    tail = ist[I_F_TAIL]
    if ist[I_F_STARTED] == 1 and ts == ist[I_F_LAST_TS]:
        rlp[(tail - 1) & RING_MASK] = lp
    else:
        rts[tail & RING_MASK] = ts
        rlp[tail & RING_MASK] = lp
        tail += 1
        ist[I_F_TAIL] = tail
    ist[I_F_STARTED] = 1
    ist[I_F_LAST_TS] = ts
    head = ist[I_F_HEAD]
    for i in range(4):
        target = ts - WINDOWS[i]
        pi = ist[I_PTR0 + i]
        if pi < head and rts[head & RING_MASK] <= target:
            pi = head
        if pi >= head:
            while pi + 1 < tail and rts[(pi + 1) & RING_MASK] <= target:
                pi += 1
            ist[I_PTR0 + i] = pi
            out[i] = lp - rlp[pi & RING_MASK]
        else:
            out[i] = np.nan
    if ist[I_PTR0 + 3] > head:
        ist[I_F_HEAD] = ist[I_PTR0 + 3]
    out[4] = lp - fst[F_F_OPEN_LP]
    out[5] = fst[F_F_RV]
    out[6] = 0.5 * math.pi * fst[F_F_BV]
    return 1


@njit(cache=False, nogil=True)
def _digital_x(x, tau_s, sigma, p_min):
    if math.isnan(x) or math.isnan(tau_s) or math.isnan(sigma):
        return np.nan
    if x == 0.0:
        p = 0.5
    elif tau_s <= 0.0 or sigma <= 0.0:
        p = 1.0 if x > 0.0 else 0.0
    else:
        z = x / (sigma * math.sqrt(tau_s))
        p = 0.5 * math.erfc(-z * SQRT1_2)
    if p < p_min:
        p = p_min
    if p > 1.0 - p_min:
        p = 1.0 - p_min
    return p


@njit(cache=False, nogil=True)
def _tick(ist, fst, vol, rts, rlp, out, ts, price, sample_ms, var_floor, p_min, sigma_index, hour_ms):
    _vol_update(ist, fst, vol, ts, price, sample_ms, var_floor)
    if _feat_update(ist, fst, rts, rlp, out, ts, price, hour_ms, 1000) == 1:
        left = ist[I_F_NEXT_HOUR] - ts
        fst[F_LAST_P] = _digital_x(fst[F_F_LAST_LP] - fst[F_F_OPEN_LP], left / 1000.0, vol[4, sigma_index], p_min)
    return fst[F_LAST_P]


@njit(cache=False, nogil=True, error_model="numpy")
def _batch(ts, px, halflives, alpha1, sample_ms, var_floor, p_min, sigma_index, hour_ms, sig_out, feat_out, p_out):
    """The fused loop as a quant would write it for numba: all state in locals (registers), the features'
    history in arrays. Session 9: the history is a linear buffer of n + 4 slots (at most one entry per tick)
    filled with TS_SENTINEL, and each window pointer advances by three branch-free probes then a while loop,
    the layout the compiled core moved to (features.pxd); A/B in one process (load ~4.6, CPU time):
    99 ns/tick against 118 with the old ring of RING_CAP (mask, tail tests) and 122 with the linear buffer
    and a plain while loop, so the peer takes this fastest form."""
    n = ts.shape[0]
    k = halflives.shape[0]
    grid_ms = 1000
    sample_s = sample_ms / 1000.0
    num = np.zeros(k)
    wsum = np.zeros(k)
    sig = np.full(k, math.sqrt(var_floor))
    rts = np.full(n + 4, TS_SENTINEL, dtype=np.int64)
    rlp = np.zeros(n + 4)
    ptr = np.full(4, -1, dtype=np.int64)
    out = np.full(7, np.nan)
    # vol state
    v_started = False
    bucket = 0
    next_ms = 0
    v_last_ts = 0
    last_price = 0.0
    anchor = 0.0
    # feature state
    tail = 0
    f_started = False
    f_last_ts = 0
    last_lp = np.nan
    gnext = 0
    next_hour = 0
    open_lp = np.nan
    have_open = False
    gbucket = 0
    ganchor = np.nan
    prev_abs = 0.0
    rv = 0.0
    bv = 0.0
    last_p = np.nan
    for j in range(n):
        t = ts[j]
        price = px[j]
        good = math.isfinite(price) and price > 0.0
        # ---- EwmaVol
        if good:
            if not v_started:
                v_started = True
                bucket = t // sample_ms
                next_ms = (bucket + 1) * sample_ms
                v_last_ts = t
                last_price = price
                anchor = price
            elif t >= v_last_ts:
                if t >= next_ms:
                    if t < next_ms + sample_ms and next_ms >= 0:
                        b = bucket + 1      # the next grid cell (= t // sample_ms without a division)
                    else:
                        b = t // sample_ms
                    r = math.log(last_price / anchor)
                    if b == bucket + 1:
                        dt = sample_s
                        obs = r * r if dt == 1.0 else r * r / dt      # x / 1.0 == x exactly (the 1 s grid)
                        for i in range(k):
                            a = alpha1[i]
                            num[i] = a * num[i] + (1.0 - a) * obs
                            wsum[i] = a * wsum[i] + (1.0 - a)
                            v = num[i] / wsum[i]
                            sig[i] = math.sqrt(v if v > var_floor else var_floor)
                    else:
                        dt = (b - bucket) * sample_s
                        obs = r * r / dt
                        for i in range(k):
                            a = math.exp(-LN2 * dt / halflives[i])
                            num[i] = a * num[i] + (1.0 - a) * obs
                            wsum[i] = a * wsum[i] + (1.0 - a)
                            v = num[i] / wsum[i]
                            sig[i] = math.sqrt(v if v > var_floor else var_floor)
                    anchor = last_price
                    bucket = b
                    next_ms = (b + 1) * sample_ms
                v_last_ts = t
                last_price = price
        # ---- ReturnFeatures + price
        if good and not (f_started and t < f_last_ts):
            lp = math.log(price)
            if not have_open or t >= next_hour:
                hs = t - t % hour_ms
                open_lp = lp
                have_open = True
                gbucket = hs // grid_ms
                gnext = (gbucket + 1) * grid_ms
                next_hour = hs - hs % hour_ms + hour_ms
                ganchor = lp
                last_lp = lp
                prev_abs = 0.0
                rv = 0.0
                bv = 0.0
            if t >= gnext:
                b = t // grid_ms
                r = last_lp - ganchor
                ar = abs(r)
                rv += r * r
                bv += ar * prev_abs
                prev_abs = ar if b == gbucket + 1 else 0.0
                ganchor = last_lp
                gbucket = b
                gnext = (b + 1) * grid_ms
            last_lp = lp
            if f_started and t == f_last_ts:
                rlp[tail - 1] = lp
            else:
                rts[tail] = t
                rlp[tail] = lp
                tail += 1
            f_started = True
            f_last_ts = t
            for i in range(4):
                target = t - WINDOWS[i]
                pi = ptr[i]
                pi += (rts[pi + 1] <= target) + (rts[pi + 2] <= target) + (rts[pi + 3] <= target)
                while rts[pi + 1] <= target:
                    pi += 1
                ptr[i] = pi
                if pi >= 0:
                    out[i] = lp - rlp[pi]
                else:
                    out[i] = np.nan
            out[4] = lp - open_lp
            out[5] = rv
            out[6] = 0.5 * math.pi * bv
            last_p = _digital_x(lp - open_lp, (next_hour - t) / 1000.0, sig[sigma_index], p_min)
        for i in range(k):
            sig_out[j, i] = sig[i]
        for i in range(7):
            feat_out[j, i] = out[i]
        p_out[j] = last_p


def price_path_batch(ts_ms, price, halflives_s=(30.0, 120.0, 600.0), sample_ms=1000, var_floor=1e-12,
                     p_min=0.001, sigma_index=0, hour_ms=3_600_000, out=None):
    """Same contract as ``hourmm_core.quant.price_path_batch`` (nu = 0 only)."""
    ts = np.ascontiguousarray(ts_ms, dtype=np.int64)
    px = np.ascontiguousarray(price, dtype=np.float64)
    n, k = ts.shape[0], len(halflives_s)
    if out is None:
        out = (np.empty((n, k)), np.empty((n, 7)), np.empty(n))
    hl = np.asarray(halflives_s, dtype=np.float64)
    alpha1 = np.exp(-LN2 * (sample_ms / 1000.0) / hl)
    _batch(ts, px, hl, alpha1, sample_ms, var_floor, p_min, sigma_index, hour_ms, *out)
    return out


class NumbaTickPricer:
    """Per-tick form: one jitted call per tick from Python (state lives in numpy arrays)."""

    def __init__(self, halflives_s=(30.0, 120.0, 600.0), sample_ms=1000, var_floor=1e-12, p_min=0.001,
                 sigma_index=0, hour_ms=3_600_000):
        self.state = new_state(halflives_s, sample_ms, var_floor)
        self.args = (sample_ms, var_floor, p_min, sigma_index, hour_ms)
        self.p = float("nan")

    def update(self, ts_ms, price):
        self.p = _tick(*self.state, ts_ms, price, *self.args)
        return self.p


# ------------------------------------------------------------------ the shipped model's batch path
@njit(cache=False, nogil=True, error_model="numpy")
def _ewma_vol(ts, px, halflives, alpha1, sample_ms, var_floor, o):
    n = ts.shape[0]
    k = halflives.shape[0]
    sample_s = sample_ms / 1000.0
    num = np.zeros(k)
    wsum = np.zeros(k)
    sig = np.full(k, math.sqrt(var_floor))
    started = False
    bucket = 0
    next_ms = 0
    last_ts = 0
    last_price = 0.0
    anchor = 0.0
    for j in range(n):
        t = ts[j]
        price = px[j]
        if math.isfinite(price) and price > 0.0:
            if not started:
                started = True
                bucket = t // sample_ms
                next_ms = (bucket + 1) * sample_ms
                last_ts = t
                last_price = price
                anchor = price
            elif t >= last_ts:
                if t >= next_ms:
                    if t < next_ms + sample_ms and next_ms >= 0:
                        b = bucket + 1      # the next grid cell (= t // sample_ms without a division)
                    else:
                        b = t // sample_ms
                    r = math.log(last_price / anchor)
                    if b == bucket + 1:
                        dt = sample_s
                        obs = r * r if dt == 1.0 else r * r / dt      # x / 1.0 == x exactly (the 1 s grid)
                        for i in range(k):
                            a = alpha1[i]
                            num[i] = a * num[i] + (1.0 - a) * obs
                            wsum[i] = a * wsum[i] + (1.0 - a)
                            v = num[i] / wsum[i]
                            sig[i] = math.sqrt(v if v > var_floor else var_floor)
                    else:
                        dt = (b - bucket) * sample_s
                        obs = r * r / dt
                        for i in range(k):
                            a = math.exp(-LN2 * dt / halflives[i])
                            num[i] = a * num[i] + (1.0 - a) * obs
                            wsum[i] = a * wsum[i] + (1.0 - a)
                            v = num[i] / wsum[i]
                            sig[i] = math.sqrt(v if v > var_floor else var_floor)
                    anchor = last_price
                    bucket = b
                    next_ms = (b + 1) * sample_ms
                last_ts = t
                last_price = price
        for i in range(k):
            o[j, i] = sig[i]


def ewma_vol_batch(ts_ms, price, halflives_s=(30.0, 120.0, 600.0), sample_ms=1000, var_floor=1e-12, out=None):
    """Same contract as ``hourmm_core.quant.ewma_vol_batch``."""
    ts = np.ascontiguousarray(ts_ms, dtype=np.int64)
    px = np.ascontiguousarray(price, dtype=np.float64)
    hl = np.asarray(halflives_s, dtype=np.float64)
    if out is None:
        out = np.empty((ts.shape[0], hl.size))
    _ewma_vol(ts, px, hl, np.exp(-LN2 * (sample_ms / 1000.0) / hl), sample_ms, var_floor, out)
    return out


@njit(cache=False, nogil=True, error_model="numpy")
def _fair_prob(S, K, tau, sig, p_min, o):
    for i in range(S.shape[0]):
        s = S[i]
        k = K[i]
        if not (math.isfinite(s) and s > 0.0 and math.isfinite(k) and k > 0.0) or math.isnan(tau[i]) \
                or math.isnan(sig[i]):
            o[i] = np.nan
            continue
        if s == k:
            p = 0.5
        elif tau[i] <= 0.0 or sig[i] <= 0.0:
            p = 1.0 if s >= k else 0.0
        else:
            z = math.log(s / k) / (sig[i] * math.sqrt(tau[i]))
            p = 0.5 * math.erfc(-z * SQRT1_2)
        if p < p_min:
            p = p_min
        if p > 1.0 - p_min:
            p = 1.0 - p_min
        o[i] = p


def fair_prob_batch(S, K, tau_s, sigma, nu=0.0, p_min=0.001, out=None):
    """Same contract as ``hourmm_core.quant.fair_prob_batch`` (nu = 0 only)."""
    assert nu == 0.0
    a = [np.ascontiguousarray(v, dtype=np.float64).reshape(-1) for v in (S, K, tau_s, sigma)]
    if out is None:
        out = np.empty(a[0].shape[0])
    _fair_prob(*a, p_min, out)
    return out


SCALE_GRID = np.exp(np.linspace(np.log(0.35), np.log(2.0), 71))   # the compiled module's grid (same formula)
LOG_SCALE_GRID = np.log(SCALE_GRID)
# MinutePricer's slower state (touched once a minute) in two small arrays:
# fs = num, den, prev_close, hour_K, var_scale, scale_hours; ist = have_prev, run, n_returns, hour_closes
FS_NUM, FS_DEN, FS_PREV, FS_HOURK, FS_SCALE, FS_HOURS = range(6)
IS_HAVE_PREV, IS_RUN, IS_NRET, IS_HCLOSES = range(4)


class _Model:
    """The model's constants and the adaptive-scale buffers (numpy), as passed to the jitted code."""

    def __init__(self, season, halflife_min, var_prior, var_scale, p_min, scale_window_h, scale_prior_h):
        self.season = np.ascontiguousarray(season, dtype=np.float64).reshape(-1)
        self.cum = np.zeros(1441)
        acc = 0.0
        for i in range(1440):         # the same sequential sum as MinutePricer (np.cumsum may pair-sum)
            acc = acc + self.season[i]
            self.cum[i + 1] = acc
        w = int(scale_window_h)
        self.fs = np.array([0.5 * var_prior, 0.5, np.nan, np.nan, 1.0 if w > 0 else var_scale, 0.0])
        self.ist = np.zeros(4, dtype=np.int64)
        self.pts = np.zeros((2, 59))
        self.ring = np.zeros((max(w, 1), 71))
        self.ring_has = np.zeros(max(w, 1))
        self.win = np.zeros(71)
        self.consts = (1.0 - 0.5 ** (1.0 / halflife_min), var_prior, p_min, w, float(scale_prior_h))

    def args(self):
        return (self.fs, self.ist, self.season, self.cum, self.pts, self.ring, self.ring_has, self.win,
                SCALE_GRID, LOG_SCALE_GRID, *self.consts)


@njit(cache=False, nogil=True, error_model="numpy")
def _m_close_hour(h, ok, bar_close, fs, ist, pts, ring, ring_has, win, sgrid, lsgrid, W, prior_h, p_min):
    slot = h % W
    if ok:
        y = 1.0 if bar_close >= fs[FS_HOURK] else 0.0
        for g in range(71):
            s = 0.0
            for m in range(59):
                v = sgrid[g] * pts[1, m]
                if v > 0.0:
                    p = _digital_x(pts[0, m], 1.0, math.sqrt(v), p_min)
                else:
                    p = _digital_x(pts[0, m], 0.0, 1.0, p_min)
                if p < 1e-6:
                    p = 1e-6
                if p > 1.0 - 1e-6:
                    p = 1.0 - 1e-6
                s += -math.log(p if y == 1.0 else 1.0 - p)     # one log per point, as the core (same bits)
            ring[slot, g] = s
        ring_has[slot] = 1.0
    else:
        for g in range(71):
            ring[slot, g] = 0.0
        ring_has[slot] = 0.0
    for g in range(71):
        win[g] = 0.0
    n = 0.0
    for j in range(1, W + 1):                       # hours h - W + 1 .. h, oldest first
        sl = (h + j) % W
        n += ring_has[sl]
        for g in range(71):
            win[g] += ring[sl, g]
    fs[FS_HOURS] = n
    ist[IS_HCLOSES] += 1
    if n > 0.0:
        best = win[0]
        gi = 0
        for g in range(1, 71):
            if win[g] < best:
                best = win[g]
                gi = g
        fs[FS_SCALE] = math.exp((n * lsgrid[gi] + prior_h * math.log(1.0)) / (n + prior_h))
    else:
        fs[FS_SCALE] = 1.0


@njit(cache=False, nogil=True, error_model="numpy")
def _m_close_bar(bar, bar_close, bar_open, bar_traded, fs, ist, season, cum, pts, ring, ring_has, win, sgrid,
                 lsgrid, alpha, var_prior, p_min, W, prior_h):
    """MinutePricer._close_bar (the caller then sets bar_traded False and bar += 1)."""
    k = bar % 60
    if not bar_traded:
        ist[IS_HAVE_PREV] = 0
        ist[IS_RUN] = 0
        fs[FS_NUM] = (1.0 - alpha) * fs[FS_NUM] + alpha * var_prior
        fs[FS_DEN] = (1.0 - alpha) * fs[FS_DEN] + alpha
    else:
        ist[IS_RUN] += 1
        if ist[IS_HAVE_PREV] == 1:
            r = math.log(bar_close / fs[FS_PREV])
            d = r * r / season[bar % 1440]
            fs[FS_NUM] = (1.0 - alpha) * fs[FS_NUM] + alpha * d
            fs[FS_DEN] = (1.0 - alpha) * fs[FS_DEN] + alpha
            ist[IS_NRET] += 1
        fs[FS_PREV] = bar_close
        ist[IS_HAVE_PREV] = 1
        if W > 0:
            if k == 0:
                fs[FS_HOURK] = bar_open
            if k < 59:
                c = (bar + 1) % 1440
                pts[0, k] = math.log(bar_close / fs[FS_HOURK])
                lev = fs[FS_NUM] / fs[FS_DEN] if fs[FS_DEN] > 0.0 else var_prior
                pts[1, k] = lev * (cum[c - c % 60 + 60] - cum[c])
    if W > 0 and k == 59:
        _m_close_hour(bar // 60, ist[IS_RUN] >= 120, bar_close, fs, ist, pts, ring, ring_has, win, sgrid, lsgrid,
                      W, prior_h, p_min)


@njit(cache=False, nogil=True, error_model="numpy", inline="always")   # no per-call array refcounts
def _m_trade(t, price, bar, have_bar, bar_traded, bar_open, bar_close, fs, ist, season, cum, pts, ring, ring_has,
             win, sgrid, lsgrid, alpha, var_prior, p_min, W, prior_h):
    """MinutePricer.c_on_trade on the bar state held by the caller; returns the new bar state."""
    b = t // 60000
    if not have_bar:
        bar = b
        have_bar = True
    elif b > bar:
        while bar < b:
            _m_close_bar(bar, bar_close, bar_open, bar_traded, fs, ist, season, cum, pts, ring, ring_has, win,
                         sgrid, lsgrid, alpha, var_prior, p_min, W, prior_h)
            bar_traded = False
            bar += 1
    if not bar_traded:
        bar_open = price
    return bar, have_bar, True, bar_open, price


# The compiled core keeps the rest-of-hour variance's per-minute part (min_span) between instants of
# the same minute, because GCC compiles its floor divisions as 64-bit idiv in that loop. Ported here
# (session 8), the same caching made this peer SLOWER (A/B in one process: 42 -> 52 ns per tick:
# numba's ``e // 60000`` is already a multiply), so the peer keeps its per-instant form: the same
# arithmetic and results, each implementation in its faster form.
@njit(cache=False, nogil=True, error_model="numpy", inline="always")
def _rest_price(e, S, K, hend, bar, have_bar, bar_traded, have_prev, bar_close, prev_close, num, den, scale, season,
                cum, alpha, var_prior, p_min):
    """MinutePricer.c_price on scalar state (rest-of-hour variance, then the digital): p at instant e for
    price S, strike K, hour end hend (NaN on bad input). Inlined into every caller, so the loops that keep
    their state in locals pay nothing for sharing it."""
    left = hend - e
    if left <= 0:
        v = 0.0
    else:
        b = e // 60000
        bend = (hend - 1) // 60000 + 1
        c = b % 1440
        f = ((b + 1) * 60000 - e) / 60000.0
        if bend - b > 1440:
            v = np.nan
        else:
            if have_bar and bar_traded and have_prev and b > bar:
                r = math.log(bar_close / prev_close)
                lev = ((1.0 - alpha) * num + alpha * r * r / season[bar % 1440]) / ((1.0 - alpha) * den + alpha)
            elif den > 0.0:
                lev = num / den
            else:
                lev = var_prior
            ee = c + (bend - b)
            if ee <= 1440:
                v = scale * lev * (f * season[c] + cum[ee] - cum[c + 1])
            else:
                v = scale * lev * (f * season[c] + cum[1440] - cum[c + 1] + cum[ee - 1440])
    if not (math.isfinite(S) and S > 0.0 and math.isfinite(K) and K > 0.0) or math.isnan(v):
        return np.nan
    x = math.log(S / K)
    if v > 0.0:
        return _digital_x(x, 1.0, math.sqrt(v), p_min)
    return _digital_x(x, 0.0, 1.0, p_min)


@njit(cache=False, nogil=True, error_model="numpy", inline="always")   # no per-call array refcounts
def _m_price(e, S, K, hend, bar, have_bar, bar_traded, bar_close, fs, ist, season, cum, alpha, var_prior, p_min):
    """MinutePricer.c_price with the level state read from the arrays."""
    return _rest_price(e, S, K, hend, bar, have_bar, bar_traded, ist[IS_HAVE_PREV] == 1, bar_close, fs[FS_PREV],
                       fs[FS_NUM], fs[FS_DEN], fs[FS_SCALE], season, cum, alpha, var_prior, p_min)


@njit(cache=False, nogil=True, error_model="numpy")
def _minute_path(ts, px, ev, K, he, wo, wop, wcl, until, o, fs, ist, season, cum, pts, ring, ring_has, win, sgrid,
                 lsgrid, alpha, var_prior, p_min, W, prior_h):
    """Warm with klines, then stream the ticks and price at each instant: the bar state in locals."""
    bar = 0
    have_bar = False
    bar_traded = False
    bar_open = np.nan
    bar_close = np.nan
    for i in range(wo.shape[0]):                  # MinutePricer.warm_klines (_feed_kline)
        bar, have_bar, bar_traded, bar_open, bar_close = _m_trade(
            wo[i], wop[i], bar, have_bar, bar_traded, bar_open, bar_close, fs, ist, season, cum, pts, ring, ring_has,
            win, sgrid, lsgrid, alpha, var_prior, p_min, W, prior_h)
        bar, have_bar, bar_traded, bar_open, bar_close = _m_trade(
            wo[i] + 59999, wcl[i], bar, have_bar, bar_traded, bar_open, bar_close, fs, ist, season, cum, pts, ring,
            ring_has, win, sgrid, lsgrid, alpha, var_prior, p_min, W, prior_h)
        b = min(wo[i] + 60000, until) // 60000
        while bar < b:
            _m_close_bar(bar, bar_close, bar_open, bar_traded, fs, ist, season, cum, pts, ring, ring_has, win,
                         sgrid, lsgrid, alpha, var_prior, p_min, W, prior_h)
            bar_traded = False
            bar += 1
    n = ts.shape[0]
    last = np.nan
    j = 0
    for i in range(ev.shape[0]):
        e = ev[i]
        while j < n and ts[j] < e:        # on_trade written out here: the hot path stays in locals
            price = px[j]
            t = ts[j]
            j += 1
            if not (math.isfinite(price) and price > 0.0):
                continue
            b = t // 60000
            if not have_bar:
                bar = b
                have_bar = True
            elif b > bar:
                while bar < b:
                    _m_close_bar(bar, bar_close, bar_open, bar_traded, fs, ist, season, cum, pts, ring, ring_has,
                                 win, sgrid, lsgrid, alpha, var_prior, p_min, W, prior_h)
                    bar_traded = False
                    bar += 1
            if not bar_traded:
                bar_open = price
            bar_close = price
            bar_traded = True
            last = price
        if math.isnan(last):
            o[i] = np.nan
            continue
        o[i] = _rest_price(e, last, K[i], he[i], bar, have_bar, bar_traded, ist[IS_HAVE_PREV] == 1, bar_close,
                           fs[FS_PREV], fs[FS_NUM], fs[FS_DEN], fs[FS_SCALE], season, cum, alpha, var_prior, p_min)


@njit(cache=False, nogil=True, error_model="numpy")
def _minute_path_fixed(ts, px, ev, K, he, season, cum, alpha, var_prior, var_scale, p_min, o):
    """The fixed-scale model (scale_window_h 0, no warm-up) with ALL the state in locals."""
    n = ts.shape[0]
    m = ev.shape[0]
    num = 0.5 * var_prior
    den = 0.5
    bar = 0
    bar_close = np.nan
    prev_close = np.nan
    have_bar = False
    have_prev = False
    bar_traded = False
    last = np.nan
    j = 0
    for i in range(m):
        e = ev[i]
        while j < n and ts[j] < e:
            t = ts[j]
            price = px[j]
            j += 1
            if not (math.isfinite(price) and price > 0.0):
                continue
            b = t // 60000
            if not have_bar:
                bar = b
                have_bar = True
            elif b > bar:
                while bar < b:                  # close every bar up to b (MinutePricer._close_bar)
                    if not bar_traded:
                        have_prev = False
                        num = (1.0 - alpha) * num + alpha * var_prior
                        den = (1.0 - alpha) * den + alpha
                    else:
                        bar_traded = False
                        if have_prev:
                            r = math.log(bar_close / prev_close)
                            d = r * r / season[bar % 1440]
                            num = (1.0 - alpha) * num + alpha * d
                            den = (1.0 - alpha) * den + alpha
                        prev_close = bar_close
                        have_prev = True
                    bar += 1
            bar_close = price
            bar_traded = True
            last = price
        if math.isnan(last):
            o[i] = np.nan
            continue
        o[i] = _rest_price(e, last, K[i], he[i], bar, have_bar, bar_traded, have_prev, bar_close, prev_close,
                           num, den, var_scale, season, cum, alpha, var_prior, p_min)


def minute_path_batch(ts_ms, price, eval_ms, K, hour_end_ms, season, halflife_min=60.0, var_prior=1e-7,
                      var_scale=1.0, nu=0.0, p_min=0.001, scale_window_h=0, scale_prior_h=72.0, warm=None, out=None):
    """Same contract as ``hourmm_core.quant.minute_path_batch`` (nu = 0 only; adaptive scale and warm klines
    included)."""
    assert nu == 0.0
    ts = np.ascontiguousarray(ts_ms, dtype=np.int64).reshape(-1)
    px = np.ascontiguousarray(price, dtype=np.float64).reshape(-1)
    ev = np.ascontiguousarray(eval_ms, dtype=np.int64).reshape(-1)
    k = np.ascontiguousarray(K, dtype=np.float64).reshape(-1)
    he = np.ascontiguousarray(hour_end_ms, dtype=np.int64).reshape(-1)
    md = _Model(season, halflife_min, var_prior, var_scale, p_min, scale_window_h, scale_prior_h)
    if warm is None:
        wo, wop, wcl = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    else:
        wo, wop, wcl = (np.ascontiguousarray(warm[0], dtype=np.int64), np.ascontiguousarray(warm[1], dtype=np.float64),
                        np.ascontiguousarray(warm[2], dtype=np.float64))
    until = int(ts[0]) if ts.size else np.iinfo(np.int64).max
    if out is None:
        out = np.empty(ev.shape[0])
    if int(scale_window_h) == 0 and warm is None:      # the fixed model: the all-locals loop
        _minute_path_fixed(ts, px, ev, k, he, md.season, md.cum, md.consts[0], var_prior, var_scale, p_min, out)
    else:
        _minute_path(ts, px, ev, k, he, wo, wop, wcl, until, out, *md.args())
    return out


@njit(cache=False, nogil=True, error_model="numpy")
def _minute_tick(bs, t, price, K, hend, fs, ist, season, cum, pts, ring, ring_has, win, sgrid, lsgrid, alpha,
                 var_prior, p_min, W, prior_h):
    """MinutePricer.update (on_trade then price at the trade); bar state bs = bar, have_bar, bar_traded,
    bar_open bits and bar_close kept in a float array between calls."""
    if not (math.isfinite(price) and price > 0.0):
        return np.nan
    bar, have_bar, bar_traded, bar_open, bar_close = _m_trade(
        t, price, np.int64(bs[0]), bs[1] != 0.0, bs[2] != 0.0, bs[3], bs[4], fs, ist, season, cum, pts, ring,
        ring_has, win, sgrid, lsgrid, alpha, var_prior, p_min, W, prior_h)
    bs[0] = bar
    bs[1] = 1.0 if have_bar else 0.0
    bs[2] = 1.0 if bar_traded else 0.0
    bs[3] = bar_open
    bs[4] = bar_close
    p = _m_price(t, price, K, hend, bar, have_bar, bar_traded, bar_close, fs, ist, season, cum, alpha, var_prior,
                 p_min)
    bs[5] = p
    return p


class NumbaMinutePricer:
    """Per-tick form of the shipped model: ``update(ts_ms, price, K, hour_end_ms)`` is one jitted
    call per trade from Python, state in numpy arrays (as :class:`NumbaTickPricer`)."""

    def __init__(self, season, halflife_min=60.0, var_prior=1e-7, var_scale=1.0, nu=0.0, p_min=0.001,
                 scale_window_h=0, scale_prior_h=72.0):
        assert nu == 0.0
        self.md = _Model(season, halflife_min, var_prior, var_scale, p_min, scale_window_h, scale_prior_h)
        self.bs = np.array([0.0, 0.0, 0.0, np.nan, np.nan, np.nan])
        self.args = self.md.args()

    @property
    def p(self):
        return float(self.bs[5])

    def update(self, ts_ms, price, K, hour_end_ms):
        return _minute_tick(self.bs, ts_ms, price, K, hour_end_ms, *self.args)
