"""rtbcore.client against the real ``rtbcore serve`` on loopback: the life cycle, bad input
refused before sending, reconnection through network faults and server restarts (SIGTERM and
kill -9) with every event delivered once and no bid applied twice, backoff timings and the
circuit breaker on an injected clock, and the AutoBidder with its strategies."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from exchange_client import ServeProcess, write_config
from fault_proxy import FaultProxy

from rtbcore import CreditPool
from rtbcore.client import (
    AutoBidder,
    Backoff,
    BiddingClient,
    BidRejectedError,
    BidStrategy,
    CircuitBreaker,
    CircuitOpenError,
    ConnectionClosedError,
    CreditGatedStrategy,
    Event,
    FixedBidStrategy,
    PacedStrategy,
    ThompsonCreativeStrategy,
)
from rtbcore.errors import InvalidInputError

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(d: Path, port: int = 0, extra: str = "") -> Path:
    cfg = write_config(d, extra=extra)
    cfg.write_text(cfg.read_text().replace("port = 0", f"port = {port}"))
    return cfg


def ws(url_or_port: str | int) -> str:
    if isinstance(url_or_port, int):
        return f"ws://127.0.0.1:{url_or_port}/v1/bidding"
    return url_or_port.replace("http://", "ws://") + "/v1/bidding"


class FakeClock:
    """Time moves only when the client sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0.001)


@pytest.fixture
def server(tmp_path):
    s = ServeProcess("--config", str(config(tmp_path)))
    yield s
    s.kill()


# ---- resilience parts, on their own ----


def test_backoff_ceilings_double_to_sixty_seconds_with_full_jitter() -> None:
    draws = iter([0.0, 1.0, 0.5, 0.25, 1.0, 1.0, 1.0, 0.5])
    b = Backoff(random=lambda: next(draws))
    assert [b.ceiling(k) for k in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert [b.delay(k) for k in range(8)] == [0.0, 2.0, 2.0, 2.0, 16.0, 32.0, 60.0, 30.0]
    with pytest.raises(InvalidInputError, match="base_s"):
        Backoff(base_s=0)


def test_circuit_breaker_opens_probes_after_the_cooldown_and_closes() -> None:
    clock = FakeClock()
    changes: list[str] = []
    cb = CircuitBreaker(3, 10.0, clock=clock, on_change=changes.append)
    cb.failure()
    cb.failure()
    assert cb.state == "closed" and cb.wait_s() == 0
    cb.failure()
    assert cb.state == "open" and cb.wait_s() == 10.0
    clock.t = 9.0
    assert cb.wait_s() == pytest.approx(1.0) and cb.state == "open"
    clock.t = 10.0
    assert cb.wait_s() == 0 and cb.state == "half_open"
    cb.failure()  # the probe fails: open again at once
    assert cb.state == "open" and cb.wait_s() == 10.0
    clock.t = 20.0
    cb.wait_s()
    cb.success()
    assert changes == ["open", "half_open", "open", "half_open", "closed"]


# ---- against the server ----


def test_lifecycle_auth_subscribe_with_filters_bid_win_loss_update_cancel(server) -> None:
    async def main() -> None:
        pub = BiddingClient(ws(server.url), api_key="key-pub")
        acme = BiddingClient(ws(server.url), api_key="key-acme")
        bolt = BiddingClient(ws(server.url), api_key="key-bolt")
        async with pub.connect() as p, acme.connect() as a, bolt.connect() as b:
            assert a.auth is not None and a.auth.ok
            ack = await a.subscribe(event_types=["auction_started", "auction_won",
                                                 "auction_lost", "bid_update"],
                                    filters={"vertical": "news", "min_quality_score": 0.5})
            assert ack.type == "subscription_ack"
            await b.subscribe(event_types=["auction_started"])
            # filtered out for acme: another vertical, then a quality below the bound
            await p.open_auction("s1", attributes={"vertical": "sports", "quality_score": 0.9})
            await p.open_auction("s2", attributes={"vertical": "news", "quality_score": 0.2})
            await p.open_auction("n1", attributes={"vertical": "news", "quality_score": 0.9},
                                 floor=0.5, tmax=0.5, expected_bids=2)
            it_a, it_b = a.stream_events(), b.stream_events()
            ev = await asyncio.wait_for(anext(it_a), 5)
            assert (ev.type, ev.call_id, ev.floor) == ("auction_started", "n1", 0.5)
            assert ev.attributes["vertical"] == "news"
            seen_b = [(await asyncio.wait_for(anext(it_b), 5)).call_id for _ in range(3)]
            assert seen_b == ["s1", "s2", "n1"]
            acc = await a.place_bid(ev.call_id, 1.0, criteria={"exclusive": True})
            assert acc.type == "bid_accepted" and acc.amount_micros == 1_000_000
            up = await a.update_bid(acc.bid_id, 3.0)
            assert (up.type, up.status, up.amount) == ("bid_update", "UPDATED", 3.0)
            await b.place_bid("n1", 2.0)
            # the answers to acme's own requests are in its stream too, then the result
            types = []
            while not types or types[-1] != "auction_won":
                won = await asyncio.wait_for(anext(it_a), 5)
                types.append(won.type)
            assert types == ["bid_accepted", "bid_update", "auction_won"]
            assert (won.call_id, won.price, won.bid_id) == ("n1", 2.0, acc.bid_id)
            # cancel, and a rejection carried as BidRejectedError with the exchange's code
            await p.open_auction("n2", attributes={"vertical": "news", "quality_score": 0.9},
                                 tmax=5.0)
            assert (await asyncio.wait_for(anext(it_a), 5)).call_id == "n2"
            acc2 = await a.place_bid("n2", 1.5)
            cancelled = await a.cancel_bid(acc2.bid_id)
            assert cancelled.status == "CANCELLED"
            with pytest.raises(BidRejectedError) as rej:
                await a.place_bid("n1", 1.0)
            assert rej.value.reason == "AUCTION_CLOSED" and "n1" in str(rej.value)
            assert a.stats["duplicates"] == 0 and a.stats["reconnects"] == 0

    asyncio.run(main())


def test_a_wrong_key_fails_with_4001_and_no_retry(server) -> None:
    async def main() -> None:
        c = BiddingClient(ws(server.url), api_key="nope")
        with pytest.raises(ConnectionClosedError) as e:
            await c.connect(timeout=10)
        assert e.value.code == 4001

    asyncio.run(main())


def test_bad_input_is_refused_before_anything_is_sent(server) -> None:
    async def main() -> None:
        with pytest.raises(InvalidInputError, match="url"):
            BiddingClient("http://x", api_key="k")
        with pytest.raises(InvalidInputError, match="exactly one"):
            BiddingClient(ws(server.url))
        c = BiddingClient(ws(server.url), api_key="key-acme")
        async with c.connect() as conn:
            with pytest.raises(InvalidInputError, match=r"event_types\[1\] 'auction_begun'"):
                await conn.subscribe(event_types=["auction_won", "auction_begun"])
            await conn.subscribe(event_types=["auction_started"])
            sent = conn.stats["frames_sent"]
            for amount, match in ((math.nan, "finite"), (-1.0, "> 0"), (0.0, "> 0"),
                                  (1e13, "at most"), ("2", "number")):
                with pytest.raises(InvalidInputError, match=match):
                    await conn.place_bid("a1", amount)  # type: ignore[arg-type]
            with pytest.raises(InvalidInputError, match="not an auction announced"):
                await conn.place_bid("never-announced", 1.0)
            with pytest.raises(InvalidInputError, match="min_q"):
                await conn.subscribe(filters={"min_q": "high"})
            with pytest.raises(InvalidInputError, match="call_id"):
                await conn.place_bid("", 1.0)
            with pytest.raises(InvalidInputError, match="place_bids"):
                await conn.place_bids(["a", "b"], [1.0])
            with pytest.raises(InvalidInputError, match=r"place_bids\[0\]: amount must be a num"):
                await conn.place_bids(["a"], ["2"])  # type: ignore[list-item]
            await asyncio.sleep(0.05)
            assert conn.stats["frames_sent"] == sent

    asyncio.run(main())


async def _publish(p, prefix: str, n: int, every: float) -> list[str]:
    """Opens n auctions one by one (each retried by the client across failures)."""
    ids = []
    for i in range(n):
        aid = f"{prefix}{i}"
        try:
            await p.open_auction(aid, tmax=0.2, expected_bids=1)
        except BidRejectedError as e:  # re-sent after a restart that already applied it
            assert e.reason == "DUPLICATE_AUCTION", e
        ids.append(aid)
        await asyncio.sleep(every)
    return ids


async def _bid_on_everything(conn, out: list[Event], results: list[object],
                             until: asyncio.Event) -> None:
    tasks = []
    async for ev in conn.stream_events():
        out.append(ev)
        if ev.type == "auction_started":
            tasks.append(asyncio.ensure_future(conn.place_bid(ev.call_id, 1.0)))
        if until.is_set() and all(t.done() for t in tasks):
            break
    for t in tasks:
        try:
            results.append(await t)
        except Exception as e:  # noqa: BLE001 - each outcome is checked by the caller
            results.append(e)


def _assert_exactly_once(events: list[Event]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a duplicate"
    accepted = Counter(e.call_id for e in events if e.type == "bid_accepted")
    assert accepted and max(accepted.values()) == 1, "a bid applied twice"


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_server_restarts_lose_and_duplicate_nothing(tmp_path, how: str) -> None:
    port = free_port()
    cfg = config(tmp_path, port)

    async def main() -> None:
        s = ServeProcess("--config", str(cfg))
        reconnects: list[int] = []
        # fast retries and a breaker that tolerates the seconds a restart takes
        pub = BiddingClient(ws(port), api_key="key-pub", backoff=Backoff(0.05, 0.2),
                            circuit_breaker=CircuitBreaker(100, 0.5))
        buyer = BiddingClient(ws(port), api_key="key-acme", backoff=Backoff(0.05, 0.2),
                              circuit_breaker=CircuitBreaker(100, 0.5))
        buyer.on("reconnect", reconnects.append)
        events: list[Event] = []
        results: list[object] = []
        until = asyncio.Event()
        try:
            async with pub.connect() as p, buyer.connect() as b:
                await b.subscribe()
                consumer = asyncio.create_task(_bid_on_everything(b, events, results, until))
                publisher = asyncio.create_task(_publish(p, "r", 120, 0.01))
                while sum(e.type == "bid_accepted" for e in events) < 30:
                    await asyncio.sleep(0.01)
                if how == "kill9":
                    s.kill()
                else:
                    s.signal(signal.SIGTERM)
                    assert await asyncio.to_thread(s.wait) == 0
                await asyncio.sleep(0.3)
                s = ServeProcess("--config", str(cfg))
                await asyncio.wait_for(publisher, 60)
                await asyncio.sleep(0.5)
                until.set()
                await p.open_auction("last", tmax=0.2)  # wakes the consumer to notice `until`
                await asyncio.wait_for(consumer, 30)
        finally:
            s.kill()
        assert reconnects, "the buyer never reconnected"
        _assert_exactly_once(events)
        assert b.stats["reconnects"] >= 1
        # every bid call was answered once: accepted, or refused for a reason that is not a
        # second application (the auction may have closed while the exchange was down)
        for r in results:
            assert isinstance(r, Event) or (isinstance(r, BidRejectedError) and r.reason in (
                "AUCTION_CLOSED", "UNKNOWN_AUCTION")), r

    asyncio.run(main())


def test_faults_through_a_proxy_drop_stall_and_cut_mid_frame(tmp_path) -> None:
    s = ServeProcess("--config", str(config(tmp_path)))
    upstream = int(s.url.rsplit(":", 1)[1])

    async def main() -> None:
        proxy = await FaultProxy(upstream).start()
        pub = BiddingClient(ws(s.url), api_key="key-pub")
        buyer = BiddingClient(ws(proxy.port), api_key="key-acme", backoff=Backoff(0.05, 0.2),
                              ping_interval=0.3, ping_timeout=0.3)
        events: list[Event] = []
        results: list[object] = []
        until = asyncio.Event()
        disconnects: list[object] = []
        buyer.on("disconnect", lambda code, reason: disconnects.append(code))
        try:
            async with pub.connect() as p, buyer.connect() as b:
                await b.subscribe()
                consumer = asyncio.create_task(_bid_on_everything(b, events, results, until))
                publisher = asyncio.create_task(_publish(p, "f", 150, 0.01))
                for fault in ("drop", "stall", "cut", "delay"):
                    n = len(events)
                    while len(events) < n + 20:
                        await asyncio.sleep(0.01)
                    if fault == "drop":
                        proxy.drop()
                    elif fault == "stall":
                        proxy.stall()  # only the ping timeout notices this
                        await asyncio.sleep(1.0)
                        proxy.resume()
                    elif fault == "cut":
                        proxy.cut_mid_frame()
                    else:
                        proxy.delay = 0.05
                        await asyncio.sleep(0.5)
                        proxy.delay = 0.0
                await asyncio.wait_for(publisher, 60)
                await asyncio.sleep(0.5)
                until.set()
                await p.open_auction("last", tmax=0.2)
                await asyncio.wait_for(consumer, 30)
                assert b.stats["reconnects"] >= 3, b.stats
        finally:
            await proxy.close()
        assert len(disconnects) >= 3
        _assert_exactly_once(events)
        started = {e.call_id for e in events if e.type == "auction_started"}
        assert {f"f{i}" for i in range(150)} <= started, "an announcement was lost"
        for r in results:
            assert isinstance(r, Event) or (isinstance(r, BidRejectedError)
                                            and r.reason == "AUCTION_CLOSED"), r

    try:
        asyncio.run(main())
    finally:
        s.kill()


def test_backoff_timings_and_the_circuit_on_an_injected_clock(tmp_path) -> None:
    port = free_port()
    cfg = config(tmp_path, port)

    async def main() -> None:
        clock = FakeClock()
        states: list[str] = []
        c = BiddingClient(ws(port), api_key="key-acme", clock=clock,
                          backoff=Backoff(1.0, 60.0, random=lambda: 0.5),
                          circuit_breaker=CircuitBreaker(4, 100.0))
        for name in ("circuit_open", "circuit_half_open", "circuit_closed"):
            c.on(name, lambda name=name: states.append(name))
        connecting = asyncio.ensure_future(c.connect(timeout=60))
        # nothing listens: every attempt is refused at once. Wait for the circuit to be open
        # (not half-open, probing, where a request waits for the connection): no await
        # separates that check from place_bid's own
        while len(clock.sleeps) < 8 or c.circuit_state != "open":
            await asyncio.sleep(0.001)
        conn = c.connection
        assert conn is not None
        with pytest.raises(CircuitOpenError, match=r"open after \d+ failed"):
            await conn.place_bid("x", 1.0)
        # attempts 0..3 fail: half the ceilings 1, 2, 4, 8; the 4th failure opens the circuit,
        # which waits out the rest of its 100 s cool-down; the probe fails (reopens) ...
        assert clock.sleeps[:4] == [0.5, 1.0, 2.0, 4.0]
        assert clock.sleeps[4] == pytest.approx(100 - 4.0)
        assert clock.sleeps[5] == 8.0  # the failed probe's backoff (attempt 4: ceiling 16)
        assert clock.sleeps[6] == pytest.approx(100 - 8.0)
        assert states[:3] == ["circuit_open", "circuit_half_open", "circuit_open"]
        s = ServeProcess("--config", str(cfg))
        try:
            await asyncio.wait_for(connecting, 30)
            assert c.circuit_state == "closed" and states[-1] == "circuit_closed"
            assert conn.stats["failed_attempts"] >= 5
            await conn.close()
        finally:
            s.kill()

    asyncio.run(main())


def test_a_slow_consumer_is_told_and_loses_nothing(server, caplog) -> None:
    async def main() -> None:
        told: list[int] = []
        pub = BiddingClient(ws(server.url), api_key="key-pub")
        c = BiddingClient(ws(server.url), api_key="key-acme", max_queue=10)
        c.on("backpressure", told.append)
        async with pub.connect() as p, c.connect() as conn:
            await conn.subscribe(event_types=["auction_started"])
            for i in range(40):
                await p.open_auction(f"q{i}", tmax=0.2)
            await asyncio.sleep(0.5)
            assert "inbound queue is full" in caplog.text
            got = []
            async for ev in conn.stream_events():
                got.append(ev.call_id)
                if len(got) == 40:
                    break
        assert got == [f"q{i}" for i in range(40)]
        assert told and conn.stats["queue_full"] >= 1

    asyncio.run(main())


class _Double(BidStrategy):
    def calculate_bid(self, auction_event: Event) -> float | None:
        return 2.0 if auction_event.attributes.get("vertical") == "news" else None


def test_autobidder_runs_a_composed_strategy_and_feeds_outcomes_back(server) -> None:
    pool = CreditPool(initial=3, cap=100, bid_cost=1, win_credit=0, loss_credit=0, bump=0)
    strategy = ThompsonCreativeStrategy(CreditGatedStrategy(_Double(), pool),
                                        ["red", "blue"], seed=1)
    bidder = AutoBidder(BiddingClient(ws(server.url), api_key="key-acme"), strategy)

    async def publish() -> None:
        async with BiddingClient(ws(server.url), api_key="key-pub").connect() as p:
            # announcements before the exchange has the subscription would not reach it
            assert await asyncio.to_thread(bidder.subscribed.wait, 10)
            for i in range(8):
                await p.open_auction(f"a{i}", attributes={"vertical": "news"}, tmax=0.1,
                                     floor=0.5)
                await p.open_auction(f"s{i}", attributes={"vertical": "sports"}, tmax=0.1)

    bidder.start()
    try:
        asyncio.run(publish())
        # every auction's outcome reaches the bidder (a loaded machine may take a while)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (bidder.stats["auctions"] < 16
                                               or bidder.stats["won"] < 3):
            time.sleep(0.05)
        time.sleep(0.2)  # and nothing more than that comes
    finally:
        bidder.stop()
    # 8 news auctions, but the credit pool paid for 3 bids (no win credit) and gates the rest
    assert bidder.stats["auctions"] == 16, bidder.stats
    assert bidder.stats["bids"] == 3 and bidder.stats["won"] == 3, bidder.stats
    assert bidder.stats["spend"] == pytest.approx(3 * 0.5)  # the floor: alone in each auction
    assert pool.stats()["refused"] == 5
    assert strategy.sampler.alpha.sum() == pytest.approx(2 + 3)  # a prior of 1 per arm + 3 wins


def test_paced_strategy_spends_its_budget_over_a_simulated_day_never_more(tmp_path) -> None:
    """A "day" of 12 s on the demo exchange (about 300 auctions/s, floors 0.0001-0.001): the
    PID pacer in participation mode spends within 5% of the budget, never over it."""
    s = ServeProcess("--config", str(config(tmp_path, extra="")), "--demo-traffic", "300")
    day = 12.0
    budget = 0.6  # about a third of what bidding on everything would cost
    try:
        strategy = PacedStrategy(0.002, budget, duration=day, seed=3)
        bidder = AutoBidder(BiddingClient(ws(s.url), api_key="key-acme"), strategy)
        bidder.run(duration=day)
    finally:
        s.kill()
    spent = bidder.stats["spend"]
    assert spent <= budget + 1e-9, (spent, bidder.stats)
    assert spent >= 0.95 * budget, (spent, bidder.stats)
    assert strategy.spent == pytest.approx(spent)


def test_fixed_strategy_refuses_a_bad_value() -> None:
    for v in (0, -1, math.nan, math.inf):
        with pytest.raises(InvalidInputError, match="value"):
            FixedBidStrategy(v)


def test_the_example_buyer_runs_against_rtbcore_serve(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys

    s = ServeProcess("--config", str(config(tmp_path)), "--demo-traffic", "200")
    try:
        out = subprocess.run(
            [sys.executable, "-P", str(Path(__file__).parents[1] / "examples" / "buyer.py"),
             "--url", ws(s.url), "--budget", "0.02", "--seconds", "3"],
            env=dict(os.environ, RTB_API_KEY="key-acme"), capture_output=True, text=True,
            timeout=60)
    finally:
        s.kill()
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["bids"] > 0 and stats["won"] > 0, stats
    assert 0 < stats["spend"] <= 0.02


def test_paced_strategy_builds_an_adaptive_pacer_from_a_profile_and_refuses_none() -> None:
    from rtbcore import AdaptivePacer

    profile = [1.0] * 12 + [3.0] * 12
    st = PacedStrategy(1.0, 10.0, pacer="adaptive", profile=profile, duration=60.0)
    assert isinstance(st.pacer, AdaptivePacer)
    assert st.pacer.profile[12] == pytest.approx(3.0 / 48)
    with pytest.raises(InvalidInputError, match="needs a profile"):
        PacedStrategy(1.0, 10.0, pacer="adaptive")
    with pytest.raises(InvalidInputError, match="budget"):
        PacedStrategy(1.0, math.nan)


def test_paced_strategy_at_the_end_of_its_period_stops_instead_of_raising() -> None:
    """The built-in pacers read the clock again inside should_bid: a read that lands past the
    end of the period, just after the strategy's own check, must not raise."""
    from rtbcore.client import bidding_pb2 as pb

    now = [100.0]

    def value(event: Event) -> float:
        now[0] = 100.0 + 10.0 + 1e-3  # time passes while the value is computed
        return 0.5

    for kind in ("pid", "adaptive"):
        now[0] = 100.0
        st = PacedStrategy(value, 1.0, duration=10.0, clock=lambda: now[0], pacer=kind,
                           profile=[1.0] * 24 if kind == "adaptive" else None)
        now[0] = 100.0 + 10.0 - 1e-3  # inside the period by the strategy's check
        started = Event(pb.BidEvent(seq=1, auction_started=pb.AuctionStarted(auction_id="a")))
        decision = st.calculate_bid(started)
        assert decision is None or decision == 0.5
        # past the end: no bid, and no pacer call
        assert st.calculate_bid(started) is None


def test_shaded_strategy_shades_first_price_bids_only() -> None:
    import numpy as np

    from rtbcore import BidLandscape, BidShader, simulate_first_price
    from rtbcore.client import ShadedStrategy, bidding_pb2

    out = simulate_first_price(lambda rng, n: rng.random(n), 10_000, seed=1)
    land = BidLandscape(max_bid=1.0)
    land.observe(out.bids, out.won, price=out.price, min_to_win=out.min_to_win)
    shader = BidShader(land, floor=0.05, explore=0.0, seed=7)

    def started(kind: int) -> Event:
        return Event(bidding_pb2.BidEvent(seq=1, auction_started=bidding_pb2.AuctionStarted(
            auction_id="a", auction_type=kind)))

    st = ShadedStrategy(FixedBidStrategy(0.5), shader)
    first = st.calculate_bid(started(bidding_pb2.FIRST_PRICE))
    assert isinstance(first, float) and abs(first - 0.40) < 0.02  # rivals at 0.8 x value
    assert st.calculate_bid(started(bidding_pb2.SECOND_PRICE)) == 0.5
    below = ShadedStrategy(FixedBidStrategy(0.01), shader)  # below the floor: no bid
    assert below.calculate_bid(started(bidding_pb2.FIRST_PRICE)) is None
    assert np.isnan(shader.bid(np.array([0.01]))[0])


@contextlib.asynccontextmanager
async def _scripted_exchange(
    on_frame: Callable[[int, list[Any], Callable[..., Awaitable[None]]], Awaitable[bool]],
) -> AsyncIterator[tuple[int, list[list[Any]]]]:
    """A scripted exchange (websockets + the protocol classes) on a free loopback port, for
    what the real one does only in narrow windows. It answers auth itself, records every
    message per connection and hands each frame's other messages to
    ``on_frame(connection_number, messages, send)`` (numbers from 1; ``send(*events)`` sends
    one frame); ``on_frame`` returning False drops the connection. Yields the port and the
    recorded messages per connection."""
    import websockets

    from rtbcore.client import bidding_pb2 as pb

    connections: list[list[Any]] = []

    async def handler(sock: Any) -> None:
        got: list[Any] = []
        connections.append(got)
        n = len(connections)

        async def send(*events: Any) -> None:
            await sock.send(pb.ServerFrame(events=list(events)).SerializeToString())

        async for data in sock:
            rest = []
            for m in pb.ClientFrame.FromString(data).messages:
                got.append(m)
                if m.WhichOneof("message") == "auth":
                    await send(pb.BidEvent(request_id=m.request_id,
                                           auth_result=pb.AuthResult(ok=True, buyer_id="acme")))
                else:
                    rest.append(m)
            if rest and not await on_frame(n, rest, send):
                await sock.close()
                return

    proto = [websockets.Subprotocol("rtbcore.v1.proto")]
    async with websockets.serve(handler, "127.0.0.1", 0, subprotocols=proto) as srv:
        yield srv.sockets[0].getsockname()[1], connections


def test_a_bid_resent_after_a_restart_that_meets_its_own_bid_resolves_to_it() -> None:
    """An exchange that restarted forgets answered request ids: the re-sent bid is refused
    ALREADY_BID. The client answers it with the bid's acceptance from the replayed stream.
    Scripted: the first connection takes the bid and drops; the second replays its
    acceptance, then refuses the re-sent copy."""
    from rtbcore.client import bidding_pb2 as pb

    async def on_frame(n: int, msgs: list[Any], send: Callable[..., Awaitable[None]]) -> bool:
        for m in msgs:
            kind = m.WhichOneof("message")
            if kind == "subscribe":
                evs = [pb.BidEvent(request_id=m.request_id, subscription_ack=pb.SubscriptionAck())]
                if n == 1:
                    evs.append(pb.BidEvent(seq=1, auction_started=pb.AuctionStarted(
                        auction_id="a1")))
                else:
                    assert m.subscribe.replay_missed and m.subscribe.since_seq == 1
                    evs.append(pb.BidEvent(seq=2, bid_accepted=pb.BidAccepted(
                        bid_id="b1", auction_id="a1")))
                await send(*evs)
            elif kind == "place_bid" and n == 1:
                return False  # applied, but the answer never leaves
            elif kind == "place_bid":
                await send(pb.BidEvent(seq=3, request_id=m.request_id,
                                       bid_rejected=pb.BidRejected(
                                           reason=pb.ALREADY_BID, auction_id="a1")))
        return True

    async def main() -> None:
        async with _scripted_exchange(on_frame) as (port, connections):
            c = BiddingClient(ws(port), api_key="k", backoff=Backoff(0.01, 0.02))
            async with c.connect() as conn:
                await conn.subscribe()
                started = await asyncio.wait_for(anext(conn.stream_events()), 5)
                accepted = await asyncio.wait_for(conn.place_bid(started.call_id, 1.0), 10)
                assert (accepted.type, accepted.bid_id) == ("bid_accepted", "b1")
                assert accepted.seq == 2
                assert conn.stats["requests_resent"] == 1
        first, second = connections
        assert [m.WhichOneof("message") for m in second] == ["auth", "subscribe", "place_bid"]
        assert second[2].request_id == first[2].request_id  # the same id: applied once

    asyncio.run(main())


def test_adjusted_strategy_raises_bids_as_the_deadline_nears_within_its_bounds() -> None:
    import time

    from rtbcore import BidAdjuster
    from rtbcore.client import AdjustedStrategy, bidding_pb2

    def started(seconds_left: float) -> Event:
        a = bidding_pb2.AuctionStarted(auction_id="a")
        a.deadline.FromNanoseconds(int((time.time() + seconds_left) * 1e9))
        return Event(bidding_pb2.BidEvent(seq=1, auction_started=a))

    t = [0.0]
    far = AdjustedStrategy(FixedBidStrategy(1.0), BidAdjuster(
        "time", max_increase=1.5, frequency=0.0, window=10.0), clock=lambda: t[0])
    assert far.calculate_bid(started(100.0)) == pytest.approx(1.0)  # outside the window
    t[0] = 1.0
    near = far.calculate_bid(started(1.0))  # 1 s left of a 10 s window: 1 + 0.5 * 0.9
    assert near == pytest.approx(1.45, abs=0.01)
    t[0] = 2.0
    assert far.calculate_bid(started(0.0)) == pytest.approx(1.5)  # the bound, never more
    with pytest.raises(InvalidInputError, match="needs a signal"):
        AdjustedStrategy(FixedBidStrategy(1.0), BidAdjuster("performance", target_rate=0.1))


def test_paced_strategy_holds_open_bids_against_the_budget_until_their_outcome() -> None:
    from rtbcore.client import bidding_pb2 as pb

    def ev(**body: object) -> Event:
        return Event(pb.BidEvent(seq=1, **body))  # type: ignore[arg-type]

    class AlwaysBid:  # a pacer that always agrees: only the hard cap decides here
        def should_bid(self, *args: object) -> bool:
            return True

        def update(self, *args: object) -> None:
            pass

    st = PacedStrategy(0.4, 1.0, duration=60.0, pacer=AlwaysBid())
    for aid in ("a", "b"):
        started = ev(auction_started=pb.AuctionStarted(auction_id=aid))
        assert st.calculate_bid(started) == 0.4
        st.on_placed(started, 0.4)
    # 0.8 open: a third bid of 0.4 would exceed the budget of 1.0
    assert st.committed == pytest.approx(0.8)
    assert st.calculate_bid(ev(auction_started=pb.AuctionStarted(auction_id="c"))) is None
    st.on_outcome(ev(auction_won=pb.AuctionWon(auction_id="a", price=pb.Money(micros=300_000))))
    assert st.committed == pytest.approx(0.3 + 0.4) and st.spent == pytest.approx(0.3)
    st.on_outcome(ev(auction_lost=pb.AuctionLost(auction_id="b")))
    assert st.committed == pytest.approx(0.3) and st.open == {}


def test_a_request_a_draining_exchange_refuses_is_held_for_its_successor() -> None:
    """SHUTTING_DOWN means nothing was applied: the client holds the request and re-sends it
    (same id) once connected to the next exchange; without auto_reconnect it raises.
    Scripted: the first connection refuses the bid as draining, then closes."""
    from rtbcore.client import bidding_pb2 as pb

    async def on_frame(n: int, msgs: list[Any], send: Callable[..., Awaitable[None]]) -> bool:
        for m in msgs:
            kind = m.WhichOneof("message")
            if kind == "subscribe":
                await send(pb.BidEvent(request_id=m.request_id,
                                       subscription_ack=pb.SubscriptionAck()),
                           pb.BidEvent(seq=1, auction_started=pb.AuctionStarted(
                               auction_id="a1")))
            elif kind == "place_bid" and n % 2 == 1:
                await send(pb.BidEvent(request_id=m.request_id, bid_rejected=pb.BidRejected(
                    reason=pb.SHUTTING_DOWN, auction_id="a1")))
                await asyncio.sleep(0.1)
                return False
            elif kind == "place_bid":
                await send(pb.BidEvent(seq=2, request_id=m.request_id,
                                       bid_accepted=pb.BidAccepted(bid_id="b1",
                                                                   auction_id="a1")))
        return True

    async def main() -> None:
        async with _scripted_exchange(on_frame) as (port, connections):
            c = BiddingClient(ws(port), api_key="k", backoff=Backoff(0.01, 0.02))
            async with c.connect() as conn:
                await conn.subscribe()
                started = await asyncio.wait_for(anext(conn.stream_events()), 5)
                accepted = await asyncio.wait_for(conn.place_bid(started.call_id, 1.0), 10)
                assert (accepted.type, accepted.bid_id) == ("bid_accepted", "b1")
                assert conn.stats["held_while_draining"] == 1
            first, second = connections
            assert second[-1].request_id == first[-1].request_id
            once = BiddingClient(ws(port), api_key="k", auto_reconnect=False)
            async with once.connect() as conn:
                await conn.subscribe()
                started = await asyncio.wait_for(anext(conn.stream_events()), 5)
                with pytest.raises(BidRejectedError, match="SHUTTING_DOWN"):
                    await asyncio.wait_for(conn.place_bid(started.call_id, 1.0), 10)

    asyncio.run(main())


def test_place_bids_answers_each_bid_in_order_and_stream_batches_delivers_them(server) -> None:
    async def main() -> None:
        pub = BiddingClient(ws(server.url), api_key="key-pub")
        c = BiddingClient(ws(server.url), api_key="key-acme")
        async with pub.connect() as p, c.connect() as conn:
            await conn.subscribe(event_types=["auction_started", "bid_accepted", "bid_rejected"],
                                 filters={"vertical": "batch"})
            for i, floor in enumerate((None, 5.0, None)):
                await p.open_auction(f"pb{i}", attributes={"vertical": "batch"}, floor=floor,
                                     tmax=5.0)
            batches = conn.stream_batches()
            seen: list[str] = []
            while len(seen) < 3:
                seen += [ev.call_id for ev in await asyncio.wait_for(anext(batches), 5)]
            assert seen == ["pb0", "pb1", "pb2"]
            res = await conn.place_bids(["pb0", "pb1", "pb2"], [1.0, 1.0, 2.0])
            assert isinstance(res[0], Event) and isinstance(res[2], Event)
            assert (res[0].type, res[0].call_id, res[2].amount) == ("bid_accepted", "pb0", 2.0)
            assert isinstance(res[1], BidRejectedError) and res[1].reason == "BELOW_FLOOR"
            answers: list[tuple[str, str]] = []
            while len(answers) < 3:
                answers += [(ev.type, ev.call_id)
                            for ev in await asyncio.wait_for(anext(batches), 5)]
            assert sorted(answers) == [("bid_accepted", "pb0"), ("bid_accepted", "pb2"),
                                       ("bid_rejected", "pb1")]
            again = await conn.place_bids(["pb0"], [1.5])  # one bid per buyer and auction
            assert isinstance(again[0], BidRejectedError) and again[0].reason == "ALREADY_BID"
            assert await conn.place_bids([], []) == []

    asyncio.run(main())


def test_place_bids_unanswered_when_the_connection_drops_are_resent_with_their_ids() -> None:
    """Scripted: the first connection answers the first bid of a batch and drops; the second
    gets the other two again, with the same request ids, and answers them."""
    from rtbcore.client import bidding_pb2 as pb

    async def on_frame(n: int, msgs: list[Any], send: Callable[..., Awaitable[None]]) -> bool:
        answers = [pb.BidEvent(request_id=m.request_id, bid_accepted=pb.BidAccepted(
            bid_id=f"b-{m.place_bid.auction_id}", auction_id=m.place_bid.auction_id,
            amount=m.place_bid.amount)) for m in msgs if m.WhichOneof("message") == "place_bid"]
        if answers and n == 1:
            await send(answers[0])
            return False
        if answers:
            await send(*answers)
        return True

    async def main() -> None:
        async with _scripted_exchange(on_frame) as (port, connections):
            c = BiddingClient(ws(port), api_key="k", backoff=Backoff(0.01, 0.02))
            async with c.connect() as conn:
                res = await asyncio.wait_for(
                    conn.place_bids(["a1", "a2", "a3"], [1.0, 2.0, 3.0]), 10)
                assert all(isinstance(r, Event) for r in res), res
                assert [(r.bid_id, r.amount) for r in res] == [  # type: ignore[union-attr]
                    ("b-a1", 1.0), ("b-a2", 2.0), ("b-a3", 3.0)]
                assert conn.stats["requests_resent"] == 2
        first, second = ([m for m in c if m.WhichOneof("message") == "place_bid"]
                         for c in connections)
        assert [m.request_id for m in second] == [m.request_id for m in first[1:]]

    asyncio.run(main())


def test_place_bids_unanswered_within_the_timeout_are_returned_as_timeouts() -> None:
    """Scripted: the exchange answers the first bid of a batch at once and the second only
    after the call gave up; the third never. The late answer changes nothing."""
    from rtbcore.client import bidding_pb2 as pb

    async def on_frame(n: int, msgs: list[Any], send: Callable[..., Awaitable[None]]) -> bool:
        answers = [pb.BidEvent(request_id=m.request_id, bid_accepted=pb.BidAccepted(
            bid_id=f"b-{m.place_bid.auction_id}", auction_id=m.place_bid.auction_id))
            for m in msgs if m.WhichOneof("message") == "place_bid"]
        if answers:
            await send(answers[0])
            await asyncio.sleep(0.5)
            await send(answers[1])
        return True

    async def main() -> None:
        async with _scripted_exchange(on_frame) as (port, _):
            c = BiddingClient(ws(port), api_key="k", request_timeout=0.2)
            async with c.connect() as conn:
                res = await conn.place_bids(["a1", "a2", "a3"], [1.0, 2.0, 3.0])
                assert isinstance(res[0], Event) and res[0].bid_id == "b-a1"
                assert all(isinstance(r, TimeoutError) for r in res[1:]), res
                assert "no answer within 0.2 s" in str(res[1])
                assert len(conn._stream) == 0 and conn._pending == {}
                await asyncio.sleep(0.5)  # the late answer arrives: nothing is waiting for it
                assert isinstance(res[1], TimeoutError) and conn.connected

    asyncio.run(main())


def test_place_bids_frames_are_what_protobuf_encodes() -> None:
    """place_bids writes its frames itself: byte for byte the protocol classes' encoding, for
    short and long ids and currencies; each pending bid decodes back to its message."""
    from rtbcore.client import bidding_pb2 as pb
    from rtbcore.client._session import Connection

    async def main() -> None:
        class Socket:  # as if connected: records what is sent
            def __init__(self) -> None:
                self.sent: list[bytes] = []

            async def send(self, data: bytes) -> None:
                self.sent.append(data)

        c = BiddingClient("ws://127.0.0.1:1/v1/bidding", api_key="k")
        for currency in ("", "EUR", "Y" * 100):
            for ids in (["a1", "a2"], ["x" * 64, "y"]):
                conn = Connection(c)
                conn._ws = sock = Socket()
                task = asyncio.ensure_future(
                    conn.place_bids(ids, [1.5, 10**6 - 0.5], currency=currency))
                await asyncio.sleep(0)
                (data,) = sock.sent
                assert conn.stats["frames_sent"] == 1 and conn._outbox == []
                want = pb.ClientFrame()
                for m, aid, micros in zip(pb.ClientFrame.FromString(data).messages, ids,
                                          (1_500_000, 10**12 - 500_000), strict=True):
                    want.messages.add(request_id=m.request_id, place_bid=pb.PlaceBid(
                        auction_id=aid, amount=pb.Money(currency=currency, micros=micros)))
                assert data == want.SerializeToString()
                # re-sent after a reconnect as they were first sent, with their ids
                frames, bids = conn._stream.resend(False)
                assert (b"".join(frames), bids) == (data, len(ids))
                for m in want.messages:  # each pending bid decodes back to its message
                    held = conn._take_pending(m.request_id)
                    assert held is not None and held.message() == m
                assert len(conn._stream) == 0 and conn._take_pending("x") is None
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
