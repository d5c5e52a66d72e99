# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Time-aware EWMA volatility on a fixed sampling grid (compiled).

Why a grid: BTC trades arrive irregularly and bounce between bid and ask
(microstructure noise). Squaring tick-to-tick returns would count that bounce as
variance and blow sigma up. Instead the price is sampled with *previous-tick*
sampling on a grid of ``sample_ms`` (default 1 s): the grid value at boundary
``g`` is the last trade price strictly before ``g``.

Algorithm (identical in ``hourmm_core.quant.reference.vol``):

* The first valid tick sets the anchor (the grid sample of its own bucket,
  ``bucket = ts_ms // sample_ms``).
* When a tick lands in a later bucket ``b_new > bucket``, the boundaries
  ``bucket+1 .. b_new`` are crossed. Their grid samples are all the previous tick's
  price, so the grid return over the elapsed ``dt = (b_new - bucket) * sample_s``
  seconds is ``r = ln(last_price / anchor)`` (the remaining intervals are flat).
  It is one observation of the per-second variance ``r**2 / dt``.
* For each half-life ``h`` the observation enters an EWMA with weight
  ``1 - a``, ``a = exp(-ln 2 * dt / h)`` (a true half-life: the weight of old data
  halves every ``h`` seconds of elapsed time, gaps decay more). The EWMA is
  bias-corrected (the running weight sum is tracked and divided out), so the
  estimate is usable from the first observation instead of starting at zero.
* ``sigma = sqrt(max(var, var_floor))`` per sqrt(second) of log price.
* ``ready`` once the sampled time covers the first (shortest listed) half-life.

Bad ticks (non-finite or non-positive price, timestamp going backwards) are
skipped and counted in ``n_bad``; ``update`` returns False for them. Nothing
here reads the wall clock.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport exp, sqrt, M_LN2

cnp.import_array()


cdef class EwmaVol:
    """Streaming multi-half-life EWMA volatility; see the module docstring."""

    def __cinit__(self, halflives_s=(30.0, 120.0, 600.0), long long sample_ms=1000,
                  double var_floor=1e-12):
        hl = [float(h) for h in halflives_s]
        if not 1 <= len(hl) <= VOL_MAX_K:
            raise ValueError(f"EwmaVol: need 1..{VOL_MAX_K} half-lives, got {len(hl)}")
        for h in hl:
            if not (h > 0.0 and h < float("inf")):
                raise ValueError(f"EwmaVol: half-life must be a positive finite number of seconds, got {h!r}")
        if sample_ms <= 0:
            raise ValueError(f"EwmaVol: sample_ms must be > 0, got {sample_ms}")
        if not (var_floor >= 0.0 and var_floor < float("inf")):
            raise ValueError(f"EwmaVol: var_floor must be >= 0 and finite, got {var_floor!r}")
        self.st.k = len(hl)
        self.st.sample_ms = sample_ms
        self.st.sample_s = sample_ms / 1000.0
        self.st.var_floor = var_floor
        cdef int i
        for i in range(self.st.k):
            self.st.halflives[i] = hl[i]
            self.st.alpha1[i] = exp(-M_LN2 * self.st.sample_s / hl[i])
        self.st.warmup_s = hl[0]
        self.reset()

    def reset(self):
        """Forget all state (e.g. after a feed outage longer than the half-lives)."""
        cdef int i
        for i in range(self.st.k):
            self.st.num[i] = 0.0
            self.st.wsum[i] = 0.0
            self.st.sig[i] = sqrt(self.st.var_floor)
        self.st.started = False
        self.st.bucket = 0
        self.st.next_ms = 0
        self.st.last_ts = 0
        self.st.last_price = 0.0
        self.st.anchor = 0.0
        self.st.sampled_s = 0.0
        self.st.n_samples = 0
        self.st.n_bad = 0

    cdef int c_update(self, long long ts_ms, double price) noexcept nogil:
        return vol_step(&self.st, ts_ms, price, self.st.k)

    cpdef bint update(self, long long ts_ms, double price):
        """Feed one tick (ms UTC, price > 0). Returns False (and counts) a bad tick."""
        return self.c_update(ts_ms, price) == 1

    @property
    def sigma(self):
        """sigma per sqrt(second) for the first half-life."""
        return self.st.sig[0]

    cpdef double sigma_at(self, int i):
        """sigma for half-life number ``i`` (order of ``halflives_s``)."""
        if i < 0 or i >= self.st.k:
            raise IndexError(f"EwmaVol.sigma_at: index {i} out of range 0..{self.st.k - 1}")
        return self.st.sig[i]

    def sigmas(self):
        """All sigmas as a float64 array, one per half-life."""
        out = np.empty(self.st.k, dtype=np.float64)
        cdef double[::1] o = out
        cdef int i
        for i in range(self.st.k):
            o[i] = self.st.sig[i]
        return out

    @property
    def halflives_s(self):
        return tuple(self.st.halflives[i] for i in range(self.st.k))

    @property
    def ready(self):
        """True once the sampled time covers the first half-life."""
        return self.st.sampled_s >= self.st.warmup_s

    @property
    def n_samples(self):
        return self.st.n_samples

    @property
    def n_bad(self):
        return self.st.n_bad

    @property
    def last_ts_ms(self):
        """Timestamp of the last accepted tick (None before the first)."""
        return self.st.last_ts if self.st.started else None


def ewma_vol_batch(ts_ms, price, halflives_s=(30.0, 120.0, 600.0), long long sample_ms=1000,
                   double var_floor=1e-12, out=None):
    """sigma after every tick, shape (n, len(halflives_s)), same algorithm as EwmaVol.

    Bad rows (non-positive/non-finite price, time going backwards) are skipped exactly
    as the streaming object skips them: their row repeats the previous sigma.
    ``out``: optional preallocated C-contiguous float64 array of shape (n, k) to fill.
    """
    cdef const cnp.int64_t[::1] t = np.ascontiguousarray(ts_ms, dtype=np.int64)
    cdef const double[::1] p = np.ascontiguousarray(price, dtype=np.float64)
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"ewma_vol_batch: ts_ms has {t.shape[0]} rows, price has {p.shape[0]}")
    cdef EwmaVol ev = EwmaVol(halflives_s, sample_ms, var_floor)
    cdef Py_ssize_t n = t.shape[0], j
    cdef int k = ev.st.k, i
    if out is None:
        out = np.empty((n, k), dtype=np.float64)
    elif not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (n, k)
              and out.flags.c_contiguous):
        raise ValueError(f"ewma_vol_batch: out must be a C-contiguous float64 array of shape ({n}, {k})")
    cdef double[:, ::1] o = out
    cdef VolState s = ev.st          # the state in a C local: registers, not object fields
    with nogil:
        if k == 3:                   # the shipped half-lives: unrolled
            for j in range(n):
                vol_step(&s, t[j], p[j], 3)
                o[j, 0] = s.sig[0]
                o[j, 1] = s.sig[1]
                o[j, 2] = s.sig[2]
        else:
            for j in range(n):
                vol_step(&s, t[j], p[j], k)
                for i in range(k):
                    o[j, i] = s.sig[i]
    return out
