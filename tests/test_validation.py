"""One bid-validation rule: the queue, the ring, the engine and clearing accept and refuse the
same records (the rule is written once, in ``rust/core/src/record.rs``; see docs/errors.md)."""

from __future__ import annotations

import numpy as np
import pytest

import rtbcore
from rtbcore import (
    KIND_CANCEL,
    KIND_DECLINE,
    KIND_PLACE,
    AuctionBatch,
    AuctionEngine,
    BidQueue,
    BidRing,
    make_bids,
)
from rtbcore.errors import InvalidBidError, InvalidInputError

#: (what is wrong, the record, the field an error names, accepted by the rule)
CASES = [
    ("quality 0", make_bids(7, 1, 1.0, 0.0, KIND_PLACE), "quality", False),
    ("negative price", make_bids(7, 1, -1.0, 1.0, KIND_PLACE), "price", False),
    ("NaN quality", make_bids(7, 1, 1.0, np.nan, KIND_PLACE), "quality", False),
    ("unknown kind", make_bids(7, 1, 1.0, 1.0, KIND_DECLINE + 1), "kind", False),
    ("auction id 2**63", make_bids(2**63, 1, 1.0, 1.0, KIND_PLACE), "auction_id", False),
    ("bidder id 2**64-1", make_bids(7, 2**64 - 1, 1.0, 1.0, KIND_PLACE), "bidder_id", False),
    ("price × quality overflows", make_bids(7, 1, 1e308, 2.0, KIND_PLACE), "price", False),
    ("cancel with quality 0", make_bids(7, 1, np.nan, 0.0, KIND_CANCEL), "", True),
    ("decline with NaN price", make_bids(7, 1, np.nan, 0.0, KIND_DECLINE), "", True),
    ("price 0, quality 1", make_bids(7, 1, 0.0, 1.0, KIND_PLACE), "", True),
]


def _queue(rec: np.ndarray) -> None:
    BidQueue(8).push_many(rec)


def _ring(rec: np.ndarray, tmp_path: object) -> None:
    with BidRing.create(f"{tmp_path}/v.ring", capacity=8) as ring:
        ring.append_many(rec)


def _engine(rec: np.ndarray) -> None:
    with AuctionEngine(workers=1, pin=False) as eng:
        eng.submit_records(rec)


@pytest.mark.parametrize(("what", "rec", "field", "ok"), CASES, ids=[c[0] for c in CASES])
def test_queue_ring_and_engine_agree(what: str, rec: np.ndarray, field: str, ok: bool,
                                     tmp_path: object) -> None:
    calls = {"queue": _queue, "ring": lambda r: _ring(r, tmp_path), "engine": _engine}
    for name, call in calls.items():
        if ok:
            call(rec)
        else:
            with pytest.raises(InvalidBidError, match=rf"{field}\[0\] = ") as e:
                call(rec)
            assert e.type is InvalidBidError, name


@pytest.mark.parametrize("quality", [0.0, -1.0, np.nan, np.inf])
def test_clearing_refuses_what_the_intake_refuses(quality: float) -> None:
    batch = AuctionBatch(np.array([0, 2]), np.array([2.0, 1.0]), np.array([1.0, quality]))
    with pytest.raises(InvalidBidError, match=r"^quality\[1\] = "):
        rtbcore.clear_second_price(batch)
    with pytest.raises(InvalidBidError, match=r"quality\[0\] = "):
        BidQueue(4).push_many(make_bids(1, 1, 1.0, quality))


def test_clearing_refuses_an_overflowing_adjusted_bid_as_the_intake_does() -> None:
    batch = AuctionBatch(np.array([0, 2]), np.array([2.0, 1e308]), np.array([1.0, 2.0]))
    match = r"^prices\[1\] = 1e308: price × quality overflows"
    with pytest.raises(InvalidBidError, match=match):
        rtbcore.clear_second_price(batch)
    with pytest.raises(InvalidBidError, match=r"^price\[0\] = 1e308: price × quality"):
        BidQueue(4).push_many(make_bids(1, 1, 1e308, 2.0))


def test_huge_values_print_compactly() -> None:
    match = r"^records\.price\[1\] = -1e308: must be finite"
    with pytest.raises(InvalidBidError, match=match) as e:
        with AuctionEngine(workers=1, pin=False) as eng:
            eng.submit_records(make_bids([1, 2], 1, [1.0, -1e308]))
    assert len(str(e.value)) < 80
    match = r"^auction_ids\[0\] = -5: must be in 0\.\.=2\*\*63-1"
    with pytest.raises(InvalidBidError, match=match):
        with AuctionEngine(workers=1, pin=False) as eng:
            eng.submit([-5], [1], [1.0])


@pytest.mark.parametrize("bad", [2**63, 2**64 - 1, -1])
def test_an_id_out_of_range_is_a_bid_error_in_every_engine_call(bad: int) -> None:
    """The id range is part of the bid rule, whichever layer (the int64 conversion in Python or
    the core) notices it first."""
    with AuctionEngine(workers=1, pin=False) as eng:
        rule = rf"= {bad}: must be in 0\.\.=2\*\*63-1"
        with pytest.raises(InvalidBidError, match=r"auction_ids\[0\] " + rule):
            eng.submit([bad], [1], [1.0])
        with pytest.raises(InvalidBidError, match=r"bidder_ids\[1\] " + rule):
            eng.submit([1, 2], [1, bad], [1.0, 1.0])
        with pytest.raises(InvalidInputError, match="auction_id"):
            eng.submit_one(bad, 1, 1.0)
        assert eng.stats()["submitted"] == 0
