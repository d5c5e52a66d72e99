# cython: language_level=3
cdef enum:
    FEAT_NW = 4
    FEAT_N = 7

cdef class ReturnFeatures:
    cdef long long hour_ms
    cdef long long grid_ms
    cdef long long windows[FEAT_NW]
    # ring buffer of (ts, price): absolute indices, slot = idx & mask
    cdef long long *rts
    cdef double *rlp
    cdef long long cap
    cdef long long mask
    cdef long long head      # absolute index of oldest kept entry
    cdef long long tail      # absolute index one past newest entry
    cdef long long ptr[FEAT_NW]   # absolute index of last entry with ts <= now - window (-1: none yet)
    cdef bint started
    cdef long long last_ts
    cdef double last_lp
    cdef long long hour_start
    cdef double open_px
    cdef double open_lp
    cdef bint have_open
    cdef long long gbucket
    cdef long long gnext
    cdef long long next_hour
    cdef double ganchor
    cdef double prev_abs
    cdef double rv
    cdef double bv
    cdef double out[FEAT_N]
    cdef long long n_bad_
    cdef int _grow(self) except -1
    cdef void _start_hour(self, long long hour_start, double open_px, double open_lp) noexcept nogil
    cdef int c_update(self, long long ts_ms, double price) except -1 nogil
    cpdef bint update(self, long long ts_ms, double price)
