"""The dynamic pricing auction: a posted price that follows a demand curve as units sell and
decays over the auction's life, selling at most ``supply_limit`` units per auction.

With ``u`` of ``U = supply_limit`` units sold, a bid arriving at time ``t`` of the auction's life
``[0, duration]`` sees the posted price

    P(u, t) = base_price * D(u / U) * exp(-time_decay * t / duration)

where the demand curve ``D`` is a piecewise-linear function given by multipliers at equally
spaced fill fractions (a rising curve makes the last units dearer). Bids (one unit each) are
taken in arrival order, equal times by bid index; a bid buys when units remain and its price is
> 0 and >= the posted price, and it pays the posted price. The exact definition (order of
operations, interpolation, loss reasons) is in ``docs/floors.md``; the kernel is Rust
(``rust/core/src/clearing/dynamic.rs``) and runs with the GIL released.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _rtbcore
import numpy as np
import numpy.typing as npt

from rtbcore._arrays import float_array as _float_array
from rtbcore.clearing import AuctionBatch, OnInvalid, _number, _on_invalid
from rtbcore.errors import InvalidInputError

__all__ = ["DynamicAuction", "DynamicResult"]


@dataclass(frozen=True, eq=False, slots=True)
class DynamicResult:
    """Outcome of :meth:`DynamicAuction.clear`: ``units`` int64[n_auctions] sold,
    ``revenue`` float64[n_auctions], ``paid`` float64[n_bids] (0.0 for a bid that bought
    nothing), ``loss_reason`` int32[n_bids] (0 bought, 3 invalid, 100 below the posted price,
    102 sold out), ``n_invalid``."""

    units: np.ndarray
    revenue: np.ndarray
    paid: np.ndarray
    loss_reason: np.ndarray
    n_invalid: int

    @property
    def won(self) -> np.ndarray:
        """bool[n_bids]: which bids bought a unit."""
        return self.loss_reason == 0

    @property
    def total_revenue(self) -> float:
        return float(self.revenue.sum())


class DynamicAuction:
    """``DynamicAuction(base_price=1.0, demand=1.0, supply_limit=1, time_decay=0.0,
    duration=1.0, demand_points=65)``

    - ``base_price``: a number, or float64[n_auctions] at :meth:`clear` time; finite, >= 0.
    - ``demand``: the demand curve: a number (flat), the multipliers ``d_0 .. d_(m-1)`` at the
      fill fractions ``j / (m - 1)``, or a function of the fill fraction (numpy in, numpy out)
      sampled at ``demand_points`` equally spaced fractions; finite and > 0.
    - ``supply_limit``: units for sale per auction, an int >= 1.
    - ``time_decay``: the price falls by ``exp(-time_decay)`` over the auction's life; >= 0.
    - ``duration``: the length of the life, in the unit of the bids' ``times``; > 0.
    """

    __slots__ = ("_base", "_demand", "_limit", "_decay", "_duration")

    def __init__(
        self,
        base_price: float = 1.0,
        demand: float | npt.ArrayLike | Callable[[np.ndarray], npt.ArrayLike] = 1.0,
        supply_limit: int = 1,
        time_decay: float = 0.0,
        duration: float = 1.0,
        demand_points: int = 65,
    ) -> None:
        base = _number("base_price", base_price)
        if not (np.isfinite(base) and base >= 0):
            raise InvalidInputError(f"base_price = {base_price!r}: must be finite and >= 0")
        self._base = base
        for name, v in (("supply_limit", supply_limit), ("demand_points", demand_points)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 1 <= v < 2**63:
                raise InvalidInputError(f"{name}: expected an int >= 1, got {v!r}")
        self._limit = int(supply_limit)
        if callable(demand):
            x = np.linspace(0.0, 1.0, int(demand_points)) if demand_points > 1 else np.zeros(1)
            d = _float_array("demand", np.broadcast_to(demand(x), x.shape), bools=False)
        elif isinstance(demand, numbers.Real) and not isinstance(demand, bool):
            d = np.array([float(demand)])
        else:
            d = _float_array("demand", demand, bools=False)
        if d.shape[0] == 0:
            raise InvalidInputError("demand: must hold at least one multiplier")
        bad = ~(np.isfinite(d) & (d > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(f"demand[{i}] = {d[i]!r}: must be finite and > 0")
        self._demand = np.ascontiguousarray(d)
        self._decay = _number("time_decay", time_decay)
        self._duration = _number("duration", duration)
        if not (np.isfinite(self._decay) and self._decay >= 0):
            raise InvalidInputError(f"time_decay = {time_decay!r}: must be finite and >= 0")
        if not (np.isfinite(self._duration) and self._duration > 0):
            raise InvalidInputError(f"duration = {duration!r}: must be finite and > 0")

    @property
    def demand(self) -> np.ndarray:
        """The demand curve's multipliers (a copy)."""
        return self._demand.copy()

    @property
    def supply_limit(self) -> int:
        return self._limit

    def __repr__(self) -> str:
        return (
            f"DynamicAuction(base_price={self._base:g}, demand=<{self._demand.shape[0]} points>, "
            f"supply_limit={self._limit}, time_decay={self._decay:g}, "
            f"duration={self._duration:g})"
        )

    def clear(
        self,
        batch: AuctionBatch,
        times: npt.ArrayLike,
        base_price: float | npt.ArrayLike | None = None,
        on_invalid: OnInvalid = "raise",
    ) -> DynamicResult:
        """Clear every auction of ``batch`` (its offsets and prices; its reserve is not used
        and it must have no quality scores) with the bids' arrival ``times`` (float64[n_bids],
        in [0, duration]). ``base_price`` overrides the constructor's, per auction if an
        array. ``on_invalid`` as for :func:`~rtbcore.clear_second_price`."""
        if not isinstance(batch, AuctionBatch):
            raise InvalidInputError(f"batch: expected an AuctionBatch, got {type(batch).__name__}")
        if batch.quality is not None:
            raise InvalidInputError("batch: quality scores do not enter a dynamic auction")
        raise_invalid = _on_invalid(on_invalid)
        t = _float_array("times", times, bools=False)
        base: Any
        if base_price is None:
            base = self._base
        elif np.isscalar(base_price):
            base = _number("base_price", base_price)
        else:
            base = _float_array("base_price", base_price, bools=False)
        n, m = batch.n_auctions, batch.n_bids
        units, revenue = np.empty(n, np.int64), np.empty(n, np.float64)
        paid, reason = np.empty(m, np.float64), np.empty(m, np.int32)
        try:
            n_bad = _rtbcore.clear_dynamic(
                batch.offsets, batch.prices, base, t, self._limit, self._demand, self._decay,
                self._duration, raise_invalid, units, revenue, paid, reason,
            )
        except InvalidInputError as e:
            # the kernel names the base prices as the batch's reserve it reads them through
            msg = str(e)
            if msg.startswith("reserve"):
                raise InvalidInputError(msg.replace("reserve", "base_price")) from None
            raise
        return DynamicResult(units, revenue, paid, reason, n_bad)
