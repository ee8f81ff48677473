"""rtbcore.exchange.Exchange: lifecycle, open_auction, the results iterators, and buyers
bidding over real sockets (the ``websockets`` package, JSON subprotocol)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest
from exchange_client import Buyer, seq, write_config

from rtbcore import InvalidInputError, QueueClosed
from rtbcore.exchange import AuctionResult, Exchange


def test_context_manager_open_auction_and_results(tmp_path: Path) -> None:
    with Exchange(write_config(tmp_path)) as ex:
        assert ex.running and ex.port > 0 and ex.dev_key is None
        opened = ex.open_auction("a1", attributes={"vertical": "news"}, floor_micros=500,
                                 tmax_s=0.05)
        assert opened.auction_id == "a1" and opened.deadline > 0
        auto = ex.open_auction(tmax_s=0.05)
        assert auto.auction_id
        got: dict[str, AuctionResult] = {}
        for r in ex.results(timeout=2.0):
            got[r.auction_id] = r
            if len(got) == 2:
                break
        assert got["a1"] == AuctionResult("a1", {"vertical": "news"}, None, None, 0, 0,
                                          "deadline", None)
        with urllib.request.urlopen(ex.url + "/readyz", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(ex.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        assert "rtbcore_gateway_auctions_closed_total 2" in text
        # both closed at their deadline: each counted once in the close-delay histogram
        assert "rtbcore_gateway_close_delay_seconds_count 2" in text
        assert 'rtbcore_gateway_close_delay_seconds_bucket{le="+Inf"} 2' in text
    assert not ex.running
    with pytest.raises(QueueClosed):
        ex.open_auction("late")


def test_bad_arguments_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="engine.mechanism"):
        Exchange({"engine": {"mechanism": "vickrey"}}).start()
    with pytest.raises(InvalidInputError, match="port"):
        Exchange(port=70000)
    with pytest.raises(InvalidInputError, match="cannot read"):
        Exchange(tmp_path / "missing.toml")
    with Exchange(write_config(tmp_path)) as ex:
        ex.open_auction("dup", tmax_s=5)
        with pytest.raises(InvalidInputError, match="DUPLICATE_AUCTION"):
            ex.open_auction("dup")
        with pytest.raises(InvalidInputError, match="tmax_s"):
            ex.open_auction("x", tmax_s=-1)
        with pytest.raises(InvalidInputError, match="floor"):
            ex.open_auction("y", floor_micros=-3)


def test_a_development_exchange_has_a_key_with_every_scope() -> None:
    with Exchange(port=0) as ex:
        assert ex.dev_key and ex.dev_key.startswith("rtbk_")

        async def main() -> None:
            b = await Buyer.connect(ex.url, ex.dev_key or "")
            await b.send({"metrics": {}})
            m = await b.until("metricsUpdate")
            assert "bidsPlaced" not in m and "bids_placed" in m["metricsUpdate"]["metrics"]
            await b.close()

        asyncio.run(main())


def test_buyers_bid_over_sockets_and_the_embedder_gets_the_result(tmp_path: Path) -> None:
    with Exchange(write_config(tmp_path)) as ex:

        async def main() -> list[dict]:
            acme = await Buyer.connect(ex.url, "key-acme")
            bolt = await Buyer.connect(ex.url, "key-bolt")
            for b in (acme, bolt):
                await b.send({"subscribe": {"filters": {"vertical": "news"}}})
                await b.until("subscriptionAck")
            ex.open_auction("s1", attributes={"vertical": "news"}, floor_micros=100, tmax_s=5,
                            expected_bids=2)
            for b, micros in ((acme, 900), (bolt, 700)):
                started = await b.until("auctionStarted")
                assert started["auctionStarted"]["auctionId"] == "s1"
                await b.send({"requestId": "r", "placeBid": {
                    "auctionId": "s1", "amount": {"currency": "USD", "micros": str(micros)}}})
                acc = await b.until("bidAccepted")
                assert acc["requestId"] == "r" and seq(acc) == seq(started) + 1
            won = await acme.until("auctionWon")
            lost = await bolt.until("auctionLost")
            await acme.close()
            await bolt.close()
            return [won, lost]

        won, lost = asyncio.run(main())
        assert won["auctionWon"]["price"]["micros"] == "700"
        assert lost["auctionLost"]["lossReason"] == 102
        r = ex.next_result(2.0)
        assert r is not None
        assert (r.auction_id, r.winner, r.price_micros, r.n_bids, r.closed_by) == (
            "s1", "acme", 700, 2, "all_bids")
        assert json.loads(json.dumps(r.attributes)) == {"vertical": "news"}


def test_async_iteration_and_stop_releases_the_port(tmp_path: Path) -> None:
    ex = Exchange(write_config(tmp_path)).start()
    port = ex.port

    async def main() -> list[AuctionResult]:
        for i in range(3):
            ex.open_auction(f"q{i}", tmax_s=0.02)
        out = []
        async for r in ex:
            out.append(r)
            if len(out) == 3:
                break
        return out

    assert sorted(r.auction_id for r in asyncio.run(main())) == ["q0", "q1", "q2"]
    ex.stop()
    ex.stop()
    # the same port can be bound again at once
    again = Exchange(write_config(tmp_path), port=port)
    with again:
        assert again.port == port
