# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, autotestdict=False
"""rtbcore._adjust: the kernel of rtbcore.adjust (bid adjustment strategies).

One pass checks every argument, a second recomputes the multipliers that are due and scales the
bids, both without the GIL; a refused call changes nothing. Users import ``rtbcore``, never this
module.
"""

cimport cython
from libc.math cimport INFINITY, pow

import numpy as np

# strategies
cdef enum:
    TIME = 0
    COMPETITION = 1
    PERFORMANCE = 2
    BUDGET = 3

# refusal codes: what is wrong (the wrapper names the argument and index)
cdef enum:
    BAD_BID = 1
    BAD_SIGNAL = 2
    BACKWARDS = 3


cdef inline bint _nonneg(double x) noexcept nogil:
    return x >= 0.0 and x < INFINITY


cdef inline double _target(int strategy, double s, double hi, double a, double b) noexcept nogil:
    """The strategy's multiplier before the bounds (a, b: its two parameters)."""
    cdef double r
    if strategy == TIME:
        # s: seconds to the deadline; a: the window over which the bid climbs to hi
        r = 1.0 - s / a
        if r < 0.0:
            r = 0.0
        return 1.0 + (hi - 1.0) * r
    if strategy == COMPETITION:
        # s: competing activity relative to normal; a: elasticity
        return pow(s, a)
    if strategy == PERFORMANCE:
        # s: conversion rate; a: elasticity; b: target rate
        return pow(s / b, a)
    # BUDGET: s: spend over the pacing target; a: elasticity
    if s <= 0.0:
        return INFINITY
    return pow(1.0 / s, a)


@cython.final
@cython.auto_pickle(False)   # live multipliers and clocks are not copied silently
cdef class _Adjuster:
    """Per-campaign multipliers and the time each was last recomputed."""

    cdef readonly int strategy
    cdef readonly double max_increase, min_decrease, frequency, a, b
    cdef double[::1] m
    cdef double[::1] last

    def __init__(self, int strategy, Py_ssize_t n, double max_increase, double min_decrease,
                 double frequency, double a, double b):
        self.strategy = strategy
        self.max_increase = max_increase
        self.min_decrease = min_decrease
        self.frequency = frequency
        self.a = a
        self.b = b
        self.m = np.ones(n)
        self.last = np.full(n, -INFINITY)

    @property
    def multiplier(self):
        return np.array(self.m)

    @property
    def last_update(self):
        return np.array(self.last)

    def adjust(self, const double[::1] bids, const double[::1] signal, bint scalar_signal,
               double now, double[::1] out):
        """out = bids * the campaigns' multipliers, recomputing each multiplier whose last
        update is at least `frequency` old. Returns (-1, 0) or (index, code) with nothing
        changed."""
        cdef Py_ssize_t n = self.m.shape[0], i, bad = -1
        cdef int code = 0
        cdef double s, t
        cdef bint unit = self.strategy == PERFORMANCE
        with nogil:
            for i in range(n):
                if not _nonneg(bids[i] * self.max_increase):
                    bad, code = i, BAD_BID
                    break
                s = signal[0] if scalar_signal else signal[i]
                if not _nonneg(s) or (unit and s > 1.0):
                    bad, code = i, BAD_SIGNAL
                    break
                if now < self.last[i]:
                    bad, code = i, BACKWARDS
                    break
            if bad < 0:
                for i in range(n):
                    if now - self.last[i] >= self.frequency:
                        s = signal[0] if scalar_signal else signal[i]
                        t = _target(self.strategy, s, self.max_increase, self.a, self.b)
                        if t > self.max_increase:
                            t = self.max_increase
                        if t < self.min_decrease:
                            t = self.min_decrease
                        self.m[i] = t
                        self.last[i] = now
                    out[i] = bids[i] * self.m[i]
        return bad, code
