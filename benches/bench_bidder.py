"""The bidder's request path: BidShader.bid while observations keep arriving, and a service loop.

* scalar bid(): 10,000 calls ``shader.bid(v)`` from a Python loop, with a block of 100 outcomes
  observed before each 1,000 calls (refits happen on the way, as in a live bidder). Baseline:
  the landscape's own array query on one value per call (``optimal_bid([v])``), the path a
  bidder had before.
* array bid(): one block of 1,000 outcomes observed, then 100,000 values bid, per item; items
  are the bids. Baseline: ``np.interp`` on a precomputed value -> bid table (the cheapest numpy
  lookup, approximate, no exploration).
* service loop: 20 bidders, each with a PIDPacer and a BidShader, 192 rounds of 1,000
  first-price auctions (``rtbcore.sim.service.ServiceLoop``). Baseline: the same loop without
  shading (bids = paced values); the ratio is what shading costs.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtbcore.shading import BidLandscape, BidShader
from rtbcore.sim.service import ServiceLoop
from rtbcore.sim.shading import simulate_first_price

N_SCALAR = 10_000
N_ARRAY = 100_000


@pytest.fixture(scope="module")
def stream():
    return simulate_first_price(lambda r, k: r.random(k), 400_000, seed=3)


def _shader(stream):
    land = BidLandscape()
    land.observe(stream.bids[:10_000], stream.won[:10_000], None, stream.min_to_win[:10_000])
    return BidShader(land, explore=0.02, seed=1)


@pytest.mark.benchmark(group="bidder: scalar bid() while observing")
def test_scalar_bid_rtbcore(benchmark, stream):
    sh = _shader(stream)
    values = np.random.default_rng(4).random(N_SCALAR).tolist()
    pos = [10_000]

    def run():
        bid, observe = sh.bid, sh.observe
        for k in range(0, N_SCALAR, 1000):
            s = pos[0] = (pos[0] + 100) % 390_000 + 10_000
            observe(stream.bids[s : s + 100], stream.won[s : s + 100], None,
                    stream.min_to_win[s : s + 100])  # fmt: skip
            for v in values[k : k + 1000]:
                bid(v)

    benchmark.extra_info["items"] = N_SCALAR
    benchmark.pedantic(run, rounds=20, iterations=1)
    assert sh.landscape.n_observations > 10_000


@pytest.mark.benchmark(group="bidder: scalar bid() while observing")
def test_scalar_bid_landscape_query(benchmark, stream):
    sh = _shader(stream)
    land = sh.landscape
    values = np.random.default_rng(4).random(N_SCALAR // 10).tolist()

    def run():
        for v in values:
            land.optimal_bid([v])

    benchmark.extra_info["items"] = len(values)
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(run, rounds=5, iterations=1)


@pytest.mark.benchmark(group="bidder: array bid() while observing")
def test_array_bid_rtbcore(benchmark, stream):
    sh = _shader(stream)
    values = np.random.default_rng(5).random(N_ARRAY)
    pos = [10_000]

    def run():
        s = pos[0] = (pos[0] + 1000) % 390_000 + 10_000
        sh.observe(stream.bids[s : s + 1000], stream.won[s : s + 1000], None,
                   stream.min_to_win[s : s + 1000])  # fmt: skip
        return sh.bid(values)

    benchmark.extra_info["items"] = N_ARRAY
    bids = benchmark.pedantic(run, rounds=50, iterations=1)
    assert (bids <= values).all()


@pytest.mark.benchmark(group="bidder: array bid() while observing")
def test_array_bid_numpy_table_lookup(benchmark, stream):
    sh = _shader(stream)
    grid = np.linspace(0.0, 1.0, 1025)
    table = sh.landscape.optimal_bid(grid)
    values = np.random.default_rng(5).random(N_ARRAY)
    benchmark.extra_info["items"] = N_ARRAY
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(np.interp, args=(values, grid, table), rounds=50, iterations=1)


def _loop(shading: bool) -> ServiceLoop:
    loop = ServiceLoop.build(n_bidders=20, shading=shading, seed=1)
    loop.run(192, 1000)
    return loop


@pytest.mark.benchmark(group="bidder: service loop, 20 bidders x 192k auctions")
def test_service_loop_with_shading(benchmark):
    benchmark.extra_info["items"] = 192_000
    loop = benchmark.pedantic(_loop, args=(True,), rounds=5, iterations=1)
    assert sum(b.wins for b in loop.bidders) > 0


@pytest.mark.benchmark(group="bidder: service loop, 20 bidders x 192k auctions")
def test_service_loop_without_shading(benchmark):
    benchmark.extra_info["items"] = 192_000
    benchmark.extra_info["baseline"] = True
    loop = benchmark.pedantic(_loop, args=(False,), rounds=5, iterations=1)
    assert sum(b.wins for b in loop.bidders) > 0
