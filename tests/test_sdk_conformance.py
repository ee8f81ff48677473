"""One scenario, three SDKs: the same program in Python (sdk_conformance_program.py), JavaScript
(sdk/js/test/conformance.mjs) and Go (sdk/go/internal/conformance) runs a publisher that
opens auctions and a buyer that bids on every one it is announced, both connected to a real
``rtbcore serve`` through the fault proxy; a rival buyer bids directly, so the buyer both wins
and loses. Between rounds of traffic the connections are dropped, stalled (only the SDK's health
check notices), cut mid-frame and delayed, and the exchange is restarted with SIGTERM (it
drains, refusing new auctions with SHUTTING_DOWN, which the publisher holds for the next
exchange) and with kill -9. The program prints what it saw; the test asserts exactly-once
delivery (the seqs are contiguous: no gap, no duplicate), that every opened auction was
announced, that every request was answered once (a bid accepted, or refused because the
auction closed meanwhile; never SHUTTING_DOWN or ALREADY_BID, which the SDK resolves itself)
and that no bid was applied twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from exchange_client import ServeProcess, write_config
from fault_proxy import FaultProxy

from rtbcore.client import Backoff, BiddingClient, CircuitBreaker

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[1]
FAULTS = ("drop", "stall", "cut", "delay", "sigterm", "kill9")
# the auction closed (or, after kill -9, was lost) before a delayed bid reached it
LATE = {"AUCTION_CLOSED", "UNKNOWN_AUCTION"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ws(port: int) -> str:
    return f"ws://127.0.0.1:{port}/v1/bidding"


@pytest.fixture(scope="session")
def go_program(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Go scenario built offline in GOPATH mode against Debian's Go libraries."""
    d = tmp_path_factory.mktemp("gopath")
    link = d / "src/github.com/rtbcore/rtbcore/sdk/go"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO / "sdk/go")
    exe = d / "conformance"
    env = dict(os.environ, GO111MODULE="off", GOPATH=f"{d}:/usr/share/gocode", GOFLAGS="")
    subprocess.run(["go", "build", "-o", str(exe),
                    "github.com/rtbcore/rtbcore/sdk/go/internal/conformance"],
                   env=env, check=True, timeout=600, cwd=d)
    return str(exe)


def buyer_command(sdk: str, go_program: str) -> list[str]:
    if sdk == "python":
        return [sys.executable, str(REPO / "tests/sdk_conformance_program.py")]
    if sdk == "js":
        node = shutil.which("node")
        assert node, "node is needed (make sdk-deps)"
        return [node, "--experimental-websocket", str(REPO / "sdk/js/test/conformance.mjs")]
    return [go_program]


class Program:
    """The scenario program: its JSON lines, sorted as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.bids: list[dict[str, Any]] = []
        self.opens: list[dict[str, Any]] = []
        self.ready = asyncio.Event()
        self.done: dict[str, Any] | None = None
        self.stderr = b""
        self._reader = asyncio.create_task(self._read())
        self._errors = asyncio.create_task(self._read_stderr())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            msg = json.loads(line)
            if "seq" in msg:
                self.events.append(msg)
            elif "bid" in msg:
                self.bids.append(msg)
            elif "opened" in msg:
                self.opens.append(msg)
            elif msg.get("ready"):
                self.ready.set()
            elif msg.get("done"):
                self.done = msg

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    async def until(self, what: str, pred: Any, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while not pred():
                if self.proc.returncode is not None:
                    raise AssertionError(f"the buyer exited waiting for {what}: "
                                         f"{self.stderr.decode(errors='replace')[-2000:]}")
                await asyncio.sleep(0.02)

    async def finish(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        async with asyncio.timeout(60):
            rc = await self.proc.wait()
            await self._reader
            await self._errors
        return rc


async def _rival(conn: Any) -> None:
    """bolt bids on every auction: above the buyer's 1.0 on about a third of them."""
    tasks = []
    try:
        async for ev in conn.stream_events():
            if ev.type == "auction_started":
                amount = 1.5 if sum(map(ord, ev.call_id)) % 3 == 0 else 0.5
                tasks.append(asyncio.ensure_future(conn.place_bid(ev.call_id, amount)))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def scenario(sdk: str, command: list[str], d: Path) -> None:
    port = free_port()
    cfg = write_config(d)
    cfg.write_text(cfg.read_text().replace("port = 0", f"port = {port}"))
    serve = await asyncio.to_thread(ServeProcess, "--config", str(cfg))
    proxy = await FaultProxy(port).start()
    bolt = BiddingClient(ws(port), api_key="key-bolt", backoff=Backoff(0.05, 0.4),
                         circuit_breaker=CircuitBreaker(1000, 0.5))
    proc = await asyncio.create_subprocess_exec(
        *command, ws(proxy.port), "key-acme", "key-pub", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=d)
    buyer = Program(proc)
    try:
        async with bolt.connect() as b:
            await b.subscribe(event_types=["auction_started"])
            rival = asyncio.create_task(_rival(b))
            await asyncio.wait_for(buyer.ready.wait(), 60)
            for fault in FAULTS:
                n = len(buyer.events)
                await buyer.until(f"traffic before {fault}",
                                  lambda n=n: len(buyer.events) >= n + 15)
                if fault == "drop":
                    proxy.drop()
                elif fault == "stall":
                    proxy.stall()  # nothing flows, nothing closes: only the health check sees it
                    await asyncio.sleep(2.0)
                    proxy.resume()
                elif fault == "cut":
                    proxy.cut_mid_frame()
                elif fault == "delay":  # slow, not broken: nothing to reconnect for
                    proxy.delay = 0.05
                    await asyncio.sleep(0.5)
                    proxy.delay = 0.0
                else:
                    if fault == "sigterm":
                        serve.signal(signal.SIGTERM)
                        assert await asyncio.to_thread(serve.wait) == 0
                    else:
                        await asyncio.to_thread(serve.kill)
                    serve = await asyncio.to_thread(ServeProcess, "--config", str(cfg))
            n = len(buyer.events)
            await buyer.until("traffic after the faults", lambda: len(buyer.events) >= n + 15)
            rc = await buyer.finish()
            rival.cancel()
            await asyncio.gather(rival, return_exceptions=True)
        assert rc == 0, buyer.stderr.decode(errors="replace")[-2000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proxy.close()
        await asyncio.to_thread(serve.kill)

    try:
        _check(sdk, buyer)
    except AssertionError as e:  # with what the program said about its connections
        tail = buyer.stderr.decode(errors="replace")[-3000:]
        raise AssertionError(f"{e}\n--- the program's stderr ---\n{tail}") from None


def _check(sdk: str, buyer: Program) -> None:
    assert buyer.done is not None, "the program did not finish"
    stats, pub_stats = buyer.done["stats"], buyer.done["publisher_stats"]
    # exactly once: the seqs the buyer saw are contiguous, whatever the faults
    seqs = [e["seq"] for e in buyer.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), \
        f"{sdk}: a gap or a duplicate: {[(e['seq'], e['type']) for e in buyer.events]}"
    # every open answered once: opened, or found already open (re-sent across the kill -9
    # restart, which forgets answered request ids); the draining exchange's SHUTTING_DOWN was
    # held by the publisher and re-sent, never returned
    opens = Counter(r["opened"] for r in buyer.opens)
    assert opens and max(opens.values()) == 1, f"{sdk}: an open answered twice"
    for r in buyer.opens:
        assert r.get("ok") or r.get("rejected") == "DUPLICATE_AUCTION", f"{sdk}: {r}"
    assert pub_stats["held_while_draining"] >= 1, pub_stats
    started = Counter(e["auction"] for e in buyer.events if e["type"] == "auction_started")
    assert set(opens) <= set(started), f"{sdk}: announcements lost: {set(opens) - set(started)}"
    # every bid answered once, never with a refusal the SDK resolves itself
    answers = Counter(r["bid"] for r in buyer.bids)
    assert answers == started, \
        f"{sdk}: answered twice or unannounced {answers - started}, unanswered {started - answers}"
    for r in buyer.bids:
        assert "accepted" in r or r.get("rejected") in LATE, f"{sdk}: {r}"
    accepted = Counter(e["auction"] for e in buyer.events if e["type"] == "bid_accepted")
    assert accepted and max(accepted.values()) == 1, f"{sdk}: a bid applied twice"
    kinds = Counter(e["type"] for e in buyer.events)
    assert kinds["auction_won"] > 0 and kinds["auction_lost"] > 0, kinds
    # drop, cut and the restarts always end the connection; the stall does through the health
    # check (1 s here, the stall lasts 2 s), which a starved machine could run late: not counted
    assert stats["reconnects"] >= 4, stats
    assert stats["events"] <= len(seqs), stats  # events may still arrive after the stats
    print(f"{sdk}: {len(seqs)} events, {len(opens)} auctions, buyer {stats}, publisher {pub_stats}")


@pytest.mark.parametrize("sdk", ["python", "js", "go"])
def test_the_sdks_deliver_exactly_once_through_faults_and_restarts(sdk: str, tmp_path,
                                                                     request) -> None:
    go = request.getfixturevalue("go_program") if sdk == "go" else ""
    asyncio.run(scenario(sdk, buyer_command(sdk, go), tmp_path))
