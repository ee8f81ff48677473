# the shader's request path (included by _fastpath.pyx after shading.pxi)
#
# A bid reads one published, immutable fit (_ShadingFit) and never fits: refits happen when
# observations arrive (rtbcore.shading), and a new fit replaces the published one with one
# reference assignment, so a bid sees either the old fit or the new one, whole.
# Exploration draws come from a splitmix64 stream, two draws per value whether it explores or
# not, so a call with n values advances the stream by exactly 2n: an array call is the same
# scalar calls in turn, and an array call reserves its draws under the GIL and runs without it.
# Names carry the _sd_ prefix because every .pxi shares one module namespace.

from libc.math cimport NAN as _SD_NAN

import numpy as _sd_np

from rtbcore.errors import InvalidInputError as _SdInvalid

DEF _SD_GAMMA = 0x9E3779B97F4A7C15


@_pc_cython.final
@_pc_cython.auto_pickle(False)   # state goes through BidLandscape.to_state
cdef class _ShadingFit:
    """One fitted landscape, never mutated: F at the grid edges, the argmax table of the value
    grid, the unsmoothed bin masses (the start of the next incremental fit) and which
    observations it includes."""

    cdef readonly object F, seg, p
    cdef readonly Py_ssize_t n_obs
    cdef readonly bint exact
    cdef readonly double h, vstep
    cdef const double[::1] _F
    cdef const Py_ssize_t[::1] _seg
    cdef double[::1] _slope, _q     # per segment: F's slope and F_i / slope - e_i (no division per bid)
    cdef double _inv_vstep

    def __init__(self, F, seg, p, double h, double vstep, Py_ssize_t n_obs, bint exact):
        cdef Py_ssize_t i, K
        self.F = F
        self.seg = seg
        self.p = p
        self._F = F
        self._seg = seg
        self.h = h
        self.vstep = vstep
        self._inv_vstep = 1.0 / vstep
        self.n_obs = n_obs
        self.exact = exact
        K = self._F.shape[0] - 1
        self._slope = _sd_np.empty(K)
        self._q = _sd_np.empty(K)
        for i in range(K):
            # the same arithmetic as _sh_seg_best, so a bid equals BidLandscape.optimal_bid
            self._slope[i] = (self._F[i + 1] - self._F[i]) / h
            self._q[i] = self._F[i] / self._slope[i] - i * h if self._slope[i] > 0.0 else 0.0


cdef inline double _sd_optimal(_ShadingFit fit, double v) noexcept nogil:
    """argmax_b (v - b) F(b) for one valid value: _shading_optimal_bid's scan (the smallest
    maximizer over the segments the table brackets) with the segments' divisions done."""
    cdef Py_ssize_t K = fit._F.shape[0] - 1, M = fit._seg.shape[0], a, slo, shi, i
    cdef double t = v * fit._inv_vstep, h = fit.h, lo, hi, s, b, g
    cdef double best = -1e300, best_b
    cdef const double* F = &fit._F[0]
    if t >= M - 1:
        slo = fit._seg[M - 1]
        shi = K - 1
    else:
        a = <Py_ssize_t>t
        slo = fit._seg[a]
        shi = fit._seg[a + 1]
    best_b = slo * h
    for i in range(slo, shi + 1):
        lo = i * h
        hi = lo + h
        s = fit._slope[i]
        if s <= 0.0:
            b = lo
        else:
            b = 0.5 * v - 0.5 * fit._q[i]
            if b < lo:
                b = lo
            elif b > hi:
                b = hi
        g = (v - b) * (F[i] + s * (b - lo))
        if g > best:
            best = g
            best_b = b
    return best_b


ctypedef struct _SdRule:
    double floor, ceiling, explore, width
    bint shade          # first price: shade; otherwise bid the value


cdef inline double _sd_draw(_pc_u64 base, _pc_u64 k) noexcept nogil:
    # the k-th output of the splitmix64 stream that starts at state `base`
    cdef _pc_u64 s = base + k * <_pc_u64>_SD_GAMMA
    return _pc_uniform(&s)


cdef inline double _sd_bid_one(_ShadingFit fit, const _SdRule* r, double v, _pc_u64 rng,
                               _pc_u64 k, int* explored) noexcept nogil:
    """The bid for value v (valid) with draws 2k, 2k + 1 of the stream at `rng`."""
    cdef double b, lo, hi
    explored[0] = 0
    if v < r.floor:
        return _SD_NAN
    if not r.shade:
        b = v
    else:
        b = _sd_optimal(fit, v)
        if r.explore > 0.0 and _sd_draw(rng, 2 * k) < r.explore:
            lo = (1.0 - r.width) * b
            hi = (1.0 + r.width) * b
            if hi > v:
                hi = v
            b = lo + _sd_draw(rng, 2 * k + 1) * (hi - lo)
            explored[0] = 1
    if b < r.floor:
        b = r.floor
    if b > r.ceiling:
        b = r.ceiling
    return b if b < v else v


@_pc_cython.auto_pickle(False)   # BidShader pickles through to_state
cdef class _ShaderCore:
    """Core of rtbcore.shading.BidShader (see there): the bid from the published fit."""

    cdef readonly object landscape
    cdef _SdRule _r
    cdef _pc_u64 _rng
    cdef public unsigned long long n_explored, n_no_bid

    def _set_rule(self, landscape, double floor, double ceiling, double explore,
                  double explore_width, bint shade, seed):
        self.landscape = landscape
        self._r.floor = floor
        self._r.ceiling = ceiling
        self._r.explore = explore
        self._r.width = explore_width
        self._r.shade = shade
        self._rng = _ck_seed(seed) if seed is not None else <_pc_u64>_pc_np.random.SeedSequence(
            ).generate_state(1, dtype=_pc_np.uint64)[0]

    @property
    def floor(self):
        return self._r.floor

    @property
    def ceiling(self):
        return self._r.ceiling

    @property
    def explore(self):
        return self._r.explore

    @property
    def explore_width(self):
        return self._r.width

    @property
    def rng_state(self):
        """The exploration stream's state (an int in [0, 2**64 - 1])."""
        return int(self._rng)

    cdef _ShadingFit _fit(self):
        return <_ShadingFit?>self.landscape._published

    def bid(self, values):
        """Shaded bids: a float for a number, a 1-D float64 array for an array (NaN = no bid)."""
        cdef double v, b
        cdef int ex = 0
        cdef _pc_u64 rng
        cdef _ShadingFit fit
        if _ck_scalar(values, &v):
            if not _ck_nonneg(v):
                raise _SdInvalid(f"values = {values!r} must be finite and >= 0")
            fit = self._fit()
            rng = self._rng
            self._rng = rng + 2 * <_pc_u64>_SD_GAMMA
            b = _sd_bid_one(fit, &self._r, v, rng, 0, &ex)
            self.n_explored += ex
            if v < self._r.floor:
                self.n_no_bid += 1
            return b
        return self._bid_array(values)

    cdef object _bid_array(self, values):
        cdef object a = _ck_array(values, "values", "float64 numbers")
        cdef const double[::1] vs
        cdef double[::1] o
        cdef Py_ssize_t n, i, bad = -1
        cdef unsigned long long nex = 0, nno = 0
        cdef int ex = 0
        cdef double v
        cdef _pc_u64 rng
        cdef _ShadingFit fit
        if a.ndim == 0:
            a = a.reshape(1)
        if a.ndim != 1:
            raise _SdInvalid(f"values: expected a 1-D array, got shape {a.shape}")
        a = _sd_np.ascontiguousarray(a)
        vs = a
        n = vs.shape[0]
        out = _sd_np.empty(n)
        if n == 0:
            return out
        o = out
        fit = self._fit()
        with nogil:
            bad = _sh_check_values(vs)
        if bad >= 0:
            raise _SdInvalid(f"values[{bad}] = {a[bad]!r} must be finite and >= 0")
        rng = self._rng     # reserve 2n draws, then run without the GIL
        self._rng = rng + 2 * <_pc_u64>n * <_pc_u64>_SD_GAMMA
        with nogil:
            for i in range(n):
                v = vs[i]
                o[i] = _sd_bid_one(fit, &self._r, v, rng, i, &ex)
                nex += ex
                nno += v < self._r.floor
        self.n_explored += nex
        self.n_no_bid += nno
        return out
