"""Bid streaming: a lock-free queue between threads and a memory-mapped ring between processes.

- :class:`BidQueue` — bounded lock-free MPMC queue of bid records (Rust, crossbeam's
  ``ArrayQueue``). ``push`` is a direct native call; ``push_many`` / ``pop_many`` move numpy
  blocks of :data:`BID_DTYPE` with the GIL released.
- :class:`BidRing` — a ring of fixed-size records in a shared file (default under ``/dev/shm``)
  that any number of processes append to and read from, with persistent named reader cursors,
  zero-copy numpy views, replay, backpressure or broadcast, and crash recovery. The file
  records its record type. The semantics are in ``docs/streaming.md``, the file format and the
  protocol in ``docs/design/ring.md``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

import numpy as np
from _rtbcore import BidQueue as _NativeBidQueue
from _rtbcore import BidRing as _NativeBidRing

from rtbcore._closing import ContextHandle
from rtbcore.errors import InvalidInputError, QueueClosed
from rtbcore.records import (
    BID_DTYPE,
    EVENT_DTYPE,
    KIND_CANCEL,
    KIND_DECLINE,
    KIND_PLACE,
    KIND_UPDATE,
    BidTuple,
    make_bids,
)

__all__ = [
    "BID_DTYPE",
    "KIND_PLACE",
    "KIND_UPDATE",
    "KIND_CANCEL",
    "KIND_DECLINE",
    "BidQueue",
    "BidRing",
    "RingReader",
    "make_bids",
]

#: The record types of this library: the tag a ring file records, and the dtype it stands for.
#: Other dtypes are recorded as ``numpy:<descr>`` (see :func:`_tag_of`).
_TAGS: dict[str, np.dtype] = {"rtbcore.bid": BID_DTYPE, "rtbcore.event": EVENT_DTYPE}
_MAX_TAG = 256


def _tag_of(dt: np.dtype) -> str:
    """The record type tag a ring of ``dt`` records carries in its header."""
    for tag, known in _TAGS.items():
        if dt == known:
            return tag
    descr = str(dt.descr) if dt.names is not None else dt.str
    tag = "numpy:" + descr
    if len(tag) > _MAX_TAG or not (tag.isascii() and tag.isprintable()):
        tag = "numpy:sha256:" + hashlib.sha256(descr.encode()).hexdigest()
    return tag


def _record_bytes(records: Any, dtype: np.dtype, arg: str = "records") -> np.ndarray:
    """The records as a contiguous uint8 array, or InvalidInputError naming ``arg``."""
    if not isinstance(records, np.ndarray):
        raise InvalidInputError(
            f"{arg}: expected a 1-D numpy array of dtype {dtype}, got {type(records).__name__}"
        )
    if records.ndim != 1:
        raise InvalidInputError(f"{arg}: expected a 1-D array, got shape {records.shape}")
    if records.dtype != dtype:
        raise InvalidInputError(f"{arg}: expected dtype {dtype}, got {records.dtype}")
    return np.ascontiguousarray(records).view(np.uint8)


def _check_count(value: Any, arg: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidInputError(f"{arg}: expected an int >= 0, got {value!r}")
    return int(value)


class BidQueue(_NativeBidQueue):
    """A bounded lock-free multi-producer multi-consumer queue of bid records.

    ``BidQueue(capacity=65536)``

    - ``push(auction_id, bidder_id, price, quality=1.0, kind=0, timestamp_ns=0) -> bool``
      enqueues one bid and never blocks: False when the queue is full (counted in ``refused``).
    - ``push_many(records) -> int`` enqueues the longest prefix of a :data:`BID_DTYPE` array
      that fits, in order, and returns its length; the rest remain the caller's.
    - ``pop_many(max_n) -> ndarray[BID_DTYPE]`` dequeues up to ``max_n`` records, oldest first.
    - ``close()``: later pushes raise :class:`rtbcore.errors.QueueClosed`; pops drain.

    Safe from any number of Python and Rust threads; the bulk calls release the GIL. A bad
    record (NaN or negative price or quality, unknown kind) raises
    :class:`rtbcore.errors.InvalidBidError` naming the field and index, and nothing of that call
    is enqueued.
    """

    def push_many(self, records: np.ndarray) -> int:
        """Enqueues the longest prefix of ``records`` that fits; returns its length."""
        return int(self._push_bytes(_record_bytes(records, BID_DTYPE)))

    def pop_many(self, max_n: int = 65536) -> np.ndarray:
        """Dequeues up to ``max_n`` records (oldest first) into a new :data:`BID_DTYPE` array."""
        max_n = _check_count(max_n, "max_n")
        out = np.empty(min(max_n, len(self)), BID_DTYPE)
        if len(out) == 0:
            return out
        n = self._pop_into(out.view(np.uint8))
        return out[:n]

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"BidQueue(len={len(self)}, capacity={self.capacity}, {state})"


class _ClosedHandle:
    """Stands in for the native ring after close(): every use raises QueueClosed."""

    def __getattr__(self, name: str) -> Any:
        raise QueueClosed("this BidRing handle was closed")


_T = TypeVar("_T")


class _FromNative(Generic[_T]):
    """A read-only attribute of the object's native handle (``self._native``), of the same
    name, converted to a Python type; a closed handle raises QueueClosed."""

    def __init__(self, conv: Callable[[Any], _T], doc: str | None = None) -> None:
        self._conv = conv
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _FromNative[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return self._conv(getattr(obj._native, self._name))  # type: ignore[attr-defined]


def _default_path() -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(base, f"rtbcore-{os.getpid()}-{secrets.token_hex(4)}.ring")


class BidRing(ContextHandle):
    """A memory-mapped ring of bid records shared by any number of processes.

    Make one with :meth:`BidRing.create` (a new file; fails if it exists) and attach to it from
    any process with :meth:`BidRing.open`. Appends validate bid records and return how many fit;
    readers hold persistent named cursors and read zero-copy numpy views. The cursor, mode and
    crash semantics are in ``docs/streaming.md``.
    """

    def __init__(self, native: Any = None, dtype: Any = None) -> None:
        if not isinstance(native, _NativeBidRing):
            raise TypeError("use BidRing.create(...) for a new ring or BidRing.open(path)")
        self._native: Any = native
        self._dtype = np.dtype(dtype)
        self._validate = self._dtype == BID_DTYPE
        # A view of the native handle's own mapping (its base keeps the handle alive): if the
        # file shrinks, the handle replaces these pages with zeros instead of crashing.
        raw = native._records()
        raw.flags.writeable = False
        self._slots = raw.view(self._dtype)
        if self._validate:
            # The per-record hot path is the bound native method itself: one native call, no
            # Python frame in between (close() removes it again).
            self.append = native.append  # type: ignore[method-assign]

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        capacity: int = 1 << 20,
        mode: str = "backpressure",
        dtype: Any = BID_DTYPE,
        max_readers: int = 32,
    ) -> BidRing:
        """Creates a new ring file (mode 0600) and returns a handle on it.

        ``path`` defaults to a fresh name under ``/dev/shm``. ``capacity`` (records) is rounded
        up to a power of two. ``mode`` is ``"backpressure"`` (writers never overwrite what a
        registered reader has not acknowledged) or ``"broadcast"`` (writers overwrite; a lapped
        reader gets :class:`rtbcore.errors.RingOverrun`). ``dtype`` is :data:`BID_DTYPE` or any
        fixed-size numpy dtype whose itemsize is a multiple of 8 (records of other dtypes are
        not validated); the file records it (as a type tag) so that :meth:`open` can refuse
        another dtype. Raises :class:`rtbcore.errors.RtbcoreOSError` if the file exists.
        """
        dt = _ring_dtype(dtype)
        native = _NativeBidRing._create(
            os.fspath(path) if path is not None else _default_path(),
            _check_count(capacity, "capacity"),
            dt.itemsize,
            mode,
            _check_count(max_readers, "max_readers"),
            _tag_of(dt),
        )
        return cls(native, dt)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, dtype: Any = None) -> BidRing:
        """Opens an existing ring file. The header is validated: a foreign, truncated or
        corrupt file, or one written by another format version, raises
        :class:`rtbcore.errors.RingCorrupt`.

        ``dtype``: the record dtype the caller expects. The file must have been created with
        the same dtype, else :class:`rtbcore.errors.InvalidInputError` names both. ``None``
        takes the file's own: :data:`BID_DTYPE` or :data:`EVENT_DTYPE` for rings of those,
        raw ``V<size>`` records for any other dtype.
        """
        dt = None if dtype is None else _ring_dtype(dtype)
        if dt is None:
            native = _NativeBidRing._open(os.fspath(path))
            dt = _TAGS.get(native.record_type, np.dtype(("V", native.record_size)))
        else:
            native = _NativeBidRing._open(os.fspath(path), dt.itemsize, _tag_of(dt))
        return cls(native, dt)

    @property
    def _n(self) -> Any:
        return self._native

    def append(
        self,
        auction_id: int,
        bidder_id: int,
        price: float,
        quality: float = 1.0,
        kind: int = KIND_PLACE,
        timestamp_ns: int = 0,
    ) -> bool:
        """Appends one bid; False when there is no room (backpressure mode). On a
        :data:`BID_DTYPE` ring this is one native call (no numpy); other rings refuse it."""
        if not self._validate:
            raise InvalidInputError(
                f"append: this ring holds {self._dtype} records; use append_many"
            )
        return self._native.append(auction_id, bidder_id, price, quality, kind, timestamp_ns)

    def append_many(self, records: np.ndarray) -> int:
        """Appends the longest prefix of ``records`` that fits (all of them in broadcast mode)
        and returns its length. A bad bid refuses the whole call; nothing is appended."""
        return int(self._n._append_bytes(_record_bytes(records, self._dtype), self._validate))

    def reader(self, name: str, *, start: str = "oldest", abandon_after: float = 2.0) -> RingReader:
        """Attaches to the persistent cursor ``name``, registering it on first use at
        ``start`` (``"oldest"`` record still in the ring, or ``"latest"``: only new records).

        ``abandon_after`` (seconds): how long a slot reserved by a writer may stay uncommitted
        before this reader declares the writer dead and skips the slot.
        """
        if not isinstance(name, str):
            raise InvalidInputError(f"name: expected a str, got {type(name).__name__}")
        return RingReader(self, self._n.reader(name, start, float(abandon_after)))

    def readers(self) -> dict[str, int]:
        """Registered reader names and their acknowledged cursors."""
        return dict(self._n.readers())

    def remove_reader(self, name: str) -> bool:
        """Unregisters the named cursor so it no longer holds writers back."""
        return bool(self._n.remove_reader(name))

    def wait_for_space(self, n: int = 1, timeout: float = 1.0) -> bool:
        """Sleeps until ``n`` records would fit (or ``timeout`` seconds); True if they do.
        ``n`` above the capacity can never fit and raises
        :class:`rtbcore.errors.InvalidInputError`. Ctrl-C interrupts the wait."""
        return bool(self._n.wait_for_space(_check_count(n, "n"), timeout))

    def check(self) -> None:
        """Raises :class:`rtbcore.errors.RingCorrupt` if the file shrank or was replaced
        while mapped (every other call notices it too, at the latest when it touches a page
        that is gone)."""
        self._n.check()

    def prefault(self) -> bool:
        """Brings the whole file into memory, writable, at once (Linux ``MADV_POPULATE_WRITE``),
        so that appends never stop on a page fault: the first write to a page of a fresh file
        otherwise reads it in, in large zero-filled chunks, which takes milliseconds on a
        virtual machine inside whichever append touched it. It costs the file's size in memory
        (page cache) and, for a large ring, a while; returns False where the kernel cannot do it
        (nothing changes then)."""
        return bool(self._n.prefault())

    def abandon_incomplete(self) -> int:
        """Marks every reserved but uncommitted slot abandoned now, so readers skip it without
        waiting ``abandon_after``. Call only when no writer is alive (e.g. after a restart)."""
        return int(self._n.abandon_incomplete())

    def seal(self) -> None:
        """Ends the stream for every process: later appends raise QueueClosed; readers drain."""
        self._n.close()

    @property
    def sealed(self) -> bool:
        return bool(self._n.closed)

    def close(self) -> None:
        """Releases this handle (the file and other processes' handles are untouched)."""
        self._native = _ClosedHandle()
        self.__dict__.pop("append", None)

    path = _FromNative(str)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def record_type(self) -> str:
        """The record type tag written in the file (``"rtbcore.bid"``, ``"rtbcore.event"``,
        ``"numpy:<descr>"`` for other dtypes)."""
        return str(self._n.record_type)

    capacity = _FromNative(int)
    mode = _FromNative(str)
    tail = _FromNative(int, "Sequence number of the next record (= records ever reserved).")
    oldest = _FromNative(int, "The oldest sequence number still in the ring.")
    abandoned = _FromNative(int, "Slots skipped because their writer died before committing.")
    lost_writes = _FromNative(
        int, "Records a writer reserved but could not commit (declared dead, or lapped)."
    )

    def __repr__(self) -> str:
        if isinstance(self._native, _ClosedHandle):
            return "BidRing(<closed>)"
        return (
            f"BidRing({self.path!r}, capacity={self.capacity}, mode={self.mode!r}, "
            f"tail={self.tail})"
        )


def _ring_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise InvalidInputError(f"dtype: not a numpy dtype: {dtype!r}") from e
    if dt.itemsize == 0 or dt.itemsize % 8 != 0 or dt.hasobject:
        raise InvalidInputError(
            f"dtype: a ring record must be a fixed-size dtype without objects whose size is a "
            f"multiple of 8 bytes, got {dt} ({dt.itemsize} bytes)"
        )
    return dt


def _read_one_of(native: Any) -> Any:
    """``native.read_one`` in a plain function (closure cells, no attribute lookups).

    A signal handler's exception (Ctrl-C) that comes out right after a native call returns is
    raised in the caller's frame, before the caller stores the result: the record the call
    took would be acknowledged by the next read without anyone having seen it. Raised in this
    frame instead, it is caught here and the record handed back (``_unread``), so the next read
    returns it again; once this frame has returned, the result is the caller's.
    """
    read_one = native.read_one
    unread = native._unread

    def read_one_or_hand_back(timeout: float = 0.0) -> BidTuple | None:
        try:
            return read_one(timeout)  # type: ignore[no-any-return]
        except BaseException:
            unread()
            raise

    return read_one_or_hand_back


class RingReader(ContextHandle):
    """One named, persistent cursor on a :class:`BidRing`. Use one reader per consuming
    thread or process.

    :meth:`read` (and :meth:`read_one`) first acknowledges the batch it returned last time,
    then returns the next committed records: at-least-once delivery — a reader that dies
    holding a batch gets it again after it reattaches. Leaving a ``with`` block normally
    acknowledges the last batch.
    """

    def __init__(self, ring: BidRing, native: Any) -> None:
        self._ring = ring
        self._native: Any = native
        self._slots = ring._slots
        self._mask = ring.capacity - 1
        self._dtype = ring.dtype
        self._broadcast = ring.mode == "broadcast"
        if self._dtype == BID_DTYPE:
            # One native call per record inside the thinnest frame that closes the Ctrl-C gap.
            self.read_one = _read_one_of(native)  # type: ignore[method-assign]

    def read(self, max_n: int = 65536, timeout: float = 0.0) -> np.ndarray:
        """Up to ``max_n`` records from the cursor on, oldest first; an empty array when none
        arrive within ``timeout`` seconds.

        Backpressure mode: a read-only zero-copy view of the ring, valid until the next
        :meth:`read` or :meth:`commit` on this reader (copy it to keep it). Broadcast mode: a
        validated copy. One call never wraps past the end of the ring, so it may return fewer
        records than are there. Broadcast mode raises :class:`rtbcore.errors.RingOverrun`
        (``lost``, ``next_seq``) when the reader was lapped; the next read resumes at
        ``next_seq``.

        ``timeout`` is a finite number of seconds >= 0 (NaN, negative or infinite values raise
        InvalidInputError). The wait runs Python's signal handlers every 20 ms: Ctrl-C raises
        ``KeyboardInterrupt`` promptly, and records the read had taken are handed back
        unacknowledged, so the next read returns them.
        """
        max_n = _check_count(max_n, "max_n")
        native = self._native
        # Only the native call is inside the try: an exception there either comes from the
        # call, which then took nothing, or from a signal handler run right after it returned,
        # when nobody has seen the records yet — `_unread` hands those back.
        if self._broadcast:
            out = np.empty(min(max_n, self._mask + 1), self._dtype)
            raw = out.view(np.uint8)
            try:
                _, n = native._read_into(raw, timeout)
            except BaseException:
                native._unread()
                raise
            return out[:n]
        try:
            start, n = native._read(max_n, timeout)
        except BaseException:
            native._unread()
            raise
        slot = start & self._mask
        return self._slots[slot : slot + n]

    def read_one(self, timeout: float = 0.0) -> BidTuple | None:
        """The next record as a plain tuple ``(auction_id, bidder_id, price, quality,
        timestamp_ns, kind)``, or None when none arrives within ``timeout`` seconds (at once
        when the ring is sealed and drained).

        The fast path for consumers that handle one record at a time: one native call that
        builds no numpy array and releases the GIL only when it has to wait (spin, then futex
        sleep, like :meth:`wait`). Cursor semantics are those of ``read(1)``: it first
        acknowledges the batch held from the previous :meth:`read` / :meth:`read_one`, and the
        record it returns is held until the next read, read_one or :meth:`commit` — a reader
        that dies before that gets the record again. Mixing :meth:`read` and read_one on one
        reader is fine. Broadcast mode raises :class:`rtbcore.errors.RingOverrun` when the
        reader was lapped, exactly like :meth:`read`. ``timeout`` and Ctrl-C as in
        :meth:`read`: a record taken when a signal handler raises is handed back. Only
        :data:`BID_DTYPE` rings have it; others raise
        :class:`rtbcore.errors.InvalidInputError` (use :meth:`read`).
        """
        raise InvalidInputError(
            f"read_one: this ring holds {self._dtype} records, not BID_DTYPE bids; use read"
        )

    def commit(self) -> None:
        """Acknowledges the batch returned by the last read."""
        self._native.commit()

    def replay(self, from_seq: int) -> None:
        """Moves the cursor to ``from_seq`` (between ``ring.oldest`` and ``ring.tail``); older
        sequence numbers raise RingOverrun, later ones InvalidInputError."""
        self._native.replay(_check_count(from_seq, "from_seq"))

    def wait(self, timeout: float = 1.0) -> bool:
        """Sleeps (after a brief spin) until records are there; True if they are. Ctrl-C
        interrupts the wait; a ring whose file shrank raises RingCorrupt."""
        return bool(self._native.wait(timeout))

    name = _FromNative(str)
    position = _FromNative(int, "Sequence number the next read starts at.")
    acknowledged = _FromNative(
        int, "The persistent cursor: the first record not acknowledged."
    )

    lag = _FromNative(int, "Records between the reader's position and the ring's tail.")

    def _exit(self, ok: bool) -> None:
        # a block that raised leaves its reads unacknowledged, so they are read again
        if ok:
            self.commit()

    def __repr__(self) -> str:
        return f"RingReader({self.name!r}, position={self.position})"
