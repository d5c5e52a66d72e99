"""Reference (pure Python) twin of ``hourmm_core.quant.pricer``; read that docstring for the why."""
from __future__ import annotations

import math

import numpy as np

_FPMIN = 1e-300
_EPS = 1e-16
_MAXIT = 2000


def _betacf(a: float, b: float, x: float) -> float:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < _FPMIN:
        d = _FPMIN
    d = 1.0 / d
    h = d
    for m in range(1, _MAXIT + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = 1.0 + aa / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = 1.0 + aa / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        de = d * c
        h *= de
        if abs(de - 1.0) < _EPS:
            break
    return h


def _incbeta(a: float, b: float, x: float, y: float) -> float:
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    bt = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y))
    if x < (a + 1.0) / (a + b + 2.0):
        return bt * _betacf(a, b, x) / a
    return 1.0 - bt * _betacf(b, a, y) / b


def student_t_cdf(t: float, nu: float) -> float:
    """Student-t CDF (unscaled) via the regularized incomplete beta."""
    if math.isnan(t) or not (nu > 0.0):
        return math.nan
    if nu > 1e7:
        return 0.5 * math.erfc(-t * math.sqrt(0.5))
    if t == 0.0:
        return 0.5
    t2 = t * t
    if not math.isfinite(t2):
        return 1.0 if t > 0.0 else 0.0
    x = nu / (nu + t2)
    y = t2 / (nu + t2)
    tail = 0.5 * _incbeta(0.5 * nu, 0.5, x, y)
    return 1.0 - tail if t > 0.0 else tail


def _digital(S: float, K: float, tau_s: float, sigma: float, nu: float, p_min: float) -> float:
    if not (math.isfinite(S) and S > 0.0 and math.isfinite(K) and K > 0.0) or math.isnan(tau_s) \
            or math.isnan(sigma):
        return math.nan
    if nu != 0.0 and not (nu > 2.0):
        return math.nan
    if S == K:
        p = 0.5
    elif tau_s <= 0.0 or sigma <= 0.0:
        p = 1.0 if S >= K else 0.0
    else:
        z = math.log(S / K) / (sigma * math.sqrt(tau_s))
        if nu == 0.0:
            p = 0.5 * math.erfc(-z * math.sqrt(0.5))
        else:
            p = student_t_cdf(z / math.sqrt((nu - 2.0) / nu), nu)
    return min(max(p, p_min), 1.0 - p_min)


def _digital_x(x: float, tau_s: float, sigma: float, nu: float, p_min: float) -> float:
    """digital_prob from x = ln S - ln K (used by the fused paths)."""
    if math.isnan(x) or math.isnan(tau_s) or math.isnan(sigma) or (nu != 0.0 and not (nu > 2.0)):
        return math.nan
    if x == 0.0:
        p = 0.5
    elif tau_s <= 0.0 or sigma <= 0.0:
        p = 1.0 if x > 0.0 else 0.0
    else:
        z = x / (sigma * math.sqrt(tau_s))
        if nu == 0.0:
            p = 0.5 * math.erfc(-z * math.sqrt(0.5))
        else:
            p = student_t_cdf(z / math.sqrt((nu - 2.0) / nu), nu)
    return min(max(p, p_min), 1.0 - p_min)


def _check_params(nu: float, p_min: float) -> None:
    if not (nu == 0.0 or (nu > 2.0 and math.isfinite(nu))):
        raise ValueError(f"pricer: nu must be 0 (normal) or > 2 (variance-matched Student-t), got {nu!r}")
    if not (0.0 <= p_min < 0.5):
        raise ValueError(f"pricer: p_min must be in [0, 0.5), got {p_min!r}")


def digital_prob(S: float, K: float, tau_s: float, sigma: float, nu: float = 0.0, p_min: float = 0.001) -> float:
    """P(close >= open); ValueError on bad input."""
    _check_params(nu, p_min)
    p = _digital(float(S), float(K), float(tau_s), float(sigma), float(nu), float(p_min))
    if math.isnan(p):
        raise ValueError(f"digital_prob: bad input S={S!r} K={K!r} tau_s={tau_s!r} sigma={sigma!r}")
    return p


def fair_prob_batch(S, K, tau_s, sigma, nu: float = 0.0, p_min: float = 0.001) -> np.ndarray:
    _check_params(nu, p_min)
    arrs = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (S, K, tau_s, sigma)]
    n = arrs[0].shape[0]
    if any(a.shape[0] != n for a in arrs):
        raise ValueError("fair_prob_batch: arrays differ in length")
    return np.array([_digital(float(a), float(b), float(c), float(d), nu, p_min)
                     for a, b, c, d in zip(*arrs)], dtype=np.float64)


class FairPricer:
    """p and p_unc = |p(sigma) - p(sigma_alt)| with tau = max(hour_end - ts, 0) / 1000."""

    def __init__(self, nu: float = 0.0, p_min: float = 0.001) -> None:
        _check_params(nu, p_min)
        self.nu, self.p_min = float(nu), float(p_min)
        self.p = self.p_alt = self.p_unc = self.tau_s = math.nan
        self.n_bad = 0

    def update(self, ts_ms: int, S: float, K: float, hour_end_ms: int, sigma: float, sigma_alt: float) -> float:
        self.tau_s = max(hour_end_ms - ts_ms, 0) / 1000.0
        self.p = _digital(S, K, self.tau_s, sigma, self.nu, self.p_min)
        self.p_alt = _digital(S, K, self.tau_s, sigma_alt, self.nu, self.p_min)
        if math.isnan(self.p) or math.isnan(self.p_alt):
            self.n_bad += 1
            self.p = self.p_unc = math.nan
            return math.nan
        self.p_unc = abs(self.p - self.p_alt)
        return self.p


def price_path_batch(ts_ms, price, halflives_s=(30.0, 120.0, 600.0), sample_ms: int = 1000,
                     var_floor: float = 1e-12, nu: float = 0.0, p_min: float = 0.001, sigma_index: int = 0,
                     hour_ms: int = 3_600_000, out=None):
    """(sigma[n, k], features[n, 7], p[n]): vol + features + price after every tick.

    ``out``: optional preallocated (sigma, features, p) arrays to fill, as in the compiled twin.
    """
    from hourmm_core.quant.reference.features import ReturnFeatures
    from hourmm_core.quant.reference.vol import EwmaVol
    _check_params(nu, p_min)
    ts = np.asarray(ts_ms, dtype=np.int64)
    px = np.asarray(price, dtype=np.float64)
    if ts.shape != px.shape:
        raise ValueError(f"price_path_batch: ts_ms has {ts.shape[0]} rows, price has {px.shape[0]}")
    ev, rf = EwmaVol(halflives_s, sample_ms, var_floor), ReturnFeatures(hour_ms, 1000)
    if not 0 <= sigma_index < len(ev.halflives_s):
        raise ValueError(f"price_path_batch: sigma_index {sigma_index} out of range")
    if out is None:
        sig = np.empty((len(ts), len(ev.halflives_s)))
        feat = np.empty((len(ts), 7))
        p = np.empty(len(ts))
    else:
        sig, feat, p = out
        for a, shape in ((sig, (len(ts), len(ev.halflives_s))), (feat, (len(ts), 7)), (p, (len(ts),))):
            if not (isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape == shape):
                raise ValueError(f"price_path_batch: out arrays must be float64 of shape {shape}")
    last_p = math.nan
    for j in range(len(ts)):
        t, x = int(ts[j]), float(px[j])
        ev.update(t, x)
        if rf.update(t, x):
            hour_end = rf.hour_start - rf.hour_start % hour_ms + hour_ms
            last_p = _digital_x(rf.last_lp - rf.open_lp, (hour_end - t) / 1000.0, ev.sig[sigma_index], nu, p_min)
        sig[j], feat[j], p[j] = ev.sig, rf.out, last_p
    return sig, feat, p


class TickPricer:
    """EwmaVol + ReturnFeatures + fair price per tick (twin of the compiled TickPricer)."""

    def __init__(self, halflives_s=(30.0, 120.0, 600.0), sample_ms: int = 1000, var_floor: float = 1e-12,
                 nu: float = 0.0, p_min: float = 0.001, sigma_index: int = 0, alt_index: int = -1,
                 hour_ms: int = 3_600_000) -> None:
        from hourmm_core.quant.reference.features import ReturnFeatures
        from hourmm_core.quant.reference.vol import EwmaVol
        _check_params(nu, p_min)
        self.vol = EwmaVol(halflives_s, sample_ms, var_floor)
        self.features = ReturnFeatures(hour_ms, 1000)
        k = len(self.vol.halflives_s)
        if alt_index < 0:
            alt_index += k
        if not (0 <= sigma_index < k and 0 <= alt_index < k):
            raise ValueError(f"TickPricer: sigma_index/alt_index out of range 0..{k - 1}")
        self.nu, self.p_min, self.sigma_index, self.alt_index = nu, p_min, sigma_index, alt_index
        self.hour_ms = hour_ms
        self.p = self.p_unc = self.tau_s = math.nan
        self.n_bad = 0

    def set_hour_open(self, hour_start_ms: int, open_price: float) -> None:
        self.features.set_hour_open(hour_start_ms, open_price)

    def update(self, ts_ms: int, price: float, S: float = math.nan) -> float:
        self.vol.update(ts_ms, price)
        if not self.features.update(ts_ms, price):
            self.n_bad += 1
            return math.nan
        if math.isnan(S):
            x = self.features.last_lp - self.features.open_lp
        elif math.isfinite(S) and S > 0.0:
            x = math.log(S / self.features.open_price)
        else:
            x = math.nan
        hs = self.features.hour_start
        self.tau_s = (hs - hs % self.hour_ms + self.hour_ms - ts_ms) / 1000.0
        self.p = _digital_x(x, self.tau_s, self.vol.sig[self.sigma_index], self.nu, self.p_min)
        pa = _digital_x(x, self.tau_s, self.vol.sig[self.alt_index], self.nu, self.p_min)
        if math.isnan(self.p) or math.isnan(pa):
            self.n_bad += 1
            self.p = self.p_unc = math.nan
            return math.nan
        self.p_unc = abs(self.p - pa)
        return self.p

    @property
    def sigma(self) -> float:
        return self.vol.sig[self.sigma_index]

    @property
    def ready(self) -> bool:
        return self.vol.ready and self.features.have_open


# --------------------------------------------------------------------------- rest-of-hour model
# The adaptive scale's grid and prior: the SAME numbers as the compiled module (numpy-built there too).
SCALE_GRID = np.exp(np.linspace(np.log(0.35), np.log(2.0), 71))
SCALE_C0 = 1.0
_SGRID = [float(v) for v in SCALE_GRID]
_LSGRID = [float(v) for v in np.log(SCALE_GRID)]


def _check_scale_params(scale_window_h: int, scale_prior_h: float) -> None:
    if not 0 <= int(scale_window_h) <= 24 * 366:
        raise ValueError(f"scale_window_h must be 0 (fixed var_scale) .. {24 * 366} hours, got {scale_window_h!r}")
    if not (scale_prior_h >= 0.0 and math.isfinite(scale_prior_h)):
        raise ValueError(f"scale_prior_h must be >= 0 pseudo-hours, got {scale_prior_h!r}")


def _kline_arrays(open_ms, open_, close, what: str) -> tuple[list[int], list[float], list[float]]:
    t = [int(v) for v in np.asarray(open_ms, dtype=np.int64).reshape(-1)]
    o = [float(v) for v in np.asarray(open_, dtype=np.float64).reshape(-1)]
    c = [float(v) for v in np.asarray(close, dtype=np.float64).reshape(-1)]
    if not (len(o) == len(t) == len(c)):
        raise ValueError(f"{what}: open_ms, open, close differ in length ({len(t)}, {len(o)}, {len(c)})")
    if not all(math.isfinite(v) and v > 0 for v in o + c):
        raise ValueError(f"{what}: kline prices must be finite and > 0")
    if any(b // 60000 <= a // 60000 for a, b in zip(t, t[1:])):
        raise ValueError(f"{what}: kline minutes must be strictly increasing")
    return t, o, c


def _season(season) -> list[float]:
    s = [float(v) for v in np.asarray(season, dtype=np.float64).reshape(-1)]
    if len(s) != 1440:
        raise ValueError(f"season must have 1440 entries (one per UTC minute of the day), got {len(s)}")
    if not all(math.isfinite(v) and v > 0 for v in s):
        raise ValueError("season factors must be finite and > 0")
    return s


def _check_minute_params(halflife_min: float, var_prior: float, var_scale: float) -> None:
    for name, v in (("halflife_min", halflife_min), ("var_prior", var_prior), ("var_scale", var_scale)):
        if not (v > 0.0 and math.isfinite(v)):
            raise ValueError(f"{name} must be > 0, got {v!r}")


class MinutePricer:
    """Twin of the compiled ``MinutePricer`` (see ``hourmm_core.quant.pricer`` for the model)."""

    def __init__(self, season, halflife_min: float = 60.0, var_prior: float = 1e-7, var_scale: float = 1.0,
                 nu: float = 0.0, p_min: float = 0.001, scale_window_h: int = 0, scale_prior_h: float = 72.0) -> None:
        _check_params(nu, p_min)
        _check_minute_params(halflife_min, var_prior, var_scale)
        _check_scale_params(scale_window_h, scale_prior_h)
        self.scale_window_h, self.prior_h = int(scale_window_h), float(scale_prior_h)
        self.run = 0
        self.bar_open = self.hour_K = math.nan
        self.pts_x, self.pts_v = [0.0] * 59, [0.0] * 59
        self.ring = [[0.0] * 71 for _ in range(self.scale_window_h)]
        self.ring_has = [0.0] * self.scale_window_h
        self.scale_hours = 0.0
        self.hour_closes = 0
        if self.scale_window_h > 0:
            var_scale = SCALE_C0
        self.season_ = _season(season)
        self.cum = [0.0]
        for v in self.season_:
            self.cum.append(self.cum[-1] + v)
        self.halflife_min = halflife_min
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife_min)
        self.var_prior, self.var_scale, self.nu, self.p_min = var_prior, var_scale, nu, p_min
        self.num, self.den = 0.5 * var_prior, 0.5      # the prior, worth one half-life of data
        self.bar = 0
        self.bar_close = self.prev_close = math.nan
        self.have_bar = self.have_prev = self.bar_traded = False
        self.n_returns = self.n_bad = 0
        self.p = self.var_rest = self.tau_s = math.nan

    @property
    def level_var(self) -> float:
        return self.num / self.den if self.den > 0.0 else self.var_prior

    def _close_bar(self) -> None:
        k = self.bar % 60
        if not self.bar_traded:          # a minute without trades: missing data, weight to the prior
            self.have_prev = False
            self.run = 0
            self.num = (1.0 - self.alpha) * self.num + self.alpha * self.var_prior
            self.den = (1.0 - self.alpha) * self.den + self.alpha
        else:
            self.bar_traded = False
            self.run += 1
            if self.have_prev:
                r = math.log(self.bar_close / self.prev_close)
                d = r * r / self.season_[self.bar % 1440]
                self.num = (1.0 - self.alpha) * self.num + self.alpha * d
                self.den = (1.0 - self.alpha) * self.den + self.alpha
                self.n_returns += 1
            self.prev_close = self.bar_close
            self.have_prev = True
            if self.scale_window_h > 0:
                if k == 0:
                    self.hour_K = self.bar_open
                if k < 59:
                    c = (self.bar + 1) % 1440
                    self.pts_x[k] = math.log(self.bar_close / self.hour_K)
                    self.pts_v[k] = self.level_var * (self.cum[c - c % 60 + 60] - self.cum[c])
        if self.scale_window_h > 0 and k == 59:
            self._close_hour(self.bar // 60, self.run >= 120)

    def _close_hour(self, h: int, ok: bool) -> None:
        W = self.scale_window_h
        slot = h % W
        if ok:
            y = 1.0 if self.bar_close >= self.hour_K else 0.0
            row = []
            for g in range(71):
                s = 0.0
                for m in range(59):
                    v = _SGRID[g] * self.pts_v[m]
                    p = _digital_x(self.pts_x[m], 1.0, math.sqrt(v), self.nu, self.p_min) if v > 0.0 else \
                        _digital_x(self.pts_x[m], 0.0, 1.0, self.nu, self.p_min)
                    p = min(max(p, 1e-6), 1.0 - 1e-6)
                    s += -(y * math.log(p) + (1.0 - y) * math.log(1.0 - p))
                row.append(s)
            self.ring[slot] = row
            self.ring_has[slot] = 1.0
        else:
            self.ring[slot] = [0.0] * 71
            self.ring_has[slot] = 0.0
        win = [0.0] * 71
        n = 0.0
        for j in range(1, W + 1):
            sl = (h + j) % W
            n += self.ring_has[sl]
            r = self.ring[sl]
            for g in range(71):
                win[g] += r[g]
        self.scale_hours = n
        self.hour_closes += 1
        if n > 0.0:
            gi = min(range(71), key=lambda g: (win[g], g))
            self.var_scale = math.exp((n * _LSGRID[gi] + self.prior_h * math.log(SCALE_C0)) / (n + self.prior_h))
        else:
            self.var_scale = SCALE_C0

    def _feed_kline(self, open_ms: int, op: float, cl: float, until_ms: int) -> None:
        self.on_trade(open_ms, op)
        self.on_trade(open_ms + 59999, cl)
        self.advance(min(open_ms + 60000, until_ms))

    def warm_klines(self, open_ms, open_, close, until_ms: int = 2 ** 63 - 1) -> int:
        t, o, c = _kline_arrays(open_ms, open_, close, "warm_klines")
        if t and self.have_bar and t[0] // 60000 < self.bar:
            raise ValueError("warm_klines: the klines start before the current bar (time never goes backwards)")
        for i in range(len(t)):
            self._feed_kline(t[i], o[i], c[i], until_ms)
        return len(t)

    def advance(self, ts_ms: int) -> None:
        b = ts_ms // 60000
        if not self.have_bar:
            return
        while self.bar < b:
            self._close_bar()
            self.bar += 1

    def on_trade(self, ts_ms: int, price: float) -> bool:
        if not (math.isfinite(price) and price > 0.0):
            self.n_bad += 1
            return False
        b = ts_ms // 60000
        if not self.have_bar:
            self.bar, self.have_bar = b, True
        elif b > self.bar:
            self.advance(ts_ms)
        if not self.bar_traded:
            self.bar_open = price
        self.bar_close = price
        self.bar_traded = True
        return True

    def update(self, ts_ms: int, price: float, K: float, hour_end_ms: int) -> float:
        if not self.on_trade(ts_ms, price):
            return math.nan
        return self.price(ts_ms, price, K, hour_end_ms)

    def level_at(self, ts_ms: int) -> float:
        """The level at ts_ms with the current bar's return counted provisionally once it has ended."""
        if self.have_bar and self.bar_traded and self.have_prev and ts_ms // 60000 > self.bar:
            r = math.log(self.bar_close / self.prev_close)
            return ((1.0 - self.alpha) * self.num + self.alpha * r * r / self.season_[self.bar % 1440]) \
                / ((1.0 - self.alpha) * self.den + self.alpha)
        return self.level_var

    def rest_var(self, ts_ms: int, hour_end_ms: int) -> float:
        if hour_end_ms - ts_ms <= 0:
            return 0.0
        b = ts_ms // 60000
        bend = (hour_end_ms - 1) // 60000 + 1
        c = b % 1440
        f = ((b + 1) * 60000 - ts_ms) / 60000.0
        if bend - b > 1440:
            return math.nan
        e = c + (bend - b)
        if e <= 1440:
            rest = self.cum[e] - self.cum[c + 1]
        else:
            rest = self.cum[1440] - self.cum[c + 1] + self.cum[e - 1440]
        return self.var_scale * self.level_at(ts_ms) * (f * self.season_[c] + rest)

    def price(self, ts_ms: int, S: float, K: float, hour_end_ms: int) -> float:
        v = self.rest_var(ts_ms, hour_end_ms)
        self.var_rest = v
        self.tau_s = (hour_end_ms - ts_ms) / 1000.0 if hour_end_ms > ts_ms else 0.0
        if not (math.isfinite(S) and S > 0.0 and math.isfinite(K) and K > 0.0) or math.isnan(v):
            self.n_bad += 1
            self.p = math.nan
            return math.nan
        x = math.log(S / K)
        self.p = _digital_x(x, 1.0, math.sqrt(v), self.nu, self.p_min) if v > 0.0 else \
            _digital_x(x, 0.0, 1.0, self.nu, self.p_min)
        return self.p

    @property
    def sigma(self) -> float:
        if self.tau_s > 0.0 and self.var_rest >= 0.0:
            return math.sqrt(self.var_rest / self.tau_s)
        return math.nan


def minute_level_batch(open_ms, close, season, halflife_min: float = 60.0, var_prior: float = 1e-7) -> np.ndarray:
    """Twin of the compiled ``minute_level_batch``."""
    _check_minute_params(halflife_min, var_prior, 1.0)
    s = _season(season)
    t = [int(v) for v in np.asarray(open_ms, dtype=np.int64)]
    c = [float(v) for v in np.asarray(close, dtype=np.float64)]
    if len(c) != len(t):
        raise ValueError(f"minute_level_batch: open_ms has {len(t)} rows, close has {len(c)}")
    a = 1.0 - 0.5 ** (1.0 / halflife_min)
    num, den = 0.5 * var_prior, 0.5
    out = np.empty(len(t))
    bprev = 0
    for i in range(len(t)):
        if not (math.isfinite(c[i]) and c[i] > 0.0):
            raise ValueError("minute_level_batch: closes must be finite > 0 and open times strictly increasing")
        b = t[i] // 60000
        if i > 0:
            if b <= bprev:
                raise ValueError("minute_level_batch: closes must be finite > 0 and open times strictly increasing")
            gap = b - bprev - 1
            for _ in range(gap):
                num = (1.0 - a) * num + a * var_prior
                den = (1.0 - a) * den + a
            if gap == 0:
                r = math.log(c[i] / c[i - 1])
                num = (1.0 - a) * num + a * r * r / s[b % 1440]
                den = (1.0 - a) * den + a
        out[i] = num / den if den > 0.0 else var_prior
        bprev = b
    return out


def minute_prob_batch(S, K, ts_ms, hour_end_ms, level, season, var_scale: float = 1.0, nu: float = 0.0,
                      p_min: float = 0.001) -> np.ndarray:
    """Twin of the compiled ``minute_prob_batch``."""
    _check_params(nu, p_min)
    _check_minute_params(1.0, 1.0, var_scale)
    arrs = [np.asarray(a).reshape(-1) for a in (S, K, ts_ms, hour_end_ms, level)]
    n = arrs[0].size
    if any(a.size != n for a in arrs):
        raise ValueError("minute_prob_batch: S, K, ts_ms, hour_end_ms, level differ in length")
    mp = MinutePricer(season, 60.0, 1.0, var_scale, nu, p_min)
    out = np.empty(n)
    for i in range(n):
        s_, k_, lv = float(arrs[0][i]), float(arrs[1][i]), float(arrs[4][i])
        mp.num, mp.den = lv, (1.0 if lv > 0.0 else 0.0)
        v = mp.rest_var(int(arrs[2][i]), int(arrs[3][i]))
        if not (math.isfinite(s_) and s_ > 0.0 and math.isfinite(k_) and k_ > 0.0) or math.isnan(v) or not lv > 0.0:
            out[i] = math.nan
        elif v > 0.0:
            out[i] = _digital_x(math.log(s_ / k_), 1.0, math.sqrt(v), nu, p_min)
        else:
            out[i] = _digital_x(math.log(s_ / k_), 0.0, 1.0, nu, p_min)
    return out


def season_table(hod, moh) -> np.ndarray:
    """The 1440-entry minute-of-day variance factors from 24 hour-of-day and 60 minute-of-hour
    factors (``season[60 h + m] = hod[h] * moh[m]``); empty inputs mean flat (all ones)."""
    h = np.ones(24) if hod is None or len(hod) == 0 else np.asarray(hod, dtype=np.float64).reshape(-1)
    m = np.ones(60) if moh is None or len(moh) == 0 else np.asarray(moh, dtype=np.float64).reshape(-1)
    if h.size != 24 or m.size != 60:
        raise ValueError(f"season needs 24 hour-of-day and 60 minute-of-hour factors, got {h.size} and {m.size}")
    if not (np.all(np.isfinite(h)) and np.all(h > 0) and np.all(np.isfinite(m)) and np.all(m > 0)):
        raise ValueError("season factors must be finite and > 0")
    return np.outer(h, m).reshape(-1)


def minute_path_batch(ts_ms, price, eval_ms, K, hour_end_ms, season, halflife_min: float = 60.0,
                      var_prior: float = 1e-7, var_scale: float = 1.0, nu: float = 0.0,
                      p_min: float = 0.001, scale_window_h: int = 0, scale_prior_h: float = 72.0,
                      warm=None) -> np.ndarray:
    """Twin of the compiled ``minute_path_batch``."""
    t = [int(v) for v in np.asarray(ts_ms, dtype=np.int64).reshape(-1)]
    px = [float(v) for v in np.asarray(price, dtype=np.float64).reshape(-1)]
    ev = [int(v) for v in np.asarray(eval_ms, dtype=np.int64).reshape(-1)]
    k = [float(v) for v in np.asarray(K, dtype=np.float64).reshape(-1)]
    he = [int(v) for v in np.asarray(hour_end_ms, dtype=np.int64).reshape(-1)]
    if len(px) != len(t):
        raise ValueError(f"minute_path_batch: ts_ms has {len(t)} rows, price has {len(px)}")
    if len(k) != len(ev) or len(he) != len(ev):
        raise ValueError("minute_path_batch: eval_ms, K, hour_end_ms differ in length")
    if any(b < a for a, b in zip(t, t[1:])) or any(b < a for a, b in zip(ev, ev[1:])):
        raise ValueError("minute_path_batch: ts_ms and eval_ms must be non-decreasing")
    mp = MinutePricer(season, halflife_min, var_prior, var_scale, nu, p_min, scale_window_h, scale_prior_h)
    if warm is not None:
        mp.warm_klines(*warm, until_ms=t[0] if t else 2 ** 63 - 1)
    out = np.empty(len(ev))
    j, last = 0, math.nan
    for i, e in enumerate(ev):
        while j < len(t) and t[j] < e:
            if mp.on_trade(t[j], px[j]):
                last = px[j]
            j += 1
        out[i] = math.nan if math.isnan(last) else mp.price(e, last, k[i], he[i])
    return out


def minute_scale_batch(open_ms, open_, close, season, halflife_min: float = 60.0, var_prior: float = 1e-7,
                       nu: float = 0.0, p_min: float = 0.001, scale_window_h: int = 672,
                       scale_prior_h: float = 72.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Twin of the compiled ``minute_scale_batch``."""
    if scale_window_h < 1:
        raise ValueError(f"minute_scale_batch: scale_window_h must be >= 1, got {scale_window_h!r}")
    t, o, c = _kline_arrays(open_ms, open_, close, "minute_scale_batch")
    mp = MinutePricer(season, halflife_min, var_prior, 1.0, nu, p_min, scale_window_h, scale_prior_h)
    lv, sc, nh = np.empty(len(t)), np.empty(len(t)), np.empty(len(t))
    for i in range(len(t)):
        mp._feed_kline(t[i], o[i], c[i], 2 ** 63 - 1)
        lv[i], sc[i], nh[i] = mp.level_var, mp.var_scale, mp.scale_hours
    return lv, sc, nh
