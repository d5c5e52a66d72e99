/* The compiled core's erfc and log: glibc's vector math (libmvec) where the build found it.
 *
 * ``hmm_erfc`` / ``hmm_log`` (one value) and ``hmm_erfc_n`` / ``hmm_log_n`` (a block, in -> out,
 * may alias) are the ONLY erfc/log the pricer's hot paths call, so the streaming objects and the
 * batch functions stay bit for bit equal to each other: a lane of a libmvec call depends on that
 * lane's input only, and one value goes through the same vector routine (broadcast) as a block.
 *
 * With HOURMM_LIBMVEC (set by setup.py only after compiling and linking a probe against
 * -lmvec, see hourmm_core/quant/vmath_probe.py) on x86-64 + GCC/clang:
 *   - CPUs with AVX2 (checked once at run time, __builtin_cpu_supports): _ZGVdN4v_erfc/_log,
 *     4 lanes; otherwise the x86-64 baseline SSE2 2-lane _ZGVbN2v_erfc/_log. No -march flag:
 *     the same binary runs on any x86-64.
 *   - accuracy: libmvec's documented bound is a few ulp (glibc's libm-test-ulps: erfc 2-4,
 *     log 1-3 for the vector variants) against glibc's correctly-rounded-or-1-ulp scalar code;
 *     a probability differs from the scalar build by ~1e-16, far below any tolerance the model
 *     has (the batch/streaming contract is 1e-9). NaN/inf in and out behave as the scalar calls
 *     (libmvec handles special lanes with the scalar routine).
 * Without it (other arch, musl, glibc < 2.35, a compiler without the vector ABI): plain libm
 * erfc/log, the exact scalar results of earlier builds.
 */
#ifndef HOURMM_VMATH_H
#define HOURMM_VMATH_H

#include <math.h>
#include <stddef.h>

#if defined(HOURMM_LIBMVEC) && defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define HOURMM_VMATH_LANES_MAX 4

__m128d _ZGVbN2v_erfc(__m128d);
__m128d _ZGVbN2v_log(__m128d);
__m128d _ZGVbN2v_exp(__m128d);
__attribute__((target("avx2"))) __m256d _ZGVdN4v_erfc(__m256d);
__attribute__((target("avx2"))) __m256d _ZGVdN4v_log(__m256d);
__attribute__((target("avx2"))) __m256d _ZGVdN4v_exp(__m256d);

/* 1: AVX2 4-lane, 0: SSE2 2-lane; decided once per module (a benign race: every thread
 * computes the same value) */
static int hmm_vmath_avx2 = -1;

static inline int hmm_vmath_use_avx2(void) {
    if (__builtin_expect(hmm_vmath_avx2 < 0, 0)) {
        __builtin_cpu_init();
        hmm_vmath_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    }
    return hmm_vmath_avx2;
}

#define HOURMM_VMATH_BLOCK(NAME, FN)                                                          \
__attribute__((target("avx2"), unused)) static void NAME##_avx2(const double* x, double* y, ptrdiff_t n) { \
    ptrdiff_t i = 0, j;                                                                    \
    double b[4];                                                                           \
    for (; i + 4 <= n; i += 4)                                                             \
        _mm256_storeu_pd(y + i, _ZGVdN4v_##FN(_mm256_loadu_pd(x + i)));                    \
    if (i < n) {          /* the tail: pad with the first value (any finite lane would do) */ \
        for (j = 0; j < 4; j++) b[j] = x[i + j < n ? i + j : i];                           \
        _mm256_storeu_pd(b, _ZGVdN4v_##FN(_mm256_loadu_pd(b)));                            \
        for (j = 0; i + j < n; j++) y[i + j] = b[j];                                       \
    }                                                                                      \
}                                                                                          \
__attribute__((unused)) static void NAME##_sse2(const double* x, double* y, ptrdiff_t n) {                         \
    ptrdiff_t i = 0;                                                                       \
    double b[2];                                                                           \
    for (; i + 2 <= n; i += 2)                                                             \
        _mm_storeu_pd(y + i, _ZGVbN2v_##FN(_mm_loadu_pd(x + i)));                          \
    if (i < n) {                                                                           \
        b[0] = x[i]; b[1] = x[i];                                                          \
        _mm_storeu_pd(b, _ZGVbN2v_##FN(_mm_loadu_pd(b)));                                  \
        y[i] = b[0];                                                                       \
    }                                                                                      \
}                                                                                          \
__attribute__((target("avx2"), unused)) static double NAME##1_avx2(double x) {                     \
    return _mm256_cvtsd_f64(_ZGVdN4v_##FN(_mm256_set1_pd(x)));                             \
}                                                                                          \
static inline void NAME##_n(const double* x, double* y, ptrdiff_t n) {                     \
    if (hmm_vmath_use_avx2()) NAME##_avx2(x, y, n); else NAME##_sse2(x, y, n);             \
}                                                                                          \
static inline double NAME(double x) {                                                      \
    if (hmm_vmath_use_avx2()) return NAME##1_avx2(x);                                      \
    return _mm_cvtsd_f64(_ZGVbN2v_##FN(_mm_set1_pd(x)));                                   \
}

HOURMM_VMATH_BLOCK(hmm_erfc, erfc)
HOURMM_VMATH_BLOCK(hmm_log, log)
HOURMM_VMATH_BLOCK(hmm_exp, exp)      /* the benchmarks' arithmetic floor only (the core's exp stays libm) */
#undef HOURMM_VMATH_BLOCK

#define HOURMM_VMATH_KIND (hmm_vmath_use_avx2() ? "libmvec-avx2" : "libmvec-sse2")

#else  /* scalar libm */

static inline double hmm_erfc(double x) { return erfc(x); }
static inline double hmm_log(double x) { return log(x); }
static inline void hmm_erfc_n(const double* x, double* y, ptrdiff_t n) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) y[i] = erfc(x[i]);
}
static inline void hmm_log_n(const double* x, double* y, ptrdiff_t n) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) y[i] = log(x[i]);
}
static inline double hmm_exp(double x) { return exp(x); }
static inline void hmm_exp_n(const double* x, double* y, ptrdiff_t n) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) y[i] = exp(x[i]);
}
#define HOURMM_VMATH_KIND "libm-scalar"

#endif

#include <stdint.h>
#include <string.h>

/* isfinite(x) && x > 0.0 (a usable price) as one unsigned compare of the bits, the test every
 * tick of the batch loops takes: +0.0 -> 0 - 1 wraps to the top, the largest finite double is
 * 0x7FEFFFFFFFFFFFFF, and -0.0, negatives (sign bit), +-inf and NaN are all above it. Same answer
 * for every double; one compare-and-branch instead of GCC's abs/compare/branch + compare/branch. */
static inline int hmm_pos_finite(double x) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u - 1u < UINT64_C(0x7FEFFFFFFFFFFFFF);
}

#endif  /* HOURMM_VMATH_H */
