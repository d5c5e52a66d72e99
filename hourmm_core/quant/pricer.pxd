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

# The MinutePricer state as a plain struct (season/cum point into the object's tables): the
# streaming object holds one; minute_path_batch runs the same inline functions (pricer.pyx,
# minute_*) on a copy held in a C local. One definition of the model.
cdef struct MinuteState:
    const double *season
    const double *cum
    double alpha
    double halflife_min
    double var_prior
    double var_scale
    double nu
    double p_min
    double num
    double den
    long long bar
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

cdef class MinutePricer:
    cdef double season[1440]
    cdef double cum[1441]
    cdef MinuteState st
    cdef double level(self) noexcept nogil
    cdef double level_at(self, long long ts_ms) noexcept nogil
    cdef void _close_bar(self) noexcept nogil
    cdef void c_advance(self, long long ts_ms) noexcept nogil
    cdef int c_on_trade(self, long long ts_ms, double price) noexcept nogil
    cdef double c_rest_var(self, long long ts_ms, long long hour_end_ms) noexcept nogil
    cdef double c_price(self, long long ts_ms, double S, double K, long long hour_end_ms) noexcept nogil
    cpdef double price(self, long long ts_ms, double S, double K, long long hour_end_ms)
    cpdef double update(self, long long ts_ms, double price, double K, long long hour_end_ms)
