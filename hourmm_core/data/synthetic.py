"""Seeded synthetic BTCUSDT trades: a labelled stand-in when no real Binance dumps exist.

This is NOT market data. It exists so tests, the simulator and benchmarks run on
a machine without ../shared/data. Everything produced here carries
``source="synthetic"`` and :func:`hourmm_core.data.load_ticks` logs a loud
WARNING whenever it falls back to it.

Window-invariant: the path is a function of (seed, absolute time) only, so every
process that asks for an overlapping window (replay server, Polymarket simulator,
orchestrator, research) sees the *same* trades, whatever start/hours it asked for.
That is done with an hourly skeleton anchored at ``DEFAULT_SYNTHETIC_START_MS``: the
log price at each hour boundary is a seeded random walk (prefix-stable streams, so
it never depends on the requested window), and each hour is generated from its own
seed as a bridge between its two boundary levels.

Model inside an hour: per-second log-volatility follows a mean-reverting OU around
the hour's annualised level (drawn in [40%, 60%]); trades arrive as a Poisson
process whose rate wanders in ~[5, 20] trades/s; log price is a GBM sampled at the
trade times plus rare Gaussian jumps (about one per ``jump_every_s``), bridged to
the skeleton's next level and rounded to the 0.01 USDT grid. The aggressor side
follows the tick direction (down-tick -> seller aggressive -> buyer is maker); the
BBO is the one-tick spread around the print with lognormal quoted sizes.
Trade ids are ``hour_number * 1_000_000 + k`` (hour_number = ms // 3.6e6), so they
increase across hours and are the same in every window.
"""
from __future__ import annotations

import math

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.data.ticks import SOURCE_SYNTHETIC, TickData

#: 2026-01-22T14:00:00Z, an hour boundary (the guide's example hour) and the skeleton anchor
DEFAULT_SYNTHETIC_START_MS = 1_769_090_400_000
DEFAULT_SYNTHETIC_HOURS = 24
_SECONDS_PER_YEAR = 365.25 * 24 * 3600
_TICK = 0.01
_OFF = 1 << 40  # keeps seed-sequence entropy words non-negative


def _skeleton(seed: int, k0: int, k1: int, s0: float, vol_range: tuple[float, float]
              ) -> tuple[np.ndarray, np.ndarray]:
    """(log level at boundaries k0..k1, base annual vol of hours k0..k1-1); k = hours from the anchor."""
    lo_v, hi_v = vol_range
    hour_s = math.sqrt(3600.0 / _SECONDS_PER_YEAR)

    def stream(sign: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n <= 0:
            return np.zeros(0), np.zeros(0)
        vols = np.random.default_rng([seed % _OFF, 11, sign]).uniform(lo_v, hi_v, n)
        z = np.random.default_rng([seed % _OFF, 12, sign]).standard_normal(n)
        j = np.random.default_rng([seed % _OFF, 13, sign]).standard_normal(n)
        ju = np.random.default_rng([seed % _OFF, 14, sign]).random(n)
        inc = vols * hour_s * z + np.where(ju < 0.3, 0.002 * j, 0.0)
        return vols, inc

    n_fwd = max(0, k1)
    n_bwd = max(0, -k0)
    v_f, i_f = stream(1, n_fwd)      # hours 0, 1, ... (forward from the anchor)
    v_b, i_b = stream(2, n_bwd)      # hours -1, -2, ... (backward)
    # level at boundary k: log s0 + sum of increments between 0 and k
    lv = {}
    lv[0] = 0.0
    cum_f = np.concatenate(([0.0], np.cumsum(i_f)))
    cum_b = np.concatenate(([0.0], np.cumsum(i_b)))
    levels = np.empty(k1 - k0 + 1)
    vols = np.empty(k1 - k0)
    for idx, k in enumerate(range(k0, k1 + 1)):
        levels[idx] = math.log(s0) + (cum_f[k] if k >= 0 else -cum_b[-k])
        if k < k1:
            vols[idx] = v_f[k] if k >= 0 else v_b[-k - 1]
    return levels, vols


def _hour(seed: int, k: int, hour_ms: int, log_a: float, log_b: float, base_vol: float,
          vol_range: tuple[float, float], rate_range: tuple[float, float], jump_every_s: float,
          jump_sd: float, prev_price: float) -> dict[str, np.ndarray] | None:
    rng = np.random.default_rng([seed % _OFF, 21, k + _OFF])
    lo_v, hi_v = vol_range
    lo_r, hi_r = rate_range
    n_sec = 3600
    z_v = rng.standard_normal(n_sec)
    z_r = rng.standard_normal(n_sec)
    lv = np.empty(n_sec)
    rx = np.empty(n_sec)
    target = math.log(base_vol)
    log_vol, rate_x = target, float(rng.normal(0.0, 0.5))
    a_v, s_v, a_r, s_r = 1.0 / 600.0, 0.02, 1.0 / 300.0, 0.06
    for i in range(n_sec):  # OU states (cheap: 3600 steps per hour)
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
        return None
    sec = np.repeat(np.arange(n_sec), counts)
    t_ms = np.sort((sec * 1000 + np.floor(rng.random(n) * 1000)).astype(np.int64))
    sec = t_ms // 1000
    prev_t = np.concatenate(([0], t_ms[:-1]))
    dt_s = np.maximum((t_ms - prev_t) / 1000.0, 1e-4)
    sig = sig_s[sec]
    inc = sig * np.sqrt(dt_s) * rng.standard_normal(n)
    jumps = rng.random(n) < dt_s / jump_every_s
    inc = inc + jumps * rng.normal(0.0, jump_sd, n)
    raw = np.cumsum(inc)
    # bridge: the path ends the hour (t = 3600 s) at the skeleton's next level
    end_raw = raw[-1] + sig[-1] * math.sqrt(max(3600.0 - t_ms[-1] / 1000.0, 0.0)) * float(rng.standard_normal())
    path = log_a + raw - (t_ms / 3_600_000.0) * (end_raw - (log_b - log_a))
    price = np.round(np.round(np.exp(path) / _TICK) * _TICK, 2)
    prev_p = np.concatenate(([prev_price], price[:-1]))
    ibm = np.where(price < prev_p, True, np.where(price > prev_p, False, rng.random(n) < 0.5))
    qty = np.maximum(np.round(np.exp(rng.normal(math.log(0.01), 1.2, n)), 5), 0.00001)
    return {
        "ts": hour_ms + t_ms, "price": price, "qty": qty, "ibm": ibm,
        "bid": np.round(np.where(ibm, price, price - _TICK), 2),
        "ask": np.round(np.where(ibm, price + _TICK, price), 2),
        "bq": np.round(np.exp(rng.normal(math.log(1.5), 0.8, n)), 5),
        "aq": np.round(np.exp(rng.normal(math.log(1.5), 0.8, n)), 5),
        "id": (hour_ms // HOUR_MS) * 1_000_000 + np.arange(1, n + 1, dtype=np.int64),
    }


def synthetic_ticks(start_ms: int = DEFAULT_SYNTHETIC_START_MS, hours: int | float = DEFAULT_SYNTHETIC_HOURS,
                    seed: int = 7, s0: float = 50_000.0, vol_range: tuple[float, float] = (0.40, 0.60),
                    rate_range: tuple[float, float] = (5.0, 20.0), jump_every_s: float = 7200.0,
                    jump_sd: float = 0.002, symbol: str = "BTCUSDT") -> TickData:
    """Seeded synthetic trades covering whole UTC hours from ``start_ms`` (aligned down) for ``hours``.

    Same seed (and model knobs) -> same trades at the same times in every window.
    ``s0`` is the price at the anchor 2026-01-22T14:00:00Z.
    """
    if hours is None:
        hours = DEFAULT_SYNTHETIC_HOURS
    if hours <= 0:
        raise ValueError("hours must be > 0")
    if s0 <= 0:
        raise ValueError("s0 must be > 0")
    start = int(start_ms) - int(start_ms) % HOUR_MS
    n_hours = max(1, int(math.ceil(hours)))
    k0 = (start - DEFAULT_SYNTHETIC_START_MS) // HOUR_MS
    levels, vols = _skeleton(seed, k0, k0 + n_hours, s0, vol_range)
    parts: dict[str, list[np.ndarray]] = {}
    prev_price = round(math.exp(levels[0]), 2)
    for i in range(n_hours):
        h = _hour(seed, k0 + i, start + i * HOUR_MS, float(levels[i]), float(levels[i + 1]), float(vols[i]),
                  vol_range, rate_range, jump_every_s, jump_sd, prev_price)
        if h is None:
            continue
        prev_price = float(h["price"][-1])
        for key, v in h.items():
            parts.setdefault(key, []).append(v)
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    if not cat:
        z = np.zeros(0)
        cat = {"ts": np.zeros(0, np.int64), "price": z, "qty": z, "ibm": np.zeros(0, bool), "bid": z,
               "ask": z, "bq": z, "aq": z, "id": np.zeros(0, np.int64)}
    ticks = TickData(
        ts_ms=cat["ts"].astype(np.int64), price=cat["price"].astype(np.float64),
        qty=cat["qty"].astype(np.float64), is_buyer_maker=cat["ibm"].astype(bool),
        bid=cat["bid"].astype(np.float64), ask=cat["ask"].astype(np.float64),
        bid_qty=cat["bq"].astype(np.float64), ask_qty=cat["aq"].astype(np.float64),
        source=SOURCE_SYNTHETIC, symbol=symbol, bbo="synthetic", trade_id=cat["id"].astype(np.int64),
    )
    if hours != n_hours:
        ticks = ticks.slice_time(None, start + int(hours * HOUR_MS))
    return ticks


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
