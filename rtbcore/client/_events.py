"""Events of the exchange protocol as users see them, and the checks run on requests before
anything is sent."""

from __future__ import annotations

import math
from collections.abc import Mapping

import _rtbcore

from rtbcore.errors import InvalidInputError, RtbcoreError

#: Event types a subscription may name (``Subscribe.event_types``).
EVENT_TYPES: tuple[str, ...] = (
    "auction_started", "bid_accepted", "bid_rejected", "auction_won", "auction_lost",
    "bid_update", "auction_closed",
)

MAX_ID_BYTES = 64
MAX_MICROS = 10**12
_MICROS = 1_000_000


class ConnectionClosedError(RtbcoreError, ConnectionError):
    """The client's connection is gone for good: closed by the user, authentication refused, or
    reconnection turned off. ``code`` is the WebSocket close code when there was one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class CircuitOpenError(RtbcoreError, ConnectionError):
    """A request made while the circuit breaker is open (the exchange is failing): refused at
    once instead of queued."""


class BidRejectedError(RtbcoreError):
    """The exchange refused a request; ``event`` is the ``BidRejected`` event, ``reason`` its
    code name (``"BELOW_FLOOR"``, ``"ALREADY_BID"``...)."""

    def __init__(self, event: Event) -> None:
        super().__init__(f"{event.reason}: {event.message}")
        self.event = event
        self.reason = event.reason
        self.code = event.reason_code


#: One server event (``BidEvent``), native: it holds the event's encoding and reads a field
#: when it is used, so that an event costs little until the user touches it. ``type`` is the
#: event type (``"auction_started"``, ``"auction_won"``...; ``"auth_result"``,
#: ``"subscription_ack"``, ``"metrics_update"``, ``"auction_opened"``, ``"error"`` outside the
#: stream), ``seq`` its position in the buyer's stream (0 outside it). Money fields are in
#: currency units (``amount``, ``price``, ``floor``, ``min_to_win``) and exact integer micros
#: (``amount_micros``...). ``call_id`` is ``auction_id``. Fields an event type does not carry
#: read as their empty value. ``raw`` is the protobuf message; ``Event(raw)`` wraps one.
Event = _rtbcore.Event


# ---- request checks: bad input is refused here, before anything is sent ----


def check_id(what: str, v: object) -> str:
    if not isinstance(v, str) or not v:
        raise InvalidInputError(f"{what} must be a non-empty string, got {v!r}")
    if len(v.encode()) > MAX_ID_BYTES:
        raise InvalidInputError(
            f"{what} must be at most {MAX_ID_BYTES} bytes, got {len(v.encode())}")
    if not v.isascii() or not v.isprintable():
        raise InvalidInputError(f"{what} must be printable ASCII, got {v!r}")
    return v


def to_micros(what: str, amount: object, amount_micros: object = None) -> int:
    """An amount in currency units (2.5) or integer micros -> micros, checked: finite, > 0, at
    most the protocol's maximum."""
    if amount_micros is not None:
        if isinstance(amount_micros, bool) or not isinstance(amount_micros, int):
            raise InvalidInputError(f"{what}_micros must be an int, got {amount_micros!r}")
        micros = amount_micros
        shown: object = amount_micros
    else:
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise InvalidInputError(f"{what} must be a number, got {amount!r}")
        if not math.isfinite(amount):
            raise InvalidInputError(f"{what} must be finite, got {amount!r}")
        micros = round(amount * _MICROS)
        shown = amount
    if micros <= 0:
        raise InvalidInputError(f"{what} must be > 0, got {shown!r}")
    if micros > MAX_MICROS:
        raise InvalidInputError(f"{what} must be at most {MAX_MICROS // _MICROS}, got {shown!r}")
    return micros


def check_event_types(what: str, types: object) -> list[str]:
    if isinstance(types, str) or not isinstance(types, (list, tuple, set, frozenset)):
        raise InvalidInputError(f"{what} must be a list of event types, got {types!r}")
    out = []
    for i, t in enumerate(types):
        if t not in EVENT_TYPES:
            raise InvalidInputError(
                f"{what}[{i}] {t!r} is not an event type (one of {', '.join(EVENT_TYPES)})")
        out.append(t)
    return out


def check_filters(what: str, filters: object) -> dict[str, str]:
    if not isinstance(filters, Mapping):
        raise InvalidInputError(f"{what} must be a mapping, got {type(filters).__name__}")
    out = {}
    for k, v in filters.items():
        if not isinstance(k, str) or not k:
            raise InvalidInputError(f"{what}: keys must be non-empty strings, got {k!r}")
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise InvalidInputError(f"{what}[{k!r}] must be a string or a number, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise InvalidInputError(f"{what}[{k!r}] must be finite, got {v!r}")
        if (k.startswith("min_") or k.startswith("max_")) and not isinstance(v, (int, float)):
            try:
                float(v)
            except ValueError:
                raise InvalidInputError(f"{what}[{k!r}] is a numeric bound: got {v!r}") from None
        out[k] = str(v)
    return out


def check_seconds(what: str, s: object) -> float:
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
        raise InvalidInputError(f"{what} must be a positive number of seconds, got {s!r}")
    return float(s)
