"""The JSON subprotocol through a third-party command-line client, websocat (crates.io; the
Makefile's set-up installs it when missing): one JSON frame a line in, one a line out."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import uuid
from collections import deque

import pytest

from exchange.client import Client, open_auction, pb, websocat

TIMEOUT = 5.0


class Websocat:
    def __init__(self, url: str) -> None:
        exe = websocat()
        if exe is None:
            pytest.skip("websocat is not installed (`make install` sets it up)")
        self.proc = subprocess.Popen(
            [exe, "--text", "--protocol", "rtbcore.v1.json", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.unread: deque[dict] = deque()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.proc.stdout.close()

    def send(self, *messages: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"messages": list(messages)}) + "\n")
        self.proc.stdin.flush()

    def expect(self, kind: str) -> dict:
        """The next event of ``kind`` (lowerCamelCase); events before it are passed over."""
        while True:
            while not self.unread:
                self.unread.extend(json.loads(self.lines.get(timeout=TIMEOUT))["events"])
            ev = self.unread.popleft()
            if kind in ev:
                return ev

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_a_json_buyer_over_websocat_bids_and_wins(server):
    aid = f"ws-{uuid.uuid4().hex[:12]}"
    name, key = server.fresh("b")
    ws = Websocat(server.url)
    try:
        ws.send({"auth": {"apiKey": key}}, {"requestId": "s", "subscribe": {}})
        auth = ws.expect("authResult")
        assert auth["authResult"]["ok"] is True and auth["authResult"]["buyerId"] == name
        assert ws.expect("subscriptionAck")["requestId"] == "s"
        with Client(server.url) as pub:
            pub.login(server.fresh("p")[1], pb.Subscribe(event_types=["auction_closed"]))
            pub.send(open_auction(aid, expected_bids=1, tmax_ms=5000))
            started = ws.expect("auctionStarted")
            assert started["auctionStarted"]["auctionId"] == aid
            assert started["seq"] == "1"  # uint64 as a string: the canonical mapping
            # micros as a JSON number is accepted too; it comes back as a string
            ws.send({"requestId": "b1", "placeBid": {"auctionId": aid,
                                                     "amount": {"micros": 1500000}}})
            acc = ws.expect("bidAccepted")
            assert acc["requestId"] == "b1"
            assert acc["bidAccepted"]["amount"]["micros"] == "1500000"
            won = ws.expect("auctionWon")["auctionWon"]
            assert won["auctionId"] == aid and won["bidId"] == acc["bidAccepted"]["bidId"]
            closed = pub.expect("auction_closed", skip=("auction_opened",)).auction_closed
            assert closed.winners[0].buyer_id == name
            ws.send({"placeBid": {"auctionId": aid, "amount": {"micros": "2"}}})
            rej = ws.expect("bidRejected")["bidRejected"]
            assert rej["reason"] == "AUCTION_CLOSED"  # enums by name
    finally:
        ws.close()
