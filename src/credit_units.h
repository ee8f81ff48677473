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

#include <stdint.h>
#include <string.h>

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

/* The usual path. Below 2^40 units the rounded product p = fl(x * 1e6) is within 2^-13 of the
 * exact one, and (p + 2^52) - 2^52 is p rounded to the nearest integer; when p's fraction is
 * more than 2^-12 away from one half, that integer is the exact nearest unit. Otherwise (about
 * one amount in 2000, or a huge one) the exact path decides. fp-contract=off keeps an FMA
 * (-march with FMA) from merging the steps; no-trapping-math lets gcc vectorise the selects of
 * cr_block_valid (it changes no result: Python runs with FP traps masked). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif

static inline int64_t cr_units(double x) {
    double p = x * 1e6;
    double r = (p + 0x1p52) - 0x1p52;
    double h = p - r;
    if (p < 0x1p40 && h < 0.5 - 0x1p-12 && h > -(0.5 - 0x1p-12)) {
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
 * cover it; m[i] = granted; returns how many were granted and leaves the credits in *credits. */
static int64_t cr_grant_block(const double *c, unsigned char *m, long n, int64_t *credits) {
    int64_t left = *credits, granted = 0;
    for (long i = 0; i < n; i++) {
        int64_t u = cr_units(c[i]);
        if (left >= u) {
            left -= u;
            m[i] = 1;
            granted++;
        } else {
            m[i] = 0;
        }
    }
    *credits = left;
    return granted;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif
