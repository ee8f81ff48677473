import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuctionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUCTION_TYPE_UNSPECIFIED: _ClassVar[AuctionType]
    FIRST_PRICE: _ClassVar[AuctionType]
    SECOND_PRICE: _ClassVar[AuctionType]

class RejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECT_REASON_UNSPECIFIED: _ClassVar[RejectReason]
    INTERNAL_ERROR: _ClassVar[RejectReason]
    AUCTION_CLOSED: _ClassVar[RejectReason]
    INVALID_BID: _ClassVar[RejectReason]
    UNKNOWN_AUCTION: _ClassVar[RejectReason]
    BELOW_FLOOR: _ClassVar[RejectReason]
    NOT_AUTHENTICATED: _ClassVar[RejectReason]
    FORBIDDEN: _ClassVar[RejectReason]
    MALFORMED: _ClassVar[RejectReason]
    UNKNOWN_MESSAGE: _ClassVar[RejectReason]
    INVALID_AMOUNT: _ClassVar[RejectReason]
    UNKNOWN_BID: _ClassVar[RejectReason]
    RATE_LIMITED: _ClassVar[RejectReason]
    CURRENCY_MISMATCH: _ClassVar[RejectReason]
    ALREADY_BID: _ClassVar[RejectReason]
    INVALID_FIELD: _ClassVar[RejectReason]
    SHUTTING_DOWN: _ClassVar[RejectReason]
    DUPLICATE_AUCTION: _ClassVar[RejectReason]
    TOO_MANY_MESSAGES: _ClassVar[RejectReason]

class BidStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BID_STATUS_UNSPECIFIED: _ClassVar[BidStatus]
    UPDATED: _ClassVar[BidStatus]
    CANCELLED: _ClassVar[BidStatus]
    EXPIRED: _ClassVar[BidStatus]

class ClosedBy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLOSED_BY_UNSPECIFIED: _ClassVar[ClosedBy]
    DEADLINE: _ClassVar[ClosedBy]
    ALL_BIDS: _ClassVar[ClosedBy]
    SHUTDOWN: _ClassVar[ClosedBy]
AUCTION_TYPE_UNSPECIFIED: AuctionType
FIRST_PRICE: AuctionType
SECOND_PRICE: AuctionType
REJECT_REASON_UNSPECIFIED: RejectReason
INTERNAL_ERROR: RejectReason
AUCTION_CLOSED: RejectReason
INVALID_BID: RejectReason
UNKNOWN_AUCTION: RejectReason
BELOW_FLOOR: RejectReason
NOT_AUTHENTICATED: RejectReason
FORBIDDEN: RejectReason
MALFORMED: RejectReason
UNKNOWN_MESSAGE: RejectReason
INVALID_AMOUNT: RejectReason
UNKNOWN_BID: RejectReason
RATE_LIMITED: RejectReason
CURRENCY_MISMATCH: RejectReason
ALREADY_BID: RejectReason
INVALID_FIELD: RejectReason
SHUTTING_DOWN: RejectReason
DUPLICATE_AUCTION: RejectReason
TOO_MANY_MESSAGES: RejectReason
BID_STATUS_UNSPECIFIED: BidStatus
UPDATED: BidStatus
CANCELLED: BidStatus
EXPIRED: BidStatus
CLOSED_BY_UNSPECIFIED: ClosedBy
DEADLINE: ClosedBy
ALL_BIDS: ClosedBy
SHUTDOWN: ClosedBy

class ClientFrame(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[BidMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[BidMessage, _Mapping]]] = ...) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[BidEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[BidEvent, _Mapping]]] = ...) -> None: ...

class BidMessage(_message.Message):
    __slots__ = ("request_id", "auth", "subscribe", "place_bid", "update_bid", "cancel_bid", "ack", "metrics", "open_auction")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    PLACE_BID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_BID_FIELD_NUMBER: _ClassVar[int]
    CANCEL_BID_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    OPEN_AUCTION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    auth: Auth
    subscribe: Subscribe
    place_bid: PlaceBid
    update_bid: UpdateBid
    cancel_bid: CancelBid
    ack: Ack
    metrics: MetricsRequest
    open_auction: OpenAuction
    def __init__(self, request_id: _Optional[str] = ..., auth: _Optional[_Union[Auth, _Mapping]] = ..., subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., place_bid: _Optional[_Union[PlaceBid, _Mapping]] = ..., update_bid: _Optional[_Union[UpdateBid, _Mapping]] = ..., cancel_bid: _Optional[_Union[CancelBid, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., metrics: _Optional[_Union[MetricsRequest, _Mapping]] = ..., open_auction: _Optional[_Union[OpenAuction, _Mapping]] = ...) -> None: ...

class Auth(_message.Message):
    __slots__ = ("api_key", "token")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    token: str
    def __init__(self, api_key: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("event_types", "filters", "replay_missed", "since_seq", "since_time")
    class FiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    REPLAY_MISSED_FIELD_NUMBER: _ClassVar[int]
    SINCE_SEQ_FIELD_NUMBER: _ClassVar[int]
    SINCE_TIME_FIELD_NUMBER: _ClassVar[int]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    filters: _containers.ScalarMap[str, str]
    replay_missed: bool
    since_seq: int
    since_time: _timestamp_pb2.Timestamp
    def __init__(self, event_types: _Optional[_Iterable[str]] = ..., filters: _Optional[_Mapping[str, str]] = ..., replay_missed: _Optional[bool] = ..., since_seq: _Optional[int] = ..., since_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PlaceBid(_message.Message):
    __slots__ = ("auction_id", "amount", "criteria", "ttl", "buyer_id")
    class CriteriaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CRITERIA_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    amount: Money
    criteria: _containers.MessageMap[str, _struct_pb2.Value]
    ttl: _duration_pb2.Duration
    buyer_id: str
    def __init__(self, auction_id: _Optional[str] = ..., amount: _Optional[_Union[Money, _Mapping]] = ..., criteria: _Optional[_Mapping[str, _struct_pb2.Value]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., buyer_id: _Optional[str] = ...) -> None: ...

class UpdateBid(_message.Message):
    __slots__ = ("bid_id", "amount", "ttl")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    amount: Money
    ttl: _duration_pb2.Duration
    def __init__(self, bid_id: _Optional[str] = ..., amount: _Optional[_Union[Money, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CancelBid(_message.Message):
    __slots__ = ("bid_id",)
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    def __init__(self, bid_id: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class MetricsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OpenAuction(_message.Message):
    __slots__ = ("auction_id", "attributes", "floor", "tmax", "expected_bids")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    TMAX_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_BIDS_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    attributes: _containers.ScalarMap[str, str]
    floor: Money
    tmax: _duration_pb2.Duration
    expected_bids: int
    def __init__(self, auction_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., floor: _Optional[_Union[Money, _Mapping]] = ..., tmax: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., expected_bids: _Optional[int] = ...) -> None: ...

class BidEvent(_message.Message):
    __slots__ = ("event_id", "seq", "timestamp", "request_id", "auth_result", "subscription_ack", "auction_started", "bid_accepted", "bid_rejected", "auction_won", "auction_lost", "bid_update", "metrics_update", "auction_opened", "auction_closed", "error")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_RESULT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ACK_FIELD_NUMBER: _ClassVar[int]
    AUCTION_STARTED_FIELD_NUMBER: _ClassVar[int]
    BID_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    BID_REJECTED_FIELD_NUMBER: _ClassVar[int]
    AUCTION_WON_FIELD_NUMBER: _ClassVar[int]
    AUCTION_LOST_FIELD_NUMBER: _ClassVar[int]
    BID_UPDATE_FIELD_NUMBER: _ClassVar[int]
    METRICS_UPDATE_FIELD_NUMBER: _ClassVar[int]
    AUCTION_OPENED_FIELD_NUMBER: _ClassVar[int]
    AUCTION_CLOSED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    seq: int
    timestamp: _timestamp_pb2.Timestamp
    request_id: str
    auth_result: AuthResult
    subscription_ack: SubscriptionAck
    auction_started: AuctionStarted
    bid_accepted: BidAccepted
    bid_rejected: BidRejected
    auction_won: AuctionWon
    auction_lost: AuctionLost
    bid_update: BidUpdate
    metrics_update: MetricsUpdate
    auction_opened: AuctionOpened
    auction_closed: AuctionClosed
    error: Error
    def __init__(self, event_id: _Optional[str] = ..., seq: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., auth_result: _Optional[_Union[AuthResult, _Mapping]] = ..., subscription_ack: _Optional[_Union[SubscriptionAck, _Mapping]] = ..., auction_started: _Optional[_Union[AuctionStarted, _Mapping]] = ..., bid_accepted: _Optional[_Union[BidAccepted, _Mapping]] = ..., bid_rejected: _Optional[_Union[BidRejected, _Mapping]] = ..., auction_won: _Optional[_Union[AuctionWon, _Mapping]] = ..., auction_lost: _Optional[_Union[AuctionLost, _Mapping]] = ..., bid_update: _Optional[_Union[BidUpdate, _Mapping]] = ..., metrics_update: _Optional[_Union[MetricsUpdate, _Mapping]] = ..., auction_opened: _Optional[_Union[AuctionOpened, _Mapping]] = ..., auction_closed: _Optional[_Union[AuctionClosed, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class AuthResult(_message.Message):
    __slots__ = ("ok", "buyer_id", "scopes", "last_seq", "acked_seq", "heartbeat_interval", "heartbeat_timeout", "message")
    OK_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    ACKED_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    buyer_id: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    last_seq: int
    acked_seq: int
    heartbeat_interval: _duration_pb2.Duration
    heartbeat_timeout: _duration_pb2.Duration
    message: str
    def __init__(self, ok: _Optional[bool] = ..., buyer_id: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., last_seq: _Optional[int] = ..., acked_seq: _Optional[int] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., heartbeat_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class SubscriptionAck(_message.Message):
    __slots__ = ("event_types", "filters", "replay_from", "replay_to", "truncated")
    class FiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FROM_FIELD_NUMBER: _ClassVar[int]
    REPLAY_TO_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    filters: _containers.ScalarMap[str, str]
    replay_from: int
    replay_to: int
    truncated: bool
    def __init__(self, event_types: _Optional[_Iterable[str]] = ..., filters: _Optional[_Mapping[str, str]] = ..., replay_from: _Optional[int] = ..., replay_to: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class AuctionStarted(_message.Message):
    __slots__ = ("auction_id", "attributes", "floor", "deadline", "expected_bids", "auction_type")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_BIDS_FIELD_NUMBER: _ClassVar[int]
    AUCTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    attributes: _containers.ScalarMap[str, str]
    floor: Money
    deadline: _timestamp_pb2.Timestamp
    expected_bids: int
    auction_type: AuctionType
    def __init__(self, auction_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., floor: _Optional[_Union[Money, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expected_bids: _Optional[int] = ..., auction_type: _Optional[_Union[AuctionType, str]] = ...) -> None: ...

class BidAccepted(_message.Message):
    __slots__ = ("bid_id", "auction_id", "amount")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    auction_id: str
    amount: Money
    def __init__(self, bid_id: _Optional[str] = ..., auction_id: _Optional[str] = ..., amount: _Optional[_Union[Money, _Mapping]] = ...) -> None: ...

class BidRejected(_message.Message):
    __slots__ = ("reason", "message", "auction_id", "bid_id")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    reason: RejectReason
    message: str
    auction_id: str
    bid_id: str
    def __init__(self, reason: _Optional[_Union[RejectReason, str]] = ..., message: _Optional[str] = ..., auction_id: _Optional[str] = ..., bid_id: _Optional[str] = ...) -> None: ...

class AuctionWon(_message.Message):
    __slots__ = ("auction_id", "bid_id", "price", "min_to_win", "slot")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    MIN_TO_WIN_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    bid_id: str
    price: Money
    min_to_win: Money
    slot: int
    def __init__(self, auction_id: _Optional[str] = ..., bid_id: _Optional[str] = ..., price: _Optional[_Union[Money, _Mapping]] = ..., min_to_win: _Optional[_Union[Money, _Mapping]] = ..., slot: _Optional[int] = ...) -> None: ...

class AuctionLost(_message.Message):
    __slots__ = ("auction_id", "bid_id", "loss_reason", "min_to_win")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    LOSS_REASON_FIELD_NUMBER: _ClassVar[int]
    MIN_TO_WIN_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    bid_id: str
    loss_reason: int
    min_to_win: Money
    def __init__(self, auction_id: _Optional[str] = ..., bid_id: _Optional[str] = ..., loss_reason: _Optional[int] = ..., min_to_win: _Optional[_Union[Money, _Mapping]] = ...) -> None: ...

class BidUpdate(_message.Message):
    __slots__ = ("bid_id", "auction_id", "status", "amount")
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    bid_id: str
    auction_id: str
    status: BidStatus
    amount: Money
    def __init__(self, bid_id: _Optional[str] = ..., auction_id: _Optional[str] = ..., status: _Optional[_Union[BidStatus, str]] = ..., amount: _Optional[_Union[Money, _Mapping]] = ...) -> None: ...

class MetricsUpdate(_message.Message):
    __slots__ = ("metrics",)
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class AuctionOpened(_message.Message):
    __slots__ = ("auction_id", "deadline")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    deadline: _timestamp_pb2.Timestamp
    def __init__(self, auction_id: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Winner(_message.Message):
    __slots__ = ("buyer_id", "bid_id", "price", "slot")
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    BID_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    buyer_id: str
    bid_id: str
    price: Money
    slot: int
    def __init__(self, buyer_id: _Optional[str] = ..., bid_id: _Optional[str] = ..., price: _Optional[_Union[Money, _Mapping]] = ..., slot: _Optional[int] = ...) -> None: ...

class AuctionClosed(_message.Message):
    __slots__ = ("auction_id", "winners", "n_bids", "closed_by")
    AUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    WINNERS_FIELD_NUMBER: _ClassVar[int]
    N_BIDS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    auction_id: str
    winners: _containers.RepeatedCompositeFieldContainer[Winner]
    n_bids: int
    closed_by: ClosedBy
    def __init__(self, auction_id: _Optional[str] = ..., winners: _Optional[_Iterable[_Union[Winner, _Mapping]]] = ..., n_bids: _Optional[int] = ..., closed_by: _Optional[_Union[ClosedBy, str]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: RejectReason
    message: str
    def __init__(self, reason: _Optional[_Union[RejectReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class Money(_message.Message):
    __slots__ = ("currency", "micros")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MICROS_FIELD_NUMBER: _ClassVar[int]
    currency: str
    micros: int
    def __init__(self, currency: _Optional[str] = ..., micros: _Optional[int] = ...) -> None: ...
