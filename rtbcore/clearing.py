"""Vectorised auction clearing: many auctions per call, over flat numpy arrays.

An :class:`AuctionBatch` holds many auctions in segment layout: auction ``a`` owns bids
``offsets[a]:offsets[a+1]`` of the flat ``prices`` / ``quality`` / ``bidders`` arrays. One call
clears every auction in Rust with the GIL released and returns numpy arrays; there is no
per-bid Python object anywhere.

Semantics (the public contract, also in ``docs/clearing.md``; prices are per impression):

- A bid is **eligible** when its price is finite and > 0, its quality is finite and > 0, and its
  price is >= the auction's reserve.
- Bids rank by **adjusted bid** ``price * quality``, descending; ties go to the lower bid index.
- **First price**: the top eligible bid wins and pays its own price.
- **Second price** (Vickrey with quality scores): the winner ``w`` pays
  ``min(price_w, max(reserve, adj_2 / q_w) + increment)``; alone, ``min(price_w, reserve +
  increment)``. It never pays more than it bid.
- **GSP** (k slots, factors ``a_1 >= ... >= a_k``, ``a_(k+1) = 0``): eligible bids fill the slots in
  rank order; the bid in slot s pays per unit ``min(price_s, max(reserve, adj_(s+1) / q_s) +
  increment)`` (adj of a missing rank = 0).
- **VCG**: the bid in slot s pays in total
  ``T_s = sum_{j=s..k} (a_j - a_(j+1)) * max(adj_(j+1), reserve * q_s)``, per unit
  ``min(price_s, T_s / (a_s * q_s))``. The reserve acts as a *phantom competitor*: to keep slot j
  the bid must beat the next adjusted bid and its own floor ``reserve * q_s``. This is the
  textbook VCG (= Myerson) payment with a reserve: truthful, and equal to the externality the
  bidder imposes when the seller holds reserve bids. The formula ``max(reserve, T_s / (a_s q_s))``
  with unfloored thresholds is not truthful once reserve > 0; with reserve = 0 the two agree.
- ``min_to_win`` (OpenRTB 2.6 ``${AUCTION_MIN_TO_WIN}``): the winner's is ``max(reserve, adj_2 /
  q_w)`` (the reserve when alone); a losing bid's is the lowest price that ties the winning
  adjusted bid (first price) or the clearing price (second price, ``price_w * q_w``), converted
  through its own quality and never below the reserve; in an auction without a sale it is the
  reserve; NaN for an invalid bid.
- ``loss_reason`` (OpenRTB loss codes): 0 won, 3 invalid bid (NaN / inf / negative price, NaN /
  inf / zero / negative quality), 100 below floor (including a zero price), 102 lost to a higher
  bid.
- A bid is **invalid** when its price is NaN, infinite or negative, its quality is NaN,
  infinite, zero or negative, or its adjusted bid ``price * quality`` overflows to infinity
  (both finite, but the product is above 1.8e308). ``on_invalid="raise"`` (default) raises
  :class:`~rtbcore.errors.InvalidBidError` naming the lowest bad bid index and its field (an
  overflowing product names the price); ``on_invalid="skip"`` treats invalid bids as
  ineligible, reports them with reason 3 and counts them in ``n_invalid``.
- No result holds an infinity or a NaN except where stated: ``min_to_win`` is NaN for an
  invalid bid, and ``+inf`` for a valid losing bid whose quality is so small that no finite
  price could tie the winner (the price it would need is above 1.8e308).
- Position auctions allocate ``n_auctions * len(slot_ctrs)`` output slots (16 bytes each); a
  call that would need more than :data:`MAX_SLOT_OUTPUT_BYTES` raises
  :class:`~rtbcore.errors.InvalidInputError` with the size it would need.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import _rtbcore
import numpy as np
import numpy.typing as npt

from rtbcore._arrays import float_array as _float_array
from rtbcore._arrays import int_array as _int_array
from rtbcore._pool import output_pool
from rtbcore.errors import InvalidInputError

__all__ = [
    "AuctionBatch",
    "ClearingResult",
    "SlotResult",
    "clear_first_price",
    "clear_second_price",
    "clear_gsp",
    "clear_vcg",
    "LOSS_WON",
    "LOSS_INVALID",
    "LOSS_BELOW_FLOOR",
    "LOSS_OUTBID",
    "MAX_SLOT_OUTPUT_BYTES",
]

OnInvalid = Literal["raise", "skip"]

#: OpenRTB loss reason: the bid won.
LOSS_WON = 0
#: OpenRTB loss reason: invalid bid (bad price or quality).
LOSS_INVALID = 3
#: OpenRTB loss reason: below the auction floor (reserve), including a zero price.
LOSS_BELOW_FLOOR = 100
#: OpenRTB loss reason: lost to a higher bid.
LOSS_OUTBID = 102

#: The largest output one position-auction call allocates: ``n_auctions * len(slot_ctrs)``
#: slots of an int64 winner and a float64 price (16 bytes a slot). A larger call raises
#: :class:`~rtbcore.errors.InvalidInputError` naming the size it would need; clear fewer
#: auctions per call, or set this higher (it is read at each call).
MAX_SLOT_OUTPUT_BYTES = 4 * 2**30


def _number(name: str, x: Any) -> float:
    """A real-number argument as a float: an int, float, Decimal, Fraction or numpy number (or a
    0-d array of one), not a bool, a string or None."""
    if isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "iuf":
        x = x.item()
    if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real | Decimal):
        shown = repr(x) if len(repr(x)) <= 40 else f"a {type(x).__name__}"
        raise InvalidInputError(f"{name}: expected a number, got {shown}")
    try:
        return float(x)
    except OverflowError:
        raise InvalidInputError(f"{name}: {type(x).__name__} too large for a float64") from None


def _on_invalid(on_invalid: str) -> bool:
    if not isinstance(on_invalid, str):
        raise InvalidInputError(
            f"on_invalid: expected 'raise' or 'skip', got {type(on_invalid).__name__}"
        )
    if on_invalid == "raise":
        return True
    if on_invalid == "skip":
        return False
    raise InvalidInputError(f"on_invalid: expected 'raise' or 'skip', got {on_invalid!r}")


class AuctionBatch:
    """Many auctions over flat arrays, in segment layout.

    ``AuctionBatch(offsets, prices, quality=None, bidders=None, reserve=0.0)``

    - ``offsets`` int64[n_auctions + 1]: auction ``a`` owns bids ``offsets[a]:offsets[a+1]``;
      ``offsets[0] == 0``, non-decreasing, ``offsets[-1] == n_bids``.
    - ``prices`` float64[n_bids]; ``quality`` float64[n_bids] or None (all 1.0);
      ``bidders`` int64[n_bids] or None (carried along: results map winners to bidder ids);
      bidder ids are >= 0, since -1 marks an auction without a sale in ``result.bidder``.
    - ``reserve``: one number for every auction, or float64[n_auctions]; finite and >= 0.

    Booleans are refused where numbers are expected (``prices``, ``quality``, ``reserve``), and
    so are strings (``reserve="0.5"``).

    Arrays of another dtype (float32, Python lists) or non-contiguous views are converted once
    here; float64 / int64 contiguous arrays are used without a copy. The structure (offsets,
    lengths, reserves) is checked here, raising :class:`~rtbcore.errors.InvalidInputError` that
    names the argument; bid values are checked when clearing (see ``on_invalid``). The arrays are
    read, never written; if you modify them afterwards, the next clearing call re-checks the
    structure. Clearing runs without the GIL, so several threads may clear the same batch at
    once; do not modify its arrays while a clearing call is running.
    """

    __slots__ = ("_offsets", "_prices", "_quality", "_bidders", "_reserve")

    def __init__(
        self,
        offsets: npt.ArrayLike,
        prices: npt.ArrayLike,
        quality: npt.ArrayLike | None = None,
        bidders: npt.ArrayLike | None = None,
        reserve: float | npt.ArrayLike = 0.0,
    ) -> None:
        self._offsets = _int_array("offsets", offsets)
        self._prices = _float_array("prices", prices, bools=False)
        self._quality = None if quality is None else _float_array("quality", quality, bools=False)
        if bidders is None:
            self._bidders = None
        else:
            self._bidders = _int_array("bidders", bidders)
            if self._bidders.shape[0] != self._prices.shape[0]:
                raise InvalidInputError(
                    f"bidders: has {self._bidders.shape[0]} entries but prices has "
                    f"{self._prices.shape[0]}"
                )
            if self._bidders.size and int(self._bidders.min()) < 0:
                i = int(np.flatnonzero(self._bidders < 0)[0])
                raise InvalidInputError(
                    f"bidders[{i}] = {self._bidders[i]}: must be >= 0 (-1 marks an auction "
                    "without a sale in result.bidder)"
                )
        scalar = reserve is None or np.isscalar(reserve)
        if scalar or (isinstance(reserve, np.ndarray) and reserve.ndim == 0):
            self._reserve: float | np.ndarray = _number("reserve", reserve)
        else:
            self._reserve = _float_array("reserve", reserve, bools=False)
        _rtbcore.check_auction_batch(self._offsets, self._prices, self._quality, self._reserve)

    @classmethod
    def from_sizes(
        cls,
        sizes: npt.ArrayLike,
        prices: npt.ArrayLike,
        quality: npt.ArrayLike | None = None,
        bidders: npt.ArrayLike | None = None,
        reserve: float | npt.ArrayLike = 0.0,
    ) -> AuctionBatch:
        """A batch from the number of bids of each auction (``offsets = [0, *cumsum(sizes)]``)."""
        s = _int_array("sizes", sizes)
        if s.size and int(s.min()) < 0:
            i = int(np.flatnonzero(s < 0)[0])
            raise InvalidInputError(f"sizes[{i}] = {s[i]}: must be >= 0")
        offsets = np.zeros(s.shape[0] + 1, dtype=np.int64)
        np.cumsum(s, out=offsets[1:])
        return cls(offsets, prices, quality, bidders, reserve)

    @property
    def offsets(self) -> np.ndarray:
        return self._offsets

    @property
    def prices(self) -> np.ndarray:
        return self._prices

    @property
    def quality(self) -> np.ndarray | None:
        return self._quality

    @property
    def bidders(self) -> np.ndarray | None:
        return self._bidders

    @property
    def reserve(self) -> float | np.ndarray:
        return self._reserve

    @property
    def n_auctions(self) -> int:
        return int(self._offsets.shape[0]) - 1

    @property
    def n_bids(self) -> int:
        return int(self._prices.shape[0])

    def __len__(self) -> int:
        return self.n_auctions

    def __repr__(self) -> str:
        r = self._reserve if isinstance(self._reserve, float) else "per-auction"
        q = "yes" if self._quality is not None else "no"
        return (
            f"AuctionBatch(n_auctions={self.n_auctions}, n_bids={self.n_bids}, quality={q}, "
            f"reserve={r})"
        )

    def _winner_bidders(self, winner: np.ndarray) -> np.ndarray | None:
        if self._bidders is None:
            return None
        out = np.full(winner.shape, -1, dtype=np.int64)
        sold = winner >= 0
        out[sold] = self._bidders[winner[sold]]
        return out


@dataclass(frozen=True, eq=False, slots=True)
class ClearingResult:
    """Single-slot outcome. ``winner`` int64[n_auctions] (bid index, -1 = no sale), ``price``
    float64[n_auctions] (0.0 when no sale), ``min_to_win`` float64[n_bids] (NaN for an invalid
    bid), ``loss_reason`` int32[n_bids] (0 won, 3 invalid, 100 below floor, 102 outbid),
    ``n_invalid`` how many bids were invalid (always 0 after ``on_invalid="raise"``),
    ``bidder`` the winners' bidder ids (-1 = no sale) when the batch has ``bidders``, else None.
    """

    winner: np.ndarray
    price: np.ndarray
    min_to_win: np.ndarray
    loss_reason: np.ndarray
    n_invalid: int
    bidder: np.ndarray | None = None

    @property
    def sold(self) -> np.ndarray:
        """bool[n_auctions]: which auctions had a sale."""
        return self.winner >= 0

    @property
    def revenue(self) -> float:
        """Sum of the prices paid."""
        return float(self.price.sum())


@dataclass(frozen=True, eq=False, slots=True)
class SlotResult:
    """Position-auction outcome. ``winner`` int64[n_auctions, k] (bid index, -1 = empty slot),
    ``price`` float64[n_auctions, k] (per unit, on the bid's scale; 0.0 for an empty slot),
    ``n_invalid`` how many bids were invalid, ``bidder`` int64[n_auctions, k] bidder ids when the
    batch has ``bidders``, else None.
    """

    winner: np.ndarray
    price: np.ndarray
    n_invalid: int
    bidder: np.ndarray | None = None

    @property
    def k(self) -> int:
        return int(self.winner.shape[1])


def _check_batch(batch: AuctionBatch) -> None:
    if not isinstance(batch, AuctionBatch):
        raise InvalidInputError(f"batch: expected an AuctionBatch, got {type(batch).__name__}")


def _single(batch: AuctionBatch, rule: str, increment: float, on_invalid: str) -> ClearingResult:
    _check_batch(batch)
    raise_invalid = _on_invalid(on_invalid)
    n, m = batch.n_auctions, batch.n_bids
    # uninitialised outputs (the kernel writes every element), recycled by the output pool when
    # large; allocated here, so that running out of memory is a plain MemoryError
    empty = output_pool.empty
    inc = _number("increment", increment)
    w, p = empty(max(n, 0), np.int64), empty(max(n, 0), np.float64)
    mtw, reason = empty(m, np.float64), empty(m, np.int32)
    n_bad = _rtbcore.clear_single(
        batch._offsets, batch._prices, batch._quality, batch._reserve, rule, inc, raise_invalid,
        w, p, mtw, reason,
    )
    return ClearingResult(w, p, mtw, reason, n_bad, batch._winner_bidders(w))


def _slots(
    batch: AuctionBatch, slot_ctrs: npt.ArrayLike, rule: str, increment: float, on_invalid: str
) -> SlotResult:
    _check_batch(batch)
    raise_invalid = _on_invalid(on_invalid)
    ctrs = _float_array("slot_ctrs", slot_ctrs, bools=False)
    inc = _number("increment", increment)
    shape = (max(batch.n_auctions, 0), ctrs.shape[0])
    need = shape[0] * shape[1] * 16
    if need > MAX_SLOT_OUTPUT_BYTES:
        raise InvalidInputError(
            f"slot_ctrs: {shape[0]} auctions x {shape[1]} slots need {need / 2**30:.2f} GiB of "
            f"output ({need} bytes: an int64 winner and a float64 price per slot), more than "
            f"MAX_SLOT_OUTPUT_BYTES = {MAX_SLOT_OUTPUT_BYTES / 2**30:g} GiB; clear fewer auctions "
            "per call or use fewer slots"
        )
    w, p = output_pool.empty(shape, np.int64), output_pool.empty(shape, np.float64)
    n_bad = _rtbcore.clear_slots(
        batch._offsets, batch._prices, batch._quality, batch._reserve, ctrs, rule, inc,
        raise_invalid, w, p,
    )
    return SlotResult(w, p, n_bad, batch._winner_bidders(w))


def clear_first_price(batch: AuctionBatch, on_invalid: OnInvalid = "raise") -> ClearingResult:
    """First price: the top eligible adjusted bid wins and pays its own price."""
    return _single(batch, "first", 0.0, on_invalid)


def clear_second_price(
    batch: AuctionBatch, increment: float = 0.01, on_invalid: OnInvalid = "raise"
) -> ClearingResult:
    """Second price with quality scores: ``min(price_w, max(reserve, adj_2 / q_w) + increment)``."""
    return _single(batch, "second", increment, on_invalid)


def clear_gsp(
    batch: AuctionBatch,
    slot_ctrs: npt.ArrayLike,
    increment: float = 0.0,
    on_invalid: OnInvalid = "raise",
) -> SlotResult:
    """Generalised second price over ``len(slot_ctrs)`` slots (factors non-increasing, > 0)."""
    return _slots(batch, slot_ctrs, "gsp", increment, on_invalid)


def clear_vcg(
    batch: AuctionBatch, slot_ctrs: npt.ArrayLike, on_invalid: OnInvalid = "raise"
) -> SlotResult:
    """VCG over ``len(slot_ctrs)`` slots, the reserve acting as a phantom competitor."""
    return _slots(batch, slot_ctrs, "vcg", 0.0, on_invalid)

