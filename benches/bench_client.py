"""Python SDK benches: ``rtbcore.client`` beside a naive loop written without it (``websockets``
+ ``bidding_pb2``: connect, authenticate, subscribe, ``recv``, ``ServerFrame.FromString``),
both against the same ``rtbcore serve`` on loopback, in the same run, in alternate rounds:
each timed round of one is preceded by a round of the other (in pytest-benchmark's untimed
setup, timed by the bench itself), so that both see the same machine load, and each row's
summary gives the medians of the per-pair ratios: of the rate, and of the client process's
CPU time per item (``time.process_time``: the bench process is the client), the steadier
figure on a shared machine. Only the client side differs, so the ratios are the SDK's own
cost (its layers, bookkeeping and queue); the server (one engine worker) runs in its own
process. Without ``rtbcore serve`` in the build the module is skipped.

- ``client receive``: events/s one client process consumes. The exchange is made to send
  faster than a Python client reads: before the rounds (not timed) every buyer of the module
  subscribes durably to ``auction_started`` of one lot and goes away, and a publisher opens
  ``RECEIVE`` auctions of that lot, so that each buyer's stream holds the whole backlog. A
  round (timed): a fresh buyer connects, authenticates, subscribes with replay after seq 1 and
  reads the ``RECEIVE - 1`` announcements, reading ``call_id`` of each: the SDK with ``async
  for ev in conn.stream_events()`` (``sdk_receive``) or with ``conn.stream_batches()`` and a
  plain loop over each list (``sdk_batches_receive``), the naive loop with
  ``auction_started.auction_id``. The exchange replays the log as fast as the socket takes it,
  so the client is what is measured. items = events read.
- ``client place``: bids/s with batched frames. Setup of a round (not timed): a fresh buyer
  connects and subscribes to its lot's announcements, a publisher opens ``PLACE`` auctions
  (``expected_bids=1``: each closes on its bid), the buyer reads the announcements. Timed: one
  bid on every auction, ``BATCH`` bids per call / frame, ``WINDOW`` batches in flight: the
  SDK with ``conn.place_bids`` (a task drains ``stream_events()`` meanwhile, as an application
  does), the naive loop with ``ClientFrame`` batches of ``PlaceBid`` counting the
  ``BidAccepted`` answers. Each bid costs the exchange an answer, an ``AuctionWon`` and the
  publisher's ``AuctionClosed``. items = bids accepted.

The two groups use two servers: the receive backlog needs an event log that holds it all
(``events.max_records``), the place rounds open many more auctions and keep the default one.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import pytest

from rtbcore.client import BiddingClient, Event
from rtbcore.client import bidding_pb2 as pb

from launch import Server, serve_available, start_server

websockets = pytest.importorskip("websockets")

RECEIVE = 100_000  # announcements in the backlog each receive round reads
PLACE = 50_000  # bids per place round
BATCH = 1000  # bids per place_bids call / ClientFrame
WINDOW = 4  # batches in flight
OPEN_FRAME = 4096  # OpenAuction per publisher frame (the exchange's max messages per frame)
ROUNDS = 5  # timed rounds per row (and as many alternate rounds of the other side)
SUBPROTOCOL = "rtbcore.v1.proto"
LOT = "backlog"
COMMON = {"engine.workers": 1, "engine.tmax_ms": 1000, "auth.auth_timeout_s": 10.0,
          "server.slow_consumer_timeout_s": 60.0, "server.outbound_queue_frames": 1 << 16}

pytestmark = pytest.mark.skipif(not serve_available(), reason="rtbcore serve is not in this build")

#: one prepared round: runs it, returns items per second (wall clock) and the client process's
#: CPU time per item in microseconds
Round = Callable[[], Awaitable[tuple[float, float]]]


@pytest.fixture(scope="module")
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture(scope="module")
def recv_server(tmp_path_factory, loop):
    """A server whose receive buyers each hold the ``RECEIVE`` announcements in their stream."""
    buyers: dict[str, list[str]] = {"pub": ["publish", "subscribe"]}
    buyers.update({f"recv{i}": ["bid", "subscribe"] for i in range(6 * ROUNDS)})
    srv = start_server("serve", tmp_path_factory.mktemp("client-recv"), buyers,
                       {**COMMON, "events.max_records": 1 << 23})

    async def fill() -> None:
        for i in range(6 * ROUNDS):  # durable subscriptions, then away
            ws = await raw_connect(srv.url, srv.keys[f"recv{i}"])
            await raw_subscribe(ws, LOT)
            await ws.close()
        # tmax short: the auctions close before the rounds start
        await publish(srv.url, srv.keys["pub"], LOT, 0, RECEIVE, 0, 0.2)
        await asyncio.sleep(0.5)

    try:
        loop.run_until_complete(fill())
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def place_server(tmp_path_factory):
    buyers: dict[str, list[str]] = {"pub": ["publish", "subscribe"]}
    buyers.update({f"place{i}": ["bid", "subscribe"] for i in range(4 * ROUNDS)})
    srv = start_server("serve", tmp_path_factory.mktemp("client-place"), buyers, COMMON)
    yield srv
    srv.stop()


# ---- the naive loop: websockets + bidding_pb2, no SDK ----


async def raw_connect(url: str, key: str):
    ws = await websockets.connect(url, subprotocols=[SUBPROTOCOL], compression=None,
                                  max_size=None, close_timeout=1)
    f = pb.ClientFrame()
    f.messages.add(request_id="auth", auth=pb.Auth(api_key=key))
    await ws.send(f.SerializeToString())
    while True:
        for e in pb.ServerFrame.FromString(await ws.recv()).events:
            if e.WhichOneof("event") == "auth_result":
                assert e.auth_result.ok, e.auth_result.message
                return ws


async def raw_subscribe(ws, lot: str, since_seq: int | None = None) -> None:
    f = pb.ClientFrame()
    s = pb.Subscribe(event_types=["auction_started"], filters={"lot": lot})
    if since_seq is not None:
        s.replay_missed = True
        s.since_seq = since_seq
    f.messages.add(request_id=f"sub-{lot}", subscribe=s)
    await ws.send(f.SerializeToString())
    while True:
        for e in pb.ServerFrame.FromString(await ws.recv()).events:
            if e.WhichOneof("event") == "subscription_ack":
                return


async def publish(url: str, key: str, lot: str, first: int, n: int, expected_bids: int,
                  tmax_s: float) -> None:
    """Opens auctions ``lot-<first>`` .. (attribute ``lot``) and waits for every AuctionOpened."""
    ws = await raw_connect(url, key)
    try:
        opened = 0

        async def reader() -> None:
            nonlocal opened
            while opened < n:
                for e in pb.ServerFrame.FromString(await ws.recv()).events:
                    kind = e.WhichOneof("event")
                    if kind == "auction_opened":
                        opened += 1
                    elif kind in ("bid_rejected", "error"):
                        raise AssertionError(f"publisher: {e}")

        task = asyncio.create_task(reader())
        for start in range(first, first + n, OPEN_FRAME):
            f = pb.ClientFrame()
            for i in range(start, min(first + n, start + OPEN_FRAME)):
                o = f.messages.add().open_auction
                o.auction_id = f"{lot}-{i}"
                o.attributes["lot"] = lot
                o.expected_bids = expected_bids
                o.tmax.FromNanoseconds(int(tmax_s * 1e9))
            await ws.send(f.SerializeToString())
            await asyncio.sleep(0)  # lets the reader take the answers
        await asyncio.wait_for(task, 120)
    finally:
        await ws.close()


# ---- receive ----


async def sdk_receive(url: str, key: str) -> tuple[int, Callable[[], Awaitable[None]]]:
    n, want = 0, RECEIVE - 1
    client = BiddingClient(url, api_key=key, last_seq=1)
    conn = await client.connect()
    await conn.subscribe(event_types=["auction_started"], filters={"lot": LOT})
    async for ev in conn.stream_events():
        ev.call_id  # noqa: B018
        n += 1
        if n >= want:
            break
    return n, conn.close


async def sdk_batches_receive(url: str, key: str) -> tuple[int, Callable[[], Awaitable[None]]]:
    n, want = 0, RECEIVE - 1
    client = BiddingClient(url, api_key=key, last_seq=1)
    conn = await client.connect()
    await conn.subscribe(event_types=["auction_started"], filters={"lot": LOT})
    async for batch in conn.stream_batches():
        for ev in batch:
            ev.call_id  # noqa: B018
        n += len(batch)
        if n >= want:
            break
    return n, conn.close


async def naive_receive(url: str, key: str) -> tuple[int, Callable[[], Awaitable[None]]]:
    n, want = 0, RECEIVE - 1
    ws = await raw_connect(url, key)
    await raw_subscribe(ws, LOT, since_seq=1)
    while n < want:
        for e in pb.ServerFrame.FromString(await ws.recv()).events:
            if e.WhichOneof("event") == "auction_started":
                e.auction_started.auction_id  # noqa: B018
                n += 1
    return n, ws.close


def receive_round(srv: Server, kind: str) -> Round:
    _, key = srv.fresh("recv")
    fn = {"sdk": sdk_receive, "sdk_batches": sdk_batches_receive, "naive": naive_receive}[kind]

    async def run() -> tuple[float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        n, close = await asyncio.wait_for(fn(srv.url, key), 120)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        await close()
        assert n == RECEIVE - 1, n
        return n / dt, cpu / n * 1e6

    return run


# ---- place ----


class SdkPlacer:
    """An SDK connection holding ``PLACE`` announced auctions, ready to bid."""

    def __init__(self) -> None:
        self.conn = None
        self.ids: list[str] = []
        self.drain: asyncio.Task | None = None

    async def open(self, url: str, key: str, pub: str, lot: str) -> None:
        client = BiddingClient(url, api_key=key, request_timeout=60.0)
        self.conn = conn = await client.connect()
        await conn.subscribe(event_types=["auction_started"], filters={"lot": lot})
        got = asyncio.Event()

        async def drain() -> None:  # the application's event loop: reads every stream event
            async for ev in conn.stream_events():
                if ev.type == "auction_started":
                    self.ids.append(ev.call_id)
                    if len(self.ids) == PLACE:
                        got.set()

        self.drain = asyncio.create_task(drain())
        await publish(url, pub, lot, 0, PLACE, 1, 30.0)
        await asyncio.wait_for(got.wait(), 60)

    async def place(self) -> int:
        ids = self.ids
        chunks = iter([ids[i:i + BATCH] for i in range(0, len(ids), BATCH)])
        accepted = 0

        async def lane() -> None:
            nonlocal accepted
            for chunk in chunks:
                res = await self.conn.place_bids(chunk, [1.0] * len(chunk))
                accepted += sum(1 for r in res if isinstance(r, Event)
                                and r.type == "bid_accepted")

        await asyncio.gather(*(lane() for _ in range(WINDOW)))
        return accepted

    async def close(self) -> None:
        await self.conn.close()
        if self.drain is not None:
            self.drain.cancel()
            await asyncio.gather(self.drain, return_exceptions=True)


class NaivePlacer:
    def __init__(self) -> None:
        self.ws = None
        self.ids: list[str] = []
        self.n = 0

    async def open(self, url: str, key: str, pub: str, lot: str) -> None:
        self.ws = await raw_connect(url, key)
        await raw_subscribe(self.ws, lot)

        async def announcements() -> None:
            while len(self.ids) < PLACE:
                for e in pb.ServerFrame.FromString(await self.ws.recv()).events:
                    if e.WhichOneof("event") == "auction_started":
                        self.ids.append(e.auction_started.auction_id)

        task = asyncio.create_task(announcements())
        await publish(url, pub, lot, 0, PLACE, 1, 30.0)
        await asyncio.wait_for(task, 60)

    async def place(self) -> int:
        ws, ids = self.ws, self.ids
        accepted = answered = 0
        window = asyncio.Semaphore(WINDOW)

        async def reader() -> None:
            nonlocal accepted, answered
            while answered < len(ids):
                for e in pb.ServerFrame.FromString(await ws.recv()).events:
                    kind = e.WhichOneof("event")
                    if kind == "bid_accepted":
                        accepted += 1
                    elif kind != "bid_rejected":
                        continue
                    answered += 1
                    if answered % BATCH == 0 or answered == len(ids):
                        window.release()

        task = asyncio.create_task(reader())
        for start in range(0, len(ids), BATCH):  # built in the timed part, as an SDK would
            f = pb.ClientFrame()
            for i in range(start, min(len(ids), start + BATCH)):
                self.n += 1
                m = f.messages.add(request_id=f"b{self.n}")
                m.place_bid.auction_id = ids[i]
                m.place_bid.amount.micros = 1_000_000
            await window.acquire()
            await ws.send(f.SerializeToString())
        await asyncio.wait_for(task, 60)
        return accepted

    async def close(self) -> None:
        await self.ws.close()


_lots = iter(range(1 << 30))


async def place_round(srv: Server, kind: str) -> Round:
    """Prepares a place round (a fresh buyer holding ``PLACE`` announced auctions)."""
    _, key = srv.fresh("place")
    placer = SdkPlacer() if kind == "sdk" else NaivePlacer()
    await placer.open(srv.url, key, srv.keys["pub"], f"{kind}{next(_lots)}")

    async def run() -> tuple[float, float]:
        try:
            c0, t0 = time.process_time(), time.perf_counter()
            n = await placer.place()
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            await placer.close()
        assert n == PLACE, n
        return n / dt, cpu / n * 1e6

    return run


# ---- alternate rounds ----


def _alternate(benchmark, loop, kind: str, prepare: Callable[[str], Awaitable[Round]],
               items: int, what: str) -> None:
    """``ROUNDS`` timed rounds of ``kind``, each after an alternate round of the other side
    (run in pytest-benchmark's untimed setup, timed here)."""
    other = "sdk" if kind == "naive" else "naive"
    mine: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []

    def setup():
        alt = loop.run_until_complete(prepare(other))
        theirs.append(loop.run_until_complete(alt()))
        return (loop.run_until_complete(prepare(kind)),), {}

    def run(round_: Round) -> None:
        mine.append(loop.run_until_complete(round_()))

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    benchmark.extra_info["items"] = items
    benchmark.extra_info["baseline"] = kind == "naive"
    benchmark.extra_info["rates"] = [r for r, _ in mine]
    benchmark.extra_info[f"{other}_rates"] = [r for r, _ in theirs]
    benchmark.extra_info["cpu_us_per_item"] = [c for _, c in mine]
    benchmark.extra_info[f"{other}_cpu_us_per_item"] = [c for _, c in theirs]
    med = statistics.median(r for r, _ in mine)
    alt = statistics.median(r for r, _ in theirs)
    cpu = statistics.median(c for _, c in mine)
    alt_cpu = statistics.median(c for _, c in theirs)
    if kind != "naive":
        ratio = statistics.median(m[0] / t[0] for m, t in zip(mine, theirs, strict=True))
        cpu_ratio = statistics.median(m[1] / t[1] for m, t in zip(mine, theirs, strict=True))
        # the rows' medians come from different rounds: the ratio is the paired one
        benchmark.extra_info["ratio"] = f"{ratio:.2f}x vs naive loop (paired rounds)"
        summary = (f"median {med / 1e3:.0f}K {what}/s, client CPU {cpu:.1f} us per item; "
                   f"naive loop in alternate rounds {alt / 1e3:.0f}K {what}/s, "
                   f"{alt_cpu:.1f} us; paired ratios: rate {ratio:.2f}x, CPU {cpu_ratio:.2f}x")
    else:
        summary = (f"median {med / 1e3:.0f}K {what}/s, client CPU {cpu:.1f} us per item; "
                   f"SDK in alternate rounds {alt / 1e3:.0f}K {what}/s, {alt_cpu:.1f} us")
    benchmark.extra_info["summary"] = summary
    print(f"\n{benchmark.name}: "
          f"{', '.join(f'{r / 1e3:.0f}K' for r, _ in sorted(mine))} {what}/s vs {other} "
          f"{', '.join(f'{r / 1e3:.0f}K' for r, _ in sorted(theirs))}: {summary}")


async def _receive_prepare(srv: Server, kind: str) -> Round:
    return receive_round(srv, kind)


@pytest.mark.benchmark(group="client receive (auction_started, replayed backlog)")
def test_sdk_receive(benchmark, recv_server, loop):
    _alternate(benchmark, loop, "sdk", lambda k: _receive_prepare(recv_server, k),
               RECEIVE - 1, "events")


@pytest.mark.benchmark(group="client receive (auction_started, replayed backlog)")
def test_sdk_batches_receive(benchmark, recv_server, loop):
    _alternate(benchmark, loop, "sdk_batches", lambda k: _receive_prepare(recv_server, k),
               RECEIVE - 1, "events")


@pytest.mark.benchmark(group="client receive (auction_started, replayed backlog)")
def test_naive_receive(benchmark, recv_server, loop):
    _alternate(benchmark, loop, "naive", lambda k: _receive_prepare(recv_server, k),
               RECEIVE - 1, "events")


@pytest.mark.benchmark(group=f"client place (batches of {BATCH} bids)")
def test_sdk_place(benchmark, place_server, loop):
    _alternate(benchmark, loop, "sdk", lambda k: place_round(place_server, k), PLACE, "bids")


@pytest.mark.benchmark(group=f"client place (batches of {BATCH} bids)")
def test_naive_place(benchmark, place_server, loop):
    _alternate(benchmark, loop, "naive", lambda k: place_round(place_server, k), PLACE, "bids")
