# cython: language_level=3
cimport cython
from libc.math cimport log, sqrt, isfinite, isnan, NAN, M_SQRT1_2

cdef extern from "hmm_vmath.h" nogil:
    # the core's erfc/log: glibc's vector math (libmvec, 4 lanes AVX2 / 2 lanes SSE2, chosen at run
    # time) when setup.py's probe found it, else libm. One value goes through the same routine as a
    # block, so streaming and batch stay bit for bit equal (hmm_vmath.h).
    double hmm_erfc(double x)
    double hmm_log(double x)
    void hmm_erfc_n(const double* x, double* y, Py_ssize_t n)
    void hmm_log_n(const double* x, double* y, Py_ssize_t n)
    const char* HOURMM_VMATH_KIND
    bint hmm_pos_finite(double x)        # isfinite(x) and x > 0.0, one compare (hmm_vmath.h)
cdef double student_t_cdf_c(double t, double nu) noexcept nogil
cdef double digital_prob_c(double S, double K, double tau_s, double sigma, double nu, double p_min) noexcept nogil

cdef class FairPricer:
    cdef double nu
    cdef double p_min
    cdef double p_
    cdef double p_alt_
    cdef double p_unc_
    cdef double tau_s_
    cdef long long ts_ms_
    cdef long long n_bad_
    cdef double c_update(self, long long ts_ms, double S, double K, long long hour_end_ms,
                         double sigma, double sigma_alt) noexcept nogil
    cpdef double update(self, long long ts_ms, double S, double K, long long hour_end_ms,
                        double sigma, double sigma_alt)

cpdef double student_t_cdf(double t, double nu)
cpdef double digital_prob(double S, double K, double tau_s, double sigma, double nu=*, double p_min=*)

cdef int _check_params(double nu, double p_min) except -1


cdef inline double _clamp_p(double p, double p_min) noexcept nogil:
    """A quote never goes to certainty: p clamped to [p_min, 1 - p_min]."""
    if p < p_min:
        p = p_min
    if p > 1.0 - p_min:
        p = 1.0 - p_min
    return p


@cython.cdivision(True)
cdef inline double _digital_x0(double x, double tau_s, double sigma, double p_min) noexcept nogil:
    """``_digital_x`` for the normal model (nu = 0): small enough to inline into the batch loops."""
    cdef double p
    if isnan(x) or isnan(tau_s) or isnan(sigma):
        return NAN
    if x == 0.0:
        p = 0.5
    elif tau_s <= 0.0 or sigma <= 0.0:
        p = 1.0 if x > 0.0 else 0.0
    else:
        p = 0.5 * hmm_erfc(-(x / (sigma * sqrt(tau_s))) * M_SQRT1_2)
    return _clamp_p(p, p_min)


@cython.cdivision(True)
cdef inline double _digital_x(double x, double tau_s, double sigma, double nu, double p_min) noexcept nogil:
    """digital_prob from x = ln S - ln K directly (the fused paths already hold log prices)."""
    cdef double z
    if nu == 0.0:
        return _digital_x0(x, tau_s, sigma, p_min)
    if not (nu > 2.0):
        return NAN
    if isnan(x) or isnan(tau_s) or isnan(sigma) or x == 0.0 or tau_s <= 0.0 or sigma <= 0.0:
        return _digital_x0(x, tau_s, sigma, p_min)   # the edge cases (NaN, at the strike, expired) are the same
    z = x / (sigma * sqrt(tau_s))
    return _clamp_p(student_t_cdf_c(z / sqrt((nu - 2.0) / nu), nu), p_min)
