"""One bid-validation rule: the queue, the ring, the engine and clearing accept and refuse the
same records (the rule is written once, in ``rust/core/src/record.rs``; see docs/errors.md)."""

from __future__ import annotations

import numpy as np
import pytest

import rtbcore
from rtbcore import (
    KIND_CANCEL,
    KIND_PLACE,
    AuctionBatch,
    AuctionEngine,
    BidQueue,
    BidRing,
    make_bids,
)
from rtbcore.errors import InvalidBidError

#: (what is wrong, the record, the field an error names, accepted by the rule)
CASES = [
    ("quality 0", make_bids(7, 1, 1.0, 0.0, KIND_PLACE), "quality", False),
    ("negative price", make_bids(7, 1, -1.0, 1.0, KIND_PLACE), "price", False),
    ("NaN quality", make_bids(7, 1, 1.0, np.nan, KIND_PLACE), "quality", False),
    ("unknown kind", make_bids(7, 1, 1.0, 1.0, 3), "kind", False),
    ("auction id 2**63", make_bids(2**63, 1, 1.0, 1.0, KIND_PLACE), "auction_id", False),
    ("bidder id 2**64-1", make_bids(7, 2**64 - 1, 1.0, 1.0, KIND_PLACE), "bidder_id", False),
    ("cancel with quality 0", make_bids(7, 1, np.nan, 0.0, KIND_CANCEL), "", True),
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


def test_huge_values_print_compactly() -> None:
    huge = r"^records\.price\[1\] = -1e308: must be finite"
    with pytest.raises(InvalidBidError, match=huge) as e:
        with AuctionEngine(workers=1, pin=False) as eng:
            eng.submit_records(make_bids([1, 2], 1, [1.0, -1e308]))
    assert len(str(e.value)) < 80
    negative = r"^auction_ids\[0\] = -5: must be in 0\.\.=2\*\*63-1"
    with pytest.raises(InvalidBidError, match=negative):
        with AuctionEngine(workers=1, pin=False) as eng:
            eng.submit([-5], [1], [1.0])
