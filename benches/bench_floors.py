"""Price floors: the Myerson reserve, the optimizer's update and the floor lookup, each beside its
numpy peer or the clearing it adds to.

* myerson_reserve: 10M log-normal samples. Baseline: numpy's sort (x86-simd-sort on AVX2) and a
  vectorised argmax of ``x_(i) * (n - i)``. A sort is O(n log n) and memory-bound; the kernel
  does three linear passes (validate + range, bucket counts, gather) and sorts only the buckets
  that can hold the optimum (a few thousand samples).
* FloorOptimizer.update: 1M full-information rows over 100 segments and 128 candidates.
  Baseline: the same rule with numpy (per-segment decay from a stable argsort, the difference
  arrays by np.bincount, cumsums), checked equal first.
* lookup: the floors of 1M auctions (none, and 5% explored) against clearing those auctions; the
  lookup's share of clearing is the cost a floor adds per auction.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtbcore import AuctionBatch, FloorOptimizer, clear_second_price, myerson_reserve

N_SAMPLES = 10_000_000
N_ROWS = 1_000_000
N_SEGMENTS = 100
N_AUCTIONS = 1_000_000


@pytest.fixture(scope="module")
def samples():
    return np.random.default_rng(0).lognormal(0.0, 1.0, N_SAMPLES)


def numpy_myerson(x):
    s = np.sort(x)
    rev = s * (s.shape[0] - np.arange(s.shape[0]))
    i = int(np.argmax(rev))
    return float(s[i])


@pytest.mark.benchmark(group="floors: myerson_reserve (10M samples)")
def test_myerson_rtbcore(benchmark, samples):
    benchmark.extra_info["items"] = N_SAMPLES
    r = benchmark.pedantic(myerson_reserve, args=(samples,), rounds=5, iterations=1)
    assert r == numpy_myerson(samples)


@pytest.mark.benchmark(group="floors: myerson_reserve (10M samples)")
def test_myerson_numpy_sort(benchmark, samples):
    benchmark.extra_info["items"] = N_SAMPLES
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(numpy_myerson, args=(samples,), rounds=3, iterations=1)


# -- update -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(1)
    seg = rng.integers(0, N_SEGMENTS, N_ROWS)
    scale = rng.lognormal(0.0, 0.5, N_SEGMENTS)[seg]
    b = np.sort(rng.lognormal(0.0, 0.6, (N_ROWS, 2)) * scale[:, None], axis=1)
    return seg, b[:, 1].copy(), b[:, 0].copy()


class NumpyFloors:
    """The optimizer's full-information rule with numpy: decayed sums per segment and candidate
    of weight, revenue ``[b1 >= f] * max(b2, f)`` and fills, then the best candidate."""

    def __init__(self, segments, grid, half_life, min_weight=20.0):
        self.grid, self.K = grid, grid.shape[0]
        self.lam = 0.5 ** (1.0 / half_life)
        self.min_weight = min_weight
        self.W, self.R, self.F = (np.zeros((segments, self.K)) for _ in range(3))
        self.floors = np.zeros(segments)

    def update(self, seg, top, second):
        n, S, K = seg.shape[0], self.W.shape[0], self.K
        counts = np.bincount(seg, minlength=S)
        order = np.argsort(seg, kind="stable")
        starts = np.cumsum(counts) - counts
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - starts[seg[order]]
        w = self.lam ** (counts[seg] - 1 - rank)
        decay = (self.lam ** counts)[:, None]
        k1 = np.searchsorted(self.grid, top, "right") - 1
        k2 = np.searchsorted(self.grid, second, "right") - 1
        q = top > 0
        w = np.where(q, w, 0.0)
        base = seg * (K + 1)
        size = S * (K + 1)

        def diff(lo_idx, hi_idx, weights):
            d = np.bincount(base + lo_idx, weights, size) - np.bincount(base + hi_idx, weights,
                                                                        size)
            return np.cumsum(d.reshape(S, K + 1), axis=1)[:, :K]

        zero = np.zeros(n, dtype=np.int64)
        dW = np.bincount(seg, w, S)[:, None]
        dS = diff(zero, k2 + 1, second * w)
        dC = diff(k2 + 1, k1 + 1, w)
        dF = diff(zero, k1 + 1, w)
        self.W = self.W * decay + dW
        self.R = self.R * decay + dS + self.grid[None, :] * dC
        self.F = self.F * decay + dF
        touched = counts > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            rev = np.where(self.W >= self.min_weight, self.R / self.W, -1.0)
        best = np.argmax(rev, axis=1)
        ok = touched & (rev.max(axis=1) >= 0)
        self.floors[ok] = self.grid[best[ok]]


def test_numpy_peer_is_the_same_rule(rows):
    seg, top, second = (a[:20_000] for a in rows)
    grid = np.concatenate([[0.0], np.geomspace(0.01, 100.0, 127)])
    ours = FloorOptimizer(N_SEGMENTS, grid=grid, half_life=5_000, explore=0.0)
    peer = NumpyFloors(N_SEGMENTS, grid, 5_000)
    for lo in (0, 10_000):
        sl = slice(lo, lo + 10_000)
        ours.update(seg[sl], 0.0, second[sl], True, top[sl], second[sl])
        peer.update(seg[sl], top[sl], second[sl])
    for s in (0, 7, 99):
        e = ours.estimates(s)
        np.testing.assert_allclose(e["weight"], peer.W[s], rtol=1e-9)
        np.testing.assert_allclose(e["revenue"] * e["weight"], peer.R[s], rtol=1e-9, atol=1e-9)
    assert np.array_equal(ours.floors, peer.floors)


@pytest.mark.benchmark(group="floors: FloorOptimizer.update (1M rows, 100 segments)")
def test_update_rtbcore(benchmark, rows):
    seg, top, second = rows
    opt = FloorOptimizer(N_SEGMENTS, half_life=50_000, explore=0.0)
    sold = np.ones(N_ROWS, dtype=bool)
    benchmark.extra_info["items"] = N_ROWS
    benchmark.pedantic(opt.update, args=(seg, 0.0, second, sold, top, second), rounds=10,
                       iterations=1)
    assert opt.floors.max() > 0


@pytest.mark.benchmark(group="floors: FloorOptimizer.update (1M rows, 100 segments)")
def test_update_numpy(benchmark, rows):
    seg, top, second = rows
    grid = np.concatenate([[0.0], np.geomspace(0.01, 100.0, 127)])
    peer = NumpyFloors(N_SEGMENTS, grid, 50_000)
    benchmark.extra_info["items"] = N_ROWS
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(peer.update, args=(seg, top, second), rounds=3, iterations=1)


# -- lookup against clearing ------------------------------------------------------------------


@pytest.fixture(scope="module")
def market():
    rng = np.random.default_rng(2)
    sizes = np.minimum(rng.poisson(8.0, N_AUCTIONS), 40)
    prices = rng.lognormal(0.0, 0.6, int(sizes.sum()))
    seg = rng.integers(0, N_SEGMENTS, N_AUCTIONS)
    opt = FloorOptimizer(N_SEGMENTS, initial=0.5)
    explore = FloorOptimizer(N_SEGMENTS, explore=0.05, initial=0.5)
    return AuctionBatch.from_sizes(sizes, prices), seg, opt, explore


@pytest.mark.benchmark(group="floors: lookup vs clearing (1M auctions)")
def test_lookup_rtbcore(benchmark, market):
    _, seg, opt, _ = market
    benchmark.extra_info["items"] = N_AUCTIONS
    f = benchmark.pedantic(opt.lookup, args=(seg,), rounds=20, iterations=1)
    assert f.shape == (N_AUCTIONS,)


@pytest.mark.benchmark(group="floors: lookup vs clearing (1M auctions)")
def test_lookup_exploring_5pct_rtbcore(benchmark, market):
    _, seg, _, opt = market
    benchmark.extra_info["items"] = N_AUCTIONS
    f = benchmark.pedantic(opt.lookup, args=(seg,), rounds=20, iterations=1)
    assert 0.03 < np.mean(f != 0.5) < 0.07


@pytest.mark.benchmark(group="floors: lookup vs clearing (1M auctions)")
def test_clear_second_price_baseline(benchmark, market):
    batch, seg, opt, _ = market
    b = AuctionBatch(batch.offsets, batch.prices, reserve=opt.lookup(seg))
    benchmark.extra_info["items"] = N_AUCTIONS
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(clear_second_price, args=(b,), rounds=10, iterations=1)
