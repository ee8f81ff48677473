"""rtbcore: the hot path of real-time bidding, for exchanges and bidders.

Clearing kernels, the bid queue, the mmap ring and the auction engine are Rust (``_rtbcore``);
per-request strategy kernels are Cython (``rtbcore._fastpath``); this package is the typed API
users import. Import from here, never from an underscore module.

The public submodules are :mod:`~rtbcore.errors`, :mod:`~rtbcore.records`,
:mod:`~rtbcore.clearing`, :mod:`~rtbcore.streaming`, :mod:`~rtbcore.engine`,
:mod:`~rtbcore.pacing`, :mod:`~rtbcore.periods`, :mod:`~rtbcore.budget`, :mod:`~rtbcore.credit`,
:mod:`~rtbcore.shading`, :mod:`~rtbcore.thompson`, :mod:`~rtbcore.ids`, :mod:`~rtbcore.floors`,
:mod:`~rtbcore.dynamic`, :mod:`~rtbcore.adjust`, the simulations in :mod:`~rtbcore.sim` and the
state shared through Redis in :mod:`~rtbcore.distributed` (not imported by ``import rtbcore``: it
needs the ``redis`` extra). The ``rtbcore`` command lives in ``rtbcore.cli``.
"""

from rtbcore import errors
from rtbcore._fastpath import Bid, FirstPriceAuction, SecondPriceAuction
from rtbcore._pool import OutputPool, output_pool
from rtbcore.adjust import BidAdjuster
from rtbcore.budget import DailyBudget, cap_bid, worst_case_cost
from rtbcore.clearing import (
    AuctionBatch,
    ClearingResult,
    SlotResult,
    clear_first_price,
    clear_gsp,
    clear_second_price,
    clear_vcg,
)
from rtbcore.credit import CreditPool
from rtbcore.dynamic import DynamicAuction, DynamicResult
from rtbcore.engine import AuctionEngine, EventLog
from rtbcore.errors import *  # noqa: F403  (the exception classes, errors.__all__)
from rtbcore.exchange import AuctionResult, Exchange, OpenedAuction
from rtbcore.floors import AuctionLog, FloorOptimizer, ReplayResult, myerson_reserve, replay
from rtbcore.ids import IdMap
from rtbcore.pacing import (
    AdaptivePacer,
    LinearPacer,
    PIDPacer,
    ThrottlingPacer,
    TieredPacer,
    learn_profile,
    value_bid,
)
from rtbcore.periods import DayCalendar, Period
from rtbcore.records import (
    BID_DTYPE,
    CLOSED_BY,
    EVENT_DTYPE,
    EVENT_KINDS,
    KIND_CANCEL,
    KIND_DECLINE,
    KIND_PLACE,
    KIND_UPDATE,
    NO_BIDDER,
    OUTCOME_DTYPE,
    REJECTED_DTYPE,
    RESULT_DTYPE,
    make_bids,
)
from rtbcore.shading import BidLandscape, BidShader, ThompsonSampler
from rtbcore.sim.credit import CREDIT_PRESETS, CreditSeries, credit_model, credit_preset
from rtbcore.sim.pacing import PACERS, PacingSimResult, simulate_pacing
from rtbcore.sim.shading import FirstPriceOutcomes, simulate_first_price
from rtbcore.streaming import BidQueue, BidRing, RingReader

__version__ = "0.1.0"

__all__ = [
    "__version__",
    *errors.__all__,
    # the exchange server
    "Exchange",
    "AuctionResult",
    "OpenedAuction",
    # clearing
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
    # records and streaming
    "BID_DTYPE",
    "KIND_PLACE",
    "KIND_UPDATE",
    "KIND_CANCEL",
    "KIND_DECLINE",
    "BidQueue",
    "BidRing",
    "RingReader",
    "make_bids",
    # engine
    "AuctionEngine",
    "EventLog",
    "RESULT_DTYPE",
    "NO_BIDDER",
    "REJECTED_DTYPE",
    "OUTCOME_DTYPE",
    "EVENT_DTYPE",
    "EVENT_KINDS",
    "CLOSED_BY",
    "IdMap",
    # pacing
    "LinearPacer",
    "TieredPacer",
    "ThrottlingPacer",
    "PIDPacer",
    "AdaptivePacer",
    "value_bid",
    "learn_profile",
    "DayCalendar",
    "Period",
    "DailyBudget",
    "cap_bid",
    "worst_case_cost",
    "simulate_pacing",
    "PACERS",
    "PacingSimResult",
    # credit
    "CreditPool",
    "CREDIT_PRESETS",
    "CreditSeries",
    "credit_model",
    "credit_preset",
    # shading
    "BidLandscape",
    "BidShader",
    "ThompsonSampler",
    "FirstPriceOutcomes",
    "simulate_first_price",
    # floors
    "myerson_reserve",
    "FloorOptimizer",
    "AuctionLog",
    "ReplayResult",
    "replay",
    "DynamicAuction",
    "DynamicResult",
    # bid adjustment
    "BidAdjuster",
]

#: Submodules that are part of the API (``rtbcore.errors``, ``rtbcore.sim`` ...); the
#: underscore modules are implementation.
_PUBLIC_SUBMODULES = (
    "client",
    "errors",
    "records",
    "clearing",
    "streaming",
    "engine",
    "pacing",
    "credit",
    "shading",
    "floors",
    "dynamic",
    "adjust",
    "thompson",
    "periods",
    "budget",
    "ids",
    "sim",
    "distributed",
    "exchange",
    "exchange_floors",
)


def __dir__() -> list[str]:
    return sorted({*__all__, *_PUBLIC_SUBMODULES})
