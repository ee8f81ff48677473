"""The client's native per-event work (rust/py/src/client.rs) without a server: Event reads
every field as the protocol classes do, the stream drops duplicates, records announcements,
hands over the events Python judges in their place, settles place_bids answers, refuses
malformed frames without taking any of them in, and place_bids checks bids as place_bid does."""

from __future__ import annotations

import asyncio
import copy
import math
from typing import Any

import _rtbcore
import pytest
from google.protobuf.message import DecodeError

from rtbcore.client import BiddingClient, Event
from rtbcore.client import bidding_pb2 as pb
from rtbcore.client._session import Connection, _number
from rtbcore.errors import InvalidInputError

PREFIX = "0a1b2c3d4e-"


def frame(*events: Any) -> bytes:
    return pb.ServerFrame(events=list(events)).SerializeToString()


def started(seq: int, aid: str, **kw: Any) -> Any:
    return pb.BidEvent(seq=seq, auction_started=pb.AuctionStarted(auction_id=aid, **kw))


def test_event_reads_every_field_as_the_protocol_classes_do() -> None:
    a = pb.AuctionStarted(auction_id="a1", attributes={"competition_level": " 0.75 ", "x": "y"},
                          floor=pb.Money(micros=1_500_000), expected_bids=3)
    a.deadline.FromNanoseconds(1_700_000_000_250_000_000)
    raw = pb.BidEvent(event_id="e1", seq=7, request_id="r1", auction_started=a)
    raw.timestamp.FromNanoseconds(1_700_000_000_500_000_000)
    ev = Event(raw)
    assert ev.raw is raw
    assert (ev.type, ev.seq, ev.event_id, ev.request_id) == ("auction_started", 7, "e1", "r1")
    assert (ev.auction_id, ev.call_id, ev.bid_id) == ("a1", "a1", "")
    assert ev.attributes == {"competition_level": " 0.75 ", "x": "y"}
    assert ev.competition_level == 0.75  # Python's float(): surrounding spaces are allowed
    assert (ev.floor, ev.floor_micros, ev.expected_bids) == (1.5, 1_500_000, 3)
    assert ev.deadline == 1_700_000_000.25 and ev.timestamp == 1_700_000_000.5
    assert (ev.amount, ev.price, ev.min_to_win, ev.reason, ev.reason_code) == (0, 0, 0, "", 0)
    assert (ev.message, ev.status, ev.ok, ev.metrics, ev.loss_reason) == ("", "", False, {}, 0)
    assert repr(ev) == "Event(type='auction_started', seq=7, auction_id='a1')"

    def read(**body: Any) -> Event:
        e = Event(pb.BidEvent(seq=1, **body))
        assert e.raw.SerializeToString() == pb.BidEvent(seq=1, **body).SerializeToString()
        return e

    acc = read(bid_accepted=pb.BidAccepted(bid_id="b1", auction_id="a2",
                                           amount=pb.Money(micros=2_500_001)))
    assert (acc.type, acc.bid_id, acc.call_id, acc.amount_micros) == (
        "bid_accepted", "b1", "a2", 2_500_001)
    assert acc.amount == 2.500001
    rej = read(bid_rejected=pb.BidRejected(reason=pb.BELOW_FLOOR, message="low",
                                           auction_id="a3", bid_id="b3"))
    assert (rej.reason, rej.reason_code, rej.message, rej.call_id, rej.bid_id) == (
        "BELOW_FLOOR", 100, "low", "a3", "b3")
    assert read(bid_rejected=pb.BidRejected(reason=4242)).reason == "4242"  # not in the enum
    won = read(auction_won=pb.AuctionWon(auction_id="a4", bid_id="b4",
                                         price=pb.Money(micros=300_000),
                                         min_to_win=pb.Money(micros=200_000)))
    assert (won.price, won.price_micros, won.min_to_win, won.min_to_win_micros) == (
        0.3, 300_000, 0.2, 200_000)
    lost = read(auction_lost=pb.AuctionLost(auction_id="a5", loss_reason=102))
    assert (lost.loss_reason, lost.call_id) == (102, "a5")
    upd = read(bid_update=pb.BidUpdate(bid_id="b6", auction_id="a6", status=pb.EXPIRED))
    assert (upd.status, upd.call_id) == ("EXPIRED", "a6")
    assert read(bid_update=pb.BidUpdate()).status == "BID_STATUS_UNSPECIFIED"
    auth = read(auth_result=pb.AuthResult(ok=True, buyer_id="acme", message="hi"))
    assert (auth.type, auth.ok, auth.message, auth.raw.auth_result.buyer_id) == (
        "auth_result", True, "hi", "acme")
    met = read(metrics_update=pb.MetricsUpdate(metrics={"bids": 3.0}))
    assert met.metrics == {"bids": 3.0}
    err = read(error=pb.Error(reason=pb.RATE_LIMITED, message="slow down"))
    assert (err.type, err.reason, err.message) == ("error", "RATE_LIMITED", "slow down")
    opened = pb.AuctionOpened(auction_id="a7")
    opened.deadline.FromNanoseconds(2_000_000_000)
    assert (read(auction_opened=opened).deadline, read(auction_opened=opened).call_id) == (
        2.0, "a7")
    assert read().type == "unknown" and read().call_id == ""
    for bad in ("nan", "inf", "high"):
        e = Event(started(1, "a", attributes={"competition_level": bad}))
        assert e.competition_level == 0.0
    with pytest.raises(TypeError, match="BidEvent"):
        Event(pb.BidMessage())  # type: ignore[arg-type]
    again = copy.deepcopy(won)
    assert type(again) is Event and again is not won and again.raw == won.raw
    assert again.price == 0.3 and copy.copy(ev).raw is raw


def test_a_repeated_event_case_is_merged_as_protobuf_merges_it() -> None:
    one = pb.BidEvent(seq=3, auction_started=pb.AuctionStarted(auction_id="a1",
                                                               expected_bids=2))
    two = pb.BidEvent(auction_started=pb.AuctionStarted(floor=pb.Money(micros=5)))
    data = one.SerializeToString() + two.SerializeToString()
    want = pb.BidEvent.FromString(data)
    s = _rtbcore._ClientStream(PREFIX, 0)
    evs, slow = s.feed(b"\n" + bytes([len(data)]) + data)
    assert slow is None and len(evs) == 1
    ev = evs[0]
    assert (ev.call_id, ev.expected_bids, ev.floor_micros, ev.seq) == ("a1", 2, 5, 3)
    assert ev.raw == want and s.knows("a1")


def test_the_stream_drops_duplicates_and_hands_over_what_python_judges_in_place() -> None:
    s = _rtbcore._ClientStream(PREFIX, 1)
    evs, slow = s.feed(frame(
        started(1, "old"),  # at or below the last seq delivered: dropped
        started(2, "a2"),
        pb.BidEvent(auction_started=pb.AuctionStarted(auction_id="zero")),  # seq 0: no event
        pb.BidEvent(request_id="sub", subscription_ack=pb.SubscriptionAck()),
        started(3, "a3"),
        started(3, "a3"),
        pb.BidEvent(seq=4, request_id="x-1", bid_accepted=pb.BidAccepted(auction_id="a2")),
        started(5, "a5"),
    ))
    assert [e.seq for e in evs] == [2] and slow is not None and slow.type == "subscription_ack"
    assert s.knows("a2") and not s.knows("old") and not s.knows("zero")
    evs, slow = s.resume()
    # an answer to a request the stream does not hold goes to Python, in its place
    assert [e.seq for e in evs] == [3] and slow is not None and slow.request_id == "x-1"
    assert s.last_seq == 3  # Python judges the answer's seq
    evs, slow = s.resume()
    assert [e.seq for e in evs] == [5] and slow is None and s.last_seq == 5
    assert s.counts() == (3, 2) and s.counts() == (0, 0)
    assert s.resume() == ([], None)
    s.announce("by-python")
    assert s.knows("by-python") and not s.knows("never")


def test_the_stream_remembers_the_newest_announced_auctions() -> None:
    """At least the newest 65,536 announced auctions, never more than twice as many."""
    s = _rtbcore._ClientStream(PREFIX, 0)
    k = 65_536
    n = 3 * k + 100
    for start in range(0, n, 4096):
        s.feed(frame(*(started(i + 1, f"a{i}") for i in range(start, min(n, start + 4096)))))
        newest = min(n, start + 4096)
        assert all(s.knows(f"a{i}") for i in range(max(0, newest - k), newest, 997))
        assert not any(s.knows(f"a{i}") for i in range(0, newest - 2 * k, 997))
    assert s.last_seq == n and s.counts() == (n, 0)
    assert s.knows(f"a{n - 1}") and s.knows(f"a{n - k}") and not s.knows("a0")


@pytest.mark.parametrize("data, what", [
    (b"\n\x05ab", "length beyond"),  # an event longer than the frame
    (b"\n\x01\x10", "truncated varint"),  # seq cut short
    (b"\n\x0b" + b"\x10" + b"\xff" * 10, "varint longer"),
    (b"\x0b", "wire type"),  # a group
    (b"\x00", "field number"),
    (b"\n\x06b\x04\n\x02\xff\xfe", "auction_id is not UTF-8"),
    (b"\n\x04\"\x02\xc3\x28", "request_id is not UTF-8"),
])
def test_a_malformed_frame_raises_decode_error_and_takes_nothing_in(data: bytes,
                                                                    what: str) -> None:
    s = _rtbcore._ClientStream(PREFIX, 0)
    good = started(1, "a1").SerializeToString()
    with pytest.raises(DecodeError, match=what):
        s.feed(b"\n" + bytes([len(good)]) + good + data)
    assert s.last_seq == 0 and not s.knows("a1") and s.counts() == (0, 0)


def test_an_event_whose_fields_do_not_decode_raises_on_use() -> None:
    # a floor that is not a Money message: the envelope reads, the field does not
    body = b"\n\x02a1" + b"\x1a\x02\xff\xff"
    data = b"\x10\x01" + b"b" + bytes([len(body)]) + body
    s = _rtbcore._ClientStream(PREFIX, 0)
    (ev,), _ = s.feed(b"\n" + bytes([len(data)]) + data)
    assert (ev.type, ev.call_id) == ("auction_started", "a1")
    with pytest.raises(DecodeError, match="malformed BidEvent"):
        ev.floor  # noqa: B018


def test_place_bids_answers_settle_their_batch_natively() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        s = _rtbcore._ClientStream(PREFIX, 0)
        s.feed(frame(started(1, "a"), started(2, "b")))
        assert s.stage(["a", "b", "c"], [1.0, 2, 0.0000005]) == 2  # rounds to 0 micros
        assert s.stage(["a", "b", "c"], [1.0, 2, True]) == 2
        assert s.stage(["a", "b\x7f"], [1.0, 2.0]) == 1
        assert s.stage(["a", "x" * 65], [1.0, 2.0]) == 1
        assert s.stage(["a", "b", "c"], [1.0, 2, 3.5]) == -1
        assert s.first_unknown() == 2
        fut = loop.create_future()
        batch = _rtbcore._BidBatch(3, fut, "EUR")
        frames = s.commit(batch, 10)
        sent = pb.ClientFrame.FromString(b"".join(frames)).messages
        assert [(m.request_id, m.place_bid.auction_id, m.place_bid.amount.micros,
                 m.place_bid.amount.currency) for m in sent] == [
            (PREFIX + "A", "a", 1_000_000, "EUR"), (PREFIX + "B", "b", 2_000_000, "EUR"),
            (PREFIX + "C", "c", 3_500_000, "EUR")]  # numbers 10, 11, 12
        assert len(s) == 3 and batch.results == [None, None, None]
        evs, slow = s.feed(frame(
            pb.BidEvent(seq=3, request_id=PREFIX + _number(11), bid_accepted=pb.BidAccepted(
                bid_id="b11", auction_id="b")),
            pb.BidEvent(seq=4, request_id=PREFIX + _number(12), bid_rejected=pb.BidRejected(
                reason=pb.BELOW_FLOOR, auction_id="c"))))
        assert [e.bid_id for e in evs] == ["b11"] and batch.results[1] is evs[0]
        assert slow is not None and slow.type == "bid_rejected"  # Python judges rejections
        prior = s.prior_acceptance("b")
        assert prior is not None and prior.raw == evs[0].raw and s.prior_acceptance("a") is None
        held = s.take_pending(PREFIX + _number(12))
        assert held is not None and held[0] is batch and held[1:4] == (2, "c", False)
        assert pb.ClientFrame.FromString(held[4]).messages[0] == sent[2]
        assert not fut.done() and batch.settle(2, ValueError("refused"))
        assert not batch.settle(2, ValueError("again")) and batch.answered(2)
        frames, n = s.resend(True)  # only bid 10 is left
        assert n == 1 and list(pb.ClientFrame.FromString(b"".join(frames)).messages) == [sent[0]]
        assert s.take_pending(PREFIX + _number(10))[3] is True  # type: ignore[index]
        assert not fut.done() and batch.settle(0, ValueError("x")) and fut.done()
        assert s.take_pending(PREFIX + _number(10)) is None and s.take_pending("other-10") is None

    asyncio.run(main())


def test_place_bids_refuses_each_bad_bid_with_place_bids_message() -> None:
    async def main() -> None:
        c = BiddingClient("ws://127.0.0.1:1/v1/bidding", api_key="k")
        conn = Connection(c)
        conn._ws = object()  # as if connected
        cases: list[tuple[list[Any], list[Any], str]] = [
            (["a", ""], [1.0, 1.0], r"place_bids\[1\]: call_id must be a non-empty string"),
            (["a", "é"], [1.0, 1.0], r"place_bids\[1\]: call_id must be printable ASCII"),
            (["a", "x" * 65], [1.0, 1.0], r"place_bids\[1\]: call_id must be at most 64"),
            (["a", 3], [1.0, 1.0], r"place_bids\[1\]: call_id must be a non-empty string"),
            (["a", "b"], [1.0, math.nan], r"place_bids\[1\]: amount must be finite"),
            (["a", "b"], [1.0, math.inf], r"place_bids\[1\]: amount must be finite"),
            (["a", "b"], [1.0, -2], r"place_bids\[1\]: amount must be > 0"),
            (["a", "b"], [1.0, 10**6 + 1], r"place_bids\[1\]: amount must be at most"),
            (["a", "b"], [1.0, 10**30], r"place_bids\[1\]: amount must be at most"),
            (["a", "b"], [1.0, False], r"place_bids\[1\]: amount must be a number"),
        ]
        for ids, amounts, match in cases:
            with pytest.raises(InvalidInputError, match=match):
                await conn.place_bids(ids, amounts)
        conn._announced = True  # subscribed to announcements: only announced auctions
        conn._stream.announce("a")
        with pytest.raises(InvalidInputError, match=r"place_bids\[1\]: call_id 'b' is not"):
            await conn.place_bids(["a", "b"], [1.0, 2.0])
        # bad input is told before an unknown auction, as place_bid checks each bid first
        with pytest.raises(InvalidInputError, match=r"place_bids\[2\]: amount"):
            await conn.place_bids(["a", "b", "a"], [1.0, 2.0, -1.0])
        assert conn._outbox == [] and len(conn._stream) == 0
        await conn.close()

    asyncio.run(main())


def test_place_bids_cancelled_while_writing_leaves_its_frames_to_the_flusher() -> None:
    class Stalled:  # a socket whose write never completes
        async def send(self, data: bytes) -> None:
            await asyncio.Event().wait()

    async def main() -> None:
        conn = Connection(BiddingClient("ws://127.0.0.1:1/v1/bidding", api_key="k"))
        conn._ws = Stalled()
        n = 4096 + 904  # two frames
        task = asyncio.ensure_future(conn.place_bids([f"a{i}" for i in range(n)], [1.0] * n))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [len(pb.ClientFrame.FromString(f).messages) for f in conn._outbox] == [4096, 904]
        assert len(conn._stream) == n and conn.stats["frames_sent"] == 0  # still pending
        conn._ws = None
        await conn.close()

    asyncio.run(main())


def test_request_numbers_are_short_and_read_back_as_written() -> None:
    assert [_number(n) for n in (1, 9, 10, 63, 64, 4095, 4096)] == [
        "1", "9", "A", "_", "10", "__", "100"]
    s = _rtbcore._ClientStream(PREFIX, 0)
    for first in (1, 63, 64**5 - 1, 2**59):
        assert s.stage(["a", "b"], [1.0, 2.0]) == -1
        batch = _rtbcore._BidBatch(2, None, "")
        sent = pb.ClientFrame.FromString(b"".join(s.commit(batch, first))).messages
        assert [m.request_id for m in sent] == [PREFIX + _number(first + i) for i in (0, 1)]
        assert s.take_pending(PREFIX + "0" + _number(first)) is None  # not the form written
        assert s.take_pending(PREFIX + _number(first) + "*") is None
        for i in (0, 1):
            held = s.take_pending(PREFIX + _number(first + i))
            assert held is not None and held[0] is batch and held[1] == i
    assert len(s) == 0
    for first in (0, 2**64 - 2):  # 0 is never a request number; the last would overflow
        assert s.stage(["a", "b"], [1.0, 2.0]) == -1
        with pytest.raises(ValueError, match="out of range"):
            s.commit(_rtbcore._BidBatch(2, None, ""), first)
    assert len(s) == 0
