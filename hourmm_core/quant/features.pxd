# cython: language_level=3
from libc.math cimport log, fabs, isfinite, NAN, M_PI
from libc.stdlib cimport malloc, calloc, free

cdef enum:
    FEAT_NW = 4
    FEAT_N = 7

# The whole ReturnFeatures state as a plain struct: the streaming object holds one (and owns
# its ring buffer), and the batch loops (return_features_batch, price_path_batch) run
# ``feat_step`` on a copy held in a C local (registers, not object fields), copying it back
# at the end so the object frees the right ring. One definition of the algorithm.
cdef struct FeatState:
    long long hour_ms
    long long grid_ms
    # ring buffer of (ts, log price): absolute indices, slot = idx & mask
    long long *rts
    double *rlp
    long long cap
    long long mask
    long long head      # absolute index of oldest kept entry
    long long tail      # absolute index one past newest entry
    long long ptr[FEAT_NW]   # absolute index of last entry with ts <= now - window (-1: none yet)
    bint started
    long long last_ts
    double last_lp
    long long hour_start
    double open_px
    double open_lp
    bint have_open
    long long gbucket
    long long gnext
    long long next_hour
    double ganchor
    double prev_abs
    double rv
    double bv
    double out[FEAT_N]
    long long n_bad


cdef inline int feat_grow(FeatState* s) noexcept nogil:
    """Double the ring (keeps every entry); -1 when the allocation fails (state unchanged)."""
    cdef long long ncap = s.cap * 2, i, n = s.tail - s.head
    cdef long long *nts = <long long *> calloc(ncap, sizeof(long long))
    cdef double *nlp = <double *> malloc(ncap * sizeof(double))
    if nts == NULL or nlp == NULL:
        free(nts)
        free(nlp)
        return -1
    for i in range(n):
        nts[(s.head + i) & (ncap - 1)] = s.rts[(s.head + i) & s.mask]
        nlp[(s.head + i) & (ncap - 1)] = s.rlp[(s.head + i) & s.mask]
    free(s.rts)
    free(s.rlp)
    s.rts = nts
    s.rlp = nlp
    s.cap = ncap
    s.mask = ncap - 1
    return 0


cdef inline void feat_start_hour(FeatState* s, long long hour_start, double open_px, double open_lp) noexcept nogil:
    s.hour_start = hour_start
    s.open_px = open_px
    s.open_lp = open_lp
    s.have_open = True
    s.gbucket = hour_start // s.grid_ms
    s.gnext = (s.gbucket + 1) * s.grid_ms
    s.next_hour = hour_start - hour_start % s.hour_ms + s.hour_ms
    s.ganchor = open_lp
    s.last_lp = open_lp
    s.prev_abs = 0.0
    s.rv = 0.0
    s.bv = 0.0


cdef inline double _feat_window(FeatState* s, int i, long long target, double lp, long long head,
                                long long tail) noexcept nogil:
    """ret over window i: advance its pointer to the last entry with ts <= target."""
    cdef long long pi = s.ptr[i], mask = s.mask
    cdef long long *rts = s.rts
    if pi < head and rts[head & mask] <= target:
        pi = head                 # first entry old enough for this window
    if pi >= head:
        # three branch-free probes cover the usual 0..3 advances (the exit of a plain while
        # loop is unpredictable per tick); the ring's ts increase, so entry pi + 2 old enough
        # means pi + 1 is too: the probes are independent loads (one latency, not three)
        pi += (((pi + 1 < tail) & (rts[(pi + 1) & mask] <= target))
               + ((pi + 2 < tail) & (rts[(pi + 2) & mask] <= target))
               + ((pi + 3 < tail) & (rts[(pi + 3) & mask] <= target)))
        while pi + 1 < tail and rts[(pi + 1) & mask] <= target:
            pi += 1
        s.ptr[i] = pi
        return lp - s.rlp[pi & mask]
    return NAN


cdef inline int feat_step(FeatState* s, long long ts_ms, double price) noexcept nogil:
    """One tick into the features (see features.pyx's docstring): 1 accepted, 0 bad
    (counted), -1 when the ring could not grow (out of memory; the tick is not taken)."""
    cdef long long b, head, tail
    cdef double r, ar, lp
    if not (isfinite(price) and price > 0.0) or (s.started and ts_ms < s.last_ts):
        s.n_bad += 1
        return 0
    if not (s.started and ts_ms == s.last_ts) and s.tail - s.head >= s.cap:
        if feat_grow(s) != 0:
            return -1
    lp = log(price)
    # hour roll: first tick of a new hour is its open (unless set_hour_open said otherwise)
    if not s.have_open or ts_ms >= s.next_hour:
        feat_start_hour(s, ts_ms - ts_ms % s.hour_ms, price, lp)
    # 1 s grid returns since the open (previous-tick sampling)
    if ts_ms >= s.gnext:            # crossed a grid boundary (no division on the common path)
        b = ts_ms // s.grid_ms
        r = s.last_lp - s.ganchor
        ar = fabs(r)
        s.rv += r * r
        s.bv += ar * s.prev_abs
        s.prev_abs = ar if b == s.gbucket + 1 else 0.0
        s.ganchor = s.last_lp
        s.gbucket = b
        s.gnext = (b + 1) * s.grid_ms
    s.last_lp = lp
    # ring buffer: one entry per distinct ms
    if s.started and ts_ms == s.last_ts:
        s.rlp[(s.tail - 1) & s.mask] = lp
    else:
        s.rts[s.tail & s.mask] = ts_ms
        s.rlp[s.tail & s.mask] = lp
        s.tail += 1
    s.started = True
    s.last_ts = ts_ms
    tail = s.tail
    head = s.head
    s.out[0] = _feat_window(s, 0, ts_ms - 1_000, lp, head, tail)
    s.out[1] = _feat_window(s, 1, ts_ms - 10_000, lp, head, tail)
    s.out[2] = _feat_window(s, 2, ts_ms - 60_000, lp, head, tail)
    s.out[3] = _feat_window(s, 3, ts_ms - 300_000, lp, head, tail)
    # drop entries no window needs (everything before the longest window's pointer)
    if s.ptr[FEAT_NW - 1] > s.head:
        s.head = s.ptr[FEAT_NW - 1]
    s.out[4] = lp - s.open_lp
    s.out[5] = s.rv
    s.out[6] = 0.5 * M_PI * s.bv
    return 1


cdef class ReturnFeatures:
    cdef FeatState st
    cdef int c_update(self, long long ts_ms, double price) except -1 nogil
    cpdef bint update(self, long long ts_ms, double price)
