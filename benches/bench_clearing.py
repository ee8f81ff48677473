"""Clearing benches: rtbcore against numpy and pure Python, in the same run.

10M bids (``RTBCORE_BENCH_BIDS`` to change it), log-normal prices, reserve 0.1, in auctions of
10 and of 100 bids. Every rtbcore row is the **default call**: ``clear_second_price(batch)``
returns winner, price and the per-bid ``min_to_win`` / ``loss_reason`` arrays (136 MB for 10M
bids) in buffers from ``rtbcore.output_pool``, which recycles them once the previous result is
gone (as it is between benchmark rounds, and in a service that clears batch after batch).

- ``clearing single-slot N-bid``: rtbcore second and first price against
  (a) ``numpy 2-D``: the best vectorised numpy I know for the same answer (winner + price): the
  bids as a 2-D ``[n_auctions, N]`` array, eligibility by ``np.where``, ``argmax`` for the winner,
  then the winner masked and a second ``max`` pass for the runner-up;
  (b) ``pure Python``: a ``SecondPriceAuction`` object per auction over ``Bid`` objects (filter
  at the reserve, sort by adjusted bid, price = second adjusted / winner quality + 0.01) on the
  same 10M bids (the objects are built before timing). A diagnostic row times it on the first
  20k bids only, where its objects stay in cache and it runs ~1.4x faster per bid; the Cython
  object API ``rtbcore.SecondPriceAuction`` runs on that 20k subset too.
  A diagnostic row, ``second_price_without_output_pool``, is the same call with the pool turned
  off: fresh output pages on every call (what a first call, or a caller holding every result,
  pays).
- ``clearing position k=5 N-bid``: rtbcore VCG and GSP with 5 slots against numpy's second
  price (the target: VCG >= 1.5x numpy's single-slot second price).
- ``clearing threads``: two Python threads clearing one batch each against one thread clearing
  both in turn (the kernels release the GIL). On 5M-bid batches both threads stream from memory
  and share its bandwidth; the in-cache group (50 calls on a 100k-bid batch per thread) shows
  the scaling without that limit.
"""

from __future__ import annotations

import gc
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import rtbcore

N_BIDS = int(os.environ.get("RTBCORE_BENCH_BIDS", 10_000_000))
SUBSET = 20_000
RESERVE = 0.1
INC = 0.01
CTRS = np.array([1.0, 0.7, 0.5, 0.35, 0.25])


def make(per: int, n_bids: int = N_BIDS, seed: int = 0) -> rtbcore.AuctionBatch:
    rng = np.random.default_rng(seed)
    n = n_bids // per
    prices = rng.lognormal(-1.0, 0.8, n * per)
    offsets = np.arange(n + 1, dtype=np.int64) * per
    return rtbcore.AuctionBatch(offsets, prices, reserve=RESERVE)


@pytest.fixture(scope="module", params=[10, 100], ids=lambda p: f"{p}-bid")
def batch(request):
    return request.param, make(request.param)


def numpy_second_price(prices2d: np.ndarray, reserve: float, inc: float):
    """Winner (flat bid index, -1 = no sale) and second price of every row, numpy only."""
    n, m = prices2d.shape
    elig = np.where(prices2d >= reserve, prices2d, -np.inf)  # reserve > 0: also drops zeros
    w = elig.argmax(axis=1)
    rows = np.arange(n)
    first = elig[rows, w]
    elig[rows, w] = -np.inf
    second = elig.max(axis=1)
    sold = first > -np.inf
    price = np.where(sold, np.minimum(first, np.maximum(reserve, second) + inc), 0.0)
    return np.where(sold, rows * m + w, -1), price


class PyBid:
    __slots__ = ("bidder_id", "amount", "quality")

    def __init__(self, bidder_id, amount, quality=1.0):
        self.bidder_id, self.amount, self.quality = bidder_id, amount, quality


class PySecondPriceAuction:
    """How it is written today: one object per bid, filter, sort, price from the runner-up."""

    def __init__(self, reserve_price=0.10, increment=0.01):
        self.reserve_price, self.increment = reserve_price, increment

    def run(self, bids):
        eligible = [b for b in bids if b.amount >= self.reserve_price and b.amount > 0]
        if not eligible:
            return None
        eligible.sort(key=lambda b: b.amount * b.quality, reverse=True)
        w = eligible[0]
        if len(eligible) > 1:
            floor = max(self.reserve_price, eligible[1].amount * eligible[1].quality / w.quality)
        else:
            floor = self.reserve_price
        return w, min(w.amount, floor + self.increment)


def object_auctions(b: rtbcore.AuctionBatch, per: int, cls, n_bids: int = SUBSET):
    """The first ``n_bids`` bids of ``b`` as one list of ``cls(bidder, price)`` per auction."""
    n = n_bids // per
    p = b.prices[: n * per].tolist()
    return [[cls(j, p[a * per + j]) for j in range(per)] for a in range(n)]


# ---- single slot -----------------------------------------------------------------------------


def _group(benchmark, kind: str, per: int) -> None:
    benchmark.group = f"clearing {kind} {per}-bid"


def _timed(benchmark, kind: str, batch, fn, *args, baseline: bool = False):
    """Times ``fn(*args)`` over the whole batch (7 rounds after a warm-up) in its ``kind``
    group; returns its result."""
    per, b = batch
    _group(benchmark, kind, per)
    benchmark.extra_info["items"] = b.n_bids
    if baseline:
        benchmark.extra_info["baseline"] = True
    return benchmark.pedantic(fn, args=args, rounds=7, iterations=1, warmup_rounds=1)


def test_rtbcore_second_price(benchmark, batch):
    per, b = batch
    r = _timed(benchmark, "single-slot", batch, rtbcore.clear_second_price, b)
    w, p = numpy_second_price(b.prices.reshape(-1, per), RESERVE, INC)
    assert np.array_equal(r.winner, w) and np.allclose(r.price, p, rtol=1e-12)


def test_rtbcore_second_price_without_output_pool(benchmark, batch):
    """The default call with ``rtbcore.output_pool`` turned off: fresh output pages every call
    (the page faults and the kernel zeroing them are what the pool saves)."""
    _, b = batch
    saved = rtbcore.output_pool.max_bytes
    rtbcore.output_pool.max_bytes = 0
    try:
        r = _timed(benchmark, "single-slot", batch, rtbcore.clear_second_price, b)
    finally:
        rtbcore.output_pool.max_bytes = saved
    assert r.min_to_win.base is None  # really fresh


def test_rtbcore_first_price(benchmark, batch):
    _, b = batch
    r = _timed(benchmark, "single-slot", batch, rtbcore.clear_first_price, b)
    assert r.winner.shape == (b.n_auctions,)


def test_numpy_2d_second_price(benchmark, batch):
    per, b = batch
    p2 = b.prices.reshape(-1, per)
    _timed(benchmark, "single-slot", batch, numpy_second_price, p2, RESERVE, INC, baseline=True)


def _pure_python_run(benchmark, b: rtbcore.AuctionBatch, per: int, n_bids: int, rounds: int):
    """Times ``PySecondPriceAuction.run`` over the first ``n_bids`` bids as Bid objects (built
    before timing; the garbage collector is frozen so that it never scans them mid-run, which
    favours the baseline) and checks its prices against rtbcore's."""
    n = n_bids // per
    auctions = object_auctions(b, per, PyBid, n_bids)
    gc.collect()
    gc.freeze()
    try:
        benchmark.extra_info["items"] = n * per
        benchmark.extra_info["baseline"] = True
        auction = PySecondPriceAuction(RESERVE, INC)

        def run():
            return [auction.run(bids) for bids in auctions]

        out = benchmark.pedantic(run, rounds=rounds, iterations=1)
        got = np.array([o[1] if o else 0.0 for o in out])
        del out
    finally:
        gc.unfreeze()
    sub = b.prices[: n * per]
    ref = rtbcore.clear_second_price(rtbcore.AuctionBatch.from_sizes([per] * n, sub,
                                                                     reserve=RESERVE))
    assert np.allclose(got, ref.price, rtol=1e-12)


def test_pure_python_second_price(benchmark, batch):
    """The baseline on the same 10M bids (10M objects: ~15 s to build, ~2-3 s per round)."""
    per, b = batch
    _group(benchmark, "single-slot", per)
    _pure_python_run(benchmark, b, per, b.n_bids, rounds=3)


def test_pure_python_second_price_20k_subset(benchmark, batch):
    """Diagnostic: the same baseline on the first 20k bids only, whose objects stay in cache
    (it runs faster per bid than on 10M bids)."""
    per, b = batch
    _group(benchmark, "single-slot", per)
    _pure_python_run(benchmark, b, per, SUBSET, rounds=5)


def test_rtbcore_object_api_second_price(benchmark, batch):
    per, b = batch
    _group(benchmark, "single-slot", per)
    auctions = object_auctions(b, per, rtbcore.Bid)
    benchmark.extra_info["items"] = len(auctions) * per
    auction = rtbcore.SecondPriceAuction(RESERVE, INC)

    def run():
        return [auction.run(bids) for bids in auctions]

    benchmark.pedantic(run, rounds=5, iterations=1)


# ---- position auctions -----------------------------------------------------------------------


def test_rtbcore_vcg_k5(benchmark, batch):
    _, b = batch
    r = _timed(benchmark, "position k=5", batch, rtbcore.clear_vcg, b, CTRS)
    assert r.winner.shape == (b.n_auctions, 5)


def test_rtbcore_gsp_k5(benchmark, batch):
    _timed(benchmark, "position k=5", batch, rtbcore.clear_gsp, batch[1], CTRS)


def test_numpy_2d_second_price_for_slots(benchmark, batch):
    per, b = batch
    p2 = b.prices.reshape(-1, per)
    _timed(benchmark, "position k=5", batch, numpy_second_price, p2, RESERVE, INC, baseline=True)


# ---- threads ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_batches():
    half = N_BIDS // 2
    return make(100, half, seed=1), make(100, half, seed=2)


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(max_workers=2) as ex:
        yield ex


def test_clearing_two_threads(benchmark, two_batches, pool):
    benchmark.group = "clearing threads (2 batches, 100-bid)"
    benchmark.extra_info["items"] = sum(b.n_bids for b in two_batches)

    def run():
        return list(pool.map(rtbcore.clear_second_price, two_batches))

    out = benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=2)
    assert len(out) == 2


def test_clearing_one_thread(benchmark, two_batches):
    benchmark.group = "clearing threads (2 batches, 100-bid)"
    benchmark.extra_info["items"] = sum(b.n_bids for b in two_batches)
    benchmark.extra_info["baseline"] = True

    def run():
        return [rtbcore.clear_second_price(b) for b in two_batches]

    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=2)


# Small batches that stay in each core's cache: the same GIL-free kernels, without the shared
# memory bandwidth that limits two threads on 10M-bid batches.
SMALL_BIDS = 100_000
SMALL_CALLS = 50


@pytest.fixture(scope="module")
def two_small_batches():
    return make(100, SMALL_BIDS, seed=3), make(100, SMALL_BIDS, seed=4)


def test_clearing_two_threads_in_cache(benchmark, two_small_batches, pool):
    benchmark.group = "clearing threads (2 x 50 in-cache 100k-bid batches)"
    benchmark.extra_info["items"] = 2 * SMALL_CALLS * SMALL_BIDS

    def loop(b):
        for _ in range(SMALL_CALLS):
            rtbcore.clear_second_price(b)

    benchmark.pedantic(lambda: list(pool.map(loop, two_small_batches)), rounds=15, iterations=1,
                       warmup_rounds=2)


def test_clearing_one_thread_in_cache(benchmark, two_small_batches):
    benchmark.group = "clearing threads (2 x 50 in-cache 100k-bid batches)"
    benchmark.extra_info["items"] = 2 * SMALL_CALLS * SMALL_BIDS
    benchmark.extra_info["baseline"] = True

    def run():
        for b in two_small_batches:
            for _ in range(SMALL_CALLS):
                rtbcore.clear_second_price(b)

    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=2)
