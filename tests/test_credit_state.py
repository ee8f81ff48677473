"""CreditPool against a pure-Python model with exact rational arithmetic (hypothesis).

Amounts are drawn as multiples of 1/4 and times as multiples of 1/2, so they are exact in both
the pool (int64 micro-credits, float seconds) and the model (fractions.Fraction); the model is
the definition of the pool's semantics written the obvious way: one bid at a time.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from rtbcore import CreditPool
from rtbcore.errors import InvalidInputError

quarters = st.integers(0, 400).map(lambda k: k / 4)
small_counts = st.integers(0, 30)


class ModelPool:
    """The pool's definition: exact, sequential, no cleverness."""

    def __init__(self, initial, cap, cost, win, loss, bump, every, t0):
        self.credits = Fraction(initial)
        self.cap, self.cost = Fraction(cap), Fraction(cost)
        self.win, self.loss, self.bump = Fraction(win), Fraction(loss), Fraction(bump)
        self.every, self.t0, self.last = every, Fraction(t0), Fraction(t0)
        self.bumps = 0
        self.granted = self.refused = self.wins = self.losses = 0
        self.discarded = Fraction(0)

    def try_bid(self) -> bool:
        if self.credits >= self.cost:
            self.credits -= self.cost
            self.granted += 1
            return True
        self.refused += 1
        return False

    def pay(self, cost: Fraction) -> bool:
        if self.credits >= cost:
            self.credits -= cost
            self.granted += 1
            return True
        self.refused += 1
        return False

    def add(self, amount: Fraction) -> None:
        room = self.cap - self.credits
        if amount > room:
            self.discarded += amount - room
            self.credits = self.cap
        else:
            self.credits += amount

    def tick(self, now: Fraction) -> int:
        assert now >= self.last
        self.last = now
        due = 0 if self.every == math.inf else math.floor((now - self.t0) / Fraction(self.every))
        k = due - self.bumps
        if k > 0:
            self.bumps = due
            self.add(k * self.bump)
            return k
        return 0


class PoolMachine(RuleBasedStateMachine):
    @initialize(
        initial=quarters,
        extra=quarters,
        cost=quarters,
        win=quarters,
        loss=quarters,
        bump=quarters,
        every=st.sampled_from([0.5, 1.0, 2.5, 60.0, math.inf]),
        t0=st.integers(-20, 20).map(lambda k: k / 2),
    )
    def setup(self, initial, extra, cost, win, loss, bump, every, t0):
        cap = initial + extra
        self.now = t0
        self.pool = CreditPool(initial, cap, bid_cost=cost, win_credit=win, loss_credit=loss,
                               bump=bump, bump_every=every, clock=lambda: t0)
        self.model = ModelPool(initial, cap, cost, win, loss, bump, every, t0)

    @rule()
    def try_bid(self):
        assert self.pool.try_bid() == self.model.try_bid()

    @rule(n=small_counts)
    def try_bids(self, n):
        assert self.pool.try_bids(n) == sum(self.model.try_bid() for _ in range(n))

    @rule(costs=st.lists(quarters, max_size=12))
    def try_bid_block(self, costs):
        mask = self.pool.try_bid_block(np.array(costs, dtype=np.float64))
        assert mask.tolist() == [self.model.pay(Fraction(c)) for c in costs]

    @rule(n=small_counts)
    def record_win(self, n):
        self.pool.record_win(n)
        self.model.add(n * self.model.win)
        self.model.wins += n

    @rule(n=small_counts)
    def record_loss(self, n):
        self.pool.record_loss(n)
        self.model.add(n * self.model.loss)
        self.model.losses += n

    @rule(step=st.integers(0, 300).map(lambda k: k / 2))
    def tick(self, step):
        self.now += step
        assert self.pool.tick(self.now) == self.model.tick(Fraction(self.now))

    @rule(back=st.integers(1, 10).map(lambda k: k / 2))
    def tick_backwards_is_refused(self, back):
        with pytest.raises(InvalidInputError, match="backwards"):
            self.pool.tick(self.now - back)

    @rule(n=st.integers(-5, -1), method=st.sampled_from(["try_bids", "record_win", "record_loss"]))
    def negative_counts_are_refused(self, n, method):
        with pytest.raises(InvalidInputError):
            getattr(self.pool, method)(n)

    @rule(costs=st.lists(quarters, min_size=1, max_size=6), bad=st.sampled_from([-1.0, math.nan]),
          data=st.data())
    def a_bad_block_is_refused_whole(self, costs, bad, data):
        i = data.draw(st.integers(0, len(costs)))
        costs = costs[:i] + [bad] + costs[i:]
        with pytest.raises(InvalidInputError, match=rf"costs\[{i}\]"):
            self.pool.try_bid_block(np.array(costs))

    @invariant()
    def same_state(self):
        m, s = self.model, self.pool.stats()
        assert Fraction(self.pool.credits) == m.credits
        assert 0 <= self.pool.credits <= self.pool.cap
        assert (s["granted"], s["refused"], s["wins"], s["losses"], s["bumps"]) == (
            m.granted, m.refused, m.wins, m.losses, m.bumps)
        assert Fraction(s["discarded"]) == m.discarded


PoolMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestPoolMachine = PoolMachine.TestCase


@settings(max_examples=200, deadline=None)
@given(initial=st.integers(0, 10**6), cost=st.integers(1, 1000), n=st.integers(0, 10**4))
def test_try_bids_is_n_successive_try_bid(initial, cost, n):
    a = CreditPool(initial, initial, bid_cost=cost, clock=lambda: 0.0)
    b = CreditPool(initial, initial, bid_cost=cost, clock=lambda: 0.0)
    assert a.try_bids(n) == min(n, initial // cost)
    granted = 0
    for _ in range(min(n, initial // cost + 2)):  # the rest would all be refused
        granted += b.try_bid()
    assert granted == min(n, initial // cost)
    assert a.credits == b.credits


def _amounts(hi: float) -> st.SearchStrategy[float]:
    # the pool's amounts: 0 or within [resolution, hi] (a smaller non-zero amount is refused)
    return st.one_of(st.just(0.0), st.floats(1e-6, hi))


@settings(max_examples=200, deadline=None)
@given(initial=_amounts(1e6), costs=st.lists(_amounts(1e4), max_size=50))
def test_block_with_arbitrary_float_costs_matches_one_at_a_time(initial, costs):
    # Arbitrary floats are rounded to 1e-6 credit once, on the way in; after that the block and
    # a sequence of one-request blocks agree exactly, and credits stay within [0, cap].
    a = CreditPool(initial, initial, clock=lambda: 0.0)
    b = CreditPool(initial, initial, clock=lambda: 0.0)
    mask = a.try_bid_block(np.array(costs, dtype=np.float64))
    singles = [bool(b.try_bid_block(np.array([c]))[0]) for c in costs]
    assert mask.tolist() == singles
    assert a.credits == b.credits
    assert 0 <= a.credits <= initial + 1e-6
    granted = sum(c for c, ok in zip(costs, mask, strict=True) if ok)
    assert a.credits == pytest.approx(initial - granted, abs=1e-6 * (len(costs) + 1))
