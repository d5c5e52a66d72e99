"""Ticks inside real 1m klines: a seeded Brownian bridge that honours every kline exactly.

Real Binance trades exist only for the 11-minute sample; everywhere else the project has
real 1-minute klines. :func:`bridge_klines` turns each kline into ticks labelled
``source="binance-klines+bridge"`` (never presented as real trades) such that, per minute:

- the first tick prints the kline's **open**, the last its **close**, and the path touches
  the **high** and the **low** exactly and never leaves [low, high]. So every 1m and every
  1h candle rebuilt from the ticks equals the real Binance kline (the hourly market's
  settlement: close >= open of the real hour);
- the extreme nearer the open is visited first (ties: the one farther from the close); the
  two extremes are placed in time in proportion to the distance travelled (open -> first
  extreme -> second extreme -> close), jittered by ``pin_jitter``. Between these four pins
  the price is a Brownian bridge in *time* whose volatility comes from the kline's range
  (Parkinson: sigma_minute = range / sqrt(4 ln 2), times ``sigma_scale``) plus a
  mean-reverting deviation (Ornstein-Uhlenbeck, ``ou_scale`` Parkinson sds, time constant
  ``ou_tau_s``, pinned to zero at the pins) -- the real sample reverts at the 10-60 s scale --
  clipped to [low, high] and rounded to the 0.01 USDT grid;
- the number of ticks is the kline's number_of_trades, capped at ``max_ticks_per_minute``
  (default :data:`DEFAULT_MAX_TICKS_PER_MINUTE`; at least ``min_ticks`` so open, both
  extremes and close all print). Real 2025 minutes carry ~500..5,000 trades; the cap keeps
  the simulator's websocket rate and the research loops at today's cost. A capped minute
  has fewer, larger trades: volumes and prices are unchanged;
- arrival times are uniform in the minute with bursts (a tick shares the previous tick's
  millisecond with probability ``burst_prob``, like a taker sweeping several makers);
- sizes are two-component lognormal weights (retail-sized prints and ``size_big_ratio``
  times larger ones) scaled so the minute's **volume** is exact, and so the
  aggressive-buy ticks carry exactly the kline's **taker-buy volume** (sides: an up-tick is
  an aggressive buy, a down-tick an aggressive sell, a flat tick buys with probability
  taker_buy_volume / volume);
- the BBO: the trade prints at the side it hit (like ``derive_bbo``); the spread is one tick
  (0.01) except with probability 1 - exp(-(wide_base + |price move since the previous
  tick| / wide_move)), when it is lognormal with median ``wide_median``, as in the real
  sample where spreads widen when the price moves.

Determinism: every random number is a hash (splitmix64) of (seed, minute open time, tick
index, stream), so a minute's ticks do not depend on the requested window: the Binance
replay, the Polymarket simulator's settlement and the orchestrator all see the same path.
Vectorised numpy throughout (no Python loop per minute or per tick).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hourmm_core.data.ticks import SOURCE_KLINES_BRIDGE, TickData

DEFAULT_MAX_TICKS_PER_MINUTE = 300
#: above this many bridged ticks in one call the per-minute cap is lowered (research over months)
DEFAULT_TICK_BUDGET = 3_000_000
MIN_AUTO_TICKS_PER_MINUTE = 12
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class BridgeParams:
    """Bridge knobs. The defaults were set on the real tick sample (2024-08-08/09, see
    docs/DATA.md), never on the June 2025 report span."""

    max_ticks_per_minute: int = DEFAULT_MAX_TICKS_PER_MINUTE
    min_ticks: int = 4
    sigma_scale: float = 0.3        # Brownian part vs the Parkinson vol of the minute's range
    pin_jitter: float = 0.1         # extremes' times: share of uniform randomness vs distance-proportional
    ou_scale: float = 0.12          # mean-reverting deviation, in Parkinson minute sds
    ou_tau_s: float = 1.5           # its time constant (s)
    burst_prob: float = 0.6         # a tick shares the previous tick's ms (real sample: 65 % of trades)
    size_sigma: float = 1.3         # lognormal size dispersion of each size component
    size_big_share: float = 0.25    # share of trades from the large-size component
    size_big_ratio: float = 100.0   # its median / the small component's median
    wide_base: float = 0.3          # spread-widening hazard at zero move
    wide_move: float = 10.0         # USDT of move that raises the widening hazard by one unit
    wide_median: float = 2.0        # median of a wide spread (USDT)
    wide_log_sd: float = 0.95
    wide_max: float = 100.0
    tick: float = 0.01

    def auto_cap(self, minutes: int, budget: int = DEFAULT_TICK_BUDGET) -> "BridgeParams":
        """The same params with the per-minute cap lowered so ``minutes`` bridge into <= ``budget`` ticks."""
        if minutes * self.max_ticks_per_minute <= budget:
            return self
        cap = max(MIN_AUTO_TICKS_PER_MINUTE, budget // max(1, minutes))
        from dataclasses import replace
        return replace(self, max_ticks_per_minute=int(cap))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_K_MUL = np.uint64(0xD6E8FEB86659FD93)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser of ``x + golden`` (uint64, wrapping), computed in place in a new array."""
    z = x + _GOLDEN
    t = z >> np.uint64(30)
    z ^= t
    z *= np.uint64(0xBF58476D1CE4E5B9)
    np.right_shift(z, np.uint64(27), out=t)
    z ^= t
    z *= np.uint64(0x94D049BB133111EB)
    np.right_shift(z, np.uint64(31), out=t)
    z ^= t
    return z


def _key_parts(minute: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stream-independent parts of the hash key of (minute, k): computed once for all the
    streams drawn at the same (minute, k) pairs (uint64 products, wrapping)."""
    return minute.astype(np.uint64) * _GOLDEN, k.astype(np.uint64) * _K_MUL


def _uniform_parts(seed: int, parts: tuple[np.ndarray, np.ndarray], stream: int) -> np.ndarray:
    salt = np.uint64((seed * 0x632BE59BD9B4E019 + stream * 0xD1B54A32D192ED03 + 0x2545F4914F6CDD1D)
                     & 0xFFFFFFFFFFFFFFFF)
    key = parts[0] ^ salt
    key += parts[1]
    h = _splitmix(key)
    h >>= np.uint64(11)
    out = h.astype(np.float64)
    out += 0.5
    out *= 1.0 / 9007199254740992.0
    return out


def _uniform(seed: int, minute: np.ndarray, k: np.ndarray, stream: int) -> np.ndarray:
    """U(0,1) (open interval) from a hash of (seed, minute number, tick index, stream)."""
    return _uniform_parts(seed, _key_parts(minute, k), stream)


def _normals(seed: int, parts: tuple[np.ndarray, np.ndarray], stream: int,
             both: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Two independent standard normals per (minute, k) of ``parts`` (:func:`_key_parts`;
    Box-Muller on two hashed uniforms); ``both=False``: the first only (None for the second)."""
    r = np.log(_uniform_parts(seed, parts, stream))
    r *= -2.0
    np.sqrt(r, out=r)
    ang = (2.0 * math.pi) * _uniform_parts(seed, parts, stream + 1)
    return r * np.cos(ang), (r * np.sin(ang) if both else None)


def ticks_per_minute(count: np.ndarray, params: BridgeParams) -> np.ndarray:
    return np.clip(np.asarray(count, np.int64), params.min_ticks, max(params.min_ticks, params.max_ticks_per_minute))


def bridge_prices(k: dict[str, np.ndarray], seed: int = 7, params: BridgeParams | None = None,
                  interval_ms: int = 60_000) -> tuple[np.ndarray, np.ndarray]:
    """``(ts_ms, price)`` of :func:`bridge_klines` (the same arrays, bit for bit) without the
    sides, sizes and BBO: what the strategy backtest reads (about a third less work)."""
    p = params or BridgeParams()
    if len(k["open_ms"]) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    ts, px = _bridge_path(k, seed, p, interval_ms, False)[:2]
    return ts, px


def _bridge_path(k: dict[str, np.ndarray], seed: int, p: BridgeParams, interval_ms: int, sizes: bool) -> tuple:
    """The ticks' times and prices (the module doc's model) and what the sides, sizes and BBO
    reuse: ``(ts, px, start, mi, kk, mt, tick_keys, z_size)``; ``sizes=False``: ``z_size`` None
    (the second normal of the path's Box-Muller pairs is not drawn)."""
    t0 = np.asarray(k["open_ms"], np.int64)
    m_n = len(t0)
    o = np.asarray(k["open"], np.float64)
    hi = np.asarray(k["high"], np.float64)
    lo = np.asarray(k["low"], np.float64)
    c = np.asarray(k["close"], np.float64)
    n = ticks_per_minute(k["count"], p)
    start = np.concatenate(([0], np.cumsum(n)[:-1]))
    total = int(n.sum())
    mi = np.repeat(np.arange(m_n), n)                       # minute row of each tick
    kk = np.arange(total, dtype=np.int64) - start[mi]       # index inside its minute
    mnum = t0 // interval_ms                                # absolute minute number (the hash key)
    mt = mnum[mi]
    tick_keys = _key_parts(mt, kk)                          # shared by every per-tick stream

    # ---- times: sorted uniforms in the minute (order statistics from exponential spacings,
    # no sort), bursts share the previous tick's ms
    gaps = -np.log(_uniform_parts(seed, tick_keys, 1))
    csum = np.cumsum(gaps)
    seg_end = start + n - 1
    base = np.where(start > 0, csum[np.maximum(start - 1, 0)], 0.0)
    # n + 1 spacings per minute: the last one (after the last tick) is one more exponential
    tail = -np.log(_uniform(seed, mnum, np.full(m_n, 1 << 30, np.int64), 1))
    denom = csum[seg_end] - base + tail
    off = np.floor((csum - base[mi]) / denom[mi] * interval_ms)
    np.minimum(off, interval_ms - 1, out=off)
    event = (kk == 0) | (_uniform_parts(seed, tick_keys, 2) >= p.burst_prob)
    ev_idx = np.maximum.accumulate(np.where(event, np.arange(total), 0))
    off = off[ev_idx]
    ts = t0[mi] + off.astype(np.int64)
    tsec = off / 1000.0                                      # seconds from the minute start

    # ---- the four pinned points: open, first extreme, second extreme, close
    high_first = (hi - o) < (o - lo)
    tie = (hi - o) == (o - lo)
    high_first = np.where(tie, (hi - c) > (c - lo), high_first)
    e1 = np.where(high_first, hi, lo)
    e2 = np.where(high_first, lo, hi)
    last = n - 1
    mk0 = np.zeros(m_n, np.int64)
    d1, d2, d3 = np.abs(e1 - o), np.abs(e2 - e1), np.abs(c - e2)
    dist = d1 + d2 + d3
    safe = np.where(dist > 0, dist, 1.0)
    f1 = np.where(dist > 0, d1 / safe, 1 / 3)
    f2 = np.where(dist > 0, (d1 + d2) / safe, 2 / 3)
    pin_keys = _key_parts(mnum, mk0)
    ua = _uniform_parts(seed, pin_keys, 3)
    ub = _uniform_parts(seed, pin_keys, 4)
    lam = p.pin_jitter
    g1 = (1 - lam) * f1 + lam * np.minimum(ua, ub)
    g2 = (1 - lam) * f2 + lam * np.maximum(ua, ub)
    # the tick at (or just after) each target time; kept inside (0, n-1) and in order
    j1 = np.searchsorted(ts, t0 + (g1 * interval_ms).astype(np.int64), side="left") - start
    j2 = np.searchsorted(ts, t0 + (g2 * interval_ms).astype(np.int64), side="left") - start
    i1 = np.clip(j1, 1, n - 3)
    i2 = np.clip(np.maximum(j2, i1 + 1), 2, n - 2)
    i1 = np.where(e1 == o, 0, i1)
    i2 = np.where(e2 == c, last, i2)
    i2 = np.maximum(i1, i2)
    pin_i = np.stack([np.zeros(m_n, np.int64), i1, i2, last], axis=1)
    pin_p = np.stack([o, e1, e2, c], axis=1)
    flat = mi * 4 + (kk > i1[mi]) + (kk > i2[mi])            # flat index of the segment's start pin
    pi, pp = pin_i.ravel(), pin_p.ravel()
    s_i, e_i = pi[flat], pi[flat + 1]
    s_p, e_p = pp[flat], pp[flat + 1]
    gs = start[mi] + s_i                                     # global index of the segment ends
    ge = start[mi] + e_i
    tt = tsec                                                # time in seconds inside the minute
    seg_t = tt[ge] - tt[gs]
    tau = tt - tt[gs]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(seg_t > 0, tau / seg_t,
                        np.where(e_i > s_i, (kk - s_i) / np.maximum(e_i - s_i, 1), 1.0))
    dt = np.diff(tsec, prepend=0.0)
    dt[start] = 0.0
    z_path, z_size = _normals(seed, tick_keys, 5, both=sizes)
    w = np.cumsum(z_path * np.sqrt(np.maximum(dt, 0.0)))
    bridge = (w - w[gs]) - frac * (w[ge] - w[gs])
    sig = p.sigma_scale * (hi - lo) / math.sqrt(4.0 * math.log(2.0)) / math.sqrt(interval_ms / 1000.0)
    px = s_p + (e_p - s_p) * frac + sig[mi] * bridge
    if p.ou_scale > 0:
        # mean-reverting deviation: a stationary OU (unit sd, time constant ou_tau_s) on a 500 ms
        # grid per minute (a loop over the grid, vectorised over minutes: no precision loss, no
        # dependence on the window), read at each tick, then pinned to 0 at the four pins
        step = 500
        g_n = interval_ms // step
        phi = math.exp(-step / 1000.0 / p.ou_tau_s)
        gz, _ = _normals(seed, _key_parts(np.repeat(mnum, g_n), np.tile(np.arange(g_n, dtype=np.int64), m_n)), 13,
                         both=False)
        gz = gz.reshape(m_n, g_n)
        ou = np.empty_like(gz)
        ou[:, 0] = gz[:, 0]
        innov = math.sqrt(1.0 - phi * phi)
        for j in range(1, g_n):
            ou[:, j] = phi * ou[:, j - 1] + innov * gz[:, j]
        x = ou[mi, np.minimum((off // step).astype(np.int64), g_n - 1)]
        x = x - (x[gs] + (x[ge] - x[gs]) * frac)
        ou_sd = p.ou_scale * (hi - lo) / math.sqrt(4.0 * math.log(2.0))
        px = px + ou_sd[mi] * x
    px = np.clip(px, lo[mi], hi[mi])
    px = np.round(px / p.tick) * p.tick
    gi = (start[:, None] + pin_i).ravel()
    px[gi] = pin_p.ravel()                                   # exact kline prices (no rounding drift)
    px = np.round(px, 8)
    return ts, px, start, mi, kk, mt, tick_keys, z_size


def bridge_klines(k: dict[str, np.ndarray], seed: int = 7, params: BridgeParams | None = None,
                  symbol: str = "BTCUSDT", interval_ms: int = 60_000) -> TickData:
    """Ticks for the klines ``k`` (columns of :data:`hourmm_core.data.klines.KLINE_FIELDS`,
    1m, sorted, validated). See the module doc for the model and its guarantees."""
    p = params or BridgeParams()
    if len(k["open_ms"]) == 0:
        z = np.zeros(0)
        return TickData(np.zeros(0, np.int64), z, z, np.zeros(0, bool), z, z, z, z,
                        source=SOURCE_KLINES_BRIDGE, symbol=symbol, bbo="bridge", trade_id=np.zeros(0, np.int64))
    ts, px, start, mi, kk, mt, tick_keys, z_size = _bridge_path(k, seed, p, interval_ms, True)
    total = len(ts)
    m_n = len(start)
    vol = np.asarray(k["volume"], np.float64)
    tbv = np.asarray(k["taker_buy_volume"], np.float64)

    # ---- sides: up-tick buys, down-tick sells, flat ticks by the minute's taker-buy share
    dpx = np.diff(px, prepend=px[0])
    dpx[start] = 0.0
    pbuy = np.where(vol > 0, tbv / np.where(vol > 0, vol, 1.0), 0.5)
    flat_buy = _uniform_parts(seed, tick_keys, 7) < pbuy[mi]
    buy = np.where(dpx > 0, True, np.where(dpx < 0, False, flat_buy))

    # ---- sizes: lognormal weights; buys sum to taker-buy volume, sells to the rest
    big = _uniform_parts(seed, tick_keys, 9) < p.size_big_share
    wgt = np.exp(p.size_sigma * z_size + np.where(big, math.log(p.size_big_ratio), 0.0))
    key = mi * 2 + buy
    side_sum = np.bincount(key, weights=wgt, minlength=2 * m_n)
    all_sum = np.bincount(mi, weights=wgt, minlength=m_n)
    both = (side_sum[0::2] > 0) & (side_sum[1::2] > 0)
    side_vol = np.where(buy, tbv[mi], vol[mi] - tbv[mi])
    qty = np.where(both[mi], wgt / np.where(side_sum[key] > 0, side_sum[key], 1.0) * side_vol,
                   wgt / all_sum[mi] * vol[mi])
    qty = np.maximum(qty, 0.0)

    # ---- BBO: one tick, widening with the move
    hazard = p.wide_base + np.abs(dpx) / p.wide_move
    wide = _uniform_parts(seed, tick_keys, 10) < -np.expm1(-hazard)
    iw = np.flatnonzero(wide)
    z_wide, _ = _normals(seed, (tick_keys[0][iw], tick_keys[1][iw]), 11, both=False)
    wsp = np.minimum(p.wide_max, p.wide_median * np.exp(p.wide_log_sd * z_wide))
    spread = np.full(total, p.tick)
    spread[iw] = np.maximum(p.tick, np.round(wsp / p.tick) * p.tick)
    bid = np.round(np.where(buy, px - spread, px), 8)
    ask = np.round(np.where(buy, px, px + spread), 8)
    nan = np.full(total, np.nan)
    tid = mt * 100_000 + kk
    return TickData(ts_ms=ts, price=px, qty=qty, is_buyer_maker=~buy, bid=bid, ask=ask, bid_qty=nan,
                    ask_qty=nan.copy(), source=SOURCE_KLINES_BRIDGE, symbol=symbol, bbo="bridge", trade_id=tid)
