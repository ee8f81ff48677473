"""Argument conversion shared by the array APIs (clearing, engine): numpy arrays in, checked
once, with errors that name the argument (and the index where a value is at fault)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rtbcore.errors import InvalidBidError, InvalidInputError

_I64_MAX = np.iinfo(np.int64).max


def _read_1d(name: str, x: Any, n: int | None) -> np.ndarray:
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{name}: cannot be read as an array ({e})") from None
    if a.ndim == 0 and n is not None:
        a = np.broadcast_to(a, (n,))
    if a.ndim != 1:
        scalar = " or a scalar" if n is not None else ""
        raise InvalidInputError(f"{name}: expected a 1-D array{scalar}, got shape {a.shape}")
    return a


def float_array(name: str, x: Any, n: int | None = None, *, bools: bool = True) -> np.ndarray:
    """``x`` as a contiguous 1-D float64 array, converted once (a float64 contiguous array is
    used as is). With ``n``, a scalar is broadcast to ``n`` entries. ``bools=False`` refuses a
    boolean array (``True`` is not a price)."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim == 1 and x.flags.c_contiguous:
        return x
    a = _read_1d(name, x, n)
    if a.dtype.kind not in ("biuf" if bools else "iuf"):
        raise InvalidInputError(f"{name}: expected numbers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float64)


def int_array(name: str, x: Any, n: int | None = None, *, ids: bool = False) -> np.ndarray:
    """``x`` as a contiguous 1-D int64 array; floats are refused, not truncated, and a value
    beyond int64 is named by its index. With ``n``, a scalar is broadcast to ``n`` entries.
    ``ids=True``: bid ids, whose range is part of the bid rule, so a value beyond int64 raises
    InvalidBidError with the rule's words, as the core does for a negative one."""
    if isinstance(x, np.ndarray) and x.dtype == np.int64 and x.ndim == 1 and x.flags.c_contiguous:
        return x
    a = _read_1d(name, x, n)
    if a.size == 0 and a.dtype.kind == "f":
        a = a.astype(np.int64)  # np.asarray([]) is float64
    if a.dtype.kind == "f" and a.size and not isinstance(x, np.ndarray):
        obj = np.asarray(x, dtype=object)  # numpy turns [1, 2**63] into float64: look again
        if all(isinstance(v, int | np.integer) for v in obj.tolist()):
            a = obj
    if a.dtype == object and all(isinstance(v, int | np.integer) for v in a.tolist()):
        # Python ints numpy could not place in one integer dtype: name the first one out of range
        vals = [int(v) for v in a.tolist()]
        for i, v in enumerate(vals):
            if ids and v > _I64_MAX:
                raise InvalidBidError(f"{name}[{i}] = {v}: must be in 0..=2**63-1")
            if not -_I64_MAX - 1 <= v <= _I64_MAX:
                raise InvalidInputError(f"{name}[{i}] = {v}: outside the int64 range")
        return np.array(vals, dtype=np.int64)
    if a.dtype.kind not in "iu":
        raise InvalidInputError(f"{name}: expected integers, got dtype {a.dtype}")
    if a.dtype.kind == "u" and a.size and a.dtype.itemsize == 8:
        big = np.flatnonzero(a > _I64_MAX)
        if big.size:
            i = int(big[0])
            if ids:
                raise InvalidBidError(f"{name}[{i}] = {int(a[i])}: must be in 0..=2**63-1")
            raise InvalidInputError(f"{name}[{i}] = {int(a[i])}: must be < 2**63")
    return np.ascontiguousarray(a, dtype=np.int64)


def id_array(name: str, x: Any, n: int | None = None) -> np.ndarray:
    """Bid ids as a contiguous 1-D uint64 array (the dtype of every record that carries ids),
    checked against the bid rule's range 0..=2**63-1 here for what the unsigned type cannot
    show (a negative value); the core checks the upper bound of an array passed through."""
    if isinstance(x, np.ndarray) and x.dtype == np.uint64 and x.ndim == 1 and x.flags.c_contiguous:
        return x
    a = int_array(name, x, n, ids=True)
    neg = np.flatnonzero(a < 0)
    if neg.size:
        i = int(neg[0])
        raise InvalidBidError(f"{name}[{i}] = {int(a[i])}: must be in 0..=2**63-1")
    return a.view(np.uint64)
