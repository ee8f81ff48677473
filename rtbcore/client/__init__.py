"""The Python client of the exchange protocol (``rtbcore serve``): a :class:`BiddingClient` that
survives the network (reconnection with backoff and jitter, a circuit breaker, replay of missed
events, idempotent requests, ping/pong health, a bounded inbound queue) and an
:class:`AutoBidder` that plugs a :class:`BidStrategy` in, with strategies built on rtbcore's
pacing, shading, credit pool and Thompson sampling.

The protocol classes (``bidding_pb2``) are generated from ``proto/rtbcore/v1/bidding.proto``.
"""

from rtbcore.client._events import (
    EVENT_TYPES,
    BidRejectedError,
    CircuitOpenError,
    ConnectionClosedError,
    Event,
)
from rtbcore.client._resilience import Backoff, CircuitBreaker, Clock, SystemClock
from rtbcore.client._session import BiddingClient, Connection
from rtbcore.client._strategies import (
    AdjustedStrategy,
    AutoBidder,
    BidStrategy,
    CreditGatedStrategy,
    FixedBidStrategy,
    PacedStrategy,
    ShadedStrategy,
    ThompsonCreativeStrategy,
)
from rtbcore.errors import InvalidInputError

__all__ = [
    "EVENT_TYPES",
    "AdjustedStrategy",
    "AutoBidder",
    "Backoff",
    "BidRejectedError",
    "BidStrategy",
    "BiddingClient",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "Connection",
    "ConnectionClosedError",
    "CreditGatedStrategy",
    "Event",
    "FixedBidStrategy",
    "InvalidInputError",
    "PacedStrategy",
    "ShadedStrategy",
    "SystemClock",
    "ThompsonCreativeStrategy",
]
