"""The SDK conformance scenario's program (test_sdk_conformance.py) in the Python SDK, the same
script as sdk/js/test/conformance.mjs and sdk/go/internal/conformance. Usage:
sdk_conformance_program.py URL BUYER_KEY PUBLISHER_KEY. A publisher opens an auction every 20 ms; a
buyer subscribes to its whole stream and bids 1.0 on every announced auction. One JSON line per
buyer stream event ({seq, type, auction}), per answered open ({opened, ok | rejected | error})
and per answered bid ({bid, accepted | rejected | error}). When stdin ends: stop publishing, wait
until every opened auction was announced and every bid answered, print {done, stats,
publisher_stats} and exit."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable
from typing import Any

from rtbcore.client import Backoff, BiddingClient, BidRejectedError, CircuitBreaker


def out(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def settle(request: Awaitable[Any], key: str, ident: str, ok: str) -> None:
    try:
        ev = await request
        out({key: ident, ok: ev.bid_id if ok == "accepted" else True})
    except BidRejectedError as e:
        out({key: ident, "rejected": e.reason})
    except Exception as e:  # noqa: BLE001 - reported for the test to judge
        out({key: ident, "error": str(e)})


def client(url: str, key: str) -> BiddingClient:
    c = BiddingClient(url, api_key=key, backoff=Backoff(0.05, 0.4),
                      circuit_breaker=CircuitBreaker(1000, 0.5),
                      ping_interval=0.25, ping_timeout=0.75)
    c.on("disconnect", lambda code, reason: print(f"{key} disconnect {code} {reason}",
                                                  file=sys.stderr, flush=True))
    return c


async def main(url: str, buyer_key: str, publisher_key: str) -> None:
    loop = asyncio.get_running_loop()
    stdin_done = asyncio.Event()
    # stdin is read in a thread: its end is the signal to finish
    loop.run_in_executor(None, lambda: (sys.stdin.read(),
                                        loop.call_soon_threadsafe(stdin_done.set)))
    announced: set[str] = set()
    opened: list[str] = []
    bids: list[asyncio.Task[None]] = []
    async with client(url, buyer_key).connect() as buyer, \
            client(url, publisher_key).connect() as publisher:
        await buyer.subscribe()

        async def consume() -> None:
            async for ev in buyer.stream_events():
                out({"seq": ev.seq, "type": ev.type, "auction": ev.auction_id})
                if ev.type == "auction_started":
                    announced.add(ev.auction_id)
                    bids.append(asyncio.create_task(
                        settle(buyer.place_bid(ev.auction_id, 1.0), "bid", ev.auction_id,
                               "accepted")))

        async def publish() -> None:
            i = 0
            while not stdin_done.is_set():
                ident = f"c{i}"
                await settle(publisher.open_auction(ident, tmax=0.5), "opened", ident, "ok")
                opened.append(ident)
                i += 1
                await asyncio.sleep(0.02)

        consumer = asyncio.create_task(consume())
        out({"ready": True})
        await publish()
        async with asyncio.timeout(30):
            while not set(opened) <= announced:
                await asyncio.sleep(0.02)
        if bids:
            await asyncio.wait(bids, timeout=30)
        out({"done": True, "stats": buyer.stats, "publisher_stats": publisher.stats})
        consumer.cancel()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
