# pacing: the clock and the hard cap, the base of every pacer (see pacing/common.pxi)

cdef extern from "pacing/simd.h":
    # The hard cap: a bid whose estimated cost would take spend past the budget is refused,
    # decided on the exact sum (see the header). One definition for every pacer and path.
    bint _pc_cap "pc_cap" (double s, double b, double c) noexcept nogil


cdef Py_ssize_t _pc_k_cap(Py_ssize_t n, const _PcArg* a, bint with_time, unsigned char* out,
                          int* code) noexcept nogil:
    """The hard cap alone (the multiplier pacers' should_bid)."""
    cdef Py_ssize_t i, j, lo, hi
    cdef double s, b, c
    cdef const double* sp = a[_PC_A_SPENT].p
    cdef const double* bp = a[_PC_A_BUDGET].p
    cdef const double* cp = a[_PC_A_COST].p
    cdef int k
    if with_time:
        for i in range(n if (a[_PC_A_ELAPSED].s or a[_PC_A_TOTAL].s) else 1):
            k = _pc_check_time(a[_PC_A_ELAPSED].p[i * a[_PC_A_ELAPSED].s],
                               a[_PC_A_TOTAL].p[i * a[_PC_A_TOTAL].s])
            if k:
                code[0] = k
                return i
    if a[_PC_A_SPENT].s == 1 and a[_PC_A_BUDGET].s == 1 and a[_PC_A_COST].s == 1:
        lo = 0
        while lo < n:
            hi = lo + _PC_BLOCK if n - lo > _PC_BLOCK else n
            if not _pc_cap_block(sp + lo, bp + lo, cp + lo, out + lo, hi - lo):
                for j in range(lo, hi):
                    k = _pc_check(sp[j], bp[j], 0.0, 1.0) or _pc_check_cost(cp[j])
                    if k:
                        code[0] = k
                        return j
            lo = hi
        return -1
    for i in range(n):
        s = sp[i * a[_PC_A_SPENT].s]
        b = bp[i * a[_PC_A_BUDGET].s]
        c = cp[i * a[_PC_A_COST].s]
        k = _pc_check(s, b, 0.0, 1.0) or _pc_check_cost(c)
        if k:
            code[0] = k
            return i
        out[i] = _pc_cap(s, b, c)
    return -1


# ---------------------------------------------------------------------------------------------
# the pacers

@_pc_cython.auto_pickle(False)   # a live pacer (clock, RNG, state) is not copied silently
cdef class _Pacer:
    """Common core: the period length, the injectable clock and the hard cap."""

    cdef double _total
    cdef double _start
    cdef double _last_clock
    cdef object _clock
    cdef object _calendar       # None, or an object with bounds(t) -> (start, length)

    def __init__(self, total=86_400.0, clock=None, start=None):
        cdef double t = _ck_real(total, "total")
        cdef double s
        if not (t > 0.0):
            raise _PcInvalid(f"total must be finite and > 0 seconds, got {total!r}")
        clock = _ck_clock(clock, _pc_time.monotonic)
        s = _ck_real(clock() if start is None else start, "start" if start is not None else "clock()")
        self._total = t
        self._start = s
        self._last_clock = -_PC_INF
        self._clock = clock

    @property
    def total(self):
        """Length of the pacing period in seconds (default one day)."""
        return self._total

    @property
    def start(self):
        """Clock reading at which the period starts (elapsed = clock() - start)."""
        return self._start

    def elapsed(self):
        """Seconds since the start of the period, read from the clock (must not go backwards)."""
        return self._read_clock()

    cdef double _read_clock(self) except? -1.0:
        cdef double now = _ck_real(self._clock(), "clock()")
        cdef double e
        if now < self._last_clock:
            raise _PcInvalid(
                f"clock() = {now!r} is before its previous reading ({self._last_clock!r}): "
                "time must not go backwards")
        e = now - self._start
        if e > self._total and self._calendar is not None:
            # a new period by the calendar: a Python call once per period, not per bid
            start, length = self._calendar.bounds(now)
            self.rollover(start=start, total=length)
            e = now - self._start
        if e < 0.0:
            raise _PcInvalid(f"clock() = {now!r} is before the start of the period ({self._start!r})")
        if e > self._total:
            raise _PcInvalid(
                f"elapsed = {e!r} s (from the clock) is past the end of the period "
                f"(total = {self._total!r})")
        self._last_clock = now
        return e

    @property
    def calendar(self):
        """The calendar whose periods the clock follows (None: one period, never rolled)."""
        return self._calendar

    def _set_calendar(self, calendar):
        if calendar is not None and not callable(getattr(calendar, "bounds", None)):
            raise _PcInvalid(f"calendar must have a bounds(t) -> (start, length) method, got {calendar!r}")
        self._calendar = calendar

    def rollover(self, start=None, total=None):
        """Begin a new period at ``start`` (default: where the current one ends) lasting
        ``total`` seconds (default: as the current one). The clock may then read up to
        ``start + total``."""
        cdef double s = self._start + self._total if start is None else _ck_real(start, "start")
        cdef double t = self._total if total is None else _ck_real(total, "total")
        if not (t > 0.0):
            raise _PcInvalid(f"total must be finite and > 0 seconds, got {total!r}")
        self._start = s
        self._total = t

    @property
    def clock(self):
        """The clock the pacer reads (a callable returning seconds)."""
        return self._clock

    def _period_state(self):
        return {"total": self._total, "start": self._start, "last_clock": self._last_clock}

    def _set_period_state(self, double total, double start, double last_clock):
        if not (total > 0.0 and total < _PC_INF) or not _ck_finite(start) or last_clock != last_clock:
            raise _PcInvalid(f"a pacer state needs total > 0 and a finite start, got {total!r}, {start!r}")
        self._total = total
        self._start = start
        self._last_clock = last_clock

    cdef object _elapsed_arg(self, object elapsed):
        return self._read_clock() if elapsed is None else elapsed

    cdef object _total_arg(self, object total):
        return self._total if total is None else total

    def should_bid(self, spent, budget, cost, elapsed=None, total=None):
        """The hard cap: True where ``spent + cost <= budget`` (scalars or arrays).

        ``elapsed``/``total`` are validated when given, never needed: the cap does not depend on
        the time (and the clock is not read).
        """
        cdef double s, b, c
        cdef int k
        if elapsed is None and total is None and _ck_scalar(spent, &s) \
                and _ck_scalar(budget, &b) and _ck_scalar(cost, &c):
            k = _pc_check(s, b, 0.0, 1.0) or _pc_check_cost(c)
            if k == 0:
                return _pc_cap(s, b, c)
        return self._cap_array(spent, budget, cost, elapsed, total)

    cdef object _cap_array(self, spent, budget, cost, elapsed, total):
        cdef list arrays = [
            _pc_array(spent, "spent"), _pc_array(budget, "budget"), _pc_array(cost, "cost"),
            _pc_array(elapsed if elapsed is not None else 0.0, "elapsed"),
            _pc_array(self._total_arg(total), "total"),
        ]
        return _pc_run_bool(arrays, _PC_PACING_NAMES, None, 0, None)


cdef object _pc_run_bool(list arrays, tuple names, object fixed_shape, int kind,
                         object pacer):
    """Runs a bool kernel over the arrays. kind 0 = cap, 1 = throttle (pacer: the throttle)."""
    cdef object shape = _pc_common_shape(arrays, names, fixed_shape)
    cdef Py_ssize_t n = 1
    cdef _PcArg args[5]
    cdef list flats
    cdef Py_ssize_t bad
    cdef int code = 0
    cdef bint with_time = True
    cdef _pc_u64 rng = 0
    cdef unsigned char[::1] m
    if shape is not None:
        n = 1
        for d in shape:
            n *= d
    out = _pc_np.empty(n, dtype=_pc_np.bool_)
    if n == 0:
        return out.reshape(shape)
    flats = [_pc_flat(a, n) for a in arrays]
    for j in range(5):
        args[j] = _pc_arg(flats[j])
    m = out.view(_pc_np.uint8)
    if kind == 0:
        with nogil:
            bad = _pc_k_cap(n, args, with_time, &m[0], &code)
    else:
        rng = (<_ThrottlingPacer>pacer)._rng
        with nogil:
            bad = _pc_k_throttle(n, args, &m[0], &rng, &code)
    if bad >= 0:
        _pc_raise(code, bad, arrays, names, float(arrays[_PC_A_TOTAL].reshape(-1)[
            bad if arrays[_PC_A_TOTAL].ndim else 0]))
    if kind == 1:
        (<_ThrottlingPacer>pacer)._rng = rng      # commit only after a valid call
    if shape is None:
        return bool(out[0])
    return out.reshape(shape)
