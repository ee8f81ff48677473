"""BidShader's request path: bids come from the published fit and never fit; refits are amortised
over observe batches (or run on a background thread, or only when asked); the auction type."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore import BidLandscape, BidShader
from rtbcore.errors import InvalidInputError
from rtbcore.sim.shading import simulate_first_price


@pytest.fixture(scope="module")
def stream():
    return simulate_first_price(lambda r, k: r.random(k), 60_000, seed=11)


def _feed(land_or_shader, o, lo, hi):
    land_or_shader.observe(o.bids[lo:hi], o.won[lo:hi], o.price[lo:hi], o.min_to_win[lo:hi])


def test_bid_never_fits(stream, monkeypatch):
    land = BidLandscape(refit="manual")
    _feed(land, stream, 0, 5000)
    sh = BidShader(land, explore=0.0, seed=1)  # building the shader fits what is known
    assert land.fitted_observations == 5000
    before = sh.bid(np.array([0.3, 0.7]))

    def no_fit(*a, **k):
        raise AssertionError("a bid ran a fit")

    monkeypatch.setattr(BidLandscape, "_compute_fit", no_fit)
    _feed(sh, stream, 5000, 20_000)
    # the new observations are not in the published fit: the bids are the old fit's
    np.testing.assert_array_equal(sh.bid(np.array([0.3, 0.7])), before)
    assert sh.bid(0.7) == before[1]
    monkeypatch.undo()
    sh.refit()
    assert land.fitted_observations == 20_000
    np.testing.assert_array_equal(sh.bid(np.array([0.3, 0.7])), land.optimal_bid([0.3, 0.7]))


def test_observe_refits_on_an_amortised_schedule(stream, monkeypatch):
    land = BidLandscape(refit_growth=0.25, refit_min=1000)
    sh = BidShader(land, explore=0.0)
    fits = []
    real = BidLandscape._compute_fit

    def counting(self, counts, n, warm):
        fits.append((n, warm is None))
        return real(self, counts, n, warm)

    monkeypatch.setattr(BidLandscape, "_compute_fit", counting)
    for k in range(0, 60_000, 500):
        _feed(sh, stream, k, k + 500)
        # what the bids use never lags by more than the schedule allows
        pub = land.fitted_observations
        assert land.n_observations - pub < max(1000, 0.25 * pub) + 500
    # geometric: a refit per >= 25% growth (and per 1000 observations at least), not per batch
    assert 10 <= len(fits) <= 25, fits
    assert [n for n, full in fits if full] == [1000]  # one full fit, then warm-started ones


def test_amortised_fit_tracks_the_full_fit(stream):
    land = BidLandscape()
    sh = BidShader(land, explore=0.0)
    for k in range(0, 60_000, 1000):
        _feed(sh, stream, k, k + 1000)
    v = np.linspace(0.2, 1.0, 9)
    amortised = sh.bid(v)
    full = land.optimal_bid(v)  # a query fits every observation in full
    assert land.fitted_observations == 60_000
    np.testing.assert_allclose(amortised, full, atol=0.01)


def test_background_refit_publishes_without_the_caller(stream):
    land = BidLandscape(refit="background", refit_min=1000)
    sh = BidShader(land, explore=0.0)
    _feed(sh, stream, 0, 8000)
    deadline = time.monotonic() + 10.0
    while land.fitted_observations < 8000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert land.fitted_observations == 8000
    assert abs(sh.bid(0.8) - 0.64) < 0.03


def test_bids_and_observations_from_threads(stream):
    land = BidLandscape(refit="background")
    sh = BidShader(land, explore=0.1, seed=3)
    errors: list[BaseException] = []
    stop = threading.Event()

    def bidder():
        v = np.random.default_rng(1).random(1000)
        try:
            while not stop.is_set():
                b = sh.bid(v)
                assert ((b <= v) | np.isnan(b)).all()
                assert sh.bid(0.5) <= 0.5
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=bidder) for _ in range(2)]
    for t in threads:
        t.start()
    for k in range(0, 30_000, 1000):
        _feed(sh, stream, k, k + 1000)
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors
    assert land.n_observations == 30_000


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=40),
    seed=st.integers(0, 2**64 - 1),
    floor=st.floats(0.0, 0.3),
)
def test_an_array_call_is_the_scalar_calls_in_turn(values, seed, floor):
    land = BidLandscape(max_bid=2.0)
    o = simulate_first_price(lambda r, k: r.random(k), 2000, seed=5)
    land.observe(o.bids, o.won, o.price, o.min_to_win)
    a = BidShader(land, floor=floor, explore=0.5, seed=seed)
    b = BidShader(land, floor=floor, explore=0.5, seed=seed)
    arr = a.bid(np.array(values))
    one = np.array([b.bid(v) for v in values])
    np.testing.assert_array_equal(arr, one)
    assert (a.n_explored, a.n_no_bid, a.rng_state) == (b.n_explored, b.n_no_bid, b.rng_state)
    assert isinstance(b.bid(values[0]), float)


def test_scalar_bid_rejects_bad_values_and_draws_nothing(stream):
    land = BidLandscape()
    sh = BidShader(land, seed=1)
    state = sh.rng_state
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(InvalidInputError, match="values"):
            sh.bid(bad)
    with pytest.raises(InvalidInputError, match=r"values\[1\]"):
        sh.bid([0.5, -1.0])
    assert sh.rng_state == state and sh.n_explored == 0


@pytest.mark.parametrize("mechanism", ["second_price", "gsp", "vcg"])
def test_no_shading_where_the_winner_pays_the_competition(stream, mechanism):
    land = BidLandscape()
    _feed(land, stream, 0, 5000)
    sh = BidShader(land, floor=0.1, ceiling=0.9, explore=0.5, seed=1, mechanism=mechanism)
    v = np.array([0.05, 0.3, 0.6, 1.2])
    b = sh.bid(v)
    assert np.isnan(b[0])
    np.testing.assert_array_equal(b[1:], [0.3, 0.6, 0.9])  # the value, clipped; no exploration
    assert sh.n_explored == 0 and sh.mechanism == mechanism
    first = BidShader(land, explore=0.0, mechanism="first_price")
    assert first.bid(0.6) < 0.55  # the first-price shader shades the same value


def test_bad_mechanism_and_refit_settings_are_named():
    land = BidLandscape()
    with pytest.raises(InvalidInputError, match="mechanism"):
        BidShader(land, mechanism="english")
    for kw, name in [({"refit": "often"}, "refit"), ({"refit_growth": -1}, "refit_growth"),
                     ({"refit_min": 0}, "refit_min")]:  # fmt: skip
        with pytest.raises(InvalidInputError, match=name):
            BidLandscape(**kw)
