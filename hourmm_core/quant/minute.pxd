# cython: language_level=3
# The shipped rest-of-hour model (MinutePricer): its state, steps and class (minute.pyx); the digital
# it prices with (_digital_x, _clamp_p, hmm_vmath.h) comes from pricer.pxd.
cimport cython
from libc.math cimport log, sqrt, isfinite, isnan, NAN, M_SQRT1_2
from hourmm_core.quant.pricer cimport (hmm_erfc, hmm_log, hmm_erfc_n, hmm_log_n, hmm_pos_finite, _clamp_p,
                                      _digital_x0, _digital_x)

cdef extern from *:
    """
    #if defined(__GNUC__)
    #define HOURMM_UNLIKELY(x) __builtin_expect(!!(x), 0)
    #else
    #define HOURMM_UNLIKELY(x) (x)
    #endif
    """
    # a branch hint for the rare paths of the batch loops (bad order, bad price, a new minute): without
    # it GCC guesses every exit test 50/50 and treats the per-instant pricing as cold (not inlined)
    bint unlikely "HOURMM_UNLIKELY"(bint) nogil


@cython.cdivision(True)
cdef inline long long _floordiv(long long a, long long b) noexcept nogil:
    cdef long long q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


# MinutePricer's per-tick / per-instant state as a plain struct (like VolState / FeatState): the
# streaming object holds one and calls the steps below; minute_path_batch runs the same steps on a
# copy held in a C local (registers) and hands it back to the object only for a bar close (once a
# minute: ``MinutePricer.c_advance``, which also does the hourly adaptive-scale re-fit). One
# definition of the per-tick and per-instant math. ``season``/``cum`` point into the owning object.
cdef struct MinState:
    const double* season            # 1440 variance factors, one per UTC minute of the day
    const double* cum               # 1441 running sums of season (cum[0] = 0)
    double alpha
    double var_prior
    double var_scale
    double nu
    double p_min
    double num
    double den
    long long bar
    long long bar_end               # (bar + 1) * 60000: a trade at or after it is of a later minute
    double bar_open
    double bar_close
    double prev_close
    bint have_bar
    bint have_prev
    bint bar_traded
    long long n_returns
    long long n_bad
    double p
    double var_rest
    double tau_s


@cython.cdivision(True)
cdef inline double min_level(const MinState* s) noexcept nogil:
    if s.den > 0.0:
        return s.num / s.den
    return s.var_prior


@cython.cdivision(True)
cdef inline double min_level_at_b(const MinState* s, long long b) noexcept nogil:
    """The level as it stands in minute b without closing any bar: when b is past the current
    bar, that bar's return is included provisionally (pricing never moves bar state, so a trade
    of that minute arriving later still lands in its own bar)."""
    cdef double r
    if s.have_bar and s.bar_traded and s.have_prev and b > s.bar:
        r = log(s.bar_close / s.prev_close)
        return ((1.0 - s.alpha) * s.num + s.alpha * r * r / s.season[<int>(s.bar % 1440)]) \
            / ((1.0 - s.alpha) * s.den + s.alpha)
    return min_level(s)


# The rest-of-hour variance in two parts: what depends on the minute of ts and the hour's end only
# (two floor divisions, the season/cum lookups: ``min_span``, once per minute in minute_path_batch)
# and what moves within the minute (the fraction f of the current minute left, the level:
# ``min_span_var``). ``min_rest_var`` = both, for one instant; the same expressions in the same order.
cdef struct MinSpan:
    long long b                     # the minute of ts (floor(ts / 60000))
    long long b_end                 # (b + 1) * 60000
    long long hour_end
    int kind                        # 0 the hour's rest fits the day's season table, 1 it wraps, 2 too long (NaN)
    double sc                       # season[c], c = b % 1440
    double ca                       # cum[e] (kind 0) or cum[1440] (kind 1), e = one past the hour's last minute
    double cb                       # cum[c + 1]
    double cw                       # cum[e - 1440] (kind 1)


@cython.cdivision(True)
cdef inline void min_span(const MinState* s, MinSpan* sp, long long ts_ms, long long hour_end_ms) noexcept nogil:
    cdef long long b = _floordiv(ts_ms, 60000)
    cdef long long bend = _floordiv(hour_end_ms - 1, 60000) + 1     # first minute after the hour
    cdef int c = <int>(b % 1440), e
    sp.b = b
    sp.b_end = (b + 1) * 60000
    sp.hour_end = hour_end_ms
    if bend - b > 1440:
        sp.kind = 2
        return
    e = c + <int>(bend - b)                          # season index one past the hour's last minute
    sp.sc = s.season[c]
    sp.cb = s.cum[c + 1]
    if e <= 1440:
        sp.kind = 0
        sp.ca = s.cum[e]
        sp.cw = 0.0
    else:
        sp.kind = 1
        sp.ca = s.cum[1440]
        sp.cw = s.cum[e - 1440]


@cython.cdivision(True)
cdef inline double min_span_var(const MinState* s, const MinSpan* sp, long long ts_ms, double vl) noexcept nogil:
    """Forecast variance of ln(close of the hour / price now) at ts_ms (in sp's minute, before
    sp's hour end). ``vl`` = var_scale * min_level(s) (the batch loop keeps it between bar closes)."""
    cdef double f = (sp.b_end - ts_ms) / 60000.0
    if sp.kind == 2:
        return NAN
    if unlikely(sp.b > s.bar and s.have_bar and s.bar_traded and s.have_prev):    # the first test is usually false
        vl = s.var_scale * min_level_at_b(s, sp.b)
    if sp.kind == 0:
        return vl * (f * sp.sc + sp.ca - sp.cb)
    return vl * (f * sp.sc + sp.ca - sp.cb + sp.cw)


cdef inline double min_rest_var(const MinState* s, long long ts_ms, long long hour_end_ms) noexcept nogil:
    """Forecast variance of ln(close of the hour / price now), at ts_ms."""
    cdef MinSpan sp
    if hour_end_ms - ts_ms <= 0:
        return 0.0
    min_span(s, &sp, ts_ms, hour_end_ms)
    return min_span_var(s, &sp, ts_ms, s.var_scale * min_level(s))


@cython.cdivision(True)
cdef inline double min_price(MinState* s, long long ts_ms, double S, double K, long long hour_end_ms) noexcept nogil:
    """p = P(close >= K) at ts_ms for live price S (NaN on bad input, counted in n_bad)."""
    cdef double v, x
    v = min_rest_var(s, ts_ms, hour_end_ms)
    s.var_rest = v
    s.tau_s = (hour_end_ms - ts_ms) / 1000.0 if hour_end_ms > ts_ms else 0.0
    if not (isfinite(S) and S > 0.0 and isfinite(K) and K > 0.0) or isnan(v):
        s.n_bad += 1
        s.p = NAN
        return NAN
    x = hmm_log(S / K)
    if v > 0.0:
        s.p = _digital_x(x, 1.0, sqrt(v), s.nu, s.p_min)
    else:
        s.p = _digital_x(x, 0.0, 1.0, s.nu, s.p_min)
    return s.p


cdef inline void min_mark(MinState* s, double price) noexcept nogil:
    """A good trade of the current bar: its open (first trade) and close (last trade)."""
    if not s.bar_traded:
        s.bar_open = price
    s.bar_close = price
    s.bar_traded = True


@cython.cdivision(True)
cdef inline int min_trade(MinState* s, long long ts_ms, double price) noexcept nogil:
    """One trade into the bar state: 0 bad price (counted), 1 accepted; 2 a later minute: NOT
    applied: the caller closes the bars up to ts_ms (``MinutePricer.c_advance``, the once-a-minute
    part) and then calls ``min_mark``. An older ts is treated as the current bar."""
    if unlikely(not (isfinite(price) and price > 0.0)):
        s.n_bad += 1
        return 0
    if unlikely(not s.have_bar):
        s.bar = _floordiv(ts_ms, 60000)
        s.bar_end = (s.bar + 1) * 60000
        s.have_bar = True
    elif unlikely(ts_ms >= s.bar_end):       # floordiv(ts_ms, 60000) > bar, without a division per trade
        return 2
    min_mark(s, price)
    return 1


@cython.final          # no subclasses: the batch loops call its methods directly (inlinable)
cdef class MinutePricer:
    cdef MinState st
    cdef double season[1440]
    cdef double cum[1441]
    cdef double halflife_min
    # walk-forward adaptive variance scale (0 window = fixed var_scale); updated once per hour
    cdef double hour_K
    cdef long long run
    cdef double pts_x[59]
    cdef double pts_v[59]
    cdef int window_h
    cdef double prior_h
    cdef double* ring
    cdef double* ring_has
    cdef double win[71]
    cdef double scale_hours_
    cdef long long hour_closes_
    cdef void _close_hour(self, long long h, bint ok) noexcept nogil
    cdef void _feed_kline(self, long long open_ms, double op, double cl, long long until_ms) noexcept nogil
    cdef void _close_bar(self) noexcept nogil
    cdef void c_advance(self, long long ts_ms) noexcept nogil
    cdef inline int c_on_trade(self, long long ts_ms, double price) noexcept nogil
    cpdef double price(self, long long ts_ms, double S, double K, long long hour_end_ms)
    cpdef double update(self, long long ts_ms, double price, double K, long long hour_end_ms)
