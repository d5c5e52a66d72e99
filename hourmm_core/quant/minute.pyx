# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The shipped fair-value model (issue 11, docs/PRICER.md): ``MinutePricer``, the seasonal
rest-of-hour variance from 1-minute bars with the walk-forward adaptive scale, and its batch
functions (``minute_path_batch``, ``minute_prob_batch``, ``minute_level_batch``,
``minute_scale_batch``). Split from pricer.pyx (which keeps the digital itself, ``FairPricer``,
the per-tick ``TickPricer`` and the fused ``price_path_batch``) and still importable from
``hourmm_core.quant.pricer``. Streaming and batch run the same inline steps (minute.pxd).
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport exp, log, sqrt, isfinite, isnan, NAN, M_SQRT1_2
from libc.stdlib cimport calloc, free
from hourmm_core.quant.pricer cimport _check_params

cnp.import_array()

DEF _VB = 128           # rows per vector-math block (stack buffers of the batch loops)


# --------------------------------------------------------------------------- rest-of-hour model
# The shipped fair-value model (issue 11, docs/PRICER.md): a forecast of the variance of the
# REST of the hour from 1-minute bars, with an intraday seasonality learned on real klines.
#
#   r_k      = ln(close_k / close_{k-1})                       (1-minute close-to-close return)
#   d_k      = r_k^2 / season[minute-of-day(k)]                (deseasonalised squared return)
#   L        = (sum_k w_k d_k + w_0 var_prior) / (sum_k w_k + w_0), w_k = (1-a)^(age in minutes),
#              a = 1 - 2^(-1/halflife_min); the prior starts with weight 1/2 (one half-life of data)
#              and decays like any observation
#   V(t)     = var_scale * L * (f * season[c] + sum_{c < k < end} season[k])
#              c = minute-of-day of t, f = fraction of minute c still to run, end = the hour's end
#   p        = F(ln(S/K) / sqrt(V))                            F normal (nu=0) or unit-variance t
#
# ``season`` has 1440 entries (one per UTC minute of the day) with mean ~1; the shipped table is
# hour-of-day x minute-of-hour factors (24 + 60 numbers) fitted on 2025-04-15..2025-05-31.
# At a minute boundary t = H + 60 m (the evaluation points) f = 1 and V = L * sum of the season
# over minutes m..59, exactly what ``minute_prob_batch`` computes from klines.

# Walk-forward adaptive variance scale (session 6, docs/PRICER.md "Walk-forward adaptive
# calibration"): with ``scale_window_h`` > 0 the MinutePricer replaces the fixed var_scale by
#
#   c(H) = exp((n log c^ + n0 log c0) / (n + n0)),   c^ = argmin_{g in SCALE_GRID} sum_{hours h in W} LL_h(g)
#
# W = the hours that ended at or before H's start within the last ``scale_window_h`` hours,
# n = how many of them had evaluation points, n0 = ``scale_prior_h`` pseudo-hours, c0 =
# SCALE_C0 = 1 (the unbiased variance; used alone with no history). LL_h(g) = the summed log
# loss (p clipped to [p_min, 1 - p_min] as priced, then [1e-6, 1 - 1e-6]) of hour h's 59 points of
# the kline protocol (minute m = 1..59: S = close of minute m-1, K = open of minute 0, V = the
# model's UNSCALED rest-of-hour forecast at H + 60 m, outcome close(59) >= K), computed with
# scale g. Hour h has points only when its 60 minutes and the 60 before were all traded (the
# protocol's contiguity rule). The per-hour losses sit in a ring of ``scale_window_h`` x 71 and
# the window sums are re-added from the ring, oldest hour first, at every hour close (~50k adds
# once per hour): the state then depends only on the last window of hours, never on when the
# stream started, so a container warmed from 28 days of klines equals a batch run over months.
SCALE_GRID = np.exp(np.linspace(np.log(0.35), np.log(2.0), 71))
SCALE_C0 = 1.0
cdef double SCALE_C0_C = 1.0
DEF _NG = 71
cdef double _SGRID[71]
cdef double _LSGRID[71]
_lsg = np.log(SCALE_GRID)
for _i in range(_NG):
    _SGRID[_i] = SCALE_GRID[_i]
    _LSGRID[_i] = _lsg[_i]
del _lsg, _i


def _season_array(season):
    s = np.ascontiguousarray(season, dtype=np.float64).reshape(-1)
    if s.shape[0] != 1440:
        raise ValueError(f"season must have 1440 entries (one per UTC minute of the day), got {s.shape[0]}")
    if not (np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ValueError("season factors must be finite and > 0")
    return s


def _check_scale_params(int scale_window_h, double scale_prior_h):
    if not 0 <= scale_window_h <= 24 * 366:
        raise ValueError(f"scale_window_h must be 0 (fixed var_scale) .. {24 * 366} hours, got {scale_window_h!r}")
    if not (scale_prior_h >= 0.0 and isfinite(scale_prior_h)):
        raise ValueError(f"scale_prior_h must be >= 0 pseudo-hours, got {scale_prior_h!r}")


def _check_minute_params(double halflife_min, double var_prior, double var_scale):
    if not (halflife_min > 0.0 and isfinite(halflife_min)):
        raise ValueError(f"halflife_min must be > 0, got {halflife_min!r}")
    if not (var_prior > 0.0 and isfinite(var_prior)):
        raise ValueError(f"var_prior must be > 0 (per-minute log-return variance), got {var_prior!r}")
    if not (var_scale > 0.0 and isfinite(var_scale)):
        raise ValueError(f"var_scale must be > 0, got {var_scale!r}")


cdef class MinutePricer:
    """Streaming rest-of-hour pricer: ticks in, 1-minute bars inside, p at any instant.

    ``on_trade(ts_ms, price)`` aggregates trades into UTC 1-minute bars (close = last trade
    of the minute, by trade time); a bar is closed, and its return enters the variance level,
    when a trade of a later minute arrives (or ``advance``). ``price`` at a time past the
    current bar's end counts that bar's return provisionally without closing it, so pricing
    on the local clock never moves a late trade into the wrong minute. A minute
    without trades is missing data: its weight goes to the prior, and the return spanning it
    is dropped. ``price(ts_ms, S, K, hour_end_ms)``
    prices the digital at the live price S with the exact time left. Time never goes
    backwards here: an older ts is treated as the current bar. Bad ticks (price not
    finite/positive) are counted in ``n_bad`` and change nothing.

    ``scale_window_h`` > 0 switches on the walk-forward adaptive variance scale (module comment
    above ``SCALE_GRID``): ``var_scale`` is then ignored, the scale starts at SCALE_C0 and is
    re-fitted once per hour, when the hour's last bar closes (with the first trade of a later
    minute, or ``advance``); until then the previous hour's scale prices. ``warm_klines`` feeds
    history (1m klines) through the same bar routine before live trades.
    """

    def __cinit__(self, season, double halflife_min=60.0, double var_prior=1e-7, double var_scale=1.0,
                  double nu=0.0, double p_min=0.001, int scale_window_h=0, double scale_prior_h=72.0):
        _check_params(nu, p_min)
        _check_minute_params(halflife_min, var_prior, var_scale)
        _check_scale_params(scale_window_h, scale_prior_h)
        self.ring = NULL
        self.ring_has = NULL
        self.window_h = scale_window_h
        self.prior_h = scale_prior_h
        self.run = 0
        self.hour_K = NAN
        self.scale_hours_ = 0.0
        self.hour_closes_ = 0
        cdef int g
        for g in range(_NG):
            self.win[g] = 0.0
        if scale_window_h > 0:
            self.ring = <double*>calloc(<size_t>scale_window_h * _NG, sizeof(double))
            self.ring_has = <double*>calloc(<size_t>scale_window_h, sizeof(double))
            if self.ring == NULL or self.ring_has == NULL:
                raise MemoryError("MinutePricer: adaptive-scale ring")
            var_scale = SCALE_C0
        cdef const double[::1] s = _season_array(season)
        cdef int i
        self.cum[0] = 0.0
        for i in range(1440):
            self.season[i] = s[i]
            self.cum[i + 1] = self.cum[i] + s[i]
        self.halflife_min = halflife_min
        self.st.season = self.season
        self.st.cum = self.cum
        self.st.alpha = 1.0 - 0.5 ** (1.0 / halflife_min)
        self.st.var_prior = var_prior
        self.st.var_scale = var_scale
        self.st.nu = nu
        self.st.p_min = p_min
        self.st.den = 0.5                  # start from one half-life's worth of the prior level:
        self.st.num = 0.5 * var_prior      # a restart prices sanely at once and the data take over
        self.st.bar = 0
        self.st.bar_end = 60000
        self.st.bar_open = NAN
        self.st.bar_close = NAN
        self.st.prev_close = NAN
        self.st.have_bar = False
        self.st.have_prev = False
        self.st.bar_traded = False
        self.st.n_returns = 0
        self.st.n_bad = 0
        self.st.p = NAN
        self.st.var_rest = NAN
        self.st.tau_s = NAN

    def __dealloc__(self):
        free(self.ring)
        free(self.ring_has)

    cdef void _close_bar(self) noexcept nogil:
        """Close the current bar: its return (vs the previous bar's close) updates the level.

        A minute without any trade is missing data (a disconnect; BTCUSDT trades every minute):
        its weight goes to the prior (a long gap relaxes the level to var_prior, a short one
        barely moves it), and the next return, which would span the gap, is not used.
        With the adaptive scale on, a traded bar also records its evaluation point for the
        hour's loss (minute k closed = the point of minute k + 1), and the hour's last bar
        closes the hour (re-fit of the scale)."""
        cdef double r, d
        cdef MinState* s = &self.st
        cdef int k = <int>(s.bar % 60), c
        if not s.bar_traded:
            s.have_prev = False
            self.run = 0
            s.num = (1.0 - s.alpha) * s.num + s.alpha * s.var_prior
            s.den = (1.0 - s.alpha) * s.den + s.alpha
        else:
            s.bar_traded = False
            self.run += 1
            if s.have_prev:
                r = log(s.bar_close / s.prev_close)
                d = r * r / self.season[<int>(s.bar % 1440)]
                s.num = (1.0 - s.alpha) * s.num + s.alpha * d
                s.den = (1.0 - s.alpha) * s.den + s.alpha
                s.n_returns += 1
            s.prev_close = s.bar_close
            s.have_prev = True
            if self.window_h > 0:
                if k == 0:
                    self.hour_K = s.bar_open
                if k < 59:          # the point at H + 60 (k + 1): S = this close, V unscaled, f = 1
                    c = <int>((s.bar + 1) % 1440)
                    self.pts_x[k] = log(s.bar_close / self.hour_K)
                    self.pts_v[k] = min_level(s) * (self.cum[c - c % 60 + 60] - self.cum[c])
        if self.window_h > 0 and k == 59:
            self._close_hour(_floordiv(s.bar, 60), self.run >= 120)

    cdef void _close_hour(self, long long h, bint ok) noexcept nogil:
        """Hour h's last bar closed: store its per-grid log loss (zeros when it has no points),
        re-add the window from the ring (oldest first) and re-fit the scale."""
        cdef int W = self.window_h, g, m, i
        cdef long long slot = h % W, j
        cdef double y, v, p, s, best, x, n = 0.0
        cdef int gi = 0
        cdef double* row = self.ring + slot * _NG
        cdef double zb[59 * _NG]              # the 71 x 59 losses as one block (erfc, then log)
        cdef unsigned char sp[59 * _NG]       # 1: not an erfc point (NaN x, at the strike, v <= 0)
        if ok and self.st.nu == 0.0:
            # the normal model, laid out for the vector math: the same p as _digital_x0 per point
            # (erfc argument -(x / (sqrt(v) * sqrt(1))) M_SQRT1_2, sqrt(1) = 1 exactly), the same
            # clamps and the same summation order, but erfc and log each run once over the block
            y = 1.0 if self.st.bar_close >= self.hour_K else 0.0
            for g in range(_NG):
                for m in range(59):
                    i = g * 59 + m
                    v = _SGRID[g] * self.pts_v[m]
                    x = self.pts_x[m]
                    if v > 0.0 and x == x and x != 0.0:
                        zb[i] = -(x / sqrt(v)) * M_SQRT1_2
                        sp[i] = 0
                    else:
                        zb[i] = 0.0
                        sp[i] = 1
            hmm_erfc_n(zb, zb, 59 * _NG)
            for g in range(_NG):
                for m in range(59):
                    i = g * 59 + m
                    if sp[i]:
                        v = _SGRID[g] * self.pts_v[m]
                        if v > 0.0:
                            p = _digital_x0(self.pts_x[m], 1.0, sqrt(v), self.st.p_min)
                        else:
                            p = _digital_x0(self.pts_x[m], 0.0, 1.0, self.st.p_min)
                    else:
                        p = _clamp_p(0.5 * zb[i], self.st.p_min)
                    if p < 1e-6:
                        p = 1e-6
                    if p > 1.0 - 1e-6:
                        p = 1.0 - 1e-6
                    zb[i] = p if y == 1.0 else 1.0 - p     # one log per point (see below)
            hmm_log_n(zb, zb, 59 * _NG)
            for g in range(_NG):
                s = 0.0
                for m in range(59):
                    s += -zb[g * 59 + m]
                row[g] = s
            self.ring_has[slot] = 1.0
        elif ok:
            y = 1.0 if self.st.bar_close >= self.hour_K else 0.0
            for g in range(_NG):
                s = 0.0
                for m in range(59):
                    v = _SGRID[g] * self.pts_v[m]
                    if v > 0.0:
                        p = _digital_x(self.pts_x[m], 1.0, sqrt(v), self.st.nu, self.st.p_min)
                    else:
                        p = _digital_x(self.pts_x[m], 0.0, 1.0, self.st.nu, self.st.p_min)
                    if p < 1e-6:
                        p = 1e-6
                    if p > 1.0 - 1e-6:
                        p = 1.0 - 1e-6
                    # = -(y log p + (1 - y) log(1 - p)) bit for bit (y is 0 or 1 and both logs are
                    # finite < 0 here, so the other term is -0.0): one log per point, not two
                    s += -hmm_log(p if y == 1.0 else 1.0 - p)
                row[g] = s
            self.ring_has[slot] = 1.0
        else:
            for g in range(_NG):
                row[g] = 0.0
            self.ring_has[slot] = 0.0
        for g in range(_NG):
            self.win[g] = 0.0
        for j in range(1, W + 1):                       # hours h - W + 1 .. h, oldest first
            slot = (h + j) % W
            n += self.ring_has[slot]
            row = self.ring + slot * _NG
            for g in range(_NG):
                self.win[g] += row[g]
        self.scale_hours_ = n
        self.hour_closes_ += 1
        if n > 0.0:
            best = self.win[0]
            for g in range(1, _NG):
                if self.win[g] < best:
                    best = self.win[g]
                    gi = g
            self.st.var_scale = exp((n * _LSGRID[gi] + self.prior_h * log(SCALE_C0_C)) / (n + self.prior_h))
        else:
            self.st.var_scale = SCALE_C0_C

    cdef void _feed_kline(self, long long open_ms, double op, double cl, long long until_ms) noexcept nogil:
        """One 1m kline as two trades (its open at the minute's start, its close at its end), then
        close the bar if the minute ended by ``until_ms``: the bars equal those of the real trades."""
        cdef long long e = open_ms + 60000
        self.c_on_trade(open_ms, op)
        self.c_on_trade(open_ms + 59999, cl)
        self.c_advance(e if e <= until_ms else until_ms)

    cdef void c_advance(self, long long ts_ms) noexcept nogil:
        """Close every bar that ended at or before ts_ms (the once-a-minute part of a trade)."""
        cdef long long b = _floordiv(ts_ms, 60000)
        if not self.st.have_bar:
            return
        while self.st.bar < b:
            self._close_bar()
            self.st.bar += 1
            self.st.bar_end = (self.st.bar + 1) * 60000

    cdef inline int c_on_trade(self, long long ts_ms, double price) noexcept nogil:
        cdef int r = min_trade(&self.st, ts_ms, price)
        if r == 2:                      # a later minute: close the bars up to it, then this trade opens its bar
            self.c_advance(ts_ms)
            min_mark(&self.st, price)
            r = 1
        return r

    cpdef double update(self, long long ts_ms, double price, double K, long long hour_end_ms):
        """One trade in, p at the trade price out (the per-tick call; NaN for a bad tick)."""
        if self.c_on_trade(ts_ms, price) != 1:
            return NAN
        return min_price(&self.st, ts_ms, price, K, hour_end_ms)

    def on_trade(self, long long ts_ms, double price):
        """Feed one trade; returns True when accepted (False: bad price, counted)."""
        return self.c_on_trade(ts_ms, price) == 1

    def advance(self, long long ts_ms):
        """Close every bar that ended at or before ts_ms."""
        self.c_advance(ts_ms)

    cpdef double price(self, long long ts_ms, double S, double K, long long hour_end_ms):
        """p = P(close >= K) at ts_ms for live price S (NaN on bad input, counted in n_bad)."""
        return min_price(&self.st, ts_ms, S, K, hour_end_ms)

    def rest_var(self, long long ts_ms, long long hour_end_ms):
        return min_rest_var(&self.st, ts_ms, hour_end_ms)

    @property
    def p(self):
        return self.st.p

    @property
    def var_rest(self):
        return self.st.var_rest

    @property
    def sigma(self):
        """Effective sigma per sqrt(second) of the last price(): sqrt(V / tau) (NaN at tau 0)."""
        if self.st.tau_s > 0.0 and self.st.var_rest >= 0.0:
            return sqrt(self.st.var_rest / self.st.tau_s)
        return NAN

    @property
    def level_var(self):
        """Deseasonalised per-minute variance level L."""
        return min_level(&self.st)

    @property
    def n_returns(self):
        return self.st.n_returns

    @property
    def n_bad(self):
        return self.st.n_bad

    @property
    def halflife_min(self):
        return self.halflife_min

    def warm_klines(self, open_ms, open_, close, long long until_ms=9_223_372_036_854_775_807):
        """Feed 1m klines (history before the live trades) through the bar routine.

        Each kline is two trades, its open at the minute's start and its close at its end (the
        bars, level, evaluation points and hour closes are then those the real trades give); a
        minute that ended by ``until_ms`` is closed, the one in progress (``until_ms`` inside it)
        stays open so live trades of that minute continue it. Minutes must be strictly increasing
        and not before the current bar; prices finite > 0: otherwise ValueError, nothing fed.
        Returns the number of rows fed."""
        cdef const cnp.int64_t[::1] t
        cdef const double[::1] o
        cdef const double[::1] c
        t, o, c = _kline_arrays(open_ms, open_, close, "warm_klines")
        cdef Py_ssize_t n = t.shape[0], i
        if n and self.st.have_bar and _floordiv(t[0], 60000) < self.st.bar:
            raise ValueError("warm_klines: the klines start before the current bar (time never goes backwards)")
        with nogil:
            for i in range(n):
                self._feed_kline(t[i], o[i], c[i], until_ms)
        return n

    @property
    def var_scale(self):
        """The variance scale in force (fixed, or the adaptive scale of the current hour)."""
        return self.st.var_scale

    @property
    def scale_window_h(self):
        return self.window_h

    @property
    def scale_hours(self):
        """Hours with evaluation points in the adaptive window (0: the scale is the prior SCALE_C0)."""
        return self.scale_hours_

    @property
    def hour_closes(self):
        """How many hour closes re-fitted the adaptive scale (0 with a fixed scale)."""
        return self.hour_closes_


def _kline_arrays(open_ms, open_, close, str what):
    """Validated contiguous (int64 open_ms, f64 open, f64 close): same length, prices finite > 0,
    minutes strictly increasing."""
    t = np.ascontiguousarray(open_ms, dtype=np.int64).reshape(-1)
    o = np.ascontiguousarray(open_, dtype=np.float64).reshape(-1)
    c = np.ascontiguousarray(close, dtype=np.float64).reshape(-1)
    if not (o.shape[0] == t.shape[0] == c.shape[0]):
        raise ValueError(f"{what}: open_ms, open, close differ in length ({t.shape[0]}, {o.shape[0]}, {c.shape[0]})")
    if not (np.all(np.isfinite(o)) and np.all(o > 0) and np.all(np.isfinite(c)) and np.all(c > 0)):
        raise ValueError(f"{what}: kline prices must be finite and > 0")
    if t.shape[0] > 1 and np.any(np.diff(t // 60000) <= 0):
        raise ValueError(f"{what}: kline minutes must be strictly increasing")
    return t, o, c


def minute_scale_batch(open_ms, open_, close, season, double halflife_min=60.0, double var_prior=1e-7,
                       double nu=0.0, double p_min=0.001, int scale_window_h=672, double scale_prior_h=72.0):
    """The adaptive model on 1m klines: ``(level, scale, hours)`` f64[n] once kline i is closed.

    Runs ONE streaming ``MinutePricer`` over the klines (``warm_klines``: the same C bar and
    hour-close routine, in the same order, as container A's live object), so ``scale[i]`` is
    exactly the scale the streaming model prices with after minute i closed (the scale of hour H
    is ``scale`` at the row of minute 59 of hour H-1), ``level`` equals ``minute_level_batch`` and
    ``hours`` is the number of hours in the window with points. p at the protocol points:
    ``minute_prob_batch(..., level * scale, ..., var_scale=1)`` (what ``kline_calibration`` does).
    """
    if scale_window_h < 1:
        raise ValueError(f"minute_scale_batch: scale_window_h must be >= 1, got {scale_window_h!r}")
    cdef const cnp.int64_t[::1] t
    cdef const double[::1] o
    cdef const double[::1] c
    t, o, c = _kline_arrays(open_ms, open_, close, "minute_scale_batch")
    cdef MinutePricer mp = MinutePricer(season, halflife_min, var_prior, 1.0, nu, p_min, scale_window_h,
                                        scale_prior_h)
    cdef Py_ssize_t n = t.shape[0], i
    lv_a, sc_a, nh_a = np.empty(n), np.empty(n), np.empty(n)
    cdef double[::1] lv = lv_a
    cdef double[::1] sc = sc_a
    cdef double[::1] nh = nh_a
    with nogil:
        for i in range(n):
            mp._feed_kline(t[i], o[i], c[i], 9_223_372_036_854_775_807)
            lv[i] = min_level(&mp.st)
            sc[i] = mp.st.var_scale
            nh[i] = mp.scale_hours_
    return lv_a, sc_a, nh_a


def minute_level_batch(open_ms, close, season, double halflife_min=60.0, double var_prior=1e-7):
    """Variance level L after each 1-minute bar closes (batch twin of MinutePricer).

    ``open_ms`` int64 minute open times (a missing minute gives its weight to var_prior and the
    return across missing minutes is not used, as in the streaming object), ``close`` float64
    closes. Returns f64[n]: L once
    bar i is closed (bar 0 has no return: ``var_prior``; the prior starts with weight 1/2 and decays).
    """
    _check_minute_params(halflife_min, var_prior, 1.0)
    cdef const cnp.int64_t[::1] t = np.ascontiguousarray(open_ms, dtype=np.int64)
    cdef const double[::1] c = np.ascontiguousarray(close, dtype=np.float64)
    cdef const double[::1] s = _season_array(season)
    cdef Py_ssize_t n = t.shape[0], i
    if c.shape[0] != n:
        raise ValueError(f"minute_level_batch: open_ms has {n} rows, close has {c.shape[0]}")
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    cdef double a = 1.0 - 0.5 ** (1.0 / halflife_min), num = 0.5 * var_prior, den = 0.5, r, d
    cdef long long b, bprev = 0, gap
    cdef bint bad = False
    with nogil:
        for i in range(n):
            if not (isfinite(c[i]) and c[i] > 0.0):
                bad = True
                break
            b = _floordiv(t[i], 60000)
            if i > 0:
                if b <= bprev:
                    bad = True
                    break
                gap = b - bprev - 1
                while bprev + 1 < b:                    # missing minutes: their weight goes to the prior
                    bprev += 1
                    num = (1.0 - a) * num + a * var_prior
                    den = (1.0 - a) * den + a
                if gap == 0:                            # a return across missing minutes is not used
                    r = log(c[i] / c[i - 1])
                    d = r * r / s[<int>(b % 1440)]
                    num = (1.0 - a) * num + a * d
                    den = (1.0 - a) * den + a
            o[i] = num / den if den > 0.0 else var_prior
            bprev = b
    if bad:
        raise ValueError("minute_level_batch: closes must be finite > 0 and open times strictly increasing")
    return out


def minute_prob_batch(S, K, ts_ms, hour_end_ms, level, season, double var_scale=1.0, double nu=0.0,
                      double p_min=0.001):
    """p at arbitrary instants from a level L known there (e.g. ``minute_level_batch`` of the
    last closed bar): V = var_scale * L * season remaining to the hour's end; p = F(ln(S/K)/sqrt V).
    Bad rows give NaN."""
    _check_params(nu, p_min)
    _check_minute_params(1.0, 1.0, var_scale)
    cdef const double[::1] s_ = np.ascontiguousarray(S, dtype=np.float64).reshape(-1)
    cdef const double[::1] k_ = np.ascontiguousarray(K, dtype=np.float64).reshape(-1)
    cdef const cnp.int64_t[::1] t_ = np.ascontiguousarray(ts_ms, dtype=np.int64).reshape(-1)
    cdef const cnp.int64_t[::1] e_ = np.ascontiguousarray(hour_end_ms, dtype=np.int64).reshape(-1)
    cdef const double[::1] l_ = np.ascontiguousarray(level, dtype=np.float64).reshape(-1)
    cdef Py_ssize_t n = s_.shape[0], i
    if not (k_.shape[0] == n and t_.shape[0] == n and e_.shape[0] == n and l_.shape[0] == n):
        raise ValueError("minute_prob_batch: S, K, ts_ms, hour_end_ms, level differ in length")
    cdef MinutePricer mp = MinutePricer(season, 60.0, 1.0, var_scale, nu, p_min)   # no bar: level = num/den
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    cdef double v
    with nogil:
        for i in range(n):
            mp.st.num = l_[i]
            mp.st.den = 1.0 if l_[i] > 0.0 else 0.0
            v = min_rest_var(&mp.st, t_[i], e_[i])
            if not (isfinite(s_[i]) and s_[i] > 0.0 and isfinite(k_[i]) and k_[i] > 0.0) or isnan(v) \
                    or not (l_[i] > 0.0):
                o[i] = NAN
            elif v > 0.0:
                o[i] = _digital_x(hmm_log(s_[i] / k_[i]), 1.0, sqrt(v), nu, p_min)
            else:
                o[i] = _digital_x(hmm_log(s_[i] / k_[i]), 0.0, 1.0, nu, p_min)
    return out


def minute_path_batch(ts_ms, price, eval_ms, K, hour_end_ms, season, double halflife_min=60.0,
                      double var_prior=1e-7, double var_scale=1.0, double nu=0.0, double p_min=0.001,
                      int scale_window_h=0, double scale_prior_h=72.0, warm=None):
    """The live model on a tick history, priced at given instants (backtests, replays).

    Streams the ticks (``ts_ms`` non-decreasing, ``price``) through one ``MinutePricer`` and,
    at each ``eval_ms[i]`` (non-decreasing), prices with S = the last tick strictly before it
    (a tick stamped exactly at the instant counts as after it, so at H + 60 m the price is
    minute m-1's close, as in the evaluation protocol), the strike ``K[i]`` and
    ``hour_end_ms[i]``: what container A publishes at those instants. NaN before the first
    tick or for bad rows. ``scale_window_h``/``scale_prior_h``: the adaptive variance scale (as
    ``MinutePricer``); ``warm`` = optional ``(open_ms, open, close)`` 1m klines fed first with
    ``warm_klines`` up to the first tick (container A's start-up history), so the adaptive state
    and the level start where container A's would.
    """
    _check_params(nu, p_min)
    _check_minute_params(halflife_min, var_prior, var_scale)
    cdef const cnp.int64_t[::1] t = np.ascontiguousarray(ts_ms, dtype=np.int64).reshape(-1)
    cdef const double[::1] px = np.ascontiguousarray(price, dtype=np.float64).reshape(-1)
    cdef const cnp.int64_t[::1] ev = np.ascontiguousarray(eval_ms, dtype=np.int64).reshape(-1)
    cdef const double[::1] k = np.ascontiguousarray(K, dtype=np.float64).reshape(-1)
    cdef const cnp.int64_t[::1] he = np.ascontiguousarray(hour_end_ms, dtype=np.int64).reshape(-1)
    cdef Py_ssize_t n = t.shape[0], m = ev.shape[0]
    if px.shape[0] != n:
        raise ValueError(f"minute_path_batch: ts_ms has {n} rows, price has {px.shape[0]}")
    if k.shape[0] != m or he.shape[0] != m:
        raise ValueError("minute_path_batch: eval_ms, K, hour_end_ms differ in length")
    cdef MinutePricer mp = MinutePricer(season, halflife_min, var_prior, var_scale, nu, p_min, scale_window_h,
                                        scale_prior_h)
    if warm is not None:
        wo, wp, wc = warm
        mp.warm_klines(wo, wp, wc, t[0] if n else 9_223_372_036_854_775_807)
    out = np.empty(m, dtype=np.float64)
    cdef double[::1] o = out
    cdef bint ok = True
    with nogil:
        ok = _minute_path_run(mp, &t[0] if n else NULL, &px[0] if n else NULL, n, &ev[0] if m else NULL,
                              &k[0] if m else NULL, &he[0] if m else NULL, m, &o[0] if m else NULL)
    if not ok:
        raise ValueError("minute_path_batch: ts_ms and eval_ms must be non-decreasing")
    return out


cdef void _min_price_block(double* r, const double* v, const Py_ssize_t* qi, int nq, double p_min,
                           double* o) noexcept nogil:
    """min_price's erfc points of a block: x = log(S/K) (S != K), V > 0; the same expressions as
    min_price -> _digital_x0 with tau 1 and sigma sqrt(V) (sqrt(1) = 1 exactly)."""
    cdef int q
    hmm_log_n(r, r, nq)
    for q in range(nq):
        r[q] = -(r[q] / sqrt(v[q])) * M_SQRT1_2
    hmm_erfc_n(r, r, nq)
    for q in range(nq):
        o[qi[q]] = _clamp_p(0.5 * r[q], p_min)


cdef bint _minute_path_run(MinutePricer mp, const cnp.int64_t* t, const double* px, Py_ssize_t n,
                           const cnp.int64_t* ev, const double* k, const cnp.int64_t* he, Py_ssize_t m,
                           double* o) noexcept nogil:
    """minute_path_batch's pass: False when ts_ms or eval_ms go backwards. A small
    function of its own so the compiler inlines the steps (min_trade, min_price) into it.
    The per-tick/per-instant state lives in a C local (registers); the object gets it back only to
    close bars (once a minute, with the hourly scale re-fit). The order checks ride along."""
    cdef Py_ssize_t i, j = 0
    cdef double last = NAN, v
    cdef long long e, tprev = t[0] if n else 0, eprev = ev[0] if m else 0, tp
    cdef Py_ssize_t jr
    cdef bint run_ok
    cdef int r
    cdef bint have = False          # a flag, not isnan(last): GCC predicts an isnan test true (cold else)
    cdef MinState st = mp.st
    # the normal model prices in blocks: this pass keeps the state and computes V and S/K per
    # instant; the erfc points wait in the block (rows qi) and get log, sqrt and erfc over the block
    # (hmm_vmath.h), the same expressions as min_price; every other instant is min_price at once
    cdef bint vec = st.nu == 0.0
    cdef double qr[_VB]
    cdef double qv[_VB]
    cdef Py_ssize_t qi[_VB]
    cdef int nq = 0
    # the rest-of-hour variance's per-minute part (min_span: floor divisions, season lookups) is
    # refreshed when an instant enters a new minute or hour end; var_scale * level after bar closes
    cdef MinSpan sp
    cdef double vl = st.var_scale * min_level(&st)
    sp.b = 0                        # (b_end below forces min_span at the first priced instant)
    sp.b_end = -9223372036854775807
    sp.hour_end = 0
    sp.kind = 2
    sp.sc = sp.ca = sp.cb = sp.cw = 0.0
    for i in range(m):
        e = ev[i]
        if unlikely(e < eprev):
            return False
        eprev = e
        # the ticks before this instant: one scan (as the floor's) that also tests, without a branch,
        # that they are in order and have good prices; when they are and all fall in the current bar
        # (the usual case), min_trade would take each one (1) and min_mark would leave the bar's open
        # (or set it from the first), its close the last price: applied at once. Otherwise the same
        # ticks go one by one through min_trade below (bad ticks, a new minute, time going backwards).
        jr = j
        tp = tprev
        run_ok = True
        while jr < n and t[jr] < e:
            run_ok = run_ok & (t[jr] >= tp) & hmm_pos_finite(px[jr])      # isfinite(px) and px > 0.0
            tp = t[jr]
            jr += 1
        if jr > j and run_ok and st.have_bar and tp < st.bar_end:
            if not st.bar_traded:
                st.bar_open = px[j]
            st.bar_close = px[jr - 1]
            st.bar_traded = True
            last = px[jr - 1]
            have = True
            tprev = tp
            j = jr
        while j < jr:
            if unlikely(t[j] < tprev):
                return False
            tprev = t[j]
            r = min_trade(&st, t[j], px[j])
            if unlikely(r == 2):
                mp.st = st
                mp.c_advance(t[j])
                st = mp.st
                vl = st.var_scale * min_level(&st)
                min_mark(&st, px[j])
                r = 1
            if r == 1:
                last = px[j]
                have = True
            j += 1
        if not have:
            o[i] = NAN
        elif vec and hmm_pos_finite(k[i]) and last != k[i]:             # isfinite(k) and k > 0.0
            if unlikely(e >= sp.b_end or he[i] != sp.hour_end):
                min_span(&st, &sp, e, he[i])
            # min_rest_var(&st, e, he[i]) with the minute's part kept (last is a good trade price)
            v = min_span_var(&st, &sp, e, vl) if he[i] > e else 0.0
            if v > 0.0:
                qr[nq] = last / k[i]
                qv[nq] = v
                qi[nq] = i
                nq += 1
                if nq == _VB:
                    _min_price_block(qr, qv, qi, nq, st.p_min, o)
                    nq = 0
            else:
                o[i] = min_price(&st, e, last, k[i], he[i])
        else:
            o[i] = min_price(&st, e, last, k[i], he[i])
    if nq:
        _min_price_block(qr, qv, qi, nq, st.p_min, o)
    mp.st = st
    while j < n:                    # ticks after the last instant: only their order is checked
        if t[j] < tprev:
            return False
        tprev = t[j]
        j += 1
    return True
