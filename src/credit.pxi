# credit kernels of rtbcore._fastpath (included by _fastpath.pyx)
#
# The bidding credit pool: the core of rtbcore.credit.CreditPool (a thin Python subclass).
#
# Amounts are held in fixed point: int64 micro-credits (1 credit = 1_000_000 units), so that
# accounting is exact (a day of 0.1-credit bids does not drift, and try_bids(n) is exactly n
# successive try_bid() calls). Each amount is rounded once, on the way in, to the nearest unit
# of its exact float64 value (credit_units.h). Amounts are limited to 0 or
# [_CR_MIN_CREDITS, _CR_MAX_CREDITS]: a non-zero amount below one unit would round to a free bid
# (or a credit that never arrives) and is refused.
#
# Thread safety rests on the GIL, precisely: every method first converts and validates its
# arguments (which may run Python code: __index__, __float__, the clock), and only then reads and
# writes the pool's state in one straight run of C code that makes no Python API call, has no
# `with nogil` block and decrefs nothing. CPython can only switch threads inside Python API calls
# or between bytecodes, so no other thread can observe or modify the state mid-update. This
# module does not declare itself free-threading compatible, so a free-threaded CPython re-enables
# the GIL when it is imported; CreditPool refuses to start if the GIL has been forced off.
# Names here carry the _cr_ prefix because every .pxi shares one module namespace.

from libc.math cimport floor as _cr_floor, isnan as _cr_isnan
from libc.stdint cimport int64_t, uint64_t
cimport cython as _cr_cython

import time as _cr_time

import numpy as _cr_np

from rtbcore.errors import InvalidInputError as _CrInvalidInput

cdef int64_t _CR_SCALE = 1000000

cdef extern from "credit_units.h":
    # the nearest micro-credit to the exact value of x (0 <= x <= 9e12), ties up
    int64_t _cr_to_units "cr_units" (double x) noexcept nogil
    # every cost valid (see the header)
    bint _cr_block_valid "cr_block_valid" (const double* c, long n) noexcept nogil
    # grant costs in order while the credits cover them (see the header)
    int64_t _cr_grant_block "cr_grant_block" (const double* c, unsigned char* m, long n,
                                              int64_t* credits) noexcept nogil
# 9e12 credits = 9e18 units < 2**63 - 1 (9.22e18), so a sum of two amounts is checked, not wrapped.
cdef double _CR_MAX_CREDITS = 9.0e12
# The resolution: the smallest non-zero amount (one unit).
cdef double _CR_MIN_CREDITS = 1e-6
# Largest request count accepted by try_bids / record_win / record_loss.
cdef int64_t _CR_MAX_N = 1 << 62


cdef int64_t _cr_units(object value, str name) except -1:
    """A non-negative amount of credits as int64 micro-credits; InvalidInputError names `name`."""
    cdef double x = _ck_float(value, name, "a real number of credits")
    _cr_check_amount(x, name)
    return _cr_to_units(x)


cdef int _cr_check_amount(double x, str name) except -1:
    if _cr_isnan(x):
        raise _CrInvalidInput(f"{name} must not be NaN")
    if x < 0.0:
        raise _CrInvalidInput(f"{name} must be >= 0, got {x!r}")
    if x > _CR_MAX_CREDITS:
        raise _CrInvalidInput(f"{name} is too large: {x!r} (max {_CR_MAX_CREDITS:g})")
    if 0.0 < x < _CR_MIN_CREDITS:
        raise _CrInvalidInput(
            f"{name} = {x!r} is below the pool's resolution of {_CR_MIN_CREDITS:g} credit: "
            "it must be 0 or at least that")
    return 0


cdef int64_t _cr_count(object value, str name) except -1:
    """A request/notice count: an int in [0, 2**62]; InvalidInputError names `name`."""
    cdef object n
    if isinstance(value, bool):
        raise _CrInvalidInput(f"{name} must be an int, got {value!r}")
    try:
        n = value.__index__()
    except (AttributeError, TypeError):
        raise _CrInvalidInput(f"{name} must be an int, got {value!r}") from None
    if n < 0:
        raise _CrInvalidInput(f"{name} must be >= 0, got {n}")
    if n > _CR_MAX_N:
        raise _CrInvalidInput(f"{name} is too large: {n} (max 2**62)")
    return <int64_t>n


cdef inline double _cr_time_value(object value, str name) except? -1.0:
    """A clock reading: a finite real; InvalidInputError names `name`."""
    return _ck_real(value, name, "a real number of seconds")


cdef int _cr_check_out(object out, object costs) except -1:
    """``out`` must be a writable, C-contiguous, 1-D bool array as long as ``costs``, not overlapping it."""
    if not isinstance(out, _cr_np.ndarray):
        raise _CrInvalidInput(f"out must be a numpy bool array, got {type(out).__name__}")
    if out.dtype != _cr_np.bool_:
        raise _CrInvalidInput(f"out must have dtype bool, got {out.dtype}")
    if out.ndim != 1 or out.shape[0] != costs.shape[0]:
        raise _CrInvalidInput(
            f"out has shape {out.shape} but costs has {costs.shape[0]} entries: the arrays must match")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise _CrInvalidInput("out must be C-contiguous and writable")
    if _cr_np.may_share_memory(out, costs):
        raise _CrInvalidInput("out must not overlap costs")
    return 0


cdef inline double _cr_credits(int64_t units) noexcept nogil:
    return <double>units / <double>_CR_SCALE


@_cr_cython.auto_pickle(False)   # a live pool (clock, counters) is not something to copy silently
cdef class _CreditPool:
    """Core of :class:`rtbcore.credit.CreditPool` (see there). Private: import rtbcore instead."""

    cdef int64_t _credits
    cdef int64_t _cap
    cdef int64_t _cost
    cdef int64_t _win
    cdef int64_t _loss
    cdef int64_t _bump
    cdef double _every
    cdef double _t0
    cdef double _last_now
    cdef int64_t _bumps_due      # bumps due by _last_now, i.e. floor((_last_now - _t0) / _every)
    cdef uint64_t _granted
    cdef uint64_t _refused
    cdef uint64_t _wins
    cdef uint64_t _losses
    cdef double _discarded       # credits that wins, losses or bumps brought but the cap refused
    cdef object _clock

    def __cinit__(self):
        self._cost = _CR_SCALE   # a pool built without __init__ still charges for bids
        self._every = float("inf")
        self._clock = _cr_time.monotonic

    def __init__(self, initial, cap, bid_cost=1, win_credit=10, loss_credit=0, bump=100,
                 bump_every=60.0, clock=None):
        cdef int64_t c_initial = _cr_units(initial, "initial")
        cdef int64_t c_cap = _cr_units(cap, "cap")
        cdef int64_t c_cost = _cr_units(bid_cost, "bid_cost")
        cdef int64_t c_win = _cr_units(win_credit, "win_credit")
        cdef int64_t c_loss = _cr_units(loss_credit, "loss_credit")
        cdef int64_t c_bump = _cr_units(bump, "bump")
        cdef double every, t0
        if c_cap < c_initial:
            raise _CrInvalidInput(f"cap ({cap!r}) must be >= initial ({initial!r})")
        every = _ck_float(bump_every, "bump_every", "a real number of seconds")
        if _cr_isnan(every) or not every > 0.0:
            raise _CrInvalidInput(f"bump_every must be > 0 seconds (inf = never), got {every!r}")
        clock = _ck_clock(clock, _cr_time.monotonic)
        t0 = _cr_time_value(clock(), "clock()")
        # Everything validated: commit.
        self._credits = c_initial
        self._cap = c_cap
        self._cost = c_cost
        self._win = c_win
        self._loss = c_loss
        self._bump = c_bump
        self._every = every
        self._t0 = t0
        self._last_now = t0
        self._bumps_due = 0
        self._granted = 0
        self._refused = 0
        self._wins = 0
        self._losses = 0
        self._discarded = 0.0
        self._clock = clock

    # ---- the hot path: no argument, no Python call between the read and the write ----

    def try_bid(self):
        """Take ``bid_cost`` credits for one bid: True if granted, False (counted) if the pool can't pay."""
        if self._credits >= self._cost:
            self._credits -= self._cost
            self._granted += 1
            return True
        self._refused += 1
        return False

    def try_bids(self, n):
        """Grant as many of ``n`` bids as the pool can pay for; returns how many (the rest are counted as refused)."""
        cdef int64_t k = _cr_count(n, "n")
        cdef int64_t g
        if self._cost == 0:
            g = k
        else:
            g = self._credits // self._cost
            if g > k:
                g = k
        self._credits -= g * self._cost
        self._granted += <uint64_t>g
        self._refused += <uint64_t>(k - g)
        return g

    def try_bid_block(self, costs, out=None):
        """Decide a block of requests with the given costs, in order; returns the boolean mask of grants.

        Request i is granted if the pool can pay ``costs[i]`` after the grants before it (a refused
        request does not stop a cheaper later one), exactly as successive single-cost bids would.
        ``out``: an optional writable, C-contiguous bool array of ``len(costs)`` to fill and return.
        """
        cdef object arr
        cdef const double[::1] c
        cdef unsigned char[::1] m
        cdef Py_ssize_t n, i
        cdef double x
        cdef int64_t credits
        cdef uint64_t g = 0
        arr = _ck_array(costs, "costs", "a 1-D array of real numbers")
        if arr.ndim != 1:
            raise _CrInvalidInput(f"costs must be 1-D, got shape {arr.shape}")
        arr = _cr_np.ascontiguousarray(arr)
        c = arr
        n = c.shape[0]
        # one vectorised pass says whether every cost is valid; if not, the loop names the first
        # bad one
        for i in range(n if n > 0 and not _cr_block_valid(&c[0], n) else 0):
            x = c[i]
            if _cr_isnan(x):
                raise _CrInvalidInput(f"costs[{i}] is NaN")
            if x < 0.0:
                raise _CrInvalidInput(f"costs[{i}] must be >= 0, got {x!r}")
            if x > _CR_MAX_CREDITS:
                raise _CrInvalidInput(f"costs[{i}] is too large: {x!r} (max {_CR_MAX_CREDITS:g})")
            if 0.0 < x < _CR_MIN_CREDITS:
                _cr_check_amount(x, f"costs[{i}]")
        if out is None:
            out = _cr_np.empty(n, dtype=_cr_np.bool_)
        else:
            _cr_check_out(out, arr)
        m = out.view(_cr_np.uint8)
        # Critical section: plain C from the read of _credits to the write.
        credits = self._credits
        if n:
            g = <uint64_t>_cr_grant_block(&c[0], &m[0], n, &credits)
        self._credits = credits
        self._granted += g
        self._refused += <uint64_t>n - g
        return out

    # ---- credits coming back ----

    cdef inline void _add(self, int64_t per, int64_t k) noexcept nogil:
        """Add k * per units, saturating at the cap; what the cap refuses is counted as discarded."""
        cdef int64_t room = self._cap - self._credits
        if per == 0 or k == 0:
            return
        if k <= room // per:
            self._credits += k * per
        else:
            self._discarded += (<double>k * <double>per - <double>room) / <double>_CR_SCALE
            self._credits = self._cap

    def record_win(self, n=1):
        """Credit ``n`` win notices (``win_credit`` each, up to the cap)."""
        cdef int64_t k = _cr_count(n, "n")
        self._add(self._win, k)
        self._wins += <uint64_t>k

    def record_loss(self, n=1):
        """Credit ``n`` loss notices (``loss_credit`` each, up to the cap)."""
        cdef int64_t k = _cr_count(n, "n")
        self._add(self._loss, k)
        self._losses += <uint64_t>k

    def tick(self, now=None):
        """Apply the bumps that have come due by ``now`` (default: ``clock()``); returns how many.

        Bump k is due at ``t0 + k * bump_every`` (t0 = the clock at construction). Each adds
        ``bump`` credits, saturating at the cap; bumps missed between two ticks are all applied.
        """
        cdef double t, q
        cdef int64_t due_total, due
        if now is None:
            now = self._clock()
        t = _cr_time_value(now, "now")
        if t < self._last_now:
            raise _CrInvalidInput(
                f"now={t!r} is before the previous tick ({self._last_now!r}): time must not go backwards")
        # Critical section.
        q = _cr_floor((t - self._t0) / self._every)
        due_total = <int64_t>q if q < <double>_CR_MAX_N else _CR_MAX_N
        due = due_total - self._bumps_due
        self._last_now = t
        if due > 0:
            self._bumps_due = due_total
            self._add(self._bump, due)
            return due
        return 0

    # ---- read-only views ----

    @property
    def credits(self):
        """Credits in the pool now (a float; exact to 1e-6 credit)."""
        return _cr_credits(self._credits)

    @property
    def cap(self):
        """Most credits the pool holds."""
        return _cr_credits(self._cap)

    @property
    def bid_cost(self):
        """Credits one bid takes."""
        return _cr_credits(self._cost)

    @property
    def win_credit(self):
        """Credits one win notice brings."""
        return _cr_credits(self._win)

    @property
    def loss_credit(self):
        """Credits one loss notice brings."""
        return _cr_credits(self._loss)

    @property
    def bump(self):
        """Credits one periodic bump brings."""
        return _cr_credits(self._bump)

    @property
    def bump_every(self):
        """Seconds between bumps."""
        return self._every

    @property
    def next_bump_at(self):
        """Clock time at which the next bump falls due (inf if bumps are off)."""
        return self._t0 + <double>(self._bumps_due + 1) * self._every

    @property
    def last_tick(self):
        """The clock time of the last tick (the construction time before any)."""
        return self._last_now

    def stats(self):
        """Counters since construction: granted, refused, wins, losses, bumps, discarded (credits the cap refused)."""
        return {
            "granted": self._granted,
            "refused": self._refused,
            "wins": self._wins,
            "losses": self._losses,
            "bumps": self._bumps_due,
            "discarded": self._discarded,
        }

    # ---- save and restore (rtbcore.credit.CreditPool.to_state / from_state) ----

    @property
    def clock(self):
        """The clock ``tick()`` reads by default."""
        return self._clock

    def _get_state(self):
        return {
            "credits": int(self._credits), "cap": int(self._cap), "bid_cost": int(self._cost),
            "win_credit": int(self._win), "loss_credit": int(self._loss),
            "bump": int(self._bump), "bump_every": self._every, "t0": self._t0,
            "last_tick": self._last_now, "bumps_due": int(self._bumps_due),
            "granted": int(self._granted), "refused": int(self._refused),
            "wins": int(self._wins), "losses": int(self._losses),
            "discarded": float(self._discarded),
        }

    def _set_state(self, dict st, double shift):
        """Restore a _get_state() dict, its times moved by ``shift`` seconds. Validated whole
        before anything is written."""
        cdef int64_t units[6]
        cdef uint64_t counts[4]
        cdef double every, t0, last
        for i, key in enumerate(("credits", "cap", "bid_cost", "win_credit", "loss_credit",
                                 "bump")):
            v = st[key]
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 9 * 10**18:
                raise _CrInvalidInput(f"state {key}: expected micro-credits in [0, 9e18], got {v!r}")
            units[i] = v
        if units[0] > units[1]:
            raise _CrInvalidInput(f"state credits ({units[0]}) exceed the cap ({units[1]})")
        for i, key in enumerate(("granted", "refused", "wins", "losses")):
            v = st[key]
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**64:
                raise _CrInvalidInput(f"state {key}: expected a count, got {v!r}")
            counts[i] = v
        every = _ck_float(st["bump_every"], "state bump_every")
        if _cr_isnan(every) or not every > 0.0:
            raise _CrInvalidInput(f"state bump_every must be > 0, got {every!r}")
        t0 = _cr_time_value(st["t0"], "state t0") + shift
        last = _cr_time_value(st["last_tick"], "state last_tick") + shift
        due = _cr_count(st["bumps_due"], "state bumps_due")
        disc = _ck_float(st["discarded"], "state discarded")
        if not _ck_nonneg(disc):
            raise _CrInvalidInput(f"state discarded must be finite and >= 0, got {disc!r}")
        self._credits, self._cap, self._cost = units[0], units[1], units[2]
        self._win, self._loss, self._bump = units[3], units[4], units[5]
        self._every, self._t0, self._last_now, self._bumps_due = every, t0, last, due
        self._granted, self._refused, self._wins, self._losses = counts[0], counts[1], counts[2], counts[3]
        self._discarded = disc
