"""The Python peer of the exchange server: the protocol of ``proto/rtbcore/v1/bidding.proto``
served the way a user would build it without rtbcore's gateway, with ``websockets`` (asyncio),
``protobuf`` classes generated from the ``.proto``, and ``rtbcore.AuctionEngine``.

    python benches/peer/server.py [--config exchange.toml] [--host 127.0.0.1] [--port 8080]

It is the baseline of the exchange benchmarks and a second implementation for the conformance
tests. What it serves: ``/v1/bidding`` (both subprotocols), ``/readyz`` and ``/healthz``.
What it leaves out (a peer, not a product): the SSE stream ``/v1/events`` and ``/metrics``;
an event log that survives a restart (its log is in memory, the last ``[peer] log_events``
events per buyer); bid ``ttl`` expiry; per-connection rate limits and failed-auth limits;
heartbeat close code 4009 (websockets' own keepalive closes with 1011); ``--demo-traffic``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import resource
import signal
import sys
import time
from http import HTTPStatus
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from google.protobuf import json_format  # noqa: E402
from google.protobuf.message import DecodeError  # noqa: E402
from websockets.asyncio.server import ServerConnection, serve  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from bidding_proto import SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO, load  # noqa: E402
from exchange_config import Credential, PeerConfig  # noqa: E402
from exchange_config import load as load_config  # noqa: E402
from peer_state import Exchange  # noqa: E402

pb = load()
R = pb.RejectReason
OUTBOX_LIMIT = 1 << 18  # events queued for one connection before it is a slow consumer (4008)


class Conn:
    """One client connection: its outbox and the task that writes it, one frame per wake-up
    (everything queued meanwhile goes out as one ``ServerFrame``)."""

    def __init__(self, ws: ServerConnection, ex: Exchange) -> None:
        self.ws = ws
        self.ex = ex
        self.json = ws.subprotocol == SUBPROTOCOL_JSON
        self.buyer = None
        self.pending: list = []
        self.wake = asyncio.Event()
        self.slow = False

    def push(self, event) -> None:
        self.pending.append(event)
        if len(self.pending) > OUTBOX_LIMIT:
            self.slow = True

    def encode(self, frame) -> bytes | str:
        if self.json:
            return json_format.MessageToJson(frame, indent=None)
        return frame.SerializeToString()

    def decode(self, raw: bytes | str):
        if self.json:
            return json_format.Parse(raw, pb.ClientFrame())
        return pb.ClientFrame.FromString(raw)

    async def send_now(self, *events) -> None:
        frame = pb.ServerFrame()
        frame.events.extend(events)
        await self.ws.send(self.encode(frame))

    async def writer(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.slow:
                await self.ws.close(4008, "slow consumer: resume with replay")
                return
            if not self.pending:
                continue
            frame = pb.ServerFrame()
            frame.events.extend(self.pending)
            self.pending = []
            await self.ws.send(self.encode(frame))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def verify_token(token: str, secret: str) -> Credential | None:
    """``v1.<payload>.<signature>`` (see the ``Auth`` message) or None."""
    parts = token.split(".")
    if not secret or len(parts) != 3 or parts[0] != "v1":
        return None
    sig = hmac.new(secret.encode(), f"v1.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64url(sig), parts[2]):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        if float(claims["exp"]) < time.time():
            return None
        return Credential(str(claims["sub"]), frozenset(claims.get("scopes", [])))
    except (ValueError, KeyError, TypeError):
        return None


class Server:
    def __init__(self, cfg: PeerConfig) -> None:
        self.cfg = cfg
        self.ex = Exchange(cfg)
        self.conns: set[Conn] = set()

    def kick(self) -> None:
        for c in self.ex.dirty:
            c.wake.set()
        self.ex.dirty.clear()

    def credential(self, auth) -> Credential | None:
        which = auth.WhichOneof("credential")
        if which == "api_key":
            return self.cfg.keys.get(hashlib.sha256(auth.api_key.encode()).hexdigest())
        if which == "token":
            return verify_token(auth.token, self.cfg.token_secret)
        return None

    def frame(self, conn: Conn, raw):
        """The frame's messages, or None after answering a frame that is unusable."""
        if isinstance(raw, str) != conn.json:
            return "close"
        try:
            msgs = conn.decode(raw).messages
        except (DecodeError, json_format.ParseError, ValueError, UnicodeDecodeError) as e:
            err = self.ex.event(time.time_ns())
            err.error.reason = R.MALFORMED
            err.error.message = f"frame: does not decode as a ClientFrame ({e})"[:300]
            self.ex.connection_event(conn, err)
            return None
        if len(msgs) > self.cfg.max_messages_per_frame:
            err = self.ex.event(time.time_ns())
            err.error.reason = R.TOO_MANY_MESSAGES
            err.error.message = (f"frame: {len(msgs)} messages, at most "
                                 f"{self.cfg.max_messages_per_frame}; none applied")
            self.ex.connection_event(conn, err)
            return None
        return msgs

    async def authenticate(self, conn: Conn):
        """(credential, messages after the Auth) or None once the connection is closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.auth_timeout_s
        while True:
            try:
                raw = await asyncio.wait_for(conn.ws.recv(), deadline - loop.time())
            except TimeoutError:
                await conn.ws.close(4002, "authentication timeout")
                return None
            msgs = self.frame(conn, raw)
            if isinstance(msgs, str):
                await conn.ws.close(1003, "frame type does not match the subprotocol")
                return None
            for i, m in enumerate(msgs or ()):
                now_ns = time.time_ns()
                if m.WhichOneof("message") != "auth":
                    ev = self.ex.event(now_ns, m.request_id)
                    ev.bid_rejected.reason = R.NOT_AUTHENTICATED
                    ev.bid_rejected.message = "the first message must be auth"
                    self.ex.connection_event(conn, ev)
                    continue
                cred = self.credential(m.auth)
                ev = self.ex.event(now_ns, m.request_id)
                ev.auth_result.ok = cred is not None
                if cred is None:
                    ev.auth_result.message = "unknown key or invalid token"
                    self.ex.connection_event(conn, ev)
                    self.ex.dirty.discard(conn)
                    await conn.send_now(*conn.pending)
                    await conn.ws.close(4001, "authentication failed")
                    return None
                conn.buyer = buyer = self.ex.buyer(cred)
                r = ev.auth_result
                r.buyer_id = cred.buyer
                r.scopes.extend(sorted(cred.scopes))
                r.last_seq, r.acked_seq = buyer.seq, buyer.acked
                r.heartbeat_interval.FromSeconds(20)
                r.heartbeat_timeout.FromSeconds(20)
                self.ex.connection_event(conn, ev)
                return cred, list(msgs)[i + 1:]
            self.kick()

    async def handle(self, ws: ServerConnection) -> None:
        conn = Conn(ws, self.ex)
        self.conns.add(conn)
        writer = asyncio.create_task(conn.writer())
        try:
            got = await self.authenticate(conn)
            if got is None:
                return
            cred, rest = got
            if rest:
                self.ex.handle_frame(conn, cred, rest)
            self.kick()
            async for raw in ws:
                msgs = self.frame(conn, raw)
                if isinstance(msgs, str):
                    await ws.close(1003, "frame type does not match the subprotocol")
                    return
                if msgs:
                    self.ex.handle_frame(conn, cred, msgs)
                self.kick()
        except ConnectionClosed:
            pass
        finally:
            if conn.buyer is not None:
                conn.buyer.live.discard(conn)
            self.ex.dirty.discard(conn)
            self.conns.discard(conn)
            if not conn.slow:
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def results(self) -> None:
        loop = asyncio.get_running_loop()
        eng = self.ex.engine
        while True:
            rows = await loop.run_in_executor(None, eng.poll, 65536, 20)
            if rows.size:
                self.ex.publish_results(rows)
                self.kick()


def _http(connection, request):
    path = request.path.split("?", 1)[0]
    if path in ("/readyz", "/healthz"):
        return connection.respond(HTTPStatus.OK, "ok\n")
    if path != "/v1/bidding":
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None


def _subprotocol(connection, offered):
    for p in (SUBPROTOCOL_PROTO, SUBPROTOCOL_JSON):
        if p in offered:
            return p
    return None  # none asked (or none known): the binary protocol, without the header


def _raise_file_limit(want: int = 1 << 20) -> None:
    """As many descriptors as allowed (one per connection): the hard limit too where the
    process may raise it (CAP_SYS_RESOURCE), else the soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
    except (ValueError, OSError):
        pass
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main_async(cfg: PeerConfig) -> int:
    srv = Server(cfg)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(srv.handle, cfg.host, cfg.port, process_request=_http,
                     select_subprotocol=_subprotocol, max_size=cfg.max_frame_bytes,
                     compression=None, ping_interval=20, ping_timeout=20,
                     close_timeout=2) as server:
        host, port = next(iter(server.sockets)).getsockname()[:2]
        print(f"rtbcore peer: listening on http://{host}:{port}", file=sys.stderr, flush=True)
        pump = asyncio.create_task(srv.results())
        await stop
        server.close()  # close frames 1001 (going away) to every connection
        await server.wait_closed()
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
    srv.ex.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=None, help="exchange.toml")
    ap.add_argument("--host", default=None)
    ap.add_argument("--port", type=int, default=None)
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    if args.host is not None:
        cfg.host = args.host
    if args.port is not None:
        cfg.port = args.port
    _raise_file_limit()
    return asyncio.run(main_async(cfg))


if __name__ == "__main__":
    sys.exit(main())
