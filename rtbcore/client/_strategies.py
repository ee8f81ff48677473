"""Bidding strategies and the AutoBidder that runs one against the exchange.

A strategy answers ``calculate_bid(auction_event)`` with an amount (currency units), None (no
bid), or ``(amount, criteria)``. The AutoBidder tells it which bids went out
(``on_placed``) and how each ended (``on_outcome``: won, lost, rejected, expired). Built-in
strategies wrap an inner one, so they compose: ``CreditGatedStrategy(ShadedStrategy(
PacedStrategy(...)))``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rtbcore.client import bidding_pb2 as pb
from rtbcore.client._events import BidRejectedError, Event
from rtbcore.client._session import BiddingClient, Connection
from rtbcore.errors import InvalidInputError

Decision = float | tuple[float, dict[str, Any]] | None

#: The outcome events of a bid, the ones ``on_outcome`` receives.
OUTCOMES = ("auction_won", "auction_lost", "bid_rejected", "bid_update")


def _split(d: Decision) -> tuple[float | None, dict[str, Any]]:
    if d is None:
        return None, {}
    if isinstance(d, tuple):
        amount, criteria = d
        return (None if amount is None else float(amount)), dict(criteria or {})
    return float(d), {}


class BidStrategy:
    """Override :meth:`calculate_bid`; the hooks are optional."""

    def calculate_bid(self, auction_event: Event) -> Decision:
        raise NotImplementedError("a BidStrategy must define calculate_bid(auction_event)")

    def on_placed(self, auction_event: Event, amount: float) -> None:
        """The bid of ``amount`` on this auction was sent."""

    def on_outcome(self, event: Event) -> None:
        """How a placed bid ended: ``auction_won``, ``auction_lost``, ``bid_rejected`` or a
        ``bid_update`` with status EXPIRED / CANCELLED. Calls on_win / on_loss / on_rejected."""
        if event.type == "auction_won":
            self.on_win(event)
        elif event.type == "auction_lost":
            self.on_loss(event)
        elif event.type == "bid_rejected":
            self.on_rejected(event)

    def on_win(self, event: Event) -> None: ...

    def on_loss(self, event: Event) -> None: ...

    def on_rejected(self, event: Event) -> None: ...


class FixedBidStrategy(BidStrategy):
    """Bids ``value`` (a number, or a function of the auction event) on every auction."""

    def __init__(self, value: float | Callable[[Event], float | None]) -> None:
        if not callable(value):
            v = float(value)
            if not (math.isfinite(v) and v > 0):
                raise InvalidInputError(f"FixedBidStrategy: value must be > 0, got {value!r}")
        self.value = value

    def calculate_bid(self, auction_event: Event) -> Decision:
        v = self.value
        return v(auction_event) if callable(v) else float(v)


class _Wrapper(BidStrategy):
    def __init__(self, inner: BidStrategy) -> None:
        if not isinstance(inner, BidStrategy):
            raise InvalidInputError(f"{type(self).__name__}: inner must be a BidStrategy, "
                                    f"got {type(inner).__name__}")
        self.inner = inner

    def on_placed(self, auction_event: Event, amount: float) -> None:
        self.inner.on_placed(auction_event, amount)

    def on_outcome(self, event: Event) -> None:
        self.inner.on_outcome(event)
        super().on_outcome(event)


class PacedStrategy(BidStrategy):
    """Bids ``value_bid`` under a budget paced over ``duration`` seconds of ``clock``.

    ``pacer``: ``"pid"`` (:class:`rtbcore.PIDPacer` in participation mode: the share of
    auctions bid on follows the gap to the straight-line spend curve), ``"adaptive"``
    (:class:`rtbcore.AdaptivePacer`, same mode, following ``profile``: the expected traffic
    of 24 or 1440 buckets of the period, e.g. from ``learn_profile``) or a pacer object
    with ``should_bid`` and ``update``. After ``duration`` it bids no more. Money never
    overspends: a bid goes out only if what is spent plus the worst case of every bid still
    open (its amount) plus this one stays within ``budget``.
    """

    def __init__(self, value_bid: float | Callable[[Event], float | None], budget: float, *,
                 duration: float = 86_400.0, pacer: Any = "pid",
                 clock: Callable[[], float] | None = None, update_every: float | None = None,
                 profile: Any = None, seed: int = 0) -> None:
        import time

        from rtbcore import AdaptivePacer, PIDPacer

        if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
            raise InvalidInputError(f"PacedStrategy: budget must be > 0, got {budget!r}")
        if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
            raise InvalidInputError(f"PacedStrategy: duration must be > 0, got {duration!r}")
        self.value = FixedBidStrategy(value_bid)
        self.budget = float(budget)
        self.clock = clock or time.monotonic
        self.duration = float(duration)
        self._start = self._last_update = self.clock()
        end = self._start + self.duration

        def period_clock() -> float:
            # the built-in pacers read the clock again inside should_bid: held at the end of
            # the period, a read just after the strategy's own check stays inside it
            return min(self.clock(), end)

        if pacer == "pid":
            pacer = PIDPacer(self.budget, total=float(duration), clock=period_clock,
                             output="participation", seed=seed)
        elif pacer == "adaptive":
            if profile is None:
                raise InvalidInputError("PacedStrategy: pacer='adaptive' needs a profile "
                                        "(24 hourly or 1440 per-minute traffic buckets)")
            pacer = AdaptivePacer(self.budget, profile, total=float(duration),
                                  clock=period_clock, output="participation", seed=seed)
        elif not (hasattr(pacer, "should_bid") and hasattr(pacer, "update")):
            raise InvalidInputError(
                "PacedStrategy: pacer must be 'pid', 'adaptive' or an object with should_bid "
                f"and update, got {pacer!r}")
        self.pacer = pacer
        self.update_every = float(update_every) if update_every else duration / 2000.0
        self.spent = 0.0
        self.open: dict[str, float] = {}
        self._open_total = 0.0  # sum of `open`, kept beside it: read on every auction

    @property
    def committed(self) -> float:
        """Spent plus the amounts of the bids still open (their worst case)."""
        return self.spent + self._open_total

    def calculate_bid(self, auction_event: Event) -> Decision:
        now = self.clock()
        if now - self._start >= self.duration:
            return None  # the period is over (a pacer's rollover starts the next)
        if now - self._last_update >= self.update_every:
            self._last_update = now
            self.pacer.update(self.spent)
        amount, criteria = _split(self.value.calculate_bid(auction_event))
        if amount is None or not (amount > 0):
            return None
        committed = self.committed
        if committed + amount > self.budget:
            return None
        if not bool(self.pacer.should_bid(committed, self.budget, amount)):
            return None
        return (amount, criteria) if criteria else amount

    def on_placed(self, auction_event: Event, amount: float) -> None:
        self.open[auction_event.auction_id] = self.open.get(auction_event.auction_id, 0.0) + amount
        self._open_total += amount

    def on_outcome(self, event: Event) -> None:
        if event.type == "bid_update" and event.status == "UPDATED":
            return
        held = self.open.pop(event.auction_id, None)
        if held is not None:
            # recomputed when nothing is open, so float drift never accumulates
            self._open_total = self._open_total - held if self.open else 0.0
            if event.type == "auction_won":
                self.spent += event.price
        super().on_outcome(event)


class ShadedStrategy(_Wrapper):
    """Shades the inner strategy's first-price bids with a fitted :class:`rtbcore.BidShader`
    (the inner amount is the value; the shader picks the bid that maximises expected
    surplus). Second-price auctions (``auction_type`` SECOND_PRICE) are bid at value."""

    def __init__(self, inner: BidStrategy, shader: Any) -> None:
        super().__init__(inner)
        if not hasattr(shader, "bid"):
            raise InvalidInputError("ShadedStrategy: shader must be a BidShader")
        self.shader = shader

    def calculate_bid(self, auction_event: Event) -> Decision:
        amount, criteria = _split(self.inner.calculate_bid(auction_event))
        if amount is None:
            return None
        if auction_event.raw.auction_started.auction_type != pb.SECOND_PRICE:
            amount = float(np.asarray(self.shader.bid(np.array([amount])))[0])
            if not (amount > 0):
                return None
        return (amount, criteria) if criteria else amount


class CreditGatedStrategy(_Wrapper):
    """Bids only while the :class:`rtbcore.CreditPool` can pay: each bid costs credit, each win
    notice earns it, so bidding stops on its own when win notices go missing."""

    def __init__(self, inner: BidStrategy, pool: Any) -> None:
        super().__init__(inner)
        if not hasattr(pool, "try_bid"):
            raise InvalidInputError("CreditGatedStrategy: pool must be a CreditPool")
        self.pool = pool

    def calculate_bid(self, auction_event: Event) -> Decision:
        d = self.inner.calculate_bid(auction_event)
        if _split(d)[0] is None:
            return None
        self.pool.tick()
        return d if self.pool.try_bid() else None

    def on_win(self, event: Event) -> None:
        self.pool.record_win()

    def on_loss(self, event: Event) -> None:
        self.pool.record_loss()


class ThompsonCreativeStrategy(_Wrapper):
    """Picks one of ``creatives`` per bid by Thompson sampling (:class:`rtbcore.ThompsonSampler`,
    a Beta posterior per creative) and sends it as the bid's ``creative`` criterion; a win
    rewards the creative 1, a loss 0 (``reward(event)`` may be overridden, e.g. for clicks)."""

    def __init__(self, inner: BidStrategy, creatives: Sequence[str], *,
                 seed: int | None = None) -> None:
        from rtbcore.thompson import ThompsonSampler

        super().__init__(inner)
        self.creatives = [str(c) for c in creatives]
        if not self.creatives or len(set(self.creatives)) != len(self.creatives):
            raise InvalidInputError(
                "ThompsonCreativeStrategy: creatives must be a non-empty list of distinct names")
        self.sampler = ThompsonSampler(len(self.creatives), seed=seed)
        self.chosen: dict[str, int] = {}

    def calculate_bid(self, auction_event: Event) -> Decision:
        amount, criteria = _split(self.inner.calculate_bid(auction_event))
        if amount is None:
            return None
        arm = int(self.sampler.select(1)[0])
        self.chosen[auction_event.auction_id] = arm
        return amount, {**criteria, "creative": self.creatives[arm]}

    def reward(self, event: Event) -> float | None:
        return 1.0 if event.type == "auction_won" else 0.0 if event.type == "auction_lost" \
            else None

    def on_outcome(self, event: Event) -> None:
        if not (event.type == "bid_update" and event.status == "UPDATED"):
            arm = self.chosen.pop(event.auction_id, None)
            r = self.reward(event)
            if arm is not None and r is not None:
                self.sampler.update(np.array([arm]), np.array([r]))
        super().on_outcome(event)


class AdjustedStrategy(_Wrapper):
    """Multiplies the inner strategy's amount by a :class:`rtbcore.BidAdjuster`'s bounded
    multiplier (one campaign), fed ``signal(auction_event)`` at ``clock()`` time.

    For ``strategy="time"`` the signal defaults to the seconds left until the auction's
    deadline (wall clock), so bids rise as deadlines approach; the other strategies need a
    ``signal`` (relative competition, a conversion rate, spend over the pacing target)."""

    def __init__(self, inner: BidStrategy, adjuster: Any, *,
                 signal: Callable[[Event], float] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        super().__init__(inner)
        if not hasattr(adjuster, "adjust"):
            raise InvalidInputError("AdjustedStrategy: adjuster must be a BidAdjuster")
        if signal is None:
            if getattr(adjuster, "strategy", None) != "time":
                raise InvalidInputError(
                    f"AdjustedStrategy: a {getattr(adjuster, 'strategy', '?')!r} adjuster "
                    "needs a signal(auction_event) function")

            def signal(ev: Event) -> float:
                return max(0.0, ev.deadline - time.time()) if ev.deadline else 0.0
        self.adjuster = adjuster
        self.signal = signal
        self.clock = clock or time.monotonic

    def calculate_bid(self, auction_event: Event) -> Decision:
        amount, criteria = _split(self.inner.calculate_bid(auction_event))
        if amount is None:
            return None
        out = self.adjuster.adjust(np.array([amount]), np.array([self.signal(auction_event)]),
                                   self.clock())
        amount = float(np.asarray(out)[0])
        return (amount, criteria) if criteria else amount


class AutoBidder:
    """Runs a strategy against the exchange: subscribes to announcements (with ``filters``)
    and to the outcomes of its own bids, asks the strategy for each auction, places the bids
    without waiting for one answer before the next, and feeds every outcome back.

    ``run_async(filters)`` is the coroutine; ``start(filters)`` runs it on its own event loop
    in a thread (``stop()`` ends it); ``run(filters)`` blocks. ``stats`` counts ``auctions``,
    ``bids``, ``won``, ``lost``, ``rejected``, ``expired``, ``errors`` and ``spend``.
    ``subscribed`` (a ``threading.Event``) is set once the exchange has acknowledged the
    subscription: announcements made from then on reach the strategy.
    """

    def __init__(self, client: BiddingClient, strategy: BidStrategy) -> None:
        if not isinstance(client, BiddingClient):
            raise InvalidInputError("AutoBidder: client must be a BiddingClient")
        if not isinstance(strategy, BidStrategy):
            raise InvalidInputError("AutoBidder: strategy must be a BidStrategy")
        self.client = client
        self.strategy = strategy
        self.stats: dict[str, float] = dict.fromkeys(
            ("auctions", "bids", "won", "lost", "rejected", "expired", "errors", "spend"), 0)
        self._mine: set[str] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.connection: Connection | None = None
        self.subscribed = threading.Event()

    def _placed(self, fut: asyncio.Future[Event]) -> None:
        # rejections also arrive as stream events and are counted there
        if not fut.cancelled() and fut.exception() is not None \
                and not isinstance(fut.exception(), BidRejectedError):
            self.stats["errors"] += 1

    def _handle(self, conn: Connection, ev: Event) -> None:
        t = ev.type
        if t == "auction_started":
            self.stats["auctions"] += 1
            amount, criteria = _split(self.strategy.calculate_bid(ev))
            if amount is None:
                return
            try:
                msg = conn._place_msg("AutoBidder", ev.auction_id, amount, None, "",
                                      criteria or None, None, None)
            except InvalidInputError:
                self.stats["errors"] += 1
                return
            fut = conn._request(msg, ev.auction_id)
            fut.add_done_callback(self._placed)
            self._mine.add(ev.auction_id)
            self.stats["bids"] += 1
            self.strategy.on_placed(ev, amount)
        elif t in OUTCOMES and ev.auction_id in self._mine:
            if t == "bid_update" and ev.status == "UPDATED":
                return
            self._mine.discard(ev.auction_id)
            if t == "auction_won":
                self.stats["won"] += 1
                self.stats["spend"] += ev.price
            elif t == "auction_lost":
                self.stats["lost"] += 1
            elif t == "bid_rejected":
                self.stats["rejected"] += 1
            else:
                self.stats["expired"] += 1
            self.strategy.on_outcome(ev)

    async def run_async(self, filters: dict[str, Any] | None = None, *,
                        duration: float | None = None, drain: float = 2.0) -> None:
        """Bids until ``stop()`` (or for ``duration`` seconds), then waits up to ``drain``
        seconds for the outcomes of the bids still open."""
        if self._stop is None or self._thread is None:
            self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if duration is not None:
            loop.call_later(duration, self._stop.set)
        async with self.client.connect() as conn:
            self.connection = conn
            await conn.subscribe(event_types=["auction_started", *OUTCOMES],
                                 filters=filters or {})
            self.subscribed.set()
            events = conn.stream_events()
            stopping: asyncio.Task[Any] = asyncio.ensure_future(self._stop.wait())
            drain_until: float | None = None
            try:
                while True:
                    if stopping.done() and drain_until is None:
                        drain_until = loop.time() + drain
                    if drain_until is not None and (not self._mine or loop.time() >= drain_until):
                        return
                    nxt = asyncio.ensure_future(anext(events))
                    wait = None if drain_until is None else max(0.0, drain_until - loop.time())
                    done, _ = await asyncio.wait({nxt, stopping} if drain_until is None
                                                 else {nxt}, timeout=wait,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if nxt not in done:
                        nxt.cancel()
                        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                            await nxt
                        continue
                    try:
                        ev = nxt.result()
                    except StopAsyncIteration:
                        return
                    if drain_until is not None and ev.type == "auction_started":
                        continue
                    self._handle(conn, ev)
            finally:
                self.subscribed.clear()
                stopping.cancel()
                conn.ack(conn.last_seq)

    def run(self, filters: dict[str, Any] | None = None, *, duration: float | None = None) -> None:
        """Blocks: :meth:`run_async` on a new event loop."""
        asyncio.run(self.run_async(filters, duration=duration))

    def start(self, filters: dict[str, Any] | None = None) -> None:
        """Runs :meth:`run_async` in a background thread with its own event loop."""
        if self._thread is not None and self._thread.is_alive():
            raise InvalidInputError("AutoBidder.start: already running")
        ready = threading.Event()
        self._stop = asyncio.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            ready.set()
            try:
                loop.run_until_complete(self.run_async(filters))
            except BaseException as e:  # reported by stop()
                self._error = e
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="rtbcore.AutoBidder", daemon=True)
        self._thread.start()
        ready.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops a started AutoBidder (after draining open bids' outcomes) and re-raises what
        ended it early, if anything did."""
        t, loop = self._thread, self._loop
        if t is None or loop is None:
            return
        if not loop.is_closed():
            def set_stop() -> None:
                if self._stop is not None:
                    self._stop.set()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(set_stop)
        t.join(timeout)
        self._thread = None
        self._stop = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err
