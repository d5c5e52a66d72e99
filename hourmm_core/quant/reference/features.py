"""Reference (pure Python) twin of ``hourmm_core.quant.features``; read that docstring for the why.

Same numbers as the compiled module: returns are differences of log prices, the price at
or before ``t`` is found by bisection instead of the compiled per-window pointers (same
result, easier to read).
"""
from __future__ import annotations

import bisect
import math

import numpy as np

FEATURE_NAMES = ("ret_1s", "ret_10s", "ret_1m", "ret_5m", "ret_hour", "rv_hour", "bv_hour")
WINDOWS_MS = (1_000, 10_000, 60_000, 300_000)


class ReturnFeatures:
    """Log returns over fixed windows, since the hour's open, and rv/bv on a 1 s grid."""

    def __init__(self, hour_ms: int = 3_600_000, grid_ms: int = 1000) -> None:
        if hour_ms <= 0 or grid_ms <= 0:
            raise ValueError(f"ReturnFeatures: hour_ms and grid_ms must be > 0, got {hour_ms}, {grid_ms}")
        self.hour_ms, self.grid_ms = int(hour_ms), int(grid_ms)
        self.reset()

    def reset(self) -> None:
        self.h_ts: list[int] = []       # one entry per distinct ms, oldest first
        self.h_lp: list[float] = []     # log price of the last tick at that ms
        self.started = False
        self.last_ts = 0
        self.last_lp = math.nan
        self.hour_start = 0
        self.open_price = math.nan
        self.open_lp = math.nan
        self.have_open = False
        self.gbucket = 0
        self.ganchor = math.nan
        self.prev_abs = 0.0
        self.rv = 0.0
        self.bv = 0.0
        self.out = [math.nan] * 7
        self.n_bad = 0

    def _start_hour(self, hour_start: int, open_price: float, open_lp: float) -> None:
        self.hour_start, self.open_price, self.open_lp, self.have_open = hour_start, open_price, open_lp, True
        self.gbucket = hour_start // self.grid_ms
        self.ganchor = self.last_lp = open_lp
        self.prev_abs = self.rv = self.bv = 0.0

    def set_hour_open(self, hour_start_ms: int, open_price: float) -> None:
        if not (math.isfinite(open_price) and open_price > 0.0):
            self.n_bad += 1
            raise ValueError(f"ReturnFeatures.set_hour_open: bad open price {open_price!r}")
        if self.have_open and hour_start_ms == self.hour_start:
            self.open_price, self.open_lp = open_price, math.log(open_price)
        else:
            self._start_hour(hour_start_ms, open_price, math.log(open_price))
            if self.started and self.last_ts >= hour_start_ms:
                self.last_lp = self.h_lp[-1]
        if self.started:
            self.out[4] = self.h_lp[-1] - self.open_lp

    def update(self, ts_ms: int, price: float) -> bool:
        if not (math.isfinite(price) and price > 0.0) or (self.started and ts_ms < self.last_ts):
            self.n_bad += 1
            return False
        lp = math.log(price)
        hs = ts_ms - ts_ms % self.hour_ms
        if not self.have_open or hs > self.hour_start:
            self._start_hour(hs, price, lp)
        b = ts_ms // self.grid_ms
        if b > self.gbucket:                      # crossed grid boundaries: one return, then flat
            r = self.last_lp - self.ganchor
            self.rv += r * r
            self.bv += abs(r) * self.prev_abs
            self.prev_abs = abs(r) if b == self.gbucket + 1 else 0.0
            self.ganchor = self.last_lp
            self.gbucket = b
        self.last_lp = lp
        if self.started and ts_ms == self.last_ts:
            self.h_lp[-1] = lp
        else:
            self.h_ts.append(ts_ms)
            self.h_lp.append(lp)
        self.started = True
        self.last_ts = ts_ms
        for i, w in enumerate(WINDOWS_MS):
            j = bisect.bisect_right(self.h_ts, ts_ms - w) - 1     # last entry at or before ts - w
            self.out[i] = lp - self.h_lp[j] if j >= 0 else math.nan
        # drop what no window can need any more (keep the last entry at or before ts - 5 min)
        j = bisect.bisect_right(self.h_ts, ts_ms - WINDOWS_MS[-1]) - 1
        if j > 1024:
            del self.h_ts[:j]
            del self.h_lp[:j]
        self.out[4] = lp - self.open_lp
        self.out[5] = self.rv
        self.out[6] = 0.5 * math.pi * self.bv
        return True

    ret_1s = property(lambda self: self.out[0])
    ret_10s = property(lambda self: self.out[1])
    ret_1m = property(lambda self: self.out[2])
    ret_5m = property(lambda self: self.out[3])
    ret_hour = property(lambda self: self.out[4])
    rv_hour = property(lambda self: self.out[5])
    bv_hour = property(lambda self: self.out[6])

    @property
    def hour_start_ms(self) -> int | None:
        return self.hour_start if self.have_open else None

    def as_dict(self) -> dict[str, float]:
        return dict(zip(FEATURE_NAMES, self.out))

    def values(self) -> np.ndarray:
        return np.array(self.out, dtype=np.float64)


def return_features_batch(ts_ms, price, hour_ms: int = 3_600_000, grid_ms: int = 1000) -> np.ndarray:
    ts = np.asarray(ts_ms, dtype=np.int64)
    px = np.asarray(price, dtype=np.float64)
    if ts.shape != px.shape:
        raise ValueError(f"return_features_batch: ts_ms has {ts.shape[0]} rows, price has {px.shape[0]}")
    rf = ReturnFeatures(hour_ms, grid_ms)
    out = np.empty((len(ts), 7), dtype=np.float64)
    for j in range(len(ts)):
        rf.update(int(ts[j]), float(px[j]))
        out[j] = rf.out
    return out
