/* The hard cap over a block, for src/pacing.pxi: out[i] = (s[i] + c[i] <= b[i]), and whether
 * every s, b, c is finite and >= 0 (1) or not (0; the caller rescans to name the first bad one).
 *
 * gcc does not vectorise a loop that mixes double comparisons with a byte store (SSE2), and the
 * scalar loop was slower than numpy's two AVX passes. With SSE2 (baseline on x86-64) this does
 * two doubles per instruction and stores 8 decisions at once (a 256-entry table spreads 8 mask
 * bits into 8 bytes). Elsewhere: the plain loop. NaN fails every ordered comparison, so it is
 * caught as invalid. */
#ifndef RTBCORE_PACING_SIMD_H
#define RTBCORE_PACING_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static uint64_t pc_spread8[256];

static void pc_simd_init(void) {
    for (int bits = 0; bits < 256; bits++) {
        uint64_t w = 0;
        for (int k = 0; k < 8; k++) {
            w |= (uint64_t)((bits >> k) & 1) << (8 * k);
        }
        pc_spread8[bits] = w;   /* little-endian byte order: byte k = bit k */
    }
}

static int pc_cap_block(const double *sp, const double *bp, const double *cp, unsigned char *out,
                        long n) {
    long i = 0;
    int ok = 1;
#if defined(__SSE2__) && (defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
    const __m128d zero = _mm_setzero_pd();
    const __m128d inf = _mm_set1_pd(INFINITY);
    __m128d okm = _mm_cmpeq_pd(zero, zero);   /* all ones */
    for (; i + 8 <= n; i += 8) {
        unsigned bits = 0;
        for (int k = 0; k < 8; k += 2) {
            __m128d s = _mm_loadu_pd(sp + i + k);
            __m128d b = _mm_loadu_pd(bp + i + k);
            __m128d c = _mm_loadu_pd(cp + i + k);
            __m128d v = _mm_and_pd(_mm_cmpge_pd(s, zero), _mm_cmplt_pd(s, inf));
            v = _mm_and_pd(v, _mm_and_pd(_mm_cmpge_pd(b, zero), _mm_cmplt_pd(b, inf)));
            v = _mm_and_pd(v, _mm_and_pd(_mm_cmpge_pd(c, zero), _mm_cmplt_pd(c, inf)));
            okm = _mm_and_pd(okm, v);
            bits |= (unsigned)_mm_movemask_pd(_mm_cmple_pd(_mm_add_pd(s, c), b)) << k;
        }
        memcpy(out + i, &pc_spread8[bits], 8);
    }
    ok = _mm_movemask_pd(okm) == 3;
#endif
    for (; i < n; i++) {
        double s = sp[i], b = bp[i], c = cp[i];
        ok &= (s >= 0.0) & (s < INFINITY) & (b >= 0.0) & (b < INFINITY) & (c >= 0.0)
              & (c < INFINITY);
        out[i] = s + c <= b;
    }
    return ok;
}

#endif
