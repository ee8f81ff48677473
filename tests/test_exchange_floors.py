"""rtbcore.exchange_floors.LearnedFloors: the optimizer's floor applied to auctions opened on a
real exchange, buyers bidding over real sockets, and the results learned from exactly as the
same rows given to the optimizer by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from exchange_client import Buyer, write_config

from rtbcore import InvalidInputError
from rtbcore.exchange import Exchange
from rtbcore.exchange_floors import LearnedFloors
from rtbcore.floors import FloorOptimizer


def optimizer(explore: float = 1.0) -> FloorOptimizer:
    return FloorOptimizer(2, initial=0.5, explore=explore, seed=5)


def expected(bids: tuple[float, float], floor_micros: int) -> tuple[str | None, int]:
    """The exchange's second price over a floor it enforces at the door: bids below the floor
    are refused; the winner pays max(runner-up, floor)."""
    micros = [round(b * 1e6) for b in bids]
    ok = [(m, who) for m, who in zip(micros, ("acme", "bolt"), strict=True) if m >= floor_micros]
    if not ok:
        return None, 0
    ok.sort(reverse=True)
    return ok[0][1], max(ok[1][0] if len(ok) > 1 else 0, floor_micros)


def test_floors_are_applied_and_learned_from_the_exchange_results(tmp_path: Path) -> None:
    # every auction explored, so each floor is a grid candidate the price row informs; the
    # twin draws the same floors from the same seeded stream
    opt, twin = optimizer(), optimizer()
    rounds = [(0.9, 0.7), (0.8, 0.3), (0.45, 0.2), (0.1, 0.05)]  # (acme, bolt) bids
    floors_drawn = [float(twin.lookup(np.array([1]))[0]) for _ in rounds]
    assert len(set(floors_drawn)) > 1 and all(0.3 < f < 0.7 for f in floors_drawn)
    with Exchange(write_config(tmp_path)) as ex:
        floors = LearnedFloors(ex, opt, segment="segment", batch=3)

        async def main() -> list[int]:
            acme = await Buyer.connect(ex.url, "key-acme")
            bolt = await Buyer.connect(ex.url, "key-bolt")
            for b in (acme, bolt):
                await b.send({"subscribe": {"filters": {"segment": "1"}}})
                await b.until("subscriptionAck")
            announced = []
            for i, bids in enumerate(rounds):
                floors.open_auction(f"f{i}", attributes={"segment": "1"}, tmax_s=0.3,
                                    expected_bids=2)
                for b, price in zip((acme, bolt), bids, strict=True):
                    started = await b.until("auctionStarted")
                    floor = started["auctionStarted"].get("floor", {}).get("micros", "0")
                    announced.append(int(floor))
                    await b.send({"requestId": f"r{i}", "placeBid": {
                        "auctionId": f"f{i}",
                        "amount": {"currency": "USD", "micros": str(round(price * 1e6))}}})
            await acme.close()
            await bolt.close()
            return announced

        announced = asyncio.run(main())
        floor_micros = [round(f * 1e6) for f in floors_drawn]
        assert announced == [m for m in floor_micros for _ in range(2)]
        got = {}
        for r in floors.results(timeout=3.0):
            got[r.auction_id] = r
            if len(got) == len(rounds):
                break
        assert floors.pending == 0
    outcomes = [(got[f"f{i}"].winner, got[f"f{i}"].price_micros) for i in range(len(rounds))]
    assert outcomes == [expected(b, m) for b, m in zip(rounds, floor_micros, strict=True)]
    assert {w for w, _ in outcomes} >= {"acme", None}
    # three rows learned in a batch of 3, the fourth waits for flush
    assert floors.learned == 3
    floors.flush()
    assert floors.learned == 4
    sold = np.array([w is not None for w, _ in outcomes])
    prices = np.where(sold, np.array([p for _, p in outcomes]) / 1e6, np.nan)
    twin.update(np.ones(len(rounds), dtype=np.int64), np.array(floors_drawn), prices, sold)
    ours, theirs = opt.estimates(1), twin.estimates(1)
    for k in ("weight", "revenue", "fill"):
        assert np.array_equal(ours[k], theirs[k], equal_nan=True), k
    assert np.count_nonzero(ours["weight"]) == len(set(floors_drawn))
    assert np.array_equal(opt.floors, twin.floors)
    # the other segment learned nothing
    assert not opt.estimates(0)["weight"].any()


def test_results_of_other_auctions_pass_through_unlearned(tmp_path: Path) -> None:
    opt = optimizer()
    with Exchange(write_config(tmp_path)) as ex:
        floors = LearnedFloors(ex, opt, segment=lambda a: int(a["s"]) % 2, batch=1)
        ex.open_auction("direct", attributes={"s": "1"}, tmax_s=0.02)
        floors.open_auction("ours", attributes={"s": "3"}, tmax_s=0.02)
        seen = {}
        while len(seen) < 2:
            r = floors.next_result(3.0)
            assert r is not None
            seen[r.auction_id] = r
    assert floors.learned == 1 and floors.pending == 0
    assert seen["direct"].winner is None and seen["ours"].winner is None


def test_bad_segments_and_arguments_are_refused_before_anything_opens(tmp_path: Path) -> None:
    with Exchange(write_config(tmp_path)) as ex:
        floors = LearnedFloors(ex, optimizer(), segment="segment")
        for attrs, msg in (({}, "no 'segment' attribute"),
                           ({"segment": "x"}, r"attributes\['segment'\] = 'x'"),
                           ({"segment": "2"}, r"segment = 2: must be an int in \[0, 2\)")):
            with pytest.raises(InvalidInputError, match=msg):
                floors.open_auction("a", attributes=attrs)
        assert ex.auctions_open() == 0 and floors.pending == 0
        with pytest.raises(InvalidInputError, match="bidders"):
            LearnedFloors(ex, FloorOptimizer(2, bidders=3), segment="segment")
        with pytest.raises(InvalidInputError, match="explore = 0"):
            LearnedFloors(ex, optimizer(explore=0.0), segment="segment")
        with pytest.raises(InvalidInputError, match="batch"):
            LearnedFloors(ex, optimizer(), segment="segment", batch=0)
