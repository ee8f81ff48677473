"""The bidding client: one WebSocket (binary protobuf subprotocol) to the exchange, kept alive
across failures.

One supervisor task per connection owns the socket: it connects, authenticates, resumes the
stream (``Subscribe`` with ``replay_missed`` after the last delivered seq), re-sends every
request not yet answered (same request ids: the exchange applies each once), then reads until
the socket fails, waits a jittered backoff and starts again. Requests made meanwhile wait in
``pending``; the circuit breaker refuses new ones while it is open.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import _rtbcore
import websockets
from google.protobuf.message import DecodeError
from google.protobuf.struct_pb2 import Struct
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from rtbcore.client import bidding_pb2 as pb
from rtbcore.client._events import (
    BidRejectedError,
    CircuitOpenError,
    ConnectionClosedError,
    Event,
    check_event_types,
    check_filters,
    check_id,
    check_seconds,
    to_micros,
)
from rtbcore.client._resilience import Backoff, CircuitBreaker, Clock, SystemClock
from rtbcore.errors import InvalidInputError

log = logging.getLogger("rtbcore.client")

SUBPROTOCOL = "rtbcore.v1.proto"
CLOSE_AUTH_FAILED = 4001
_ALREADY_BID = pb.ALREADY_BID
_SHUTTING_DOWN = pb.SHUTTING_DOWN
#: Callback names accepted by :meth:`BiddingClient.on`.
CALLBACKS = ("connect", "disconnect", "reconnect", "circuit_open", "circuit_half_open",
             "circuit_closed", "event", "error", "backpressure")
_FRAME_MESSAGES = 4096  # the exchange's most messages per frame
#: The digits of request id numbers (URL-safe base 64, most significant first), as the
#: native stream reads them.
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"


def _number(n: int) -> str:
    """Request number ``n`` (>= 1) in :data:`_DIGITS`."""
    out = []
    while True:
        out.append(_DIGITS[n & 63])
        n >>= 6
        if not n:
            return "".join(reversed(out))


class _Pending:
    """A request not yet answered: its message (re-sent after a reconnect) and where its answer
    goes, a future of its own or a slot of a batch (a place_bids bid the connection's native
    stream handed back, e.g. to hold it while an exchange drains)."""

    __slots__ = ("msg", "fut", "resent", "auction_id", "batch", "index")

    def __init__(self, msg: Any, fut: asyncio.Future[Event] | None, auction_id: str = "",
                 batch: _rtbcore._BidBatch | None = None, index: int = 0) -> None:
        self.msg = msg
        self.fut = fut
        self.resent = False
        self.auction_id = auction_id
        self.batch = batch
        self.index = index

    def message(self) -> Any:
        """The request as a ``BidMessage`` (place_bids keeps each bid as its encoded
        ``ClientFrame`` entry)."""
        if isinstance(self.msg, bytes):
            self.msg = pb.ClientFrame.FromString(self.msg).messages[0]
        return self.msg

    def done(self) -> bool:
        if self.batch is not None:
            return self.batch.answered(self.index)
        return self.fut is None or self.fut.done()

    def settle(self, result: Any) -> None:
        """``result``: the answering event, or the exception the caller gets."""
        if self.batch is not None:
            self.batch.settle(self.index, result)
        elif self.fut is not None and not self.fut.done():
            if isinstance(result, BaseException):
                self.fut.set_exception(result)
                self.fut.exception()  # seen: no "never retrieved" warning
            else:
                self.fut.set_result(result)


class _AuthFailed(Exception):
    pass


class BiddingClient:
    """A buyer's client of the exchange (``rtbcore serve``).

    ``BiddingClient(url, api_key=None, *, token=None, auto_reconnect=True, backoff=None,
    circuit_breaker=None, ping_interval=5.0, ping_timeout=5.0, open_timeout=5.0,
    request_timeout=30.0, max_queue=10_000, last_seq=0, clock=None)``

    ``url`` is the exchange's ``ws://host:port/v1/bidding``; exactly one of ``api_key`` and
    ``token`` authenticates. ``async with client.connect() as conn`` opens the connection;
    callbacks registered with :meth:`on` run on the event loop. ``last_seq`` resumes a stream a
    previous process delivered up to that seq (the first subscription replays after it).
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        token: str | None = None,
        auto_reconnect: bool = True,
        backoff: Backoff | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        ping_interval: float | None = 5.0,
        ping_timeout: float | None = 5.0,
        open_timeout: float = 5.0,
        request_timeout: float = 30.0,
        max_queue: int = 10_000,
        last_seq: int = 0,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise InvalidInputError(f"url must be a ws:// or wss:// URL, got {url!r}")
        if (api_key is None) == (token is None):
            raise InvalidInputError("exactly one of api_key and token is required")
        cred = api_key if api_key is not None else token
        if not isinstance(cred, str) or not cred:
            raise InvalidInputError("api_key / token must be a non-empty string")
        for name, v in (("ping_interval", ping_interval), ("ping_timeout", ping_timeout)):
            if v is not None:
                check_seconds(name, v)
        check_seconds("open_timeout", open_timeout)
        check_seconds("request_timeout", request_timeout)
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise InvalidInputError(f"max_queue must be an int >= 1, got {max_queue!r}")
        if isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0:
            raise InvalidInputError(f"last_seq must be an int >= 0, got {last_seq!r}")
        self.url = url
        self._auth = pb.Auth(api_key=api_key) if api_key is not None else pb.Auth(token=token)
        self.auto_reconnect = bool(auto_reconnect)
        self.clock: Clock = clock or SystemClock()
        self.backoff = backoff or Backoff()
        self.breaker = circuit_breaker or CircuitBreaker(clock=self.clock)
        self.breaker.clock = self.clock  # one notion of time for backoff and cool-down
        self.breaker.on_change = self._circuit_changed
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = float(open_timeout)
        self.request_timeout = float(request_timeout)
        self.max_queue = max_queue
        self._start_seq = last_seq
        self._callbacks: dict[str, list[Callable[..., Any]]] = {n: [] for n in CALLBACKS}
        self.connection: Connection | None = None

    def on(self, name: str, callback: Callable[..., Any]) -> None:
        """Calls ``callback`` on ``name``: ``connect(auth_event)``, ``disconnect(code, reason)``,
        ``reconnect(attempts)``, ``circuit_open()``, ``circuit_half_open()``,
        ``circuit_closed()``, ``event(event)`` (every stream event, once), ``error(exc)``,
        ``backpressure(queued)``. A callback that raises is logged, never breaks the client."""
        if name not in self._callbacks:
            raise InvalidInputError(f"on: {name!r} is not one of {', '.join(CALLBACKS)}")
        if not callable(callback):
            raise InvalidInputError(f"on({name!r}): callback must be callable")
        self._callbacks[name].append(callback)

    def off(self, name: str, callback: Callable[..., Any]) -> None:
        if name in self._callbacks:
            self._callbacks[name] = [c for c in self._callbacks[name] if c is not callback]

    def emit(self, name: str, *args: Any) -> None:
        for cb in self._callbacks[name]:
            try:
                cb(*args)
            except Exception:  # a user callback must not break the state machine
                log.exception("rtbcore.client: %s callback raised", name)

    def _circuit_changed(self, state: str) -> None:
        self.emit(f"circuit_{state}")

    @property
    def circuit_state(self) -> str:
        """The circuit breaker's state: ``"closed"``, ``"open"`` or ``"half_open"``."""
        return self.breaker.state

    def connect(self, timeout: float | None = 30.0) -> _Connect:
        """``async with client.connect() as conn``: opens the connection and waits (at most
        ``timeout`` seconds, None: no limit) for the first authentication; ``conn`` is the
        :class:`Connection`. ``await client.connect()`` also works (close it yourself)."""
        if timeout is not None:
            check_seconds("connect: timeout", timeout)
        return _Connect(self, timeout)


class _Connect:
    def __init__(self, client: BiddingClient, timeout: float | None) -> None:
        self.client = client
        self.timeout = timeout
        self.conn: Connection | None = None

    async def _open(self) -> Connection:
        conn = Connection(self.client)
        self.client.connection = conn
        try:
            await conn.start(self.timeout)
        except BaseException:
            await conn.close()
            raise
        return conn

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        self.conn = await self._open()
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()


class Connection:
    """A live session with the exchange: requests, the event stream, statistics."""

    def __init__(self, client: BiddingClient) -> None:
        self.client = client
        self.auth: Event | None = None
        # request ids: this prefix (48 random bits) and a number, both short, since the
        # exchange keeps and echoes every id
        self._prefix = base64.urlsafe_b64encode(os.urandom(6)).decode()
        # the stream's native state: last seq delivered, announced auctions, accepted bids,
        # place_bids bids not yet answered
        self._stream = _rtbcore._ClientStream(self._prefix, client._start_seq)
        self._replay_first = client._start_seq > 0
        self._ws: Any = None
        self._pending: dict[str, _Pending] = {}
        self._outbox: list[Any] = []
        self._wake = asyncio.Event()
        # the inbound queue: whole frames' events appended at once; the reader of
        # stream_events() waits on _readers, the socket's reader on _room when it is full
        self._queue: deque[Event] = deque()
        self._readers: list[asyncio.Future[None]] = []
        self._room: asyncio.Future[None] | None = None
        self._queue_active = False
        self._full = False
        self._last_ack_t = 0.0
        self._sub: tuple[list[str], dict[str, str]] | None = None
        self._announced = False  # the subscription carries auction_started
        self._closed = False
        self._fatal: BaseException | None = None
        self._first = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self._n = 0
        self._handled: Event | None = None  # the last event the user handled
        self._acked_seq = 0
        #: Counters: ``events`` (stream events delivered), ``duplicates`` (dropped as already
        #: delivered), ``connects``, ``reconnects``, ``failed_attempts``, ``requests_resent``,
        #: ``frames_sent``, ``queue_full`` (times the inbound queue was full),
        #: ``replay_truncated`` (replays that started after events the log no longer held),
        #: ``held_while_draining`` (requests a draining exchange refused, held for its successor).
        self.stats: dict[str, int] = dict.fromkeys(
            ("events", "duplicates", "connects", "reconnects", "failed_attempts",
             "requests_resent", "frames_sent", "queue_full", "replay_truncated",
             "held_while_draining"), 0)

    @property
    def last_seq(self) -> int:
        """The last stream seq delivered (replays resume after it)."""
        return self._stream.last_seq

    @last_seq.setter
    def last_seq(self, seq: int) -> None:
        self._stream.last_seq = seq

    # ---- life cycle ----

    async def start(self, timeout: float | None) -> None:
        self._task = asyncio.create_task(self._supervise(), name="rtbcore.client")
        try:
            await asyncio.wait_for(asyncio.shield(self._first), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"connect: not authenticated with {self.client.url} within {timeout} s "
                f"(failed attempts: {self.stats['failed_attempts']}, circuit "
                f"{self.client.circuit_state})") from None

    @property
    def connected(self) -> bool:
        return self._ws is not None and self.auth is not None

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Closes for good: pending requests fail with ConnectionClosedError and
        :meth:`stream_events` ends."""
        if self._closed:
            return
        self._finish(ConnectionClosedError("the connection was closed by the client"))
        ws, self._ws = self._ws, None
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _finish(self, err: BaseException) -> None:
        if self._closed:
            return
        self._closed = True
        self._fatal = err
        if not self._first.done():
            self._first.set_exception(err)
            self._first.exception()  # seen: no "never retrieved" warning
        for p in self._pending.values():
            p.settle(err)
        self._pending.clear()
        self._stream.fail_all(err)
        self._wake.set()
        # the end of the stream: readers finish what is queued, then stop
        self._wake_readers()
        self._wake_room()

    async def _supervise(self) -> None:
        c = self.client
        attempt = 0
        while not self._closed:
            wait = c.breaker.wait_s()
            if wait > 0:
                await c.clock.sleep(wait)
                continue
            established = False
            try:
                ws = await websockets.connect(
                    c.url, subprotocols=[websockets.Subprotocol(SUBPROTOCOL)],
                    open_timeout=c.open_timeout, ping_interval=c.ping_interval,
                    ping_timeout=c.ping_timeout, compression=None, max_size=None,
                    max_queue=64, proxy=None)
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as e:
                self._attempt_failed(e)
            else:
                try:
                    await self._authenticate(ws)
                    established = True
                    await self._serve(ws, attempt)
                except _AuthFailed as e:
                    self._finish(ConnectionClosedError(f"authentication failed: {e}",
                                                       CLOSE_AUTH_FAILED))
                    with contextlib.suppress(Exception):
                        await ws.close()
                    c.emit("error", self._fatal)
                    return
                except (ConnectionClosed, OSError, TimeoutError, DecodeError) as e:
                    if not established:
                        self._attempt_failed(e)
                except Exception as e:  # a bug must not end the supervision: reconnect
                    log.exception("rtbcore.client: unexpected error on the connection")
                    c.emit("error", e)
                    if not established:
                        self._attempt_failed(e)
                finally:
                    self._ws = None
                    _abort(ws)
                if established:
                    code = ws.close_code
                    reason = ws.close_reason or ""
                    c.emit("disconnect", code, reason)
                    if code == CLOSE_AUTH_FAILED:
                        self._finish(ConnectionClosedError("authentication refused", code))
                        return
                    attempt = 0
            if self._closed:
                return
            if not c.auto_reconnect:
                self._finish(ConnectionClosedError("connection lost and auto_reconnect is off"))
                return
            delay = c.backoff.delay(attempt)
            attempt += 1
            await c.clock.sleep(delay)

    def _attempt_failed(self, e: BaseException) -> None:
        self.stats["failed_attempts"] += 1
        log.warning("rtbcore.client: connecting to %s failed: %s", self.client.url, e)
        self.client.breaker.failure()
        self.client.emit("error", e)

    async def _authenticate(self, ws: Any) -> None:
        frame = pb.ClientFrame()
        frame.messages.add(request_id=self._id(), auth=self.client._auth)
        await ws.send(frame.SerializeToString())
        async with asyncio.timeout(self.client.open_timeout):
            while True:
                data = await ws.recv()
                if isinstance(data, str):
                    continue
                for raw in pb.ServerFrame.FromString(data).events:
                    if raw.WhichOneof("event") == "auth_result":
                        if not raw.auth_result.ok:
                            raise _AuthFailed(raw.auth_result.message)
                        self.auth = Event(raw)
                        return

    async def _serve(self, ws: Any, attempts: int) -> None:
        c = self.client
        c.breaker.success()
        first = self.stats["connects"] == 0
        self.stats["connects"] += 1
        self._ws = ws
        # resume the stream, then re-send what was not answered (same ids: applied once)
        self._outbox.clear()
        if self._sub is not None:
            self._outbox.append(self._subscribe_msg(self._sub, replay=True, rid=self._id()))
        for p in self._pending.values():
            msg = p.message()
            if msg.HasField("subscribe"):
                continue  # answered by the resumed subscription's ack
            if not first or p.resent:
                p.resent = True
                self.stats["requests_resent"] += 1
            self._outbox.append(msg)
        frames, bids = self._stream.resend(not first)
        self._outbox.extend(frames)
        if not first:
            self.stats["requests_resent"] += bids
        self._wake.set()
        if not first:
            self.stats["reconnects"] += 1
        if not self._first.done():
            self._first.set_result(None)
        c.emit("connect", self.auth)
        if not first:
            c.emit("reconnect", attempts)
        flusher = asyncio.create_task(self._flush(ws))
        try:
            async for data in ws:
                if isinstance(data, str):
                    continue
                self._frame(data)
                if len(self._queue) >= c.max_queue:
                    await self._wait_room()
                elif self._queue:
                    # the reader of the stream takes this frame's events now, before more
                    # frames pile up behind it
                    await asyncio.sleep(0)
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await flusher

    async def _flush(self, ws: Any) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            while self._outbox:
                # encoded frames (place_bids) go as they are; single messages are gathered
                out, self._outbox = self._outbox, []
                msgs: list[Any] = []
                for item in out:
                    if isinstance(item, bytes):
                        if msgs:
                            await self._send_frame(ws, msgs)
                            msgs = []
                        await ws.send(item)
                        self.stats["frames_sent"] += 1
                    else:
                        msgs.append(item)
                        if len(msgs) == _FRAME_MESSAGES:
                            await self._send_frame(ws, msgs)
                            msgs = []
                if msgs:
                    await self._send_frame(ws, msgs)

    async def _send_frame(self, ws: Any, msgs: list[Any]) -> None:
        frame = pb.ClientFrame()
        frame.messages.extend(msgs)
        await ws.send(frame.SerializeToString())
        self.stats["frames_sent"] += 1

    # ---- inbound ----

    def _frame(self, data: bytes) -> None:
        """Takes in one frame's events: the native stream drops duplicates, records
        announcements, settles place_bids answers and hands over the new stream events, which
        are queued for :meth:`stream_events` all at once (then its reader is woken). Events
        that need more (rejections, acks, errors, answers to single requests) go through
        :meth:`_deliver`, in their place in the frame."""
        q = self._queue
        queued = len(q)
        active = self._queue_active
        stream = self._stream
        callbacks = self.client._callbacks["event"]
        evs, slow = stream.feed(data)
        while True:
            if evs:
                if callbacks:
                    for ev in evs:
                        self.client.emit("event", ev)
                if active:
                    q.extend(evs)
            if slow is None:
                break
            if self._deliver(slow):
                q.append(slow)
            evs, slow = stream.resume()
        new, dups = stream.counts()
        if new:
            self.stats["events"] += new
        if dups:
            self.stats["duplicates"] += dups
        if len(q) > queued:
            self._wake_readers()
            self._ack_if_due()

    def _wake_readers(self) -> None:
        readers, self._readers = self._readers, []
        for f in readers:
            if not f.done():
                f.set_result(None)

    def _wake_room(self) -> None:
        f, self._room = self._room, None
        if f is not None and not f.done():
            f.set_result(None)

    async def _wait_room(self) -> None:
        """The user's loop is behind: stops reading the socket until it catches up (nothing is
        dropped; the exchange buffers, and past its limit closes with 4008, after which the
        replay resumes)."""
        self.stats["queue_full"] += 1
        if not self._full:
            self._full = True
            msg = (f"rtbcore.client: the inbound queue is full ({self.client.max_queue} events):"
                   " the event loop consuming stream_events() is behind; reading paused")
            log.warning(msg)
            self.client.emit("backpressure", len(self._queue))
        while len(self._queue) >= self.client.max_queue and not self._closed:
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room = room
            await room
        self._full = False

    def _deliver(self, ev: Event) -> bool:
        """Settles what the event answers; True when it is a new stream event for the user."""
        rid = ev.request_id
        if rid:
            p = self._take_pending(rid)
            if p is not None and not p.done():
                if ev.type == "bid_rejected" and ev.reason_code == _SHUTTING_DOWN \
                        and self.client.auto_reconnect:
                    # a draining exchange refused without applying: held, and re-sent with
                    # the same id once the connection to its successor is up
                    self._pending[rid] = p
                    self.stats["held_while_draining"] += 1
                elif ev.type == "bid_rejected":
                    # a place re-sent after the exchange restarted (its idempotency window
                    # lost) meets its own earlier bid: answer with that bid's acceptance
                    prior = self._prior_acceptance(p.auction_id) if p.resent else None
                    if ev.reason_code == _ALREADY_BID and prior is not None:
                        p.settle(prior)
                    else:
                        p.settle(BidRejectedError(ev))
                else:
                    p.settle(ev)
        t = ev.type
        if t == "subscription_ack":
            for rid_, q in list(self._pending.items()):
                if not isinstance(q.msg, bytes) and q.msg.HasField("subscribe"):
                    del self._pending[rid_]
                    q.settle(ev)
            if ev.raw.subscription_ack.truncated:
                self.stats["replay_truncated"] += 1
                log.warning("rtbcore.client: the exchange's log no longer holds every event "
                            "after seq %d: some were lost to this client", self.last_seq)
            return False
        if t == "error":
            self.client.emit("error", ConnectionClosedError(
                f"exchange error {ev.reason}: {ev.message}"))
            return False
        seq = ev.seq
        if seq == 0:
            return False
        if seq <= self.last_seq:
            self.stats["duplicates"] += 1
            return False
        self.last_seq = seq
        self.stats["events"] += 1
        if t == "auction_started":
            self._stream.announce(ev.auction_id)
        elif t == "bid_accepted":
            self._stream.accept(ev)
        if self.client._callbacks["event"]:
            self.client.emit("event", ev)
        return self._queue_active

    def _take_pending(self, rid: str) -> _Pending | None:
        """Removes the request ``rid`` waits on: a single request, or a place_bids bid (held
        by the native stream)."""
        p = self._pending.pop(rid, None)
        if p is None:
            held = self._stream.take_pending(rid)
            if held is not None:
                batch, index, auction_id, resent, entry = held
                p = _Pending(entry, None, auction_id, batch, index)
                p.resent = resent
        return p

    def _prior_acceptance(self, auction_id: str) -> Event | None:
        """This client's latest accepted bid on ``auction_id`` among the recent ones."""
        return self._stream.prior_acceptance(auction_id)

    # ---- outbound ----

    def _id(self) -> str:
        self._n += 1
        return self._prefix + _number(self._n)

    def _send(self, msg: Any) -> None:
        if self._ws is not None:
            self._outbox.append(msg)
            self._wake.set()

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosedError(f"the connection is closed: {self._fatal}")
        if self.client.breaker.state == "open":
            raise CircuitOpenError(
                f"the circuit breaker is open after {self.client.breaker.failures} failed "
                f"connection attempts to {self.client.url}: request refused")

    def _request(self, msg: Any, auction_id: str = "") -> asyncio.Future[Event]:
        self._check_open()
        if not msg.request_id:
            msg.request_id = self._id()
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[msg.request_id] = _Pending(msg, fut, auction_id)
        self._send(msg)
        return fut

    async def _answer(self, fut: asyncio.Future[Event], rid: str) -> Event:
        try:
            return await asyncio.wait_for(fut, self.client.request_timeout)
        except TimeoutError:
            self._pending.pop(rid, None)
            raise TimeoutError(f"request {rid!r}: no answer within "
                               f"{self.client.request_timeout} s") from None

    def _subscribe_msg(self, sub: tuple[list[str], dict[str, str]], *, replay: bool,
                       rid: str) -> Any:
        s = pb.Subscribe(event_types=sub[0], filters=sub[1])
        if replay:
            s.replay_missed = True
            s.since_seq = self.last_seq
        return pb.BidMessage(request_id=rid, subscribe=s)

    async def subscribe(self, event_types: Sequence[str] = (),
                        filters: dict[str, Any] | None = None) -> Event:
        """Sets the buyer's durable subscription (empty ``event_types``: all) and returns its
        ``SubscriptionAck``. From now on the stream's events are queued for
        :meth:`stream_events`. After every reconnect the client re-subscribes with replay after
        the last seq it delivered, so each event reaches the user exactly once."""
        types = check_event_types("subscribe: event_types", list(event_types))
        f = check_filters("subscribe: filters", filters or {})
        sub = (types, f)
        self._sub = sub
        self._announced = not types or "auction_started" in types
        self._queue_active = True
        rid = self._id()
        replay = self._replay_first
        self._replay_first = False
        msg = self._subscribe_msg(sub, replay=replay, rid=rid)
        return await self._answer(self._request(msg), rid)

    async def stream_events(self) -> AsyncIterator[Event]:
        """The stream's events in order, each once, across reconnects; ends when the connection
        closes for good. Leaving an event for the next one marks it handled (acknowledged to
        the exchange about once a second)."""
        self._queue_active = True
        q = self._queue
        limit = self.client.max_queue
        while True:
            while q:
                ev = q.popleft()
                yield ev
                self._handled = ev  # its seq is read when acknowledged
                if self._room is not None and len(q) < limit:
                    self._wake_room()
            if self._room is not None:
                self._wake_room()
            if not await self._caught_up():
                return

    async def stream_batches(self) -> AsyncIterator[list[Event]]:
        """The same events as :meth:`stream_events`, as lists: each wake-up hands over
        everything queued (often a whole frame's events), which spares a per-event step for
        consumers that go through many events at once. Asking for the next list marks the
        last event of this one handled. Do not read both iterators on one connection at the
        same time."""
        self._queue_active = True
        q = self._queue
        while True:
            if q:
                batch = list(q)
                q.clear()
                if self._room is not None:
                    self._wake_room()
                yield batch
                self._handled = batch[-1]
                continue
            if not await self._caught_up():
                return

    def _ack_if_due(self) -> None:
        """The acknowledgement goes out at most once a second (from the socket's reader while
        events keep coming, from the stream's reader once it has caught up)."""
        now = self.client.clock.monotonic()
        if now - self._last_ack_t >= 1.0:
            self._last_ack_t = now
            self.ack()

    async def _caught_up(self) -> bool:
        """The stream's reader has taken everything queued: acknowledges if due, then waits
        for the next events; False once the connection is closed."""
        self._ack_if_due()
        if self._closed:
            return False
        f = asyncio.get_running_loop().create_future()
        self._readers.append(f)
        await f
        return True

    def ack(self, seq: int | None = None) -> None:
        """Acknowledges the stream up to ``seq`` (default: the last event handled): the
        exchange's default replay start for this buyer."""
        if seq is None:
            s = self._handled.seq if self._handled is not None else 0
        else:
            s = seq
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise InvalidInputError(f"ack: seq must be an int >= 0, got {s!r}")
        if s > self._acked_seq:
            self._acked_seq = s
            self._send(pb.BidMessage(ack=pb.Ack(seq=s)))

    def _check_auction(self, what: str, call_id: str) -> None:
        if not self._announced:
            return
        # deadlines are the exchange's wall clock: it judges lateness, not this client
        if not self._stream.knows(call_id):
            raise InvalidInputError(
                f"{what}: call_id {call_id!r} is not an auction announced to this client")

    def _place_msg(self, what: str, call_id: str, amount: Any, amount_micros: Any,
                   currency: str, criteria: dict[str, Any] | None, ttl: float | None,
                   request_id: str | None) -> Any:
        check_id(f"{what}: call_id", call_id)
        micros = to_micros(f"{what}: amount", amount, amount_micros)
        self._check_auction(what, call_id)
        b = pb.PlaceBid(auction_id=call_id, amount=pb.Money(currency=currency, micros=micros))
        if criteria:
            if not isinstance(criteria, dict):
                raise InvalidInputError(f"{what}: criteria must be a dict")
            try:
                st = Struct()
                st.update(criteria)
                for k, v in st.fields.items():
                    b.criteria[k].CopyFrom(v)
            except (TypeError, ValueError, AttributeError) as e:
                raise InvalidInputError(f"{what}: criteria: {e}") from None
        if ttl is not None:
            b.ttl.FromNanoseconds(round(check_seconds(f"{what}: ttl", ttl) * 1e9))
        rid = check_id(f"{what}: request_id", request_id) if request_id is not None else ""
        return pb.BidMessage(request_id=rid, place_bid=b)

    async def place_bid(self, call_id: str, amount: float | None = None, *,
                        amount_micros: int | None = None, currency: str = "",
                        criteria: dict[str, Any] | None = None, ttl: float | None = None,
                        request_id: str | None = None) -> Event:
        """Bids ``amount`` (currency units; or ``amount_micros``) on the auction ``call_id``;
        returns the ``bid_accepted`` event, raises :class:`BidRejectedError`. Bad input (NaN,
        <= 0, an auction this client was not told of when subscribed to announcements) raises
        InvalidInputError before anything is sent. Retried across reconnects, applied once."""
        msg = self._place_msg("place_bid", call_id, amount, amount_micros, currency, criteria,
                              ttl, request_id)
        fut = self._request(msg, call_id)
        return await self._answer(fut, msg.request_id)

    async def place_bids(self, call_ids: Iterable[str], amounts: Iterable[float], *,
                         currency: str = "") -> list[Event | Exception]:
        """Many bids at once, sent in as few frames as the exchange allows; returns, in order,
        each bid's ``bid_accepted`` event or its exception (:class:`BidRejectedError`,
        TimeoutError, ConnectionClosedError; returned, not raised). Every bid is checked before
        any is sent."""
        ids = list(call_ids)
        amts = list(amounts)
        n = len(ids)
        if n != len(amts):
            raise InvalidInputError(
                f"place_bids: {n} call_ids but {len(amts)} amounts")
        stream = self._stream
        bad = stream.stage(ids, amts)  # place_bid's checks, natively
        if bad >= 0:  # told by place_bid's own checks
            check_id(f"place_bids[{bad}]: call_id", ids[bad])
            to_micros(f"place_bids[{bad}]: amount", amts[bad])
            raise InvalidInputError(f"place_bids[{bad}]: not a valid bid")
        if self._announced:
            bad = stream.first_unknown()
            if bad >= 0:
                self._check_auction(f"place_bids[{bad}]", ids[bad])
        self._check_open()
        if not n:
            return []
        fut = asyncio.get_running_loop().create_future()
        batch = _rtbcore._BidBatch(n, fut, currency)
        first = self._n + 1
        self._n += n
        # the frames (the exchange's most messages per frame each) are written natively in the
        # protocol's encoding, one ClientFrame entry per bid; each bid stays pending on its own
        # request id in the stream, re-sent alone after a reconnect
        frames = stream.commit(batch, first)
        ws = self._ws
        if ws is not None and not self._outbox:
            # written at once, not after the flusher's wake-up: nothing is queued ahead of
            # them; a socket that fails leaves them pending, re-sent after the reconnect
            sent = 0
            try:
                for f in frames:
                    await ws.send(f)
                    sent += 1
                    self.stats["frames_sent"] += 1
            except (ConnectionClosed, OSError):
                pass
            except BaseException:  # cancelled: the flusher sends the rest
                self._outbox.extend(frames[sent:])
                self._wake.set()
                raise
        elif ws is not None:
            self._outbox.extend(frames)
            self._wake.set()
        try:
            # awaited directly (no wait_for/shield): the caller resumes on the answer's own
            # wake-up; a cancelled fut is only ever this call's, and answers skip it
            async with asyncio.timeout(self.client.request_timeout):
                await fut
        except TimeoutError:
            pass
        out: list[Event | Exception] = batch.results
        if None in out:
            stream.forget(first, n)
            for i, r in enumerate(out):
                if r is None:
                    rid = self._prefix + _number(first + i)
                    self._pending.pop(rid, None)
                    out[i] = TimeoutError(f"request {rid!r}: no answer within "
                                          f"{self.client.request_timeout} s")
        return out

    async def update_bid(self, bid_id: str, amount: float | None = None, *,
                         amount_micros: int | None = None, currency: str = "",
                         ttl: float | None = None, request_id: str | None = None) -> Event:
        """Changes a live bid's amount; returns the ``bid_update`` (UPDATED) event."""
        check_id("update_bid: bid_id", bid_id)
        micros = to_micros("update_bid: amount", amount, amount_micros)
        u = pb.UpdateBid(bid_id=bid_id, amount=pb.Money(currency=currency, micros=micros))
        if ttl is not None:
            u.ttl.FromNanoseconds(round(check_seconds("update_bid: ttl", ttl) * 1e9))
        rid = check_id("update_bid: request_id", request_id) if request_id is not None else ""
        msg = pb.BidMessage(request_id=rid, update_bid=u)
        return await self._answer(self._request(msg), msg.request_id)

    async def cancel_bid(self, bid_id: str, *, request_id: str | None = None) -> Event:
        """Withdraws a live bid; returns the ``bid_update`` (CANCELLED) event."""
        check_id("cancel_bid: bid_id", bid_id)
        rid = check_id("cancel_bid: request_id", request_id) if request_id is not None else ""
        msg = pb.BidMessage(request_id=rid, cancel_bid=pb.CancelBid(bid_id=bid_id))
        return await self._answer(self._request(msg), msg.request_id)

    async def open_auction(self, call_id: str = "", *, attributes: dict[str, Any] | None = None,
                           floor: float | None = None, tmax: float | None = None,
                           expected_bids: int = 0, request_id: str | None = None) -> Event:
        """Opens an auction (scope ``publish``); returns the ``auction_opened`` event."""
        o = pb.OpenAuction()
        if call_id:
            o.auction_id = check_id("open_auction: call_id", call_id)
        for k, v in (attributes or {}).items():
            o.attributes[str(k)] = str(v)
        if floor is not None:
            o.floor.micros = to_micros("open_auction: floor", floor)
        if tmax is not None:
            o.tmax.FromNanoseconds(round(check_seconds("open_auction: tmax", tmax) * 1e9))
        if isinstance(expected_bids, bool) or not isinstance(expected_bids, int) \
                or expected_bids < 0:
            raise InvalidInputError(
                f"open_auction: expected_bids must be an int >= 0, got {expected_bids!r}")
        o.expected_bids = expected_bids
        rid = check_id("open_auction: request_id", request_id) if request_id is not None else ""
        msg = pb.BidMessage(request_id=rid, open_auction=o)
        return await self._answer(self._request(msg), msg.request_id)

    async def metrics(self) -> dict[str, float]:
        """The buyer's counters on the exchange (scope ``metrics``)."""
        msg = pb.BidMessage(metrics=pb.MetricsRequest())
        fut = self._request(msg)
        ev = await self._answer(fut, msg.request_id)
        return ev.metrics



def _abort(ws: Any) -> None:
    """Drops the socket at once: a stalled peer would hold a closing handshake for seconds."""
    transport = getattr(ws, "transport", None)
    if transport is not None and not transport.is_closing():
        transport.abort()
