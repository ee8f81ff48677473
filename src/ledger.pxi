# spend ledger of rtbcore._fastpath (included by _fastpath.pyx)
#
# The local side of rtbcore.distributed.SharedBudget: per campaign, the money this process has
# drawn from the shared budget and not spent yet (`avail`), and what it has spent (`spent`), as
# int64 micro-units. Amounts are rounded once, on the way in, to the nearest micro-unit exactly
# as the credit pool does (credit_units.h), so a day of 0.1 spends does not drift.
#
# Thread safety rests on the GIL, as for the credit pool: each method first converts its
# arguments, then reads and writes the ledger in one straight run of C code with no Python call,
# so no other thread can run between the read and the write. The one Python call a spend can
# make (waking the refill thread when a campaign crosses its low-water mark) comes after the
# state is committed. Names carry the _dl_ prefix because every .pxi shares one namespace.

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc as _dl_calloc, free as _dl_free
from cpython.dict cimport PyDict_GetItem as _dl_dict_get
from cpython.ref cimport PyObject as _DlPyObject
cimport cython as _dl_cython

import numpy as _dl_np

from rtbcore.errors import InvalidInputError as _DlInvalid

cdef double _DL_MAX = 9.0e12     # largest amount, as for the credit pool (sums stay in int64)
cdef double _DL_MIN = 1e-6       # the resolution: one micro-unit


cdef inline int _dl_check(double x, str name) except -1:
    if not (x >= 0.0 and x <= _DL_MAX):
        if x != x:
            raise _DlInvalid(f"{name} must not be NaN")
        if x < 0.0:
            raise _DlInvalid(f"{name} must be >= 0, got {x!r}")
        raise _DlInvalid(f"{name} is too large: {x!r} (max {_DL_MAX:g})")
    if 0.0 < x < _DL_MIN:
        raise _DlInvalid(f"{name} = {x!r} is below the resolution of 1e-6: it must be 0 or at least that")
    return 0


def _ledger_units(value, name):
    """A non-negative amount as int64 micro-units (nearest, ties up); InvalidInputError names `name`."""
    cdef double x = _ck_float(value, name, "a real amount of money")
    _dl_check(x, name)
    return _cr_to_units(x)


@_dl_cython.auto_pickle(False)
cdef class _SpendLedger:
    """Core of the local accounting of rtbcore.distributed.SharedBudget. Private."""

    cdef Py_ssize_t _n
    cdef int64_t* _avail     # drawn from the shared budget, not spent yet
    cdef int64_t* _spent     # spent by this process since construction
    cdef int64_t* _low       # below this, the refill thread is woken
    cdef unsigned char* _want
    cdef uint64_t _granted
    cdef uint64_t _refused
    cdef dict _index
    cdef object _wake

    def __cinit__(self, index, wake=None):
        cdef Py_ssize_t n = len(index)
        self._n = n
        self._avail = <int64_t*>_dl_calloc(n + 1, sizeof(int64_t))
        self._spent = <int64_t*>_dl_calloc(n + 1, sizeof(int64_t))
        self._low = <int64_t*>_dl_calloc(n + 1, sizeof(int64_t))
        self._want = <unsigned char*>_dl_calloc(n + 1, 1)
        if not (self._avail and self._spent and self._low and self._want):
            raise MemoryError()

    def __init__(self, index, wake=None):
        """``index``: dict campaign -> slot 0..n-1; ``wake``: called (no argument) when a campaign
        runs low."""
        cdef dict d = dict(index)
        if sorted(d.values()) != list(range(self._n)):
            raise _DlInvalid("index must map each campaign to a distinct slot 0..n-1")
        self._index = d
        self._wake = wake

    def __dealloc__(self):
        _dl_free(self._avail)
        _dl_free(self._spent)
        _dl_free(self._low)
        _dl_free(self._want)

    cdef inline Py_ssize_t _slot(self, object campaign) except -1:
        cdef _DlPyObject* s = _dl_dict_get(self._index, campaign)
        if s is NULL:
            raise _DlInvalid(f"unknown campaign {campaign!r}: not one of this budget's campaigns")
        return <Py_ssize_t>(<object>s)

    cdef inline int _note_low(self, Py_ssize_t s) except -1:
        if not self._want[s]:
            self._want[s] = 1
            if self._wake is not None:
                self._wake()
        return 0

    # ---- the hot path ----

    def try_spend(self, campaign, amount):
        """Spend ``amount`` of ``campaign``'s drawn money: True if it was there, else False."""
        cdef Py_ssize_t s = self._slot(campaign)
        cdef double x
        cdef int64_t u
        if not _ck_scalar(amount, &x):
            x = _ck_float(amount, "amount", "a real amount of money")
        _dl_check(x, "amount")
        u = _cr_to_units(x)
        if self._avail[s] >= u:
            self._avail[s] -= u
            self._spent[s] += u
            self._granted += 1
            if self._avail[s] < self._low[s]:
                self._note_low(s)
            return True
        self._refused += 1
        self._note_low(s)
        return False

    def try_spend_slots(self, slots, amounts, out=None):
        """The block form: ``slots`` (int64 slot numbers) and ``amounts``, decided in order."""
        cdef object sa = _dl_np.ascontiguousarray(slots, dtype=_dl_np.int64)
        cdef object aa = _dl_np.ascontiguousarray(_ck_array(amounts, "amounts", "a 1-D array of amounts"))
        cdef const int64_t[::1] sl
        cdef const double[::1] am
        cdef unsigned char[::1] m
        cdef Py_ssize_t n, i, s
        cdef int64_t u
        cdef uint64_t g = 0
        cdef bint low = False
        if sa.ndim != 1 or aa.ndim != 1 or sa.shape[0] != aa.shape[0]:
            raise _DlInvalid(
                f"campaigns and amounts must be 1-D and of one length, got {sa.shape} and {aa.shape}")
        sl = sa
        am = aa
        n = sl.shape[0]
        for i in range(n):
            if not (0 <= sl[i] < self._n):
                raise _DlInvalid(f"campaigns[{i}] is not one of this budget's campaigns")
            if not (am[i] >= 0.0 and am[i] <= _DL_MAX) or 0.0 < am[i] < _DL_MIN:
                _dl_check(am[i], f"amounts[{i}]")
        if out is None:
            out = _dl_np.empty(n, dtype=_dl_np.bool_)
        else:
            _cr_check_out(out, aa)
        m = out.view(_dl_np.uint8)
        # Critical section: plain C from the first read to the last write.
        for i in range(n):
            s = sl[i]
            u = _cr_to_units(am[i])
            if self._avail[s] >= u:
                self._avail[s] -= u
                self._spent[s] += u
                m[i] = 1
                g += 1
                if self._avail[s] < self._low[s] and not self._want[s]:
                    self._want[s] = 1
                    low = True
            else:
                m[i] = 0
                if not self._want[s]:
                    self._want[s] = 1
                    low = True
        self._granted += g
        self._refused += <uint64_t>n - g
        if low and self._wake is not None:
            self._wake()
        return out

    # ---- the refill side (the background thread) ----

    def credit(self, Py_ssize_t slot, int64_t units):
        """Add drawn money to a campaign (``units`` may be negative to take it back)."""
        if not (0 <= slot < self._n):
            raise _DlInvalid(f"slot {slot} out of range")
        self._avail[slot] += units
        if self._avail[slot] >= self._low[slot]:
            self._want[slot] = 0

    def drain(self, Py_ssize_t slot):
        """Take all of a campaign's unspent drawn money out of the ledger; returns it (units)."""
        cdef int64_t u
        if not (0 <= slot < self._n):
            raise _DlInvalid(f"slot {slot} out of range")
        u = self._avail[slot]
        self._avail[slot] = 0
        return u

    def set_low(self, Py_ssize_t slot, int64_t units):
        """The low-water mark of a campaign: below it, the refill thread is woken."""
        if not (0 <= slot < self._n):
            raise _DlInvalid(f"slot {slot} out of range")
        self._low[slot] = units
        if self._avail[slot] < units:
            self._want[slot] = 1

    def wanting(self):
        """Slots that ran low since their last refill."""
        return [i for i in range(self._n) if self._want[i]]

    def avail_units(self, Py_ssize_t slot):
        if not (0 <= slot < self._n):
            raise _DlInvalid(f"slot {slot} out of range")
        return self._avail[slot]

    def spent_units(self, Py_ssize_t slot):
        if not (0 <= slot < self._n):
            raise _DlInvalid(f"slot {slot} out of range")
        return self._spent[slot]

    @property
    def granted(self):
        return self._granted

    @property
    def refused(self):
        return self._refused
