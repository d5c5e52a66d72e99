# cython: language_level=3
cdef enum:
    VOL_MAX_K = 16

cdef class EwmaVol:
    cdef int k
    cdef long long sample_ms
    cdef double sample_s
    cdef double var_floor
    cdef double halflives[VOL_MAX_K]
    cdef double alpha1[VOL_MAX_K]
    cdef double num[VOL_MAX_K]
    cdef double wsum[VOL_MAX_K]
    cdef double sig[VOL_MAX_K]
    cdef bint started
    cdef long long bucket
    cdef long long next_ms
    cdef long long last_ts
    cdef double last_price
    cdef double anchor
    cdef double sampled_s
    cdef double warmup_s
    cdef long long n_samples_
    cdef long long n_bad_
    cdef int c_update(self, long long ts_ms, double price) noexcept nogil
    cpdef bint update(self, long long ts_ms, double price)
    cpdef double sigma_at(self, int i)
