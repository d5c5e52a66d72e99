"""Reference (pure Python) twin of ``hourmm_core.quant.vol``; read that docstring for the why."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class EwmaVol:
    """Multi-half-life, grid-sampled, bias-corrected EWMA of squared log returns."""

    def __init__(self, halflives_s: Sequence[float] = (30.0, 120.0, 600.0), sample_ms: int = 1000,
                 var_floor: float = 1e-12) -> None:
        hl = [float(h) for h in halflives_s]
        if not 1 <= len(hl) <= 16:
            raise ValueError(f"EwmaVol: need 1..16 half-lives, got {len(hl)}")
        for h in hl:
            if not (0.0 < h < math.inf):
                raise ValueError(f"EwmaVol: half-life must be a positive finite number of seconds, got {h!r}")
        if sample_ms <= 0:
            raise ValueError(f"EwmaVol: sample_ms must be > 0, got {sample_ms}")
        if not (0.0 <= var_floor < math.inf):
            raise ValueError(f"EwmaVol: var_floor must be >= 0 and finite, got {var_floor!r}")
        self.halflives_s = tuple(hl)
        self.sample_ms = int(sample_ms)
        self.sample_s = self.sample_ms / 1000.0
        self.var_floor = float(var_floor)
        self.alpha1 = [math.exp(-math.log(2) * self.sample_s / h) for h in hl]
        self.reset()

    def reset(self) -> None:
        k = len(self.halflives_s)
        self.num = [0.0] * k
        self.wsum = [0.0] * k
        self.sig = [math.sqrt(self.var_floor)] * k
        self.started = False
        self.bucket = 0
        self.last_ts = 0
        self.last_price = 0.0
        self.anchor = 0.0
        self.sampled_s = 0.0
        self.n_samples = 0
        self.n_bad = 0

    def update(self, ts_ms: int, price: float) -> bool:
        """Feed one tick; False (counted in n_bad) for a bad price or time going backwards."""
        if not (math.isfinite(price) and price > 0.0):
            self.n_bad += 1
            return False
        if not self.started:
            self.started = True
            self.bucket = ts_ms // self.sample_ms
            self.last_ts, self.last_price, self.anchor = ts_ms, price, price
            return True
        if ts_ms < self.last_ts:
            self.n_bad += 1
            return False
        b = ts_ms // self.sample_ms
        if b > self.bucket:
            r = math.log(self.last_price / self.anchor)
            if b == self.bucket + 1:
                dt = self.sample_s
                alphas = self.alpha1
            else:
                dt = (b - self.bucket) * self.sample_s
                alphas = [math.exp(-math.log(2) * dt / h) for h in self.halflives_s]
            obs = r * r / dt
            for i, a in enumerate(alphas):
                self.num[i] = a * self.num[i] + (1.0 - a) * obs
                self.wsum[i] = a * self.wsum[i] + (1.0 - a)
                v = self.num[i] / self.wsum[i]
                self.sig[i] = math.sqrt(v if v > self.var_floor else self.var_floor)
            self.sampled_s += dt
            self.n_samples += 1
            self.anchor = self.last_price
            self.bucket = b
        self.last_ts, self.last_price = ts_ms, price
        return True

    @property
    def sigma(self) -> float:
        return self.sig[0]

    def sigma_at(self, i: int) -> float:
        return self.sig[i]

    def sigmas(self) -> np.ndarray:
        return np.array(self.sig, dtype=np.float64)

    @property
    def ready(self) -> bool:
        return self.sampled_s >= self.halflives_s[0]


def ewma_vol_batch(ts_ms, price, halflives_s=(30.0, 120.0, 600.0), sample_ms: int = 1000,
                   var_floor: float = 1e-12) -> np.ndarray:
    """sigma after every tick, shape (n, k)."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    px = np.asarray(price, dtype=np.float64)
    if ts.shape != px.shape:
        raise ValueError(f"ewma_vol_batch: ts_ms has {ts.shape[0]} rows, price has {px.shape[0]}")
    ev = EwmaVol(halflives_s, sample_ms, var_floor)
    out = np.empty((len(ts), len(ev.halflives_s)), dtype=np.float64)
    for j in range(len(ts)):
        ev.update(int(ts[j]), float(px[j]))
        out[j] = ev.sig
    return out
