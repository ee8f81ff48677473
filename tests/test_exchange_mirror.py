"""Two exchange nodes sharing the buyers' event streams through a real redis-server
(``[mirror]``): a buyer moves between nodes and sees its one stream, seq 1..N, each event
exactly once and in order, whichever node made it; Redis stopped and restarted under a node
loses nothing."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from exchange_client import Buyer, ServeProcess, seq, write_config

from rtbcore.errors import InvalidInputError, RtbcoreOSError
from rtbcore.exchange import Exchange

from redis_servers import RedisServer

pytestmark = pytest.mark.timeout(120)


def node_config(d: Path, url: str, node: int, prefix: str = "rtbcore",
                cluster: bool = False) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    cfg = write_config(d)
    cfg.write_text(cfg.read_text() + f'[mirror]\nredis_url = "{url}"\nnode = {node}\n'
                   f'prefix = "{prefix}"\npoll_interval_s = 0.02\ntimeout_s = 0.3\n'
                   f'cluster = {str(cluster).lower()}\n')
    return cfg


def metric(ex: Exchange, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", ex.metrics_text(), re.M)
    assert m, name
    return float(m.group(1))


def body(e: dict[str, Any]) -> dict[str, Any]:
    """An event without what may differ between deliveries of it (a replayed answer's
    request id)."""
    return {k: v for k, v in e.items() if k != "requestId"}


class Stream:
    """What one buyer received over all its connections: every delivery checked against the
    first one of the same seq, and each connection's deliveries strictly increasing."""

    def __init__(self) -> None:
        self.by_seq: dict[int, dict[str, Any]] = {}

    def conn(self) -> list[int]:
        return []

    def take(self, seen: list[int], e: dict[str, Any]) -> None:
        s = seq(e)
        if s == 0:
            return          # an answer outside the stream (SubscriptionAck)
        assert not seen or s > seen[-1], f"seq {s} after {seen[-1]} on one connection"
        seen.append(s)
        if s in self.by_seq:
            assert body(self.by_seq[s]) == body(e), (self.by_seq[s], e)
        else:
            self.by_seq[s] = e


async def read_until(b: Buyer, st: Stream, seen: list[int], done, timeout: float = 10.0):
    """Reads events into ``st`` until ``done(event)`` holds for one; returns it."""
    while True:
        e = await b.next(timeout)
        st.take(seen, e)
        if done(e):
            return e


def bid(aid: str, micros: int, rid: str) -> dict[str, Any]:
    return {"requestId": rid, "placeBid": {
        "auctionId": aid, "amount": {"currency": "USD", "micros": str(micros)}}}


def test_a_buyer_moves_between_nodes_and_sees_one_stream(tmp_path: Path, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    with Exchange(node_config(tmp_path / "a", redis_url, 1), threads=1) as na, \
            Exchange(node_config(tmp_path / "b", redis_url, 2), threads=1) as nb:

        async def main() -> Stream:
            st = Stream()
            # on node A: subscribe, bid, win
            x = await Buyer.connect(na.url, "key-acme")
            on_a = st.conn()
            await x.send({"subscribe": {"filters": {"vertical": "news"}}})
            await x.until("subscriptionAck")
            na.open_auction("a1", attributes={"vertical": "news"}, tmax_s=5, expected_bids=1)
            await read_until(x, st, on_a, lambda e: "auctionStarted" in e)
            await x.send(bid("a1", 900, "r1"))
            acc_a = await read_until(x, st, on_a, lambda e: "bidAccepted" in e)
            await read_until(x, st, on_a, lambda e: "auctionWon" in e)
            # a bid on an auction that closes after acme has left node A
            na.open_auction("a2", attributes={"vertical": "news"}, tmax_s=0.4)
            await read_until(x, st, on_a, lambda e: "auctionStarted" in e)
            await x.send(bid("a2", 700, "r2"))
            await read_until(x, st, on_a, lambda e: "bidAccepted" in e)
            last_on_a = on_a[-1]
            await x.close()
            # while it is away, A closes a2 (AuctionWon) and announces a3 (durable subscription)
            na.open_auction("a3", attributes={"vertical": "news"}, tmax_s=30)
            closed = na.next_result(5.0)
            assert closed is not None and closed.auction_id in ("a1", "a2")
            if closed.auction_id == "a1":
                closed = na.next_result(5.0)
            assert closed is not None and closed.auction_id == "a2" and closed.winner == "acme"
            missed = int(r.get(rkey("rtbcore", "acme", "seq")))
            assert missed == last_on_a + 2          # AuctionWon(a2), AuctionStarted(a3)

            # on node B: the replay of what A made meanwhile, then live
            y = await Buyer.connect(nb.url, "key-acme")
            on_b = st.conn()
            await y.send({"subscribe": {"filters": {"vertical": "news"}, "replayMissed": True,
                                        "sinceSeq": str(last_on_a)}})
            ack = await y.until("subscriptionAck")
            assert (int(ack["subscriptionAck"]["replayFrom"]),
                    int(ack["subscriptionAck"]["replayTo"])) == (last_on_a + 1, missed)
            await read_until(y, st, on_b, lambda e: seq(e) == missed)
            assert on_b == [last_on_a + 1, last_on_a + 2]
            kinds = sorted(next(k for k in st.by_seq[s] if k.startswith("auction"))
                           for s in on_b)
            assert kinds == ["auctionStarted", "auctionWon"]
            # B's own auction, and meanwhile another announcement made on A: both reach the
            # buyer on B, in seq order
            nb.open_auction("b1", attributes={"vertical": "news"}, tmax_s=5, expected_bids=1)
            await read_until(y, st, on_b, lambda e: "auctionStarted" in e
                             and e["auctionStarted"]["auctionId"] == "b1")
            na.open_auction("a4", attributes={"vertical": "news"}, tmax_s=30)
            await y.send(bid("b1", 800, "r3"))
            acc_b = await read_until(y, st, on_b, lambda e: "bidAccepted" in e)
            await read_until(y, st, on_b, lambda e: "auctionWon" in e)
            def a4(e: dict[str, Any]) -> bool:
                return e.get("auctionStarted", {}).get("auctionId") == "a4"

            if not any(a4(st.by_seq[s]) for s in on_b):
                await read_until(y, st, on_b, a4)
            # bid ids of the two nodes never collide
            assert acc_a["bidAccepted"]["bidId"] != acc_b["bidAccepted"]["bidId"]
            await y.close()

            # back on A from an earlier point: exactly the tail, B's events included
            total = int(r.get(rkey("rtbcore", "acme", "seq")))
            z = await Buyer.connect(na.url, "key-acme")
            again = st.conn()
            await z.send({"subscribe": {"filters": {"vertical": "news"}, "replayMissed": True,
                                        "sinceSeq": str(last_on_a - 1)}})
            await z.until("subscriptionAck")
            await read_until(z, st, again, lambda e: seq(e) == total)
            assert again == list(range(last_on_a, total + 1))
            await z.close()
            return st

        st = asyncio.run(main())
        total = int(r.get(rkey("rtbcore", "acme", "seq")))
        # one stream: 1..total, nothing missing
        assert sorted(st.by_seq) == list(range(1, total + 1))
        assert metric(nb, "rtbcore_gateway_mirror_gap_filled_total") >= 1
        assert metric(na, "rtbcore_gateway_mirror_up") == 1
        assert metric(na, "rtbcore_gateway_mirror_errors_total") == 0
        # the stream in Redis holds each event once, ids = seqs
        ids = [int(i.split(b"-")[0]) for i, _ in
               r.xrange(rkey("rtbcore", "acme", "events"))]
        assert ids == list(range(1, total + 1))


def buyer_key(name: str) -> int:
    """The gateway's buyer key: FNV-1a 64 of the id, top bit cleared."""
    h = 0xCBF29CE484222325
    for c in name.encode():
        h ^= c
        h = (h * 0x100000001B3) % 2**64
    return h & (2**63 - 1)


def rkey(prefix: str, buyer: str, what: str) -> str:
    """A buyer's mirror key: ``{<prefix>:<buyer key>}:seq`` or ``:events``."""
    return f"{{{prefix}:{buyer_key(buyer)}}}:{what}"


def test_events_made_while_redis_is_down_are_kept_and_appended_when_it_is_back(
        tmp_path: Path) -> None:
    # an AOF, as production runs it: what Redis had before the stop is still there after
    srv = RedisServer(tmp_path / "redis", appendonly=True)
    try:
        with Exchange(node_config(tmp_path / "a", srv.url, 1), threads=1) as na, \
                Exchange(node_config(tmp_path / "b", srv.url, 2), threads=1) as nb:

            async def main() -> tuple[list[int], list[int]]:
                st = Stream()
                x = await Buyer.connect(na.url, "key-acme")
                on_a = st.conn()
                await x.send({"subscribe": {"filters": {"vertical": "news"}}})
                await x.until("subscriptionAck")
                na.open_auction("a1", attributes={"vertical": "news"}, tmax_s=5)
                await read_until(x, st, on_a, lambda e: "auctionStarted" in e)
                srv.stop()
                # Redis is down: the node keeps bidding and delivering, numbering on locally
                await x.send(bid("a1", 500, "r1"))
                await read_until(x, st, on_a, lambda e: "bidAccepted" in e)
                na.open_auction("a2", attributes={"vertical": "news"}, tmax_s=5)
                await read_until(x, st, on_a, lambda e: "auctionStarted" in e)
                assert metric(na, "rtbcore_gateway_mirror_up") == 0
                assert metric(na, "rtbcore_gateway_mirror_held") == 2
                await x.close()
                # a replay while Redis is down comes from the node's own log, whole
                z = await Buyer.connect(na.url, "key-acme")
                again = st.conn()
                await z.send({"subscribe": {"filters": {"vertical": "news"},
                                            "replayMissed": True, "sinceSeq": "0"}})
                ack = (await z.until("subscriptionAck"))["subscriptionAck"]
                assert (int(ack["replayFrom"]), int(ack["replayTo"])) == (1, on_a[-1])
                await read_until(z, st, again, lambda e: seq(e) == on_a[-1])
                assert again == on_a
                await z.close()
                srv.start()
                # the poll appends what was held
                for _ in range(200):
                    if metric(na, "rtbcore_gateway_mirror_held") == 0:
                        break
                    await asyncio.sleep(0.05)
                assert metric(na, "rtbcore_gateway_mirror_held") == 0
                assert metric(na, "rtbcore_gateway_mirror_up") == 1
                # another node replays all of it
                y = await Buyer.connect(nb.url, "key-acme")
                on_b = st.conn()
                await y.send({"subscribe": {"replayMissed": True, "sinceSeq": "0"}})
                await y.until("subscriptionAck")
                await read_until(y, st, on_b, lambda e: seq(e) == on_a[-1])
                await y.close()
                return on_a, on_b

            on_a, on_b = asyncio.run(main())
            assert on_a == on_b == [1, 2, 3]
            assert metric(na, "rtbcore_gateway_mirror_errors_total") >= 1
            assert metric(na, "rtbcore_gateway_mirror_conflicts_total") == 0
    finally:
        srv.stop()


def test_bad_mirror_settings_name_the_key(tmp_path: Path, redis_url: str) -> None:
    cases = [({"node": 0}, "mirror.node"), ({"node": 40000}, "mirror.node"),
             ({"node": 1, "prefix": "a{b}"}, "mirror.prefix"),
             ({"node": 1, "stream_maxlen": 10}, "mirror.stream_maxlen"),
             ({"node": 1, "poll_interval_s": 0}, "mirror.poll_interval_s"),
             ({"node": 1, "redis_url": "http://x"}, "mirror.redis_url")]
    for extra, key in cases:
        mirror = {"redis_url": redis_url, **extra}
        with pytest.raises(InvalidInputError, match=re.escape(key)):
            Exchange({"mirror": mirror}).start()
    # a server that does not answer fails the start, naming the URL
    with pytest.raises(RtbcoreOSError, match="mirror.redis_url: redis://127.0.0.1:1/0"):
        Exchange({"mirror": {"redis_url": "redis://127.0.0.1:1/0", "node": 1}}).start()


def test_two_nodes_making_one_buyers_events_at_once(tmp_path: Path, redis_url: str) -> None:
    """Both nodes announce auctions to one buyer concurrently while it is connected to both:
    each connection gets the whole stream 1..N, in order, once."""
    two_nodes_at_once(tmp_path, redis_url, redis.Redis.from_url(redis_url), "rtbcore", False)


def test_the_mirror_on_a_redis_cluster(tmp_path: Path, redis_cluster) -> None:
    """The same on a 3-master Redis Cluster (the two buyers' keys on different slots)."""
    from redis.cluster import RedisCluster

    rc = RedisCluster.from_url(redis_cluster.url)
    prefix = f"mirror-{uuid.uuid4().hex[:8]}"
    slots = {rc.keyslot(rkey(prefix, b, "seq")) for b in ("acme", "bolt")}
    assert len(slots) == 2
    two_nodes_at_once(tmp_path, redis_cluster.url, rc, prefix, True)


def two_nodes_at_once(tmp_path: Path, url: str, r: Any, prefix: str, cluster: bool) -> None:
    import threading

    n = 150
    buyers = ("acme", "bolt")
    with Exchange(node_config(tmp_path / "a", url, 1, prefix, cluster), threads=1) as na, \
            Exchange(node_config(tmp_path / "b", url, 2, prefix, cluster), threads=1) as nb:

        async def main() -> dict[str, tuple[Stream, list[int], list[int]]]:
            conns = {}
            for name in buyers:
                x = await Buyer.connect(na.url, f"key-{name}")
                y = await Buyer.connect(nb.url, f"key-{name}")
                for c in (x, y):
                    await c.send({"subscribe": {"event_types": ["auction_started"]}})
                    await c.until("subscriptionAck")
                conns[name] = (x, y)

            def announce(ex: Exchange, tag: str) -> None:
                for i in range(n):
                    ex.open_auction(f"{tag}{i}", tmax_s=30)

            threads = [threading.Thread(target=announce, args=(ex, tag))
                       for ex, tag in ((na, "a"), (nb, "b"))]
            for t in threads:
                t.start()
            await asyncio.to_thread(lambda: [t.join() for t in threads])
            out = {}
            for name, (x, y) in conns.items():
                st = Stream()
                on_x: list[int] = []
                on_y: list[int] = []
                await read_until(x, st, on_x, lambda e: seq(e) == 2 * n)
                await read_until(y, st, on_y, lambda e: seq(e) == 2 * n)
                await x.close()
                await y.close()
                out[name] = (st, on_x, on_y)
            return out

        got = asyncio.run(main())
        for name, (st, on_x, on_y) in got.items():
            assert int(r.get(rkey(prefix, name, "seq"))) == 2 * n
            assert on_x == on_y == list(range(1, 2 * n + 1)), name
            ids = sorted(e["auctionStarted"]["auctionId"] for e in st.by_seq.values())
            assert ids == sorted([f"a{i}" for i in range(n)] + [f"b{i}" for i in range(n)])
        assert metric(na, "rtbcore_gateway_mirror_gap_filled_total") >= 1
        assert metric(nb, "rtbcore_gateway_mirror_gap_filled_total") >= 1
        assert metric(na, "rtbcore_gateway_mirror_errors_total") == 0


def test_events_held_for_redis_survive_kill_9_of_the_node(tmp_path: Path) -> None:
    """Redis down, a node numbers and holds a buyer's events, the node is killed -9; Redis
    and the node come back: the node appends what its log holds beyond the Redis counter at
    start, and another node replays the whole stream."""

    srv = RedisServer(tmp_path / "redis", appendonly=True)
    cfg_a = node_config(tmp_path / "a", srv.url, 1)
    node = ServeProcess("--config", str(cfg_a))
    try:
        async def before() -> list[int]:
            st, on_a = Stream(), []
            pub = await Buyer.connect(node.url, "key-pub")
            x = await Buyer.connect(node.url, "key-acme")
            await x.send({"subscribe": {"filters": {"vertical": "news"}}})
            await x.until("subscriptionAck")
            for i in range(3):
                if i == 1:
                    srv.stop()
                await pub.send({"openAuction": {"auctionId": f"k{i}", "tmax": "30s",
                                                 "attributes": {"vertical": "news"}}})
                await read_until(x, st, on_a, lambda e: "auctionStarted" in e)
            await x.close()
            await pub.close()
            return on_a

        on_a = asyncio.run(before())
        assert on_a == [1, 2, 3]
        node.signal(9)
        node.wait()
        srv.start()
        assert srv.client().get(rkey("rtbcore", "acme", "seq")) == b"1"
        node = ServeProcess("--config", str(cfg_a))
        # acme's two announcements and the publisher's two answers (AuctionOpened)
        assert any("appended 4 events held in the log" in ln for ln in node.lines), node.lines
        r = srv.client()
        assert r.get(rkey("rtbcore", "acme", "seq")) == b"3"
        with Exchange(node_config(tmp_path / "b", srv.url, 2), threads=1) as nb:
            async def replay() -> Stream:
                st, on_b = Stream(), []
                y = await Buyer.connect(nb.url, "key-acme")
                await y.send({"subscribe": {"replayMissed": True, "sinceSeq": "0"}})
                await y.until("subscriptionAck")
                await read_until(y, st, on_b, lambda e: seq(e) == 3)
                assert on_b == [1, 2, 3]
                await y.close()
                return st

            st = asyncio.run(replay())
            ids = [st.by_seq[s]["auctionStarted"]["auctionId"] for s in (1, 2, 3)]
            assert ids == ["k0", "k1", "k2"]
    finally:
        node.kill()
        srv.stop()


def test_sse_on_another_node_resumes_after_last_event_id(tmp_path: Path, redis_url: str) -> None:
    """Events made on node A, read as Server-Sent Events from node B with Last-Event-ID."""
    import http.client
    from urllib.parse import urlparse

    with Exchange(node_config(tmp_path / "a", redis_url, 1), threads=1) as na, \
            Exchange(node_config(tmp_path / "b", redis_url, 2), threads=1) as nb:

        async def on_a() -> None:
            st, seen = Stream(), []
            x = await Buyer.connect(na.url, "key-acme")
            await x.send({"subscribe": {}})
            await x.until("subscriptionAck")
            await x.close()
            for i in range(4):
                na.open_auction(f"e{i}", tmax_s=30)
            y = await Buyer.connect(na.url, "key-acme")
            await y.send({"subscribe": {"replayMissed": True, "sinceSeq": "0"}})
            await y.until("subscriptionAck")
            await read_until(y, st, seen, lambda e: seq(e) == 4)
            await y.close()

        asyncio.run(on_a())
        u = urlparse(nb.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        conn.request("GET", "/v1/events", headers={
            "Authorization": "Bearer key-acme", "Accept": "text/event-stream",
            "Last-Event-ID": "acme:1"})
        r = conn.getresponse()
        assert r.status == 200
        ids, data = [], []
        while len(ids) < 3:
            line = r.fp.readline().decode().strip()
            if line.startswith("id:"):
                ids.append(line[3:].strip())
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        conn.close()
        assert ids == ["acme:2", "acme:3", "acme:4"]
        assert all('"auctionId":"e' in d.replace(" ", "") for d in data), data
