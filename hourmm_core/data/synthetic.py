"""Seeded synthetic BTCUSDT trades: a labelled stand-in when no real Binance dumps exist.

This is NOT market data. It exists so tests, the simulator and benchmarks run on
a machine without ../shared/data. Everything produced here carries
``source="synthetic"`` and :func:`hourmm_core.data.load_ticks` logs a loud
WARNING whenever it falls back to it.

Model (per simulated second): log-volatility follows a mean-reverting OU around
an annualised level drawn in [40%, 60%]; trades arrive as a Poisson process
whose rate itself wanders in ~[5, 20] trades/s; log price is a GBM sampled at
the trade times, plus rare Gaussian jumps (about one per ``jump_every_s``),
rounded to the 0.01 USDT grid. The aggressor side follows the tick direction
(down-tick -> seller aggressive -> buyer is maker); the BBO is the one-tick
spread around the print with lognormal quoted sizes.
"""
from __future__ import annotations

import math

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.data.ticks import SOURCE_SYNTHETIC, TickData

#: 2026-01-22T14:00:00Z, an hour boundary (the guide's example hour)
DEFAULT_SYNTHETIC_START_MS = 1_769_090_400_000
DEFAULT_SYNTHETIC_HOURS = 24
_SECONDS_PER_YEAR = 365.25 * 24 * 3600
_TICK = 0.01


def synthetic_ticks(start_ms: int = DEFAULT_SYNTHETIC_START_MS, hours: int | float = DEFAULT_SYNTHETIC_HOURS,
                    seed: int = 7, s0: float = 50_000.0, vol_range: tuple[float, float] = (0.40, 0.60),
                    rate_range: tuple[float, float] = (5.0, 20.0), jump_every_s: float = 7200.0,
                    jump_sd: float = 0.002, symbol: str = "BTCUSDT") -> TickData:
    """Seeded synthetic trades over ``hours`` from ``start_ms`` (same seed -> same path).

    Generated hour by hour so memory stays proportional to the output.
    """
    if hours is None:
        hours = DEFAULT_SYNTHETIC_HOURS
    if hours <= 0:
        raise ValueError("hours must be > 0")
    if s0 <= 0:
        raise ValueError("s0 must be > 0")
    rng = np.random.default_rng(seed)
    n_sec_total = int(round(hours * 3600))
    lo_v, hi_v = vol_range
    lo_r, hi_r = rate_range
    base_vol = rng.uniform(lo_v, hi_v)
    log_vol = math.log(base_vol)
    rate_x = 0.0  # OU state mapping to a rate in [lo_r, hi_r]
    log_s = math.log(s0)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("ts", "price", "qty", "ibm", "bid", "ask", "bq", "aq")}
    last_price = round(s0, 2)
    for h0 in range(0, n_sec_total, 3600):
        n_sec = min(3600, n_sec_total - h0)
        # per-second stochastic vol (OU on log vol, ~10 min reversion) and arrival rate
        z_v = rng.standard_normal(n_sec)
        z_r = rng.standard_normal(n_sec)
        lv = np.empty(n_sec)
        rx = np.empty(n_sec)
        a_v, s_v = 1.0 / 600.0, 0.02
        a_r, s_r = 1.0 / 300.0, 0.06
        target = math.log(base_vol)
        for i in range(n_sec):
            log_vol += a_v * (target - log_vol) + s_v * z_v[i]
            rate_x += -a_r * rate_x + s_r * z_r[i]
            lv[i] = log_vol
            rx[i] = rate_x
        vol_ann = np.clip(np.exp(lv), lo_v * 0.75, hi_v * 1.25)
        sig_s = vol_ann / math.sqrt(_SECONDS_PER_YEAR)  # per sqrt(second)
        rate = lo_r + (hi_r - lo_r) / (1.0 + np.exp(-2.0 * rx))
        counts = rng.poisson(rate)
        n = int(counts.sum())
        if n == 0:
            continue
        sec = np.repeat(np.arange(n_sec), counts)
        frac = rng.random(n)
        # sort within each second; keep ms resolution
        t_ms = (sec * 1000 + np.floor(frac * 1000)).astype(np.int64)
        t_ms.sort()
        sec = t_ms // 1000
        t_abs = start_ms + h0 * 1000 + t_ms
        prev_t = np.concatenate(([0], t_ms[:-1]))
        dt_s = np.maximum((t_ms - prev_t) / 1000.0, 1e-4)
        sig = sig_s[sec]
        inc = sig * np.sqrt(dt_s) * rng.standard_normal(n) - 0.5 * sig * sig * dt_s
        jumps = rng.random(n) < dt_s / jump_every_s
        inc = inc + jumps * rng.normal(0.0, jump_sd, n)
        path = log_s + np.cumsum(inc)
        log_s = float(path[-1])
        price = np.round(np.exp(path) / _TICK) * _TICK
        price = np.round(price, 2)
        prev_p = np.concatenate(([last_price], price[:-1]))
        last_price = float(price[-1])
        ibm = np.where(price < prev_p, True, np.where(price > prev_p, False, rng.random(n) < 0.5))
        qty = np.round(np.exp(rng.normal(math.log(0.01), 1.2, n)), 5)
        qty = np.maximum(qty, 0.00001)
        bid = np.round(np.where(ibm, price, price - _TICK), 2)
        ask = np.round(np.where(ibm, price + _TICK, price), 2)
        bq = np.round(np.exp(rng.normal(math.log(1.5), 0.8, n)), 5)
        aq = np.round(np.exp(rng.normal(math.log(1.5), 0.8, n)), 5)
        for k, v in (("ts", t_abs), ("price", price), ("qty", qty), ("ibm", ibm), ("bid", bid),
                     ("ask", ask), ("bq", bq), ("aq", aq)):
            parts[k].append(v)
    cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}
    n_all = len(cat["ts"])
    return TickData(
        ts_ms=cat["ts"].astype(np.int64), price=cat["price"].astype(np.float64),
        qty=cat["qty"].astype(np.float64), is_buyer_maker=cat["ibm"].astype(bool),
        bid=cat["bid"].astype(np.float64), ask=cat["ask"].astype(np.float64),
        bid_qty=cat["bq"].astype(np.float64), ask_qty=cat["aq"].astype(np.float64),
        source=SOURCE_SYNTHETIC, symbol=symbol, bbo="synthetic",
        trade_id=np.arange(1, n_all + 1, dtype=np.int64),
    )


def synthetic_span(start_ms: int | None, end_ms: int | None,
                   default_hours: int | float = DEFAULT_SYNTHETIC_HOURS) -> tuple[int, float]:
    """(start_ms, hours) covering [start_ms, end_ms), aligned to whole hours."""
    if start_ms is None and end_ms is None:
        return DEFAULT_SYNTHETIC_START_MS, default_hours
    if start_ms is None:
        start = (int(end_ms) - int(default_hours * HOUR_MS))  # type: ignore[arg-type]
    else:
        start = int(start_ms)
    start -= start % HOUR_MS
    if end_ms is None:
        return start, default_hours
    hours = max(1, -(-(int(end_ms) - start) // HOUR_MS))
    return start, hours
