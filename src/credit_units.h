/* Amounts of credits -> int64 micro-credits for src/credit.pxi (static: private to the module).
 *
 * cr_units(x) is the nearest whole number of micro-credits to the exact value of the double x
 * (ties round up), for 0 <= x <= 9e12. The exact path: x = m * 2^e with m < 2^53, so
 * x * 10^6 = m * 15625 * 2^(e + 6), where m * 15625 < 2^67 fits in 128 bits; no floating-point
 * rounding is involved (x * 1e6 + 0.5 in doubles rounds the product first: above 2^52
 * micro-credits it can miss the nearest unit by hundreds). The usual path decides from the
 * rounded product when that provably gives the same answer. */
#ifndef RTBCORE_CREDIT_UNITS_H
#define RTBCORE_CREDIT_UNITS_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The exact path (any x in range). */
static inline int64_t cr_units_exact(double x) {
#if defined(__SIZEOF_INT128__)
    uint64_t bits, m;
    int biased, k;
    unsigned __int128 p;
    memcpy(&bits, &x, sizeof bits);
    biased = (int)((bits >> 52) & 0x7FF);
    m = bits & ((UINT64_C(1) << 52) - 1);
    if (biased == 0) {
        k = -1074 + 6;               /* subnormal */
    } else {
        m |= UINT64_C(1) << 52;
        k = biased - 1075 + 6;
    }
    p = (unsigned __int128)m * 15625u;
    if (k >= 0) {
        return (int64_t)(p << k);    /* < 2^63: the caller bounds x by 9e12 */
    }
    if (k < -67) {
        return 0;                    /* p < 2^67: below half a unit */
    }
    return (int64_t)((p >> -k) + ((p >> (-k - 1)) & 1));
#else
    return (int64_t)(x * 1e6 + 0.5);
#endif
}

/* The usual path. The rounded product p = fl(x * 1e6) is within p * 2^-53 of the exact one t,
 * and r = (p + 2^52) - 2^52 is p rounded to the nearest integer (h = p - r is exact); when
 * |h| < 1/2 - p * 2^-52, t is on the same side of the half as p, so r is the exact nearest
 * unit. That fails only for p within about p * 2^-52 of a half (never for ordinary amounts) or
 * from 2^51 units up; then the exact path decides. fp-contract=off keeps an FMA (-march with
 * FMA) from merging the steps; no-trapping-math lets gcc vectorise the selects of
 * cr_block_valid (it changes no result: Python runs with FP traps masked). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif

static inline int64_t cr_units(double x) {
    double p = x * 1e6;
    double r = (p + 0x1p52) - 0x1p52;
    double h = p - r;
    if (fabs(h) < 0.5 - p * 0x1p-52) {     /* fabs: a branch on the sign would mispredict */
        return (int64_t)r;
    }
    return cr_units_exact(x);
}

/* 1 if every cost is valid for the pool (0, or in [1e-6, 9e12]; NaN is not), else 0 (the
 * caller then names the first bad one). Vectorised: double selects only. */
static int cr_block_valid(const double *c, long n) {
    double acc = 0.0;
    for (long i = 0; i < n; i++) {
        double x = c[i];
        int ok = (x >= 0.0) & (x <= 9e12) & ((x == 0.0) | (x >= 1e-6));
        acc = ok ? acc : 1.0;
    }
    return acc == 0.0;
}

/* try_bid_block's critical section, on valid costs: grant c[i] in order while the credits
 * cover it; m[i] = granted; returns how many were granted and leaves the credits in *credits.
 * A chunk's amounts are converted first by cr_units' usual path (with SSE2, two at a time:
 * below 2^52 the bits of p + 2^52 minus those of 2^52 are p rounded to the nearest integer),
 * -1 marking an amount the exact path must decide, so that the serial grant loop only loads and
 * compares. */
#define CR_CHUNK 256
static int64_t cr_grant_block(const double *c, unsigned char *m, long n, int64_t *credits) {
    int64_t u[CR_CHUNK];
    int64_t left = *credits, granted = 0;
    for (long lo = 0; lo < n; lo += CR_CHUNK) {
        long w = n - lo < CR_CHUNK ? n - lo : CR_CHUNK, j = 0;
#if defined(__SSE2__)
        const __m128d scale = _mm_set1_pd(1e6), big = _mm_set1_pd(0x1p52);
        const __m128d half = _mm_set1_pd(0.5), rel = _mm_set1_pd(0x1p-52);
        const __m128d absmask = _mm_castsi128_pd(_mm_set1_epi64x(0x7FFFFFFFFFFFFFFFLL));
        const __m128i bigbits = _mm_set1_epi64x(0x4330000000000000LL);
        for (; j + 2 <= w; j += 2) {
            __m128d p = _mm_mul_pd(_mm_loadu_pd(c + lo + j), scale);
            __m128d s = _mm_add_pd(p, big);
            __m128d h = _mm_and_pd(_mm_sub_pd(p, _mm_sub_pd(s, big)), absmask);
            __m128d ok = _mm_cmplt_pd(h, _mm_sub_pd(half, _mm_mul_pd(p, rel)));
            __m128i v = _mm_sub_epi64(_mm_castpd_si128(s), bigbits);
            /* ok ? v : -1 */
            v = _mm_or_si128(_mm_and_si128(_mm_castpd_si128(ok), v),
                             _mm_andnot_si128(_mm_castpd_si128(ok), _mm_set1_epi64x(-1)));
            _mm_storeu_si128((__m128i *)(u + j), v);
        }
#endif
        for (; j < w; j++) {
            double p = c[lo + j] * 1e6;
            double q = (p + 0x1p52) - 0x1p52;
            u[j] = fabs(p - q) < 0.5 - p * 0x1p-52 ? (int64_t)q : -1;
        }
        for (j = 0; j < w; j++) {
            int64_t x = u[j] >= 0 ? u[j] : cr_units_exact(c[lo + j]);
            if (left >= x) {
                left -= x;
                m[lo + j] = 1;
                granted++;
            } else {
                m[lo + j] = 0;
            }
        }
    }
    *credits = left;
    return granted;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif
