"""The per-auction object API (Bid, SecondPriceAuction, FirstPriceAuction) equals the batch API."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtbcore import (
    AuctionBatch,
    Bid,
    FirstPriceAuction,
    InvalidBidError,
    InvalidInputError,
    SecondPriceAuction,
    clear_first_price,
    clear_second_price,
)

AMOUNT = st.one_of(st.sampled_from([0.0, 0.05, 0.1, 0.5, 1.0, 2.0]), st.floats(0.0, 5.0))
QUALITY = st.one_of(st.sampled_from([0.5, 1.0, 2.0]), st.floats(0.1, 3.0))


@settings(max_examples=300, deadline=None)
@given(
    bids=st.lists(st.tuples(AMOUNT, QUALITY), max_size=8),
    reserve=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    inc=st.sampled_from([0.0, 0.01, 0.3]),
)
def test_object_api_equals_batch_api(bids, reserve, inc):
    objs = [Bid(f"b{i}", a, q, creative_id=i) for i, (a, q) in enumerate(bids)]
    batch = AuctionBatch(
        [0, len(bids)], [a for a, _ in bids], [q for _, q in bids], reserve=reserve
    )
    sp = SecondPriceAuction(reserve_price=reserve, increment=inc).run(objs)
    r = clear_second_price(batch, increment=inc)
    fp = FirstPriceAuction(reserve_price=reserve).run(iter(objs))
    f = clear_first_price(batch)
    if r.winner[0] < 0:
        assert sp is None and fp is None
        return
    w = int(r.winner[0])
    assert sp[0] is objs[w] and sp[1] == pytest.approx(r.price[0], rel=1e-12)
    assert fp[0] is objs[w] and fp[1] == f.price[0]


def test_defaults_and_example():
    a = SecondPriceAuction()
    assert (a.reserve_price, a.increment) == (0.10, 0.01)
    assert FirstPriceAuction().reserve_price == 0.10
    bids = [Bid("a", 1.00), Bid("b", 2.0, quality=0.4), Bid("c", 0.05)]
    win, price = a.run(bids)
    assert win.bidder_id == "a" and price == pytest.approx(0.81)  # 0.8 / 1.0 + 0.01
    assert FirstPriceAuction().run(bids) == (bids[0], 1.0)
    assert a.run([]) is None
    assert a.run([Bid("c", 0.05)]) is None  # below the 0.10 reserve
    win, price = a.run([Bid("solo", 3.0)])
    assert price == pytest.approx(0.11)  # alone: reserve + increment


def test_bid_fields_are_validated_and_immutable():
    b = Bid(7, 1.5, 2.0, creative_id="cr-1")
    fields = (b.bidder_id, b.amount, b.quality, b.creative_id, b.adjusted)
    assert fields == (7, 1.5, 2.0, "cr-1", 3.0)
    assert b == Bid(7, 1.5, 2.0, "cr-1") and hash(b) == hash(Bid(7, 1.5, 2.0, "cr-1"))
    assert pickle.loads(pickle.dumps(b)) == b
    assert "Bid(7, 1.5" in repr(b)
    with pytest.raises(AttributeError):
        b.amount = 3.0  # type: ignore[misc]
    assert Bid(1, 0.0).amount == 0.0  # a zero bid is valid, never eligible
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(InvalidBidError, match="amount"):
            Bid(1, bad)
    for bad in (math.nan, math.inf, 0.0, -1.0):
        with pytest.raises(InvalidBidError, match="quality"):
            Bid(1, 1.0, bad)
    for bad in ("1", None, True):
        with pytest.raises(InvalidInputError, match="amount"):
            Bid(1, bad)


def test_auction_arguments_and_bids_are_checked():
    for bad in (-0.1, math.nan, math.inf, "x"):
        with pytest.raises(InvalidInputError, match="reserve_price"):
            SecondPriceAuction(reserve_price=bad)
        with pytest.raises(InvalidInputError, match="reserve_price"):
            FirstPriceAuction(reserve_price=bad)
        with pytest.raises(InvalidInputError, match="increment"):
            SecondPriceAuction(increment=bad)
    with pytest.raises(InvalidInputError, match=r"bids\[1\]: expected a Bid, got tuple"):
        SecondPriceAuction().run([Bid(1, 1.0), ("x", 2.0)])


def test_ties_go_to_the_earlier_bid():
    bids = [Bid("x", 1.0, 2.0), Bid("y", 2.0, 1.0), Bid("z", 0.5)]
    win, price = SecondPriceAuction(reserve_price=0.0, increment=0.0).run(bids)
    assert win.bidder_id == "x" and price == pytest.approx(1.0)
    r = clear_second_price(AuctionBatch([0, 3], [1.0, 2.0, 0.5], [2.0, 1.0, 1.0]), increment=0)
    assert r.winner[0] == 0 and r.price[0] == pytest.approx(1.0)
    assert np.isclose(r.min_to_win[1], 2.0)
