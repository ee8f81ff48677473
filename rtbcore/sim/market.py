"""Synthetic exchange traffic for the demo and the benchmarks.

:func:`synthetic_hour` is an hour of auctions as one :class:`~rtbcore.AuctionBatch` for the
batch clearing functions; :func:`synthetic_stream` is a slice of auctions with their bid stream
(places, updates, cancels) as :class:`~rtbcore.AuctionEngine` takes it.
"""

from __future__ import annotations

import numpy as np

from rtbcore.clearing import AuctionBatch
from rtbcore.records import KIND_CANCEL, KIND_PLACE, KIND_UPDATE

__all__ = ["synthetic_hour", "synthetic_stream"]

#: (auction_id, bidder_id, price, kind) columns of a bid stream, as AuctionEngine.submit takes them
BidColumns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def synthetic_hour(
    rng: np.random.Generator, n_auctions: int, *, invalid_rate: float = 1e-4
) -> AuctionBatch:
    """One hour of a synthetic exchange: ``n_auctions`` auctions with a variable number of
    bidders (0 to 40, mean ~8), log-normal bids (per impression) around each bidder's own price
    level, quality scores per bidder, a floor per auction from four publisher tiers, and a few
    corrupt bids (NaN / negative, at ``invalid_rate``) as buggy bidders send them."""
    n_bidders = 2_000
    level = rng.lognormal(0.0, 0.6, n_bidders)  # each bidder's typical price
    quality_of = np.clip(rng.lognormal(0.0, 0.25, n_bidders), 0.2, 3.0)
    sizes = np.minimum(rng.poisson(rng.choice([3.0, 8.0, 15.0], n_auctions)), 40)
    m = int(sizes.sum())
    bidders = rng.integers(0, n_bidders, m)
    prices = level[bidders] * rng.lognormal(0.0, 0.5, m)
    bad = np.flatnonzero(rng.random(m) < invalid_rate)
    prices[bad] = np.where(rng.random(bad.size) < 0.5, np.nan, -1.0)
    reserve = rng.choice([0.0, 0.25, 0.5, 1.0], n_auctions, p=[0.3, 0.3, 0.25, 0.15])
    return AuctionBatch.from_sizes(sizes, prices, quality_of[bidders], bidders, reserve)


def synthetic_stream(
    rng: np.random.Generator, first: int, n_auctions: int
) -> tuple[np.ndarray, np.ndarray, BidColumns]:
    """A slice of the synthetic day: auction ids, expected bidders (1..100), and the bid stream
    interleaved across the slice's auctions; 5% of the bids are followed by an update and 1% by
    a cancel (an update or cancel that lands after its auction closed is rejected as late)."""
    ids = np.arange(first, first + n_auctions, dtype=np.int64)
    expected = np.clip(rng.poisson(50, n_auctions), 1, 100).astype(np.int64)
    a = np.repeat(ids, expected)
    b = rng.integers(0, 1 << 40, a.size)  # distinct per auction with near certainty
    p = np.round(rng.lognormal(0.0, 0.6, a.size), 4)
    o = rng.permutation(a.size)
    a, b, p = a[o], b[o], p[o]
    extra = rng.random(a.size)
    follow = np.where(extra < 0.05, KIND_UPDATE, np.where(extra > 0.99, KIND_CANCEL, -1))
    reps = 1 + (follow >= 0)
    idx = np.repeat(np.arange(a.size), reps)
    second = np.zeros(idx.size, dtype=bool)
    second[np.cumsum(reps)[reps == 2] - 1] = True
    kinds = np.where(second, follow[idx], KIND_PLACE).astype(np.uint8)
    prices = np.where(second, p[idx] * 1.1, p[idx])
    return ids, expected, (a[idx], b[idx], prices, kinds)

