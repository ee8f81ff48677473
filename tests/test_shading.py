"""BidLandscape, BidShader and ThompsonSampler: unit tests, oracles, properties and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtbcore.errors import InvalidInputError
from rtbcore.shading import BidLandscape, BidShader, ThompsonSampler
from rtbcore.sim.shading import (
    equilibrium_surplus,
    optimal_equilibrium_bid,
    simulate_first_price,
)

# -- a pure-Python oracle of what observe() records ------------------------------------------


def reference_counts(max_bid, bins, bids, won, price=None, mtw=None):
    """Per observation, the censoring rules of rtbcore.shading written out plainly."""
    K, h = bins, max_bid / bins
    ex, lf, rt, nv = [0.0] * (K + 1), [0.0] * (K + 2), [0.0] * (K + 1), [0.0] * (K + 1)

    def xbin(d):
        return K if d >= max_bid else min(int(d / h), K - 1)

    for k, b in enumerate(bids):
        p = price[k] if price is not None else math.nan
        m = mtw[k] if mtw is not None else math.nan
        paid = b if math.isnan(p) else p
        if won[k]:
            nv[xbin(paid)] += 1
        if not math.isnan(m):
            ex[xbin(m)] += 1
        elif won[k] and paid < b:
            ex[xbin(paid)] += 1
        elif won[k]:
            lf[K + 1 if b > max_bid else min(max(1, math.floor(b / h + 0.5)), K)] += 1
        else:
            rt[K if b >= max_bid else min(math.floor(b / h + 0.5), K)] += 1
    return {"exact": ex, "left": lf, "right": rt, "naive": nv}


@st.composite
def outcomes(draw, max_n=60):
    """Valid (bids, won, price, min_to_win) blocks, with every kind of feedback mixed in."""
    n = draw(st.integers(0, max_n))
    money = st.floats(0.0, 1.5, allow_nan=False)
    bids = np.array(draw(st.lists(money, min_size=n, max_size=n)))
    won = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    kind = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    frac = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    price = np.full(n, np.nan)
    mtw = np.full(n, np.nan)
    for k in range(n):
        if won[k] and kind[k] == 1:
            price[k] = bids[k]
        elif won[k] and kind[k] == 2:
            price[k] = bids[k] * frac[k]
        elif kind[k] == 3:
            mtw[k] = bids[k] * frac[k] if won[k] else bids[k] + frac[k]
    return bids, won, price, mtw


@settings(max_examples=150, deadline=None)
@given(outcomes(), st.sampled_from([(1.0, 8), (1.0, 256), (2.5, 37)]))
def test_observe_matches_reference(data, grid):
    bids, won, price, mtw = data
    max_bid, bins = grid
    land = BidLandscape(max_bid, bins)
    land.observe(bids, won, price, mtw)
    ref = reference_counts(max_bid, bins, bids, won, price, mtw)
    got = land.counts()
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    assert land.n_observations == len(bids)


def test_observe_in_blocks_equals_at_once():
    out = simulate_first_price(lambda r, k: r.random(k), 3000, seed=3)
    a, b = BidLandscape(), BidLandscape()
    a.observe(out.bids, out.won, out.price, out.min_to_win)
    for s in range(0, 3000, 700):
        sl = slice(s, s + 700)
        b.observe(out.bids[sl], out.won[sl], out.price[sl], out.min_to_win[sl])
    np.testing.assert_array_equal(a.cdf(), b.cdf())
    np.testing.assert_array_equal(a.optimal_bid([0.2, 0.6]), b.optimal_bid([0.2, 0.6]))


# -- the estimators against oracles ----------------------------------------------------------


def pava(y, w):
    """Weighted isotonic (non-decreasing) regression: pool adjacent violators."""
    blocks = []  # [mean, weight, count]
    for yi, wi in zip(y, w, strict=True):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([[m] * c for m, _, c in blocks])


def test_empirical_from_win_loss_is_the_isotonic_win_rate():
    # Current-status data: the NPMLE of F at the observed bids is the isotonic regression of
    # the win indicator on the bid (Groeneboom & Wellner). Bids sit on grid edges here.
    rng = np.random.default_rng(11)
    bins = 40
    edges = rng.integers(1, bins, 4000)
    bids = edges / bins
    won = rng.random(4000) < np.sqrt(bids)
    land = BidLandscape(1.0, bins, smoothing=0.0, max_iter=200_000, tol=1e-13)
    land.observe(bids, won)
    u = np.unique(edges)
    wins = np.array([won[edges == e].sum() for e in u], dtype=float)
    tot = np.array([(edges == e).sum() for e in u], dtype=float)
    iso = pava(wins / tot, tot)
    np.testing.assert_allclose(land.cdf()[u], iso, atol=2e-3)


def test_empirical_from_exact_only_is_the_empirical_cdf():
    rng = np.random.default_rng(5)
    d = rng.random(5000) ** 2
    land = BidLandscape(1.0, 50, smoothing=0.0)
    # a loss with the minimum bid to win reported: D is known exactly
    land.observe(np.zeros(5000), np.zeros(5000, bool), min_to_win=d)
    hist = np.bincount(np.minimum((d * 50).astype(int), 49), minlength=50)
    np.testing.assert_allclose(land.cdf(), np.concatenate([[0], np.cumsum(hist) / 5000]))


def loglik(land, F):
    """Log-likelihood of the landscape's counts under CDF values F at the edges."""
    c = land.counts()
    cells = {
        "exact": np.diff(np.append(F, 1.0)),  # bin masses, the overflow bin last
        "left": np.append(F, 1.0),  # P(D < e_i); edge K + 1 is "D < inf"
        "right": 1.0 - F,  # P(D >= e_i)
    }
    total = 0.0
    for key, prob in cells.items():
        used = c[key] > 0
        total += float(c[key][used] @ np.log(prob[used]))
    return total


def test_empirical_likelihood_beats_the_truth():
    # The NPMLE maximizes the censored likelihood, so it must score at least the true CDF.
    out = simulate_first_price(lambda r, k: r.random(k), 5000, seed=2)
    land = BidLandscape(1.0, 64, smoothing=0.0, max_iter=100_000, tol=1e-12)
    land.observe(out.bids, out.won, out.price, out.min_to_win)
    truth = np.clip(land.edges / 0.8, 0, 1) ** 4
    truth[-1] = 1.0 - 1e-12
    assert loglik(land, land.cdf()) >= loglik(land, truth)


def test_lognormal_recovers_parameters_from_censored_data():
    rng = np.random.default_rng(9)
    n = 20_000
    d = rng.lognormal(-1.0, 0.4, n)
    bids = rng.random(n)
    won = bids > d
    mtw = np.where(~won & (rng.random(n) < 0.5), d, np.nan)  # half the losses report it
    land = BidLandscape(2.0, 256, "lognormal")
    land.observe(bids, won, min_to_win=mtw)
    land.cdf()
    mu, sigma = land.lognormal_params
    assert abs(mu + 1.0) < 0.03 and abs(sigma - 0.4) < 0.03


def test_naive_landscape_is_biased_and_the_empirical_one_is_not():
    # Win/loss feedback with our bids spread over [0, 1]: the naive landscape takes the prices
    # of won auctions for the competing-bid distribution and says a bid of 0.6 wins ~11% of the
    # time; it really wins (0.6 / 0.8) ** 4 = 32% of the time.
    out = simulate_first_price(lambda r, k: r.random(k), 10_000, report_min_to_win="never", seed=4)
    b = np.linspace(0.2, 0.75, 23)
    truth = np.clip(b / 0.8, 0, 1) ** 4
    err = {}
    for est in ("empirical", "naive"):
        land = BidLandscape(estimator=est)
        land.observe(out.bids, out.won, out.price, out.min_to_win)
        err[est] = land.win_probability(b) - truth
    assert np.abs(err["empirical"]).max() < 0.04
    assert err["naive"].mean() < -0.1  # systematically too pessimistic
    assert (err["naive"] < 0).all()


# -- properties ------------------------------------------------------------------------------


landscapes = st.builds(
    lambda data, est, seed: (data, est, seed),
    outcomes(max_n=80),
    st.sampled_from(["empirical", "lognormal", "naive"]),
    st.integers(0, 3),
)


def fitted(spec):
    (bids, won, price, mtw), est, _ = spec
    land = BidLandscape(1.0, 32, est)
    land.observe(bids, won, price, mtw)
    return land


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(landscapes, st.lists(st.floats(0.0, 3.0), min_size=1, max_size=30))
def test_win_probability_monotone_in_unit_interval(spec, bids):
    land = fitted(spec)
    b = np.sort(np.array(bids))
    p = land.win_probability(b)
    assert ((p >= 0) & (p <= 1)).all()
    assert (np.diff(p) >= -1e-15).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(landscapes, st.lists(st.floats(0.0, 3.0), min_size=1, max_size=20))
def test_optimal_bid_beats_a_fine_grid_and_never_exceeds_value(spec, values):
    land = fitted(spec)
    v = np.array(values)
    b = land.optimal_bid(v)
    assert (b <= v + 1e-12).all() and (b >= 0).all()
    got = land.expected_surplus(v, b)
    for k, vk in enumerate(v):
        grid = np.linspace(0.0, max(vk, 1e-9), 4001)
        brute = land.expected_surplus(np.full_like(grid, vk), grid).max()
        assert got[k] >= brute - 1e-12
    # vectorized == one at a time
    one = np.array([land.optimal_bid([x])[0] for x in v])
    np.testing.assert_array_equal(b, one)


@settings(max_examples=40, deadline=None)
@given(landscapes)
def test_optimal_bid_is_non_decreasing_in_value(spec):
    land = fitted(spec)
    v = np.linspace(0, 2.5, 2001)
    assert (np.diff(land.optimal_bid(v)) >= -1e-12).all()


# -- bad input: clear errors, landscape unchanged --------------------------------------------


def _fresh():
    land = BidLandscape()
    land.observe([0.5, 0.2], [True, False], [0.5, np.nan], [np.nan, 0.3])
    return land


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bids": [0.1, np.nan]}, r"bids\[1\]"),
        ({"bids": [0.1, -0.2]}, r"bids\[1\]"),
        ({"bids": [np.inf, 0.1]}, r"bids\[0\]"),
        ({"price": [0.3, 0.1]}, r"price\[1\].*lost"),
        ({"price": [-0.1, np.nan]}, r"price\[0\]"),
        ({"price": [0.7, np.nan]}, r"price\[0\].*above the bid"),
        ({"min_to_win": [np.nan, 0.1]}, r"min_to_win\[1\].*below the bid"),
        ({"min_to_win": [0.6, np.nan]}, r"min_to_win\[0\].*above the bid"),
        ({"min_to_win": [np.nan, -1.0]}, r"min_to_win\[1\]"),
        ({"won": [True]}, r"won: length 1"),
        ({"won": [2, 0]}, r"won\[0\]"),
        ({"price": [0.5]}, r"price: length 1"),
        ({"min_to_win": np.zeros((2, 2))}, r"min_to_win: expected a 1-D"),
        ({"bids": ["a", "b"]}, r"bids: cannot be read"),
    ],
)
def test_observe_rejects_bad_input_and_changes_nothing(kwargs, match):
    land = _fresh()
    before = land.counts()
    F = land.cdf().copy()
    args = {"bids": [0.5, 0.2], "won": [True, False], "price": None, "min_to_win": None}
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=match):
        land.observe(**args)
    for k, v in land.counts().items():
        np.testing.assert_array_equal(v, before[k])
    np.testing.assert_array_equal(land.cdf(), F)
    assert land.n_observations == 2


def test_bad_values_and_constructor_args():
    land = _fresh()
    with pytest.raises(InvalidInputError, match=r"values\[2\]"):
        land.optimal_bid([0.1, 0.2, np.nan])
    with pytest.raises(InvalidInputError, match=r"values\[0\]"):
        land.optimal_bid([-1.0])
    with pytest.raises(InvalidInputError, match=r"bids\[1\]"):
        land.win_probability([0.1, -0.1])
    for kw, name in [
        ({"max_bid": 0}, "max_bid"),
        ({"max_bid": math.nan}, "max_bid"),
        ({"bins": 1}, "bins"),
        ({"estimator": "kde"}, "estimator"),
        ({"smoothing": -1}, "smoothing"),
    ]:
        with pytest.raises(InvalidInputError, match=name):
            BidLandscape(**kw)


# -- BidShader -------------------------------------------------------------------------------


def _trained():
    land = BidLandscape()
    out = simulate_first_price(lambda r, k: r.random(k), 5000, seed=8)
    land.observe(out.bids, out.won, out.price, out.min_to_win)
    return land


def test_shader_floor_ceiling_and_no_bid():
    land = _trained()
    sh = BidShader(land, floor=0.1, ceiling=0.5, explore=0.0)
    v = np.array([0.05, 0.11, 0.4, 0.9, 1.0])
    b = sh.bid(v)
    assert np.isnan(b[0]) and sh.n_no_bid == 1
    assert (b[1:] >= 0.1).all() and (b[1:] <= 0.5).all() and (b[1:] <= v[1:]).all()
    np.testing.assert_allclose(b[2], land.optimal_bid([0.4])[0])


def test_shader_explores_a_little_and_is_seeded():
    land = _trained()
    v = np.full(20_000, 0.6)
    a = BidShader(land, explore=0.05, seed=1).bid(v)
    b = BidShader(land, explore=0.05, seed=1).bid(v)
    np.testing.assert_array_equal(a, b)
    opt = land.optimal_bid([0.6])[0]
    moved = np.mean(a != opt)
    assert 0.04 < moved < 0.06
    assert (a <= 0.6).all() and (a >= 0.8 * opt - 1e-12).all()


def test_shader_rejects_bad_settings():
    land = _trained()
    with pytest.raises(InvalidInputError, match="explore"):
        BidShader(land, explore=1.5)
    with pytest.raises(InvalidInputError, match="ceiling"):
        BidShader(land, floor=0.5, ceiling=0.2)
    with pytest.raises(InvalidInputError, match="floor"):
        BidShader(land, floor=-1)


# -- ThompsonSampler -------------------------------------------------------------------------


def test_thompson_finds_the_best_creative_and_is_seeded():
    rates = np.array([0.02, 0.05, 0.03])
    ts = ThompsonSampler(3, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        arms = ts.select(100)
        ts.update(arms, (rng.random(100) < rates[arms]).astype(float))
    share = np.bincount(ts.select(10_000), minlength=3) / 10_000
    assert share[1] > 0.8
    a, b = ThompsonSampler(3, seed=4), ThompsonSampler(3, seed=4)
    np.testing.assert_array_equal(a.select(50), b.select(50))


def test_thompson_update_matches_scalar_loop():
    rng = np.random.default_rng(1)
    arms = rng.integers(0, 4, 500)
    r = rng.random(500)
    ts = ThompsonSampler(4, alpha=[1, 2, 3, 4], beta=0.5)
    ts.update(arms, r)
    alpha, beta = np.array([1.0, 2, 3, 4]), np.full(4, 0.5)
    for a, x in zip(arms, r, strict=True):
        alpha[a] += x
        beta[a] += 1 - x
    np.testing.assert_allclose(ts.alpha, alpha)
    np.testing.assert_allclose(ts.beta, beta)


@pytest.mark.parametrize(
    ("arms", "rewards", "match"),
    [
        ([0, 1], [0.5, 1.5], r"rewards\[1\]"),
        ([0, 1], [np.nan, 0.5], r"rewards\[0\]"),
        ([0, 1], [-0.1, 0.5], r"rewards\[0\]"),
        ([0, 3], [0.5, 0.5], r"arms\[1\]"),
        ([0, -1], [0.5, 0.5], r"arms\[1\]"),
        ([0, 1], [0.5], r"rewards: length 1"),
        ([0.5], [0.5], r"arms: expected"),
    ],
)
def test_thompson_rejects_bad_updates_unchanged(arms, rewards, match):
    ts = ThompsonSampler(3, seed=0)
    a0, b0 = ts.alpha.copy(), ts.beta.copy()
    with pytest.raises(InvalidInputError, match=match):
        ts.update(arms, rewards)
    np.testing.assert_array_equal(ts.alpha, a0)
    np.testing.assert_array_equal(ts.beta, b0)


def test_thompson_rejects_bad_priors():
    with pytest.raises(InvalidInputError, match=r"alpha\[1\]"):
        ThompsonSampler(3, alpha=[1.0, 0.0, 1.0])
    with pytest.raises(InvalidInputError, match=r"beta\[0\]"):
        ThompsonSampler(2, beta=np.nan)
    with pytest.raises(InvalidInputError, match="alpha: length"):
        ThompsonSampler(3, alpha=[1.0, 1.0])
    with pytest.raises(InvalidInputError, match="n_arms"):
        ThompsonSampler(0)


# -- the simulator against theory ------------------------------------------------------------


def test_simulator_matches_the_equilibrium_win_rate_and_surplus():
    n = 200_000
    v = np.random.default_rng(1).random(n)
    bids = optimal_equilibrium_bid(v)
    out = simulate_first_price(bids, seed=6)
    realized = np.where(out.won, v - out.price, 0.0)
    expected = equilibrium_surplus(v, bids)  # = v ** 5 / 5
    np.testing.assert_allclose(expected, v**5 / 5, rtol=1e-12)
    se = realized.std() / math.sqrt(n)
    assert abs(realized.mean() - expected.mean()) < 4 * se
    # losses report the competing bid, which is then at least ours
    lost = ~out.won
    assert (out.min_to_win[lost] >= out.bids[lost]).all() and np.isnan(out.min_to_win[~lost]).all()


# -- threads ---------------------------------------------------------------------------------


def test_concurrent_observe_and_queries_lose_nothing():
    from concurrent.futures import ThreadPoolExecutor

    out = simulate_first_price(lambda r, k: r.random(k), 20_000, seed=12)
    blocks = [slice(s, s + 500) for s in range(0, 20_000, 500)]
    shared = BidLandscape()

    def work(sl):
        shared.observe(out.bids[sl], out.won[sl], out.price[sl], out.min_to_win[sl])
        b = shared.optimal_bid(np.linspace(0, 1, 101))  # queries race with refits
        assert (np.diff(b) >= -1e-12).all() and (b <= np.linspace(0, 1, 101) + 1e-12).all()

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(work, blocks * 3))
    one = BidLandscape()
    for _ in range(3):
        one.observe(out.bids, out.won, out.price, out.min_to_win)
    for key, v in one.counts().items():
        np.testing.assert_array_equal(shared.counts()[key], v, err_msg=key)
    assert shared.n_observations == one.n_observations == 60_000
    np.testing.assert_allclose(shared.cdf(), one.cdf())


def test_concurrent_thompson_updates_lose_nothing():
    from concurrent.futures import ThreadPoolExecutor

    ts = ThompsonSampler(5, seed=1)
    arms = np.arange(1000) % 5

    def work(_):
        ts.update(arms, np.full(1000, 0.25))
        ts.select(100)

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(work, range(40)))
    np.testing.assert_allclose(ts.alpha, 1 + 40 * 200 * 0.25)
    np.testing.assert_allclose(ts.beta, 1 + 40 * 200 * 0.75)


def test_empty_blocks_and_extreme_values():
    land = BidLandscape()
    land.observe([], [])
    assert land.n_observations == 0
    assert land.optimal_bid([]).shape == (0,)
    # wins above max_bid say nothing, losses there put D in the overflow bin
    land.observe([1e300, 0.0, 2.0], [True, True, False])
    c = land.counts()
    assert c["left"][257] == 1 and c["left"][1] == 1 and c["right"][256] == 1
    b = land.optimal_bid([0.0, 0.5, 5.0, 1e300])
    assert b[0] == 0.0 and (b <= land.max_bid).all() and (b >= 0).all()
    ts = ThompsonSampler(3)
    ts.update([], [])
    np.testing.assert_array_equal(ts.alpha, np.ones(3))


@settings(max_examples=40, deadline=None)
@given(outcomes(max_n=40))
def test_empirical_fit_satisfies_the_npmle_optimality_conditions(data):
    # For the NPMLE on the grid, with each observation a set of bins and P(set) its mass,
    # d_j = sum over observations of 1[j in set] / P(set) is <= n for every bin, with equality
    # where the mass is positive (Turnbull 1976; the KKT conditions of the concave likelihood).
    bids, won, price, mtw = data
    land = BidLandscape(1.0, 16, smoothing=0.0, max_iter=200_000, tol=1e-13)
    land.observe(bids, won, price, mtw)
    c = land.counts()
    sets = []  # (weight, boolean membership over the 17 bins)
    idx = np.arange(17)
    sets += [(w, idx == j) for j, w in enumerate(c["exact"]) if w]
    sets += [(w, idx < i) for i, w in enumerate(c["left"]) if w]
    sets += [(w, idx >= i) for i, w in enumerate(c["right"]) if w]
    n = sum(w for w, _ in sets)
    if n == 0:
        return
    p = np.diff(np.append(land.cdf(), 1.0))
    d = sum(w * m / p[m].sum() for w, m in sets)
    assert (d <= n * (1 + 1e-3) + 1e-9).all()
    assert (np.abs(d - n)[p > 1e-3] <= n * 1e-3 + 1e-9).all()


@settings(max_examples=80, deadline=None)
@given(
    outcomes(max_n=30).filter(lambda d: len(d[0]) > 0),
    st.sampled_from(["bids", "price", "min_to_win"]),
    st.sampled_from([np.nan, -0.5, np.inf, -np.inf]),
    st.data(),
)
def test_any_bad_value_is_named_and_nothing_recorded(data, field, bad, draw):
    bids, won, price, mtw = (x.copy() for x in data)
    arr = {"bids": bids, "price": price, "min_to_win": mtw}[field]
    if field != "bids" and np.isnan(bad):
        return  # NaN means "unknown" there
    k = draw.draw(st.integers(0, len(bids) - 1))
    arr[k] = bad
    land = _fresh()
    before = land.counts()
    with pytest.raises(InvalidInputError, match=rf"{field}\[{k}\]"):
        land.observe(bids, won, price, mtw)
    for key, v in land.counts().items():
        np.testing.assert_array_equal(v, before[key])
