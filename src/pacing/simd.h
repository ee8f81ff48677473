/* C kernels of the pacers in src/pacing/ (included by pacing/common.pxi; static, so private to
 * rtbcore._fastpath).
 *
 * 0. The hard cap, exact: spent + cost <= budget decided on the exact sum of the two doubles,
 * never on its rounding (1e16 + 1 rounds to 1e16, yet a 1.0 bid on a spent 1e16 budget of 1e16
 * must be refused). For finite s, c >= 0 let hi = fl(s + c). Rounding is monotone, so
 * hi < b implies s + c < b and hi > b implies s + c > b; only hi == b needs the rounding
 * error, which Fast2Sum gives exactly: with big = max(s, c), small = min(s, c), hi - big is
 * exact and s + c - hi = small - (hi - big), so s + c <= b iff small <= hi - big. An overflow
 * (hi = inf) refuses, as the exact sum exceeds every finite budget.
 *
 * 1. The hard cap over a block: out[i] = the exact cap of (s[i], b[i], c[i]), and whether
 * every s, b, c is finite and >= 0 (1) or not (0; the caller rescans to name the first bad one).
 * The SSE2 loop decides hi < b for eight requests at once and applies the exact rule only to a
 * group of eight in which some hi == b.
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

static inline int pc_cap(double s, double b, double c) {
    double hi = s + c;
    double big = s > c ? s : c, small = s > c ? c : s;
    return (hi < b) | ((hi == b) & (small <= hi - big));
}

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
        __m128d eq = zero;
        for (int k = 0; k < 8; k += 2) {
            __m128d s = _mm_loadu_pd(sp + i + k);
            __m128d b = _mm_loadu_pd(bp + i + k);
            __m128d c = _mm_loadu_pd(cp + i + k);
            __m128d v = _mm_and_pd(_mm_cmpge_pd(s, zero), _mm_cmplt_pd(s, inf));
            v = _mm_and_pd(v, _mm_and_pd(_mm_cmpge_pd(b, zero), _mm_cmplt_pd(b, inf)));
            v = _mm_and_pd(v, _mm_and_pd(_mm_cmpge_pd(c, zero), _mm_cmplt_pd(c, inf)));
            okm = _mm_and_pd(okm, v);
            __m128d hi = _mm_add_pd(s, c);
            eq = _mm_or_pd(eq, _mm_cmpeq_pd(hi, b));
            bits |= (unsigned)_mm_movemask_pd(_mm_cmplt_pd(hi, b)) << k;
        }
        if (_mm_movemask_pd(eq)) {
            /* a rounded sum equal to the budget (rare): those eight by the exact rule */
            bits = 0;
            for (int k = 0; k < 8; k++) {
                bits |= (unsigned)pc_cap(sp[i + k], bp[i + k], cp[i + k]) << k;
            }
        }
        memcpy(out + i, &pc_spread8[bits], 8);
    }
    ok = _mm_movemask_pd(okm) == 3;
#endif
    for (; i < n; i++) {
        double s = sp[i], b = bp[i], c = cp[i];
        ok &= (s >= 0.0) & (s < INFINITY) & (b >= 0.0) & (b < INFINITY) & (c >= 0.0)
              & (c < INFINITY);
        out[i] = (unsigned char)pc_cap(s, b, c);
    }
    return ok;
}

/* 2. The PID's per-campaign arithmetic for one elapsed shared by every campaign (cf = the target
 * share at that time), written exactly as the generic loops of src/pacing/pid.pxi and checked
 * against them by the tests. gcc refuses to vectorise a loop that selects on the result of a
 * division unless it may assume floating-point operations do not trap (division by a zero
 * budget, or by dt = 0, is computed and then discarded by the select); these two functions
 * only are compiled with -fno-trapping-math, which changes no result (Python and numpy run
 * with FP traps masked). Both loops vectorise (checked with -fopt-info-vec). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

/* Controller output; 1 if every spent/budget was valid and no elapsed was before its last
 * update, else 0 (the caller rescans with the generic loop to name the bad one). */
static int pc_pid_output(long n, const double *sp, const double *bp, const double *last,
                         const double *integ, const double *deriv, double *out, double e,
                         double cf, double base, double kp, double ki, double kd, double lo,
                         double hi) {
    double acc = 0.0;
    for (long i = 0; i < n; i++) {
        double s = sp[i], b = bp[i];
        int ok = (s >= 0.0) & (s < INFINITY) & (b >= 0.0) & (b < INFINITY) & (e >= last[i]);
        acc = ok ? acc : 1.0;
        double q = (b * cf - s) / b;
        double err = b > 0.0 ? q : 0.0;
        double u = base + kp * err + ki * integ[i] + kd * deriv[i];
        out[i] = u < lo ? lo : (u > hi ? hi : u);
    }
    return acc == 0.0;
}

/* One update (inputs already validated; the state arrays are the pacer's own, so nothing
 * aliases - restrict spares gcc more runtime alias checks than it will version for): integrate the error since each campaign's last update
 * with the two anti-windup rules, refresh the derivative, the last error and time. */
static void pc_pid_commit(long n, const double *restrict sp, const double *restrict bp,
                          double *restrict last, double *restrict integ,
                          double *restrict deriv, double *restrict prev, double e, double t,
                          double cf, double imin, double imax, double base, double kp,
                          double ki, double kd, double lo, double hi) {
    for (long i = 0; i < n; i++) {
        double s = sp[i], b = bp[i];
        double q = (b * cf - s) / b;
        double err = b > 0.0 ? q : 0.0;
        double dt = (e - last[i]) / t;
        double i0 = integ[i], d0 = deriv[i];
        double d = (err - prev[i]) / dt;
        double inew = i0 + err * dt;
        inew = inew < imin ? imin : (inew > imax ? imax : inew);
        double u = base + kp * err + ki * inew + kd * d;
        /* hold the integral while saturated in the error's direction (selects, no && or |:
         * those kept gcc from if-converting the loop) */
        double up = err > 0.0 ? i0 : inew, down = err < 0.0 ? i0 : inew;
        inew = u > hi ? up : (u < lo ? down : inew);
        /* the same test twice would be merged into one conditional block of two stores,
         * which SSE2 cannot vectorise: the second is written negated */
        integ[i] = dt > 0.0 ? inew : i0;
        deriv[i] = dt <= 0.0 ? d0 : d;
        prev[i] = err;
        last[i] = e;
    }
}

/* 3. The throttle's bid probability for one clock (time = frac), per request: 0 where the hard
 * cap refuses, else 1 while used <= time, else max(0.1, min(1, 1 - (used - time))) - exactly
 * _pc_throttle_p. Returns 1 if every s, b, c was valid. The coins are drawn afterwards, in
 * order, by the caller (one RNG stream). */
static int pc_throttle_probs(long n, const double *restrict sp, const double *restrict bp,
                             const double *restrict cp, double frac, double *restrict p) {
    double acc = 0.0;
    for (long i = 0; i < n; i++) {
        double s = sp[i], b = bp[i], c = cp[i];
        int ok = (s >= 0.0) & (s < INFINITY) & (b >= 0.0) & (b < INFINITY) & (c >= 0.0)
                 & (c < INFINITY);
        acc = ok ? acc : 1.0;
        double q = s / b;
        double used = b > 0.0 ? q : 1.0;
        double pr = 1.0 - (used - frac);
        pr = pr > 1.0 ? 1.0 : pr;
        pr = pr < 0.1 ? 0.1 : pr;
        pr = used <= frac ? 1.0 : pr;
        /* pc_cap written as double selects, so that the loop still vectorises */
        double hi = s + c, big = s > c ? s : c, small = s > c ? c : s;
        double on_cap = small <= hi - big ? pr : 0.0;
        p[i] = hi == b ? on_cap : (hi < b ? pr : 0.0);
    }
    return acc == 0.0;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif
