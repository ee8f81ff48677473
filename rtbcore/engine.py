"""The auction engine: a CPU-pinned, sharded worker pool that turns a bid stream into cleared
auctions.

The core is Rust (the engine of ``rust/core``, bound as ``_rtbcore._AuctionEngine``); this
module checks dtypes and shapes, broadcasts scalars, and turns the engine's raw rows into numpy
structured arrays (:data:`RESULT_DTYPE`, :data:`REJECTED_DTYPE`). The semantics (closing,
ties, rejections, backpressure, the event log) are in ``docs/engine.md``, the internals in
``docs/design/engine.md``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from _rtbcore import _AuctionEngine, _EventLog

from rtbcore._arrays import float_array as _float_array
from rtbcore._arrays import id_array as _id_array
from rtbcore._arrays import int_array as _int_array
from rtbcore._closing import ContextHandle
from rtbcore.errors import InvalidBidError, InvalidInputError
from rtbcore.ids import IdMap, is_string_ids
from rtbcore.records import (
    BID_DTYPE,
    CLOSED_BY,
    CLOSED_BY_ALL_BIDS,
    CLOSED_BY_DEADLINE,
    CLOSED_BY_SHUTDOWN,
    EVENT_DTYPE,
    EVENT_KINDS,
    KIND_CANCEL,
    KIND_DECLINE,
    KIND_PLACE,
    KIND_UPDATE,
    OUTCOME_DTYPE,
    REJECT_LATE,
    REJECT_UNKNOWN,
    REJECTED_DTYPE,
    RESULT_DTYPE,
)

__all__ = [
    "AuctionEngine",
    "EventLog",
    "EVENT_DTYPE",
    "EVENT_KINDS",
    "RESULT_DTYPE",
    "REJECTED_DTYPE",
    "OUTCOME_DTYPE",
    "CLOSED_BY",
    "CLOSED_BY_DEADLINE",
    "CLOSED_BY_ALL_BIDS",
    "CLOSED_BY_SHUTDOWN",
    "REJECT_LATE",
    "REJECT_UNKNOWN",
    "KIND_PLACE",
    "KIND_UPDATE",
    "KIND_CANCEL",
    "KIND_DECLINE",
]

_I64_MAX = np.iinfo(np.int64).max
_TMAX_MS_MAX = 86_400_000.0  # one day: an auction deadline, not a timer for the ages


def _count(name: str, x: Any) -> int:
    """``x`` as a count in 0..=2**63-1 (an int, not a bool)."""
    if isinstance(x, bool | np.bool_) or not isinstance(x, int | np.integer):
        raise InvalidInputError(f"{name}: expected an int, got {x!r}")
    if not 0 <= int(x) <= _I64_MAX:
        raise InvalidInputError(f"{name} = {int(x)}: must be in 0..=2**63-1")
    return int(x)


def _real(name: str, x: Any) -> float:
    """``x`` as a float (an int or a float, not a bool or a str); the range is the caller's."""
    if isinstance(x, bool | np.bool_) or not isinstance(x, int | float | np.integer | np.floating):
        raise InvalidInputError(f"{name}: expected a number, got {x!r}")
    try:
        return float(x)
    except OverflowError:
        raise InvalidInputError(f"{name} = {x}: too large for a float") from None


def _hand_out(
    held: list[np.ndarray], max_n: int, per: int, dtype: np.dtype
) -> np.ndarray | None:
    """Takes up to ``max_n`` rows (whole groups of ``per`` when ``max_n >= per``) from the first
    array in ``held`` and returns them as ``dtype``; the rest stays held for the next call.
    None when nothing is held.

    Exactly once: CPython raises a pending ``KeyboardInterrupt`` (or a signal handler's
    exception) only where a call returns or a function starts. The native calls append rows
    to ``held`` as raw bytes running only C code; the view as ``dtype`` (which may run numpy's
    Python helpers) happens while they are still held; from the moment rows leave ``held``
    until they are returned there is no call. An interruption finds them either still held or
    already with the caller. Concurrent callers are safe for the same reason: a thread switch
    also happens only at those points."""
    while True:
        if not held:
            return None
        rows = held[0]
        if rows.dtype == dtype:
            break
        typed = rows.view(dtype)
        if held and held[0] is rows:  # no other thread took or converted them meanwhile
            held[0] = typed
    cut = max_n - max_n % per if max_n >= per else max_n
    if cut < rows.shape[0]:
        held[0] = rows[cut:]
        return rows[:cut]
    del held[0]
    return rows


def _hand_out_counted(
    fill: Any, held: list[np.ndarray], dropped: list[int], max_n: int, dtype: np.dtype
) -> tuple[np.ndarray, int]:
    """``(rows, dropped)`` for the ``*_batch`` polls: refills ``held`` with ``fill(max_n, held,
    dropped)`` when empty, hands out one row per record as :func:`_hand_out` does, and reports
    (then clears) the count of rows dropped since the previous call."""
    if not held:
        fill(max_n, held, dropped)
    rows = _hand_out(held, max_n, 1, dtype)
    if rows is None:
        rows = np.empty(0, dtype)
    d, dropped[0] = dropped[0], 0  # after the last call: an interruption keeps the count
    return rows, d


def _check_len(name: str, a: np.ndarray, n: int) -> None:
    if a.shape[0] != n:
        raise InvalidInputError(f"{name}: has {a.shape[0]} entries but auction_ids has {n}")


def _check_nonneg(name: str, a: np.ndarray) -> None:
    bad = np.flatnonzero(a < 0)
    if bad.size:
        i = int(bad[0])
        raise InvalidInputError(f"{name}[{i}] = {a[i]}: must be >= 0")


class AuctionEngine(ContextHandle):
    """A CPU-pinned pool of worker threads that groups an interleaved bid stream into auctions
    and clears each one with the clearing kernels.

    ``AuctionEngine(workers=2, pin=True, mechanism="second_price", reserve=0.0, increment=0.01,
    tmax_ms=80, capacity=1 << 20, slot_ctrs=None, event_log=None, event_log_capacity=1 << 20,
    rejected_capacity=None, outcomes=False, outcome_capacity=None)``

    Prices, ``reserve``, ``increment`` and every price of a result or outcome row are per
    impression, in the unit of your bids (``docs/clearing.md``, "Prices and units").

    - ``mechanism``: ``"first_price"``, ``"second_price"``; with ``slot_ctrs`` (click-through
      factor per slot, non-increasing) ``"gsp"`` or ``"vcg"`` (``"second_price"`` with
      ``slot_ctrs`` means GSP). A position auction yields one result row per slot (``slot``
      field, ``winner_bidder = NO_BIDDER`` for an empty slot), so an auction's rows are
      consecutive and :meth:`poll` never splits them.
    - Auctions are sharded over the workers by ``auction_id``: each auction's state lives on one
      worker, which applies place / update (a bidder's latest bid replaces its earlier one) /
      cancel without a lock, closes the auction at its deadline (``open + tmax``) or as soon as
      ``expected_bids`` distinct bidders have answered, clears it and publishes a row of
      :data:`RESULT_DTYPE`. Ties go to the lowest ``bidder_id`` whatever the arrival order.
    - Workers are pinned one per CPU (round-robin when ``workers`` exceeds the cores);
      ``pin=False`` opts out; a failure is reported in :meth:`stats` (``pin_failures``,
      ``pin_error``), never raised.
    - ``capacity`` bounds the records queued for the workers (a soft bound, split evenly over
      the workers): :meth:`submit` waits for room while the workers catch up.
    - A bid for an unknown or closed auction, or stamped after its auction's deadline, is not
      applied: it is counted in :meth:`stats` (``rejected_late`` / ``rejected_unknown``) and
      reported by :meth:`poll_rejected` with OpenRTB loss reason 2 (expired). At most
      ``rejected_capacity`` such rows (default ``max(capacity, 1024)``; 0 keeps none) wait to
      be polled; a rejection beyond the bound is dropped, counted in
      ``stats()["rejected_unreported"]`` and reported by :meth:`poll_rejected_batch`.
    - ``outcomes=True`` adds a per-bid outcome stream: every live bid of a cleared auction
      yields one :data:`OUTCOME_DTYPE` row (won, price paid, OpenRTB loss reason,
      ``min_to_win``), read with :meth:`poll_outcomes`. At most ``outcome_capacity`` rows
      (default ``max(capacity, 65536)``) wait to be polled; a row beyond the bound is dropped,
      counted in ``stats()["outcomes_dropped"]`` and reported by :meth:`poll_outcomes_batch`.
    - :meth:`close` (also on leaving ``with``) stops intake, clears every auction still open
      (``closed_by = "shutdown"``) and joins every thread; results remain pollable. It wakes
      every thread waiting in :meth:`poll` or :meth:`submit`; once every result is polled,
      :meth:`poll` returns an empty array at once.
    - Signals: a Ctrl-C (or any signal whose handler raises) during a call never loses or
      duplicates a result, a rejection or an event: rows taken by an interrupted call are
      returned first by the next one.

    Bad input (wrong type or dtype, NaN or negative price, ids outside 0..2**63-1, mismatched
    lengths) raises :class:`rtbcore.errors.InvalidInputError` (:class:`~rtbcore.errors.
    InvalidBidError` for a bid) naming the argument and index, and nothing of the call is
    queued. :meth:`submit` on a closed engine raises :class:`rtbcore.errors.QueueClosed`.
    """

    def __init__(
        self,
        workers: int = 2,
        pin: bool = True,
        mechanism: str = "second_price",
        reserve: float = 0.0,
        increment: float = 0.01,
        tmax_ms: float = 80,
        capacity: int = 1 << 20,
        slot_ctrs: Sequence[float] | npt.ArrayLike | None = None,
        event_log: str | os.PathLike[str] | None = None,
        event_log_capacity: int = 1 << 20,
        rejected_capacity: int | None = None,
        outcomes: bool = False,
        outcome_capacity: int | None = None,
    ) -> None:
        workers = _count("workers", workers)
        capacity = _count("capacity", capacity)
        if not 1 <= workers <= 1024:
            raise InvalidInputError(f"workers = {workers}: must be in 1..1024")
        if capacity < 1:
            raise InvalidInputError(f"capacity = {capacity}: must be >= 1")
        if rejected_capacity is not None:
            rejected_capacity = _count("rejected_capacity", rejected_capacity)
        if not isinstance(outcomes, bool | np.bool_):
            raise InvalidInputError(f"outcomes: expected a bool, got {outcomes!r}")
        if outcome_capacity is not None:
            outcome_capacity = _count("outcome_capacity", outcome_capacity)
            if not outcomes:
                raise InvalidInputError("outcome_capacity: given without outcomes=True")
        elif outcomes:
            outcome_capacity = max(capacity, 1 << 16)
        if not isinstance(pin, bool | np.bool_):
            raise InvalidInputError(f"pin: expected a bool, got {pin!r}")
        if not isinstance(mechanism, str):
            raise InvalidInputError(f"mechanism: expected a str, got {mechanism!r}")
        reserve = _real("reserve", reserve)
        increment = _real("increment", increment)
        tmax_ns = self._tmax_ns("tmax_ms", tmax_ms)
        ctrs = None
        if slot_ctrs is not None:
            ctrs = [float(c) for c in _float_array("slot_ctrs", slot_ctrs)]
            if mechanism == "second_price":
                mechanism = "gsp"
        self.mechanism = mechanism
        self.slot_ctrs = ctrs
        self.workers = int(workers)
        event_log_capacity = _count("event_log_capacity", event_log_capacity)
        if event_log_capacity < 1:
            raise InvalidInputError(f"event_log_capacity = {event_log_capacity}: must be >= 1")
        self.event_log = None if event_log is None else os.fspath(event_log)
        self._core = _AuctionEngine(
            workers, bool(pin), mechanism, reserve, increment, tmax_ns, capacity, ctrs,
            self.event_log, event_log_capacity, rejected_capacity, outcome_capacity,
        )
        # Rows taken from the engine and not yet returned (see _hand_out): a poll interrupted
        # after the native call took its rows leaves them here for the next poll.
        self._held_results: list[np.ndarray] = []
        self._held_rejected: list[np.ndarray] = []
        self._rejected_dropped: list[int] = [0]
        self._held_outcomes: list[np.ndarray] = []
        self._outcomes_dropped: list[int] = [0]
        self._rows_per_auction = int(self._core.rows_per_auction)
        #: Interning of string ids: wherever strings are given for ``auction_ids`` or
        #: ``bidder_ids``, they are mapped to integers here; results carry the integers
        #: (``auction_id_map.keys(rows["auction_id"])`` gives the strings back).
        self.auction_id_map = IdMap()
        self.bidder_id_map = IdMap()

    def _as_ids(self, which: str, x: Any) -> Any:
        """Strings through the engine's IdMap for ``which``; anything else as given."""
        if not is_string_ids(x):
            return x
        m = self.auction_id_map if which == "auction" else self.bidder_id_map
        if isinstance(x, str):
            return m.id(x)
        return m.ids(x)

    @staticmethod
    def _tmax_ns(name: str, tmax_ms: Any) -> int:
        t = _real(name, tmax_ms)
        if not (math.isfinite(t) and 0 < t <= _TMAX_MS_MAX):
            raise InvalidInputError(f"{name} = {tmax_ms}: must be in (0, 86400000] (one day)")
        return max(1, round(t * 1e6))

    # -- intake ----------------------------------------------------------------------------

    def open(
        self,
        auction_ids: npt.ArrayLike,
        reserve: npt.ArrayLike | None = None,
        tmax_ms: npt.ArrayLike | None = None,
        expected_bids: npt.ArrayLike | None = None,
    ) -> int:
        """Opens auctions (ids and the optional per-auction settings as arrays or scalars).

        ``None`` takes the engine's ``reserve`` / ``tmax_ms``; ``expected_bids=None`` (or 0)
        closes only at the deadline. Returns the number of auctions queued for opening. Opening
        an id that is already open is counted in ``stats()["open_duplicate"]`` and ignored.
        """
        auction_ids = self._as_ids("auction", auction_ids)
        ids = _int_array("auction_ids", np.atleast_1d(np.asarray(auction_ids)))
        n = ids.shape[0]
        _check_nonneg("auction_ids", ids)
        r = t = e = None
        if reserve is not None:
            r = _float_array("reserve", reserve, n)
            _check_len("reserve", r, n)
        if tmax_ms is not None:
            tm = _float_array("tmax_ms", tmax_ms, n)
            _check_len("tmax_ms", tm, n)
            bad = np.flatnonzero(~(np.isfinite(tm) & (tm > 0) & (tm <= _TMAX_MS_MAX)))
            if bad.size:
                i = int(bad[0])
                raise InvalidInputError(
                    f"tmax_ms[{i}] = {tm[i]}: must be in (0, 86400000] (one day)"
                )
            t = np.maximum(np.round(tm * 1e6), 1).astype(np.uint64)
        if expected_bids is not None:
            eb = _int_array("expected_bids", expected_bids, n)
            _check_len("expected_bids", eb, n)
            _check_nonneg("expected_bids", eb)
            big = np.flatnonzero(eb > 0xFFFF_FFFF)
            if big.size:
                i = int(big[0])
                raise InvalidInputError(f"expected_bids[{i}] = {eb[i]}: must be < 2**32")
            e = eb.astype(np.uint32)
        return int(self._core.open(ids.view(np.uint64), r, t, e))

    def submit(
        self,
        auction_ids: npt.ArrayLike,
        bidder_ids: npt.ArrayLike,
        prices: npt.ArrayLike,
        quality: npt.ArrayLike | None = None,
        kinds: npt.ArrayLike | None = None,
        timeout_ms: float | None = None,
    ) -> int:
        """Submits a block of bids (one GIL-released call validates it and partitions it by
        shard). ``kinds`` (``KIND_PLACE`` / ``KIND_UPDATE`` / ``KIND_CANCEL`` /
        ``KIND_DECLINE``, default place) lets one block carry updates, cancels and no-bids.
        Waits while the intake is full (Ctrl-C interrupts), at most ``timeout_ms`` when given
        (then raises :class:`rtbcore.errors.QueueFull` and queues nothing). Returns the records
        accepted into the engine; whether each is applied or rejected (late / unknown) is
        decided by its worker and reported by :meth:`stats` / :meth:`poll_rejected`.
        """
        # Python converts (dtypes, scalars broadcast); the core checks lengths and values.
        auction_ids = self._as_ids("auction", auction_ids)
        bidder_ids = self._as_ids("bidder", bidder_ids)
        a = _id_array("auction_ids", auction_ids)
        n = a.shape[0]
        b = _id_array("bidder_ids", bidder_ids)
        p = _float_array("prices", prices)
        q = None if quality is None else _float_array("quality", quality, n)
        k = None
        if kinds is not None:
            kk = _int_array("kinds", kinds, n)
            bad = np.flatnonzero((kk < 0) | (kk > 255))
            if bad.size:  # would wrap in the uint8 conversion
                i = int(bad[0])
                raise InvalidBidError(
                    f"kinds[{i}] = {kk[i]}: must be 0 (place), 1 (update), 2 (cancel) or "
                    "3 (decline)"
                )
            k = kk.astype(np.uint8)
        got = self._core.submit(a, b, p, q, k, self._timeout(timeout_ms))
        if got is None:
            from rtbcore.errors import QueueFull

            raise QueueFull(f"submit: the intake stayed full for {timeout_ms} ms; nothing queued")
        return int(got)

    def submit_records(self, records: np.ndarray, timeout_ms: float | None = None) -> int:
        """Submits a block of :data:`rtbcore.BID_DTYPE` records (e.g. built with
        :func:`rtbcore.make_bids` or read from a :class:`rtbcore.BidRing`), with their own
        ``kind``; a record with ``timestamp_ns == 0`` is stamped now, others keep their stamp
        (the deadline is judged on it). Same validation, waiting and return as :meth:`submit`;
        errors name ``records.<field>[i]``."""
        if not isinstance(records, np.ndarray) or records.ndim != 1:
            raise InvalidInputError("records: expected a 1-D numpy array of BID_DTYPE")
        if records.dtype != BID_DTYPE:
            raise InvalidInputError(f"records: expected dtype BID_DTYPE, got {records.dtype}")
        raw = np.ascontiguousarray(records).view(np.uint8)
        got = self._core.submit_records(raw, self._timeout(timeout_ms))
        if got is None:
            from rtbcore.errors import QueueFull

            raise QueueFull(f"submit: the intake stayed full for {timeout_ms} ms; nothing queued")
        return int(got)

    def submit_one(
        self, auction_id: int, bidder_id: int, price: float, quality: float = 1.0
    ) -> bool:
        """Submits one bid without waiting: True if queued, False if the intake is full."""
        return bool(self._core.submit_one(
            self._scalar_id("auction_id", self._as_ids("auction", auction_id)),
            self._scalar_id("bidder_id", self._as_ids("bidder", bidder_id)),
            _real("price", price), _real("quality", quality), False,
        ))

    def cancel(self, auction_id: int, bidder_id: int) -> bool:
        """Withdraws the bidder's bid from the auction (without waiting: False if the intake is
        full). A cancel for a bidder with no live bid is counted in
        ``stats()["cancel_without_bid"]``."""
        return bool(self._core.submit_one(
            self._scalar_id("auction_id", self._as_ids("auction", auction_id)),
            self._scalar_id("bidder_id", self._as_ids("bidder", bidder_id)),
            0.0, 1.0, True,
        ))

    def decline(
        self,
        auction_ids: npt.ArrayLike,
        bidder_ids: npt.ArrayLike,
        timeout_ms: float | None = None,
    ) -> int:
        """Explicit no-bids (one id or arrays; a scalar broadcasts): each bidder answers that it
        will not bid in the auction. The answer counts toward the auction's
        ``expected_bids``, so an auction whose bidders have all answered closes at once
        instead of waiting for ``tmax``; a bid the bidder had placed is withdrawn. A decline
        after the auction closed is rejected as late, like a bid. Same validation, waiting
        and return as :meth:`submit` (the records carry ``KIND_DECLINE``); counted in
        ``stats()["bids_declined"]`` and logged as ``BidDeclined`` events."""
        auction_ids = self._as_ids("auction", auction_ids)
        bidder_ids = self._as_ids("bidder", bidder_ids)
        n = 1
        for x in (auction_ids, bidder_ids):
            try:
                shape = np.shape(x)
            except (TypeError, ValueError):
                shape = ()  # the conversion below names what is wrong
            if len(shape) == 1:
                n = shape[0]
                break
        a = _id_array("auction_ids", auction_ids, n)
        b = _id_array("bidder_ids", bidder_ids, n)
        kinds = np.full(a.shape[0], KIND_DECLINE, dtype=np.uint8)
        return self.submit(a, b, np.zeros(a.shape[0]), None, kinds, timeout_ms)

    @staticmethod
    def _timeout(timeout_ms: Any, default: float | None = None) -> float | None:
        """``timeout_ms`` as a float (``None``: ``default``); NaN and negative values are left
        for the core to refuse with the one message."""
        return default if timeout_ms is None else _real("timeout_ms", timeout_ms)

    @staticmethod
    def _scalar_id(name: str, x: Any) -> int:
        if isinstance(x, bool) or not isinstance(x, int | np.integer):
            raise InvalidInputError(f"{name}: expected an int, got {x!r}")
        if not 0 <= int(x) <= _I64_MAX:
            raise InvalidInputError(f"{name} = {x}: must be in 0..2**63-1")
        return int(x)

    def attach(
        self, ring: Any, reader: str = "engine", start: str = "oldest"
    ) -> None:
        """Consumes a :class:`rtbcore.BidRing` (or the path of one) that other processes append
        bids to, on a thread of the engine's own, until :meth:`close`.

        The engine opens its own mapping of the ring and reads through the persistent reader
        ``reader`` (created at ``start``, ``"oldest"`` or ``"latest"``, on first use; an
        existing cursor resumes where it stopped: at-least-once). Records are validated one by
        one: an invalid one is counted in ``stats()["attach_invalid"]`` and skipped; a record
        with ``timestamp_ns == 0`` is stamped when read. Ring errors (e.g. an overrun) are
        counted in ``attach_errors`` (last message in ``attach_last_error``).
        """
        if start not in ("oldest", "latest"):
            raise InvalidInputError(f"start = {start!r}: expected 'oldest' or 'latest'")
        if not isinstance(reader, str) or not reader:
            raise InvalidInputError(f"reader: expected a non-empty str, got {reader!r}")
        path = getattr(ring, "path", ring)
        if not isinstance(path, str | os.PathLike):
            raise InvalidInputError(
                f"ring: expected a BidRing or a path, got {type(ring).__name__}"
            )
        self._core.attach_ring(os.fspath(path), reader, start == "oldest")

    # -- output ----------------------------------------------------------------------------

    def poll(self, max_n: int = 65536, timeout_ms: float = 0) -> np.ndarray:
        """Up to ``max_n`` result rows (:data:`RESULT_DTYPE`), waiting up to ``timeout_ms``
        (``math.inf``: as long as it takes) for the first.

        The wait releases the GIL and checks for signals every 20 ms, so Ctrl-C raises
        ``KeyboardInterrupt`` promptly. Every result is delivered exactly once whatever signal
        arrives when: rows the engine handed over to a poll that was then interrupted are
        returned first by the next poll.

        Once the engine is closed and every result has been polled, ``poll`` returns an empty
        array at once, whatever ``timeout_ms``; :meth:`close` from another thread wakes a poll
        that is waiting. So ``while (rows := eng.poll(timeout_ms=math.inf)).size: ...`` reads
        every result and ends after :meth:`close`.
        """
        max_n = _count("max_n", max_n)
        timeout = _real("timeout_ms", timeout_ms)
        held = self._held_results
        if not held:
            self._core.poll(max_n, timeout, held)
        rows = _hand_out(held, max_n, self._rows_per_auction, RESULT_DTYPE)
        return np.empty(0, RESULT_DTYPE) if rows is None else rows

    def poll_rejected(self, max_n: int = 65536) -> np.ndarray:
        """Up to ``max_n`` rejected bids (:data:`REJECTED_DTYPE`, ``loss_reason`` = 2); never
        waits. Delivered exactly once, like :meth:`poll`. At most ``rejected_capacity`` rows are
        held for polling: see :meth:`poll_rejected_batch` for the rejections dropped beyond."""
        max_n = _count("max_n", max_n)
        held = self._held_rejected
        if not held:
            self._core.poll_rejected(max_n, held)
        rows = _hand_out(held, max_n, 1, REJECTED_DTYPE)
        return np.empty(0, REJECTED_DTYPE) if rows is None else rows

    def poll_rejected_batch(self, max_n: int = 65536) -> tuple[np.ndarray, int]:
        """``(rows, dropped)``: up to ``max_n`` rejected bids as :meth:`poll_rejected` returns
        them, and how many rejections were dropped, not held, because ``rejected_capacity``
        rows were already waiting to be polled. Each drop is reported once, by the first
        ``poll_rejected_batch`` after it (``stats()["rejected_unreported"]`` counts them
        all); every rejection is also counted in ``rejected_late`` / ``rejected_unknown``."""
        max_n = _count("max_n", max_n)
        return _hand_out_counted(self._core.poll_rejected, self._held_rejected,
                                 self._rejected_dropped, max_n, REJECTED_DTYPE)  # fmt: skip

    def poll_outcomes(self, max_n: int = 65536) -> np.ndarray:
        """Up to ``max_n`` per-bid outcome rows (:data:`OUTCOME_DTYPE`); never waits.

        Needs ``AuctionEngine(outcomes=True)``. An auction's rows become pollable together,
        once its result row is pollable, so after :meth:`poll` has returned an auction's
        result, its outcomes are either already polled or pollable now. Delivered exactly
        once, like :meth:`poll` (Ctrl-C safe). See :meth:`poll_outcomes_batch` for the rows
        dropped at ``outcome_capacity``."""
        return self.poll_outcomes_batch(max_n)[0]

    def poll_outcomes_batch(self, max_n: int = 65536) -> tuple[np.ndarray, int]:
        """``(rows, dropped)``: up to ``max_n`` outcome rows as :meth:`poll_outcomes` returns
        them, and how many rows were dropped, not held, because ``outcome_capacity`` rows were
        already waiting to be polled (the newest rows of a worker's batch go first). Each drop
        is reported once, by the first call after it; ``stats()["outcomes_dropped"]`` counts
        them all and ``stats()["outcomes"]`` counts every row made."""
        max_n = _count("max_n", max_n)
        if self._core.outcome_capacity is None:
            raise InvalidInputError(
                "poll_outcomes: the engine was started without outcomes=True"
            )
        return _hand_out_counted(self._core.poll_outcomes, self._held_outcomes,
                                 self._outcomes_dropped, max_n, OUTCOME_DTYPE)  # fmt: skip

    @property
    def outcome_capacity(self) -> int | None:
        """The bound on outcome rows held for :meth:`poll_outcomes`; None without outcomes."""
        c = self._core.outcome_capacity
        return None if c is None else int(c)

    @property
    def rejected_capacity(self) -> int:
        """The bound on rejected bids held for :meth:`poll_rejected`."""
        return int(self._core.rejected_capacity)

    def stats(self) -> dict[str, Any]:
        """Counters (summed over the workers), pinning, and HDR latency percentiles in ns:
        ``last_bid_to_result_{p50,p99,p999,max,mean}_ns`` and ``open_to_close_*``.

        A snapshot of what the workers have applied so far: an ``open`` or a bid still queued
        for a worker is not counted yet (``open_auctions`` can lag a just-returned ``open``);
        a polled result, though, is always already counted."""
        return dict(self._core.stats())

    def reset_latency(self) -> None:
        """Empties both latency histograms (e.g. after a warm-up)."""
        self._core.reset_latency()

    @property
    def closed(self) -> bool:
        return bool(self._core.closed)

    def close(self) -> None:
        """Stops intake, clears every open auction (``closed_by = shutdown``) and joins every
        worker thread. Idempotent; results and rejections remain pollable."""
        self._core.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"AuctionEngine(workers={self.workers}, mechanism={self.mechanism!r}, "
            f"rejected_capacity={self.rejected_capacity}, {state})"
        )


class EventLog(ContextHandle):
    """Follows (or replays) the event log that ``AuctionEngine(event_log=path)`` writes, from
    any process.

    ``EventLog(path, reader="eventlog", start="oldest")``

    The log is a :class:`rtbcore.BidRing` of 88-byte records (:data:`EVENT_DTYPE`), created in
    broadcast mode by the engine so it never waits for a follower; a follower that falls more
    than the ring's capacity behind gets :class:`rtbcore.errors.RingOverrun` (with ``lost`` and
    ``next_seq``) and continues from the oldest record still there. Each auction's events are in
    order. Every field has one meaning whatever the ``kind`` (names in :data:`EVENT_KINDS`);
    a field that does not apply holds "none" (NaN, 0, or the all-ones integer):

    - ``AuctionStarted`` (16): ``reserve``, ``tmax_ns``, ``expected_bids``;
      ``timestamp_ns`` = open time.
    - ``BidPlaced`` / ``BidUpdated`` / ``BidCancelled`` (17 / 18 / 19): ``bidder_id``,
      ``price``, ``quality`` of the bid as applied (for a cancel, the bid it withdrew);
      ``timestamp_ns`` = the submit stamp.
    - ``AuctionWon`` (20): ``bidder_id``, ``price``, ``quality`` of the winning bid,
      ``clearing_price`` (paid, per unit for a slot), ``min_to_win``, ``slot``, ``reserve``,
      ``closed_by``, ``loss_reason`` = 0; ``timestamp_ns`` = close time.
    - ``AuctionLost`` (21): one per losing live bid (``bidder_id``, ``price``, ``quality``,
      ``loss_reason`` its OpenRTB code, ``reserve``, ``closed_by``); an auction with no bids
      logs one with ``bidder_id`` = 2**64 - 1.

    The reader ``reader`` is persistent (its cursor lives in the ring file): a follower that
    restarts resumes where it stopped; :meth:`replay` moves it back to any sequence number
    still in the ring.
    """

    def __init__(
        self, path: str | os.PathLike[str], reader: str = "eventlog", start: str = "oldest"
    ) -> None:
        if start not in ("oldest", "latest"):
            raise InvalidInputError(f"start = {start!r}: expected 'oldest' or 'latest'")
        if not isinstance(reader, str) or not reader:
            raise InvalidInputError(f"reader: expected a non-empty str, got {reader!r}")
        self.path = os.fspath(path)
        self._log = _EventLog(self.path, reader, start == "oldest")
        self._held: list[np.ndarray] = []  # events read by an interrupted call (see _hand_out)

    def read(self, max_n: int = 65536, timeout_ms: float = 0) -> np.ndarray:
        """Up to ``max_n`` events (:data:`EVENT_DTYPE`), waiting up to ``timeout_ms`` for the
        first (GIL released; Ctrl-C interrupts promptly). Every event is returned exactly once
        whatever signal arrives when: events an interrupted read took are returned first by
        the next. Reading acknowledges the previous batch."""
        max_n = _count("max_n", max_n)
        timeout = _real("timeout_ms", timeout_ms)
        held = self._held
        if not held:
            self._log.read(max_n, timeout, held)
        rows = _hand_out(held, max_n, 1, EVENT_DTYPE)
        return np.empty(0, EVENT_DTYPE) if rows is None else rows

    def follow(self, timeout_ms: float = 100, idle_polls: int | None = None):
        """Yields event arrays as they arrive; stops after ``idle_polls`` consecutive empty
        waits of ``timeout_ms`` (never, by default)."""
        idle = 0
        while idle_polls is None or idle < idle_polls:
            ev = self.read(timeout_ms=timeout_ms)
            if ev.shape[0]:
                idle = 0
                yield ev
            else:
                idle += 1

    def replay(self, seq: int = 0) -> None:
        """Moves the reader to sequence number ``seq`` (0 = the first event ever logged, if the
        ring still holds it). Events held from an interrupted :meth:`read` are dropped: the
        next read starts at ``seq``."""
        self._log.replay(_count("seq", seq))
        self._held.clear()

    def commit(self) -> None:
        """Acknowledges every event read so far."""
        self._log.commit()

    @property
    def position(self) -> int:
        """Sequence number of the next event this reader will return."""
        held = sum(h.view(EVENT_DTYPE).shape[0] for h in list(self._held))
        return int(self._log.position) - held

    @property
    def tail(self) -> int:
        """Sequence number the next logged event will get."""
        return int(self._log.tail)

    def _exit(self, ok: bool) -> None:
        self._log.commit()

