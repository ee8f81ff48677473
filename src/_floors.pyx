# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, autotestdict=False
# distutils: language = c++
"""rtbcore._floors: the kernels of rtbcore.floors (price floors learned from auction logs).

- the exact empirical Myerson reserve, pruned by a bucket pass so that only the few buckets
  that can hold the optimum are sorted;
- the top two bids of each auction of a segment-layout batch;
- the online floor learner's state: decayed counterfactual revenue per candidate floor, kept as
  difference arrays so one logged auction costs O(log K), not O(K).

Users import ``rtbcore``, never this module; rtbcore.floors validates shapes and dtypes and
these kernels validate values before touching any state.
"""

cimport cython
from libc.math cimport INFINITY, isnan, log
from libc.stdint cimport uint64_t, int64_t
from libc.string cimport memcpy
from libcpp.algorithm cimport sort as cpp_sort
from libcpp.vector cimport vector

import numpy as np

from rtbcore.errors import InvalidInputError

DEF N_BUCKETS = 16384
DEF SMALL = 4096


cdef inline bint _nonneg(double x) noexcept nogil:
    return x >= 0.0 and x < INFINITY


cdef inline uint64_t _bits(double x) noexcept nogil:
    cdef uint64_t u
    memcpy(&u, &x, 8)
    return u


# ---- the Myerson reserve ---------------------------------------------------------------------
#
# For the empirical distribution of n samples, posting r sells to the samples >= r, so the
# revenue is r * S(r) with S(r) = #{x >= r}. The maximum is at a sample; at the sorted sample
# x_(i) (0-based) with no smaller tie, S = n - i. A full sort finds it; here the positive samples
# are first bucketed by the top bits of their IEEE-754 pattern (monotone for x >= 0: log-spaced
# across exponents, linear inside one), which needs no log and spreads heavy tails. For bucket
# b with samples in [lo_b, hi_b] and S_b samples in buckets >= b, every sample of b earns at
# most hi_b * S_b and its smallest earns exactly lo_b * S_b; buckets whose bound is below the
# best exact value cannot hold the optimum and are never sorted.

cdef Py_ssize_t _scan_sorted(const double* v, Py_ssize_t m, double above,
                             double* best_r, double* best_rev) noexcept nogil:
    """Scan m sorted samples with `above` samples above them all; keep the best (ties: the
    smaller reserve, met first)."""
    cdef Py_ssize_t i
    cdef double rev
    for i in range(m):
        rev = v[i] * (above + <double>(m - i))
        if rev > best_rev[0]:
            best_rev[0] = rev
            best_r[0] = v[i]
    return 0


cdef Py_ssize_t _myerson_kernel(const double* x, Py_ssize_t n, double* out_r,
                                double* out_rev) noexcept nogil:
    """The reserve and its revenue (sum over samples); returns -1, or the first bad index."""
    cdef Py_ssize_t i, b, nb, j
    cdef double v, mn = INFINITY, mx = 0.0
    cdef Py_ssize_t n_pos = 0
    for i in range(n):
        v = x[i]
        if not _nonneg(v):
            return i
        if v > 0.0:
            n_pos += 1
            if v < mn:
                mn = v
            if v > mx:
                mx = v
    out_r[0] = 0.0
    out_rev[0] = 0.0
    if n_pos == 0:
        return -1
    cdef vector[double] buf
    if n_pos <= SMALL or mn == mx:
        buf.reserve(n_pos)
        for i in range(n):
            if x[i] > 0.0:
                buf.push_back(x[i])
        cpp_sort(buf.begin(), buf.end())
        _scan_sorted(buf.data(), n_pos, 0.0, out_r, out_rev)
        return -1
    cdef uint64_t base = _bits(mn), span = _bits(mx) - base
    cdef int shift = 0
    while (span >> shift) >= N_BUCKETS:
        shift += 1
    nb = <Py_ssize_t>(span >> shift) + 1
    cdef vector[int64_t] cnt = vector[int64_t](nb, 0)
    cdef vector[double] lo = vector[double](nb, INFINITY)
    cdef vector[double] hi = vector[double](nb, 0.0)
    for i in range(n):
        v = x[i]
        if v > 0.0:
            b = <Py_ssize_t>((_bits(v) - base) >> shift)
            cnt[b] += 1
            if v < lo[b]:
                lo[b] = v
            if v > hi[b]:
                hi[b] = v
    # S_b = samples in buckets >= b (as doubles: exact below 2**53)
    cdef vector[double] above = vector[double](nb + 1, 0.0)
    for b in range(nb - 1, -1, -1):
        above[b] = above[b + 1] + <double>cnt[b]
    cdef double best = 0.0
    for b in range(nb):
        if cnt[b] > 0 and lo[b] * above[b] > best:
            best = lo[b] * above[b]
    # candidate buckets and where their samples go in buf
    cdef vector[int64_t] start = vector[int64_t](nb + 1, -1)
    cdef int64_t total = 0
    for b in range(nb):
        if cnt[b] > 0 and hi[b] * above[b] >= best:
            start[b] = total
            total += cnt[b]
    buf.resize(total)
    cdef vector[int64_t] fill = vector[int64_t](start)
    for i in range(n):
        v = x[i]
        if v > 0.0:
            b = <Py_ssize_t>((_bits(v) - base) >> shift)
            if start[b] >= 0:
                buf[fill[b]] = v
                fill[b] += 1
    cdef double best_r = 0.0, best_rev = 0.0
    for b in range(nb):
        if start[b] >= 0:
            j = start[b]
            cpp_sort(buf.begin() + j, buf.begin() + j + cnt[b])
            _scan_sorted(buf.data() + j, cnt[b], above[b + 1], &best_r, &best_rev)
    out_r[0] = best_r
    out_rev[0] = best_rev
    return -1


def _myerson(const double[::1] x):
    """(reserve, revenue summed over the samples, bad index or -1)."""
    cdef double r = 0.0, rev = 0.0
    cdef Py_ssize_t bad
    cdef Py_ssize_t n = x.shape[0]
    if n == 0:
        return r, rev, -1
    with nogil:
        bad = _myerson_kernel(&x[0], n, &r, &rev)
    return r, rev, bad


# ---- the top two bids of each auction --------------------------------------------------------

def _top_two(const int64_t[::1] offsets, const double[::1] prices, object quality,
             double[::1] top, double[::1] second, int64_t[::1] index):
    """Per auction: the top eligible bid's price, its floorless second-price charge (the
    runner-up's adjusted bid over the top's quality; 0 alone) and its index (-1: no valid bid
    with price > 0, top and second 0). Returns the first invalid bid index or -1."""
    cdef const double[::1] q
    cdef bint has_q = quality is not None
    if has_q:
        q = quality
    cdef Py_ssize_t n = offsets.shape[0] - 1, a, i, k, bad = -1
    cdef double p, qq, adj, a1, a2, q1
    with nogil:
        for a in range(n):
            a1 = -1.0
            a2 = 0.0
            q1 = 1.0
            k = -1
            for i in range(offsets[a], offsets[a + 1]):
                p = prices[i]
                qq = q[i] if has_q else 1.0
                adj = p * qq
                if not (p >= 0.0 and qq > 0.0 and adj < INFINITY):
                    if bad < 0:
                        bad = i
                    continue
                if p <= 0.0:
                    continue
                if adj > a1:
                    a2 = a1 if a1 > 0.0 else 0.0
                    a1 = adj
                    q1 = qq
                    k = i
                elif adj > a2:
                    a2 = adj
            if k >= 0:
                top[a] = prices[k]
                second[a] = a2 / q1
                if second[a] > top[a]:  # rounding of a tie through the qualities
                    second[a] = top[a]
            else:
                top[a] = 0.0
                second[a] = 0.0
            index[a] = k
    return bad


# ---- the online floor learner ----------------------------------------------------------------
#
# For each key (a segment, or a segment x bidder pair) and candidate floor f_k of the grid, the
# learner keeps decayed sums over logged auctions of W_k (auctions whose outcome at f_k is
# known), R_k (their second-price revenue at f_k: [b1 >= f_k] * max(b2, f_k)) and F_k (their
# fills at f_k). A logged auction informs a contiguous range [lo, hi] of candidates, over which
# its revenue is a constant v on [lo, k2] and f_k on (k2, k1], 0 beyond k1. So R_k = S_k + f_k C_k
# with S, C, F, W each stored as a difference array: one auction is a few additions.
# Decay: every auction of a key multiplies that key's sums by lam; instead, contributions are
# stored times g = lam**-t (t = the key's auctions so far), and the key is rescaled when g grows
# large. Estimates are ratios of sums, so the scale cancels; weights are compared as W / g.

cdef enum:
    # row codes of a refused update row
    BAD_KEY = 1
    BAD_FLOOR = 2
    BAD_PRICE = 3
    BAD_TOP = 4
    BAD_SECOND = 5
    BAD_ORDER = 6      # second > top
    BAD_PAID = 7       # price > top


cdef inline Py_ssize_t _k_le(const double* grid, Py_ssize_t K, double x) noexcept nogil:
    """The last k with grid[k] <= x (-1 if none, or NaN): a branch-free binary search, since
    bids land anywhere and a mispredicted branch per step would cost more than the search."""
    cdef const double* base = grid
    cdef Py_ssize_t n = K, half
    while n > 1:
        half = n >> 1
        base = base + half if base[half] <= x else base
        n -= half
    return (base - grid) + (1 if base[0] <= x else 0) - 1


cdef inline Py_ssize_t _k_ge(const double* grid, Py_ssize_t K, double x) noexcept nogil:
    """The first k with grid[k] >= x (K if none)."""
    cdef const double* base = grid
    cdef Py_ssize_t n = K, half
    while n > 1:
        half = n >> 1
        base = base + half if base[half] < x else base
        n -= half
    return (base - grid) + (1 if base[0] < x else 0)


cdef inline uint64_t _splitmix(uint64_t* s) noexcept nogil:
    """splitmix64 (Steele, Lea, Flood 2014)."""
    s[0] += 0x9E3779B97F4A7C15ULL
    cdef uint64_t z = s[0]
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline double _fast_log(double x) noexcept nogil:
    """log(x) for a normal x > 0 to ~1e-9: x = 2**e * m with m in [sqrt(1/2), sqrt(2)), then
    log(m) = 2 atanh(t), t = (m - 1) / (m + 1), |t| <= 0.172, by its series to t**9. Twice as
    fast as libm's log, which dominated the exploration pass of a lookup."""
    cdef uint64_t u = _bits(x)
    cdef int64_t e = <int64_t>((u >> 52) & 0x7FF) - 1023
    u = (u & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL
    cdef double m
    memcpy(&m, &u, 8)
    if m > 1.4142135623730951:
        m *= 0.5
        e += 1
    cdef double t = (m - 1.0) / (m + 1.0), t2 = t * t
    cdef double lm = 2.0 * t * (1.0 + t2 * (1.0 / 3 + t2 * (0.2 + t2 * (1.0 / 7 + t2 / 9))))
    return <double>e * 0.6931471805599453 + lm


cdef inline double _uniform(uint64_t* s) noexcept nogil:
    """Uniform on (0, 1]."""
    return (<double>(_splitmix(s) >> 11) + 1.0) * (1.0 / 9007199254740992.0)


cdef inline int _check_row(int64_t n_keys, int64_t key, double f, double p, unsigned char sold,
                           double b1, double b2, int mode) noexcept nogil:
    if key < 0 or key >= n_keys:
        return BAD_KEY
    if not _nonneg(f):
        return BAD_FLOOR
    if sold and not _nonneg(p):
        return BAD_PRICE
    if mode == 2:
        return 0
    if not (_nonneg(b1) or (mode == 1 and isnan(b1))):
        return BAD_TOP
    if not (_nonneg(b2) or (mode == 1 and isnan(b2))):
        return BAD_SECOND
    if b2 > b1 or (isnan(b1) and not isnan(b2)):
        return BAD_ORDER
    if sold and p > b1:
        return BAD_PAID
    return 0


ctypedef struct _Ctx:
    # what the learning loop reads, copied out of the object so that its stores into the sums
    # (through double pointers) cannot force reloads of the object's fields
    double* d            # [n_keys, K + 1, 4]
    double* g
    unsigned char* touched
    const double* grid
    const int64_t* table
    uint64_t tbase
    int tshift
    double tlo, thi, inv_lam
    Py_ssize_t K


cdef inline Py_ssize_t _ix(const _Ctx* c, double x) noexcept nogil:
    """The last k with grid[k] <= x, for x >= 0 (not NaN): the table gives the candidate at
    the start of x's bucket; a bucket rarely holds a candidate, so the walk is mostly zero
    steps."""
    if x < c.tlo:
        return 0 if c.grid[0] <= x else -1
    if x >= c.thi:
        return c.K - 1
    cdef Py_ssize_t k = c.table[(_bits(x) - c.tbase) >> c.tshift]
    while c.grid[k + 1] <= x:
        k += 1
    return k


cdef inline Py_ssize_t _ix_ge(const _Ctx* c, double x) noexcept nogil:
    """The first k with grid[k] >= x, for x >= 0."""
    cdef Py_ssize_t k = _ix(c, x)
    return k if k >= 0 and c.grid[k] == x else k + 1


cdef void _rescale_row(_Ctx* c, int64_t key) noexcept nogil:
    cdef double s = 1.0 / c.g[key]
    cdef double* row = c.d + key * 4 * (c.K + 1)
    cdef Py_ssize_t k
    for k in range(4 * (c.K + 1)):
        row[k] *= s
    c.g[key] = 1.0


cdef inline void _keep_scale(_Ctx* c, int64_t key, double w) noexcept nogil:
    """Rescales the key once its clock is large, also after an auction that taught nothing:
    a long run of those would otherwise grow the clock to infinity."""
    if w > 1e100:
        _rescale_row(c, key)


cdef inline void _learn_row(_Ctx* c, int64_t key, double f, double p, unsigned char sold,
                            double b1, double b2, int mode) noexcept nogil:
    """One logged auction. Which candidates it informs is decided by what the log shows,
    never by the bids themselves, so that each candidate's estimate averages an unbiased
    sample of auctions: every candidate (all bids seen), the candidates at or above the
    floor (bids below it unseen), or the floor itself (only the price)."""
    cdef Py_ssize_t K = c.K, lo, hi = K - 1, k1 = -1, k2 = -1, a, b
    cdef double v = 0.0
    # the key's clock moves on every auction, informative or not
    cdef double w = c.g[key] * c.inv_lam
    c.g[key] = w
    c.touched[key] = 1
    if mode == 2:
        lo = _ix(c, f)
        if lo < 0 or c.grid[lo] != f or (not sold and f <= 0.0):
            _keep_scale(c, key, w)
            return
        hi = lo
        if sold:
            k1, k2, v = lo, lo, p
    else:
        if (mode == 0 and b1 <= 0.0) or (mode == 1 and isnan(b1) and f <= 0.0):
            _keep_scale(c, key, w)
            return  # no bid at all: not qualified traffic
        lo = 0 if mode == 0 else _ix_ge(c, f)
        if not isnan(b1):
            k1 = _ix(c, b1)
        if not isnan(b2):
            k2, v = _ix(c, b2), b2
    if lo > hi:
        _keep_scale(c, key, w)
        return
    cdef double* row = c.d + key * 4 * (K + 1)
    row[4 * lo] += w
    row[4 * (hi + 1)] -= w
    b = k2 if k2 < hi else hi
    if b >= lo:
        row[4 * lo + 1] += v * w
        row[4 * (b + 1) + 1] -= v * w
    a = k2 + 1 if k2 + 1 > lo else lo
    b = k1 if k1 < hi else hi
    if b >= a:
        row[4 * a + 2] += w
        row[4 * (b + 1) + 2] -= w
    if b >= lo:
        row[4 * lo + 3] += w
        row[4 * (b + 1) + 3] -= w
    if w > 1e100:
        _rescale_row(c, key)


@cython.final
@cython.auto_pickle(False)   # a live learner (state, RNG) is not copied silently
cdef class _FloorState:
    """The learner's sums for n_keys keys over a grid of K candidate floors."""

    cdef readonly Py_ssize_t n_keys, K
    cdef double[::1] grid
    # the grid index of x in O(1): a table over the top bits of x's IEEE-754 pattern between the
    # smallest positive candidate and the largest (see _ix)
    cdef int64_t[::1] table
    cdef uint64_t tbase
    cdef int tshift
    cdef double tlo, thi
    # the four difference arrays interleaved, [key, k, (W, S, C, F)]: the additions of one
    # auction at one position share a cache line
    cdef double[:, :, ::1] d
    cdef double[::1] g
    cdef readonly double lam, min_fill, min_weight
    cdef double inv_lam
    cdef double[::1] floors_
    cdef int64_t[::1] kcur
    cdef unsigned char[::1] touched
    cdef uint64_t rng
    cdef double explore
    cdef double inv_log_stay   # 1 / log(1 - explore), for the geometric gaps
    cdef Py_ssize_t steps
    cdef int64_t gap, step       # the pending explored auction: how far, which step
    cdef int64_t gbuf[64]
    cdef int64_t sbuf[64]
    cdef int gpos

    def __init__(self, Py_ssize_t n_keys, double[::1] grid, double lam, double min_fill,
                 double min_weight, double initial, double explore,
                 Py_ssize_t steps, uint64_t seed):
        self.n_keys = n_keys
        self.K = grid.shape[0]
        self.grid = np.array(grid, dtype=np.float64)
        self.lam = lam
        self.inv_lam = 1.0 / lam
        self._build_table()
        self.min_fill = min_fill
        self.min_weight = min_weight
        self.d = np.zeros((n_keys, self.K + 1, 4))
        self.g = np.ones(n_keys)
        self.floors_ = np.full(n_keys, initial)
        k0 = max(_k_le(&self.grid[0], self.K, initial), 0)
        self.kcur = np.full(n_keys, k0, dtype=np.int64)
        self.touched = np.zeros(n_keys, dtype=np.uint8)
        self.rng = seed
        self.explore = explore
        self.inv_log_stay = 1.0 / log(1.0 - explore) if 0.0 < explore < 1.0 else 0.0
        self.steps = steps
        self.gpos = 64
        self._next_gap()

    def _build_table(self):
        cdef const double* grid = &self.grid[0]
        cdef Py_ssize_t K = self.K, b, first = 0 if self.grid[0] > 0.0 else 1
        self.tlo = self.grid[first]
        self.thi = self.grid[K - 1]
        self.tbase = _bits(self.tlo)
        cdef uint64_t span = _bits(self.thi) - self.tbase
        self.tshift = 0
        while (span >> self.tshift) >= 4096:
            self.tshift += 1
        nb = <Py_ssize_t>(span >> self.tshift) + 1
        self.table = np.empty(nb, dtype=np.int64)
        cdef uint64_t u
        cdef double lo
        for b in range(nb):
            u = self.tbase + (<uint64_t>b << self.tshift)
            memcpy(&lo, &u, 8)
            self.table[b] = _k_le(grid, K, lo)

    cdef void _next_gap(self) noexcept nogil:
        """The gap to the next explored auction and its step, from the buffer."""
        if self.gpos == 64:
            self._refill()
        self.gap = self.gbuf[self.gpos]
        self.step = self.sbuf[self.gpos]
        self.gpos += 1

    cdef void _refill(self) noexcept nogil:
        """64 gaps and steps at once: each is independent of the one before (the stream's
        state only adds a constant), so their log and mixing overlap instead of forming one
        long dependency chain through the lookup. Gaps are geometric (one uniform draw serves
        a whole gap, so a lookup costs one gather per auction); steps are uniform on
        [-steps, steps] without 0 (the top 32 bits scaled: no 64-bit division)."""
        cdef int j
        cdef int64_t d
        cdef double x
        for j in range(64):
            if self.explore <= 0.0:
                self.gbuf[j] = 1 << 62
            elif self.explore >= 1.0:
                self.gbuf[j] = 0
            else:
                # both factors <= 0: the product is >= 0 and truncation is its floor. A gap
                # past 2**62, or an infinite one (log(1 - explore) rounds to 0 for a tiny
                # explore), would overflow the cast: it means no exploration within reach
                x = _fast_log(_uniform(&self.rng)) * self.inv_log_stay
                self.gbuf[j] = <int64_t>x if 0.0 <= x < 4611686018427387904.0 else (<int64_t>1) << 62
            d = <int64_t>(((_splitmix(&self.rng) >> 32) * <uint64_t>(2 * self.steps)) >> 32)
            d -= self.steps
            self.sbuf[j] = d + 1 if d >= 0 else d
        self.gpos = 0

    @property
    def floors(self):
        return np.asarray(self.floors_)

    @property
    def rng_state(self):
        return int(self.rng)

    def update(self, const int64_t[::1] key, const double[::1] floor, const double[::1] price,
               const unsigned char[::1] sold, const double[::1] top,
               const double[::1] second, int mode):
        """Validate every row, then learn from them in order; returns (-1, 0) or the first bad
        row and its code, with the state untouched. mode: 0 every bid seen (top, second), 1 only
        bids at or above the floor seen (NaN: none seen), 2 only the price and the sale."""
        cdef Py_ssize_t n = key.shape[0], i
        cdef int code = 0
        with nogil:
            for i in range(n):
                code = _check_row(self.n_keys, key[i], floor[i], price[i], sold[i], top[i], second[i],
                                  mode)
                if code:
                    break
        if code:
            return i, code
        cdef _Ctx c
        c.d = &self.d[0, 0, 0]
        c.g = &self.g[0]
        c.touched = &self.touched[0]
        c.grid = &self.grid[0]
        c.table = &self.table[0]
        c.tbase, c.tshift, c.tlo, c.thi = self.tbase, self.tshift, self.tlo, self.thi
        c.inv_lam, c.K = self.inv_lam, self.K
        with nogil:
            for i in range(n):
                _learn_row(&c, key[i], floor[i], price[i], sold[i], top[i], second[i], mode)
            for i in range(self.n_keys):
                if self.touched[i]:
                    self.touched[i] = 0
                    self._refresh(i)
        return -1, 0

    cdef void _refresh(self, Py_ssize_t key) noexcept nogil:
        """Pick the key's floor: the candidate with the highest revenue per auction among those
        with enough weight and a fill rate >= min_fill; if every known candidate misses the fill
        guard, the lowest known one; with no known candidate, the floor stays."""
        cdef Py_ssize_t k, best = -1, lowest = -1
        cdef double W = 0.0, S = 0.0, C = 0.0, F = 0.0, rev, best_rev = -1.0
        # a floor of 1e-6 auctions keeps the rounding residue of the difference arrays (where
        # nothing was observed) from counting as knowledge
        cdef double need = (self.min_weight if self.min_weight > 1e-6 else 1e-6) * self.g[key]
        need *= 1.0 - 1e-9  # the same rounding residue, on the other side
        for k in range(self.K):
            W += self.d[key, k, 0]
            S += self.d[key, k, 1]
            C += self.d[key, k, 2]
            F += self.d[key, k, 3]
            if W <= 0.0 or W < need:
                continue
            if lowest < 0:
                lowest = k
            if F < self.min_fill * W * (1.0 - 1e-12):
                continue
            rev = (S + self.grid[k] * C) / W
            if rev > best_rev * (1.0 + 1e-12):
                best_rev = rev
                best = k
        if best < 0:
            best = lowest
        if best >= 0:
            self.kcur[key] = best
            self.floors_[key] = self.grid[best]

    def estimates(self, Py_ssize_t key):
        """(weight, revenue per auction, fill rate) of each candidate for one key; weights are
        decayed auction counts, revenue and fill NaN where nothing is known."""
        W, S, C, F = (np.cumsum(np.asarray(self.d[key, :self.K, j])) / self.g[key]
                      for j in range(4))
        W = np.where(np.abs(W) < 1e-9 * max(1.0, float(np.abs(W).max())), 0.0, W)
        with np.errstate(invalid="ignore", divide="ignore"):
            rev = np.where(W > 0, (S + np.asarray(self.grid) * C) / W, np.nan)
            fill = np.where(W > 0, F / W, np.nan)
        return W, rev, fill

    def lookup(self, const int64_t[::1] key, double[::1] out, bint explore):
        """out[i] = the floor of key[i]; with exploration, a geometric share of auctions get a
        random grid floor within `steps` of the key's floor. Returns the first bad index or
        -1 (then, and only then, the random stream has moved)."""
        cdef Py_ssize_t n = key.shape[0], i, start, end, bad = -1
        cdef uint64_t nk = <uint64_t>self.n_keys
        cdef const double* floors = &self.floors_[0]
        cdef const int64_t* k = &key[0] if n else NULL
        cdef double* o = &out[0] if n else NULL
        # a refused call leaves the random stream where it was: keep what it may change
        cdef uint64_t rng0 = self.rng
        cdef int64_t gap0 = self.gap, step0 = self.step
        cdef int64_t gbuf0[64]
        cdef int64_t sbuf0[64]
        cdef int gpos0 = self.gpos
        memcpy(gbuf0, self.gbuf, sizeof(gbuf0))
        memcpy(sbuf0, self.sbuf, sizeof(sbuf0))
        explore = explore and self.explore > 0.0 and self.steps > 0
        with nogil:
            # blocks small enough that the explored auctions are overwritten while the block is
            # still in cache; gather and range check fused (a negative key is huge as unsigned)
            for start in range(0, n, 4096):
                end = start + 4096 if start + 4096 < n else n
                for i in range(start, end):
                    if <uint64_t>k[i] >= nk:
                        bad = i
                        break
                    o[i] = floors[k[i]]
                if bad >= 0:
                    self.rng, self.gap, self.step, self.gpos = rng0, gap0, step0, gpos0
                    memcpy(self.gbuf, gbuf0, sizeof(gbuf0))
                    memcpy(self.sbuf, sbuf0, sizeof(sbuf0))
                    break
                if explore:
                    self._explore(k + start, o + start, end - start)
        return bad

    cdef void _explore(self, const int64_t* key, double* out, Py_ssize_t n) noexcept nogil:
        """Overwrite the explored auctions: the gap to the next one is geometric, so this pass
        touches only them."""
        cdef Py_ssize_t i = 0
        cdef int64_t d
        while True:
            if self.gap >= n - i:
                self.gap -= n - i
                return
            i += self.gap
            d = self.step + self.kcur[key[i]]
            if d < 0:
                d = 0
            if d >= self.K:
                d = self.K - 1
            out[i] = self.grid[d]
            i += 1
            self._next_gap()
