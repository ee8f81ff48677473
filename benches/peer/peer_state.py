"""The peer exchange's state: buyers with their per-buyer seq and in-memory event log, open
auctions, live bids, and the engine they are fed into. No network here: a connection hands
decoded ``BidMessage`` batches to :meth:`Exchange.handle_frame` and gets its answers queued on
its outbox; results from the engine are fanned out by :meth:`Exchange.publish_results`.

Written the way a user of ``rtbcore.AuctionEngine`` would build it: one engine call per frame
(a frame's bids go in as one numpy block), Python objects for everything else.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

import rtbcore

from bidding_proto import load
from exchange_config import Credential, PeerConfig

if TYPE_CHECKING:
    from collections.abc import Iterable

pb = load()
R = pb.RejectReason

EVENT_TYPES = ("auction_started", "bid_accepted", "bid_rejected", "auction_won", "auction_lost",
               "bid_update", "auction_closed")
CLOSED_BY = {0: pb.DEADLINE, 1: pb.ALL_BIDS, 2: pb.SHUTDOWN}
MAX_ID = 64
REMEMBER_CLOSED = 65536  # closed auctions kept to answer AUCTION_CLOSED rather than UNKNOWN
REMEMBER_REQUESTS = 65536  # request ids kept per buyer for idempotency


class Outbox(Protocol):
    """A connection as the exchange sees it: somewhere to queue events."""

    buyer: Buyer | None

    def push(self, event: Any) -> None: ...


@dataclass
class Subscription:
    event_types: frozenset[str]
    filters: dict[str, str]

    def wants(self, kind: str) -> bool:
        return not self.event_types or kind in self.event_types

    def matches(self, attributes: Any) -> bool:
        for k, v in self.filters.items():
            if k.startswith(("min_", "max_")) and k[4:] in attributes:
                try:
                    x, bound = float(attributes[k[4:]]), float(v)
                except ValueError:
                    return False
                if (x < bound) if k.startswith("min_") else (x > bound):
                    return False
            elif k.startswith(("min_", "max_")):
                return False
            elif k not in attributes or attributes[k] not in v.split(","):
                return False
        return True


@dataclass
class Buyer:
    name: str
    index: int
    log_events: int
    seq: int = 0
    acked: int = 0
    sub: Subscription | None = None
    log: deque = field(init=False)
    requests: OrderedDict = field(default_factory=OrderedDict)  # request_id -> answer event
    live: set = field(default_factory=set)  # connections receiving the stream
    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("bids_placed", "bids_rejected", "auctions_won", "auctions_lost", "spend_micros",
         "events_sent", "events_replayed"), 0.0))

    def __post_init__(self) -> None:
        self.log = deque(maxlen=self.log_events)


@dataclass
class Bid:
    id: str
    auction: Auction
    buyer: Buyer
    micros: int


@dataclass
class Auction:
    id: str
    num: int
    attributes: dict[str, str]
    floor: int
    deadline: float  # time.monotonic()
    deadline_ns: int  # realtime, as announced
    expected: int
    publisher: Buyer
    bids: dict[int, Bid] = field(default_factory=dict)  # buyer index -> live bid


class Reject(Exception):
    def __init__(self, reason: int, message: str, auction_id: str = "", bid_id: str = "") -> None:
        super().__init__(message)
        self.reason, self.message = reason, message
        self.auction_id, self.bid_id = auction_id, bid_id


def _printable(s: str) -> bool:
    return 0 < len(s.encode()) <= MAX_ID and all(0x21 <= ord(c) <= 0x7E for c in s)


class Exchange:
    def __init__(self, cfg: PeerConfig) -> None:
        self.cfg = cfg
        self.engine = rtbcore.AuctionEngine(workers=cfg.workers, pin=False,
                                            mechanism=cfg.mechanism, tmax_ms=cfg.tmax_ms)
        self.buyers: dict[str, Buyer] = {}
        self.by_index: list[Buyer] = []
        self.auctions: dict[str, Auction] = {}
        self.by_num: dict[int, Auction] = {}
        self.closed: OrderedDict[str, None] = OrderedDict()
        self.bids: dict[str, Bid] = {}
        self.subscribed: dict[str, Buyer] = {}  # buyers with a durable subscription
        self.next_num = 1
        self.next_bid = 1
        self.conn_events = 0
        self.dirty: set = set()

    # -- buyers and events ------------------------------------------------------------------

    def buyer(self, cred: Credential) -> Buyer:
        b = self.buyers.get(cred.buyer)
        if b is None:
            b = Buyer(cred.buyer, len(self.by_index), self.cfg.log_events)
            self.buyers[cred.buyer] = b
            self.by_index.append(b)
        return b

    def event(self, now_ns: int, request_id: str = "") -> Any:
        ev = pb.BidEvent(request_id=request_id)
        ev.timestamp.FromNanoseconds(now_ns)
        return ev

    def connection_event(self, conn: Outbox, ev: Any) -> None:
        """An event outside every buyer's stream (seq 0), to one connection."""
        self.conn_events += 1
        ev.event_id = f"c{id(conn) & 0xFFFFFF:x}:{self.conn_events}"
        conn.push(ev)
        self.dirty.add(conn)

    def stream(self, buyer: Buyer, ev: Any, kind: str, to: Outbox | None = None) -> None:
        """Gives ``ev`` the buyer's next seq, logs it, and delivers it: to ``to`` (the
        connection whose request it answers) or to every connection streaming the buyer."""
        buyer.seq += 1
        ev.seq = buyer.seq
        ev.event_id = f"{buyer.name}:{buyer.seq}"
        buyer.log.append(ev)
        targets: Iterable = (to,) if to is not None else buyer.live
        for c in targets:
            c.push(ev)
            self.dirty.add(c)
        buyer.counters["events_sent"] += 1

    def answer(self, conn: Outbox, buyer: Buyer, ev: Any, kind: str, request_id: str) -> None:
        self.stream(buyer, ev, kind, to=conn)
        if request_id:
            buyer.requests[request_id] = ev
            if len(buyer.requests) > REMEMBER_REQUESTS:
                buyer.requests.popitem(last=False)

    # -- one frame ---------------------------------------------------------------------------

    def handle_frame(self, conn: Outbox, cred: Credential, messages: Any) -> None:
        """Applies an authenticated connection's batch in order; engine calls are batched and
        flushed whenever the order between opens and bids requires it."""
        now_ns = time.time_ns()
        now = time.monotonic()
        buyer = conn.buyer
        assert buyer is not None
        pending = _Pending(self)
        for m in messages:
            which = m.WhichOneof("message")
            rid = m.request_id
            if rid and rid in buyer.requests:
                conn.push(buyer.requests[rid])  # the original answer, same seq, not re-logged
                self.dirty.add(conn)
                continue
            try:
                if len(rid.encode()) > MAX_ID:
                    raise Reject(R.INVALID_FIELD, f"request_id: at most {MAX_ID} bytes")
                if which == "place_bid":
                    self._need(cred, "bid", which)
                    ev = self._place(buyer, m.place_bid, now, now_ns, rid, pending)
                elif which == "update_bid":
                    self._need(cred, "bid", which)
                    ev = self._update(buyer, m.update_bid, now, now_ns, rid, pending)
                elif which == "cancel_bid":
                    self._need(cred, "bid", which)
                    ev = self._cancel(buyer, m.cancel_bid, now, now_ns, rid, pending)
                elif which == "open_auction":
                    self._need(cred, "publish", which)
                    ev = self._open(buyer, m.open_auction, now, now_ns, rid, pending)
                elif which == "subscribe":
                    self._need(cred, "subscribe", which)
                    pending.flush()
                    self._subscribe(conn, buyer, m.subscribe, now_ns, rid)
                    continue
                elif which == "ack":
                    buyer.acked = max(buyer.acked, min(m.ack.seq, buyer.seq))
                    continue
                elif which == "metrics":
                    self._need(cred, "metrics", which)
                    ev = self.event(now_ns, rid)
                    ev.metrics_update.metrics.update(buyer.counters)
                    ev.metrics_update.metrics["outbound_queue_depth"] = conn_depth(conn)
                    self.connection_event(conn, ev)
                    continue
                elif which == "auth":
                    raise Reject(R.INVALID_FIELD, "auth: the connection is already authenticated")
                else:
                    raise Reject(R.UNKNOWN_MESSAGE, "message: empty or unknown message type")
            except Reject as r:
                buyer.counters["bids_rejected"] += 1
                ev = self.event(now_ns, rid)
                ev.bid_rejected.reason = r.reason
                ev.bid_rejected.message = r.message
                ev.bid_rejected.auction_id = r.auction_id
                ev.bid_rejected.bid_id = r.bid_id
                self.answer(conn, buyer, ev, "bid_rejected", rid)
                continue
            self.answer(conn, buyer, ev[0], ev[1], rid)
            for follow in ev[2:]:
                follow()
        pending.flush()

    @staticmethod
    def _need(cred: Credential, scope: str, what: str) -> None:
        if scope not in cred.scopes:
            raise Reject(R.FORBIDDEN, f"{what}: needs scope {scope!r}")

    def _money(self, what: str, money: Any, has: bool) -> int:
        if not has or money.micros <= 0:
            got = money.micros if has else "missing"
            raise Reject(R.INVALID_AMOUNT, f"{what}.micros must be > 0, got {got}")
        if money.currency and money.currency != self.cfg.currency:
            raise Reject(R.CURRENCY_MISMATCH,
                         f"{what}.currency: {money.currency!r}, the exchange clears in "
                         f"{self.cfg.currency!r}")
        return int(money.micros)

    def _live_auction(self, auction_id: str, now: float) -> Auction:
        a = self.auctions.get(auction_id)
        if a is None:
            if auction_id in self.closed:
                raise Reject(R.AUCTION_CLOSED, f"auction {auction_id!r} is closed", auction_id)
            raise Reject(R.UNKNOWN_AUCTION, f"auction_id: no auction {auction_id!r}", auction_id)
        if now > a.deadline:
            raise Reject(R.AUCTION_CLOSED, f"auction {auction_id!r} passed its deadline",
                         auction_id)
        return a

    def _place(self, buyer, p, now, now_ns, rid, pending):
        if p.buyer_id and p.buyer_id != buyer.name:
            raise Reject(R.FORBIDDEN, f"place_bid.buyer_id: {p.buyer_id!r} is not the "
                         "authenticated buyer", p.auction_id)
        a = self._live_auction(p.auction_id, now)
        micros = self._money("place_bid.amount", p.amount, p.HasField("amount"))
        if micros < a.floor:
            raise Reject(R.BELOW_FLOOR, f"place_bid.amount.micros {micros} is below the floor "
                         f"{a.floor}", a.id)
        if buyer.index in a.bids:
            raise Reject(R.ALREADY_BID, f"buyer {buyer.name!r} already has bid "
                         f"{a.bids[buyer.index].id!r} on {a.id!r}: use update_bid", a.id)
        bid = Bid(f"b{self.next_bid}", a, buyer, micros)
        self.next_bid += 1
        a.bids[buyer.index] = bid
        self.bids[bid.id] = bid
        pending.bid(a.num, buyer.index, micros, rtbcore.KIND_PLACE)
        buyer.counters["bids_placed"] += 1
        ev = self.event(now_ns, rid)
        ev.bid_accepted.bid_id = bid.id
        ev.bid_accepted.auction_id = a.id
        ev.bid_accepted.amount.currency = self.cfg.currency
        ev.bid_accepted.amount.micros = micros
        return (ev, "bid_accepted")

    def _own_bid(self, buyer, bid_id, now, what) -> Bid:
        bid = self.bids.get(bid_id)
        # another buyer's bid is answered as unknown: its existence is not the caller's business
        if bid is None or bid.buyer is not buyer:
            raise Reject(R.UNKNOWN_BID, f"{what}.bid_id: no live bid {bid_id!r} of buyer "
                         f"{buyer.name!r}", bid_id=bid_id)
        if bid.auction.id not in self.auctions or now > bid.auction.deadline:
            raise Reject(R.AUCTION_CLOSED, f"auction {bid.auction.id!r} is closed",
                         bid.auction.id, bid_id)
        return bid

    def _update(self, buyer, u, now, now_ns, rid, pending):
        bid = self._own_bid(buyer, u.bid_id, now, "update_bid")
        micros = self._money("update_bid.amount", u.amount, u.HasField("amount"))
        if micros < bid.auction.floor:
            raise Reject(R.BELOW_FLOOR, f"update_bid.amount.micros {micros} is below the floor "
                         f"{bid.auction.floor}", bid.auction.id, bid.id)
        bid.micros = micros
        pending.bid(bid.auction.num, buyer.index, micros, rtbcore.KIND_UPDATE)
        ev = self.event(now_ns, rid)
        ev.bid_update.bid_id = bid.id
        ev.bid_update.auction_id = bid.auction.id
        ev.bid_update.status = pb.UPDATED
        ev.bid_update.amount.currency = self.cfg.currency
        ev.bid_update.amount.micros = micros
        return (ev, "bid_update")

    def _cancel(self, buyer, c, now, now_ns, rid, pending):
        bid = self._own_bid(buyer, c.bid_id, now, "cancel_bid")
        del bid.auction.bids[buyer.index]
        del self.bids[bid.id]
        pending.bid(bid.auction.num, buyer.index, bid.micros, rtbcore.KIND_CANCEL)
        ev = self.event(now_ns, rid)
        ev.bid_update.bid_id = bid.id
        ev.bid_update.auction_id = bid.auction.id
        ev.bid_update.status = pb.CANCELLED
        return (ev, "bid_update")

    def _open(self, buyer, o, now, now_ns, rid, pending):
        aid = o.auction_id or f"a{self.next_num}"
        if not _printable(aid):
            raise Reject(R.INVALID_FIELD, "open_auction.auction_id: 1 to 64 bytes of "
                         "printable ASCII")
        if aid in self.auctions or aid in self.closed:
            raise Reject(R.DUPLICATE_AUCTION, f"open_auction.auction_id: {aid!r} is in use", aid)
        floor = 0
        if o.HasField("floor"):
            if o.floor.micros < 0:
                raise Reject(R.INVALID_AMOUNT, "open_auction.floor.micros must be >= 0")
            if o.floor.currency and o.floor.currency != self.cfg.currency:
                raise Reject(R.CURRENCY_MISMATCH, f"open_auction.floor.currency: "
                             f"{o.floor.currency!r}, the exchange clears in "
                             f"{self.cfg.currency!r}")
            floor = int(o.floor.micros)
        tmax_ms = self.cfg.tmax_ms
        if o.HasField("tmax"):
            tmax_ms = o.tmax.ToNanoseconds() / 1e6
            if not 0 < tmax_ms <= 86_400_000:
                raise Reject(R.INVALID_FIELD, "open_auction.tmax: must be in (0 s, 1 day]")
        a = Auction(aid, self.next_num, dict(o.attributes), floor, now + tmax_ms / 1e3,
                    now_ns + int(tmax_ms * 1e6), int(o.expected_bids), buyer)
        self.next_num += 1
        self.auctions[aid] = a
        self.by_num[a.num] = a
        pending.open(a.num, floor, tmax_ms, a.expected)
        ev = self.event(now_ns, rid)
        ev.auction_opened.auction_id = aid
        ev.auction_opened.deadline.FromNanoseconds(a.deadline_ns)
        return (ev, "auction_opened", lambda: self._announce(a, now_ns))

    def _announce(self, a: Auction, now_ns: int) -> None:
        started = None
        for b in self.subscribed.values():
            sub = b.sub
            if sub is None or not sub.wants("auction_started") or not sub.matches(a.attributes):
                continue
            if started is None:
                started = pb.AuctionStarted(auction_id=a.id, attributes=a.attributes,
                                            expected_bids=a.expected,
                                            auction_type=pb.FIRST_PRICE
                                            if self.cfg.mechanism == "first_price"
                                            else pb.SECOND_PRICE)
                started.floor.currency = self.cfg.currency
                started.floor.micros = a.floor
                started.deadline.FromNanoseconds(a.deadline_ns)
            ev = self.event(now_ns)
            ev.auction_started.CopyFrom(started)
            self.stream(b, ev, "auction_started")

    def _subscribe(self, conn, buyer, s, now_ns, rid) -> None:
        bad = [t for t in s.event_types if t not in EVENT_TYPES]
        if bad:
            raise Reject(R.INVALID_FIELD, f"subscribe.event_types: unknown type {bad[0]!r}")
        for k, v in s.filters.items():
            if k.startswith(("min_", "max_")):
                try:
                    float(v)
                except ValueError:
                    raise Reject(R.INVALID_FIELD,
                                 f"subscribe.filters[{k!r}]: {v!r} is not a number") from None
        buyer.sub = Subscription(frozenset(s.event_types), dict(s.filters))
        self.subscribed[buyer.name] = buyer
        ack = self.event(now_ns, rid)
        ack.subscription_ack.event_types.extend(s.event_types)
        ack.subscription_ack.filters.update(s.filters)
        replay: list = []
        if s.replay_missed:
            since = buyer.acked
            which = s.WhichOneof("since")
            if which == "since_seq":
                since = s.since_seq
            log = buyer.log
            if which == "since_time":
                t = s.since_time.ToNanoseconds()
                replay = [e for e in log if e.timestamp.ToNanoseconds() >= t]
            else:
                replay = [e for e in log if e.seq > since]
            if replay:
                ack.subscription_ack.replay_from = replay[0].seq
                ack.subscription_ack.replay_to = replay[-1].seq
            first_kept = log[0].seq if log else buyer.seq + 1
            wanted_from = since + 1 if which != "since_time" else first_kept
            ack.subscription_ack.truncated = wanted_from < first_kept
        self.connection_event(conn, ack)
        for e in replay:
            conn.push(e)
        buyer.counters["events_replayed"] += len(replay)
        buyer.live.add(conn)
        self.dirty.add(conn)

    # -- results -----------------------------------------------------------------------------

    def publish_results(self, rows: np.ndarray) -> None:
        now_ns = time.time_ns()
        for row in rows:
            a = self.by_num.pop(int(row["auction_id"]), None)
            if a is None:
                continue
            del self.auctions[a.id]
            self.closed[a.id] = None
            if len(self.closed) > REMEMBER_CLOSED:
                self.closed.popitem(last=False)
            winner = int(row["winner_bidder"])
            price = round(float(row["price"]) * 1e6)
            mtw = float(row["min_to_win"])
            closed = self.event(now_ns)
            c = closed.auction_closed
            c.auction_id = a.id
            c.n_bids = int(row["n_bids"])
            c.closed_by = CLOSED_BY.get(int(row["closed_by"]), pb.CLOSED_BY_UNSPECIFIED)
            win_bid = a.bids.get(winner) if winner != rtbcore.NO_BIDDER else None
            for bid in a.bids.values():
                self.bids.pop(bid.id, None)
                b = bid.buyer
                ev = self.event(now_ns)
                if bid is win_bid:
                    if b.sub is not None and not b.sub.wants("auction_won"):
                        continue
                    w = ev.auction_won
                    w.auction_id, w.bid_id = a.id, bid.id
                    w.price.currency = self.cfg.currency
                    w.price.micros = price
                    if mtw == mtw:  # not NaN
                        w.min_to_win.currency = self.cfg.currency
                        w.min_to_win.micros = round(mtw * 1e6)
                    b.counters["auctions_won"] += 1
                    b.counters["spend_micros"] += price
                    self.stream(b, ev, "auction_won")
                else:
                    if b.sub is not None and not b.sub.wants("auction_lost"):
                        continue
                    lost = ev.auction_lost
                    lost.auction_id, lost.bid_id = a.id, bid.id
                    lost.loss_reason = 102
                    if win_bid is not None:
                        lost.min_to_win.currency = self.cfg.currency
                        lost.min_to_win.micros = win_bid.micros
                    b.counters["auctions_lost"] += 1
                    self.stream(b, ev, "auction_lost")
            if win_bid is not None:
                wn = c.winners.add(buyer_id=win_bid.buyer.name, bid_id=win_bid.id)
                wn.price.currency = self.cfg.currency
                wn.price.micros = price
            pub = a.publisher
            if pub.sub is None or pub.sub.wants("auction_closed"):
                self.stream(pub, closed, "auction_closed")

    def close(self) -> None:
        self.engine.close()


def conn_depth(conn: Any) -> float:
    return float(len(getattr(conn, "pending", ())))


class _Pending:
    """The engine calls of one frame, batched: bids go in as one numpy block, opens as one
    array call, flushed in order whenever the kind changes."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.kind = ""
        self.a: list[int] = []
        self.b: list[int] = []
        self.p: list[float] = []
        self.k: list[int] = []
        self.t: list[float] = []

    def bid(self, auction: int, bidder: int, micros: int, kind: int) -> None:
        if self.kind != "bid":
            self.flush()
            self.kind = "bid"
        self.a.append(auction)
        self.b.append(bidder)
        self.p.append(micros / 1e6)
        self.k.append(kind)

    def open(self, auction: int, floor: int, tmax_ms: float, expected: int) -> None:
        if self.kind != "open":
            self.flush()
            self.kind = "open"
        self.a.append(auction)
        self.p.append(floor / 1e6)
        self.b.append(expected)
        self.t.append(tmax_ms)

    def flush(self) -> None:
        if not self.a:
            return
        eng = self.ex.engine
        if self.kind == "bid":
            eng.submit(np.array(self.a, dtype=np.int64), np.array(self.b, dtype=np.int64),
                       np.array(self.p), kinds=np.array(self.k, dtype=np.uint8))
        else:
            eng.open(np.array(self.a, dtype=np.int64), reserve=np.array(self.p),
                     tmax_ms=np.array(self.t), expected_bids=np.array(self.b, dtype=np.int64))
        self.a, self.b, self.p, self.k, self.t = [], [], [], [], []
