"""Events of the exchange protocol as users see them, and the checks run on requests before
anything is sent."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rtbcore.client import bidding_pb2 as pb
from rtbcore.errors import InvalidInputError, RtbcoreError

#: Event types a subscription may name (``Subscribe.event_types``).
EVENT_TYPES: tuple[str, ...] = (
    "auction_started", "bid_accepted", "bid_rejected", "auction_won", "auction_lost",
    "bid_update", "auction_closed",
)

MAX_ID_BYTES = 64
MAX_MICROS = 10**12
_MICROS = 1_000_000

_REASON_NAMES = {v.number: v.name for v in pb.DESCRIPTOR.enum_types_by_name["RejectReason"].values}
_STATUS_NAMES = {v.number: v.name for v in pb.DESCRIPTOR.enum_types_by_name["BidStatus"].values}


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


class Event:
    """One server event (``BidEvent``), decoded lazily from the protobuf message ``raw``.

    ``type`` is the event type (``"auction_started"``, ``"auction_won"``...; ``"auth_result"``,
    ``"subscription_ack"``, ``"metrics_update"``, ``"auction_opened"``, ``"error"`` outside the
    stream), ``seq`` its position in the buyer's stream (0 outside it). Money fields are in
    currency units (``amount``, ``price``, ``floor``, ``min_to_win``) and exact integer micros
    (``amount_micros``...). ``call_id`` is ``auction_id``. Fields an event type does not carry
    read as their empty value.
    """

    __slots__ = ("type", "seq", "raw", "_auction_id")

    def __init__(self, raw: Any) -> None:
        kind = raw.WhichOneof("event")
        self.raw = raw
        self.type: str = kind or "unknown"
        self.seq: int = raw.seq
        self._auction_id: str | None = None  # read once, on first use

    @property
    def _body(self) -> Any:
        """The event's own message (``raw.<type>``), read when a field is; None if unknown."""
        t = self.type
        return None if t == "unknown" else getattr(self.raw, t)

    def __repr__(self) -> str:
        return f"Event(type={self.type!r}, seq={self.seq}, auction_id={self.auction_id!r})"

    def _get(self, name: str, default: Any = "") -> Any:
        b = self._body
        if b is None:
            return default
        try:
            return getattr(b, name)
        except AttributeError:
            return default

    def _sub(self, name: str) -> Any:
        """The event's sub-message field ``name`` when this event type has it and it is set."""
        b = self._body
        if b is None or name not in b.DESCRIPTOR.fields_by_name or not b.HasField(name):
            return None
        return getattr(b, name)

    def _money(self, name: str) -> int:
        m = self._sub(name)
        return 0 if m is None else int(m.micros)

    @property
    def event_id(self) -> str:
        return str(self.raw.event_id)

    @property
    def request_id(self) -> str:
        return str(self.raw.request_id)

    @property
    def timestamp(self) -> float:
        """Seconds since the Unix epoch (0.0 when absent)."""
        t = self.raw.timestamp
        return t.seconds + t.nanos / 1e9

    @property
    def auction_id(self) -> str:
        a = self._auction_id
        if a is None:
            a = self._auction_id = str(self._get("auction_id"))
        return a

    call_id = auction_id

    @property
    def bid_id(self) -> str:
        return str(self._get("bid_id"))

    @property
    def attributes(self) -> dict[str, str]:
        a = self._get("attributes", None)
        return dict(a) if a is not None else {}

    @property
    def competition_level(self) -> float:
        """The announcement's ``competition_level`` attribute as a number; 0.0 when absent or
        not a number."""
        a = self._get("attributes", None)
        if a is None or "competition_level" not in a:
            return 0.0
        try:
            v = float(a["competition_level"])
        except ValueError:
            return 0.0
        return v if math.isfinite(v) else 0.0

    @property
    def expected_bids(self) -> int:
        return int(self._get("expected_bids", 0))

    @property
    def deadline(self) -> float:
        """The auction's deadline in seconds since the Unix epoch (0.0 when absent)."""
        d = self._sub("deadline")
        return 0.0 if d is None else d.seconds + d.nanos / 1e9

    @property
    def amount_micros(self) -> int:
        return self._money("amount")

    @property
    def amount(self) -> float:
        return self._money("amount") / _MICROS

    @property
    def price_micros(self) -> int:
        return self._money("price")

    @property
    def price(self) -> float:
        return self._money("price") / _MICROS

    @property
    def floor_micros(self) -> int:
        return self._money("floor")

    @property
    def floor(self) -> float:
        return self._money("floor") / _MICROS

    @property
    def min_to_win_micros(self) -> int:
        return self._money("min_to_win")

    @property
    def min_to_win(self) -> float:
        return self._money("min_to_win") / _MICROS

    @property
    def reason_code(self) -> int:
        """The ``RejectReason`` number of a ``bid_rejected`` or ``error`` event (0 otherwise)."""
        return int(self._get("reason", 0)) if self.type in ("bid_rejected", "error") else 0

    @property
    def reason(self) -> str:
        """The ``RejectReason`` name of a ``bid_rejected`` or ``error`` event ("" otherwise)."""
        code = self.reason_code
        return _REASON_NAMES.get(code, str(code)) if code else ""

    @property
    def message(self) -> str:
        return str(self._get("message"))

    @property
    def loss_reason(self) -> int:
        """OpenRTB loss reason of an ``auction_lost`` event (102 outbid, 2 expired)."""
        return int(self._get("loss_reason", 0)) if self.type == "auction_lost" else 0

    @property
    def status(self) -> str:
        """``UPDATED``, ``CANCELLED`` or ``EXPIRED`` for a ``bid_update`` event."""
        if self.type != "bid_update":
            return ""
        return _STATUS_NAMES.get(int(self._get("status", 0)), "")

    @property
    def ok(self) -> bool:
        return bool(self._get("ok", False))

    @property
    def metrics(self) -> dict[str, float]:
        m = self._get("metrics", None)
        return dict(m) if m is not None and self.type == "metrics_update" else {}


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
