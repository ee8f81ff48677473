"""The exception classes of rtbcore, defined once here and raised by Python, Cython and Rust alike.

Each subclasses the stdlib class whose meaning fits, so callers can catch either.
"""

from __future__ import annotations

__all__ = [
    "RtbcoreError",
    "InvalidInputError",
    "InvalidBidError",
    "QueueFull",
    "QueueClosed",
    "RingOverrun",
    "RingCorrupt",
    "RtbcoreOSError",
    "StoreUnavailable",
    "StateError",
]


class RtbcoreError(Exception):
    """Base class of every error rtbcore raises on purpose."""


class InvalidInputError(RtbcoreError, ValueError):
    """An argument had a bad value, shape or dtype; the message names it and where."""


class InvalidBidError(InvalidInputError):
    """A bid failed validation; the message names the field and the bid index."""


class QueueFull(RtbcoreError, BufferError):
    """No room for the record; the caller still holds it."""


class QueueClosed(RtbcoreError, RuntimeError):
    """The queue, ring or engine was closed and takes no more input."""


class RingOverrun(RtbcoreError, LookupError):
    """A reader was lapped by a broadcast writer.

    ``args`` is ``(message, lost, next_seq)``: how many records were lost and the oldest
    sequence number still available.
    """

    @property
    def lost(self) -> int:
        return int(self.args[1]) if len(self.args) > 1 else 0

    @property
    def next_seq(self) -> int:
        return int(self.args[2]) if len(self.args) > 2 else 0


class RingCorrupt(RtbcoreError, ValueError):
    """A ring file is not an rtbcore ring, is truncated, or its header is inconsistent."""


class RtbcoreOSError(RtbcoreError, OSError):
    """An operating-system call failed (open, mmap, futex); the message says which and why."""


class StoreUnavailable(RtbcoreError, ConnectionError):
    """The shared store (Redis) of :mod:`rtbcore.distributed` could not be reached or refused
    the call; the message says which server and why."""


class StateError(InvalidInputError):
    """A saved state is of another class, from an incompatible version, or inconsistent."""
