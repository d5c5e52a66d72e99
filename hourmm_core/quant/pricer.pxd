# cython: language_level=3
cimport cython
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

@cython.final          # no subclasses: the batch loops call its methods directly (inlinable)
cdef class MinutePricer:
    cdef double season[1440]
    cdef double cum[1441]
    cdef double alpha
    cdef double halflife_min
    cdef double var_prior
    cdef double var_scale
    cdef double nu
    cdef double p_min
    cdef double num
    cdef double den
    cdef long long bar
    cdef double bar_close
    cdef double prev_close
    cdef bint have_bar
    cdef bint have_prev
    cdef bint bar_traded
    cdef long long n_returns_
    cdef long long n_bad_
    cdef double p_
    cdef double var_rest_
    cdef double tau_s_
    # walk-forward adaptive variance scale (0 window = fixed var_scale); updated once per hour
    cdef double bar_open
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
    cdef inline double level(self) noexcept nogil
    cdef void _close_hour(self, long long h, bint ok) noexcept nogil
    cdef void _feed_kline(self, long long open_ms, double op, double cl, long long until_ms) noexcept nogil
    cdef inline double level_at(self, long long ts_ms) noexcept nogil
    cdef void _close_bar(self) noexcept nogil
    cdef void c_advance(self, long long ts_ms) noexcept nogil
    cdef inline int c_on_trade(self, long long ts_ms, double price) noexcept nogil
    cdef inline double c_rest_var(self, long long ts_ms, long long hour_end_ms) noexcept nogil
    cdef inline double c_price(self, long long ts_ms, double S, double K, long long hour_end_ms) noexcept nogil
    cpdef double price(self, long long ts_ms, double S, double K, long long hour_end_ms)
    cpdef double update(self, long long ts_ms, double price, double K, long long hour_end_ms)
