# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Return features for the pricer and research (compiled).

Columns (``FEATURE_NAMES``): ``ret_1s ret_10s ret_1m ret_5m ret_hour rv_hour bv_hour``.

* ``ret_W = ln(price / P(ts - W))`` where ``P(t)`` is the price of the last tick at
  or before ``t`` (several ticks at the same ms: the last one). NaN until the history
  reaches back ``W``.
* ``ret_hour = ln(price / open)``; ``open`` is the first tick of the hour (hours are
  ``ts // hour_ms``) unless ``set_hour_open`` supplied the exchange's open.
* ``rv_hour = sum r_i^2`` and ``bv_hour = pi/2 * sum |r_i| |r_{i-1}|`` over the
  completed 1 s grid returns since the hour started (previous-tick sampling, the first
  grid sample is the open). Bipower variation is robust to jumps: a single jump enters
  rv squared but bv only through products with its small neighbours, so
  ``rv - bv`` estimates the jump part. A gap of several grid intervals is one
  return followed by flat ones, so the next return's neighbour is 0.

Returns are differences of natural-log prices (one ``log`` per tick: the ring stores
log prices), i.e. ``ln(a / b)`` computed as ``ln a - ln b``.

Memory: a ring buffer of (ts, log price) with one entry per distinct ms, kept only as far
back as the longest window (5 min), in plain C arrays (no Python objects per tick).
It doubles when full (bounded: at most 300 001 distinct ms fit in 5 minutes), so a
burst cannot overwrite history that a window still needs.

Bad ticks (non-finite/non-positive price, time going backwards) are skipped and counted
in ``n_bad``. Same algorithm in ``reference/features.py``.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport log, fabs, isfinite, NAN, M_PI
from libc.stdlib cimport malloc, calloc, free

cnp.import_array()

FEATURE_NAMES = ("ret_1s", "ret_10s", "ret_1m", "ret_5m", "ret_hour", "rv_hour", "bv_hour")
WINDOWS_MS = (1_000, 10_000, 60_000, 300_000)

cdef long long _INIT_CAP = 1024


cdef class ReturnFeatures:
    """Streaming return features; ``update(ts_ms, price)`` then read the properties."""

    def __cinit__(self, long long hour_ms=3_600_000, long long grid_ms=1000):
        if hour_ms <= 0 or grid_ms <= 0:
            raise ValueError(f"ReturnFeatures: hour_ms and grid_ms must be > 0, got {hour_ms}, {grid_ms}")
        self.hour_ms = hour_ms
        self.grid_ms = grid_ms
        self.windows[0] = 1_000
        self.windows[1] = 10_000
        self.windows[2] = 60_000
        self.windows[3] = 300_000
        self.cap = _INIT_CAP
        self.mask = self.cap - 1
        self.rts = <long long *> calloc(self.cap, sizeof(long long))
        self.rlp = <double *> malloc(self.cap * sizeof(double))
        if self.rts == NULL or self.rlp == NULL:
            raise MemoryError("ReturnFeatures: ring buffer allocation failed")
        self.reset()

    def __dealloc__(self):
        free(self.rts)
        free(self.rlp)

    def reset(self):
        """Forget everything (history, hour, counters)."""
        cdef int i
        self.head = 0
        self.tail = 0
        for i in range(FEAT_NW):
            self.ptr[i] = -1
        self.started = False
        self.last_ts = 0
        self.last_lp = NAN
        self.hour_start = 0
        self.gnext = 0
        self.next_hour = 0
        self.open_px = NAN
        self.open_lp = NAN
        self.have_open = False
        self.gbucket = 0
        self.ganchor = NAN
        self.prev_abs = 0.0
        self.rv = 0.0
        self.bv = 0.0
        for i in range(FEAT_N):
            self.out[i] = NAN
        self.n_bad_ = 0

    cdef int _grow(self) except -1:
        cdef long long ncap = self.cap * 2, i, n = self.tail - self.head
        cdef long long *nts = <long long *> calloc(ncap, sizeof(long long))
        cdef double *nlp = <double *> malloc(ncap * sizeof(double))
        if nts == NULL or nlp == NULL:
            free(nts)
            free(nlp)
            raise MemoryError("ReturnFeatures: ring buffer growth failed")
        for i in range(n):
            nts[(self.head + i) & (ncap - 1)] = self.rts[(self.head + i) & self.mask]
            nlp[(self.head + i) & (ncap - 1)] = self.rlp[(self.head + i) & self.mask]
        free(self.rts)
        free(self.rlp)
        self.rts = nts
        self.rlp = nlp
        self.cap = ncap
        self.mask = ncap - 1
        return 0

    cdef void _start_hour(self, long long hour_start, double open_px, double open_lp) noexcept nogil:
        self.hour_start = hour_start
        self.open_px = open_px
        self.open_lp = open_lp
        self.have_open = True
        self.gbucket = hour_start // self.grid_ms
        self.gnext = (self.gbucket + 1) * self.grid_ms
        self.next_hour = hour_start - hour_start % self.hour_ms + self.hour_ms
        self.ganchor = open_lp
        self.last_lp = open_lp
        self.prev_abs = 0.0
        self.rv = 0.0
        self.bv = 0.0

    def set_hour_open(self, long long hour_start_ms, double open_price):
        """Use the exchange's open for the hour starting at ``hour_start_ms``.

        For the hour already in progress only the open (ret_hour) changes; rv/bv keep
        their accumulated grid returns. For another hour the hour state restarts.
        """
        if not (isfinite(open_price) and open_price > 0.0):
            self.n_bad_ += 1
            raise ValueError(f"ReturnFeatures.set_hour_open: bad open price {open_price!r}")
        if self.have_open and hour_start_ms == self.hour_start:
            self.open_px = open_price
            self.open_lp = log(open_price)
        else:
            self._start_hour(hour_start_ms, open_price, log(open_price))
            if self.started and self.last_ts >= hour_start_ms:
                self.last_lp = self.rlp[(self.tail - 1) & self.mask]
        if self.started:
            self.out[4] = self.rlp[(self.tail - 1) & self.mask] - self.open_lp

    cdef int c_update(self, long long ts_ms, double price) except -1 nogil:
        cdef long long b, target, pi, head, tail, mask
        cdef long long *rts
        cdef double r, ar, lp
        cdef int i
        if not (isfinite(price) and price > 0.0) or (self.started and ts_ms < self.last_ts):
            self.n_bad_ += 1
            return 0
        lp = log(price)
        # hour roll: first tick of a new hour is its open (unless set_hour_open said otherwise)
        if not self.have_open or ts_ms >= self.next_hour:
            self._start_hour(ts_ms - ts_ms % self.hour_ms, price, lp)
        # 1 s grid returns since the open (previous-tick sampling)
        if ts_ms >= self.gnext:            # crossed a grid boundary (no division on the common path)
            b = ts_ms // self.grid_ms
            r = self.last_lp - self.ganchor
            ar = fabs(r)
            self.rv += r * r
            self.bv += ar * self.prev_abs
            self.prev_abs = ar if b == self.gbucket + 1 else 0.0
            self.ganchor = self.last_lp
            self.gbucket = b
            self.gnext = (b + 1) * self.grid_ms
        self.last_lp = lp
        # ring buffer: one entry per distinct ms
        if self.started and ts_ms == self.last_ts:
            self.rlp[(self.tail - 1) & self.mask] = lp
        else:
            if self.tail - self.head >= self.cap:
                with gil:
                    self._grow()
            self.rts[self.tail & self.mask] = ts_ms
            self.rlp[self.tail & self.mask] = lp
            self.tail += 1
        self.started = True
        self.last_ts = ts_ms
        rts = self.rts
        mask = self.mask
        tail = self.tail
        head = self.head
        for i in range(FEAT_NW):
            target = ts_ms - self.windows[i]
            pi = self.ptr[i]
            if pi < head and rts[head & mask] <= target:
                pi = head                 # first entry old enough for this window
            if pi >= head:
                # two branch-free steps cover the usual 0..2 advances (the exit of a plain
                # while loop is unpredictable per tick); the loop then rarely iterates
                pi += (pi + 1 < tail) & (rts[(pi + 1) & mask] <= target)
                pi += (pi + 1 < tail) & (rts[(pi + 1) & mask] <= target)
                while pi + 1 < tail and rts[(pi + 1) & mask] <= target:
                    pi += 1
                self.ptr[i] = pi
                self.out[i] = lp - self.rlp[pi & mask]
            else:
                self.out[i] = NAN
        # drop entries no window needs (everything before the longest window's pointer)
        if self.ptr[FEAT_NW - 1] > self.head:
            self.head = self.ptr[FEAT_NW - 1]
        self.out[4] = lp - self.open_lp
        self.out[5] = self.rv
        self.out[6] = 0.5 * M_PI * self.bv
        return 1

    cpdef bint update(self, long long ts_ms, double price):
        """Feed one tick; False (counted in n_bad) for a bad tick."""
        return self.c_update(ts_ms, price) == 1

    @property
    def ret_1s(self):
        return self.out[0]

    @property
    def ret_10s(self):
        return self.out[1]

    @property
    def ret_1m(self):
        return self.out[2]

    @property
    def ret_5m(self):
        return self.out[3]

    @property
    def ret_hour(self):
        return self.out[4]

    @property
    def rv_hour(self):
        return self.out[5]

    @property
    def bv_hour(self):
        return self.out[6]

    @property
    def hour_start_ms(self):
        return self.hour_start if self.have_open else None

    @property
    def open_price(self):
        return self.open_px

    @property
    def n_bad(self):
        return self.n_bad_

    def as_dict(self):
        """{name: value} in FEATURE_NAMES order (NaN where not yet defined)."""
        return {FEATURE_NAMES[i]: self.out[i] for i in range(FEAT_N)}

    def values(self):
        out = np.empty(FEAT_N, dtype=np.float64)
        cdef int i
        for i in range(FEAT_N):
            out[i] = self.out[i]
        return out


def return_features_batch(ts_ms, price, long long hour_ms=3_600_000, long long grid_ms=1000, out=None):
    """Features after every tick, shape (n, 7) in FEATURE_NAMES order.

    Hour opens are the first price of each ``hour_ms`` bucket of ``ts_ms``; bad rows
    are skipped (their row repeats the previous values, NaN before the first good tick).
    ``out``: optional preallocated C-contiguous float64 array of shape (n, 7) to fill
    (saves the page faults of a fresh 56 MB array per million ticks in a loop).
    """
    cdef const cnp.int64_t[::1] t = np.ascontiguousarray(ts_ms, dtype=np.int64)
    cdef const double[::1] p = np.ascontiguousarray(price, dtype=np.float64)
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"return_features_batch: ts_ms has {t.shape[0]} rows, price has {p.shape[0]}")
    cdef ReturnFeatures rf = ReturnFeatures(hour_ms, grid_ms)
    cdef Py_ssize_t n = t.shape[0], j
    cdef int i
    if out is None:
        out = np.empty((n, FEAT_N), dtype=np.float64)
    elif not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (n, FEAT_N)
              and out.flags.c_contiguous):
        raise ValueError(f"return_features_batch: out must be a C-contiguous float64 array of shape ({n}, {FEAT_N})")
    cdef double[:, ::1] o = out
    with nogil:
        for j in range(n):
            rf.c_update(t[j], p[j])
            for i in range(FEAT_N):
                o[j, i] = rf.out[i]
    return out
