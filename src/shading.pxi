# shading kernels of rtbcore._fastpath (included by _fastpath.pyx)
#
# The bid landscape keeps sufficient statistics on a grid of K equal bins over [0, max_bid)
# plus one overflow bin [max_bid, inf) for D, the highest competing bid:
#   exact[j]  (K+1)  observations with D known, in bin j
#   left[i]   (K+2)  wins: D < e_i (bins 0..i-1); i = K+1 means "D < inf" (a win above max_bid)
#   right[i]  (K+1)  losses: D >= e_i (bins i..K)
#   naive[j]  (K+1)  the price paid on each win, as a naive landscape would record it
# where e_i = i * h, h = max_bid / K. A censored bid is rounded to the nearest edge.
# Every public function here is private to rtbcore.shading, which validates shapes and dtypes;
# the kernels below validate values (NaN, negative, inconsistent) before touching any state.

from libc.math cimport floor as _sh_floor, isnan as _sh_isnan
from libc.stdlib cimport calloc as _sh_calloc, free as _sh_free

import numpy as _sh_np


cdef inline Py_ssize_t _sh_exact_bin(double d, double inv_h, double max_bid, Py_ssize_t K) noexcept nogil:
    if d >= max_bid:
        return K
    cdef Py_ssize_t j = <Py_ssize_t>(d * inv_h)
    return j if j < K else K - 1


cdef inline int _sh_check_one(
    Py_ssize_t k, const double* bids, const unsigned char* won,
    const double* price, const double* mtw, bint has_price, bint has_mtw,
) noexcept nogil:
    """0 if observation k is valid, else the code of what is wrong with it."""
    cdef double b = bids[k], p, m
    if not _ck_nonneg(b):
        return 1
    if has_price:
        p = price[k]
        if not _sh_isnan(p):
            if not _ck_nonneg(p):
                return 2
            if not won[k]:
                return 3
            if p > b:
                return 4
    if has_mtw:
        m = mtw[k]
        if not _sh_isnan(m):
            if not _ck_nonneg(m):
                return 5
            if won[k] and m > b:
                return 6
            if not won[k] and m < b:
                return 7
    return 0


cdef inline void _sh_accumulate_one(
    Py_ssize_t k, const double* bids, const unsigned char* won,
    const double* price, const double* mtw,
    bint has_price, bint has_mtw, double inv_h, double max_bid, Py_ssize_t K,
    double* exact, double* left, double* right, double* naive,
) noexcept nogil:
    cdef Py_ssize_t i
    cdef double b = bids[k], p, m, paid
    m = mtw[k] if has_mtw else 0.0
    if has_mtw and not _sh_isnan(m):
        # the exchange told us D (the minimum bid to win): an exact observation
        exact[_sh_exact_bin(m, inv_h, max_bid, K)] += 1.0
        if won[k]:
            paid = price[k] if has_price and not _sh_isnan(price[k]) else b
            naive[_sh_exact_bin(paid, inv_h, max_bid, K)] += 1.0
        return
    if won[k]:
        p = price[k] if has_price else b
        if _sh_isnan(p):
            p = b
        naive[_sh_exact_bin(p, inv_h, max_bid, K)] += 1.0
        if p < b:
            # charged below our bid: the exchange revealed the best competing bid
            exact[_sh_exact_bin(p, inv_h, max_bid, K)] += 1.0
        elif b > max_bid:
            left[K + 1] += 1.0
        else:
            i = <Py_ssize_t>_sh_floor(b * inv_h + 0.5)
            if i < 1:
                i = 1
            elif i > K:
                i = K
            left[i] += 1.0
    else:
        if b >= max_bid:
            i = K
        else:
            i = <Py_ssize_t>_sh_floor(b * inv_h + 0.5)
            if i > K:
                i = K
        right[i] += 1.0


def _shading_observe(
    const double[::1] bids, const unsigned char[::1] won,
    const double[::1] price, const double[::1] mtw,
    bint has_price, bint has_mtw, double max_bid,
    double[::1] exact, double[::1] left, double[::1] right, double[::1] naive,
):
    """Validate and accumulate a block of outcomes; returns (-1, 0) or (bad index, code).

    One pass into scratch counts, added to the landscape's only if every observation is valid,
    so a rejected block changes nothing.
    """
    cdef Py_ssize_t K = exact.shape[0] - 1, n = bids.shape[0], k, j
    cdef int code = 0
    cdef Py_ssize_t bad = -1
    cdef double inv_h = K / max_bid
    cdef double* ex = <double*>_sh_calloc(4 * (K + 2), sizeof(double))
    if ex == NULL:
        raise MemoryError()
    cdef double* lf = ex + (K + 2)
    cdef double* rt = lf + (K + 2)
    cdef double* nv = rt + (K + 2)
    # raw pointers (a missing price or min_to_win column is never read: has_* is False)
    cdef const double* bp = &bids[0] if n else NULL
    cdef const unsigned char* wp = &won[0] if n else NULL
    cdef const double* pp = &price[0] if has_price and n else NULL
    cdef const double* mp = &mtw[0] if has_mtw and n else NULL
    with nogil:
        for k in range(n):
            code = _sh_check_one(k, bp, wp, pp, mp, has_price, has_mtw)
            if code:
                bad = k
                break
            _sh_accumulate_one(k, bp, wp, pp, mp, has_price, has_mtw, inv_h, max_bid, K,
                               ex, lf, rt, nv)
        if bad < 0:
            for j in range(K + 1):
                exact[j] += ex[j]
                left[j] += lf[j]
                right[j] += rt[j]
                naive[j] += nv[j]
            left[K + 1] += lf[K + 1]
    _sh_free(ex)
    return bad, code


cdef Py_ssize_t _sh_turnbull(
    const double[::1] ex, const double[::1] lf, const double[::1] rt,
    double[::1] p, double[::1] F, double[::1] S, double[::1] A,
    Py_ssize_t max_iter, double tol,
) noexcept nogil:
    # Self-consistency (EM) iteration of Turnbull (1976) on the fixed grid. p: K1 bin masses,
    # F[i] = P(D < e_i) = sum_{j<i} p_j (K1+1 entries), S[i] = sum_{j>=i} p_j (K1 entries),
    # A[j] = sum_{i>j} lf_i / F_i (suffix sums over the wins' censoring points).
    cdef Py_ssize_t K1 = p.shape[0], i, j, it = 0
    cdef double total = 0.0, acc, bsum, q, delta
    for j in range(K1):
        total += ex[j] + rt[j] + lf[j]
    total += lf[K1]
    if total <= 0.0:
        return 0
    for it in range(1, max_iter + 1):
        acc = 0.0
        for i in range(K1):
            F[i] = acc
            acc += p[i]
        F[K1] = acc
        acc = 0.0
        for i in range(K1 - 1, -1, -1):
            acc += p[i]
            S[i] = acc
        acc = lf[K1] / F[K1] if F[K1] > 1e-300 else 0.0
        for j in range(K1 - 1, -1, -1):
            A[j] = acc
            if F[j] > 1e-300:
                acc += lf[j] / F[j]
        bsum = 0.0
        delta = 0.0
        for j in range(K1):
            if S[j] > 1e-300:
                bsum += rt[j] / S[j]
            q = (ex[j] + p[j] * (A[j] + bsum)) / total
            if q - p[j] > delta:
                delta = q - p[j]
            elif p[j] - q > delta:
                delta = p[j] - q
            p[j] = q
        if delta < tol:
            break
    return it


def _shading_turnbull(
    const double[::1] exact, const double[::1] left, const double[::1] right,
    double[::1] p, Py_ssize_t max_iter, double tol,
):
    """Run the EM in place on p (start values in, estimate out); returns the iterations run."""
    cdef Py_ssize_t K1 = p.shape[0], it
    cdef double[::1] F = _sh_np.empty(K1 + 1)
    cdef double[::1] S = _sh_np.empty(K1)
    cdef double[::1] A = _sh_np.empty(K1)
    with nogil:
        it = _sh_turnbull(exact, left, right, p, F, S, A, max_iter, tol)
    return it


cdef inline double _sh_seg_best(
    double v, Py_ssize_t i, const double* F, double h, double* bid,
) noexcept nogil:
    # best (v - b) * P(win | b) for b on segment [e_i, e_{i+1}], where P(win | .) is linear
    cdef double lo = i * h, hi = lo + h, Fi = F[i]
    cdef double s = (F[i + 1] - Fi) / h, b
    if s <= 0.0:
        b = lo
    else:
        b = 0.5 * v - 0.5 * (Fi / s - lo)
        if b < lo:
            b = lo
        elif b > hi:
            b = hi
    bid[0] = b
    return (v - b) * (Fi + s * (b - lo))


cdef inline Py_ssize_t _sh_scan(
    double v, Py_ssize_t slo, Py_ssize_t shi, const double* F, double h, double* bid,
) noexcept nogil:
    # the smallest maximizer over segments slo..shi (ascending scan, strict >)
    cdef Py_ssize_t s, best_s = slo
    cdef double g, b = 0.0, best = -1e300, best_b = slo * h
    for s in range(slo, shi + 1):
        g = _sh_seg_best(v, s, F, h, &b)
        if g > best:
            best = g
            best_s = s
            best_b = b
    bid[0] = best_b
    return best_s


cdef void _sh_table(
    Py_ssize_t mlo, Py_ssize_t mhi, Py_ssize_t slo, Py_ssize_t shi,
    double vstep, const double* F, double h, Py_ssize_t* seg,
) noexcept nogil:
    # Divide and conquer over the value grid: the smallest maximizing bid is non-decreasing in
    # the value (Topkis: log(v - b) has increasing differences in (v, b)), so the maximizer of
    # the middle value splits the segment range for the two halves.
    cdef Py_ssize_t mid, s
    cdef double b = 0.0
    while mlo <= mhi:
        mid = (mlo + mhi) // 2
        s = _sh_scan(mid * vstep, slo, shi, F, h, &b)
        seg[mid] = s
        _sh_table(mlo, mid - 1, slo, s, vstep, F, h, seg)
        mlo = mid + 1
        slo = s


def _shading_argmax_table(const double[::1] F, double h, double vstep, Py_ssize_t[::1] seg):
    """Fill seg[m] with the segment of the smallest optimal bid for the value m * vstep."""
    cdef Py_ssize_t K = F.shape[0] - 1, M = seg.shape[0]
    with nogil:
        _sh_table(0, M - 1, 0, K - 1, vstep, &F[0], h, &seg[0])


cdef Py_ssize_t _sh_check_values(const double[::1] values) noexcept nogil:
    cdef Py_ssize_t k
    cdef double v
    for k in range(values.shape[0]):
        v = values[k]
        if not _ck_nonneg(v):
            return k
    return -1


def _shading_optimal_bid(
    const double[::1] values, const double[::1] F, double h, double vstep,
    const Py_ssize_t[::1] seg, double[::1] out,
):
    """argmax_b (v - b) * F(b) per value, F linear between the grid edges; -1 or a bad index.

    Exact for that F: the table gives the bracketing segments of the two neighbouring grid
    values and only the segments between them are scanned.
    """
    cdef Py_ssize_t n = values.shape[0], K = F.shape[0] - 1, M = seg.shape[0], k, a
    cdef Py_ssize_t slo, shi, bad
    cdef double v, t, b = 0.0
    cdef double inv_vstep = 1.0 / vstep
    with nogil:
        bad = _sh_check_values(values)
        if bad < 0:
            for k in range(n):
                v = values[k]
                t = v * inv_vstep
                if t >= M - 1:
                    slo = seg[M - 1]
                    shi = K - 1
                else:
                    a = <Py_ssize_t>t
                    slo = seg[a]
                    shi = seg[a + 1]
                _sh_scan(v, slo, shi, &F[0], h, &b)
                out[k] = b
    return bad
