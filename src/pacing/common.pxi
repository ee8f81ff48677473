# pacing: what every pacer shares (included by _fastpath.pyx before the other pacing/*.pxi)
#
# The cores of the pacers of rtbcore.pacing (thin Python subclasses add docs and helpers), one
# file per pacer: cap.pxi (the clock and the hard cap, base of every pacer), multiplier.pxi
# (linear, tiered), throttle.pxi, profile.pxi (the target curve of the adaptive pacer),
# pid.pxi, value.pxi (value_bid); C kernels in simd.h.
#
# Every public method takes scalars or arrays:
#   - scalars (Python float, int within 2**53, numpy float64) go through a scalar path that
#     makes no allocation (the per-request should_bid of a bidder);
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
cimport cython as _pc_cython

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
    if not _ck_nonneg(s):
        return _PC_A_SPENT * 16 + _PC_NONNEG
    if not _ck_nonneg(b):
        return _PC_A_BUDGET * 16 + _PC_NONNEG
    return _pc_check_time(e, t)


cdef inline int _pc_check_cost(double c) noexcept nogil:
    if not _ck_nonneg(c):
        return _PC_A_COST * 16 + _PC_NONNEG
    return 0


cdef inline int _pc_check_time(double e, double t) noexcept nogil:
    if not _ck_pos(t):
        return _PC_A_TOTAL * 16 + _PC_POS
    if not (e >= 0.0):
        return _PC_A_ELAPSED * 16 + _PC_NONNEG
    if e > t:
        return _PC_A_ELAPSED * 16 + _PC_LATE
    return 0


# ---------------------------------------------------------------------------------------------
# array plumbing (with the GIL): convert, check shapes, raise with names and indices

cdef inline object _pc_array(object x, str name):
    return _ck_array(x, name, "a real number or an array of them")


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
        where = _ck_where(name, a, i)
        value = float(a.reshape(-1)[i])
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

cdef extern from "pacing/simd.h":
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
