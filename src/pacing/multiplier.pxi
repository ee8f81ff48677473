# pacing: the multiplier pacers, linear and tiered (see pacing/common.pxi)

cdef inline double _pc_linear(double s, double b, double frac) noexcept nogil:
    # target = budget * (elapsed / total); 0.8 above target, 1.2 otherwise
    return 0.8 if s > b * frac else 1.2


cdef inline double _pc_tiered(double s, double b, double frac) noexcept nogil:
    cdef double target = b * frac
    cdef double r, m
    if target > 0.0:
        r = s / target
    elif s > 0.0:
        r = _PC_INF          # spent something against a zero target: far above
    else:
        r = 1.0              # nothing spent, nothing due: on target
    if r > 1.2:
        m = 0.7
    elif r > 1.1:
        m = 0.85
    elif r < 0.8:
        m = 1.3
    elif r < 0.9:
        m = 1.15
    else:
        m = 1.0
    return 0.5 if m < 0.5 else (2.0 if m > 2.0 else m)


cdef Py_ssize_t _pc_k_mult(int rule, Py_ssize_t n, const _PcArg* a, double* out,
                           int* code) noexcept nogil:
    """rule 0 = linear, 1 = tiered."""
    cdef Py_ssize_t i, j, lo, hi
    cdef double s, b, e, t, frac, acc, r, m
    cdef const double* sp = a[_PC_A_SPENT].p
    cdef const double* bp = a[_PC_A_BUDGET].p
    cdef int c, ok
    if a[_PC_A_ELAPSED].s == 0 and a[_PC_A_TOTAL].s == 0 and a[_PC_A_SPENT].s == 1 \
            and a[_PC_A_BUDGET].s == 1:
        # the common case: one clock for every campaign; contiguous spend and budgets
        e = a[_PC_A_ELAPSED].p[0]
        t = a[_PC_A_TOTAL].p[0]
        c = _pc_check_time(e, t)
        if c:
            code[0] = c
            return 0
        frac = e / t
        lo = 0
        while lo < n:
            hi = lo + _PC_BLOCK if n - lo > _PC_BLOCK else n
            acc = 0.0
            if rule == 0:
                for i in range(lo, hi):
                    s = sp[i]
                    b = bp[i]
                    ok = (s >= 0.0) & (s < _PC_INF) & (b >= 0.0) & (b < _PC_INF)
                    acc = acc if ok else 1.0
                    out[i] = 0.8 if s > b * frac else 1.2
            else:
                for i in range(lo, hi):
                    s = sp[i]
                    b = bp[i]
                    ok = (s >= 0.0) & (s < _PC_INF) & (b >= 0.0) & (b < _PC_INF)
                    acc = acc if ok else 1.0
                    # _pc_tiered as selects: r is inf (s > 0) or NaN (s = 0: every comparison
                    # false, on target) when the target is 0, exactly its special cases
                    r = s / (b * frac)
                    m = 1.0
                    if r < 0.9:
                        m = 1.15
                    if r < 0.8:
                        m = 1.3
                    if r > 1.1:
                        m = 0.85
                    if r > 1.2:
                        m = 0.7
                    out[i] = m
            if acc != 0.0:
                for j in range(lo, hi):
                    c = _pc_check(sp[j], bp[j], e, t)
                    if c:
                        code[0] = c
                        return j
            lo = hi
        return -1
    for i in range(n):
        s = sp[i * a[_PC_A_SPENT].s]
        b = bp[i * a[_PC_A_BUDGET].s]
        e = a[_PC_A_ELAPSED].p[i * a[_PC_A_ELAPSED].s]
        t = a[_PC_A_TOTAL].p[i * a[_PC_A_TOTAL].s]
        c = _pc_check(s, b, e, t)
        if c:
            code[0] = c
            return i
        out[i] = _pc_linear(s, b, e / t) if rule == 0 else _pc_tiered(s, b, e / t)
    return -1


cdef object _pc_run_mult(int rule, list arrays, tuple names):
    cdef object shape = _pc_common_shape(arrays, names)
    cdef Py_ssize_t n = 1
    cdef _PcArg args[5]
    cdef list flats
    cdef Py_ssize_t bad
    cdef int code = 0
    cdef double[::1] o
    if shape is not None:
        for d in shape:
            n *= d
    out = _pc_np.empty(n, dtype=_pc_np.float64)
    if n == 0:
        return out.reshape(shape)
    if arrays[_PC_A_COST] is None:
        arrays[_PC_A_COST] = _pc_np.zeros(())
    flats = [_pc_flat(a, n) for a in arrays]
    for j in range(5):
        args[j] = _pc_arg(flats[j])
    o = out
    with nogil:
        bad = _pc_k_mult(rule, n, args, &o[0], &code)
    if bad >= 0:
        _pc_raise(code, bad, arrays, names, float(arrays[_PC_A_TOTAL].reshape(-1)[
            bad if arrays[_PC_A_TOTAL].ndim else 0]))
    if shape is None:
        return float(out[0])
    return out.reshape(shape)


@_pc_cython.auto_pickle(False)
cdef class _MultiplierPacer(_Pacer):
    cdef int _rule

    def multiplier(self, spent, budget, elapsed=None, total=None):
        """The bid multiplier for each campaign (scalars or arrays; same shape out)."""
        cdef double s, b, e, t
        cdef int k
        if elapsed is None:
            elapsed = self._read_clock()
        if total is None:
            total = self._total
        if _ck_scalar(spent, &s) and _ck_scalar(budget, &b) and _ck_scalar(elapsed, &e) \
                and _ck_scalar(total, &t):
            k = _pc_check(s, b, e, t)
            if k == 0:
                return _pc_linear(s, b, e / t) if self._rule == 0 else _pc_tiered(s, b, e / t)
        return _pc_run_mult(self._rule, [
            _pc_array(spent, "spent"), _pc_array(budget, "budget"), None,
            _pc_array(elapsed, "elapsed"), _pc_array(total, "total")], _PC_PACING_NAMES)


@_pc_cython.auto_pickle(False)
cdef class _LinearPacer(_MultiplierPacer):
    """Core of rtbcore.pacing.LinearPacer (see there)."""

    def __cinit__(self):
        self._rule = 0


@_pc_cython.auto_pickle(False)
cdef class _TieredPacer(_MultiplierPacer):
    """Core of rtbcore.pacing.TieredPacer (see there)."""

    def __cinit__(self):
        self._rule = 1
