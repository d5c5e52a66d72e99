# cython: language_level=3
from libc.math cimport log, fabs, isfinite, NAN, M_PI
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memmove

cdef enum:
    FEAT_NW = 4
    FEAT_N = 7

# The whole ReturnFeatures state as a plain struct: the streaming object holds one (and owns
# its history buffers), and the batch loops (return_features_batch, price_path_batch) run
# ``feat_step`` (or its two halves, ``feat_core`` and ``feat_windows``) on a copy held in a C
# local (registers, not object fields), copying it back at the end so the object frees the right
# buffers. One definition of the algorithm.
#
# History layout (session 9): a LINEAR buffer of (ts, log price), one entry per distinct ms,
# indices are buffer positions; every slot from ``tail`` to ``cap`` holds TS_SENTINEL (greater than
# any tick time). So a window's pointer advances with plain loads ``rts[pi + 1..3] <= target``: no
# ring mask, no ``< tail`` test (the slots past the newest entry can never be old enough: the newest
# entry is the current tick, later than every window's target), and no "first entry" branch (a
# pointer starts at -1 and the probe at -1 + 1 = 0 is the oldest entry). When the buffer has no room,
# ``feat_room`` moves the live entries [head, tail) to the front (or doubles the buffer when they
# fill more than half of it) and shifts the pointers: amortized less than one 16-byte move per entry.
from libc.limits cimport LLONG_MAX as TS_SENTINEL     # later than any tick

cdef struct FeatState:
    long long hour_ms
    long long grid_ms
    # history: entries [head, tail) of rts/rlp are live, rts[tail:cap] == TS_SENTINEL
    long long *rts
    double *rlp
    long long cap
    long long head      # oldest entry any window can still need
    long long tail      # one past the newest entry
    long long ptr[FEAT_NW]   # last entry with ts <= now - window (-1: none yet)
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


cdef inline int feat_room(FeatState* s, long long extra) noexcept nogil:
    """Make room for ``extra`` more entries plus the probes' 2 slots past the newest one
    (``tail + extra + 2 < cap``): move the live entries to the front, or grow (keeps every live
    entry). -1 when the allocation fails (state unchanged)."""
    cdef long long live = s.tail - s.head, shift = s.head, ncap, i
    cdef long long *nts
    cdef double *nlp
    if s.tail + extra + 2 < s.cap:
        return 0
    if 2 * (live + extra + 3) <= s.cap:
        memmove(s.rts, s.rts + shift, live * sizeof(long long))
        memmove(s.rlp, s.rlp + shift, live * sizeof(double))
        for i in range(live, s.tail):
            s.rts[i] = TS_SENTINEL
    else:
        ncap = s.cap * 2
        while 2 * (live + extra + 3) > ncap:
            ncap *= 2
        nts = <long long *> malloc(ncap * sizeof(long long))
        nlp = <double *> malloc(ncap * sizeof(double))
        if nts == NULL or nlp == NULL:
            free(nts)
            free(nlp)
            return -1
        memcpy(nts, s.rts + shift, live * sizeof(long long))
        memcpy(nlp, s.rlp + shift, live * sizeof(double))
        for i in range(live, ncap):
            nts[i] = TS_SENTINEL
        free(s.rts)
        free(s.rlp)
        s.rts = nts
        s.rlp = nlp
        s.cap = ncap
    s.head = 0
    s.tail = live
    for i in range(FEAT_NW):
        if s.ptr[i] >= 0:       # a pointer >= 0 is >= head (the longest window's pointer is the head)
            s.ptr[i] -= shift
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


cdef inline int feat_core(FeatState* s, long long ts_ms, double price, double lp) noexcept nogil:
    """One tick into everything but the return windows; ``lp = log(price)`` (libm's, taken by the
    caller: a batch takes a block of them in one loop). 1 accepted, 0 bad (counted). The caller has
    made room (``feat_room(s, 1)``) for a new entry."""
    cdef long long b
    cdef double r, ar
    if not (isfinite(price) and price > 0.0) or (s.started and ts_ms < s.last_ts):
        s.n_bad += 1
        return 0
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
    # history: one entry per distinct ms
    if s.started and ts_ms == s.last_ts:
        s.rlp[s.tail - 1] = lp
    else:
        s.rts[s.tail] = ts_ms
        s.rlp[s.tail] = lp
        s.tail += 1
    s.started = True
    s.last_ts = ts_ms
    s.out[4] = lp - s.open_lp
    s.out[5] = s.rv
    s.out[6] = 0.5 * M_PI * s.bv
    return 1


cdef inline long long _feat_advance(const long long* rts, long long pi, long long target) noexcept nogil:
    """The last entry with ts <= target, from pointer ``pi`` (the entries' ts increase, sentinels
    after the newest): three branch-free probes cover the usual 0..3 advances (a plain while loop's
    exit is unpredictable per tick; entry pi + 2 old enough means pi + 1 is too, so the probes are
    independent loads), then the loop for longer jumps."""
    pi += (rts[pi + 1] <= target) + (rts[pi + 2] <= target) + (rts[pi + 3] <= target)
    while rts[pi + 1] <= target:
        pi += 1
    return pi


cdef inline void feat_windows(FeatState* s, long long ts_ms, double lp) noexcept nogil:
    """The four return windows after an accepted tick at ``ts_ms`` with log price ``lp``; drops the
    entries no window needs. Entries appended after this tick's (a batch runs its block's
    ``feat_core`` first) are later than every target, so they are never counted."""
    cdef const long long *rts = s.rts
    cdef const double *rlp = s.rlp
    cdef long long p0 = _feat_advance(rts, s.ptr[0], ts_ms - 1_000)
    cdef long long p1 = _feat_advance(rts, s.ptr[1], ts_ms - 10_000)
    cdef long long p2 = _feat_advance(rts, s.ptr[2], ts_ms - 60_000)
    cdef long long p3 = _feat_advance(rts, s.ptr[3], ts_ms - 300_000)
    s.ptr[0] = p0
    s.ptr[1] = p1
    s.ptr[2] = p2
    s.ptr[3] = p3
    s.out[0] = lp - rlp[p0] if p0 >= 0 else NAN
    s.out[1] = lp - rlp[p1] if p1 >= 0 else NAN
    s.out[2] = lp - rlp[p2] if p2 >= 0 else NAN
    s.out[3] = lp - rlp[p3] if p3 >= 0 else NAN
    # drop entries no window needs (everything before the longest window's pointer)
    if p3 > s.head:
        s.head = p3


cdef inline int feat_step(FeatState* s, long long ts_ms, double price) noexcept nogil:
    """One tick into the features (see features.pyx's docstring): 1 accepted, 0 bad
    (counted), -1 when the history could not grow (out of memory; the tick is not taken)."""
    cdef int r
    if s.tail + 3 >= s.cap and feat_room(s, 1) != 0:
        return -1
    r = feat_core(s, ts_ms, price, log(price))
    if r == 1:
        feat_windows(s, ts_ms, s.last_lp)
    return r


cdef enum:
    FEAT_BLOCK = 128        # ticks per feat_block call (the callers' stack buffers)


cdef inline int feat_block(FeatState* s, const long long* t, const double* px, Py_ssize_t nb, double* fo,
                           signed char* acc, long long* nh, double* lpb) noexcept nogil:
    """``feat_step`` over ``nb`` <= FEAT_BLOCK ticks, scheduled for the batch loops: room for the
    block, then libm's ``log`` of every price in one loop, ``feat_core`` tick by tick, then the
    windows tick by tick (each a small loop the CPU overlaps well; the same steps and results as
    ``feat_step``). Writes row ``jj`` of ``fo`` (C-contiguous, 7 per row: the features after the
    tick; a bad tick repeats the previous row), ``acc[jj]`` (1 accepted, 0 bad), ``nh[jj]`` (the
    end of the tick's hour after the tick). ``lpb``: scratch. -1 when the history could not grow
    (out of memory: nothing of the block is taken)."""
    cdef Py_ssize_t jj
    if feat_room(s, nb) != 0:
        return -1
    for jj in range(nb):
        lpb[jj] = log(px[jj])
    for jj in range(nb):
        acc[jj] = <signed char> feat_core(s, t[jj], px[jj], lpb[jj])
        nh[jj] = s.next_hour
        fo[7 * jj + 4] = s.out[4]
        fo[7 * jj + 5] = s.out[5]
        fo[7 * jj + 6] = s.out[6]
    for jj in range(nb):
        if acc[jj]:
            feat_windows(s, t[jj], lpb[jj])
        fo[7 * jj + 0] = s.out[0]
        fo[7 * jj + 1] = s.out[1]
        fo[7 * jj + 2] = s.out[2]
        fo[7 * jj + 3] = s.out[3]
    return 0


cdef class ReturnFeatures:
    cdef FeatState st
    cdef int c_update(self, long long ts_ms, double price) except -1 nogil
    cpdef bint update(self, long long ts_ms, double price)
