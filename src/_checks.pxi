# argument checks shared by every area of rtbcore._fastpath (included first by _fastpath.pyx)
#
# One definition of each rule, so that clearing, pacing, the credit pool and shading accept and
# refuse the same things with the same words: bad input raises
# rtbcore.errors.InvalidInputError (a ValueError) naming the argument, never a bare
# TypeError/ValueError/OverflowError from a conversion.
#   - the nogil value predicates (finite and >= 0, ...) used by the kernels and their rescans;
#   - Python numbers -> C doubles, arrays -> float64 ndarrays, seeds -> uint64.
# Numbers reach the kernels as float64. An integer is accepted where a real number is expected
# only if float64 holds it exactly (|n| <= 2**53), so that no comparison (the pacers' hard cap)
# is decided on a rounded input.
# Names carry the _ck_ prefix because every .pxi shares one module namespace.

from libc.math cimport INFINITY as _CK_INF
from libc.stdint cimport uint64_t as _ck_u64
from cpython.float cimport PyFloat_Check as _ck_PyFloat_Check
from cpython.float cimport PyFloat_AS_DOUBLE as _ck_PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_CheckExact as _ck_PyLong_CheckExact
from cpython.long cimport PyLong_AsLongLongAndOverflow as _ck_PyLong_AsLongLongAndOverflow

import numbers as _ck_numbers

import numpy as _ck_np

from rtbcore.errors import InvalidInputError as _CkInvalid

_CK_F64 = _ck_np.dtype(_ck_np.float64)
# every integer of magnitude <= 2**53 is a float64; 2**53 + 1 is the first that is not
DEF _CK_EXACT_INT = 9007199254740992
_CK_U64_MAX = 2**64 - 1


# ---- value predicates (nogil; NaN fails every one) ----

cdef inline bint _ck_nonneg(double x) noexcept nogil:
    """finite and >= 0"""
    return x >= 0.0 and x < _CK_INF


cdef inline bint _ck_pos(double x) noexcept nogil:
    """finite and > 0"""
    return x > 0.0 and x < _CK_INF


cdef inline bint _ck_unit(double x) noexcept nogil:
    """in [0, 1]"""
    return x >= 0.0 and x <= 1.0


cdef inline bint _ck_finite(double x) noexcept nogil:
    return x > -_CK_INF and x < _CK_INF


# ---- Python numbers ----

cdef inline bint _ck_scalar(object x, double* out) noexcept:
    """The allocation-free path of a scalar argument: True (value in out) for a float, or an int
    float64 holds exactly; False for anything else, which the caller sends to the general
    conversion (that one names what is wrong)."""
    cdef long long v
    cdef int overflow = 0
    if _ck_PyFloat_Check(x):
        out[0] = _ck_PyFloat_AS_DOUBLE(x)
        return True
    if _ck_PyLong_CheckExact(x):
        v = _ck_PyLong_AsLongLongAndOverflow(x, &overflow)
        if overflow == 0 and -9007199254740992LL <= v <= 9007199254740992LL:   # 2**53
            out[0] = <double>v
            return True
    return False


cdef object _ck_exact_int(object x, str where):
    """Refuses an integer that float64 cannot hold exactly."""
    if not -_CK_EXACT_INT <= x <= _CK_EXACT_INT:
        raise _CkInvalid(
            f"{where} = {x!r} is an integer beyond 2**53, which float64 cannot hold exactly")


cdef double _ck_float(object x, str name, str what="a real number", bint strict=True) except? -1.0:
    """x as a C double (may be NaN or infinite: the caller checks the range and says why).

    strict: x must be a numbers.Real (an int within 2**53, a float, a numpy number, a
    Fraction); otherwise anything with __float__ is taken (the clearing objects' rule). bool,
    str and bytes are refused either way."""
    if isinstance(x, (bool, str, bytes)) or (strict and not isinstance(x, _ck_numbers.Real)):
        raise _CkInvalid(f"{name} must be {what}, got {x!r}")
    if strict and isinstance(x, _ck_numbers.Integral):
        _ck_exact_int(x, name)
    try:
        return float(x)
    except OverflowError:
        raise _CkInvalid(f"{name} is too large: {x!r}") from None
    except (TypeError, ValueError):
        raise _CkInvalid(f"{name} must be {what}, got {x!r}") from None


cdef double _ck_real(object x, str name, str what="a real number") except? -1.0:
    """A finite real number (see _ck_float, strict)."""
    cdef double v = _ck_float(x, name, what, True)
    if not _ck_finite(v):
        raise _CkInvalid(f"{name} must be finite, got {x!r}")
    return v


cdef _ck_u64 _ck_seed(object seed, str name="seed") except? 0:
    """A seed: an int in [0, 2**64 - 1] (larger ints are refused, not wrapped)."""
    if isinstance(seed, bool) or not isinstance(seed, _ck_numbers.Integral):
        raise _CkInvalid(f"{name} must be an int in [0, 2**64 - 1], got {seed!r}")
    if not 0 <= seed <= _CK_U64_MAX:
        raise _CkInvalid(f"{name} must be an int in [0, 2**64 - 1], got {seed!r}")
    return <_ck_u64>int(seed)


def _check_seed(seed, name="seed"):
    """The seed rule for Python callers: None or an int in [0, 2**64 - 1] (returned as an int)."""
    if seed is None:
        return None
    return int(_ck_seed(seed, name))


cdef object _ck_clock(object clock, object default):
    """The clock argument: None -> default, else a callable."""
    if clock is None:
        return default
    if not callable(clock):
        raise _CkInvalid(f"clock must be a callable returning seconds, got {clock!r}")
    return clock


# ---- arrays ----

cdef str _ck_where(str name, object a, Py_ssize_t flat_index):
    if a.ndim == 0:
        return name
    idx = _ck_np.unravel_index(flat_index, a.shape)
    return f"{name}[{', '.join([str(int(j)) for j in idx])}]"


cdef object _ck_array(object x, str name, str what):
    """x as a float64 ndarray of its own shape (x itself when it already is one).

    Refused, naming `name` (and the index): what numpy cannot read as numbers, bool and string
    arrays, and integers float64 cannot hold exactly. Values are the caller's to check."""
    cdef Py_ssize_t i
    if type(x) is _ck_np.ndarray and x.dtype is _CK_F64:
        return x
    if x is None or isinstance(x, (bool, str, bytes)):
        raise _CkInvalid(f"{name} must be {what}, got {x!r}")
    try:
        # a list keeps its Python ints as they are: numpy would turn [0, 2**64 - 1] into
        # float64 (rounding 2**64 - 1) before they could be checked
        raw = _ck_np.asarray(x, dtype=object if isinstance(x, (list, tuple)) else None)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _CkInvalid(f"{name} must be {what}: {exc}") from None
    kind = raw.dtype.kind
    if kind in "iu":
        if raw.size and (raw.max() > _CK_EXACT_INT or raw.min() < -_CK_EXACT_INT):
            i = int(_ck_np.flatnonzero((raw > _CK_EXACT_INT) | (raw < -_CK_EXACT_INT))[0])
            _ck_exact_int(int(raw.reshape(-1)[i]), _ck_where(name, raw, i))
    elif kind == "O":
        for i, v in enumerate(raw.reshape(-1)):
            if isinstance(v, (bool, _ck_np.bool_, str, bytes)):
                raise _CkInvalid(f"{name} must be {what}, got {_ck_where(name, raw, i)} = {v!r}")
            if isinstance(v, _ck_numbers.Integral):
                _ck_exact_int(v, _ck_where(name, raw, i))
    elif kind != "f":
        raise _CkInvalid(f"{name} must be {what}, got an array of dtype {raw.dtype}")
    try:
        return raw.astype(_CK_F64, copy=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _CkInvalid(f"{name} must be {what}: {exc}") from None


# ---- the same rules for the Python modules (rtbcore.pacing, rtbcore.shading) ----

def _real_arg(x, name, what="a real number"):
    """A finite real number as a float (see _ck_real)."""
    return _ck_real(x, name, what)


def _float_arg(x, name, what="a real number"):
    """A real number as a float, possibly NaN or infinite: the caller checks the range."""
    return _ck_float(x, name, what, True)


def _int_arg(x, name, lo, hi):
    """An int (not bool) in [lo, hi]."""
    if isinstance(x, bool) or not isinstance(x, _ck_numbers.Integral) or not lo <= x <= hi:
        raise _CkInvalid(f"{name} must be an int in [{lo}, {hi}], got {x!r}")
    return int(x)


def _float_array_arg(x, name, what="a real number or an array of them"):
    """A float64 ndarray of x's shape (see _ck_array)."""
    return _ck_array(x, name, what)
