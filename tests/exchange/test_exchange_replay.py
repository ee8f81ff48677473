"""Durable subscriptions: what a buyer missed while away is replayed after a reconnect, then
the live stream continues, with no gap and no duplicate; the SSE stream resumes with
Last-Event-ID."""

from __future__ import annotations

import http.client
import uuid

from exchange.client import Client, msg, open_auction, pb, place, skip_on_peer


def _sub(tag: str, **kw) -> pb.Subscribe:
    return pb.Subscribe(filters={"run": tag}, **kw)


def _away_then_back(server, tag: str, acked: bool):
    """A buyer sees some of its stream, leaves, misses announcements, comes back."""
    name, key = server.fresh("b")
    attrs = {"run": tag}
    pub = Client(server.url)  # the caller closes it
    pub.login(server.fresh("p")[1], pb.Subscribe(event_types=["auction_closed"]))
    with Client(server.url) as b:
        b.login(key, _sub(tag))
        pub.send(open_auction(f"{tag}-1", expected_bids=1, tmax_ms=5000, attributes=attrs))
        b.expect("auction_started")
        b.send(place(f"{tag}-1", 1_000_000))
        b.expect("bid_accepted")
        b.expect("auction_won")
        pub.expect("auction_closed", skip=("auction_opened",))
        seen = [e for e in b.events if e.seq]
        if acked:
            # the Subscribe's answer shows the Ack before it was applied (in order)
            b.send(msg(ack=pb.Ack(seq=seen[-1].seq)), msg(subscribe=_sub(tag)))
            b.expect("subscription_ack")
    # away: two announcements are logged for the buyer
    pub.send(open_auction(f"{tag}-2", tmax_ms=5000, attributes=attrs),
             open_auction(f"{tag}-3", tmax_ms=5000, attributes=attrs))
    pub.expect("auction_opened")
    pub.expect("auction_opened")
    return name, key, seen, Client(server.url), pub


def _check_resume(c: Client, pub: Client, seen: list, tag: str) -> None:
    last = seen[-1].seq
    ack = c.expect("subscription_ack").subscription_ack
    assert (ack.replay_from, ack.replay_to) == (last + 1, last + 2)
    assert not ack.truncated
    replayed = [c.expect("auction_started") for _ in range(2)]
    assert [e.seq for e in replayed] == [last + 1, last + 2]
    assert [e.auction_started.auction_id for e in replayed] == [f"{tag}-2", f"{tag}-3"]
    # the live stream continues right after the replay
    pub.send(open_auction(f"{tag}-4", tmax_ms=5000, attributes={"run": tag}))
    live = c.expect("auction_started")
    assert live.seq == last + 3 and live.auction_started.auction_id == f"{tag}-4"
    c.nothing(0.2)
    seqs = [e.seq for e in seen] + [e.seq for e in c.events if e.seq]
    assert seqs == list(range(1, last + 4))  # no gap, no duplicate


def test_replay_since_seq_after_a_disconnect(server):
    tag = f"rs-{uuid.uuid4().hex[:8]}"
    name, key, seen, back, pub = _away_then_back(server, tag, acked=False)
    with pub, back as c:
        res = c.login(key).auth_result
        assert res.last_seq == seen[-1].seq + 2  # the two missed announcements
        c.send(msg(subscribe=_sub(tag, replay_missed=True, since_seq=seen[-1].seq)))
        _check_resume(c, pub, seen, tag)


def test_replay_from_the_last_ack_when_no_since_is_given(server):
    tag = f"ra-{uuid.uuid4().hex[:8]}"
    name, key, seen, back, pub = _away_then_back(server, tag, acked=True)
    with pub, back as c:
        res = c.login(key).auth_result
        assert res.acked_seq == seen[-1].seq
        c.send(msg(subscribe=_sub(tag, replay_missed=True)))
        _check_resume(c, pub, seen, tag)


def test_replay_of_everything_since_seq_0(server):
    tag = f"r0-{uuid.uuid4().hex[:8]}"
    name, key, seen, back, pub = _away_then_back(server, tag, acked=False)
    with pub, back as c:
        c.login(key)
        c.send(msg(subscribe=_sub(tag, replay_missed=True, since_seq=0)))
        ack = c.expect("subscription_ack").subscription_ack
        n = seen[-1].seq + 2
        assert (ack.replay_from, ack.replay_to) == (1, n)
        replayed = [c.next() for _ in range(n)]
    # the same events as first delivered: same seq, same id, same content
    assert [e.SerializeToString() for e in replayed[: len(seen)]] == [
        e.SerializeToString() for e in seen]
    assert [e.seq for e in replayed] == list(range(1, n + 1))


def test_sse_resumes_after_last_event_id(server):
    skip_on_peer(server, "the Server-Sent Events stream /v1/events")
    tag = f"sse-{uuid.uuid4().hex[:8]}"
    name, key, seen, back, pub = _away_then_back(server, tag, acked=False)
    back.__exit__()
    with pub:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
        conn.request("GET", "/v1/events", headers={
            "Authorization": f"Bearer {key}", "Accept": "text/event-stream",
            "Last-Event-ID": seen[-1].event_id})
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("Content-Type", "").startswith("text/event-stream")
        ids = []
        while len(ids) < 2:
            line = r.fp.readline().decode().strip()
            if line.startswith("id:"):
                ids.append(line[3:].strip())
        conn.close()
    last = seen[-1].seq
    assert ids == [f"{name}:{last + 1}", f"{name}:{last + 2}"]
