"""Pacers and value_bid: rules against pure-Python oracles, scalar/array agreement, the hard cap,
the throttle, the PID's anti-windup, the adaptive profile, and bad input (state unchanged)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rtbcore import (
    AdaptivePacer,
    LinearPacer,
    PIDPacer,
    ThrottlingPacer,
    TieredPacer,
    learn_profile,
    value_bid,
)
from rtbcore.errors import InvalidInputError

from oracles import FakeClock

DAY = 86_400.0
MASK = (1 << 64) - 1


# ---- pure-Python oracles ---------------------------------------------------------------------


def ref_linear(s, b, e, t):
    s, b, e, t = float(s), float(b), float(e), float(t)
    return 0.8 if s > b * (e / t) else 1.2


def ref_tiered(s, b, e, t):
    s, b, e, t = float(s), float(b), float(e), float(t)
    target = b * (e / t)
    if target > 0:
        r = s / target
    elif s > 0:
        r = math.inf
    else:
        r = 1.0
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
    return min(2.0, max(0.5, m))


class RefRng:
    """splitmix64, as in src/pacing/throttle.pxi."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK

    def uniform(self) -> float:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        return (z >> 11) * (1.0 / 9007199254740992.0)


def ref_throttle_p(s, b, e, t):
    s, b, e, t = float(s), float(b), float(e), float(t)
    used = s / b if b > 0 else 1.0
    frac = e / t
    if used <= frac:
        return 1.0
    return max(0.1, min(1.0, 1.0 - (used - frac)))


def ref_throttle(s, b, c, e, t, rng: RefRng):
    s, b, c = float(s), float(b), float(c)
    if not s + c <= b:
        return False
    p = ref_throttle_p(s, b, e, t)
    if p >= 1.0:
        return True
    return rng.uniform() < p


class RefPID:
    """The PID of PIDPacer written out per campaign (straight-line or profile target)."""

    def __init__(self, budget, total, kp, ki, kd, base, lo, hi, profile=None):
        self.budget = list(budget)
        self.total = total
        self.kp, self.ki, self.kd, self.base, self.lo, self.hi = kp, ki, kd, base, lo, hi
        self.imin = (lo - base) / ki if ki > 0 else -math.inf
        self.imax = (hi - base) / ki if ki > 0 else math.inf
        if profile is None:
            self.cum = [0.0, 1.0]
        else:
            tot = sum(profile)
            self.cum = [0.0] + list(np.cumsum(np.asarray(profile) / tot))
            self.cum[-1] = 1.0
            self.cum = [min(x, 1.0) for x in self.cum]
        n = len(self.budget)
        self.I, self.D, self.prev, self.last = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n

    def curve(self, x):
        nb = len(self.cum) - 1
        y = x * nb
        k = int(y)
        if k >= nb:
            return self.cum[nb]
        return self.cum[k] + (y - k) * (self.cum[k + 1] - self.cum[k])

    def err(self, s, b, e):
        s, b, e = float(s), float(b), float(e)
        return (b * self.curve(e / self.total) - s) / b if b > 0 else 0.0

    def out(self, i, s, e):
        u = (self.base + self.kp * self.err(s, self.budget[i], e) + self.ki * self.I[i]
             + self.kd * self.D[i])
        return min(self.hi, max(self.lo, u))

    def update(self, i, s, e):
        err = self.err(s, self.budget[i], e)
        dt = (e - self.last[i]) / self.total
        if dt > 0:
            d = (err - self.prev[i]) / dt
            inew = min(self.imax, max(self.imin, self.I[i] + err * dt))
            u = self.base + self.kp * err + self.ki * inew + self.kd * d
            if (u > self.hi and err > 0) or (u < self.lo and err < 0):
                inew = self.I[i]
            self.I[i], self.D[i] = inew, d
        self.prev[i], self.last[i] = err, e


def ref_value_bid(ctr, cvr, v, roi, m, lo=0.10, hi=50.0):
    ctr, cvr, v, roi, m = float(ctr), float(cvr), float(v), float(roi), float(m)
    x = ctr * cvr * v / roi * m
    return lo if x < lo else (hi if x > hi else x)


# ---- strategies ------------------------------------------------------------------------------

money = st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False)


def money_arrays(n):
    return hnp.arrays(np.float64, n, elements=money)


@st.composite
def pacing_case(draw, max_n=40):
    n = draw(st.integers(0, max_n))
    budget = draw(money_arrays(n))
    # spend around the budget and exactly on thresholds, not only at random
    kind = draw(st.sampled_from(["free", "ratio"]))
    total = draw(st.floats(1.0, 1e6))
    if kind == "free":
        spent = draw(money_arrays(n))
        elapsed = draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, total)))
    else:
        frac = draw(st.floats(0.0, 1.0))
        elapsed = np.full(n, frac * total)
        ratios = draw(hnp.arrays(np.float64, n, elements=st.sampled_from(
            [0.0, 0.5, 0.8, 0.85, 0.9, 1.0, 1.1, 1.15, 1.2, 1.5, 3.0])))
        spent = budget * (elapsed / total) * ratios
    return spent, budget, elapsed, total


# ---- LinearPacer / TieredPacer ----------------------------------------------------------------


def test_linear_rule_examples():
    p = LinearPacer(clock=FakeClock())
    assert p.multiplier(10.0, 100.0, 3600.0) == 0.8        # target 4.17, above
    assert p.multiplier(4.0, 100.0, 3600.0) == 1.2
    assert p.multiplier(50.0, 100.0, 43_200.0) == 1.2      # exactly on target is not above
    assert p.multiplier(0.0, 0.0, 0.0) == 1.2


def test_tiered_rule_examples():
    p = TieredPacer(clock=FakeClock())
    ratios = np.array([0.0, 0.79, 0.8, 0.85, 0.9, 1.0, 1.1, 1.15, 1.2, 1.21, 5.0])
    got = p.multiplier(50.0 * ratios, 100.0, 43_200.0)
    assert got.tolist() == [1.3, 1.3, 1.15, 1.15, 1.0, 1.0, 1.0, 0.85, 0.85, 0.7, 0.7]
    # zero target at the start of the day
    assert p.multiplier(0.0, 100.0, 0.0) == 1.0
    assert p.multiplier(1.0, 100.0, 0.0) == 0.7


@settings(max_examples=150, deadline=None)
@given(pacing_case())
def test_multiplier_pacers_match_the_oracle(case):
    spent, budget, elapsed, total = case
    for pacer, ref in ((LinearPacer(clock=FakeClock()), ref_linear),
                       (TieredPacer(clock=FakeClock()), ref_tiered)):
        got = pacer.multiplier(spent, budget, elapsed, total)
        want = [ref(s, b, e, total) for s, b, e in zip(spent, budget, elapsed, strict=True)]
        assert got.shape == spent.shape
        assert got.tolist() == want
        # scalar calls agree with the array call, element by element
        for k in range(len(spent)):
            assert pacer.multiplier(float(spent[k]), float(budget[k]), float(elapsed[k]),
                                    total) == want[k]
        # one elapsed for every campaign (the kernel's fast path) agrees too
        if len(spent):
            e0 = float(elapsed[0])
            got0 = pacer.multiplier(spent, budget, e0, total)
            assert got0.tolist() == [ref(s, b, e0, total) for s, b in zip(spent, budget,
                                                                          strict=True)]


def test_shapes_in_shapes_out():
    p = LinearPacer(clock=FakeClock())
    s = np.zeros((3, 4))
    assert p.multiplier(s, 10.0, 5.0).shape == (3, 4)
    assert p.should_bid(s, 10.0, np.ones((3, 4))).shape == (3, 4)
    assert p.should_bid(s, 10.0, np.ones((3, 4))).dtype == np.bool_
    assert isinstance(p.multiplier(1.0, 10.0, 5.0), float)
    assert isinstance(p.should_bid(1.0, 10.0, 1.0), bool)
    assert isinstance(p.multiplier(np.float64(1.0), 10, 5), float)
    assert p.multiplier(np.zeros(0), 1.0, 1.0).shape == (0,)
    assert p.multiplier([1.0, 2.0], [10.0, 10.0], 5.0).tolist() == [0.8, 0.8]


def test_clock_is_injected_and_read_when_elapsed_is_omitted():
    clock = FakeClock(1000.0)
    p = LinearPacer(clock=clock)                       # start = clock() at construction
    assert p.start == 1000.0 and p.elapsed() == 0.0
    clock.t = 1000.0 + 43_200.0
    assert p.multiplier(50.0, 100.0) == 1.2 and p.multiplier(50.1, 100.0) == 0.8
    p2 = LinearPacer(total=3600.0, clock=clock, start=clock.t - 1800.0)
    assert p2.elapsed() == 1800.0


def test_clock_going_backwards_is_refused():
    clock = FakeClock(10.0)
    p = ThrottlingPacer(clock=clock, start=0.0)
    p.should_bid(0.0, 1.0, 0.5)
    clock.t = 9.0
    with pytest.raises(InvalidInputError, match="backwards"):
        p.should_bid(0.0, 1.0, 0.5)
    clock.t = DAY + 1.0
    with pytest.raises(InvalidInputError, match="past the end"):
        p.should_bid(0.0, 1.0, 0.5)
    lin = LinearPacer(clock=clock, start=0.0)
    clock.t = 100.0
    assert lin.multiplier(0.0, 1.0) == 1.2
    clock.t = 99.0
    with pytest.raises(InvalidInputError, match="backwards"):
        lin.multiplier(0.0, 1.0)


# ---- the hard cap ------------------------------------------------------------------------------


def all_pacers(n=None, seed=3):
    budget = np.full(n, 100.0) if n is not None else 100.0
    return [
        LinearPacer(clock=FakeClock()),
        TieredPacer(clock=FakeClock()),
        ThrottlingPacer(clock=FakeClock(), seed=seed),
        PIDPacer(budget, clock=FakeClock()),
        PIDPacer(budget, clock=FakeClock(), output="participation", seed=seed),
        AdaptivePacer(budget, np.arange(1, 25), clock=FakeClock()),
    ]


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 30).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, n, elements=st.floats(0.0, 200.0)),
    hnp.arrays(np.float64, n, elements=st.floats(0.0, 200.0)),
    st.floats(0.0, DAY))))
def test_hard_cap_is_never_crossed(case):
    spent, cost, elapsed = case
    n = len(spent)
    budget = np.full(n, 100.0)
    for pacer in all_pacers(n):
        ok = pacer.should_bid(spent, budget, cost, elapsed)
        assert not np.any(ok & (spent + cost > budget)), type(pacer).__name__
        if getattr(pacer, "output_kind", "multiplier") == "multiplier" and \
                not isinstance(pacer, ThrottlingPacer):
            # no coin: the cap is the whole decision, taken on the exact sum (a cost below
            # half an ulp of spent still crosses a budget that spent has reached)
            exact = [Fraction(s) + Fraction(c) <= Fraction(b)
                     for s, c, b in zip(spent.tolist(), cost.tolist(), budget.tolist(),
                                        strict=True)]
            assert ok.tolist() == exact


def test_cap_examples_refuse_the_bid_that_would_cross():
    p = LinearPacer(clock=FakeClock())
    assert p.should_bid(99.0, 100.0, 1.0) is True          # lands exactly on the budget
    assert p.should_bid(99.0, 100.0, 1.0000001) is False
    assert p.should_bid(100.0, 100.0, 0.0) is True          # a free bid never crosses
    assert p.should_bid(101.0, 100.0, 0.0) is False         # already past: nothing more


# ---- ThrottlingPacer ----------------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(pacing_case(), st.integers(0, 2**64 - 1))
def test_throttle_matches_the_oracle_and_scalar_calls(case, seed):
    spent, budget, elapsed, total = case
    cost = np.minimum(budget * 0.01, 5.0)
    arr = ThrottlingPacer(clock=FakeClock(), seed=seed)
    one = ThrottlingPacer(clock=FakeClock(), seed=seed)
    rng = RefRng(seed)
    got = arr.should_bid(spent, budget, cost, elapsed, total)
    want = [ref_throttle(s, b, c, e, total, rng)
            for s, b, c, e in zip(spent, budget, cost, elapsed, strict=True)]
    assert got.tolist() == want
    assert arr.rng_state == rng.state
    singles = [one.should_bid(float(s), float(b), float(c), float(e), total)
               for s, b, c, e in zip(spent, budget, cost, elapsed, strict=True)]
    assert singles == want and one.rng_state == arr.rng_state
    prob = arr.bid_probability(spent, budget, elapsed, total)
    assert prob.tolist() == [ref_throttle_p(s, b, e, total)
                             for s, b, e in zip(spent, budget, elapsed, strict=True)]


def test_throttle_probability_formula_and_frequency():
    p = ThrottlingPacer(clock=FakeClock(), seed=11)
    # used 0.8 at half time: p = 1 - 0.3 = 0.7
    assert p.bid_probability(80.0, 100.0, 43_200.0) == pytest.approx(0.7)
    assert p.bid_probability(100.0, 100.0, 0.0) == 0.1       # floor
    assert p.bid_probability(30.0, 100.0, 43_200.0) == 1.0   # behind: always
    n = 20_000
    got = p.should_bid(np.full(n, 80.0), 100.0, 1.0, 43_200.0)
    # binomial(20000, 0.7): sd 0.0032; 5 sd
    assert abs(got.mean() - 0.7) < 0.017
    floor = p.should_bid(np.full(n, 99.0), 100.0, 1.0, 0.0)
    assert abs(floor.mean() - 0.1) < 0.011


def test_throttle_draws_only_when_throttled_and_is_seeded():
    p = ThrottlingPacer(clock=FakeClock(), seed=5)
    s0 = p.rng_state
    assert p.should_bid(np.full(100, 10.0), 100.0, 1.0, 43_200.0).all()   # behind: no draw
    assert p.should_bid(np.full(10, 100.0), 100.0, 1.0, 86_400.0).sum() == 0  # capped: no draw
    assert p.rng_state == s0
    a = ThrottlingPacer(clock=FakeClock(), seed=5).should_bid(np.full(50, 90.0), 100.0, 1.0, 0.0)
    b = ThrottlingPacer(clock=FakeClock(), seed=5).should_bid(np.full(50, 90.0), 100.0, 1.0, 0.0)
    c = ThrottlingPacer(clock=FakeClock(), seed=6).should_bid(np.full(50, 90.0), 100.0, 1.0, 0.0)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


# ---- PIDPacer / AdaptivePacer -----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 8),
    st.lists(st.tuples(st.floats(0.0, 3600.0), st.floats(0.0, 2.0)), min_size=1, max_size=12),
    st.sampled_from([(10.0, 50.0, 0.0), (2.0, 0.0, 0.0), (1.0, 5.0, 0.01), (50.0, 500.0, 0.0)]),
    st.booleans(),
)
def test_pid_matches_the_oracle(n, steps, gains, with_profile):
    kp, ki, kd = gains
    budget = np.linspace(10.0, 1000.0, n)
    profile = np.arange(24, dtype=float) % 7 + 1 if with_profile else None
    pacer = PIDPacer(budget, clock=FakeClock(), kp=kp, ki=ki, kd=kd, profile=profile)
    ref = RefPID(budget, DAY, kp, ki, kd, 1.0, 0.1, 3.0, profile)
    t = 0.0
    rs = np.random.default_rng(n)
    for dt, scale in steps:
        t = min(DAY, t + dt * 6)
        spent = budget * (t / DAY) * scale * rs.uniform(0.8, 1.2, n)
        out = pacer.output(spent, elapsed=t)
        for i in range(n):
            assert out[i] == pytest.approx(ref.out(i, spent[i], t), rel=1e-12, abs=1e-12)
        pacer.update(spent, t)
        for i in range(n):
            ref.update(i, spent[i], t)
        np.testing.assert_allclose(pacer.integral, ref.I, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(pacer.last_error, ref.prev, rtol=1e-12, atol=1e-15)
    assert pacer.updates == len(steps)


def test_pid_scalar_budget_gives_scalars():
    p = PIDPacer(100.0, clock=FakeClock())
    assert p.shape == ()
    m = p.multiplier(10.0, elapsed=3600.0)
    assert isinstance(m, float)
    assert m == pytest.approx(1.0 + 10.0 * (100.0 * 3600.0 / DAY - 10.0) / 100.0)
    p.update(10.0, 3600.0)
    assert isinstance(p.should_bid(10.0, 100.0, 1.0, 3600.0), bool)


def test_pid_steers_toward_the_target():
    p = PIDPacer(np.array([100.0, 100.0]), clock=FakeClock())
    m = p.multiplier(np.array([10.0, 60.0]), elapsed=43_200.0)     # behind, ahead of 50
    assert m[0] > 1.0 > m[1]
    assert m[0] <= 3.0 and m[1] >= 0.1


def test_pid_anti_windup_clamps_the_integral_and_recovers_at_once():
    p = PIDPacer(np.array([100.0]), clock=FakeClock(), kp=0.5, ki=50.0)
    imax = (3.0 - 1.0) / 50.0
    # behind all day (nothing spent): the output saturates and the integral stops at imax
    for k in range(1, 200):
        p.update(np.array([0.0]), k * 300.0)
    assert p.integral[0] <= imax + 1e-15
    assert p.output(np.array([0.0]), elapsed=199 * 300.0)[0] == 3.0
    # now ahead of the curve: without anti-windup the integral (the error x/day integrated over
    # 0.69 day: ~0.24, 6x imax) would hold the output at its ceiling for hours; here it leaves
    # it right away
    t = 199 * 300.0
    ahead = np.array([100.0 * t / DAY + 20.0])
    p.update(ahead, t + 300.0)
    assert p.output(ahead, elapsed=t + 300.0)[0] < 3.0


def test_pid_conditional_integration_holds_the_integral_while_saturated():
    # kp alone saturates the output: the integral must not grow while it does
    p = PIDPacer(np.array([100.0]), clock=FakeClock(), kp=1000.0, ki=1.0)
    for k in range(1, 20):
        p.update(np.array([0.0]), k * 600.0)
    assert p.integral[0] == 0.0
    p2 = PIDPacer(np.array([100.0]), clock=FakeClock(), kp=0.0, ki=1.0, lo=0.5, hi=1.5)
    p2.update(np.array([0.0]), 43_200.0)        # err 0.5 over half a day: I = 0.25, u = 1.25
    assert p2.integral[0] == pytest.approx(0.25)


def test_pid_participation_mode():
    p = PIDPacer(np.full(20_000, 100.0), clock=FakeClock(), output="participation", kp=0.0,
                 ki=0.0, base=0.3, seed=9)
    assert (p.multiplier(np.zeros(20_000), elapsed=10.0) == 1.0).all()
    ok = p.should_bid(np.zeros(20_000), 100.0, 1.0, 10.0)
    assert abs(ok.mean() - 0.3) < 0.02
    with pytest.raises(InvalidInputError, match="hi"):
        PIDPacer(1.0, output="participation", hi=2.0, clock=FakeClock())


def test_pid_time_must_not_go_backwards_and_state_is_kept():
    p = PIDPacer(np.array([100.0, 50.0]), clock=FakeClock())
    p.update(np.array([10.0, 5.0]), 7200.0)
    before = (p.integral, p.last_error, p.last_update, p.updates)
    with pytest.raises(InvalidInputError, match=r"elapsed = 3600.0 .*backwards"):
        p.update(np.array([11.0, 6.0]), 3600.0)
    with pytest.raises(InvalidInputError, match=r"elapsed\[1\] = 100.0 .*backwards"):
        p.update(np.array([11.0, 6.0]), np.array([8000.0, 100.0]))
    with pytest.raises(InvalidInputError, match="backwards"):
        p.output(np.array([11.0, 6.0]), elapsed=10.0)
    with pytest.raises(InvalidInputError, match=r"spent\[1\] = nan"):
        p.update(np.array([11.0, np.nan]), 8000.0)
    with pytest.raises(InvalidInputError, match="past the end"):
        p.update(np.array([11.0, 6.0]), DAY + 1)
    with pytest.raises(InvalidInputError, match="shape"):
        p.update(np.array([11.0, 6.0, 1.0]), 8000.0)
    after = (p.integral, p.last_error, p.last_update, p.updates)
    for x, y in zip(before, after, strict=True):
        np.testing.assert_array_equal(x, y)
    p.reset()
    assert p.updates == 0 and (p.integral == 0).all()


def test_learn_profile_and_adaptive_target():
    rs = np.random.default_rng(1)
    history = rs.poisson(50, (5, 1440)).astype(float)
    prof = learn_profile(history, buckets=24)
    want = history.reshape(5, 24, 60).sum(axis=2).mean(axis=0)
    np.testing.assert_allclose(prof, want / want.sum())
    assert learn_profile(history).shape == (1440,)
    p = AdaptivePacer.from_history(100.0, history, buckets=24, clock=FakeClock())
    np.testing.assert_allclose(p.profile, prof)
    edges = np.arange(25) * 3600.0
    np.testing.assert_allclose(p.target(edges), np.concatenate([[0], np.cumsum(prof)]),
                               atol=1e-12)
    # linear inside a bucket
    mid = p.target(5.5 * 3600.0)
    assert mid == pytest.approx((p.target(5 * 3600.0) + p.target(6 * 3600.0)) / 2)
    # a night-light profile asks for less at night than the straight line
    night = AdaptivePacer(100.0, [1] * 8 + [5] * 16, clock=FakeClock())
    assert night.target(8 * 3600.0) < 8 / 24
    assert PIDPacer(100.0, clock=FakeClock()).target(8 * 3600.0) == pytest.approx(8 / 24)
    # behind a traffic-shaped target at night the adaptive pacer bids less than the linear PID
    assert night.multiplier(20.0, elapsed=8 * 3600.0) < PIDPacer(
        100.0, clock=FakeClock()).multiplier(20.0, elapsed=8 * 3600.0)


@pytest.mark.parametrize(
    ("profile", "match"),
    [
        ([], "24 or 1440"),
        ([1.0] * 23, "24 or 1440"),
        ([1.0] * 23 + [-1.0], r"profile\[23\] = -1.0"),
        ([1.0] * 23 + [math.nan], r"profile\[23\] = nan"),
        ([0.0] * 24, "positive sum"),
        (np.ones((2, 24)), "24 or 1440"),
    ],
)
def test_bad_profiles(profile, match):
    with pytest.raises(InvalidInputError, match=match):
        AdaptivePacer(100.0, profile, clock=FakeClock())


@pytest.mark.parametrize(
    ("history", "match"),
    [
        (np.zeros((0, 24)), "non-empty"),
        (np.ones((2, 25)), "25 buckets"),
        (np.zeros((2, 24)), "no traffic"),
        (np.array([[1.0] * 23 + [-2.0]]), r"history\[0, 23\] = -2.0"),
        ("abc", "history"),
    ],
)
def test_bad_histories(history, match):
    with pytest.raises(InvalidInputError, match=match):
        learn_profile(history)


# ---- value_bid -----------------------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 30).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, n, elements=st.floats(0.0, 1.0)),
    hnp.arrays(np.float64, n, elements=st.floats(0.0, 1.0)),
    hnp.arrays(np.float64, n, elements=st.floats(0.0, 1e5)),
    st.floats(0.01, 10.0),
    hnp.arrays(np.float64, n, elements=st.floats(0.0, 3.0)),
)))
def test_value_bid_matches_the_oracle(case):
    ctr, cvr, v, roi, m = case
    got = value_bid(ctr, cvr, v, roi, m)
    assert got.shape == ctr.shape
    assert got.tolist() == [ref_value_bid(c, r, x, roi, y)
                            for c, r, x, y in zip(ctr, cvr, v, m, strict=True)]
    for k in range(len(ctr)):
        assert value_bid(float(ctr[k]), float(cvr[k]), float(v[k]), roi, float(m[k])) == got[k]


def test_value_bid_examples():
    assert value_bid(0.02, 0.05, 1000.0, 1.0, 1.0) == pytest.approx(1.0)
    assert value_bid(0.02, 0.05, 1000.0, 2.0, 1.2) == pytest.approx(0.6)
    assert value_bid(0.0, 0.05, 1000.0, 1.0, 1.0) == 0.10             # clipped up
    assert value_bid(1.0, 1.0, 1e6, 1.0, 1.0) == 50.0                  # clipped down
    assert value_bid(0.5, 0.5, 4.0, 1.0, 1.0, min_bid=0.0, max_bid=2.0) == 1.0
    assert value_bid(np.full((2, 3), 0.1), 0.1, 100.0, 1.0, 1.0).shape == (2, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(p_ctr=np.array([0.1, 1.5])), r"p_ctr\[1\] = 1.5 must be in \[0, 1\]"),
        (dict(p_cvr=-0.1), r"p_cvr = -0.1 must be in \[0, 1\]"),
        (dict(value=np.array([1.0, math.nan])), r"value\[1\] = nan"),
        (dict(value=math.inf), "value = inf"),
        (dict(target_roi=0.0), "target_roi = 0.0 must be finite and > 0"),
        (dict(multiplier=np.array([1.0, -1.0])), r"multiplier\[1\] = -1.0"),
        (dict(min_bid=-1.0), "min_bid"),
        (dict(max_bid=0.01), "max_bid"),
        (dict(p_ctr=np.ones(3), value=np.ones(2)), "value has shape"),
        (dict(value="x"), "value must be a real number"),
    ],
)
def test_value_bid_bad_input(kwargs, match):
    args = dict(p_ctr=0.1, p_cvr=0.1, value=100.0, target_roi=1.0, multiplier=1.0)
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=match):
        value_bid(**args)


# ---- bad input: named, indexed, state unchanged ------------------------------------------------


BAD = [
    (dict(spent=np.array([1.0, -1.0])), r"spent\[1\] = -1.0 must be finite and >= 0"),
    (dict(spent=np.array([1.0, math.nan])), r"spent\[1\] = nan"),
    (dict(spent=math.inf), "spent = inf"),
    (dict(budget=np.array([math.nan, 1.0])), r"budget\[0\] = nan"),
    (dict(budget=-5.0), "budget = -5.0"),
    (dict(cost=np.array([1.0, -0.5])), r"cost\[1\] = -0.5"),
    (dict(cost=math.nan), "cost = nan"),
    (dict(elapsed=DAY + 1), "past the end of the period"),
    (dict(elapsed=np.array([1.0, -1.0])), r"elapsed\[1\] = -1.0"),
    (dict(elapsed=math.nan), "elapsed = nan"),
    (dict(total=0.0), "total = 0.0 must be finite and > 0"),
    (dict(spent=np.ones(3)), "shape"),
    (dict(spent="ten"), "spent must be a real number"),
    (dict(budget=10**400), "budget"),
]


def _state(p):
    if isinstance(p, PIDPacer):
        return (p.integral.tolist(), p.last_update.tolist(), p.updates)
    if isinstance(p, ThrottlingPacer):
        return p.rng_state
    return None


@pytest.mark.parametrize(("kwargs", "match"), BAD)
def test_bad_input_is_named_and_changes_nothing(kwargs, match):
    for p in all_pacers(2):
        args = dict(spent=np.array([1.0, 2.0]), budget=np.array([100.0, 100.0]),
                    cost=np.array([1.0, 1.0]), elapsed=3600.0, total=DAY)
        args.update(kwargs)
        if isinstance(p, PIDPacer) and "total" in kwargs:
            continue   # the PID validates total too, but the message differs (checked below)
        before = _state(p)
        with pytest.raises(InvalidInputError, match=match):
            p.should_bid(**args)
        assert _state(p) == before
        if hasattr(p, "multiplier") and "cost" not in kwargs:
            a = {k: v for k, v in args.items() if k != "cost"}
            with pytest.raises(InvalidInputError, match=match):
                p.multiplier(**a)
            assert _state(p) == before


def test_scalar_bad_input_through_the_fast_path():
    p = LinearPacer(clock=FakeClock())
    with pytest.raises(InvalidInputError, match="spent = -1.0"):
        p.should_bid(-1.0, 10.0, 1.0)
    with pytest.raises(InvalidInputError, match="cost = nan"):
        p.should_bid(1.0, 10.0, math.nan)
    with pytest.raises(InvalidInputError, match="elapsed = 90000.0 is past the end"):
        p.multiplier(1.0, 10.0, 90_000.0)
    t = ThrottlingPacer(clock=FakeClock())
    s = t.rng_state
    with pytest.raises(InvalidInputError, match="budget = nan"):
        t.should_bid(95.0, math.nan, 1.0, 0.0)
    assert t.rng_state == s


def test_throttle_array_error_keeps_rng():
    t = ThrottlingPacer(clock=FakeClock(), seed=1)
    s = t.rng_state
    spent = np.array([99.0] * 10 + [math.nan])    # 10 throttled draws happen before the NaN
    with pytest.raises(InvalidInputError, match=r"spent\[10\]"):
        t.should_bid(spent, 100.0, 0.5, 0.0)
    assert t.rng_state == s


def test_bad_constructor_arguments():
    with pytest.raises(InvalidInputError, match="total"):
        LinearPacer(total=0.0)
    with pytest.raises(InvalidInputError, match="total"):
        LinearPacer(total=math.nan)
    with pytest.raises(InvalidInputError, match="clock"):
        LinearPacer(clock=3.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="seed"):
        ThrottlingPacer(seed=-1)
    with pytest.raises(InvalidInputError, match=r"budget\[1\] = -1.0"):
        PIDPacer(np.array([1.0, -1.0]))
    with pytest.raises(InvalidInputError, match="budget = nan"):
        PIDPacer(math.nan)
    with pytest.raises(InvalidInputError, match="kp"):
        PIDPacer(1.0, kp=-1.0)
    with pytest.raises(InvalidInputError, match="output"):
        PIDPacer(1.0, output="both")
    with pytest.raises(InvalidInputError, match="lo <= base <= hi"):
        PIDPacer(1.0, lo=2.0, hi=1.0)


def test_reprs():
    for p in all_pacers(2):
        assert type(p).__name__ in repr(p)


# ---- the vectorised fast paths (blocks of 1024, SIMD groups of 8) -------------------------------


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 3000), st.data())
def test_long_arrays_match_the_oracle_on_the_fast_paths(n, data):
    rs = np.random.default_rng(n)
    budget = rs.uniform(0.0, 100.0, n)
    budget[rs.random(n) < 0.05] = 0.0
    spent = budget * rs.choice([0.0, 0.5, 0.9, 1.0, 1.1, 1.3], n)
    cost = np.where(rs.random(n) < 0.3, budget - spent, rs.uniform(0.0, 5.0, n))  # exact cap
    cost = np.abs(cost)
    frac = data.draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]))
    e = frac * DAY
    lin, tie = LinearPacer(clock=FakeClock()), TieredPacer(clock=FakeClock())
    assert lin.multiplier(spent, budget, e).tolist() == [
        ref_linear(s, b, e, DAY) for s, b in zip(spent, budget, strict=True)]
    assert tie.multiplier(spent, budget, e).tolist() == [
        ref_tiered(s, b, e, DAY) for s, b in zip(spent, budget, strict=True)]
    assert lin.should_bid(spent, budget, cost).tolist() == [
        float(s) + float(c) <= float(b) for s, b, c in zip(spent, budget, cost, strict=True)]
    seed = data.draw(st.integers(0, 2**64 - 1))
    thr, rng = ThrottlingPacer(clock=FakeClock(), seed=seed), RefRng(seed)
    assert thr.should_bid(spent, budget, cost, e).tolist() == [
        ref_throttle(s, b, c, e, DAY, rng) for s, b, c in zip(spent, budget, cost, strict=True)]
    assert thr.rng_state == rng.state
    pid = PIDPacer(budget, clock=FakeClock())
    ref = RefPID(budget, DAY, 10.0, 50.0, 0.0, 1.0, 0.1, 3.0)
    np.testing.assert_allclose(pid.output(spent, elapsed=e),
                               [ref.out(i, spent[i], e) for i in range(n)], rtol=1e-12)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 3000), st.data())
def test_a_bad_value_anywhere_in_a_long_array_is_named(n, data):
    at = data.draw(st.integers(0, n - 1))
    bad = data.draw(st.sampled_from([math.nan, -1.0, math.inf, -math.inf]))
    which = data.draw(st.sampled_from(["spent", "budget", "cost"]))
    args = dict(spent=np.full(n, 1.0), budget=np.full(n, 10.0), cost=np.full(n, 0.5))
    args[which][at] = bad
    pat = rf"{which}\[{at}\] = {bad!r}".replace("(", r"\(")
    lin = LinearPacer(clock=FakeClock())
    with pytest.raises(InvalidInputError, match=pat):
        lin.should_bid(**args)
    thr = ThrottlingPacer(clock=FakeClock(), seed=1)
    with pytest.raises(InvalidInputError, match=pat):
        thr.should_bid(**args, elapsed=100.0)
    assert thr.rng_state == ThrottlingPacer(clock=FakeClock(), seed=1).rng_state
    if which != "cost":
        with pytest.raises(InvalidInputError, match=pat):
            lin.multiplier(args["spent"], args["budget"], 100.0)
        with pytest.raises(InvalidInputError, match=pat):
            TieredPacer(clock=FakeClock()).multiplier(args["spent"], args["budget"], 100.0)
    if which == "spent":
        pid = PIDPacer(np.full(n, 10.0), clock=FakeClock())
        with pytest.raises(InvalidInputError, match=pat):
            pid.output(args["spent"], elapsed=100.0)
        with pytest.raises(InvalidInputError, match=pat):
            pid.update(args["spent"], 100.0)
        assert pid.updates == 0 and not pid.last_update.any()
    v = np.full(n, 100.0)
    v[at] = bad if bad != -math.inf else -1.0
    vpat = rf"value\[{at}\] = {float(v[at])!r}"
    with pytest.raises(InvalidInputError, match=vpat):
        value_bid(0.1, 0.1, v, 1.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 7200.0), st.floats(0.0, 2.0), st.floats(0.0, 5.0)),
                min_size=1, max_size=15), st.booleans(), st.integers(0, 2**32))
def test_scalar_pid_equals_a_one_campaign_array_pid(steps, participation, seed):
    kw = dict(clock=FakeClock(), seed=seed,
              output="participation" if participation else "multiplier")
    one, arr = PIDPacer(100.0, **kw), PIDPacer(np.array([100.0]), **kw)
    t = 0.0
    for dt, scale, cost in steps:
        t = min(DAY, t + dt)
        s = 100.0 * t / DAY * scale
        assert one.output(s, elapsed=t) == arr.output(np.array([s]), elapsed=t)[0]
        assert one.should_bid(s, 100.0, cost, t) == arr.should_bid(np.array([s]), 100.0, cost,
                                                                    t)[0]
        one.update(s, t)
        arr.update(np.array([s]), t)
        assert one.integral == arr.integral[0] and one.last_error == arr.last_error[0]


def test_scalar_pid_bad_input_changes_nothing():
    p = PIDPacer(100.0, clock=FakeClock())
    p.update(10.0, 3600.0)
    before = (float(p.integral), float(p.last_update), p.updates)
    for args in ((math.nan, 7200.0), (-1.0, 7200.0), (10.0, 100.0), (10.0, DAY + 1)):
        with pytest.raises(InvalidInputError):
            p.update(*args)
    with pytest.raises(InvalidInputError, match="cost = nan"):
        p.should_bid(10.0, 100.0, math.nan, 7200.0)
    assert (float(p.integral), float(p.last_update), p.updates) == before


def test_adaptive_with_a_minute_profile():
    prof = np.ones(1440)
    prof[:240] = 0.0                                 # no traffic before 04:00
    p = AdaptivePacer(np.array([100.0, 50.0]), prof, clock=FakeClock())
    assert p.target(4 * 3600.0) == 0.0
    assert p.target(4 * 3600.0 + 60.0) == pytest.approx(1 / 1200)
    assert p.target(DAY) == 1.0
    # nothing due before 04:00: any spend then is ahead of the curve
    assert (p.multiplier(np.array([1.0, 1.0]), elapsed=3 * 3600.0) < 1.0).all()


# ---- PID as a state machine: valid and rejected calls interleaved, against the oracle ----------

from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule  # noqa: E402


class PIDMachine(RuleBasedStateMachine):
    N = 4

    @initialize(gains=st.sampled_from([(10.0, 50.0, 0.0), (1.0, 5.0, 0.01), (50.0, 500.0, 0.0)]),
                adaptive=st.booleans())
    def start(self, gains, adaptive):
        kp, ki, kd = gains
        self.budget = np.array([0.0, 10.0, 100.0, 5000.0])
        profile = (np.arange(24) % 5 + 1.0) if adaptive else None
        self.pacer = PIDPacer(self.budget, clock=FakeClock(), kp=kp, ki=ki, kd=kd,
                              profile=profile)
        self.ref = RefPID(self.budget, DAY, kp, ki, kd, 1.0, 0.1, 3.0, profile)
        self.t = 0.0

    def spend(self, scale):
        return self.budget * (self.t / DAY) * np.array(scale)

    @rule(dt=st.floats(0.0, 7200.0), scale=st.lists(st.floats(0.0, 2.0), min_size=4,
                                                    max_size=4))
    def update(self, dt, scale):
        self.t = min(DAY, self.t + dt)
        s = self.spend(scale)
        self.pacer.update(s, self.t)
        for i in range(self.N):
            self.ref.update(i, s[i], self.t)

    @rule(scale=st.lists(st.floats(0.0, 2.0), min_size=4, max_size=4))
    def query(self, scale):
        s = self.spend(scale)
        out = self.pacer.output(s, elapsed=self.t)
        np.testing.assert_allclose(out, [self.ref.out(i, s[i], self.t) for i in range(self.N)],
                                   rtol=1e-12, atol=1e-12)

    @rule(at=st.integers(0, 3), bad=st.sampled_from([math.nan, -1.0, math.inf]),
          back=st.booleans())
    def rejected(self, at, bad, back):
        s = self.spend([1.0] * 4)
        if back and self.t > 0:
            with pytest.raises(InvalidInputError, match="backwards"):
                self.pacer.update(s, self.t / 2)
        else:
            s[at] = bad
            with pytest.raises(InvalidInputError, match=rf"spent\[{at}\]"):
                self.pacer.update(s, self.t)

    @invariant()
    def state_matches_the_oracle(self):
        if not hasattr(self, "pacer"):
            return
        np.testing.assert_allclose(self.pacer.integral, self.ref.I, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(self.pacer.last_update, self.ref.last)
        np.testing.assert_allclose(self.pacer.last_error, self.ref.prev, rtol=1e-12, atol=1e-15)


PIDMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_pid_state_machine = PIDMachine.TestCase
