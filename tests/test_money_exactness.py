"""Exactness of money and seeds: the pacers' hard cap never rounds through, the credit pool never
grants a bid below its resolution, and seeds outside [0, 2**64 - 1] are refused, not wrapped."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore import (
    AdaptivePacer,
    BidLandscape,
    BidShader,
    CreditPool,
    LinearPacer,
    PIDPacer,
    ThompsonSampler,
    ThrottlingPacer,
    TieredPacer,
)
from rtbcore.errors import InvalidInputError


def _clock() -> float:
    return 0.0


def _pacers(budget: float = 1e16):
    """Every pacer, set so that its should_bid is the hard cap alone (no coin below the cap)."""
    return [
        LinearPacer(clock=_clock),
        TieredPacer(clock=_clock),
        ThrottlingPacer(clock=_clock, seed=1),
        PIDPacer(budget, clock=_clock),
        PIDPacer(budget, clock=_clock, output="participation", lo=1.0, base=1.0, hi=1.0),
        AdaptivePacer(budget, np.ones(24), clock=_clock),
    ]


PACER_IDS = ["linear", "tiered", "throttle", "pid", "pid-participation", "adaptive"]


def _should_bid(pacer, spent, budget, cost):
    # elapsed = total: the throttle bids with probability 1 whenever used <= time
    return pacer.should_bid(spent, budget, cost, 86_400.0, 86_400.0)


# ---- the hard cap ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(len(PACER_IDS)), ids=PACER_IDS)
def test_hard_cap_does_not_round_through_at_large_magnitudes(k):
    pacer = _pacers()[k]
    # 1e16 + 1 rounds to 1e16 in float64, yet spending 1 more than the budget must be refused
    assert _should_bid(pacer, 1e16, 1e16, 1.0) is False
    assert _should_bid(pacer, 1e16, 1e16, 0.0) is True
    assert _should_bid(pacer, 1e16 - 2.0, 1e16, 2.0) is True
    assert _should_bid(pacer, 1e16 - 2.0, 1e16, 3.0) is False  # 1e16 + 1 > 1e16


@pytest.mark.parametrize("k", range(len(PACER_IDS)), ids=PACER_IDS)
def test_hard_cap_is_exact_in_array_form(k):
    n = 1030  # past one block of the vectorised kernels, and an odd tail
    budget = np.full(n, 1e16)
    pacer = _pacers(budget)[k]
    cost = np.where(np.arange(n) % 3 == 0, 1.0, 0.0)
    cost[-1] = 1.0
    got = _should_bid(pacer, np.full(n, 1e16), budget, cost)
    np.testing.assert_array_equal(got, cost == 0.0)


def _exact_cap(s: float, b: float, c: float) -> bool:
    return Fraction(s) + Fraction(c) <= Fraction(b)


money = st.one_of(
    st.floats(0.0, 1e300, allow_nan=False, allow_infinity=False),
    st.floats(0.0, 1e-300, allow_nan=False),
    st.integers(0, 2**53).map(float),
)


@settings(max_examples=400, deadline=None)
@given(s=money, c=money, delta=st.integers(-3, 3))
def test_hard_cap_equals_the_exact_sum_comparison(s, c, delta):
    # budgets at and next to the rounded sum: where a rounded comparison would go wrong
    b = s + c
    for _ in range(abs(delta)):
        b = math.nextafter(b, math.inf if delta > 0 else 0.0)
    if not math.isfinite(b):
        return
    want = _exact_cap(s, b, c)
    p = LinearPacer(clock=_clock)
    assert p.should_bid(s, b, c) is want
    assert p.should_bid(np.full(9, s), np.full(9, b), np.full(9, c)).tolist() == [want] * 9
    assert p.should_bid(np.full(9, s), b, c).tolist() == [want] * 9  # the generic loop
    thr = ThrottlingPacer(clock=_clock)
    assert thr.should_bid(s, b, c, 86_400.0) is want
    assert thr.should_bid(np.full(9, s), np.full(9, b), np.full(9, c), 86_400.0).tolist() == (
        [want] * 9)


def test_a_sum_that_overflows_is_refused():
    p = LinearPacer(clock=_clock)
    big = 1.7e308
    assert p.should_bid(big, big, big) is False
    assert p.should_bid(np.full(9, big), big, big).tolist() == [False] * 9


@pytest.mark.parametrize("k", range(len(PACER_IDS)), ids=PACER_IDS)
@pytest.mark.parametrize(
    "arg, value",
    [("spent", 2**53 + 1), ("budget", 10**17), ("cost", -(2**53) - 1),
     ("spent", np.array([1, 2**62])), ("cost", [0, 2**64 - 1])],
)
def test_integers_float64_cannot_hold_are_refused(k, arg, value):
    pacer = _pacers()[k]
    args = dict(spent=1.0, budget=1e16, cost=1.0)
    args[arg] = value
    with pytest.raises(InvalidInputError, match=rf"{arg}.*2\*\*53"):
        _should_bid(pacer, args["spent"], args["budget"], args["cost"])


@pytest.mark.parametrize("k", range(len(PACER_IDS)), ids=PACER_IDS)
def test_integers_up_to_2_53_are_exact_and_accepted(k):
    pacer = _pacers(2.0**53)[k]
    assert _should_bid(pacer, 2**53 - 1, 2**53, 1) is True
    assert _should_bid(pacer, 2**53, 2**53, 1) is False
    assert _should_bid(pacer, 2**53 - 2, 2**53, 3) is False


# ---- the credit pool's resolution ------------------------------------------------------------


def test_a_block_of_bids_below_the_resolution_is_refused_not_granted_free():
    pool = CreditPool(1, 1, clock=_clock)
    with pytest.raises(InvalidInputError, match=r"costs\[0\] = 4e-07 is below .*resolution"):
        pool.try_bid_block(np.full(2_000_000, 4e-7))
    assert pool.credits == 1.0 and pool.stats()["granted"] == 0


def test_a_cost_below_the_resolution_later_in_the_block_refuses_the_whole_block():
    pool = CreditPool(1, 1, clock=_clock)
    costs = np.full(10, 0.1)
    costs[7] = 5e-7
    with pytest.raises(InvalidInputError, match=r"costs\[7\]"):
        pool.try_bid_block(costs)
    assert pool.credits == 1.0


@pytest.mark.parametrize("arg", ["initial", "cap", "bid_cost", "win_credit", "loss_credit", "bump"])
@pytest.mark.parametrize("amount", [1e-7, 5e-7, 9.99e-7, 5e-324])
def test_constructor_amounts_below_the_resolution_are_refused(arg, amount):
    kw = dict(initial=1, cap=1, clock=_clock)
    if arg == "initial":
        kw["initial"] = amount
    else:
        kw[arg] = amount
    with pytest.raises(InvalidInputError, match=rf"{arg} = .* below the pool's resolution"):
        CreditPool(**kw)


def test_the_resolution_itself_is_charged_exactly():
    pool = CreditPool(1, 1, bid_cost=1e-6, win_credit=1e-6, clock=_clock)
    assert pool.bid_cost == 1e-6 and pool.win_credit == 1e-6
    assert pool.try_bids(2_000_000) == 1_000_000  # one micro-credit each, not free
    assert pool.credits == 0.0
    pool.record_win(3)
    assert pool.credits == 3e-6
    mask = pool.try_bid_block(np.array([1e-6, 0.0, 1e-6, 1e-6, 1e-6]))
    assert mask.tolist() == [True, True, True, True, False]  # a zero cost is a free bid by design
    assert pool.credits == 0.0


def test_huge_amounts_are_exact_at_the_top_of_the_range():
    top = 9e12
    pool = CreditPool(top, top, bid_cost=top, win_credit=top, clock=_clock)
    assert pool.credits == top and pool.bid_cost == top
    assert pool.try_bid() is True and pool.credits == 0.0
    assert pool.try_bid() is False
    pool.record_win(2)  # the second win saturates at the cap and is counted as discarded
    assert pool.credits == top and pool.stats()["discarded"] == top
    # 4499999999999 * 1e6 is not a double: a float product would be off by hundreds of units
    mask = pool.try_bid_block(np.array([4.5e12, 4499999999999.0, 0.5, 0.5, 1e-6]))
    assert mask.tolist() == [True, True, True, True, False] and pool.credits == 0.0
    pool.record_win(1)
    assert pool.try_bid_block(np.array([top - 2**-9, 2**-9, 1e-6])).tolist() == [True, True, False]
    with pytest.raises(InvalidInputError, match="too large"):
        CreditPool(9.000001e12, 9.000001e12)
    with pytest.raises(InvalidInputError, match=r"costs\[0\] is too large"):
        pool.try_bid_block(np.array([9.000001e12]))


@pytest.mark.parametrize(
    "amount, units",
    [
        (0.1, 100_000), (1e-6, 1), (1.0000005e-6, 1), (1.5e-6, 2), (2.5e-6, 3),
        (123.456789, 123_456_789), (4499999999999.0, 4_499_999_999_999_000_000),
        (8_999_999_999_999.998, None),
    ],
)
def test_amounts_are_rounded_once_to_the_nearest_micro_credit(amount, units):
    if units is None:  # the exact nearest unit of the double
        units = round(Fraction(amount) * 10**6)
    pool = CreditPool(9e12, 9e12, bid_cost=amount, clock=_clock)
    granted = min(2**62, 9 * 10**18 // units)
    assert pool.try_bids(2**62) == granted  # the pool's whole-unit accounting
    assert pool.credits == (9 * 10**18 - granted * units) / 1e6


# ---- seeds -----------------------------------------------------------------------------------

SEEDED = [
    ("ThrottlingPacer", lambda seed: ThrottlingPacer(clock=_clock, seed=seed)),
    ("PIDPacer", lambda seed: PIDPacer(1.0, clock=_clock, seed=seed)),
    ("AdaptivePacer", lambda seed: AdaptivePacer(1.0, np.ones(24), clock=_clock, seed=seed)),
    ("BidShader", lambda seed: BidShader(BidLandscape(), seed=seed)),
    ("ThompsonSampler", lambda seed: ThompsonSampler(2, seed=seed)),
]


@pytest.mark.parametrize("make", [m for _, m in SEEDED], ids=[n for n, _ in SEEDED])
@pytest.mark.parametrize("seed", [2**64 + 5, 2**64, -1, -(2**64) + 5, 1.0, True, "5"])
def test_seeds_outside_the_64_bit_range_are_refused_not_wrapped(make, seed):
    with pytest.raises(InvalidInputError, match="seed"):
        make(seed)


@pytest.mark.parametrize("make", [m for _, m in SEEDED], ids=[n for n, _ in SEEDED])
@pytest.mark.parametrize("seed", [0, 5, 2**64 - 1, np.uint64(2**64 - 1)])
def test_seeds_in_the_64_bit_range_are_accepted(make, seed):
    make(seed)


def test_the_throttle_seed_is_the_rng_state():
    assert ThrottlingPacer(clock=_clock, seed=2**64 - 1).rng_state == 2**64 - 1
    assert ThrottlingPacer(clock=_clock, seed=5).rng_state == 5


def _nearest_unit(x: float) -> int:
    t = Fraction(x) * 10**6
    return math.floor(t + Fraction(1, 2))  # the nearest micro-credit, ties up


@settings(max_examples=500, deadline=None)
@given(x=st.one_of(
    st.floats(1e-6, 9e12),
    st.integers(1, 10**7).map(lambda k: (k + 0.5) / 1e6),  # next to a half unit
    st.integers(1, 9 * 10**12).map(float),
))
def test_every_amount_is_the_exact_nearest_micro_credit(x):
    units = _nearest_unit(x)
    pool = CreditPool(9e12, 9e12, bid_cost=x, clock=_clock)
    granted = min(2**62, 9 * 10**18 // units)
    assert pool.try_bids(2**62) == granted
    block = CreditPool(x, x, clock=_clock)  # the block path converts the same way
    assert block.try_bid_block(np.array([x, 0.0, x])).tolist() == [True, True, False]
    assert block.credits == 0.0


def test_a_long_block_grants_exactly_what_the_exact_model_grants():
    # past several 256-cost chunks, with half-unit ties, huge costs, zeros and the resolution
    rng = np.random.default_rng(5)
    n = 3001
    kinds = rng.integers(0, 4, n)
    costs = np.where(kinds == 0, rng.uniform(0.5, 1.5, n),
             np.where(kinds == 1, (rng.integers(1, 2_000_000, n) + 0.5) / 1e6,
             np.where(kinds == 2, rng.uniform(1e9, 1e10, n), 0.0)))
    costs[::97] = 1e-6
    initial = float(costs.sum() / 2)
    pool = CreditPool(initial, initial, clock=_clock)
    mask = pool.try_bid_block(costs)
    left, want = _nearest_unit(initial), []
    for x in costs:
        u = _nearest_unit(float(x))
        want.append(left >= u)
        left -= u if left >= u else 0
    assert mask.tolist() == want
    assert pool.stats()["granted"] == sum(want)
