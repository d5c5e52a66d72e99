# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Arithmetic floors of the batch core: the unavoidable math and output writes, nothing else.

Compiled by ``benchmarks/floor_build.py`` at benchmark time with setup.py's flags; not part of
the product. Each loop does the transcendental calls and stores that the real batch function
cannot avoid, with the same data dependences (each result is written, so nothing is dead),
and none of the state handling, branches, windows or bar bookkeeping:

* ``fused_floor`` (``price_path_batch``): per tick one ``log``, ``exp``, ``sqrt``, ``erfc``
  and the k + 7 + 1 doubles written (88 B for k = 3): the issue-15 definition.
* ``vol_floor`` (``ewma_vol_batch``): per tick the k sigmas written; per crossed sample grid
  boundary one ``log`` and k divisions + ``sqrt`` (the EWMA's own arithmetic is free here).
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
"""
cimport numpy as cnp
from libc.math cimport erfc, exp, log, sqrt

cnp.import_array()


def fused_floor(const cnp.int64_t[::1] ts, const double[::1] px, double[:, ::1] sig, double[:, ::1] feat,
                double[::1] p, double var_ms=3.25e-12, long long hour_ms=3_600_000):
    cdef Py_ssize_t n = ts.shape[0], j
    cdef int k = sig.shape[1], i
    cdef double lp, a, s, z, lp_open = 0.0
    cdef long long next_hour = -9223372036854775807
    with nogil:
        for j in range(n):
            lp = log(px[j])
            if ts[j] >= next_hour:          # the hour's open (the model's K)
                next_hour = (ts[j] // hour_ms + 1) * hour_ms
                lp_open = lp
            a = exp(-1e-3 * <double>(ts[j] % 1000))
            s = sqrt(var_ms * <double>(next_hour - ts[j]) + 1e-30 * a)
            z = (lp - lp_open) / s
            for i in range(k):
                sig[j, i] = s
            for i in range(7):
                feat[j, i] = lp
            p[j] = 0.5 * erfc(-z * 0.7071067811865476)
    return sig, feat, p


def vol_floor(const cnp.int64_t[::1] ts, const double[::1] px, double[:, ::1] out, long long sample_ms=1000):
    cdef Py_ssize_t n = ts.shape[0], j
    cdef int k = out.shape[1], i
    cdef long long nxt = -9223372036854775807
    cdef double r = 0.0, s0 = 0.0, s1 = 0.0, s2 = 0.0, anchor = 1.0, last = 1.0
    with nogil:
        for j in range(n):
            if ts[j] >= nxt:
                nxt = (ts[j] // sample_ms + 1) * sample_ms
                r = log(last / anchor)
                s0 = sqrt(r * r / 1.0)
                s1 = sqrt(r * r / 2.0)
                s2 = sqrt(r * r / 3.0)
                anchor = last
                for i in range(3, k):
                    out[j, i] = sqrt(r * r / (i + 1.0))
            last = px[j]
            out[j, 0] = s0
            if k > 1:
                out[j, 1] = s1
            if k > 2:
                out[j, 2] = s2
    return out


def minute_path_floor(const cnp.int64_t[::1] ts, const double[::1] px, const cnp.int64_t[::1] ev,
                      const double[::1] K, const cnp.int64_t[::1] he, double[::1] out, double var_ms=3.25e-12):
    cdef Py_ssize_t n = ts.shape[0], m = ev.shape[0], i, j = 0
    cdef double last = 1.0
    with nogil:
        for i in range(m):
            while j < n and ts[j] < ev[i]:
                last = px[j]
                j += 1
            out[i] = 0.5 * erfc(-log(last / K[i]) / sqrt(var_ms * <double>(he[i] - ev[i] + 1)) * 0.7071067811865476)
    return out


def fair_prob_floor(const double[::1] S, const double[::1] K, const double[::1] tau, const double[::1] sig,
                    double[::1] out):
    cdef Py_ssize_t n = S.shape[0], i
    with nogil:
        for i in range(n):
            out[i] = 0.5 * erfc(-log(S[i] / K[i]) / (sig[i] * sqrt(tau[i])))
    return out
