"""A third-party client of the exchange protocol for the conformance tests: the ``websockets``
synchronous client and the classes generated from the ``.proto`` (``bidding_proto``), nothing
of rtbcore's own. Also the server process the tests run against (the Python peer now,
``rtbcore serve`` when it is built), started from the outside as a user would.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from google.protobuf import json_format
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bidding_proto import SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO, load
from exchange_config import write_exchange

pb = load()
R = pb.RejectReason
ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "benches" / "peer" / "server.py"
LISTENING = re.compile(r"rtbcore (?:serve|peer): listening on http://([0-9.]+):(\d+)")
TIMEOUT = 5.0


@cache
def serve_available() -> bool:
    """Whether this build has ``rtbcore serve`` (the gateway)."""
    try:
        r = subprocess.run([sys.executable, "-m", "rtbcore.cli", "serve", "--help"],
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


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
    return shutil.which("websocat")


@dataclass
class Server:
    """A server subprocess bound to 127.0.0.1 on a port of the OS's choice."""

    kind: str  # "peer" or "serve"
    proc: subprocess.Popen
    host: str
    port: int
    keys: dict[str, str]
    stderr: list[str] = field(default_factory=list)
    _next: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/bidding"

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fresh(self, prefix: str) -> tuple[str, str]:
        """A buyer (and its key) no other test has used: per-buyer state (seq, bids,
        subscription) starts clean."""
        i = self._next.get(prefix, 0)
        name = f"{prefix}{i}"
        if name not in self.keys:
            raise RuntimeError(f"no more {prefix!r} buyers in the keys file")
        self._next[prefix] = i + 1
        return name, self.keys[name]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


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
    "engine.tmax_ms": 1000,
}


def start_server(kind: str, directory: Path, **settings) -> Server:
    setup = write_exchange(directory, BUYERS, **{**SETTINGS, **settings})
    if kind == "peer":
        cmd = [sys.executable, str(PEER)]
    else:
        cmd = [sys.executable, "-m", "rtbcore.cli", "serve"]
    cmd += ["--config", str(setup["config"]), "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=directory)
    lines: list[str] = []
    found: deque = deque()
    ready = threading.Event()

    def drain() -> None:  # keeps reading stderr so that the server never blocks on it
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            m = LISTENING.search(line)
            if m and not ready.is_set():
                found.append((m.group(1), int(m.group(2))))
                ready.set()
        proc.stderr.close()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(30) or not found:
        proc.kill()
        raise RuntimeError(f"{kind} did not print its listening line: {lines[-20:]}")
    host, port = found[0]
    srv = Server(kind, proc, host, port, setup["keys"], lines)
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"{srv.http}/readyz", timeout=2) as r:
                if r.status == 200:
                    return srv
        except OSError:
            pass
        if time.monotonic() > deadline:
            srv.stop(signal.SIGKILL)
            raise RuntimeError(f"{kind}: /readyz never answered 200")
        time.sleep(0.05)


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
