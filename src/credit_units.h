/* Amounts of credits -> int64 micro-credits for src/credit.pxi (static: private to the module).
 *
 * cr_units(x) is the nearest whole number of micro-credits to the exact value of the double x
 * (ties round up), for 0 <= x <= 9e12: x = m * 2^e with m < 2^53, so x * 10^6 = m * 15625 *
 * 2^(e + 6), where m * 15625 < 2^67 fits in 128 bits; no floating-point rounding is involved.
 * (x * 1e6 + 0.5 in doubles rounds the product first: above 2^52 micro-credits it can miss the
 * nearest unit by hundreds.) */
#ifndef RTBCORE_CREDIT_UNITS_H
#define RTBCORE_CREDIT_UNITS_H

#include <stdint.h>
#include <string.h>

static inline int64_t cr_units(double x) {
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

#endif
