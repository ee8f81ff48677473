"""Per-bid outcomes of the engine (``AuctionEngine(outcomes=True)``, ``poll_outcomes``) against a
brute-force clearing of every auction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtbcore
from rtbcore.errors import InvalidInputError
from rtbcore.records import (
    KIND_DECLINE,
    KIND_PLACE,
    KIND_UPDATE,
    LOSS_BELOW_FLOOR,
    LOSS_OUTBID,
    LOSS_WON,
    NO_BIDDER,
    OUTCOME_DTYPE,
    OUTCOME_NO_SLOT,
)

# Multiples of 1/4 and qualities that are powers of two: every product and quotient the
# oracle forms is exact, so the comparison can be exact too.
PRICE = st.integers(0, 12).map(lambda k: k / 4)
QUALITY = st.sampled_from([0.5, 1.0, 2.0])
# per bidder: its first bid, an optional update, or a no-bid
ACTION = st.tuples(st.sampled_from(["place", "update", "decline"]), PRICE, PRICE, QUALITY)
AUCTION = st.tuples(
    st.sampled_from([0.0, 0.5, 1.0]),  # reserve
    st.lists(ACTION, min_size=1, max_size=6),
)


def _drain(eng: rtbcore.AuctionEngine) -> tuple[np.ndarray, np.ndarray, int]:
    eng.close()
    results = [eng.poll(timeout_ms=math.inf)]
    while results[-1].size:
        results.append(eng.poll(timeout_ms=math.inf))
    outs, dropped = [], 0
    while True:
        rows, d = eng.poll_outcomes_batch(1000)
        dropped += d
        if not rows.size:
            break
        outs.append(rows)
    return np.concatenate(results), np.concatenate(outs or [np.empty(0, OUTCOME_DTYPE)]), dropped


def _oracle(mechanism, reserve, increment, live):
    """Brute-force clearing of one auction. ``live``: bidder -> (price, quality).
    Returns (winner or -1, paid, {bidder: (won, paid, loss_reason, min_to_win)})."""
    elig = {b: p * q for b, (p, q) in live.items() if p > 0 and p >= reserve}
    out = {}
    if not elig:
        for b in live:
            out[b] = (0, math.nan, LOSS_BELOW_FLOOR, reserve)
        return -1, 0.0, out
    top = max(elig.values())
    w = min(b for b, a in elig.items() if a == top)  # ties: the lowest bidder id
    pw, qw = live[w]
    others = [a for b, a in elig.items() if b != w]
    adj2 = max(others) if others else None
    if mechanism == "first_price":
        paid = pw
    else:
        paid = min(pw, max(reserve, (adj2 or 0.0) / qw) + increment)
    out[w] = (1, paid, LOSS_WON, reserve if adj2 is None else max(reserve, adj2 / qw))
    for b, (_p, q) in live.items():
        if b == w:
            continue
        reason = LOSS_OUTBID if b in elig else LOSS_BELOW_FLOOR
        target = top if mechanism == "first_price" else paid * qw
        out[b] = (0, math.nan, reason, max(reserve, target / q))
    return w, paid, out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mechanism=st.sampled_from(["first_price", "second_price"]),
    increment=st.sampled_from([0.0, 0.25]),
    auctions=st.lists(AUCTION, min_size=1, max_size=25),
    workers=st.integers(1, 3),
)
def test_outcomes_match_brute_force(mechanism, increment, auctions, workers):
    eng = rtbcore.AuctionEngine(
        workers=workers, pin=False, mechanism=mechanism, increment=increment, tmax_ms=60_000,
        outcomes=True,
    )
    ids = np.arange(len(auctions), dtype=np.int64) * 7919 + 3
    # one answer more than the bidders: a last no-bid closes each auction after its updates
    eng.open(
        ids, reserve=[r for r, _ in auctions], expected_bids=[len(a) + 1 for _, a in auctions]
    )
    a_ids, b_ids, prices, quals, kinds = [], [], [], [], []
    expect = {}
    for aid, (reserve, actions) in zip(ids.tolist(), auctions, strict=True):
        live = {}
        for j, (what, p1, p2, q) in enumerate(actions):
            bidder = 100 + 13 * j
            if what == "decline":
                a_ids.append(aid), b_ids.append(bidder), prices.append(0.0)
                quals.append(1.0), kinds.append(KIND_DECLINE)
                continue
            a_ids.append(aid), b_ids.append(bidder), prices.append(p1)
            quals.append(q), kinds.append(KIND_PLACE)
            live[bidder] = (p1, q)
            if what == "update":
                a_ids.append(aid), b_ids.append(bidder), prices.append(p2)
                quals.append(q), kinds.append(KIND_UPDATE)
                live[bidder] = (p2, q)
        a_ids.append(aid), b_ids.append(1), prices.append(0.0)
        quals.append(1.0), kinds.append(KIND_DECLINE)
        expect[aid] = _oracle(mechanism, reserve, increment, live)
    eng.submit(a_ids, b_ids, prices, quality=quals, kinds=np.array(kinds, np.uint8))
    results, outs, dropped = _drain(eng)
    assert dropped == 0 and eng.stats()["outcomes_dropped"] == 0
    assert eng.stats()["outcomes"] == outs.size
    assert results.size == len(auctions)
    assert outs.size == sum(len(v[2]) for v in expect.values())
    by_auction = {int(r["auction_id"]): r for r in results}
    seen = set()
    for o in outs:
        aid, bidder = int(o["auction_id"]), int(o["bidder_id"])
        assert (aid, bidder) not in seen  # one row per live bid
        seen.add((aid, bidder))
        w, paid, per_bid = expect[aid]
        won, want_paid, reason, mtw = per_bid[bidder]
        row = by_auction[aid]
        assert row["winner_bidder"] == (NO_BIDDER if w < 0 else w)
        assert o["won"] == won and o["loss_reason"] == reason
        assert o["closed_by"] == rtbcore.records.CLOSED_BY_ALL_BIDS
        if won:
            assert o["price_paid"] == paid == row["price"]
            assert o["min_to_win"] == mtw == row["min_to_win"]
            assert o["slot"] == 0
        else:
            assert math.isnan(o["price_paid"]) and o["slot"] == OUTCOME_NO_SLOT
            assert o["min_to_win"] == mtw
    # exactly one winner in each auction that sold, none in the others
    for aid, (w, _paid, _per) in expect.items():
        winners = outs[(outs["auction_id"] == aid) & (outs["won"] == 1)]
        assert winners.size == (w >= 0)


def test_gsp_outcomes_agree_with_the_slot_rows():
    eng = rtbcore.AuctionEngine(
        workers=2, pin=False, slot_ctrs=[1.0, 0.5], increment=0.0, tmax_ms=60_000,
        outcomes=True,
    )
    eng.open([1, 2], reserve=[0.5, 0.5], expected_bids=[4, 1])
    eng.submit([1, 1, 1, 1, 2], [10, 11, 12, 13, 20], [3.0, 2.0, 1.0, 0.25, 4.0])
    results, outs, _ = _drain(eng)
    got = {(int(o["auction_id"]), int(o["bidder_id"])): o for o in outs}
    assert len(got) == 5
    for r in results:
        if r["winner_bidder"] != NO_BIDDER:
            o = got[(int(r["auction_id"]), int(r["winner_bidder"]))]
            assert o["won"] == 1 and o["slot"] == r["slot"]
            assert o["price_paid"] == r["price"] and o["min_to_win"] == r["min_to_win"]
    # auction 1: bidders 10, 11 fill the slots; 12 is outbid and must tie 11 (adj 2.0)
    assert got[(1, 12)]["loss_reason"] == LOSS_OUTBID and got[(1, 12)]["min_to_win"] == 2.0
    assert got[(1, 13)]["loss_reason"] == LOSS_BELOW_FLOOR
    # auction 2: one bid, second slot empty
    assert got[(2, 20)]["won"] == 1 and got[(2, 20)]["slot"] == 0


def test_rows_beyond_the_bound_are_counted_never_lost_silently():
    eng = rtbcore.AuctionEngine(
        workers=1, pin=False, tmax_ms=60_000, outcomes=True, outcome_capacity=10,
    )
    assert eng.outcome_capacity == 10
    n = 50
    eng.open(np.arange(n), expected_bids=2)
    eng.submit(np.repeat(np.arange(n), 2), np.tile([1, 2], n), np.ones(2 * n))
    results, outs, dropped = _drain(eng)
    assert results.size == n
    s = eng.stats()
    assert outs.size <= 10 and outs.size + dropped == 2 * n
    assert s["outcomes"] == 2 * n and s["outcomes_dropped"] == dropped
    # once polled, room is free again: nothing more is reported as dropped
    assert eng.poll_outcomes_batch()[1] == 0


def test_poll_outcomes_hands_rows_out_once_in_pieces():
    with rtbcore.AuctionEngine(workers=2, pin=False, tmax_ms=60_000, outcomes=True) as eng:
        eng.open(np.arange(20), expected_bids=3)
        prices = np.tile([1.0, 2.0, 3.0], 20)
        eng.submit(np.repeat(np.arange(20), 3), np.tile([5, 6, 7], 20), prices)
        got = 0
        polled = 0
        while polled < 20:
            polled += eng.poll(timeout_ms=10_000).size
        parts = []
        while (rows := eng.poll_outcomes(7)).size:
            assert rows.size <= 7 and rows.dtype == OUTCOME_DTYPE
            parts.append(rows)
            got += rows.size
        assert got == 60
        allr = np.concatenate(parts)
        assert np.unique(allr[["auction_id", "bidder_id"]]).size == 60
        assert (allr["won"] == (allr["bidder_id"] == 7)).all()


def test_outcomes_are_off_by_default_and_the_arguments_are_checked():
    with rtbcore.AuctionEngine(workers=1, pin=False) as eng:
        assert eng.outcome_capacity is None
        with pytest.raises(InvalidInputError, match="outcomes=True"):
            eng.poll_outcomes()
    with pytest.raises(InvalidInputError, match="outcome_capacity"):
        rtbcore.AuctionEngine(workers=1, pin=False, outcome_capacity=5)
    with pytest.raises(InvalidInputError, match="outcomes"):
        rtbcore.AuctionEngine(workers=1, pin=False, outcomes="yes")
    with pytest.raises(InvalidInputError, match="outcome_capacity"):
        rtbcore.AuctionEngine(workers=1, pin=False, outcomes=True, outcome_capacity=-1)
