"""An explicit no-bid: a decline counts toward expected_bids, withdraws a placed bid, and is
validated by the one bid rule."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rtbcore import KIND_DECLINE, AuctionEngine, BidQueue, make_bids
from rtbcore.errors import InvalidBidError, InvalidInputError
from rtbcore.records import CLOSED_BY_ALL_BIDS, NO_BIDDER

LONG = 60_000.0  # tmax in ms: the deadline never closes an auction in these tests


def _rows(eng: AuctionEngine, n: int, timeout_s: float = 10.0) -> np.ndarray:
    parts, got, t0 = [], 0, time.monotonic()
    while got < n and time.monotonic() - t0 < timeout_s:
        r = eng.poll(timeout_ms=50)
        parts.append(r)
        got += r.shape[0]
    return np.concatenate(parts) if parts else np.empty(0)


def test_declines_close_an_auction_without_waiting_for_tmax():
    with AuctionEngine(workers=2, pin=False, mechanism="first_price", reserve=0.0,
                       tmax_ms=LONG) as eng:  # fmt: skip
        ids = np.arange(100)
        eng.open(ids, expected_bids=3)
        eng.submit(ids, np.full(100, 1), np.full(100, 2.0))  # bidder 1 bids everywhere
        eng.decline(ids, 2)                             # bidder 2 says no (vectorised)
        assert eng.decline(ids[:50], np.full(50, 3)) == 50  # bidder 3 declines half
        r = _rows(eng, 50)
        assert r.shape[0] == 50 and (r["closed_by"] == CLOSED_BY_ALL_BIDS).all()
        assert sorted(r["auction_id"].tolist()) == list(range(50))
        # a declined bidder takes no part: the bidder that bid wins, alone
        assert (r["winner_bidder"] == 1).all() and (r["n_bids"] == 1).all()
        assert eng.stats()["bids_declined"] == 150
        assert eng.poll(timeout_ms=100).shape[0] == 0  # the other half still waits


def test_a_decline_withdraws_a_bid_and_counts_once():
    with AuctionEngine(workers=1, pin=False, reserve=0.0, increment=0.0, tmax_ms=LONG) as eng:
        eng.open(7, expected_bids=3)
        eng.submit([7, 7], [1, 2], [5.0, 3.0])
        eng.decline(7, 1)  # bidder 1 changes its mind: its bid is withdrawn
        eng.decline(7, 1)  # a second answer from the same bidder adds nothing
        time.sleep(0.2)
        assert eng.poll(timeout_ms=50).shape[0] == 0  # 2 of 3 bidders have answered
        eng.decline(7, 4)
        (row,) = _rows(eng, 1)
    assert (row["winner_bidder"], row["n_bids"], row["closed_by"]) == (2, 1, CLOSED_BY_ALL_BIDS)


def test_decline_records_pass_the_one_rule_everywhere():
    rec = make_bids([1, 2], [3, 4], [np.nan, -1.0], [0.0, 0.0], KIND_DECLINE)
    q = BidQueue(4)
    q.push_many(rec)  # price and quality are not read for a decline
    assert q.pop_many(4)["kind"].tolist() == [KIND_DECLINE] * 2
    with AuctionEngine(workers=1, pin=False, tmax_ms=LONG) as eng:
        eng.open([1, 2], expected_bids=1)
        eng.submit_records(rec)
        r = _rows(eng, 2)
    assert (r["winner_bidder"] == NO_BIDDER).all() and (r["closed_by"] == CLOSED_BY_ALL_BIDS).all()
    with pytest.raises(InvalidBidError, match=r"kind\[0\] = 4"):
        BidQueue(4).push_many(make_bids(1, 1, 1.0, 1.0, KIND_DECLINE + 1))


def test_decline_arguments_are_named():
    with AuctionEngine(workers=1, pin=False) as eng:
        with pytest.raises(InvalidBidError, match="bidder_ids"):
            eng.decline([1, 2], [-1, 2])
        with pytest.raises(InvalidInputError, match="auction_ids"):
            eng.decline([1.5], 2)
        with pytest.raises(InvalidInputError):
            eng.decline([1, 2, 3], [1, 2])
        assert eng.stats()["bids_declined"] == 0
