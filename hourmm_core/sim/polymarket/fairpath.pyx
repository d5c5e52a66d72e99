# The agents' true fair value P(close >= open) on the replayed BTC path, typed (see fairpath.pxd).
"""What the simulator's agents (makers, informed takers, latency snipers) treat as the true fair
value: :meth:`PricePath.fair_up` (``fast=True``) computed on typed arrays.

What it is: the same numbers as the plain-Python/numpy reference twin (``PricePath(fast=False)``,
:meth:`PricePath._fair_up`): the last price at ``t`` (``searchsorted(..., "right") - 1``), the
hour's open (first tick at or after the hour start, inside the hour), the hour's sigma
(:meth:`PricePath.sigma_for`, asked once per hour) and the compiled pricer's
``digital_prob_c`` (the very routine ``hourmm_core.quant.digital_prob`` wraps) with its defaults
(normal, p_min 0.001). tests/unit/sim/polymarket/test_fairpath.py compares both on real hours.

Why: the background flow asks for the fair value ~15,000 times per simulated hour (makers' step,
informed takers' look-ahead, every sniper scan and shot); in Python each ask was a tuple-keyed memo,
two bisections on Python lists and a call into the pricer. Here a C binary search on the int64
timestamps, the hour's open and sigma cached, and the last answer kept (the flow asks for the same
instant several times in a row).
"""
from libc.math cimport isnan

from hourmm_core.quant.pricer cimport digital_prob_c

from hourmm_core.clock import HOUR_MS as _HOUR_MS
from hourmm_core.quant.pricer import digital_prob as _digital_prob

cdef long long HOUR_MS = _HOUR_MS
cdef double P_MIN = 0.001      # digital_prob's default p_min (the reference calls it with the defaults)


cdef class FairPath:
    """Point lookups on one price path: ``ts`` (int64 ms, sorted), ``px`` (float64), and the
    callable ``sigma_of(hour_start_ms) -> float`` giving the per-sqrt-second vol of an hour."""

    def __init__(self, ts, px, sigma_of):
        self.ts = ts
        self.px = px
        if self.ts.shape[0] != self.px.shape[0]:
            raise ValueError(f"FairPath: {self.ts.shape[0]} timestamps but {self.px.shape[0]} prices")
        self.n = self.ts.shape[0]
        self.sigma_of = sigma_of
        self.hours = {}
        self.c_has_hour = False
        self.m_has = False

    cdef Py_ssize_t _right(self, long long t) noexcept nogil:
        """bisect_right(ts, t): the number of ticks at or before ``t``."""
        cdef Py_ssize_t lo = 0, hi = self.n, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if t < self.ts[mid]:
                hi = mid
            else:
                lo = mid + 1
        return lo

    cdef int _load_hour(self, long long hour_start_ms) except -1:
        cdef Py_ssize_t lo = 0, hi = self.n, mid
        v = self.hours.get(hour_start_ms)
        if v is None:
            while lo < hi:          # bisect_left(ts, hour_start_ms)
                mid = (lo + hi) >> 1
                if self.ts[mid] < hour_start_ms:
                    lo = mid + 1
                else:
                    hi = mid
            k = None if lo >= self.n or self.ts[lo] >= hour_start_ms + HOUR_MS else self.px[lo]
            v = self.hours[hour_start_ms] = (k, float(self.sigma_of(hour_start_ms)))
        k, s = v
        self.c_hour = hour_start_ms
        self.c_has_hour = True
        self.c_has_open = k is not None
        self.c_open = k if k is not None else 0.0
        self.c_sigma = s
        return 0

    cdef double fair_up_c(self, long long hour_start_ms, long long t_ms) except? -1.0:
        cdef Py_ssize_t i
        cdef double tau_s, p
        if self.m_has and t_ms == self.m_t and hour_start_ms == self.m_hour:
            return self.m_val
        if t_ms < hour_start_ms:
            return 0.5
        if not self.c_has_hour or self.c_hour != hour_start_ms:
            self._load_hour(hour_start_ms)
        i = self._right(t_ms) - 1
        if not self.c_has_open or i < 0:
            p = 0.5
        else:
            tau_s = <double> (hour_start_ms + HOUR_MS - t_ms) / 1000.0
            if tau_s < 0.0:
                tau_s = 0.0          # max(0.0, tau_s)
            p = digital_prob_c(self.px[i], self.c_open, tau_s, self.c_sigma, 0.0, P_MIN)
            if isnan(p):   # bad inputs: the Python wrapper raises the reference's error
                return _digital_prob(self.px[i], self.c_open, tau_s, self.c_sigma)
        self.m_hour = hour_start_ms
        self.m_t = t_ms
        self.m_val = p
        self.m_has = True
        return p

    def fair_up(self, long long hour_start_ms, long long t_ms):
        """True P(close >= open) of the hour starting at ``hour_start_ms`` seen at ``t_ms`` (0.5
        before the hour starts or while the hour has no open yet / no price at ``t_ms``)."""
        return self.fair_up_c(hour_start_ms, t_ms)

    def price_at(self, long long t_ms):
        """The last price at or before ``t_ms``, None before the first tick."""
        cdef Py_ssize_t i = self._right(t_ms) - 1
        return self.px[i] if i >= 0 else None

    def hour_open(self, long long hour_start_ms):
        """First price at or after the hour start, inside the hour (Binance 1h kline open), or None."""
        self._load_hour(hour_start_ms)
        return self.c_open if self.c_has_open else None
