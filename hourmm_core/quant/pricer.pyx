# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Fair probability that the hourly candle closes at or above its open (compiled).

Model: driftless log price, ``ln S_T = ln S + sigma * sqrt(tau) * Z``. The Up token
pays 1 if ``S_T >= K`` (K = the hour's open), so

    p = P(Z >= -x / (sigma sqrt(tau))) = F(x / (sigma sqrt(tau))),  x = ln(S / K)

with F the standard normal CDF, or (``nu > 2``) a Student-t with ``nu`` degrees
of freedom scaled to unit variance (``Z = sqrt((nu-2)/nu) * T``) so sigma keeps its
meaning while the tails get fatter. Drift is ignored on purpose: over one hour it
is orders of magnitude below the noise.

Limits, in this order: ``S == K`` gives exactly 0.5 (symmetric Z, any tau/sigma);
``tau <= 0`` or ``sigma <= 0`` gives the settled value 1 if ``S >= K`` else 0.
The result is always clamped to ``[p_min, 1 - p_min]`` so a quote never goes to
certainty. The exact symmetry ``p(K e^x) = 1 - p(K e^-x)`` holds before clamping
(and after, because the clamp is symmetric).

The t CDF is implemented here in C: ``F(t) = 1 - I_x(nu/2, 1/2) / 2`` for t > 0 with
``x = nu / (nu + t^2)`` and the regularized incomplete beta computed by Lentz's
continued fraction (Numerical Recipes ``betacf``); for ``nu > 1e7`` the normal is
used (difference below 1e-8). Accuracy vs scipy.stats.t: < 1e-12 for nu <= 1e4, < 3e-11 up to
1e5, < 3e-9 up to 1e7 (lgamma cancellation for huge nu; irrelevant at a 0.001 tick, and
nu that large should simply be 0). Cost: ~0.2 us per call for typical nu (3..30), against
~0.02 us for the normal. Same code in ``reference/pricer.py``.

Bad inputs (S or K not positive/finite, tau or sigma NaN, nu in (0, 2]) give NaN in
the nogil core; the Python wrappers raise ``ValueError`` (``digital_prob``) or count
them (``FairPricer.n_bad``).
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport erfc, exp, log, sqrt, lgamma, fabs, isfinite, isnan, NAN, M_SQRT1_2

cnp.import_array()

cdef double _FPMIN = 1e-300
cdef double _EPS = 1e-16
cdef int _MAXIT = 2000


cdef inline double _betacf(double a, double b, double x) noexcept nogil:
    """Continued fraction of the incomplete beta (modified Lentz)."""
    cdef double qab = a + b, qap = a + 1.0, qam = a - 1.0
    cdef double c = 1.0, d = 1.0 - qab * x / qap, aa, de, h
    cdef int m, m2
    if fabs(d) < _FPMIN:
        d = _FPMIN
    d = 1.0 / d
    h = d
    for m in range(1, _MAXIT + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if fabs(d) < _FPMIN:
            d = _FPMIN
        c = 1.0 + aa / c
        if fabs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if fabs(d) < _FPMIN:
            d = _FPMIN
        c = 1.0 + aa / c
        if fabs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        de = d * c
        h *= de
        if fabs(de - 1.0) < _EPS:
            break
    return h


cdef inline double _incbeta(double a, double b, double x, double y) noexcept nogil:
    """Regularized I_x(a, b); ``y = 1 - x`` passed separately to avoid cancellation."""
    cdef double bt
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    bt = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(y))
    if x < (a + 1.0) / (a + b + 2.0):
        return bt * _betacf(a, b, x) / a
    return 1.0 - bt * _betacf(b, a, y) / b


cdef double student_t_cdf_c(double t, double nu) noexcept nogil:
    cdef double t2, x, y, tail
    if isnan(t) or not (nu > 0.0):
        return NAN
    if nu > 1e7:
        return 0.5 * erfc(-t * M_SQRT1_2)
    if t == 0.0:
        return 0.5
    t2 = t * t
    if not isfinite(t2):
        return 1.0 if t > 0.0 else 0.0
    x = nu / (nu + t2)
    y = t2 / (nu + t2)
    tail = 0.5 * _incbeta(0.5 * nu, 0.5, x, y)
    return 1.0 - tail if t > 0.0 else tail


cdef double digital_prob_c(double S, double K, double tau_s, double sigma, double nu,
                           double p_min) noexcept nogil:
    cdef double p, z, x
    if not (isfinite(S) and S > 0.0 and isfinite(K) and K > 0.0) or isnan(tau_s) or isnan(sigma):
        return NAN
    if nu != 0.0 and not (nu > 2.0):
        return NAN
    if S == K:
        p = 0.5
    elif tau_s <= 0.0 or sigma <= 0.0:
        p = 1.0 if S >= K else 0.0
    else:
        x = log(S / K)
        z = x / (sigma * sqrt(tau_s))
        if nu == 0.0:
            p = 0.5 * erfc(-z * M_SQRT1_2)
        else:
            p = student_t_cdf_c(z / sqrt((nu - 2.0) / nu), nu)
    if p < p_min:
        p = p_min
    if p > 1.0 - p_min:
        p = 1.0 - p_min
    return p


cdef inline double _digital_x(double x, double tau_s, double sigma, double nu, double p_min) noexcept nogil:
    """digital_prob from x = ln S - ln K directly (the fused paths already hold log prices)."""
    cdef double p, z
    if isnan(x) or isnan(tau_s) or isnan(sigma) or (nu != 0.0 and not (nu > 2.0)):
        return NAN
    if x == 0.0:
        p = 0.5
    elif tau_s <= 0.0 or sigma <= 0.0:
        p = 1.0 if x > 0.0 else 0.0
    else:
        z = x / (sigma * sqrt(tau_s))
        if nu == 0.0:
            p = 0.5 * erfc(-z * M_SQRT1_2)
        else:
            p = student_t_cdf_c(z / sqrt((nu - 2.0) / nu), nu)
    if p < p_min:
        p = p_min
    if p > 1.0 - p_min:
        p = 1.0 - p_min
    return p


cdef inline int _check_params(double nu, double p_min) except -1:
    if not (nu == 0.0 or (nu > 2.0 and isfinite(nu))):
        raise ValueError(f"pricer: nu must be 0 (normal) or > 2 (variance-matched Student-t), got {nu!r}")
    if not (p_min >= 0.0 and p_min < 0.5):
        raise ValueError(f"pricer: p_min must be in [0, 0.5), got {p_min!r}")
    return 0


cpdef double student_t_cdf(double t, double nu):
    """Student-t CDF with ``nu`` > 0 degrees of freedom (unscaled), C implementation."""
    if not (nu > 0.0):
        raise ValueError(f"student_t_cdf: nu must be > 0, got {nu!r}")
    return student_t_cdf_c(t, nu)


cpdef double digital_prob(double S, double K, double tau_s, double sigma, double nu=0.0,
                          double p_min=0.001):
    """P(close >= open) for price S, open K, tau_s seconds left, sigma per sqrt(s).

    Raises ValueError for bad inputs (see module docstring for the limits).
    """
    _check_params(nu, p_min)
    cdef double p = digital_prob_c(S, K, tau_s, sigma, nu, p_min)
    if isnan(p):
        raise ValueError(f"digital_prob: bad input S={S!r} K={K!r} tau_s={tau_s!r} sigma={sigma!r}")
    return p


def fair_prob_batch(S, K, tau_s, sigma, double nu=0.0, double p_min=0.001):
    """Vectorised ``digital_prob`` over equal-length float arrays; bad rows give NaN."""
    _check_params(nu, p_min)
    cdef const double[::1] s = np.ascontiguousarray(S, dtype=np.float64).reshape(-1)
    cdef const double[::1] k = np.ascontiguousarray(K, dtype=np.float64).reshape(-1)
    cdef const double[::1] t = np.ascontiguousarray(tau_s, dtype=np.float64).reshape(-1)
    cdef const double[::1] g = np.ascontiguousarray(sigma, dtype=np.float64).reshape(-1)
    cdef Py_ssize_t n = s.shape[0], i
    if k.shape[0] != n or t.shape[0] != n or g.shape[0] != n:
        raise ValueError(f"fair_prob_batch: arrays differ in length "
                         f"(S={n}, K={k.shape[0]}, tau_s={t.shape[0]}, sigma={g.shape[0]})")
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    with nogil:
        for i in range(n):
            o[i] = digital_prob_c(s[i], k[i], t[i], g[i], nu, p_min)
    return out


cdef class FairPricer:
    """Streaming fair price with an uncertainty.

    ``update(ts_ms, S, K, hour_end_ms, sigma, sigma_alt)`` prices with
    ``tau = max(hour_end_ms - ts_ms, 0) / 1000`` seconds and sets ``p`` and
    ``p_unc = |p(sigma) - p(sigma_alt)|``: the disagreement between two volatility
    estimates (e.g. the 30 s and 600 s half-lives). It is a cheap, honest measure of
    model uncertainty that the ladder adds to its half-width; nothing fancier.
    Bad inputs leave ``p``/``p_unc`` NaN, return NaN and increment ``n_bad``.
    """

    def __cinit__(self, double nu=0.0, double p_min=0.001):
        _check_params(nu, p_min)
        self.nu = nu
        self.p_min = p_min
        self.p_ = NAN
        self.p_alt_ = NAN
        self.p_unc_ = NAN
        self.tau_s_ = NAN
        self.ts_ms_ = 0
        self.n_bad_ = 0

    cdef double c_update(self, long long ts_ms, double S, double K, long long hour_end_ms,
                         double sigma, double sigma_alt) noexcept nogil:
        cdef long long left = hour_end_ms - ts_ms
        if left < 0:
            left = 0
        self.ts_ms_ = ts_ms
        self.tau_s_ = left / 1000.0
        self.p_ = digital_prob_c(S, K, self.tau_s_, sigma, self.nu, self.p_min)
        self.p_alt_ = digital_prob_c(S, K, self.tau_s_, sigma_alt, self.nu, self.p_min)
        if isnan(self.p_) or isnan(self.p_alt_):
            self.n_bad_ += 1
            self.p_ = NAN
            self.p_unc_ = NAN
            return NAN
        self.p_unc_ = fabs(self.p_ - self.p_alt_)
        return self.p_

    cpdef double update(self, long long ts_ms, double S, double K, long long hour_end_ms,
                        double sigma, double sigma_alt):
        """Reprice; returns p (NaN on bad input, counted in n_bad)."""
        return self.c_update(ts_ms, S, K, hour_end_ms, sigma, sigma_alt)

    @property
    def p(self):
        return self.p_

    @property
    def p_alt(self):
        return self.p_alt_

    @property
    def p_unc(self):
        return self.p_unc_

    @property
    def tau_s(self):
        return self.tau_s_

    @property
    def n_bad(self):
        return self.n_bad_

    @property
    def nu(self):
        return self.nu

    @property
    def p_min(self):
        return self.p_min


from hourmm_core.quant.vol cimport EwmaVol
from hourmm_core.quant.features cimport ReturnFeatures


def _check_out(out, Py_ssize_t n, int k):
    """Validate price_path_batch's ``out`` triple (shape, dtype, contiguity) with a clear error."""
    try:
        so, fo, po = out
    except (TypeError, ValueError):
        raise ValueError("price_path_batch: out must be a (sigma, features, p) tuple of arrays") from None
    for name, a, shape in (("sigma", so, (n, k)), ("features", fo, (n, 7)), ("p", po, (n,))):
        if not (isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape == shape
                and a.flags.c_contiguous and a.flags.writeable):
            raise ValueError(f"price_path_batch: out {name} must be a writeable C-contiguous float64 "
                             f"array of shape {shape}")
    return so, fo, po


def price_path_batch(ts_ms, price, halflives_s=(30.0, 120.0, 600.0), long long sample_ms=1000,
                     double var_floor=1e-12, double nu=0.0, double p_min=0.001, int sigma_index=0,
                     long long hour_ms=3_600_000, out=None):
    """What the live pricer would say after every tick, in one nogil pass.

    Runs ``EwmaVol`` and ``ReturnFeatures`` tick by tick and prices
    ``digital_prob(price, open, tau, sigma[sigma_index])`` with ``open`` = the first price
    of the tick's hour and ``tau`` = seconds to the hour's end. Returns
    ``(sigma f64[n, k], features f64[n, 7], p f64[n])``. Bad rows are skipped like the
    streaming objects skip them (their rows repeat the previous values; p NaN before the
    first good tick). sigma/features are the same numbers as the separate batch functions; p
    uses ``ln S - ln K`` from the features' log prices (one log per tick), which equals
    ``fair_prob_batch`` up to float rounding (~1e-16 in x).
    ``out``: optional ``(sigma, features, p)`` preallocated C-contiguous float64 arrays of
    those shapes, filled and returned (a sweep over the same ticks then skips the page
    faults of ~88 MB of fresh output per million ticks).
    """
    _check_params(nu, p_min)
    cdef const cnp.int64_t[::1] t = np.ascontiguousarray(ts_ms, dtype=np.int64)
    cdef const double[::1] px = np.ascontiguousarray(price, dtype=np.float64)
    if t.shape[0] != px.shape[0]:
        raise ValueError(f"price_path_batch: ts_ms has {t.shape[0]} rows, price has {px.shape[0]}")
    cdef EwmaVol ev = EwmaVol(halflives_s, sample_ms, var_floor)
    cdef ReturnFeatures rf = ReturnFeatures(hour_ms, 1000)
    if not 0 <= sigma_index < ev.k:
        raise ValueError(f"price_path_batch: sigma_index {sigma_index} out of range 0..{ev.k - 1}")
    cdef Py_ssize_t n = t.shape[0], j
    cdef int k = ev.k, i
    if out is None:
        sig_out = np.empty((n, k), dtype=np.float64)
        feat_out = np.empty((n, 7), dtype=np.float64)
        p_out = np.empty(n, dtype=np.float64)
    else:
        sig_out, feat_out, p_out = _check_out(out, n, k)
    cdef double[:, ::1] so = sig_out
    cdef double[:, ::1] fo = feat_out
    cdef double[::1] po = p_out
    cdef double last_p = NAN
    cdef long long left
    with nogil:
        for j in range(n):
            ev.c_update(t[j], px[j])
            if rf.c_update(t[j], px[j]) == 1:
                left = rf.next_hour - t[j]
                last_p = _digital_x(rf.last_lp - rf.open_lp, left / 1000.0, ev.sig[sigma_index], nu, p_min)
            for i in range(k):
                so[j, i] = ev.sig[i]
            for i in range(7):
                fo[j, i] = rf.out[i]
            po[j] = last_p
    return sig_out, feat_out, p_out


cdef class TickPricer:
    """Container A's per-tick work in one call: EwmaVol + ReturnFeatures + fair price.

    ``update(ts_ms, price, S=nan)`` feeds the trade ``price`` to the volatility and the
    features and prices the digital at ``S`` (mid or microprice; the trade price when S
    is NaN) against the hour's open with ``sigma[sigma_index]``; ``p_unc`` uses
    ``sigma[alt_index]`` (default: the last half-life) as in ``FairPricer``. One Python
    call per tick instead of five keeps the per-tick cost near 0.1 us.
    ``set_hour_open`` passes the exchange's open (e.g. the 1h kline) to the features.
    The components stay readable as ``.vol`` and ``.features``.
    """
    cdef readonly EwmaVol vol
    cdef readonly ReturnFeatures features
    cdef double nu, p_min
    cdef int sigma_index, alt_index
    cdef double p_, p_unc_, tau_s_
    cdef long long n_bad_

    def __cinit__(self, halflives_s=(30.0, 120.0, 600.0), long long sample_ms=1000, double var_floor=1e-12,
                  double nu=0.0, double p_min=0.001, int sigma_index=0, int alt_index=-1,
                  long long hour_ms=3_600_000):
        _check_params(nu, p_min)
        self.vol = EwmaVol(halflives_s, sample_ms, var_floor)
        self.features = ReturnFeatures(hour_ms, 1000)
        if alt_index < 0:
            alt_index += self.vol.k
        if not (0 <= sigma_index < self.vol.k and 0 <= alt_index < self.vol.k):
            raise ValueError(f"TickPricer: sigma_index/alt_index out of range 0..{self.vol.k - 1}")
        self.nu = nu
        self.p_min = p_min
        self.sigma_index = sigma_index
        self.alt_index = alt_index
        self.p_ = NAN
        self.p_unc_ = NAN
        self.tau_s_ = NAN
        self.n_bad_ = 0

    def set_hour_open(self, long long hour_start_ms, double open_price):
        self.features.set_hour_open(hour_start_ms, open_price)

    cpdef double update(self, long long ts_ms, double price, double S=NAN):
        """Feed one trade; returns p (NaN and counted in n_bad for a bad tick)."""
        cdef double pa, x
        cdef long long left
        self.vol.c_update(ts_ms, price)
        if self.features.c_update(ts_ms, price) != 1:
            self.n_bad_ += 1
            return NAN
        if isnan(S):
            x = self.features.last_lp - self.features.open_lp      # ln(price / open), log already taken
        elif isfinite(S) and S > 0.0:
            x = log(S / self.features.open_px)
        else:
            x = NAN
        left = self.features.next_hour - ts_ms
        self.tau_s_ = left / 1000.0
        self.p_ = _digital_x(x, self.tau_s_, self.vol.sig[self.sigma_index], self.nu, self.p_min)
        pa = _digital_x(x, self.tau_s_, self.vol.sig[self.alt_index], self.nu, self.p_min)
        if isnan(self.p_) or isnan(pa):
            self.n_bad_ += 1
            self.p_ = NAN
            self.p_unc_ = NAN
            return NAN
        self.p_unc_ = fabs(self.p_ - pa)
        return self.p_

    @property
    def p(self):
        return self.p_

    @property
    def p_unc(self):
        return self.p_unc_

    @property
    def tau_s(self):
        return self.tau_s_

    @property
    def sigma(self):
        return self.vol.sig[self.sigma_index]

    @property
    def ready(self):
        """True once the volatility has warmed up and the hour has an open: only then is p usable."""
        return self.vol.sampled_s >= self.vol.warmup_s and self.features.have_open

    @property
    def open_price(self):
        return self.features.open_px

    @property
    def hour_end_ms(self):
        return self.features.next_hour if self.features.have_open else None

    @property
    def n_bad(self):
        return self.n_bad_
