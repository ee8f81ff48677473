"""Bid adjustment strategies: bounds never exceeded, updates at most every `frequency`, each
strategy moving bids in its stated direction, and composition with the shader and the pacer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore import (
    BidAdjuster,
    BidLandscape,
    BidShader,
    InvalidInputError,
    LinearPacer,
    simulate_first_price,
)

PARAMS = {
    "time": {"window": 100.0},
    "competition": {"elasticity": 1.5},
    "performance": {"target_rate": 0.02, "elasticity": 1.0},
    "budget": {"elasticity": 2.0},
}


def signal_strategy(strategy):
    if strategy == "performance":
        return st.floats(0, 1)
    return st.sampled_from([0.0, 1.0]) | st.floats(0, 1e3)


@pytest.mark.parametrize("strategy", list(PARAMS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_bounds_and_frequency_hold_for_any_sequence(strategy, data):
    hi = data.draw(st.floats(1.0, 3.0))
    lo = data.draw(st.floats(0.05, 1.0))
    freq = data.draw(st.sampled_from([0.0, 10.0, 60.0]))
    n = 3
    adj = BidAdjuster(strategy, n, max_increase=hi, min_decrease=lo, frequency=freq,
                      **PARAMS[strategy])
    now = 0.0
    last = np.full(n, -np.inf)
    held = np.ones(n)
    for _ in range(data.draw(st.integers(1, 12))):
        now += data.draw(st.sampled_from([0.0, 5.0, 10.0, 61.0]))
        bids = np.array(data.draw(st.lists(st.floats(0, 100), min_size=n, max_size=n)))
        sig = np.array(data.draw(st.lists(signal_strategy(strategy), min_size=n, max_size=n)))
        out = adj.adjust(bids, sig, now)
        m = adj.multiplier
        assert np.all(m <= hi) and np.all(m >= lo)
        assert np.all(out <= bids * hi * (1 + 1e-15)) and np.all(out >= bids * lo * (1 - 1e-15))
        due = now - last >= freq
        # a multiplier changes only when it is due
        assert np.all(m[~due] == held[~due])
        assert np.array_equal(adj.last_update[due], np.full(due.sum(), now))
        last = np.where(due, now, last)
        held = m
        np.testing.assert_array_equal(out, bids * m)


def fresh(strategy, signal, **kw):
    adj = BidAdjuster(strategy, 1, frequency=0.0, **{**PARAMS[strategy], **kw})
    return float(adj.adjust([1.0], signal, 0.0)[0])


def test_time_raises_bids_as_the_deadline_approaches():
    left = [1000.0, 100.0, 75.0, 50.0, 25.0, 0.0]
    m = [fresh("time", s) for s in left]
    assert m[0] == m[1] == 1.0 and m[-1] == 1.5
    assert all(a < b for a, b in zip(m[1:], m[2:], strict=False))


def test_competition_raises_bids_when_competition_is_heavier():
    m = [fresh("competition", s) for s in (0.5, 0.8, 1.0, 1.1, 1.2)]
    assert m[2] == 1.0 and all(a < b for a, b in zip(m, m[1:], strict=False))
    assert fresh("competition", 10.0) == 1.5 and fresh("competition", 0.0) == 0.7


def test_performance_raises_bids_where_traffic_converts():
    m = [fresh("performance", s) for s in (0.015, 0.018, 0.02, 0.025, 0.028)]
    assert m[2] == 1.0 and all(a < b for a, b in zip(m, m[1:], strict=False))


def test_budget_lowers_bids_ahead_of_pace_and_raises_them_behind():
    m = [fresh("budget", s) for s in (0.8, 0.9, 1.0, 1.1, 1.2)]
    assert m[2] == 1.0 and all(a > b for a, b in zip(m, m[1:], strict=False))
    assert fresh("budget", 0.0) == 1.5


def test_composes_with_the_shader_and_the_pacer():
    # value -> shaded bid -> adjusted bid -> pacer multiplier, each stage a numpy array op
    # a shader that learned rivals bidding 0.8 x a U[0, 1] value (4 of them): best bid 0.8 v
    out = simulate_first_price(lambda rng, n: rng.random(n), 10_000, seed=1)
    land = BidLandscape(max_bid=1.0)
    land.observe(out.bids, out.won, price=out.price, min_to_win=out.min_to_win)
    shader = BidShader(land, explore=0.0, seed=7)
    values = np.array([0.3, 0.6, 0.9])
    shaded = shader.bid(values)
    assert np.allclose(shaded, 0.8 * values, atol=0.03)
    pacer = LinearPacer(total=100.0)
    spent, budget = np.array([10.0, 50.0, 90.0]), np.full(3, 100.0)
    ratio = spent / (budget * 50.0 / 100.0)             # what the pacer compares
    adj = BidAdjuster("budget", 3, frequency=0.0)
    bids = adj.adjust(shaded, ratio, now=50.0) * pacer.multiplier(spent, budget, 50.0)
    assert np.all(bids <= shaded * 1.5 * 1.2) and np.all(bids >= shaded * 0.7 * 0.8)
    lift = bids / shaded
    assert lift[0] > lift[1] > lift[2]                  # behind pace bids more than ahead


def test_bad_input_changes_nothing():
    adj = BidAdjuster("competition", 2, frequency=10.0)
    adj.adjust([1.0, 1.0], [1.2, 0.9], 100.0)
    before = adj.multiplier, adj.last_update
    for args, msg in (
        (([1.0, -1.0], 1.0, 200.0), r"^bids\[1\] = -1.0"),
        (([1.0, np.inf], 1.0, 200.0), r"^bids\[1\] = inf"),
        (([1.0, 1.0], [1.0, np.nan], 200.0), r"^signal\[1\] = nan"),
        (([1.0, 1.0], -1.0, 200.0), r"^signal = -1.0"),
        (([1.0, 1.0], 1.0, 50.0), "^now = 50.0: earlier than campaign 0"),
        (([1.0], 1.0, 200.0), "^bids"),
        (([1.0, 1.0], "1", 200.0), "^signal"),
    ):
        with pytest.raises(InvalidInputError, match=msg):
            adj.adjust(*args)
    assert np.array_equal(adj.multiplier, before[0])
    assert np.array_equal(adj.last_update, before[1])
    with pytest.raises(InvalidInputError, match=r"^signal\[0\] = 1.5"):
        BidAdjuster("performance", 1, target_rate=0.1).adjust([1.0], [1.5], 0.0)


@pytest.mark.parametrize(
    "args, kw, msg",
    [
        (("fast",), {}, "^strategy"),
        (("time", 0), {}, "^campaigns"),
        (("time",), {"max_increase": 0.9}, "^max_increase"),
        (("time",), {"min_decrease": 0.0}, "^min_decrease"),
        (("time",), {"min_decrease": 1.1}, "^min_decrease"),
        (("time",), {"frequency": -1.0}, "^frequency"),
        (("time",), {"window": 0.0}, "^window"),
        (("time",), {"elasticity": 1.0}, "^elasticity: not a parameter"),
        (("performance",), {}, "^target_rate: required"),
        (("budget",), {"elasticity": np.inf}, "^elasticity"),
    ],
)
def test_bad_parameters(args, kw, msg):
    with pytest.raises(InvalidInputError, match=msg):
        BidAdjuster(*args, **kw)
