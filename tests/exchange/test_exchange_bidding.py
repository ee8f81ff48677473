"""Auctions end to end: announcement, filters, PlaceBid -> BidAccepted -> AuctionWon /
AuctionLost, update and cancel, idempotent request ids, per-buyer seq."""

from __future__ import annotations

import uuid

from exchange.client import Client, R, msg, open_auction, pb, place


def _aid(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}"


def _publisher(server) -> Client:
    _, key = server.fresh("p")
    c = Client(server.url)
    c.login(key, pb.Subscribe(event_types=["auction_closed"]))
    return c


def test_announce_bid_accept_and_results(server):
    aid = _aid("flow")
    with _publisher(server) as pub, Client(server.url) as b1, Client(server.url) as b2:
        n1, k1 = server.fresh("b")
        n2, k2 = server.fresh("b")
        b1.login(k1, pb.Subscribe())
        b2.login(k2, pb.Subscribe())
        pub.send(open_auction(aid, expected_bids=2, tmax_ms=5000,
                              attributes={"site": "example"}, floor=500_000))
        opened = pub.expect("auction_opened").auction_opened
        assert opened.auction_id == aid and opened.deadline.seconds > 0

        for c in (b1, b2):
            ev = c.expect("auction_started")
            s = ev.auction_started
            assert s.auction_id == aid and dict(s.attributes) == {"site": "example"}
            assert s.floor.micros == 500_000 and s.expected_bids == 2
            assert s.deadline == opened.deadline
            assert s.auction_type == pb.SECOND_PRICE
        b1.send(place(aid, 1_000_000, request_id="r1"))
        acc1 = b1.expect("bid_accepted")
        b2.send(place(aid, 2_000_000, request_id="r2"))
        acc2 = b2.expect("bid_accepted")
        assert acc1.request_id == "r1" and acc1.bid_accepted.auction_id == aid
        assert acc1.bid_accepted.amount.micros == 1_000_000
        assert acc1.bid_accepted.bid_id and acc1.bid_accepted.bid_id != acc2.bid_accepted.bid_id

        won = b2.expect("auction_won")
        lost = b1.expect("auction_lost")
        closed = pub.expect("auction_closed").auction_closed
    w = won.auction_won
    assert w.auction_id == aid and w.bid_id == acc2.bid_accepted.bid_id
    # second price: at least the runner-up's bid, at most the winner's
    assert 1_000_000 <= w.price.micros <= 2_000_000
    assert lost.auction_lost.bid_id == acc1.bid_accepted.bid_id
    assert lost.auction_lost.loss_reason == 102
    assert closed.auction_id == aid and closed.n_bids == 2
    assert closed.closed_by == pb.ALL_BIDS
    assert [(x.buyer_id, x.bid_id, x.price.micros) for x in closed.winners] == [
        (n2, w.bid_id, w.price.micros)]
    assert n1 != n2
    # each buyer's stream: seq 1, 2, 3 (started, accepted, result), event ids "<buyer>:<seq>"
    for c, name in ((b1, n1), (b2, n2)):
        stream = [e for e in c.events if e.seq]
        assert [e.seq for e in stream] == [1, 2, 3]
        assert [e.event_id for e in stream] == [f"{name}:{i}" for i in (1, 2, 3)]


def test_filters_choose_the_announcements(server):
    tag = uuid.uuid4().hex[:8]
    x, y, z = f"x-{tag}", f"y-{tag}", f"z-{tag}"
    with _publisher(server) as pub, Client(server.url) as fr, Client(server.url) as small:
        fr.login(server.fresh("b")[1],
                 pb.Subscribe(filters={"country": "FR,BE", "run": tag}))
        small.login(server.fresh("b")[1],
                    pb.Subscribe(filters={"max_width": "200", "run": tag}))
        pub.send(open_auction(x, attributes={"country": "FR", "width": "300", "run": tag}),
                 open_auction(y, attributes={"country": "DE", "width": "100", "run": tag}),
                 open_auction(z, attributes={"country": "BE", "width": "150", "run": tag}))
        got_fr = [fr.expect("auction_started").auction_started.auction_id for _ in range(2)]
        got_small = [small.expect("auction_started").auction_started.auction_id
                     for _ in range(2)]
        fr.nothing(0.2)
        small.nothing(0.2)
    assert got_fr == [x, z]
    assert got_small == [y, z]


def test_event_types_limit_the_stream_but_not_the_answers(server):
    aid = _aid("types")
    with _publisher(server) as pub, Client(server.url) as b:
        b.login(server.fresh("b")[1], pb.Subscribe(event_types=["auction_won"]))
        pub.send(open_auction(aid, expected_bids=1, tmax_ms=5000))
        pub.expect("auction_opened")
        b.nothing(0.3)  # no auction_started: not in the buyer's event types
        b.send(place(aid, 1_500_000))
        assert b.expect("bid_accepted").bid_accepted.auction_id == aid  # an answer: delivered
        assert b.expect("auction_won").auction_won.auction_id == aid
        pub.expect("auction_closed")


def test_update_and_cancel(server):
    aid = _aid("upd")
    with _publisher(server) as pub, Client(server.url) as b1, Client(server.url) as b2:
        n1, k1 = server.fresh("b")
        b1.login(k1, pb.Subscribe())
        b2.login(server.fresh("b")[1], pb.Subscribe())
        pub.send(open_auction(aid, tmax_ms=600))  # closes at its deadline
        pub.expect("auction_opened")
        b1.expect("auction_started")
        b2.expect("auction_started")
        b1.send(place(aid, 1_000_000))
        bid1 = b1.expect("bid_accepted").bid_accepted.bid_id
        b2.send(place(aid, 2_000_000))
        bid2 = b2.expect("bid_accepted").bid_accepted.bid_id
        b1.send(msg("u", update_bid=pb.UpdateBid(bid_id=bid1, amount=pb.Money(micros=3_000_000))))
        up = b1.expect("bid_update")
        assert up.request_id == "u" and up.bid_update.status == pb.UPDATED
        assert up.bid_update.bid_id == bid1 and up.bid_update.amount.micros == 3_000_000
        b2.send(msg("c", cancel_bid=pb.CancelBid(bid_id=bid2)))
        cancelled = b2.expect("bid_update").bid_update
        assert cancelled.status == pb.CANCELLED and cancelled.bid_id == bid2
        # a cancelled bid is no longer live
        b2.send(msg(cancel_bid=pb.CancelBid(bid_id=bid2)))
        assert b2.expect("bid_rejected").bid_rejected.reason == R.UNKNOWN_BID

        won = b1.expect("auction_won").auction_won
        closed = pub.expect("auction_closed").auction_closed
        b2.nothing(0.3)  # no result for a withdrawn bid
    assert won.bid_id == bid1
    assert closed.closed_by == pb.DEADLINE and closed.n_bids == 1
    assert [x.buyer_id for x in closed.winners] == [n1]


def test_a_repeated_request_id_is_answered_again_not_applied_again(server):
    aid = _aid("idem")
    with _publisher(server) as pub, Client(server.url) as b:
        b.login(server.fresh("b")[1], pb.Subscribe())
        pub.send(open_auction(aid, tmax_ms=800))
        pub.expect("auction_opened")
        b.expect("auction_started")
        b.send(place(aid, 1_000_000, request_id="same"))
        first = b.expect("bid_accepted")
        b.send(place(aid, 1_000_000, request_id="same"))
        again = b.next()
        # the original answer: same event, same seq
        assert again.WhichOneof("event") == "bid_accepted"
        assert again.seq == first.seq and again.event_id == first.event_id
        assert again.bid_accepted.bid_id == first.bid_accepted.bid_id
        # without a request id the same bid is applied, and refused: one live bid per buyer
        b.send(place(aid, 1_000_000))
        rej = b.expect("bid_rejected")
        assert rej.bid_rejected.reason == R.ALREADY_BID and rej.seq == first.seq + 1
        closed = pub.expect("auction_closed").auction_closed
        assert closed.n_bids == 1
        b.expect("auction_won")


def test_one_frame_carries_many_bids_answered_in_order(server):
    ids = [_aid("batch") for _ in range(20)]
    with _publisher(server) as pub, Client(server.url) as b:
        b.login(server.fresh("b")[1], pb.Subscribe())
        pub.send(*[open_auction(a, expected_bids=1, tmax_ms=5000) for a in ids])
        assert [b.expect("auction_started").auction_started.auction_id for _ in ids] == ids
        b.send(*[place(a, 1_000_000 + i, request_id=f"r{i}") for i, a in enumerate(ids)])
        accepted = [b.expect("bid_accepted") for _ in ids]
        assert [e.request_id for e in accepted] == [f"r{i}" for i in range(len(ids))]
        assert [e.bid_accepted.auction_id for e in accepted] == ids
        closed = [pub.expect("auction_closed", skip=("auction_opened",)).auction_closed.auction_id
                  for _ in ids]
        assert sorted(closed) == sorted(ids)
        while sum(e.WhichOneof("event") == "auction_won" for e in b.events) < len(ids):
            b.next()
    seqs = [e.seq for e in b.events if e.seq]
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate, in order
    # the engine closes each auction as soon as the bid reaches it, yet the buyer hears that
    # its bid was accepted before it hears that it won
    kinds = [e.WhichOneof("event") for e in b.events if e.seq]
    assert kinds.index("auction_won") > max(i for i, k in enumerate(kinds) if k == "bid_accepted")
