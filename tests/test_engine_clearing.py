"""AuctionEngine results equal rtbcore's batch clearing functions (clear_first_price,
clear_second_price, clear_gsp, clear_vcg) on the same bids, whatever the arrival order.

The batch functions break ties by position, the engine by the lowest bidder id: the reference
batch therefore lists each auction's bids in bidder-id order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtbcore
from rtbcore import AuctionEngine

CTRS = [1.0, 0.7, 0.3]


def _reference(mech, sizes, bidders, prices, quality, reserve, increment):
    batch = rtbcore.AuctionBatch.from_sizes(sizes, prices, quality, bidders, reserve)
    if mech == "first_price":
        r = rtbcore.clear_first_price(batch)
    elif mech == "second_price":
        r = rtbcore.clear_second_price(batch, increment=increment)
    elif mech == "gsp":
        r = rtbcore.clear_gsp(batch, CTRS, increment=increment)
    else:
        r = rtbcore.clear_vcg(batch, CTRS)
    return r.bidder.reshape(len(sizes), -1), r.price.reshape(len(sizes), -1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mech=st.sampled_from(["first_price", "second_price", "gsp", "vcg"]),
    n_auctions=st.integers(1, 40),
    max_bids=st.integers(0, 25),
    seed=st.integers(0, 2**32 - 1),
    workers=st.integers(1, 4),
    block=st.integers(1, 500),
)
def test_engine_equals_batch_clearing(mech, n_auctions, max_bids, seed, workers, block):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, max_bids + 1, n_auctions)
    # distinct bidders per auction, listed in bidder-id order for the reference
    bidders = np.concatenate(
        [np.sort(rng.choice(1000, s, replace=False)) for s in sizes] or [np.empty(0)]
    ).astype(np.int64)
    n = int(sizes.sum())
    prices = np.round(rng.lognormal(0, 0.6, n), 1)  # coarse: ties happen
    quality = rng.choice([0.5, 1.0, 1.5], n)
    reserve = rng.choice([0.0, 0.5, 1.2], n_auctions)
    increment = 0.01 if mech in ("second_price", "gsp") else 0.0
    want_bidder, want_price = _reference(mech, sizes, bidders, prices, quality, reserve, increment)

    ids = rng.permutation(10**6)[:n_auctions].astype(np.int64)
    auction_of_bid = np.repeat(ids, sizes)
    order = rng.permutation(n)
    ctrs = CTRS if mech in ("gsp", "vcg") else None
    with AuctionEngine(workers=workers, pin=False, mechanism=mech, increment=increment,
                       tmax_ms=600_000, slot_ctrs=ctrs) as eng:
        eng.open(ids, reserve=reserve, expected_bids=np.maximum(sizes, 1))
        for s in range(0, n, block):
            o = order[s:s + block]
            eng.submit(auction_of_bid[o], bidders[o], prices[o], quality=quality[o])
    rows = []
    while True:
        r = eng.poll()
        if r.shape[0] == 0:
            break
        rows.append(r)
    got = np.concatenate(rows)
    k = len(ctrs) if ctrs else 1
    assert got.shape[0] == n_auctions * k
    pos = {int(a): i for i, a in enumerate(ids)}
    got = got[np.lexsort((got["slot"], [pos[int(a)] for a in got["auction_id"]]))]
    # the clearing kernels name no winner -1; engine rows name it NO_BIDDER (2**64-1, uint64)
    np.testing.assert_array_equal(got["winner_bidder"].reshape(n_auctions, k),
                                  want_bidder.astype(np.uint64))
    np.testing.assert_allclose(got["price"].reshape(n_auctions, k), want_price, rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(got["n_bids"][::k], sizes)
    # every auction with bids closed on its last bidder, the empty ones at shutdown
    np.testing.assert_array_equal(got["closed_by"][::k], np.where(sizes > 0, 1, 2))


@pytest.mark.parametrize("mech", ["first_price", "second_price"])
def test_winner_min_to_win_equals_the_batch_clearing(mech):
    rng = np.random.default_rng(7)
    sizes = np.full(200, 5)
    bidders = np.tile(np.arange(5), 200).astype(np.int64)
    prices = rng.lognormal(0, 0.5, 1000)
    batch = rtbcore.AuctionBatch.from_sizes(sizes, prices, None, bidders, 0.3)
    ref = (rtbcore.clear_first_price(batch) if mech == "first_price"
           else rtbcore.clear_second_price(batch, increment=0.0))
    with AuctionEngine(workers=2, pin=False, mechanism=mech, reserve=0.3, increment=0.0,
                       tmax_ms=600_000) as eng:
        eng.open(np.arange(200), expected_bids=5)
        o = rng.permutation(1000)
        eng.submit(np.repeat(np.arange(200), 5)[o], bidders[o], prices[o])
    got = np.sort(eng.poll(), order="auction_id")
    sold = ref.winner >= 0
    np.testing.assert_array_equal(got["winner_bidder"][sold], ref.bidder[sold])
    np.testing.assert_allclose(got["min_to_win"][sold], ref.min_to_win[ref.winner[sold]])
