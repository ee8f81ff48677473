"""Save and restore: an object restored from to_state() (or pickle) in the middle of a run makes
exactly the decisions the original goes on to make; a state of another class or version is
refused with StateError."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore import (
    AdaptivePacer,
    BidLandscape,
    BidShader,
    CreditPool,
    DailyBudget,
    DayCalendar,
    LinearPacer,
    PIDPacer,
    ThompsonSampler,
    ThrottlingPacer,
)
from rtbcore.errors import InvalidInputError, StateError
from rtbcore.sim.shading import simulate_first_price


class Clock:
    """A picklable injected clock."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _copies(obj, clock=None):
    """The object restored by from_state (on the same clock) and by pickle."""
    kw = {} if clock is None else {"clock": clock}
    return [type(obj).from_state(obj.to_state(), **kw), pickle.loads(pickle.dumps(obj))]


steps = st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)), min_size=2, max_size=20)


@settings(max_examples=40, deadline=None)
@given(ops=steps, split=st.integers(0, 20), seed=st.integers(0, 2**64 - 1),
       output=st.sampled_from(["multiplier", "participation"]))  # fmt: skip
def test_pid_resumes_exactly(ops, split, seed, output):
    budget = np.array([100.0, 40.0, 0.0])
    clock = Clock()

    def step(p, frac, share, spent, t):
        t = t + frac * 3000
        spent = spent + share * np.maximum(budget - spent, 0) * 0.1
        p.update(spent, elapsed=t)
        return p.output(spent, elapsed=t), p.should_bid(spent, budget, 1.0, elapsed=t), spent, t

    def at_split():
        p = PIDPacer(budget, clock=clock, start=0.0, output=output, seed=seed, kd=0.5)
        spent, t = np.zeros(3), 0.0
        for frac, share in ops[:split]:
            *_, spent, t = step(p, frac, share, spent, t)
        return p, spent, t

    for copy in (lambda p: PIDPacer.from_state(p.to_state(), clock=clock),
                 lambda p: pickle.loads(pickle.dumps(p))):  # fmt: skip
        a, spent, t = at_split()  # the original goes on
        b = copy(a)
        s_b, t_b = spent, t
        for frac, share in ops[split:]:
            oa, ka, spent, t = step(a, frac, share, spent, t)
            ob, kb, s_b, t_b = step(b, frac, share, s_b, t_b)
            np.testing.assert_array_equal(oa, ob)
            np.testing.assert_array_equal(ka, kb)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), spent=st.lists(st.floats(0, 100), min_size=1, max_size=30))
def test_throttle_resumes_its_coin(seed, spent):
    a = ThrottlingPacer(seed=seed, clock=Clock(), start=0.0)
    s = np.array(spent)
    a.should_bid(s, 100.0, 1.0, elapsed=40_000)
    copies = _copies(a, Clock())
    expected = a.should_bid(s, 100.0, 1.0, elapsed=50_000)  # what the original goes on to do
    for b in copies:
        assert b.total == a.total and b.start == a.start
        np.testing.assert_array_equal(b.should_bid(s, 100.0, 1.0, elapsed=50_000), expected)
        assert b.rng_state == a.rng_state


def test_adaptive_and_calendar_pacers_round_trip():
    prof = np.random.default_rng(0).random(24) + 0.1
    a = AdaptivePacer(np.array([10.0, 20.0]), prof, clock=Clock(), start=0.0, ki=20.0)
    a.update(np.array([3.0, 1.0]), elapsed=20_000)
    for b in _copies(a, Clock()):
        np.testing.assert_allclose(b.profile, a.profile, rtol=1e-12)
        np.testing.assert_allclose(b.output(np.array([5.0, 2.0]), elapsed=30_000),
                                   a.output(np.array([5.0, 2.0]), elapsed=30_000), rtol=1e-12)
        assert b.gains == a.gains
    now = Clock(1_790_000_000.0)
    lin = LinearPacer(clock=now, calendar=DayCalendar("Asia/Tokyo"))
    b = LinearPacer.from_state(lin.to_state(), clock=now)
    assert b.calendar == lin.calendar and b.start == lin.start and b.elapsed() == lin.elapsed()
    # on a new monotonic clock: say where the saved period starts on it
    m = LinearPacer.from_state(LinearPacer(clock=Clock(5.0)).to_state(), clock=Clock(7.0),
                               start=1.0)  # fmt: skip
    assert m.elapsed() == 6.0


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from("bwlt"), st.integers(0, 50)), max_size=30),
       split=st.integers(0, 30))  # fmt: skip
def test_credit_pool_resumes_exactly(ops, split):
    clock = Clock()
    a = CreditPool(50, 200, bid_cost=1.5, win_credit=4, loss_credit=0.25, bump=20,
                   bump_every=10.0, clock=clock)  # fmt: skip

    def step(p, op, k):
        if op == "b":
            return p.try_bids(k)
        if op == "w":
            return p.record_win(k)
        if op == "l":
            return p.record_loss(k)
        return p.tick(clock.t + k)

    for op, k in ops[:split]:
        step(a, op, k)
        clock.t += k if op == "t" else 0
    b = CreditPool.from_state(a.to_state(), clock=clock)
    c = pickle.loads(pickle.dumps(a))
    for op, k in ops[split:]:
        got = {step(p, op, k) for p in (a, b, c)}
        clock.t += k if op == "t" else 0
        assert len(got) == 1
        assert a.credits == b.credits == c.credits and a.stats() == b.stats() == c.stats()


def test_credit_pool_rebased_on_a_new_clock_keeps_its_schedule():
    a = CreditPool(10, 100, bump=5, bump_every=60.0, clock=Clock(1000.0))
    a.tick(1090.0)  # bumps due at 1060, 1120, ...: next one 30 s away
    b = CreditPool.from_state(a.to_state(), clock=Clock(3.0), now=3.0)
    assert b.next_bump_at == 33.0 and b.tick(32.9) == 0 and b.tick(33.0) == 1


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), split=st.integers(1, 3),
       estimator=st.sampled_from(["empirical", "naive", "lognormal"]))  # fmt: skip
def test_shader_and_landscape_resume(seed, split, estimator):
    o = simulate_first_price(lambda r, k: r.random(k), 3000, seed=seed % 1000)
    sh = BidShader(BidLandscape(estimator=estimator, refit="manual"), explore=0.3, seed=seed)
    v = np.linspace(0.0, 1.2, 41)
    for k in range(split):
        sh.observe(o.bids[k * 1000 : (k + 1) * 1000], o.won[k * 1000 : (k + 1) * 1000],
                   o.price[k * 1000 : (k + 1) * 1000])  # fmt: skip
        sh.bid(v)
    sh.refit()
    for b in (BidShader.from_state(sh.to_state()), pickle.loads(pickle.dumps(sh))):
        assert b.landscape.n_observations == sh.landscape.n_observations
        assert (b.n_explored, b.n_no_bid, b.rng_state) == (sh.n_explored, sh.n_no_bid, sh.rng_state)
        for key, c in sh.landscape.counts().items():
            np.testing.assert_array_equal(b.landscape.counts()[key], c)
        np.testing.assert_array_equal(b.landscape.cdf(), sh.landscape.cdf())
    copies = (BidShader.from_state(sh.to_state()), pickle.loads(pickle.dumps(sh)))
    expected = sh.bid(v)  # the original's next bids (its fit is a full one: refit above)
    for b in copies:
        np.testing.assert_array_equal(b.bid(v), expected)


def test_thompson_resumes_its_draws():
    a = ThompsonSampler(4, alpha=[1, 2, 3, 4], seed=9)
    a.update(a.select(50), np.random.default_rng(1).random(50))
    copies = (ThompsonSampler.from_state(a.to_state()), pickle.loads(pickle.dumps(a)))
    expected = a.select(100)
    for b in copies:
        np.testing.assert_array_equal(b.alpha, a.alpha)
        np.testing.assert_array_equal(b.select(100), expected)


def test_daily_budget_round_trips():
    now = Clock(1_790_000_000.0)
    pid = PIDPacer(np.array([10.0, 5.0]), clock=now, start=0.0)
    book = DailyBudget(np.array([10.0, 5.0]), DayCalendar("Europe/Paris"), carry=0.5,
                       clock=now, pacer=pid)  # fmt: skip
    book.record_spend(np.array([4.0, 5.0]))
    now.t += 86_400
    book.advance()
    book.record_spend(np.array([1.0, 0.0]))
    pid.update(book.spent, elapsed=book.elapsed())
    p2 = PIDPacer.from_state(pid.to_state(), clock=now)
    b2 = DailyBudget.from_state(pickle.loads(pickle.dumps(book.to_state())), clock=now, pacer=p2)
    assert b2.period == book.period and p2.updates == pid.updates == 1
    np.testing.assert_array_equal(b2.budget, [13.0, 5.0])
    np.testing.assert_array_equal(b2.spent, book.spent)


@pytest.mark.parametrize(
    "obj",
    [
        lambda: LinearPacer(clock=time.monotonic),
        lambda: PIDPacer(1.0, clock=time.monotonic),
        lambda: CreditPool(1, 1, clock=time.monotonic),
        lambda: BidLandscape(),
        lambda: ThompsonSampler(2),
    ],
    ids=["LinearPacer", "PIDPacer", "CreditPool", "BidLandscape", "ThompsonSampler"],
)
def test_incompatible_states_are_refused_by_name(obj):
    o = obj()
    cls = type(o)
    st_ = o.to_state()
    assert st_["version"] == 1 and st_["format"] == f"rtbcore.{cls.__name__}"
    with pytest.raises(StateError, match="version 2"):
        cls.from_state({**st_, "version": 2})
    other = ThrottlingPacer(clock=time.monotonic).to_state()
    with pytest.raises(StateError, match="rtbcore.ThrottlingPacer"):
        cls.from_state(other)
    with pytest.raises(StateError, match="dict"):
        cls.from_state([1, 2])
    missing = dict(st_)
    missing.pop(next(k for k in st_ if k not in ("format", "version")))
    with pytest.raises(StateError):
        cls.from_state(missing)
    assert issubclass(StateError, InvalidInputError)
