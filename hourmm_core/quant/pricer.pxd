# cython: language_level=3
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
