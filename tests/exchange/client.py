"""A third-party client of the exchange protocol for the conformance tests: the ``websockets``
synchronous client and the classes generated from the ``.proto`` (``bidding_proto``), nothing
of rtbcore's own. The server under test is started by ``launch`` (the Python peer now,
``rtbcore serve`` when it is built).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
from collections import deque
from pathlib import Path

import pytest
from google.protobuf import json_format
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import launch
from bidding_proto import SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO, load
from launch import Server, serve_available

pb = load()
R = pb.RejectReason
TIMEOUT = 5.0
TOKEN_SECRET = "conformance-secret"


KINDS = ["peer", "serve"]


def skip_unless_serve(kind: str) -> None:
    if kind == "serve" and not serve_available():
        pytest.skip("rtbcore serve is not in this build (`rtbcore serve --help` fails)")


def skip_on_peer(server: Server, omits: str) -> None:
    """For a test of something the Python peer leaves out, so that the same test runs in full
    against ``rtbcore serve``."""
    if server.kind == "peer":
        pytest.skip(f"the Python peer omits {omits}")


def websocat() -> str | None:
    """The websocat binary (``make tools`` installs it with cargo), or None."""
    found = shutil.which("websocat")
    cargo_bin = Path.home() / ".cargo" / "bin" / "websocat"
    return found or (str(cargo_bin) if cargo_bin.exists() else None)


# the buyers of the keys file: "b" buyers bid and subscribe, "p" publishers also publish,
# "m" buyers also read metrics, "x" buyers may only subscribe
BUYERS = {
    **{f"b{i}": ["bid", "subscribe"] for i in range(60)},
    **{f"p{i}": ["publish", "subscribe", "bid"] for i in range(20)},
    **{f"m{i}": ["bid", "subscribe", "metrics"] for i in range(4)},
    **{f"x{i}": ["subscribe"] for i in range(4)},
}
SETTINGS = {
    "server.max_frame_bytes": 65536,
    "server.max_messages_per_frame": 64,
    "auth.auth_timeout_s": 1.0,
    "auth.token_secret": TOKEN_SECRET,
    "engine.tmax_ms": 1000,
}


def start_server(kind: str, directory: Path, **settings) -> Server:
    """``kind`` on the test keys file and config (``settings`` override ``SETTINGS``)."""
    return launch.start_server(kind, directory, BUYERS, {**SETTINGS, **settings})


def token(sub: str, scopes: list[str], exp: float, secret: str = TOKEN_SECRET) -> str:
    """A signed token as the ``Auth`` message documents it: ``v1.<payload>.<signature>``."""
    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    payload = b64(json.dumps({"sub": sub, "scopes": scopes, "exp": int(exp)}).encode())
    sig = hmac.new(secret.encode(), f"v1.{payload}".encode(), hashlib.sha256).digest()
    return f"v1.{payload}.{b64(sig)}"


def msg(request_id: str = "", **kind) -> pb.BidMessage:
    """``msg(place_bid=pb.PlaceBid(...), request_id="r1")``."""
    return pb.BidMessage(request_id=request_id, **kind)


def money(micros: int, currency: str = "") -> pb.Money:
    return pb.Money(currency=currency, micros=micros)


def place(auction_id: str, micros: int, request_id: str = "", **kw) -> pb.BidMessage:
    return msg(request_id, place_bid=pb.PlaceBid(auction_id=auction_id, amount=money(micros),
                                                 **kw))


def open_auction(auction_id: str, expected_bids: int = 0, tmax_ms: int = 0,
                 attributes: dict | None = None, floor: int = 0) -> pb.BidMessage:
    o = pb.OpenAuction(auction_id=auction_id, expected_bids=expected_bids,
                       attributes=attributes or {})
    if tmax_ms:
        o.tmax.FromMilliseconds(tmax_ms)
    if floor:
        o.floor.micros = floor
    return msg(open_auction=o)


class Client:
    """One connection. ``events`` is everything received, in order; ``expect`` reads until an
    event of the wanted kind arrives."""

    def __init__(self, url: str, json: bool = False, subprotocol: str | None = "default") -> None:
        if subprotocol == "default":
            subprotocol = SUBPROTOCOL_JSON if json else SUBPROTOCOL_PROTO
        self.json = json
        # entered at once (websockets wants connect() as a context manager); __exit__ closes
        self._cm = connect(url, subprotocols=[subprotocol] if subprotocol else None,
                           open_timeout=TIMEOUT, close_timeout=2, max_size=None)
        self.ws = self._cm.__enter__()
        self.events: list = []
        self._unread: deque = deque()
        self.close_code: int | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self._cm.__exit__(None, None, None)

    def send(self, *messages) -> None:
        frame = pb.ClientFrame()
        frame.messages.extend(messages)
        if self.json:
            self.ws.send(json_format.MessageToJson(frame, indent=None))
        else:
            self.ws.send(frame.SerializeToString())

    def send_raw(self, data: bytes | str) -> None:
        self.ws.send(data)

    def _frame(self, timeout: float) -> list:
        raw = self.ws.recv(timeout=timeout)
        if isinstance(raw, str):
            frame = json_format.Parse(raw, pb.ServerFrame())
        else:
            frame = pb.ServerFrame.FromString(raw)
        self.events.extend(frame.events)
        return list(frame.events)

    def next(self, timeout: float = TIMEOUT):
        if not self._unread:
            self._unread.extend(self._frame(timeout))
            while not self._unread:
                self._unread.extend(self._frame(timeout))
        return self._unread.popleft()

    def expect(self, kind: str, timeout: float = TIMEOUT, skip: tuple[str, ...] = ()):
        """The next event; it must be of ``kind`` (events whose kind is in ``skip`` are
        passed over)."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next(max(0.01, deadline - time.monotonic()))
            got = ev.WhichOneof("event")
            if got == kind:
                return ev
            if got not in skip:
                raise AssertionError(f"expected {kind}, got {got}: {ev}")

    def nothing(self, within: float = 0.3) -> None:
        """Asserts that no event arrives within ``within`` seconds."""
        if self._unread:
            raise AssertionError(f"unexpected event: {self._unread[0]}")
        try:
            got = self._frame(within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected events: {got}")

    def closed_with(self, timeout: float = TIMEOUT) -> int:
        """Reads until the server closes the connection; its close code."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._frame(max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as e:
            assert e.rcvd is not None, f"closed without a close frame: {e}"
            self.close_code = e.rcvd.code
            return e.rcvd.code

    def login(self, key: str, subscribe: pb.Subscribe | None = None):
        """Auth (and Subscribe) in one frame; returns the AuthResult event."""
        msgs = [msg(auth=pb.Auth(api_key=key))]
        if subscribe is not None:
            msgs.append(msg(subscribe=subscribe))
        self.send(*msgs)
        res = self.expect("auth_result")
        assert res.auth_result.ok, res
        if subscribe is not None:
            self.expect("subscription_ack")
        return res
