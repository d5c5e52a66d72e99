# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Arithmetic floors of the batch core: the unavoidable math and output writes, nothing else.

Compiled by ``benchmarks/floor_build.py`` at benchmark time with setup.py's flags; not part of
the product. Each loop does the transcendental calls and stores that the real batch function
cannot avoid, with the same data dependences (each result is written, so nothing is dead),
and none of the state handling, branches, windows or bar bookkeeping:

* ``fused_floor`` (``price_path_batch``): per tick one ``log``, ``exp``, ``sqrt``, ``erfc``
  and the k + 7 + 1 doubles written (88 B for k = 3): the issue-15 definition.
* ``vol_floor`` (``ewma_vol_batch``): per tick the k sigmas written; per crossed sample grid
  boundary one ``log`` and k divisions + ``sqrt`` (the EWMA's own arithmetic is free here). The
  divisors are run-time values, as the EWMA's weight sums are (session 10: with the literal
  divisors 1.0, 2.0, 3.0 GCC folded ``/ 1.0`` and made ``/ 2.0`` a multiply, so the floor took one
  of the k divisions it states).
* ``minute_path_floor`` (``minute_path_batch``): the tick scan (read ts/price up to each
  instant) and per instant one ``log``, ``sqrt``, ``erfc`` and 8 B written.

The ``erfc`` argument matters: glibc's erfc takes a cheap polynomial below 0.84375 and two
``exp`` calls above ~1.25, so a floor must feed it the model's z, not any number. Both floors
that call erfc on the tick data use z = ln(S / K) / sqrt(var_ms * ms to the hour's end) with
``var_ms`` the model's per-millisecond variance (the caller passes it; for the minute path
``var_prior * var_scale / 60000``), K = the hour's first price: the same |z| distribution as the
model's (session 6: before this the minute floor's z came from a variance ~300x too large and
99% of its erfc calls took the cheap branch against 56% of the model's).
* ``fair_prob_floor`` (``fair_prob_batch``): per row one ``log``, ``sqrt``, ``erfc``, 8 B written.

Vector math (session 7): the core calls erfc/log through hourmm_core/quant/hmm_vmath.h (glibc's
libmvec when the build found it), so the floors do too, with the same flags (floor_build.py runs the
same probe): every floor takes its erfc (and the log of S/K, the fused floor's exp) over blocks of
``_VB`` values, the cheapest layout for the vector routines. The fused floor's per-tick log(price)
stays libm's, as in the core's features (their returns are differences of logs, kept exact against
the reference). Without libmvec the header is plain libm and the floors are the scalar ones.
"""
cimport numpy as cnp
from libc.math cimport log, sqrt

cdef extern from "hmm_vmath.h" nogil:
    void hmm_erfc_n(const double* x, double* y, Py_ssize_t n)
    void hmm_log_n(const double* x, double* y, Py_ssize_t n)
    void hmm_exp_n(const double* x, double* y, Py_ssize_t n)
    const char* HOURMM_VMATH_KIND

cnp.import_array()

VMATH = (<bytes>HOURMM_VMATH_KIND).decode()
DEF _VB = 128


def fused_floor(const cnp.int64_t[::1] ts, const double[::1] px, double[:, ::1] sig, double[:, ::1] feat,
                double[::1] p, double var_ms=3.25e-12, long long hour_ms=3_600_000):
    cdef Py_ssize_t n = ts.shape[0], j, j0, nb
    cdef int k = sig.shape[1], i
    cdef double lp, s, lp_open = 0.0
    cdef double lb[_VB]
    cdef double ab[_VB]
    cdef double zb[_VB]
    cdef long long next_hour = -9223372036854775807
    with nogil:
        for j0 in range(0, n, _VB):
            nb = n - j0 if n - j0 < _VB else _VB
            for j in range(nb):
                lb[j] = log(px[j0 + j])          # libm's log, as the core's features take it
                ab[j] = -1e-3 * <double>(ts[j0 + j] % 1000)
            hmm_exp_n(ab, ab, nb)
            for j in range(nb):
                lp = lb[j]
                if ts[j0 + j] >= next_hour:          # the hour's open (the model's K)
                    next_hour = (ts[j0 + j] // hour_ms + 1) * hour_ms
                    lp_open = lp
                s = sqrt(var_ms * <double>(next_hour - ts[j0 + j]) + 1e-30 * ab[j])
                zb[j] = -((lp - lp_open) / s) * 0.7071067811865476
                for i in range(k):
                    sig[j0 + j, i] = s
                for i in range(7):
                    feat[j0 + j, i] = lp
            hmm_erfc_n(zb, zb, nb)
            for j in range(nb):
                p[j0 + j] = 0.5 * zb[j]
    return sig, feat, p


def vol_floor(const cnp.int64_t[::1] ts, const double[::1] px, double[:, ::1] out, long long sample_ms=1000):
    cdef Py_ssize_t n = ts.shape[0], j
    cdef int k = out.shape[1], i
    cdef long long nxt = -9223372036854775807
    cdef double r = 0.0, s0 = 0.0, s1 = 0.0, s2 = 0.0, anchor = 1.0, last = 1.0
    # the k divisors are run-time values (as the EWMA's weight sums are): with literal divisors the
    # compiler folded r * r / 1.0 and turned / 2.0 into a multiply, one division left of the k stated
    cdef double d = sample_ms / 1000.0
    cdef double d0 = d, d1 = 2.0 * d, d2 = 3.0 * d
    with nogil:
        for j in range(n):
            if ts[j] >= nxt:
                nxt = (ts[j] // sample_ms + 1) * sample_ms
                r = log(last / anchor)          # the core's EWMA takes libm's log (once a second)
                s0 = sqrt(r * r / d0)
                s1 = sqrt(r * r / d1)
                s2 = sqrt(r * r / d2)
                anchor = last
                for i in range(3, k):
                    out[j, i] = sqrt(r * r / ((i + 1.0) * d))
            last = px[j]
            out[j, 0] = s0
            if k > 1:
                out[j, 1] = s1
            if k > 2:
                out[j, 2] = s2
    return out


def minute_path_floor(const cnp.int64_t[::1] ts, const double[::1] px, const cnp.int64_t[::1] ev,
                      const double[::1] K, const cnp.int64_t[::1] he, double[::1] out, double var_ms=3.25e-12):
    cdef Py_ssize_t n = ts.shape[0], m = ev.shape[0], i, j = 0, i0, nb
    cdef double last = 1.0
    cdef double rb[_VB]
    with nogil:
        for i0 in range(0, m, _VB):
            nb = m - i0 if m - i0 < _VB else _VB
            for i in range(nb):
                while j < n and ts[j] < ev[i0 + i]:
                    last = px[j]
                    j += 1
                rb[i] = last / K[i0 + i]
            hmm_log_n(rb, rb, nb)
            for i in range(nb):
                rb[i] = -(rb[i] / sqrt(var_ms * <double>(he[i0 + i] - ev[i0 + i] + 1))) * 0.7071067811865476
            hmm_erfc_n(rb, &out[i0], nb)
            for i in range(nb):
                out[i0 + i] = 0.5 * out[i0 + i]
    return out


def fair_prob_floor(const double[::1] S, const double[::1] K, const double[::1] tau, const double[::1] sig,
                    double[::1] out):
    cdef Py_ssize_t n = S.shape[0], i, i0, nb
    cdef double rb[_VB]
    with nogil:
        for i0 in range(0, n, _VB):
            nb = n - i0 if n - i0 < _VB else _VB
            for i in range(nb):
                rb[i] = S[i0 + i] / K[i0 + i]
            hmm_log_n(rb, rb, nb)
            for i in range(nb):
                rb[i] = -(rb[i] / (sig[i0 + i] * sqrt(tau[i0 + i]))) * 0.7071067811865476
            hmm_erfc_n(rb, rb, nb)
            for i in range(nb):
                out[i0 + i] = 0.5 * rb[i]
    return out
