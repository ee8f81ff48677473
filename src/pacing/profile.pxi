# pacing: the target curve of the PID and adaptive pacers (see pacing/common.pxi)

cdef inline double _pc_curve(const double* cum, Py_ssize_t nb, double x) noexcept nogil:
    """The target share of the budget at day fraction x in [0, 1]: the cumulative profile,
    linear inside each bucket. nb = 1, cum = [0, 1] is the straight line (exactly x)."""
    cdef double y = x * <double>nb
    cdef Py_ssize_t k = <Py_ssize_t>y
    if k >= nb:
        return cum[nb]
    return cum[k] + (y - <double>k) * (cum[k + 1] - cum[k])


cdef object _pc_cum_profile(object profile):
    """None -> the straight line [0, 1]; else the normalised cumulative profile (B + 1 values)."""
    if profile is None:
        return _pc_np.array([0.0, 1.0])
    p = _pc_array(profile, "profile")
    if p.ndim != 1:
        raise _PcInvalid(f"profile must be 1-D (one value per bucket), got shape {p.shape}")
    if p.shape[0] == 0:
        raise _PcInvalid("profile is empty: it needs one value per bucket (24 or 1440)")
    bad = _pc_np.flatnonzero(~((p >= 0) & _pc_np.isfinite(p)))
    if bad.size:
        i = int(bad[0])
        raise _PcInvalid(f"profile[{i}] = {float(p[i])!r} must be finite and >= 0")
    total = float(p.sum())
    if not (total > 0 and total < _PC_INF):
        raise _PcInvalid(f"profile sums to {total!r}: it needs some traffic (a positive sum)")
    cum = _pc_np.empty(p.shape[0] + 1)
    cum[0] = 0.0
    _pc_np.cumsum(p / total, out=cum[1:])
    cum[p.shape[0]] = 1.0        # exactly 1 at the end, whatever the rounding
    return _pc_np.minimum(cum, 1.0)
