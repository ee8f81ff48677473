# pacing: value_bid (see pacing/common.pxi)

cdef inline int _pc_value_code(double ctr, double cvr, double v, double roi, double m) noexcept nogil:
    if not _ck_unit(ctr):
        return 0 * 16 + _PC_UNIT
    if not _ck_unit(cvr):
        return 1 * 16 + _PC_UNIT
    if not _ck_nonneg(v):
        return 2 * 16 + _PC_NONNEG
    if not _ck_pos(roi):
        return 3 * 16 + _PC_POS
    if not _ck_nonneg(m):
        return 4 * 16 + _PC_NONNEG
    return 0


cdef Py_ssize_t _pc_k_value(Py_ssize_t n, const _PcArg* a, double min_bid, double max_bid,
                            double* out, int* code) noexcept nogil:
    # Scalar arguments are spread into a block-long buffer once, so that the inner loop reads
    # five stride-1 streams whatever mix of scalars and arrays came in (and vectorises).
    cdef double buf[5][_PC_BLOCK]
    cdef const double* q[5]
    cdef Py_ssize_t i, j, lo, hi, w
    cdef double ctr, cvr, v, roi, m, x, acc
    cdef int ok, k
    for j in range(5):
        if a[j].s == 0:
            for i in range(_PC_BLOCK):
                buf[j][i] = a[j].p[0]
    lo = 0
    while lo < n:
        hi = lo + _PC_BLOCK if n - lo > _PC_BLOCK else n
        w = hi - lo
        for j in range(5):
            q[j] = a[j].p + lo if a[j].s else &buf[j][0]
        acc = 0.0
        for i in range(w):
            ctr = q[0][i]
            cvr = q[1][i]
            v = q[2][i]
            roi = q[3][i]
            m = q[4][i]
            ok = ((ctr >= 0.0) & (ctr <= 1.0) & (cvr >= 0.0) & (cvr <= 1.0) & (v >= 0.0)
                  & (v < _PC_INF) & (roi > 0.0) & (roi < _PC_INF) & (m >= 0.0) & (m < _PC_INF))
            acc = acc if ok else 1.0
            x = ctr * cvr * v / roi * m
            out[lo + i] = min_bid if x < min_bid else (max_bid if x > max_bid else x)
        if acc != 0.0:
            for i in range(w):
                k = _pc_value_code(q[0][i], q[1][i], q[2][i], q[3][i], q[4][i])
                if k:
                    code[0] = k
                    return lo + i
        lo = hi
    return -1


def _pacing_value_bid(p_ctr, p_cvr, value, target_roi, multiplier, min_bid, max_bid):
    """Kernel of rtbcore.pacing.value_bid (see there)."""
    cdef double lo = _ck_real(min_bid, "min_bid"), hi = _ck_real(max_bid, "max_bid")
    cdef _PcArg args[5]
    cdef Py_ssize_t n = 1, bad
    cdef int code = 0
    cdef double[::1] o
    if lo < 0:
        raise _PcInvalid(f"min_bid = {lo!r} must be >= 0")
    if hi < lo:
        raise _PcInvalid(f"max_bid = {hi!r} must be >= min_bid ({lo!r})")
    names = _PC_VALUE_NAMES[:5]
    arrays = [_pc_array(x, name) for x, name in
              zip((p_ctr, p_cvr, value, target_roi, multiplier), names)]
    shape = _pc_common_shape(arrays, names)
    if shape is not None:
        for d in shape:
            n *= d
    out = _pc_np.empty(n)
    if n == 0:
        return out.reshape(shape)
    flats = [_pc_flat(a, n) for a in arrays]
    for j in range(5):
        args[j] = _pc_arg(flats[j])
    o = out
    with nogil:
        bad = _pc_k_value(n, args, lo, hi, &o[0], &code)
    if bad >= 0:
        _pc_raise(code, bad, arrays, names)
    return float(out[0]) if shape is None else out.reshape(shape)
