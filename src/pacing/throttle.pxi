# pacing: the throttling pacer, hard cap then a seeded coin (see pacing/common.pxi)

cdef inline _pc_u64 _pc_next(_pc_u64* state) noexcept nogil:
    """splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, passes BigCrush."""
    cdef _pc_u64 z
    state[0] += 0x9E3779B97F4A7C15ULL
    z = state[0]
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline double _pc_uniform(_pc_u64* state) noexcept nogil:
    return <double>(_pc_next(state) >> 11) * (1.0 / 9007199254740992.0)


cdef inline double _pc_throttle_p(double s, double b, double frac) noexcept nogil:
    """Bid probability of the throttle: 1 while used <= time, else max(0.1, min(1, 1 - (used - time)))."""
    cdef double used = s / b if b > 0.0 else 1.0
    cdef double p
    if used <= frac:
        return 1.0
    p = 1.0 - (used - frac)
    if p > 1.0:
        p = 1.0
    return 0.1 if p < 0.1 else p


cdef inline bint _pc_throttle(double s, double b, double c, double frac, _pc_u64* rng) noexcept nogil:
    # One draw per decision that passes the cap and is throttled (used > time), none otherwise.
    cdef double p
    if not _pc_cap(s, b, c):
        return False
    p = _pc_throttle_p(s, b, frac)
    if p >= 1.0:
        return True
    return _pc_uniform(rng) < p


cdef Py_ssize_t _pc_k_throttle(Py_ssize_t n, const _PcArg* a, unsigned char* out,
                               _pc_u64* rng, int* code) noexcept nogil:
    cdef Py_ssize_t i, lo, hi
    cdef double s, b, c, e, t, pi
    cdef double p[_PC_BLOCK]
    cdef int k
    if a[_PC_A_ELAPSED].s == 0 and a[_PC_A_TOTAL].s == 0 and a[_PC_A_SPENT].s == 1 \
            and a[_PC_A_BUDGET].s == 1 and a[_PC_A_COST].s == 1 \
            and _pc_check_time(a[_PC_A_ELAPSED].p[0], a[_PC_A_TOTAL].p[0]) == 0:
        # one clock: probabilities (and validity) in a vectorised pass, then the draws in order
        e = a[_PC_A_ELAPSED].p[0]
        t = a[_PC_A_TOTAL].p[0]
        lo = 0
        while lo < n:
            hi = lo + _PC_BLOCK if n - lo > _PC_BLOCK else n
            if not _pc_throttle_probs(hi - lo, a[_PC_A_SPENT].p + lo, a[_PC_A_BUDGET].p + lo,
                                      a[_PC_A_COST].p + lo, e / t, p):
                break       # the generic loop below names the bad element
            for i in range(hi - lo):
                pi = p[i]
                if pi >= 1.0:
                    out[lo + i] = 1
                elif pi <= 0.0:
                    out[lo + i] = 0
                else:
                    out[lo + i] = _pc_uniform(rng) < pi
            lo = hi
        if lo >= n:
            return -1
        n = lo + _PC_BLOCK if n - lo > _PC_BLOCK else n     # rescan only the bad block
        for i in range(lo, n):
            k = (_pc_check(a[_PC_A_SPENT].p[i], a[_PC_A_BUDGET].p[i], e, t)
                 or _pc_check_cost(a[_PC_A_COST].p[i]))
            if k:
                code[0] = k
                return i
        return -1   # not reached: the block had a bad element
    for i in range(n):
        s = a[_PC_A_SPENT].p[i * a[_PC_A_SPENT].s]
        b = a[_PC_A_BUDGET].p[i * a[_PC_A_BUDGET].s]
        c = a[_PC_A_COST].p[i * a[_PC_A_COST].s]
        e = a[_PC_A_ELAPSED].p[i * a[_PC_A_ELAPSED].s]
        t = a[_PC_A_TOTAL].p[i * a[_PC_A_TOTAL].s]
        k = _pc_check(s, b, e, t) or _pc_check_cost(c)
        if k:
            code[0] = k
            return i
        out[i] = _pc_throttle(s, b, c, e / t, rng)
    return -1


@_pc_cython.auto_pickle(False)
cdef class _ThrottlingPacer(_Pacer):
    """Core of rtbcore.pacing.ThrottlingPacer (see there)."""

    cdef _pc_u64 _rng

    def __init__(self, total=86_400.0, clock=None, start=None, seed=0):
        cdef _pc_u64 r = _ck_seed(seed)
        _Pacer.__init__(self, total, clock, start)
        self._rng = r

    def bid_probability(self, spent, budget, elapsed=None, total=None):
        """The throttle's bid probability (before the hard cap): 1 while the budget used is at
        most the time used, else max(0.1, min(1, 1 - (used - time)))."""
        if elapsed is None:
            elapsed = self._read_clock()
        arrays = [_pc_array(spent, "spent"), _pc_array(budget, "budget"), None,
                  _pc_array(elapsed, "elapsed"),
                  _pc_array(self._total if total is None else total, "total")]
        shape = _pc_common_shape(arrays, _PC_PACING_NAMES)
        # validated by the kernel of the multiplier pacers (same argument rules)
        _pc_run_mult(0, arrays, _PC_PACING_NAMES)
        s, b, e, t = [_pc_np.broadcast_to(a, shape if shape is not None else ())
                      for a in (arrays[0], arrays[1], arrays[3], arrays[4])]
        p = None
        with _pc_np.errstate(all="ignore"):   # a tiny budget: used = inf, as in the kernel
            frac = e / t
            used = _pc_np.where(b > 0, s / _pc_np.where(b > 0, b, 1.0), 1.0)
            p = _pc_np.where(used <= frac, 1.0,
                             _pc_np.maximum(0.1, _pc_np.minimum(1.0, 1.0 - (used - frac))))
        return float(p) if shape is None else p

    def should_bid(self, spent, budget, cost, elapsed=None, total=None):
        """Hard cap, then the seeded throttle (one draw per throttled decision, in order)."""
        cdef double s, b, c, e, t
        cdef int k
        if elapsed is None:
            elapsed = self._read_clock()
        if total is None:
            total = self._total
        if _ck_scalar(spent, &s) and _ck_scalar(budget, &b) and _ck_scalar(cost, &c) \
                and _ck_scalar(elapsed, &e) and _ck_scalar(total, &t):
            k = _pc_check(s, b, e, t) or _pc_check_cost(c)
            if k == 0:
                return _pc_throttle(s, b, c, e / t, &self._rng)
        return _pc_run_bool([
            _pc_array(spent, "spent"), _pc_array(budget, "budget"), _pc_array(cost, "cost"),
            _pc_array(elapsed, "elapsed"), _pc_array(total, "total")],
            _PC_PACING_NAMES, None, 1, self)

    @property
    def rng_state(self):
        """The splitmix64 state (an int); two pacers with the same state draw the same."""
        return int(self._rng)

    @rng_state.setter
    def rng_state(self, value):
        self._rng = _ck_seed(value, "rng_state")
