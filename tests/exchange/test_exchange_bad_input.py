"""Bad input gets a BidRejected / Error event or a documented close code, and the server keeps
serving (every test ends by checking the connection, or a new one, still works)."""

from __future__ import annotations

import uuid

from exchange.client import Client, R, msg, open_auction, pb, place


def _aid(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}"


def _still_serving(c: Client) -> None:
    c.send(msg("ping", subscribe=pb.Subscribe()))
    assert c.expect("subscription_ack", skip=("auction_started",)).request_id == "ping"


def _open(server, aid: str, **kw) -> None:
    with Client(server.url) as pub:
        pub.login(server.fresh("p")[1])
        pub.send(open_auction(aid, **kw))
        pub.expect("auction_opened")


def test_a_frame_that_does_not_decode_is_an_error_event_and_the_connection_stays(server):
    with Client(server.url) as c:
        c.login(server.fresh("b")[1])
        c.send_raw(b"\xff\xff\xff\xff")
        ev = c.expect("error")
        assert ev.error.reason == R.MALFORMED and ev.seq == 0 and ev.error.message
        _still_serving(c)
    with Client(server.url, json=True) as c:
        c.login(server.fresh("b")[1])
        c.send_raw('{"messages": [{"placeBid": {"amount": {"micros": "NaN"}}}]}')
        assert c.expect("error").error.reason == R.MALFORMED
        c.send_raw("not json")
        assert c.expect("error").error.reason == R.MALFORMED
        _still_serving(c)


def test_an_empty_or_unknown_message_is_rejected(server):
    with Client(server.url) as c:
        c.login(server.fresh("b")[1])
        c.send(msg("empty"))
        ev = c.expect("bid_rejected")
        assert ev.bid_rejected.reason == R.UNKNOWN_MESSAGE and ev.request_id == "empty"
        # a BidMessage whose only field is one this version does not know (field 99)
        unknown = pb.BidMessage(request_id="future").SerializeToString() + b"\x9a\x06\x00"
        c.send_raw(b"\x0a" + bytes([len(unknown)]) + unknown)
        ev = c.expect("bid_rejected")
        assert ev.bid_rejected.reason == R.UNKNOWN_MESSAGE and ev.request_id == "future"
        _still_serving(c)


def test_a_frame_above_the_maximum_size_closes_with_1009(server):
    with Client(server.url) as c:
        c.login(server.fresh("b")[1])
        c.send(place("x" * 64, 1, request_id="y" * 64))
        c.expect("bid_rejected")  # a normal-sized frame is fine
        c.send_raw(b"\x00" * 70_000)  # max_frame_bytes = 65536 in the test config
        assert c.closed_with() == 1009
    with Client(server.url) as c:
        assert c.login(server.fresh("b")[1]).auth_result.ok


def test_too_many_messages_in_one_frame_apply_none(server):
    aid = _aid("many")
    _open(server, aid, tmax_ms=5000)
    with Client(server.url) as c:
        c.login(server.fresh("b")[1])
        c.send(place(aid, 1_000_000), *[msg(ack=pb.Ack(seq=0))] * 64)  # limit: 64
        ev = c.next()
        kind = ev.WhichOneof("event")
        reason = ev.error.reason if kind == "error" else ev.bid_rejected.reason
        assert reason == R.TOO_MANY_MESSAGES
        c.send(place(aid, 1_000_000))  # the bid of the refused frame was not applied
        assert c.expect("bid_accepted").bid_accepted.auction_id == aid


def test_bids_on_unknown_and_closed_auctions(server):
    aid = _aid("closed")
    with Client(server.url) as c:
        c.login(server.fresh("b")[1])
        c.send(place(_aid("never-opened"), 1_000_000, request_id="u"))
        ev = c.expect("bid_rejected")
        assert ev.bid_rejected.reason == R.UNKNOWN_AUCTION and ev.request_id == "u"
        assert ev.seq > 0  # attributable: part of the buyer's stream
        with Client(server.url) as pub:
            pub.login(server.fresh("p")[1], pb.Subscribe(event_types=["auction_closed"]))
            pub.send(open_auction(aid, expected_bids=1, tmax_ms=5000))
            pub.expect("auction_opened")
            c.send(place(aid, 1_000_000))
            c.expect("bid_accepted")
            pub.expect("auction_closed")
        c.send(place(aid, 2_000_000, request_id="late"))
        ev = c.expect("bid_rejected", skip=("auction_won",))
        assert ev.bid_rejected.reason == R.AUCTION_CLOSED and ev.bid_rejected.auction_id == aid


def test_amounts_must_be_positive_and_in_the_exchange_currency(server):
    aid = _aid("amount")
    _open(server, aid, tmax_ms=5000, floor=100_000)
    with Client(server.url) as c:
        c.login(server.fresh("b")[1])
        for micros in (0, -5):
            c.send(place(aid, micros))
            assert c.expect("bid_rejected").bid_rejected.reason == R.INVALID_AMOUNT
        c.send(msg(place_bid=pb.PlaceBid(auction_id=aid)))  # no amount at all
        assert c.expect("bid_rejected").bid_rejected.reason == R.INVALID_AMOUNT
        c.send(msg(place_bid=pb.PlaceBid(auction_id=aid, amount=pb.Money(currency="EUR",
                                                                         micros=1_000_000))))
        ev = c.expect("bid_rejected").bid_rejected
        assert ev.reason == R.CURRENCY_MISMATCH and "EUR" in ev.message
        c.send(place(aid, 50_000))
        assert c.expect("bid_rejected").bid_rejected.reason == R.BELOW_FLOOR
        # none of those was applied: the first valid bid is accepted, not ALREADY_BID
        c.send(msg(place_bid=pb.PlaceBid(auction_id=aid, amount=pb.Money(currency="USD",
                                                                         micros=1_000_000))))
        assert c.expect("bid_accepted").bid_accepted.amount.micros == 1_000_000


def test_a_buyer_cannot_act_for_another_or_on_its_bids(server):
    aid = _aid("other")
    with Client(server.url) as pub, Client(server.url) as owner, Client(server.url) as thief:
        pub.login(server.fresh("p")[1], pb.Subscribe(event_types=["auction_closed"]))
        owner_name, owner_key = server.fresh("b")
        owner.login(owner_key, pb.Subscribe())
        thief.login(server.fresh("b")[1])
        pub.send(open_auction(aid, tmax_ms=700))
        pub.expect("auction_opened")
        thief.send(place(aid, 9_000_000, buyer_id=owner_name))
        assert thief.expect("bid_rejected").bid_rejected.reason == R.FORBIDDEN
        owner.send(place(aid, 1_000_000))
        bid = owner.expect("bid_accepted", skip=("auction_started",)).bid_accepted.bid_id
        thief.send(msg(update_bid=pb.UpdateBid(bid_id=bid, amount=pb.Money(micros=1))),
                   msg(cancel_bid=pb.CancelBid(bid_id=bid)))
        # the protocol lists both codes for another buyer's bid (FORBIDDEN: "acting on its
        # bid", UNKNOWN_BID: "not the buyer's"); either way nothing is applied
        for _ in range(2):
            assert thief.expect("bid_rejected").bid_rejected.reason in (R.FORBIDDEN,
                                                                         R.UNKNOWN_BID)
        won = owner.expect("auction_won").auction_won
        closed = pub.expect("auction_closed").auction_closed
    assert won.bid_id == bid
    assert closed.n_bids == 1 and closed.winners[0].buyer_id == owner_name


def test_unknown_bid_ids_and_bad_fields(server):
    with Client(server.url) as c:
        c.login(server.fresh("p")[1])
        c.send(msg(update_bid=pb.UpdateBid(bid_id="no-such-bid", amount=pb.Money(micros=1))))
        assert c.expect("bid_rejected").bid_rejected.reason == R.UNKNOWN_BID
        c.send(open_auction("x" * 65))
        assert c.expect("bid_rejected").bid_rejected.reason == R.INVALID_FIELD
        c.send(msg(subscribe=pb.Subscribe(event_types=["no_such_event"])))
        assert c.expect("bid_rejected").bid_rejected.reason == R.INVALID_FIELD
        aid = _aid("dup")
        c.send(open_auction(aid), open_auction(aid))
        c.expect("auction_opened")
        assert c.expect("bid_rejected").bid_rejected.reason == R.DUPLICATE_AUCTION
