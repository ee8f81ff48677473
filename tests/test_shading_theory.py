"""Validation against first-price auction theory (N = 5, symmetric equilibrium, seeded).

Four rivals with values uniform on [0, 1] bid 0.8 * value, so the highest competing bid D has
P(D < b) = (b / 0.8) ** 4. Our best response to a value v in [0, 1] is b = 0.8 v with expected
surplus v ** 5 / 5; bidding our value (truthfully) earns exactly 0. Each landscape learns from
10k simulated auctions in which our own bids are spread uniformly over [0, 1].
"""

from __future__ import annotations

import numpy as np
import pytest

from rtbcore.shading import BidLandscape
from rtbcore.sim.shading import (
    equilibrium_surplus,
    optimal_equilibrium_bid,
    simulate_first_price,
)

N = 5
VALUES = np.linspace(0.3, 0.9, 61)
OPTIMUM = equilibrium_surplus(VALUES, optimal_equilibrium_bid(VALUES, N), N)
SEEDS = (1, 2, 3)


def learned(estimator, report, seed, n=10_000):
    out = simulate_first_price(
        lambda rng, k: rng.random(k), n, N, report_min_to_win=report, seed=seed
    )
    land = BidLandscape(estimator=estimator)
    land.observe(out.bids, out.won, out.price, out.min_to_win)
    return land


def surplus_share(land):
    """Expected surplus of the landscape's bids over values in [0.3, 0.9], as a share of the
    optimum's (both under the true competing-bid distribution)."""
    return equilibrium_surplus(VALUES, land.optimal_bid(VALUES), N).mean() / OPTIMUM.mean()


def test_the_analytic_optimum_is_the_optimum():
    grid = np.linspace(0, 1, 100_001)
    for v in (0.3, 0.55, 0.9):
        brute = equilibrium_surplus(np.full_like(grid, v), grid, N).max()
        assert abs(brute - v**N / N) < 1e-9
        assert (
            abs(grid[equilibrium_surplus(np.full_like(grid, v), grid, N).argmax()] - 0.8 * v) < 1e-4
        )


def test_truthful_bidding_captures_nothing():
    v = np.random.default_rng(0).random(10_000)
    out = simulate_first_price(v, seed=0)  # bid = value
    assert out.won.mean() > 0.15  # it wins often ...
    assert np.where(out.won, v - out.price, 0.0).sum() == 0.0  # ... and gains nothing
    assert equilibrium_surplus(VALUES, VALUES, N).max() == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_min_to_win_feedback_bids_within_3pct_and_97pct_of_surplus(seed):
    land = learned("empirical", "losses", seed)
    rel = land.optimal_bid(VALUES) / optimal_equilibrium_bid(VALUES, N) - 1.0
    # P(win) at the optimum is (v) ** 4: 0.8% at v = 0.3, so the lowest values see little data;
    # every bid for v >= 0.5 and the average over [0.3, 0.9] are within 3%
    assert np.abs(rel[VALUES >= 0.5 - 1e-9]).max() <= 0.03
    assert np.abs(rel).mean() <= 0.03
    assert surplus_share(land) >= 0.97
    # per value too, where the bids are within 3% (at v = 0.3 it can drop to ~90%)
    got = equilibrium_surplus(VALUES, land.optimal_bid(VALUES), N)
    assert (got / OPTIMUM)[VALUES >= 0.5 - 1e-9].min() >= 0.97


@pytest.mark.parametrize("seed", SEEDS)
def test_win_loss_alone_captures_90pct(seed):
    land = learned("empirical", "never", seed)
    assert surplus_share(land) >= 0.90


def test_naive_loss_ignoring_landscape_does_worse():
    gap = []
    for report in ("losses", "never"):
        for seed in SEEDS:
            good = surplus_share(learned("empirical", report, seed))
            naive = surplus_share(learned("naive", report, seed))
            gap.append(good - naive)
    gap = np.array(gap)
    assert (gap > 0).all()
    assert gap.mean() > 0.01  # a percentage point or more of the optimum, every seed positive


def test_lognormal_fit_is_a_usable_but_misspecified_landscape():
    # D here is 0.8 * (max of 4 uniforms), not log-normal: the fit still captures most of the
    # surplus, less than the empirical estimator.
    for report in ("losses", "never"):
        ln = surplus_share(learned("lognormal", report, 1))
        emp = surplus_share(learned("empirical", report, 1))
        assert 0.9 <= ln < emp
