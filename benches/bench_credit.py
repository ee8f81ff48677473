"""CreditPool benches, each beside its baseline in the same run.

- ``credit try_bid``: ``CreditPool.try_bid()`` called from a Python loop, N calls per round,
  against the obvious pure-Python pool guarded by a ``threading.Lock`` (the same loop). Both
  pools are rich enough that every call is granted (the common path). items = calls.
- ``credit block (varied costs)``: ``try_bid_block`` on 1M requests with costs in [0.5, 1.5] and
  credits for about half of them, against the locked pure-Python pool deciding the same requests
  one by one (same semantics; run on the first 20k requests only and compared per request).
- ``credit block (equal costs)``: with equal costs the in-order decision is a prefix, which numpy
  computes with ``cumsum`` + ``searchsorted``; ``try_bid_block`` against it (same grants;
  asserted). items = requests. (``try_bids(n)`` is O(1) in n, so it is not benched per request.)
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rtbcore import CreditPool

CALLS = 200_000
BLOCK = 1_000_000
SLICE = 20_000


class LockedPool:
    """The baseline: a pure-Python credit pool, thread-safe through a lock."""

    def __init__(self, initial: float, bid_cost: float = 1.0) -> None:
        self.credits = initial
        self.bid_cost = bid_cost
        self._lock = threading.Lock()

    def try_bid(self) -> bool:
        with self._lock:
            if self.credits >= self.bid_cost:
                self.credits -= self.bid_cost
                return True
            return False

    def try_bid_cost(self, cost: float) -> bool:
        with self._lock:
            if self.credits >= cost:
                self.credits -= cost
                return True
            return False


def _loop(try_bid, n: int) -> int:
    granted = 0
    for _ in range(n):
        granted += try_bid()
    return granted


@pytest.mark.benchmark(group="credit try_bid")
def test_credit_try_bid(benchmark):
    benchmark.extra_info["items"] = CALLS

    def setup():
        pool = CreditPool(1e12, 1e12, clock=lambda: 0.0)
        return (pool.try_bid, CALLS), {}

    granted = benchmark.pedantic(_loop, setup=setup, rounds=15, iterations=1)
    assert granted == CALLS


@pytest.mark.benchmark(group="credit try_bid")
def test_credit_try_bid_locked_python_pool(benchmark):
    benchmark.extra_info["items"] = CALLS
    benchmark.extra_info["baseline"] = True

    def setup():
        return (LockedPool(1e12).try_bid, CALLS), {}

    granted = benchmark.pedantic(_loop, setup=setup, rounds=15, iterations=1)
    assert granted == CALLS


@pytest.fixture(scope="module")
def varied_costs():
    return np.random.default_rng(0).uniform(0.5, 1.5, BLOCK)


@pytest.mark.benchmark(group="credit block (varied costs)")
def test_credit_try_bid_block(benchmark, varied_costs):
    benchmark.extra_info["items"] = BLOCK
    credits = float(varied_costs.sum() / 2)

    def setup():
        return (CreditPool(credits, credits, clock=lambda: 0.0), varied_costs), {}

    mask = benchmark.pedantic(lambda p, c: p.try_bid_block(c), setup=setup, rounds=10,
                              iterations=1)
    # Same decisions as the baseline on the slice both decide.
    base = LockedPool(credits)
    assert mask[:SLICE].tolist() == [base.try_bid_cost(float(c)) for c in varied_costs[:SLICE]]


@pytest.mark.benchmark(group="credit block (varied costs)")
def test_credit_block_locked_python_loop(benchmark, varied_costs):
    benchmark.extra_info["items"] = SLICE
    benchmark.extra_info["baseline"] = True
    credits = float(varied_costs.sum() / 2)
    costs = varied_costs[:SLICE].tolist()

    def run(pool, costs):
        pay = pool.try_bid_cost
        return [pay(c) for c in costs]

    benchmark.pedantic(run, setup=lambda: ((LockedPool(credits), costs), {}), rounds=10,
                       iterations=1)


EQUAL_CREDITS = BLOCK // 2


def _numpy_prefix(credits: float, costs: np.ndarray) -> np.ndarray:
    mask = np.zeros(costs.shape[0], dtype=np.bool_)
    mask[: np.searchsorted(np.cumsum(costs), credits, side="right")] = True
    return mask


@pytest.mark.benchmark(group="credit block (equal costs)")
def test_credit_try_bid_block_equal(benchmark):
    benchmark.extra_info["items"] = BLOCK
    costs = np.ones(BLOCK)

    def setup():
        return (CreditPool(EQUAL_CREDITS, EQUAL_CREDITS, clock=lambda: 0.0), costs), {}

    mask = benchmark.pedantic(lambda p, c: p.try_bid_block(c), setup=setup, rounds=10,
                              iterations=1)
    assert np.array_equal(mask, _numpy_prefix(EQUAL_CREDITS, costs))


@pytest.mark.benchmark(group="credit block (equal costs)")
def test_credit_numpy_cumsum_prefix(benchmark):
    benchmark.extra_info["items"] = BLOCK
    benchmark.extra_info["baseline"] = True
    costs = np.ones(BLOCK)
    mask = benchmark.pedantic(_numpy_prefix, args=(float(EQUAL_CREDITS), costs), rounds=10,
                              iterations=1)
    assert mask.sum() == EQUAL_CREDITS
