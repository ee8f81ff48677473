"""``rtbcore serve`` as a process: the listening line and readiness, SIGTERM under load with no
acknowledged event lost, ``kill -9`` then restart and replay from the event log, and
``rtbcore keys add``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets
from exchange_client import RTBCORE, Buyer, ServeProcess, seq, write_config

pytestmark = pytest.mark.timeout(120)


def _strip(e: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in e.items() if k != "requestId"}


async def _traffic(url: str, seconds: float, stop_on_close: bool) -> dict[str, list[dict]]:
    """A publisher opens auctions; acme and bolt bid on each announcement. Returns each
    buyer's received stream events (seq > 0) until `seconds` pass or the server closes."""
    seen: dict[str, list[dict]] = {"acme": [], "bolt": []}
    pub = await Buyer.connect(url, "key-pub")
    buyers = {n: await Buyer.connect(url, f"key-{n}") for n in seen}
    for b in buyers.values():
        await b.send({"subscribe": {}})
        await b.until("subscriptionAck")
    closed: list[int | None] = []

    async def bidder(name: str, b: Buyer) -> None:
        try:
            while True:
                e = await b.next(timeout=10)
                if seq(e) > 0:
                    seen[name].append(e)
                if "auctionStarted" in e:
                    aid = e["auctionStarted"]["auctionId"]
                    await b.send({"placeBid": {"auctionId": aid, "amount": {"micros": "500"}}})
        except websockets.ConnectionClosed as c:
            closed.append(c.rcvd.code if c.rcvd else None)

    async def publisher() -> None:
        i = 0
        try:
            while True:
                await pub.send({"openAuction": {"auctionId": f"t{i}", "expectedBids": 2,
                                                "tmax": "0.3s"}})
                i += 1
                await asyncio.sleep(0.01)
        except websockets.ConnectionClosed:
            pass

    tasks = [asyncio.create_task(bidder(n, b)) for n, b in buyers.items()]
    ptask = asyncio.create_task(publisher())
    if stop_on_close:
        await asyncio.wait(tasks, timeout=30)
        assert closed == [1001, 1001], closed
    else:
        await asyncio.sleep(seconds)
    for t in [*tasks, ptask]:
        t.cancel()
    await asyncio.gather(*tasks, ptask, return_exceptions=True)
    for b in [pub, *buyers.values()]:
        await b.close()
    return seen


async def _replay(url: str, name: str) -> tuple[int, list[dict]]:
    b = await Buyer.connect(url, f"key-{name}")
    await b.send({"metrics": {}})
    await b.send({"subscribe": {"replayMissed": True, "sinceSeq": "0"}})
    ack = await b.until("subscriptionAck")
    last = int(ack["subscriptionAck"].get("replayTo", "0"))
    out: list[dict] = []
    while len(out) < last:
        out.append(await b.next())
    await b.close()
    return last, out


def _check_nothing_lost(before: dict[str, list[dict]], url: str) -> None:
    for name, events in before.items():
        last, replayed = asyncio.run(_replay(url, name))
        assert [seq(e) for e in replayed] == list(range(1, last + 1)), "a gap or a duplicate"
        by_seq = {seq(e): e for e in replayed}
        assert events, name
        for e in events:
            assert _strip(by_seq[seq(e)]) == _strip(e)
        accepted = [e["bidAccepted"]["bidId"] for e in replayed if "bidAccepted" in e]
        outcomes = {e.get("auctionWon", e.get("auctionLost", {})).get("bidId") for e in replayed}
        # SIGTERM drains: every accepted bid got its outcome before the exit
        missing = [b for b in accepted if b not in outcomes]
        assert not missing, missing


def test_serve_prints_the_listening_line_and_drains_on_sigterm_under_load(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    srv = ServeProcess("--config", str(cfg))
    try:
        with urllib.request.urlopen(srv.url + "/readyz", timeout=5) as r:
            assert r.status == 200

        async def load_then_term() -> dict[str, list[dict]]:
            run = asyncio.create_task(_traffic(srv.url, 0, stop_on_close=True))
            await asyncio.sleep(1.5)
            srv.signal(signal.SIGTERM)
            return await run

        before = asyncio.run(load_then_term())
        assert srv.wait() == 0, srv.lines
        assert sum(1 for line in srv.lines if "listening on" in line) == 1
    finally:
        srv.kill()
    again = ServeProcess("--config", str(cfg))
    try:
        _check_nothing_lost(before, again.url)
    finally:
        again.signal(signal.SIGINT)
        assert again.wait() == 0


def test_a_connection_during_the_drain_is_answered_at_once(tmp_path: Path) -> None:
    # an open auction keeps the drain ("finish") going; a newcomer meanwhile must get a prompt
    # answer (close 1001 or a refused connection), never a handshake left hanging
    srv = ServeProcess("--config", str(write_config(tmp_path)))
    try:

        async def main() -> list[tuple[str, float]]:
            pub = await Buyer.connect(srv.url, "key-pub")
            await pub.send({"openAuction": {"auctionId": "long", "tmax": "2s"}})
            assert "auctionOpened" in await pub.next()
            srv.signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            answers = []
            loop = asyncio.get_running_loop()
            while srv.proc.poll() is None and len(answers) < 20:
                t0 = loop.time()
                try:
                    ws = await websockets.connect(
                        srv.url.replace("http://", "ws://") + "/v1/bidding",
                        subprotocols=["rtbcore.v1.json"], open_timeout=3)
                    try:
                        await asyncio.wait_for(ws.recv(), 3)
                        answers.append(("message", loop.time() - t0))
                    except websockets.ConnectionClosed as e:
                        answers.append((f"close {e.rcvd.code if e.rcvd else None}",
                                        loop.time() - t0))
                except ConnectionRefusedError:
                    answers.append(("refused", loop.time() - t0))
                await asyncio.sleep(0.1)
            return answers

        answers = asyncio.run(main())
        assert answers, "the drain ended before a connection was tried"
        assert {a for a, _ in answers} <= {"close 1001", "refused"}, answers
        assert max(t for _, t in answers) < 1.0, answers
        assert srv.wait() == 0, srv.lines
    finally:
        srv.kill()


def test_kill_9_then_restart_continues_seq_and_replays(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    srv = ServeProcess("--config", str(cfg))
    try:
        before = asyncio.run(_traffic(srv.url, 1.0, stop_on_close=False))
        srv.signal(signal.SIGKILL)
        assert srv.wait() == -signal.SIGKILL
    finally:
        srv.kill()
    again = ServeProcess("--config", str(cfg))
    try:
        for name, events in before.items():
            last, replayed = asyncio.run(_replay(again.url, name))
            assert last >= max(seq(e) for e in events)
            assert [seq(e) for e in replayed] == list(range(1, last + 1))
            by_seq = {seq(e): e for e in replayed}
            for e in events:
                assert _strip(by_seq[seq(e)]) == _strip(e)

        async def next_seq() -> int:
            pub = await Buyer.connect(again.url, "key-pub")
            acme = await Buyer.connect(again.url, "key-acme")
            await acme.send({"subscribe": {}})
            await acme.until("subscriptionAck")
            await pub.send({"openAuction": {"auctionId": "after-restart", "tmax": "0.1s"}})
            e = await acme.until("auctionStarted")
            await pub.close()
            await acme.close()
            return seq(e)

        last_acme, _ = asyncio.run(_replay(again.url, "acme"))
        assert asyncio.run(next_seq()) == last_acme + 1
    finally:
        again.kill()


def test_keys_add_writes_a_hashed_key_that_serve_accepts(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    run = [*RTBCORE, "keys", "add"]
    out = subprocess.run([*run, "zed", "--scopes", "bid,subscribe,metrics", "--file", str(keys)],
                         capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path)
    key = out.stdout.strip()
    assert key.startswith("rtbk_") and len(key) == 48 and "\n" not in key
    assert key not in keys.read_text() and 'buyer = "zed"' in keys.read_text()
    bad = subprocess.run([*run, "zed", "--scopes", "root", "--file", str(keys)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 2 and "scope 'root'" in bad.stderr
    (tmp_path / "exchange.toml").write_text(
        '[server]\nport = 0\n[auth]\nkeys_file = "keys.toml"\n')
    srv = ServeProcess("--config", str(tmp_path / "exchange.toml"))
    try:
        async def login() -> dict:
            b = await Buyer.connect(srv.url, key)
            await b.send({"metrics": {}})
            m = await b.until("metricsUpdate")
            await b.close()
            return m

        assert "metricsUpdate" in asyncio.run(login())
    finally:
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0


def test_serve_without_config_prints_a_development_key() -> None:
    srv = ServeProcess("--port", "0", "--demo-traffic", "50")
    try:
        key = next(line.split(": ")[-1].strip() for line in srv.lines
                   if "development API key" in line)

        async def announced() -> dict:
            b = await Buyer.connect(srv.url, key)
            await b.send({"subscribe": {"filters": {"min_quality_score": "0"}}})
            e = await b.until("auctionStarted")
            await b.close()
            return e

        attrs = asyncio.run(announced())["auctionStarted"]["attributes"]
        assert {"vertical", "geography", "quality_score"} <= set(attrs)
    finally:
        srv.signal(signal.SIGINT)
        assert srv.wait() == 0
