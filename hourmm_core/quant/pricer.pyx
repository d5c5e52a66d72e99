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
from libc.math cimport exp, log, sqrt, lgamma, fabs, isfinite, isnan, NAN, M_SQRT1_2
from libc.stdlib cimport calloc, free

cnp.import_array()

# which erfc/log the core was built with (hmm_vmath.h): "libmvec-avx2", "libmvec-sse2" (glibc's vector
# math, chosen at run time) or "libm-scalar" (the fallback: no libmvec at build time)
VMATH = (<bytes>HOURMM_VMATH_KIND).decode()

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
        return 0.5 * hmm_erfc(-t * M_SQRT1_2)
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
        x = hmm_log(S / K)
        z = x / (sigma * sqrt(tau_s))
        if nu == 0.0:
            p = 0.5 * hmm_erfc(-z * M_SQRT1_2)
        else:
            p = student_t_cdf_c(z / sqrt((nu - 2.0) / nu), nu)
    return _clamp_p(p, p_min)


cdef int _check_params(double nu, double p_min) except -1:
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
        if nu == 0.0 and n:
            _fair_prob_run(&s[0], &k[0], &t[0], &g[0], p_min, &o[0], n)
        else:
            for i in range(n):
                o[i] = digital_prob_c(s[i], k[i], t[i], g[i], nu, p_min)
    return out


DEF _VB = 128           # rows per vector-math block (stack buffers of the batch loops)


cdef inline bint _regular_row(double S, double K, double tau_s, double sigma) noexcept nogil:
    """digital_prob_c's common case (an erfc point): S, K finite > 0, S != K, tau and sigma > 0."""
    return isfinite(S) and S > 0.0 and isfinite(K) and K > 0.0 and S != K and tau_s > 0.0 and sigma > 0.0


cdef void _fair_prob_run(const double* S, const double* K, const double* tau, const double* sig, double p_min,
                         double* o, Py_ssize_t n) noexcept nogil:
    """fair_prob_batch for the normal model in blocks: log over the block, then erfc over the block
    (hmm_vmath.h), each row the same expression as digital_prob_c (which handles the other rows)."""
    cdef double b[_VB]
    cdef unsigned char reg[_VB]
    cdef Py_ssize_t i0, i, nb
    for i0 in range(0, n, _VB):
        nb = n - i0 if n - i0 < _VB else _VB
        for i in range(nb):
            reg[i] = _regular_row(S[i0 + i], K[i0 + i], tau[i0 + i], sig[i0 + i])
            b[i] = S[i0 + i] / K[i0 + i] if reg[i] else 1.0
        hmm_log_n(b, b, nb)
        for i in range(nb):
            b[i] = -(b[i] / (sig[i0 + i] * sqrt(tau[i0 + i]))) * M_SQRT1_2
        hmm_erfc_n(b, b, nb)
        for i in range(nb):
            if reg[i]:
                o[i0 + i] = _clamp_p(0.5 * b[i], p_min)
            else:
                o[i0 + i] = digital_prob_c(S[i0 + i], K[i0 + i], tau[i0 + i], sig[i0 + i], 0.0, p_min)


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


from hourmm_core.quant.vol cimport EwmaVol, VolState, vol_step
from hourmm_core.quant.features cimport ReturnFeatures, FeatState, feat_step, feat_block, FEAT_BLOCK


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
    if not 0 <= sigma_index < ev.st.k:
        raise ValueError(f"price_path_batch: sigma_index {sigma_index} out of range 0..{ev.st.k - 1}")
    cdef Py_ssize_t n = t.shape[0], j
    cdef int k = ev.st.k, i, r = 0
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
    # the states in C locals (registers, not object fields); rf keeps owning the features' buffers
    cdef VolState vs = ev.st
    cdef FeatState fs = rf.st
    # the shipped form in blocks of FEAT_BLOCK ticks, each a few small loops the CPU overlaps well:
    # the vol steps (sigma out), the features' block (libm log, state, windows: features.pxd's
    # feat_block), the erfc arguments of the accepted ticks (the same expression as _digital_x0,
    # vectorized by the compiler), one erfc over the block (hmm_vmath.h), then p (a rejected tick
    # repeats the last p; the edge cases go through _digital_x0). The features keep libm's log: their
    # returns are differences of logs, where the vector log's ulp would be the whole value.
    cdef double zb[FEAT_BLOCK]
    cdef double xb[FEAT_BLOCK]
    cdef double sb[FEAT_BLOCK]
    cdef double lb[FEAT_BLOCK]
    cdef double lpb[FEAT_BLOCK]
    cdef long long nh[FEAT_BLOCK]
    cdef signed char acc[FEAT_BLOCK]
    cdef Py_ssize_t j0, nb, jj
    cdef double x, tau, sg
    with nogil:
        if k == 3 and nu == 0.0 and n:     # the shipped half-lives and the normal model: unrolled, inlined
            j0 = 0
            while j0 < n:
                nb = n - j0 if n - j0 < FEAT_BLOCK else FEAT_BLOCK
                for jj in range(nb):
                    j = j0 + jj
                    vol_step(&vs, t[j], px[j], 3)
                    so[j, 0] = vs.sig[0]
                    so[j, 1] = vs.sig[1]
                    so[j, 2] = vs.sig[2]
                    sb[jj] = vs.sig[sigma_index]
                r = feat_block(&fs, <const long long*> &t[j0], &px[j0], nb, &fo[j0, 0], acc, nh, lpb)
                if r < 0:
                    break
                for jj in range(nb):
                    xb[jj] = fo[j0 + jj, 4]              # ln(price / open) = fs.last_lp - fs.open_lp
                    lb[jj] = <double> (nh[jj] - t[j0 + jj])
                for jj in range(nb):
                    zb[jj] = -(xb[jj] / (sb[jj] * sqrt(lb[jj] / 1000.0))) * M_SQRT1_2
                hmm_erfc_n(zb, zb, nb)
                for jj in range(nb):
                    if acc[jj]:
                        x = xb[jj]
                        tau = lb[jj] / 1000.0
                        sg = sb[jj]
                        if x == x and x != 0.0 and tau > 0.0 and sg > 0.0:
                            last_p = _clamp_p(0.5 * zb[jj], p_min)
                        else:
                            last_p = _digital_x0(x, tau, sg, p_min)
                    po[j0 + jj] = last_p
                j0 += nb
        else:
            for j in range(n):
                vol_step(&vs, t[j], px[j], k)
                r = feat_step(&fs, t[j], px[j])
                if r == 1:
                    last_p = _digital_x(fs.last_lp - fs.open_lp, (fs.next_hour - t[j]) / 1000.0,
                                        vs.sig[sigma_index], nu, p_min)
                elif r < 0:
                    break
                for i in range(k):
                    so[j, i] = vs.sig[i]
                for i in range(7):
                    fo[j, i] = fs.out[i]
                po[j] = last_p
    rf.st = fs                       # the buffers may have grown: rf frees the current ones
    if r < 0:
        raise MemoryError("price_path_batch: history buffer growth failed")
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
            alt_index += self.vol.st.k
        if not (0 <= sigma_index < self.vol.st.k and 0 <= alt_index < self.vol.st.k):
            raise ValueError(f"TickPricer: sigma_index/alt_index out of range 0..{self.vol.st.k - 1}")
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
        cdef int r
        vol_step(&self.vol.st, ts_ms, price, self.vol.st.k)
        r = feat_step(&self.features.st, ts_ms, price)
        if r < 0:
            raise MemoryError("TickPricer: history buffer growth failed")
        if r != 1:
            self.n_bad_ += 1
            return NAN
        if isnan(S):
            x = self.features.st.last_lp - self.features.st.open_lp      # ln(price / open), log already taken
        elif isfinite(S) and S > 0.0:
            x = hmm_log(S / self.features.st.open_px)
        else:
            x = NAN
        left = self.features.st.next_hour - ts_ms
        self.tau_s_ = left / 1000.0
        self.p_ = _digital_x(x, self.tau_s_, self.vol.st.sig[self.sigma_index], self.nu, self.p_min)
        pa = _digital_x(x, self.tau_s_, self.vol.st.sig[self.alt_index], self.nu, self.p_min)
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
        return self.vol.st.sig[self.sigma_index]

    @property
    def ready(self):
        """True once the volatility has warmed up and the hour has an open: only then is p usable."""
        return self.vol.st.sampled_s >= self.vol.st.warmup_s and self.features.st.have_open

    @property
    def open_price(self):
        return self.features.st.open_px

    @property
    def hour_end_ms(self):
        return self.features.st.next_hour if self.features.st.have_open else None

    @property
    def n_bad(self):
        return self.n_bad_


# The shipped rest-of-hour model (MinutePricer and its batch functions) lives in minute.pyx (its own
# job: 1-minute bars, the seasonal level, the adaptive scale); its names stay importable from here.
from hourmm_core.quant.minute import (MinutePricer, SCALE_C0, SCALE_GRID, minute_level_batch,  # noqa: E402
                                      minute_path_batch, minute_prob_batch, minute_scale_batch)
