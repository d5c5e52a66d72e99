"""Hourly candles from trades, the way Binance builds its 1h klines.

open = first trade at or after the hour start, close = last trade before the
hour end; this is the settlement reference of the Polymarket hourly market
(Up wins when close >= open).
"""
from __future__ import annotations

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.data.ticks import TickData


def candles(ts_ms: np.ndarray, price: np.ndarray, qty: np.ndarray | None = None,
            interval_ms: int = HOUR_MS) -> dict[str, np.ndarray]:
    """OHLCV per interval with at least one trade: open_ms, open, high, low, close, volume, count."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    px = np.asarray(price, dtype=np.float64)
    q = np.zeros(len(ts)) if qty is None else np.asarray(qty, dtype=np.float64)
    if len(ts) == 0:
        z = np.zeros(0)
        return {"open_ms": np.zeros(0, np.int64), "open": z, "high": z, "low": z, "close": z,
                "volume": z, "count": np.zeros(0, np.int64)}
    if np.any(np.diff(ts) < 0):
        o = np.argsort(ts, kind="stable")
        ts, px, q = ts[o], px[o], q[o]
    bucket = ts - ts % interval_ms
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:], [len(ts)]))
    return {
        "open_ms": bucket[starts].astype(np.int64),
        "open": px[starts],
        "high": np.maximum.reduceat(px, starts),
        "low": np.minimum.reduceat(px, starts),
        "close": px[ends - 1],
        "volume": np.add.reduceat(q, starts),
        "count": (ends - starts).astype(np.int64),
    }


def hourly_candles(ticks: TickData) -> dict[str, np.ndarray]:
    """1h OHLCV of a TickData (open = first trade of the hour, close = last)."""
    return candles(ticks.ts_ms, ticks.price, ticks.qty, HOUR_MS)
