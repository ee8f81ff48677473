# pacing kernels of rtbcore._fastpath (included by _fastpath.pyx)
#
# The cores of the pacers of rtbcore.pacing (thin Python subclasses add docs and helpers).
# Every public method takes scalars or arrays:
#   - scalars (Python float/int, numpy float64) go through a scalar path that makes no
#     allocation (the per-request should_bid of a bidder);
#   - otherwise each argument is converted to a float64 array; every non-scalar argument must
#     have the same shape (scalars broadcast) and the result has that shape.
# Each kernel validates and computes in ONE pass without the GIL (no temporaries): it stops at
# the first bad element and reports (argument, index, what is wrong), and the caller raises
# InvalidInputError naming them. Outputs are fresh arrays, so a rejected call changes nothing;
# the stateful pacers (RNG of the throttle, the PID's integral) copy their state into locals
# and write it back only after the whole call was valid.
# Names carry the _pc_ prefix because every .pxi shares one module namespace.

from libc.math cimport INFINITY as _PC_INF
from libc.stdint cimport uint64_t as _pc_u64
from cpython.float cimport PyFloat_Check as _pc_PyFloat_Check
from cpython.long cimport PyLong_CheckExact as _pc_PyLong_CheckExact
cimport cython as _pc_cython

import numbers as _pc_numbers
import time as _pc_time

import numpy as _pc_np

from rtbcore.errors import InvalidInputError as _PcInvalid


ctypedef struct _PcArg:
    const double* p     # first element
    Py_ssize_t s        # 1 for an array argument, 0 for a scalar (broadcast)


# Error codes: argument position * 16 + kind.
cdef enum:
    _PC_NONNEG = 1      # must be finite and >= 0
    _PC_UNIT = 2        # must be in [0, 1]
    _PC_POS = 3         # must be finite and > 0
    _PC_LATE = 4        # elapsed > total
    _PC_BACK = 5        # elapsed before the last update
    _PC_BELOW_MIN = 6   # max_bid < min_bid

# Argument positions of the pacing calls.
cdef enum:
    _PC_A_SPENT = 0
    _PC_A_BUDGET = 1
    _PC_A_COST = 2
    _PC_A_ELAPSED = 3
    _PC_A_TOTAL = 4

_PC_PACING_NAMES = ("spent", "budget", "cost", "elapsed", "total")
_PC_VALUE_NAMES = ("p_ctr", "p_cvr", "value", "target_roi", "multiplier", "min_bid", "max_bid")


# ---------------------------------------------------------------------------------------------
# scalar rules (shared by the scalar path and the array kernels, so both agree bit for bit)

cdef inline int _pc_check(double s, double b, double e, double t) noexcept nogil:
    """0 if spent, budget, elapsed, total are valid, else the error code (NaN fails every test)."""
    if not (s >= 0.0 and s < _PC_INF):
        return _PC_A_SPENT * 16 + _PC_NONNEG
    if not (b >= 0.0 and b < _PC_INF):
        return _PC_A_BUDGET * 16 + _PC_NONNEG
    if not (t > 0.0 and t < _PC_INF):
        return _PC_A_TOTAL * 16 + _PC_POS
    if not (e >= 0.0):
        return _PC_A_ELAPSED * 16 + _PC_NONNEG
    if e > t:
        return _PC_A_ELAPSED * 16 + _PC_LATE
    return 0


cdef inline int _pc_check_cost(double c) noexcept nogil:
    if not (c >= 0.0 and c < _PC_INF):
        return _PC_A_COST * 16 + _PC_NONNEG
    return 0


cdef inline int _pc_check_time(double e, double t) noexcept nogil:
    if not (t > 0.0 and t < _PC_INF):
        return _PC_A_TOTAL * 16 + _PC_POS
    if not (e >= 0.0):
        return _PC_A_ELAPSED * 16 + _PC_NONNEG
    if e > t:
        return _PC_A_ELAPSED * 16 + _PC_LATE
    return 0


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


cdef inline bint _pc_cap(double s, double b, double c) noexcept nogil:
    # The hard cap: a bid whose estimated cost would take spend past the budget is refused.
    return s + c <= b


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


# ---------------------------------------------------------------------------------------------
# array plumbing (with the GIL): convert, check shapes, raise with names and indices

cdef object _pc_array(object x, str name):
    if isinstance(x, (str, bytes)):
        raise _PcInvalid(f"{name} must be a real number or an array of them, got {x!r}")
    try:
        a = _pc_np.asarray(x, dtype=_pc_np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _PcInvalid(f"{name} must be a real number or an array of them: {exc}") from None
    return a


cdef object _pc_common_shape(list arrays, tuple names, object fixed=None, str fixed_what=""):
    """The shape of the non-scalar arguments (all must agree); None if all are scalars."""
    cdef object shape = fixed
    cdef str first = fixed_what
    for a, name in zip(arrays, names):
        if a is None or a.ndim == 0:
            continue
        if shape is None:
            shape = a.shape
            first = name
        elif a.shape != shape:
            raise _PcInvalid(
                f"{name} has shape {a.shape} but {first} has shape {shape}: array arguments "
                "must have the same shape (scalars broadcast)")
    return shape


cdef inline _PcArg _pc_arg(object flat):
    """flat: a C-contiguous 1-D float64 array kept alive by the caller."""
    cdef const double[::1] mv = flat
    cdef _PcArg r
    r.p = &mv[0]
    r.s = 0 if mv.shape[0] == 1 else 1
    return r


cdef object _pc_flat(object a, Py_ssize_t n):
    """A 0-d array as a 1-element array (stride 0); an array as C-contiguous 1-D."""
    if a.ndim == 0:
        return a.reshape(1)
    return _pc_np.ascontiguousarray(a).reshape(-1)


cdef object _pc_raise(int code, Py_ssize_t i, list arrays, tuple names, object extra=None):
    cdef int pos = code >> 4
    cdef int kind = code & 15
    a = arrays[pos]
    name = names[pos]
    if a is None or a.ndim == 0:
        where = name
        value = float(a) if a is not None else float("nan")
    else:
        idx = _pc_np.unravel_index(i, a.shape)
        where = f"{name}[{', '.join([str(int(j)) for j in idx])}]"
        value = float(a[idx])
    if kind == _PC_NONNEG:
        what = "must be finite and >= 0"
    elif kind == _PC_UNIT:
        what = "must be in [0, 1]"
    elif kind == _PC_POS:
        what = "must be finite and > 0"
    elif kind == _PC_LATE:
        what = f"is past the end of the period (total = {extra!r}): elapsed must be <= total"
    elif kind == _PC_BACK:
        what = (f"is before the pacer's last update ({extra!r}): time must not go backwards")
    else:
        what = f"must be >= min_bid ({extra!r})"
    raise _PcInvalid(f"{where} = {value!r} {what}")


# ---------------------------------------------------------------------------------------------
# array kernels: one pass, validate + rule, no GIL; return -1 or the first bad index (code set)

# Fast paths work in blocks and are written so that gcc vectorises them (checked with
# -fopt-info-vec): the validity of a block is folded into a double with a select
# (acc = acc if ok else 1.0; an integer AND-reduction of double comparisons is not vectorised
# with SSE2), and the rules are selects, not branches. A block with a bad element is rescanned
# by the scalar checks to name the first bad index (outputs are fresh arrays, so what was
# written for a rejected call is discarded with it).
DEF _PC_BLOCK = 1024

cdef extern from "pacing_simd.h":
    void _pc_simd_init "pc_simd_init" () noexcept nogil
    int _pc_cap_block "pc_cap_block" (const double* sp, const double* bp, const double* cp,
                                      unsigned char* out, long n) noexcept nogil
    int _pc_pid_output "pc_pid_output" (
        long n, const double* sp, const double* bp, const double* last, const double* integ,
        const double* deriv, double* out, double e, double cf, double base, double kp,
        double ki, double kd, double lo, double hi) noexcept nogil
    void _pc_pid_commit "pc_pid_commit" (
        long n, const double* sp, const double* bp, double* last, double* integ, double* deriv,
        double* prev, double e, double t, double cf, double imin, double imax, double base,
        double kp, double ki, double kd, double lo, double hi) noexcept nogil
    int _pc_throttle_probs "pc_throttle_probs" (
        long n, const double* sp, const double* bp, const double* cp, double frac,
        double* p) noexcept nogil

_pc_simd_init()


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


# ---------------------------------------------------------------------------------------------
# the pacers

@_pc_cython.auto_pickle(False)   # a live pacer (clock, RNG, state) is not copied silently
cdef class _Pacer:
    """Common core: the period length, the injectable clock and the hard cap."""

    cdef double _total
    cdef double _start
    cdef double _last_clock
    cdef object _clock

    def __init__(self, total=86_400.0, clock=None, start=None):
        cdef double t = _pc_real(total, "total")
        cdef double s
        if not (t > 0.0):
            raise _PcInvalid(f"total must be finite and > 0 seconds, got {total!r}")
        if clock is None:
            clock = _pc_time.monotonic
        elif not callable(clock):
            raise _PcInvalid(f"clock must be a callable returning seconds, got {clock!r}")
        s = _pc_real(clock() if start is None else start, "start" if start is not None else "clock()")
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
        cdef double now = _pc_real(self._clock(), "clock()")
        cdef double e
        if now < self._last_clock:
            raise _PcInvalid(
                f"clock() = {now!r} is before its previous reading ({self._last_clock!r}): "
                "time must not go backwards")
        e = now - self._start
        if e < 0.0:
            raise _PcInvalid(f"clock() = {now!r} is before the start of the period ({self._start!r})")
        if e > self._total:
            raise _PcInvalid(
                f"elapsed = {e!r} s (from the clock) is past the end of the period "
                f"(total = {self._total!r})")
        self._last_clock = now
        return e

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
        if _pc_PyFloat_Check(spent) or _pc_PyLong_CheckExact(spent):
            if (_pc_PyFloat_Check(budget) or _pc_PyLong_CheckExact(budget)) and \
                    (_pc_PyFloat_Check(cost) or _pc_PyLong_CheckExact(cost)) and \
                    elapsed is None and total is None:
                try:
                    s = spent
                    b = budget
                    c = cost
                except OverflowError:
                    pass
                else:
                    k = _pc_check(s, b, 0.0, 1.0) or _pc_check_cost(c)
                    if k == 0:
                        return s + c <= b
        return self._cap_array(spent, budget, cost, elapsed, total)

    cdef object _cap_array(self, spent, budget, cost, elapsed, total):
        cdef list arrays = [
            _pc_array(spent, "spent"), _pc_array(budget, "budget"), _pc_array(cost, "cost"),
            _pc_array(elapsed if elapsed is not None else 0.0, "elapsed"),
            _pc_array(self._total_arg(total), "total"),
        ]
        return _pc_run_bool(arrays, _PC_PACING_NAMES, None, 0, None)


cdef inline bint _pc_fast(object x) noexcept:
    return _pc_PyFloat_Check(x) or _pc_PyLong_CheckExact(x)


cdef inline bint _pc_all_fast(object a, object b, object c, object d, object e) noexcept:
    return _pc_fast(a) and _pc_fast(b) and _pc_fast(c) and _pc_fast(d) and _pc_fast(e)


cdef double _pc_real(object x, str name) except? -1.0:
    """A finite real number; InvalidInputError names `name`."""
    cdef double v
    if isinstance(x, (bool, str, bytes)) or not isinstance(x, _pc_numbers.Real):
        raise _PcInvalid(f"{name} must be a real number, got {x!r}")
    try:
        v = float(x)
    except OverflowError:
        raise _PcInvalid(f"{name} is too large: {x!r}") from None
    if not (v > -_PC_INF and v < _PC_INF):
        raise _PcInvalid(f"{name} must be finite, got {x!r}")
    return v


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
        if (_pc_PyFloat_Check(spent) or _pc_PyLong_CheckExact(spent)) and \
                (_pc_PyFloat_Check(budget) or _pc_PyLong_CheckExact(budget)) and \
                (_pc_PyFloat_Check(elapsed) or _pc_PyLong_CheckExact(elapsed)) and \
                (_pc_PyFloat_Check(total) or _pc_PyLong_CheckExact(total)):
            try:
                s = spent
                b = budget
                e = elapsed
                t = total
            except OverflowError:
                pass
            else:
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


cdef _pc_u64 _pc_seed(object seed) except? 0:
    if isinstance(seed, bool) or not isinstance(seed, _pc_numbers.Integral) or seed < 0:
        raise _PcInvalid(f"seed must be an int >= 0, got {seed!r}")
    return <_pc_u64>(int(seed) & 0xFFFFFFFFFFFFFFFF)


@_pc_cython.auto_pickle(False)
cdef class _ThrottlingPacer(_Pacer):
    """Core of rtbcore.pacing.ThrottlingPacer (see there)."""

    cdef _pc_u64 _rng

    def __init__(self, total=86_400.0, clock=None, start=None, seed=0):
        cdef _pc_u64 r = _pc_seed(seed)
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
        if (_pc_PyFloat_Check(spent) or _pc_PyLong_CheckExact(spent)) and \
                (_pc_PyFloat_Check(budget) or _pc_PyLong_CheckExact(budget)) and \
                (_pc_PyFloat_Check(cost) or _pc_PyLong_CheckExact(cost)) and \
                (_pc_PyFloat_Check(elapsed) or _pc_PyLong_CheckExact(elapsed)) and \
                (_pc_PyFloat_Check(total) or _pc_PyLong_CheckExact(total)):
            try:
                s = spent
                b = budget
                c = cost
                e = elapsed
                t = total
            except OverflowError:
                pass
            else:
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


# ---------------------------------------------------------------------------------------------
# PID (and the adaptive target curve)

cdef inline double _pc_curve(const double* cum, Py_ssize_t nb, double x) noexcept nogil:
    """The target share of the budget at day fraction x in [0, 1]: the cumulative profile,
    linear inside each bucket. nb = 1, cum = [0, 1] is the straight line (exactly x)."""
    cdef double y = x * <double>nb
    cdef Py_ssize_t k = <Py_ssize_t>y
    if k >= nb:
        return cum[nb]
    return cum[k] + (y - <double>k) * (cum[k + 1] - cum[k])


ctypedef struct _PcPid:
    double kp, ki, kd, base, lo, hi, imin, imax
    const double* cum
    Py_ssize_t nb


cdef inline double _pc_pid_error(const _PcPid* g, double s, double b, double frac) noexcept nogil:
    """(target - spent) / budget: > 0 when behind the target curve; 0 for a zero budget."""
    if b > 0.0:
        return (b * _pc_curve(g.cum, g.nb, frac) - s) / b
    return 0.0


cdef inline double _pc_pid_out(const _PcPid* g, double err, double integ, double deriv) noexcept nogil:
    cdef double u = g.base + g.kp * err + g.ki * integ + g.kd * deriv
    return g.lo if u < g.lo else (g.hi if u > g.hi else u)


@_pc_cython.auto_pickle(False)
cdef class _PIDPacer(_Pacer):
    """Core of rtbcore.pacing.PIDPacer (see there)."""

    cdef _PcPid _g
    cdef bint _participation
    cdef _pc_u64 _rng
    cdef object _shape          # shape of the campaigns (the budget's at construction)
    cdef Py_ssize_t _n
    cdef object _budget, _integ, _deriv, _prev, _last, _cum_arr
    cdef double[::1] _mv_budget, _mv_integ, _mv_deriv, _mv_prev, _mv_last
    cdef const double[::1] _mv_cum
    cdef unsigned long long _updates

    def __init__(self, budget, total=86_400.0, clock=None, start=None, *, kp=10.0, ki=50.0,
                 kd=0.0, output="multiplier", base=None, lo=None, hi=None, profile=None,
                 seed=0):
        cdef double ckp = _pc_real(kp, "kp"), cki = _pc_real(ki, "ki"), ckd = _pc_real(kd, "kd")
        cdef double cbase, clo, chi
        if ckp < 0 or cki < 0 or ckd < 0:
            raise _PcInvalid(f"kp, ki, kd must be >= 0, got {kp!r}, {ki!r}, {kd!r}")
        if output not in ("multiplier", "participation"):
            raise _PcInvalid(f"output must be 'multiplier' or 'participation', got {output!r}")
        part = output == "participation"
        cbase = _pc_real(base if base is not None else (0.5 if part else 1.0), "base")
        clo = _pc_real(lo if lo is not None else (0.01 if part else 0.1), "lo")
        chi = _pc_real(hi if hi is not None else (1.0 if part else 3.0), "hi")
        if not (0.0 <= clo <= cbase <= chi):
            raise _PcInvalid(f"need 0 <= lo <= base <= hi, got lo={clo!r}, base={cbase!r}, hi={chi!r}")
        if part and chi > 1.0:
            raise _PcInvalid(f"hi must be <= 1 for a participation rate, got {chi!r}")
        b = _pc_array(budget, "budget")
        bad = _pc_np.flatnonzero(~((b >= 0) & _pc_np.isfinite(b)).reshape(-1))
        if bad.size:
            _pc_raise(_PC_A_BUDGET * 16 + _PC_NONNEG, int(bad[0]), [None, b], ("spent", "budget"))
        cum = _pc_cum_profile(profile)
        r = _pc_seed(seed)
        _Pacer.__init__(self, total, clock, start)
        self._shape = b.shape
        self._budget = _pc_np.array(b, dtype=_pc_np.float64).reshape(-1)
        self._n = self._budget.shape[0]
        self._integ = _pc_np.zeros(self._n)
        self._deriv = _pc_np.zeros(self._n)
        self._prev = _pc_np.zeros(self._n)
        self._last = _pc_np.zeros(self._n)
        self._cum_arr = cum
        self._mv_budget = self._budget
        self._mv_integ = self._integ
        self._mv_deriv = self._deriv
        self._mv_prev = self._prev
        self._mv_last = self._last
        self._mv_cum = cum
        self._g.kp = ckp
        self._g.ki = cki
        self._g.kd = ckd
        self._g.base = cbase
        self._g.lo = clo
        self._g.hi = chi
        # anti-windup (1): the integral alone can never push the output past [lo, hi]
        self._g.imin = (clo - cbase) / cki if cki > 0 else -_PC_INF
        self._g.imax = (chi - cbase) / cki if cki > 0 else _PC_INF
        self._g.cum = &self._mv_cum[0]
        self._g.nb = cum.shape[0] - 1
        self._participation = part
        self._rng = r
        self._updates = 0

    # ---- state, read-only (copies) ----

    @property
    def shape(self):
        """Shape of the campaigns this pacer tracks (the budget's)."""
        return self._shape

    @property
    def budget(self):
        return self._budget.reshape(self._shape).copy()

    @property
    def integral(self):
        """The integral of the error (budget share x period share), per campaign."""
        return self._integ.reshape(self._shape).copy()

    @property
    def derivative(self):
        return self._deriv.reshape(self._shape).copy()

    @property
    def last_error(self):
        return self._prev.reshape(self._shape).copy()

    @property
    def last_update(self):
        """Elapsed seconds of each campaign's last update (0 before any)."""
        return self._last.reshape(self._shape).copy()

    @property
    def updates(self):
        return int(self._updates)

    @property
    def gains(self):
        return {"kp": self._g.kp, "ki": self._g.ki, "kd": self._g.kd, "base": self._g.base,
                "lo": self._g.lo, "hi": self._g.hi}

    @property
    def output_kind(self):
        return "participation" if self._participation else "multiplier"

    @property
    def cumulative_profile(self):
        """The target curve at the bucket edges: B + 1 values from 0 to 1."""
        return _pc_np.array(self._cum_arr)

    def target(self, elapsed=None, total=None):
        """The target share of the budget at ``elapsed`` (scalar or array)."""
        if elapsed is None:
            elapsed = self._read_clock()
        e = _pc_array(elapsed, "elapsed")
        t = _pc_real(self._total if total is None else total, "total")
        if not (t > 0):
            raise _PcInvalid(f"total must be finite and > 0, got {t!r}")
        flat = _pc_np.ascontiguousarray(e).reshape(-1)
        bad = _pc_np.flatnonzero(~((flat >= 0) & (flat <= t)))
        if bad.size:
            _pc_raise(_PC_A_ELAPSED * 16 + (_PC_LATE if flat[bad[0]] > t else _PC_NONNEG),
                      int(bad[0]), [None, None, None, e], _PC_PACING_NAMES, t)
        out = _pc_np.empty(flat.shape[0])
        cdef Py_ssize_t i
        cdef double[::1] o = out
        cdef const double[::1] f = flat
        for i in range(f.shape[0]):
            o[i] = _pc_curve(self._g.cum, self._g.nb, f[i] / t)
        return float(out[0]) if e.ndim == 0 else out.reshape(e.shape)

    # ---- the kernels ----

    cdef list _args(self, spent, budget, cost, elapsed, total, tuple names):
        arrays = [_pc_array(spent, "spent"),
                  _pc_array(self._budget.reshape(self._shape) if budget is None else budget, "budget"),
                  None if cost is None else _pc_array(cost, "cost"),
                  _pc_array(self._read_clock() if elapsed is None else elapsed, "elapsed"),
                  _pc_array(self._total if total is None else total, "total")]
        for a, name in zip(arrays, names):
            if a is not None and a.ndim and a.shape != self._shape:
                raise _PcInvalid(
                    f"{name} has shape {a.shape} but the pacer tracks campaigns of shape "
                    f"{self._shape} (its budget's): pass that shape or a scalar")
        return arrays

    cdef Py_ssize_t _k_query(self, Py_ssize_t n, const _PcArg* a, bint want_bool, double* out,
                             unsigned char* bout, _pc_u64* rng, int* code) noexcept nogil:
        """Controller output (want_bool 0) or should_bid (1), validating in the same pass."""
        cdef Py_ssize_t i
        cdef double s, b, c = 0.0, e, t, u, cf
        cdef int k
        cdef const _PcPid* g = &self._g
        cdef const double* sp = a[_PC_A_SPENT].p
        cdef const double* bp = a[_PC_A_BUDGET].p
        cdef const double* last = &self._mv_last[0]
        cdef const double* integ = &self._mv_integ[0]
        cdef const double* deriv = &self._mv_deriv[0]
        cdef double base = g.base, kp = g.kp, ki = g.ki, kd = g.kd, lo = g.lo, hi = g.hi
        if not want_bool and a[_PC_A_ELAPSED].s == 0 and a[_PC_A_TOTAL].s == 0 \
                and a[_PC_A_SPENT].s == 1 and a[_PC_A_BUDGET].s == 1:
            # one clock for every campaign: the target share is computed once and the loop
            # is selects only (vectorised); on a bad element the generic loop below names it
            e = a[_PC_A_ELAPSED].p[0]
            t = a[_PC_A_TOTAL].p[0]
            if _pc_check_time(e, t) == 0:
                cf = _pc_curve(g.cum, g.nb, e / t)
                if _pc_pid_output(n, sp, bp, last, integ, deriv, out, e, cf, base, kp, ki, kd,
                                  lo, hi):
                    return -1
        for i in range(n):
            s = a[_PC_A_SPENT].p[i * a[_PC_A_SPENT].s]
            b = a[_PC_A_BUDGET].p[i * a[_PC_A_BUDGET].s]
            e = a[_PC_A_ELAPSED].p[i * a[_PC_A_ELAPSED].s]
            t = a[_PC_A_TOTAL].p[i * a[_PC_A_TOTAL].s]
            k = _pc_check(s, b, e, t)
            if k == 0 and e < self._mv_last[i]:
                k = _PC_A_ELAPSED * 16 + _PC_BACK
            if k == 0 and want_bool:
                c = a[_PC_A_COST].p[i * a[_PC_A_COST].s]
                k = _pc_check_cost(c)
            if k:
                code[0] = k
                return i
            if want_bool:
                if not _pc_cap(s, b, c):
                    bout[i] = 0
                elif not self._participation:
                    bout[i] = 1
                else:
                    u = _pc_pid_out(g, _pc_pid_error(g, s, b, e / t), self._mv_integ[i],
                                    self._mv_deriv[i])
                    bout[i] = 1 if u >= 1.0 else (_pc_uniform(rng) < u)
            else:
                out[i] = _pc_pid_out(g, _pc_pid_error(g, s, b, e / t), self._mv_integ[i],
                                     self._mv_deriv[i])
        return -1

    cdef object _query(self, spent, budget, cost, elapsed, total, bint want_bool):
        cdef _PcArg args[5]
        cdef Py_ssize_t n = self._n, bad
        cdef int code = 0
        cdef _pc_u64 rng = self._rng
        cdef double[::1] o
        cdef unsigned char[::1] m
        cdef double v[5]
        cdef double fout = 0.0
        cdef unsigned char bout = 0
        if len(self._shape) == 0:
            # one campaign, scalars in: the same kernel on C doubles, no arrays
            if elapsed is None:
                elapsed = self._read_clock()
            if budget is None:
                budget = self._mv_budget[0]
            if total is None:
                total = self._total
            if _pc_all_fast(spent, budget, cost if want_bool else 0.0, elapsed, total):
                try:
                    v[0] = spent
                    v[1] = budget
                    v[2] = cost if want_bool else 0.0
                    v[3] = elapsed
                    v[4] = total
                except OverflowError:
                    pass
                else:
                    for j in range(5):
                        args[j].p = &v[j]
                        args[j].s = 0
                    bad = self._k_query(1, args, want_bool, &fout, &bout, &rng, &code)
                    if bad < 0:
                        self._rng = rng
                        return (bout != 0) if want_bool else fout
        cdef list arrays = self._args(spent, budget, cost, elapsed, total, _PC_PACING_NAMES)
        if not want_bool:
            arrays[_PC_A_COST] = _pc_np.zeros(())
        if n == 0:
            return _pc_np.empty(self._shape, dtype=_pc_np.bool_ if want_bool else _pc_np.float64)
        flats = [_pc_flat(a, n) for a in arrays]
        for j in range(5):
            args[j] = _pc_arg(flats[j])
        out = _pc_np.empty(n, dtype=_pc_np.bool_ if want_bool else _pc_np.float64)
        if want_bool:
            m = out.view(_pc_np.uint8)
            with nogil:
                bad = self._k_query(n, args, True, NULL, &m[0], &rng, &code)
        else:
            o = out
            with nogil:
                bad = self._k_query(n, args, False, &o[0], NULL, &rng, &code)
        if bad >= 0:
            extra = None
            if (code & 15) == _PC_BACK:
                extra = float(self._last[bad])
            elif (code & 15) == _PC_LATE:
                extra = float(flats[_PC_A_TOTAL][bad if flats[_PC_A_TOTAL].shape[0] > 1 else 0])
            _pc_raise(code, bad, arrays, _PC_PACING_NAMES, extra)
        self._rng = rng
        if len(self._shape) == 0:
            return bool(out[0]) if want_bool else float(out[0])
        return out.reshape(self._shape)

    def output(self, spent, budget=None, elapsed=None, total=None):
        """The controller's output (a bid multiplier or a participation rate) per campaign.

        P acts on the current gap; I and D come from the state fed by :meth:`update`.
        Does not change the state."""
        return self._query(spent, budget, None, elapsed, total, False)

    def multiplier(self, spent, budget=None, elapsed=None, total=None):
        """The bid multiplier: the controller output in ``output="multiplier"`` mode, else 1."""
        r = self._query(spent, budget, None, elapsed, total, False)
        if not self._participation:
            return r
        return 1.0 if len(self._shape) == 0 else _pc_np.ones(self._shape)

    def should_bid(self, spent, budget, cost, elapsed=None, total=None):
        """Hard cap; in ``output="participation"`` mode also a seeded coin with the output rate."""
        return self._query(spent, budget, cost, elapsed, total, True)

    def update(self, spent, elapsed=None):
        """Feed the controller: integrate the gap between spend and the target curve since the
        last update (with anti-windup) and refresh the derivative. All or nothing."""
        cdef _PcArg args[5]
        cdef Py_ssize_t n = self._n, bad = -1
        cdef int code = 0
        cdef double v[5]
        if len(self._shape) == 0:
            # one campaign, scalars in: the same kernels on C doubles, no arrays
            if elapsed is None:
                elapsed = self._read_clock()
            if _pc_all_fast(spent, 0.0, 0.0, elapsed, 0.0):
                try:
                    v[0] = spent
                    v[3] = elapsed
                except OverflowError:
                    pass
                else:
                    v[1] = self._mv_budget[0]
                    v[2] = 0.0
                    v[4] = self._total
                    for j in range(5):
                        args[j].p = &v[j]
                        args[j].s = 0
                    if self._k_update_check(1, args, &code) < 0:
                        self._commit(1, args)
                        self._updates += 1
                        return
        cdef list arrays = self._args(spent, None, None, elapsed, None, _PC_PACING_NAMES)
        if n == 0:
            self._updates += 1
            return
        arrays[_PC_A_COST] = _pc_np.zeros(())
        flats = [_pc_flat(a, n) for a in arrays]
        for j in range(5):
            args[j] = _pc_arg(flats[j])
        with nogil:
            bad = self._k_update_check(n, args, &code)   # pass 1: validate everything first
            if bad < 0:
                self._commit(n, args)
        if bad >= 0:
            extra = None
            if (code & 15) == _PC_BACK:
                extra = float(self._last[bad])
            elif (code & 15) == _PC_LATE:
                extra = self._total
            _pc_raise(code, bad, arrays, _PC_PACING_NAMES, extra)
        self._updates += 1

    cdef Py_ssize_t _k_update_check(self, Py_ssize_t n, const _PcArg* a, int* code) noexcept nogil:
        cdef Py_ssize_t i
        cdef double s, e, acc
        cdef int k, ok
        cdef const double* last = &self._mv_last[0]
        if a[3].s == 0 and a[4].s == 0 and a[0].s == 1:
            e = a[3].p[0]
            if _pc_check_time(e, a[4].p[0]) == 0:
                acc = 0.0
                for i in range(n):     # (the budgets are the pacer's: checked at construction)
                    s = a[0].p[i]
                    ok = (s >= 0.0) & (s < _PC_INF) & (e >= last[i])
                    acc = acc if ok else 1.0
                if acc == 0.0:
                    return -1
        for i in range(n):
            k = _pc_check(a[0].p[i * a[0].s], a[1].p[i * a[1].s], a[3].p[i * a[3].s],
                          a[4].p[i * a[4].s])
            if k == 0 and a[3].p[i * a[3].s] < last[i]:
                k = _PC_A_ELAPSED * 16 + _PC_BACK
            if k:
                code[0] = k
                return i
        return -1

    cdef void _commit(self, Py_ssize_t n, const _PcArg* a) noexcept nogil:
        cdef Py_ssize_t i
        cdef double s, b, e, t, err, dt, d, inew, u
        cdef const _PcPid* g = &self._g
        cdef double* last = &self._mv_last[0]
        cdef double* integ = &self._mv_integ[0]
        cdef double* deriv = &self._mv_deriv[0]
        cdef double* prev = &self._mv_prev[0]
        cdef double imin = g.imin, imax = g.imax, base = g.base, kp = g.kp, ki = g.ki
        cdef double kd = g.kd, lo = g.lo, hi = g.hi, cf
        if a[3].s == 0 and a[4].s == 0 and a[0].s == 1 and a[1].s == 1:
            # one clock for every campaign: the same arithmetic as below, as selects
            # (vectorised); a division by dt = 0 is computed and discarded
            e = a[3].p[0]
            t = a[4].p[0]
            cf = _pc_curve(g.cum, g.nb, e / t)
            _pc_pid_commit(n, a[0].p, a[1].p, last, integ, deriv, prev, e, t, cf, imin, imax,
                           base, kp, ki, kd, lo, hi)
            return
        for i in range(n):
            s = a[0].p[i * a[0].s]
            b = a[1].p[i * a[1].s]
            e = a[3].p[i * a[3].s]
            t = a[4].p[i * a[4].s]
            err = _pc_pid_error(g, s, b, e / t)
            dt = (e - last[i]) / t
            if dt > 0.0:
                d = (err - prev[i]) / dt
                inew = integ[i] + err * dt
                if inew < imin:
                    inew = imin
                elif inew > imax:
                    inew = imax
                # anti-windup (2), conditional integration: no integrating further into a
                # saturated output
                u = base + kp * err + ki * inew + kd * d
                if (u > hi and err > 0.0) or (u < lo and err < 0.0):
                    inew = integ[i]
                integ[i] = inew
                deriv[i] = d
            prev[i] = err
            last[i] = e

    def reset(self):
        """Forget the controller state (a new period)."""
        self._integ[:] = 0.0
        self._deriv[:] = 0.0
        self._prev[:] = 0.0
        self._last[:] = 0.0
        self._last_clock = -_PC_INF
        self._updates = 0


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


# ---------------------------------------------------------------------------------------------
# value_bid

cdef inline int _pc_value_code(double ctr, double cvr, double v, double roi, double m) noexcept nogil:
    if not (ctr >= 0.0 and ctr <= 1.0):
        return 0 * 16 + _PC_UNIT
    if not (cvr >= 0.0 and cvr <= 1.0):
        return 1 * 16 + _PC_UNIT
    if not (v >= 0.0 and v < _PC_INF):
        return 2 * 16 + _PC_NONNEG
    if not (roi > 0.0 and roi < _PC_INF):
        return 3 * 16 + _PC_POS
    if not (m >= 0.0 and m < _PC_INF):
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
    cdef double lo = _pc_real(min_bid, "min_bid"), hi = _pc_real(max_bid, "max_bid")
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
