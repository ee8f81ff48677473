"""The fixed-size records rtbcore moves between threads, processes and the engine: the bid
record (:data:`BID_DTYPE`, mirrored by the Rust ``BidRecord``), the bid kinds, the engine's result,
rejected-bid and event rows, and :func:`make_bids` to build bid blocks from columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtbcore.errors import InvalidInputError

__all__ = [
    "BID_DTYPE",
    "BidTuple",
    "KIND_PLACE",
    "KIND_UPDATE",
    "KIND_CANCEL",
    "KIND_DECLINE",
    "make_bids",
    "RESULT_DTYPE",
    "REJECTED_DTYPE",
    "OUTCOME_DTYPE",
    "OUTCOME_NO_SLOT",
    "LOSS_WON",
    "LOSS_EXPIRED",
    "LOSS_INVALID",
    "LOSS_BELOW_FLOOR",
    "LOSS_OUTBID",
    "EVENT_DTYPE",
    "EVENT_KINDS",
    "EVENT_NO_BIDDER",
    "NO_BIDDER",
    "EVENT_NO_SLOT",
    "EVENT_NOT_CLOSED",
    "CLOSED_BY",
    "CLOSED_BY_DEADLINE",
    "CLOSED_BY_ALL_BIDS",
    "CLOSED_BY_SHUTDOWN",
    "REJECT_LATE",
    "REJECT_UNKNOWN",
]

#: The 48-byte bid record, field for field the ``repr(C)`` ``BidRecord`` of
#: ``rust/core/src/record.rs``: auction_id u8, bidder_id u8, price f8, quality f8,
#: timestamp_ns u8, kind u1, 7 bytes of padding.
BID_DTYPE = np.dtype(
    {
        "names": ["auction_id", "bidder_id", "price", "quality", "timestamp_ns", "kind"],
        "formats": ["<u8", "<u8", "<f8", "<f8", "<u8", "u1"],
        "offsets": [0, 8, 16, 24, 32, 40],
        "itemsize": 48,
        "aligned": True,
    }
)
assert BID_DTYPE.itemsize == 48 and BID_DTYPE.alignment == 8

#: One bid as :meth:`RingReader.read_one` returns it, in :data:`BID_DTYPE` field order:
#: ``(auction_id, bidder_id, price, quality, timestamp_ns, kind)``.
BidTuple = tuple[int, int, float, float, int, int]

#: A new bid.
KIND_PLACE = 0
#: A bidder's new bid replaces its earlier one in the same auction.
KIND_UPDATE = 1
#: A bidder withdraws its bid.
KIND_CANCEL = 2
#: A bidder's explicit no-bid: it counts toward the auction's expected bids (and withdraws a
#: bid it had placed); its price and quality are not read.
KIND_DECLINE = 3


def make_bids(
    auction_id: Any,
    bidder_id: Any,
    price: Any,
    quality: Any = 1.0,
    kind: Any = KIND_PLACE,
    timestamp_ns: Any = 0,
) -> np.ndarray:
    """A :data:`BID_DTYPE` array from columns (arrays or scalars, broadcast together).

    Values are not validated here; the queue and the ring validate what they are given.
    """
    cols = np.broadcast_arrays(
        np.asarray(auction_id), np.asarray(bidder_id), np.asarray(price),
        np.asarray(quality), np.asarray(kind), np.asarray(timestamp_ns),
    )
    if cols[0].ndim > 1:
        raise InvalidInputError(f"make_bids: columns must be 1-D, got shape {cols[0].shape}")
    out = np.zeros(cols[0].shape, BID_DTYPE)
    names = ("auction_id", "bidder_id", "price", "quality", "kind", "timestamp_ns")
    for name, col in zip(names, cols, strict=True):
        out[name] = col
    return np.atleast_1d(out)



#: ``closed_by`` codes of a result row.
CLOSED_BY_DEADLINE = 0
CLOSED_BY_ALL_BIDS = 1
CLOSED_BY_SHUTDOWN = 2
#: ``closed_by`` code -> name.
CLOSED_BY = ("deadline", "all_bids", "shutdown")

#: ``cause`` codes of a rejected bid (both are OpenRTB loss reason 2, expired).
REJECT_LATE = 1
REJECT_UNKNOWN = 2


#: ``winner_bidder`` of a result row without a sale (or an empty slot), and ``bidder_id`` of an
#: event about no bidder: no valid id (ids are at most 2**63-1). Ids are ``uint64`` in every
#: record: bids, events, results, rejected bids and outcomes.
NO_BIDDER = 2**64 - 1

#: One row per auction (per slot for GSP / VCG), mirroring the Rust ``AuctionResult``;
#: ``winner_bidder`` is :data:`NO_BIDDER` when nothing sold.
RESULT_DTYPE = np.dtype(
    {
        "names": [
            "auction_id",
            "winner_bidder",
            "price",
            "min_to_win",
            "open_to_close_ns",
            "last_bid_to_result_ns",
            "n_bids",
            "slot",
            "closed_by",
        ],
        "formats": ["<u8", "<u8", "<f8", "<f8", "<i8", "<i8", "<u4", "<u2", "u1"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 52, 54],
        "itemsize": 56,
    }
)

#: A bid the engine did not apply, mirroring the Rust ``RejectedBid``.
REJECTED_DTYPE = np.dtype(
    {
        "names": [
            "auction_id", "bidder_id", "price", "timestamp_ns", "loss_reason", "cause", "kind",
        ],
        "formats": ["<u8", "<u8", "<f8", "<u8", "<i4", "u1", "u1"],
        "offsets": [0, 8, 16, 24, 32, 36, 37],
        "itemsize": 40,
    }
)

#: OpenRTB loss reasons used by the engine's outcome, rejected-bid and event rows (and by the
#: clearing functions' ``loss_reason``): the bid won.
LOSS_WON = 0
#: Impression opportunity expired: a bid for an auction that had closed or was unknown.
LOSS_EXPIRED = 2
#: Invalid bid (never in the engine's rows: the engine refuses invalid bids at submit).
LOSS_INVALID = 3
#: Bid below the auction's floor (reserve), a zero price included.
LOSS_BELOW_FLOOR = 100
#: Lost to a higher (adjusted) bid.
LOSS_OUTBID = 102

#: One row per live bid of a cleared auction (``AuctionEngine(outcomes=True)``,
#: :meth:`AuctionEngine.poll_outcomes`), mirroring the Rust ``BidOutcome`` (48 bytes):
#: ``price`` is the bid, ``price_paid`` what it pays when it won (per unit of the slot factor
#: for GSP / VCG; NaN when it lost), ``min_to_win`` the lowest price that would have won,
#: ``loss_reason`` one of the ``LOSS_*`` codes, ``slot`` the slot won (0 for single-slot
#: mechanisms; :data:`OUTCOME_NO_SLOT` when lost), ``won`` 1 or 0, ``closed_by`` as in
#: :data:`RESULT_DTYPE`. Prices are per impression, in the unit of the bids.
OUTCOME_DTYPE = np.dtype(
    {
        "names": [
            "auction_id", "bidder_id", "price", "price_paid", "min_to_win", "loss_reason",
            "slot", "won", "closed_by",
        ],
        "formats": ["<u8", "<u8", "<f8", "<f8", "<f8", "<i4", "<u2", "u1", "u1"],
        "offsets": [0, 8, 16, 24, 32, 40, 44, 46, 47],
        "itemsize": 48,
    }
)
#: ``slot`` of an outcome row whose bid won no slot.
OUTCOME_NO_SLOT = 0xFFFF

#: Event-log record kinds -> names (see :class:`EventLog`).
EVENT_KINDS = {
    16: "AuctionStarted",
    17: "BidPlaced",
    18: "BidUpdated",
    19: "BidCancelled",
    20: "AuctionWon",
    21: "AuctionLost",
    22: "BidDeclined",
}

#: One event of the log (88 bytes), mirroring the Rust ``EventRecord``. Every field has one
#: meaning whatever the ``kind``; a field that does not apply holds "none": NaN (floats),
#: 0 (``tmax_ns``, ``expected_bids``), -1 (``loss_reason``), or the all-ones value
#: (``bidder_id`` 2**64-1, ``slot`` 65535, ``closed_by`` 255). See :class:`rtbcore.EventLog`.
EVENT_DTYPE = np.dtype(
    {
        "names": [
            "auction_id", "bidder_id", "timestamp_ns", "price", "quality", "clearing_price",
            "min_to_win", "reserve", "tmax_ns", "expected_bids", "loss_reason", "slot", "kind",
            "closed_by",
        ],
        "formats": [
            "<u8", "<u8", "<u8", "<f8", "<f8", "<f8", "<f8", "<f8", "<u8", "<u4", "<i4", "<u2",
            "u1", "u1",
        ],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 76, 80, 82, 83],
        "itemsize": 88,
    }
)
#: ``bidder_id`` of an event about no bidder (the same value as :data:`NO_BIDDER`).
EVENT_NO_BIDDER = NO_BIDDER
#: ``slot`` of an event about no slot.
EVENT_NO_SLOT = 0xFFFF
#: ``closed_by`` of an event that is not an outcome.
EVENT_NOT_CLOSED = 0xFF
