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

Returns are differences of natural-log prices (one ``log`` per tick: the history stores
log prices), i.e. ``ln(a / b)`` computed as ``ln a - ln b``.

Memory: a buffer of (ts, log price) with one entry per distinct ms, kept only as far
back as the longest window (5 min), in plain C arrays (no Python objects per tick; the
layout is described in features.pxd). It doubles when the live entries fill half of it
(bounded: at most 300 001 distinct ms fit in 5 minutes), so a burst cannot overwrite
history that a window still needs.

Bad ticks (non-finite/non-positive price, time going backwards) are skipped and counted
in ``n_bad``. Same algorithm in ``reference/features.py``.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport log, isfinite, NAN
from libc.stdlib cimport malloc

cnp.import_array()

FEATURE_NAMES = ("ret_1s", "ret_10s", "ret_1m", "ret_5m", "ret_hour", "rv_hour", "bv_hour")
WINDOWS_MS = (1_000, 10_000, 60_000, 300_000)

cdef long long _INIT_CAP = 1024


cdef class ReturnFeatures:
    """Streaming return features; ``update(ts_ms, price)`` then read the properties."""

    def __cinit__(self, long long hour_ms=3_600_000, long long grid_ms=1000):
        if hour_ms <= 0 or grid_ms <= 0:
            raise ValueError(f"ReturnFeatures: hour_ms and grid_ms must be > 0, got {hour_ms}, {grid_ms}")
        self.st.hour_ms = hour_ms
        self.st.grid_ms = grid_ms
        self.st.cap = _INIT_CAP
        self.st.rts = <long long *> malloc(self.st.cap * sizeof(long long))
        self.st.rlp = <double *> malloc(self.st.cap * sizeof(double))
        if self.st.rts == NULL or self.st.rlp == NULL:
            raise MemoryError("ReturnFeatures: history buffer allocation failed")
        self.reset()

    def __dealloc__(self):
        free(self.st.rts)
        free(self.st.rlp)

    def reset(self):
        """Forget everything (history, hour, counters)."""
        cdef long long i
        for i in range(self.st.cap):
            self.st.rts[i] = TS_SENTINEL       # every slot from tail on (features.pxd)
        self.st.head = 0
        self.st.tail = 0
        for i in range(FEAT_NW):
            self.st.ptr[i] = -1
        self.st.started = False
        self.st.last_ts = 0
        self.st.last_lp = NAN
        self.st.hour_start = 0
        self.st.gnext = 0
        self.st.next_hour = 0
        self.st.open_px = NAN
        self.st.open_lp = NAN
        self.st.have_open = False
        self.st.gbucket = 0
        self.st.ganchor = NAN
        self.st.prev_abs = 0.0
        self.st.rv = 0.0
        self.st.bv = 0.0
        for i in range(FEAT_N):
            self.st.out[i] = NAN
        self.st.n_bad = 0

    def set_hour_open(self, long long hour_start_ms, double open_price):
        """Use the exchange's open for the hour starting at ``hour_start_ms``.

        For the hour already in progress only the open (ret_hour) changes; rv/bv keep
        their accumulated grid returns. For another hour the hour state restarts.
        """
        if not (isfinite(open_price) and open_price > 0.0):
            self.st.n_bad += 1
            raise ValueError(f"ReturnFeatures.set_hour_open: bad open price {open_price!r}")
        if self.st.have_open and hour_start_ms == self.st.hour_start:
            self.st.open_px = open_price
            self.st.open_lp = log(open_price)
        else:
            feat_start_hour(&self.st, hour_start_ms, open_price, log(open_price))
            if self.st.started and self.st.last_ts >= hour_start_ms:
                self.st.last_lp = self.st.rlp[self.st.tail - 1]
        if self.st.started:
            self.st.out[4] = self.st.rlp[self.st.tail - 1] - self.st.open_lp

    cdef int c_update(self, long long ts_ms, double price) except -1 nogil:
        cdef int r = feat_step(&self.st, ts_ms, price)
        if r < 0:
            with gil:
                raise MemoryError("ReturnFeatures: history buffer growth failed")
        return r

    cpdef bint update(self, long long ts_ms, double price):
        """Feed one tick; False (counted in n_bad) for a bad tick."""
        return self.c_update(ts_ms, price) == 1

    @property
    def ret_1s(self):
        return self.st.out[0]

    @property
    def ret_10s(self):
        return self.st.out[1]

    @property
    def ret_1m(self):
        return self.st.out[2]

    @property
    def ret_5m(self):
        return self.st.out[3]

    @property
    def ret_hour(self):
        return self.st.out[4]

    @property
    def rv_hour(self):
        return self.st.out[5]

    @property
    def bv_hour(self):
        return self.st.out[6]

    @property
    def hour_start_ms(self):
        return self.st.hour_start if self.st.have_open else None

    @property
    def open_price(self):
        return self.st.open_px

    @property
    def n_bad(self):
        return self.st.n_bad

    def as_dict(self):
        """{name: value} in FEATURE_NAMES order (NaN where not yet defined)."""
        return {FEATURE_NAMES[i]: self.st.out[i] for i in range(FEAT_N)}

    def values(self):
        out = np.empty(FEAT_N, dtype=np.float64)
        cdef int i
        for i in range(FEAT_N):
            out[i] = self.st.out[i]
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
    cdef Py_ssize_t n = t.shape[0], j0, nb
    cdef int r = 0
    if out is None:
        out = np.empty((n, FEAT_N), dtype=np.float64)
    elif not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (n, FEAT_N)
              and out.flags.c_contiguous):
        raise ValueError(f"return_features_batch: out must be a C-contiguous float64 array of shape ({n}, {FEAT_N})")
    cdef double[:, ::1] o = out
    cdef FeatState s = rf.st         # the state in a C local (registers); rf keeps owning the buffers
    cdef signed char acc[FEAT_BLOCK]
    cdef long long nh[FEAT_BLOCK]
    cdef double lpb[FEAT_BLOCK]
    with nogil:
        j0 = 0
        while j0 < n:
            nb = n - j0 if n - j0 < FEAT_BLOCK else FEAT_BLOCK
            r = feat_block(&s, <const long long*> &t[j0], &p[j0], nb, &o[j0, 0], acc, nh, lpb)
            if r < 0:
                break
            j0 += nb
    rf.st = s                        # the buffers may have grown: rf frees the current ones
    if r < 0:
        raise MemoryError("return_features_batch: history buffer growth failed")
    return out
