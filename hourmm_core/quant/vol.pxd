# cython: language_level=3
from libc.math cimport exp, log, sqrt, isfinite, M_LN2

cdef extern from "hmm_vmath.h" nogil:
    bint hmm_pos_finite(double x)        # isfinite(x) and x > 0.0 as one compare of the bits

cdef enum:
    VOL_MAX_K = 16

# The whole EwmaVol state as a plain struct: the streaming object holds one, and the batch
# loops (ewma_vol_batch, price_path_batch) run ``vol_step`` on a copy held in a C local,
# so the C compiler keeps the scalars in registers. One definition of the algorithm.
cdef struct VolState:
    int k
    long long sample_ms
    double sample_s
    double var_floor
    double halflives[VOL_MAX_K]
    double alpha1[VOL_MAX_K]
    double num[VOL_MAX_K]
    double wsum[VOL_MAX_K]
    double sig[VOL_MAX_K]
    bint started
    long long bucket
    long long next_ms
    long long last_ts
    double last_price
    double anchor
    double sampled_s
    double warmup_s
    long long n_samples
    long long n_bad


cdef inline int vol_step(VolState* s, long long ts_ms, double price, int k) noexcept nogil:
    """One tick into the EWMA (see vol.pyx's docstring); 1 accepted, 0 bad (counted).

    ``k`` must equal ``s.k``; a batch loop passes the literal (e.g. 3) in a branch taken when
    ``s.k == 3`` so the compiler unrolls the half-life loops and keeps them in registers."""
    cdef long long b
    cdef double r, dt, obs, a, v
    cdef int i
    if not hmm_pos_finite(price):     # not (isfinite(price) and price > 0.0)
        s.n_bad += 1
        return 0
    if not s.started:
        s.started = True
        s.bucket = ts_ms // s.sample_ms
        s.next_ms = (s.bucket + 1) * s.sample_ms
        s.last_ts = ts_ms
        s.last_price = price
        s.anchor = price
        return 1
    if ts_ms < s.last_ts:
        s.n_bad += 1
        return 0
    if ts_ms >= s.next_ms:          # crossed a grid boundary (no division on the common path)
        if ts_ms < s.next_ms + s.sample_ms and s.next_ms >= 0:
            b = s.bucket + 1        # the next grid cell (= ts_ms // sample_ms without a 64-bit division)
        else:
            b = ts_ms // s.sample_ms
        r = log(s.last_price / s.anchor)
        if b == s.bucket + 1:
            dt = s.sample_s
            obs = r * r if dt == 1.0 else r * r / dt      # x / 1.0 == x exactly (the 1 s grid)
            for i in range(k):
                a = s.alpha1[i]
                s.num[i] = a * s.num[i] + (1.0 - a) * obs
                s.wsum[i] = a * s.wsum[i] + (1.0 - a)
                v = s.num[i] / s.wsum[i]
                s.sig[i] = sqrt(v if v > s.var_floor else s.var_floor)
        else:
            dt = (b - s.bucket) * s.sample_s
            obs = r * r / dt
            for i in range(k):
                a = exp(-M_LN2 * dt / s.halflives[i])
                s.num[i] = a * s.num[i] + (1.0 - a) * obs
                s.wsum[i] = a * s.wsum[i] + (1.0 - a)
                v = s.num[i] / s.wsum[i]
                s.sig[i] = sqrt(v if v > s.var_floor else s.var_floor)
        s.sampled_s += dt
        s.n_samples += 1
        s.anchor = s.last_price
        s.bucket = b
        s.next_ms = (b + 1) * s.sample_ms
    s.last_ts = ts_ms
    s.last_price = price
    return 1


cdef class EwmaVol:
    cdef VolState st
    cdef int c_update(self, long long ts_ms, double price) noexcept nogil
    cpdef bint update(self, long long ts_ms, double price)
    cpdef double sigma_at(self, int i)
