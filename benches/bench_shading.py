"""Bid shading speed: optimal_bid, observe and the landscape refit, each beside a numpy baseline.

* optimal_bid: 1M values against a fitted 256-bin landscape. Baseline: the natural numpy grid
  search, argmax over the 257 grid edges of (v - e) * F(e), in chunks of 10k values; it runs on a
  200k slice of the same values and is compared per value.
* observe: 1M outcomes with mixed feedback (wins, losses, min-to-win on losses). Baseline: the
  same validation and binning written with numpy masks and np.bincount (checked equal first).
* EM iteration: Turnbull's EM step on the 257 bins, the Cython kernel vs the same step
  vectorized with numpy cumsums (5000 vs 500 iterations, compared per iteration; checked equal).
* refit: a whole ``BidLandscape.refit()`` on 10k win/loss outcomes (isotonic start, EM to
  tolerance, smoothing, argmax table) vs the plain numpy EM from a uniform start for 20k
  iterations, which is still ~1e-3 from the NPMLE where the refit is ~1e-5 (algorithm and
  implementation together, one refit per item).
"""

from __future__ import annotations

import numpy as np
import pytest

from rtbcore.shading import BidLandscape
from rtbcore.sim.shading import simulate_first_price

N_OBS = 1_000_000
N_VALUES = 1_000_000


@pytest.fixture(scope="module")
def outcomes():
    return simulate_first_price(lambda r, k: r.random(k), N_OBS, seed=1)


@pytest.fixture(scope="module")
def fitted(outcomes):
    land = BidLandscape()
    land.observe(outcomes.bids[:10_000], outcomes.won[:10_000], None, outcomes.min_to_win[:10_000])
    land.cdf()
    return land


@pytest.fixture(scope="module")
def values():
    return np.random.default_rng(2).random(N_VALUES)


# -- optimal_bid ---------------------------------------------------------------------------


def numpy_grid_search(values, edges, F, chunk=10_000):
    out = np.empty_like(values)
    for s in range(0, values.shape[0], chunk):
        v = values[s : s + chunk, None]
        out[s : s + chunk] = edges[((v - edges[None, :]) * F[None, :]).argmax(axis=1)]
    return out


@pytest.mark.benchmark(group="shading: optimal_bid")
def test_optimal_bid_rtbcore(benchmark, fitted, values):
    benchmark.extra_info["items"] = N_VALUES
    bids = benchmark.pedantic(fitted.optimal_bid, args=(values,), rounds=10, iterations=1)
    assert (bids <= values).all()


@pytest.mark.benchmark(group="shading: optimal_bid")
def test_optimal_bid_numpy_grid_search(benchmark, fitted, values):
    v = values[:200_000]
    benchmark.extra_info["items"] = v.shape[0]
    benchmark.extra_info["baseline"] = True
    edges, F = fitted.edges, fitted.cdf()
    bids = benchmark.pedantic(numpy_grid_search, args=(v, edges, F), rounds=3, iterations=1)
    # the exact optimum is at least as good as the best grid edge
    exact = fitted.optimal_bid(v)
    assert (fitted.expected_surplus(v, exact) >= fitted.expected_surplus(v, bids) - 1e-12).all()


# -- observe --------------------------------------------------------------------------------


def numpy_observe(max_bid, K, bids, won, price, mtw, exact, left, right, naive):
    """The landscape update with numpy: validate everything, then np.bincount per kind."""
    if not (np.isfinite(bids) & (bids >= 0)).all():
        raise ValueError("bids")
    pk = ~np.isnan(price)
    if (pk & ~won).any() or (price[pk] < 0).any() or (price[pk] > bids[pk]).any():
        raise ValueError("price")
    mk = ~np.isnan(mtw)
    if (mtw[mk] < 0).any() or (mk & won & (mtw > bids)).any() or (mk & ~won & (mtw < bids)).any():
        raise ValueError("min_to_win")
    inv_h = K / max_bid

    def xbin(d):
        return np.where(d >= max_bid, K, np.minimum((d * inv_h).astype(np.intp), K - 1))

    paid = np.where(pk, price, bids)
    naive += np.bincount(xbin(paid[won]), minlength=K + 1)
    ex = np.concatenate([mtw[mk], paid[~mk & won & (paid < bids)]])
    exact += np.bincount(xbin(ex), minlength=K + 1)
    idx = np.floor(bids * inv_h + 0.5).astype(np.intp)
    w = ~mk & won & (paid >= bids)
    li = np.where(bids[w] > max_bid, K + 1, np.clip(idx[w], 1, K))
    left += np.bincount(li, minlength=K + 2)
    lo = ~mk & ~won
    ri = np.where(bids[lo] >= max_bid, K, np.minimum(idx[lo], K))
    right += np.bincount(ri, minlength=K + 1)


@pytest.mark.benchmark(group="shading: observe")
def test_observe_rtbcore(benchmark, outcomes):
    o = outcomes
    land = BidLandscape()
    benchmark.extra_info["items"] = N_OBS
    benchmark.pedantic(
        land.observe, args=(o.bids, o.won, o.price, o.min_to_win), rounds=10, iterations=1
    )
    assert land.n_observations % N_OBS == 0 and land.n_observations > 0


@pytest.mark.benchmark(group="shading: observe")
def test_observe_numpy(benchmark, outcomes):
    o = outcomes
    K = 256
    acc = [np.zeros(K + 1), np.zeros(K + 2), np.zeros(K + 1), np.zeros(K + 1)]
    benchmark.extra_info["items"] = N_OBS
    benchmark.extra_info["baseline"] = True
    args = (1.0, K, o.bids, o.won, o.price, o.min_to_win, *acc)
    benchmark.pedantic(numpy_observe, args=args, rounds=5, iterations=1)
    land = BidLandscape()
    land.observe(o.bids, o.won, o.price, o.min_to_win)
    c = land.counts()
    calls = acc[0].sum() / c["exact"].sum()  # 1 with timing off, 5 with it on
    assert calls == round(calls) >= 1
    for got, key in zip(acc, ("exact", "left", "right", "naive"), strict=True):
        np.testing.assert_array_equal(got / calls, c[key])


# -- refit (Turnbull EM + argmax table) -----------------------------------------------------


def numpy_turnbull(ex, lf, rt, iters):
    K1 = ex.shape[0]
    total = ex.sum() + lf.sum() + rt.sum()
    p = np.full(K1, 1.0 / K1)
    for _ in range(iters):
        F = np.concatenate([[0.0], np.cumsum(p)])
        S = np.cumsum(p[::-1])[::-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(F > 1e-300, lf / F, 0.0)
            b = np.where(S > 1e-300, rt / S, 0.0)
        A = np.cumsum(a[::-1])[::-1][1:]  # sum over i > j
        p = (ex + p * (A + np.cumsum(b))) / total
    return p


@pytest.fixture(scope="module")
def winloss(outcomes):
    land = BidLandscape()
    land.observe(outcomes.bids[:10_000], outcomes.won[:10_000])
    return land


@pytest.mark.benchmark(group="shading: EM iteration (kernel)")
def test_em_iterations_rtbcore(benchmark, winloss):
    from rtbcore import _fastpath

    c = winloss.counts()
    iters = 5000
    benchmark.extra_info["items"] = iters

    def run():
        p = np.full(257, 1.0 / 257)
        _fastpath._shading_turnbull(c["exact"], c["left"], c["right"], p, iters, 0.0)
        return p

    p = benchmark.pedantic(run, rounds=5, iterations=1)
    np.testing.assert_allclose(p, numpy_turnbull(c["exact"], c["left"], c["right"], iters))


@pytest.mark.benchmark(group="shading: EM iteration (kernel)")
def test_em_iterations_numpy(benchmark, winloss):
    c = winloss.counts()
    iters = 500
    benchmark.extra_info["items"] = iters
    benchmark.extra_info["baseline"] = True
    p = benchmark.pedantic(
        numpy_turnbull, args=(c["exact"], c["left"], c["right"], iters), rounds=3, iterations=1
    )
    assert abs(p.sum() - 1.0) < 1e-9


@pytest.mark.benchmark(group="shading: refit from 10k win/loss outcomes")
def test_refit_rtbcore(benchmark, winloss):
    benchmark.extra_info["items"] = 1
    benchmark.pedantic(winloss.refit, rounds=5, iterations=1)
    benchmark.extra_info["em_iterations"] = winloss.iterations


@pytest.mark.benchmark(group="shading: refit from 10k win/loss outcomes")
def test_refit_numpy_plain_em(benchmark, winloss):
    c = winloss.counts()
    benchmark.extra_info["items"] = 1
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(
        numpy_turnbull, args=(c["exact"], c["left"], c["right"], 20_000), rounds=2, iterations=1
    )
