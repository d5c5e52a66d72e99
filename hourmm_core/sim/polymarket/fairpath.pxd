# The agents' true fair value on the replayed BTC path, typed (fairpath.pyx).

cdef class FairPath:
    cdef const long long[::1] ts
    cdef const double[::1] px
    cdef Py_ssize_t n
    cdef object sigma_of                  # PricePath.sigma_for (the hour's vol: computed once per hour)
    cdef dict hours                       # hour start -> (open or None, sigma)
    cdef long long c_hour                 # the last hour asked for, its open and sigma
    cdef bint c_has_hour, c_has_open
    cdef double c_open, c_sigma
    cdef long long m_hour, m_t            # the last (hour, t) answered and its value
    cdef double m_val
    cdef bint m_has
    cdef Py_ssize_t _right(self, long long t) noexcept nogil
    cdef int _load_hour(self, long long hour_start_ms) except -1
    cdef double fair_up_c(self, long long hour_start_ms, long long t_ms) except? -1.0
