"""rtbcore: the hot path of real-time bidding, for exchanges and bidders.

Clearing kernels, the bid queue, the mmap ring and the auction engine are Rust (``_rtbcore``);
per-request strategy kernels are Cython (``rtbcore._fastpath``); this package is the typed API
users import. Import from here, never from an underscore module.
"""

from __future__ import annotations

from rtbcore.errors import (
    InvalidBidError,
    InvalidInputError,
    QueueClosed,
    QueueFull,
    RingCorrupt,
    RingOverrun,
    RtbcoreError,
    RtbcoreOSError,
)

__version__ = "0.1.0"

_errors = [
    "RtbcoreError",
    "InvalidInputError",
    "InvalidBidError",
    "QueueFull",
    "QueueClosed",
    "RingOverrun",
    "RingCorrupt",
    "RtbcoreOSError",
]

# --- clearing (issue: foundation and clearing) -------------------------------------------------
from rtbcore._fastpath import Bid, FirstPriceAuction, SecondPriceAuction  # noqa: E402
from rtbcore._pool import OutputPool, output_pool  # noqa: E402
from rtbcore.clearing import (  # noqa: E402
    AuctionBatch,
    ClearingResult,
    SlotResult,
    clear_first_price,
    clear_gsp,
    clear_second_price,
    clear_vcg,
)

_clearing: list[str] = [
    "AuctionBatch",
    "ClearingResult",
    "SlotResult",
    "clear_first_price",
    "clear_second_price",
    "clear_gsp",
    "clear_vcg",
    "Bid",
    "SecondPriceAuction",
    "FirstPriceAuction",
    "OutputPool",
    "output_pool",
]

# --- streaming: BidQueue, BidRing (issue: queue and ring) --------------------------------------
from rtbcore.streaming import (  # noqa: E402
    BID_DTYPE,
    KIND_CANCEL,
    KIND_PLACE,
    KIND_UPDATE,
    BidQueue,
    BidRing,
    RingReader,
    make_bids,
)

_streaming: list[str] = [
    "BID_DTYPE",
    "KIND_PLACE",
    "KIND_UPDATE",
    "KIND_CANCEL",
    "BidQueue",
    "BidRing",
    "RingReader",
    "make_bids",
]

# --- engine: AuctionEngine, EventLog (issue: engine) -------------------------------------------
from rtbcore.engine import (  # noqa: E402
    CLOSED_BY,
    EVENT_DTYPE,
    EVENT_KINDS,
    REJECTED_DTYPE,
    RESULT_DTYPE,
    AuctionEngine,
    EventLog,
)

_engine: list[str] = [
    "AuctionEngine",
    "EventLog",
    "RESULT_DTYPE",
    "REJECTED_DTYPE",
    "EVENT_DTYPE",
    "EVENT_KINDS",
    "CLOSED_BY",
]

# --- pacing (issue: pacing) -------------------------------------------------------------------
from rtbcore.pacing import (  # noqa: E402
    AdaptivePacer,
    LinearPacer,
    PIDPacer,
    ThrottlingPacer,
    TieredPacer,
    learn_profile,
    value_bid,
)
from rtbcore.pacing_sim import PACERS, PacingSimResult, simulate_pacing  # noqa: E402

_pacing: list[str] = [
    "LinearPacer",
    "TieredPacer",
    "ThrottlingPacer",
    "PIDPacer",
    "AdaptivePacer",
    "value_bid",
    "learn_profile",
    "simulate_pacing",
    "PACERS",
    "PacingSimResult",
]

# --- credit pool and simulate (issue: credit/shading, credit part) ------------------------------
from rtbcore.credit import CreditPool  # noqa: E402
from rtbcore.simulate import CREDIT_PRESETS, CreditSeries, credit_model, credit_preset  # noqa: E402

_credit: list[str] = [
    "CreditPool",
    "CREDIT_PRESETS",
    "CreditSeries",
    "credit_model",
    "credit_preset",
]

# --- bid shading (issue: credit/shading, shading part) ------------------------------------------
from rtbcore.shading import (  # noqa: E402
    BidLandscape,
    BidShader,
    FirstPriceOutcomes,
    ThompsonSampler,
    simulate_first_price,
)

_shading: list[str] = [
    "BidLandscape",
    "BidShader",
    "ThompsonSampler",
    "FirstPriceOutcomes",
    "simulate_first_price",
]

__all__ = [
    "__version__",
    *_errors,
    *_clearing,
    *_streaming,
    *_engine,
    *_pacing,
    *_credit,
    *_shading,
]
