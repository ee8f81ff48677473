"""Bid adjustment strategies: a bounded multiplier per campaign, recomputed at most every
``frequency`` seconds from one signal.

``BidAdjuster(strategy, campaigns=1, *, max_increase=1.5, min_decrease=0.7, frequency=60.0,
...)``; ``adjust(bids, signal, now)`` returns ``bids * multiplier`` where each campaign's
multiplier is ``clip(target(signal), min_decrease, max_increase)``, recomputed only when at
least ``frequency`` seconds passed since it was last recomputed (the first call always
recomputes); in between the campaign keeps its multiplier. The four strategies:

- ``"time"``: signal = seconds left until the campaign's deadline; target
  ``1 + (max_increase - 1) * max(0, 1 - left / window)``: 1 until ``window`` seconds before
  the deadline, then rising to ``max_increase`` at the deadline. Raises bids as it approaches.
- ``"competition"``: signal = competing activity relative to normal (for example the recent
  median of the highest competing bid, or of ``min_to_win``, over its usual level; 1 = as
  usual); target ``signal ** elasticity``. Raises bids when competition is heavier.
- ``"performance"``: signal = the observed conversion rate in [0, 1]; target
  ``(signal / target_rate) ** elasticity``. Raises bids where traffic converts better.
- ``"budget"``: signal = spend over the pacing target (``spent / (budget * elapsed /
  total)``, what a pacer computes; 1 = on pace); target ``(1 / signal) ** elasticity``.
  Lowers bids ahead of pace, raises them behind.

The multiplier composes with the rest of a bidder's chain: shade the value
(:class:`~rtbcore.BidShader`), adjust it, then apply the pacer's multiplier and its hard cap.
Bad input (a negative or non-finite bid, a bad signal, time going backwards for a campaign,
bad parameters) raises :class:`~rtbcore.errors.InvalidInputError` naming it and leaves the
adjuster unchanged. Not thread-safe: feed one adjuster from one thread.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from rtbcore._adjust import _Adjuster
from rtbcore._arrays import float_array as _float_array
from rtbcore.errors import InvalidInputError

__all__ = ["BidAdjuster", "STRATEGIES"]

#: The strategy names, in the kernel's order.
STRATEGIES = ("time", "competition", "performance", "budget")
_SIGNAL = {
    "time": "seconds to the deadline, finite and >= 0",
    "competition": "relative competing activity, finite and >= 0",
    "performance": "a conversion rate in [0, 1]",
    "budget": "spend over the pacing target, finite and >= 0",
}


def _real(name: str, x: Any, lo: float, hi: float, lo_open: bool = False) -> float:
    if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
        raise InvalidInputError(f"{name}: expected a number, got {x!r}")
    v = float(x)
    if not ((lo < v) if lo_open else (lo <= v)) or not v <= hi or not np.isfinite(v):
        left = "(" if lo_open else "["
        raise InvalidInputError(f"{name} = {x!r}: must be finite and in {left}{lo:g}, {hi:g}]")
    return v


class BidAdjuster:
    """One bid adjustment strategy over ``campaigns`` campaigns (see the module docs).

    Parameters: ``max_increase`` >= 1 (1.5 = at most +50%), ``min_decrease`` in (0, 1] (0.7 =
    at most -30%), ``frequency`` >= 0 seconds; ``window`` (time, default 3600 s),
    ``elasticity`` (competition, performance, budget; default 1.0, > 0), ``target_rate``
    (performance, required, in (0, 1]).
    """

    __slots__ = ("_core", "_strategy", "_n")

    def __init__(
        self,
        strategy: str,
        campaigns: int = 1,
        *,
        max_increase: float = 1.5,
        min_decrease: float = 0.7,
        frequency: float = 60.0,
        window: float | None = None,
        elasticity: float | None = None,
        target_rate: float | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise InvalidInputError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
        if (isinstance(campaigns, bool) or not isinstance(campaigns, numbers.Integral)
                or campaigns < 1):
            raise InvalidInputError(f"campaigns: expected an int >= 1, got {campaigns!r}")
        hi = _real("max_increase", max_increase, 1.0, np.inf)
        lo = _real("min_decrease", min_decrease, 0.0, 1.0, lo_open=True)
        freq = _real("frequency", frequency, 0.0, np.inf)
        extra = {"window": window, "elasticity": elasticity, "target_rate": target_rate}
        allowed = {"time": {"window"}, "competition": {"elasticity"},
                   "performance": {"elasticity", "target_rate"}, "budget": {"elasticity"}}
        for name, v in extra.items():
            if v is not None and name not in allowed[strategy]:
                raise InvalidInputError(f"{name}: not a parameter of the {strategy!r} strategy")
        if strategy == "time":
            a = _real("window", 3600.0 if window is None else window, 0.0, np.inf, lo_open=True)
            b = 0.0
        else:
            a = _real("elasticity", 1.0 if elasticity is None else elasticity, 0.0, np.inf,
                      lo_open=True)
            b = 1.0
            if strategy == "performance":
                if target_rate is None:
                    raise InvalidInputError("target_rate: required by the 'performance' strategy")
                b = _real("target_rate", target_rate, 0.0, 1.0, lo_open=True)
        self._strategy = strategy
        self._n = int(campaigns)
        self._core = _Adjuster(STRATEGIES.index(strategy), self._n, hi, lo, freq, a, b)

    @property
    def strategy(self) -> str:
        return self._strategy

    @property
    def max_increase(self) -> float:
        return float(self._core.max_increase)

    @property
    def min_decrease(self) -> float:
        return float(self._core.min_decrease)

    @property
    def frequency(self) -> float:
        return float(self._core.frequency)

    @property
    def multiplier(self) -> np.ndarray:
        """The campaigns' current multipliers (1.0 before the first call; a copy)."""
        return self._core.multiplier

    @property
    def last_update(self) -> np.ndarray:
        """When each multiplier was last recomputed (-inf before the first call; a copy)."""
        return self._core.last_update

    def __repr__(self) -> str:
        return (
            f"BidAdjuster({self._strategy!r}, campaigns={self._n}, "
            f"max_increase={self.max_increase:g}, min_decrease={self.min_decrease:g}, "
            f"frequency={self.frequency:g})"
        )

    def adjust(self, bids: npt.ArrayLike, signal: npt.ArrayLike, now: float) -> np.ndarray:
        """``bids`` (float64[campaigns], or a number with one campaign) times the campaigns'
        multipliers, recomputing those that are due at time ``now`` (seconds, any origin,
        never earlier than a campaign's last update) from ``signal`` (one number for every
        campaign, or one per campaign)."""
        b = _float_array("bids", bids, self._n, bools=False)
        if b.shape != (self._n,):
            raise InvalidInputError(f"bids: expected {self._n} bids, got shape {b.shape}")
        scalar = np.ndim(signal) == 0
        if scalar:
            if isinstance(signal, bool | np.bool_) or not isinstance(signal, numbers.Real):
                raise InvalidInputError(f"signal: expected a number, got {signal!r}")
            s = np.array([float(signal)])  # its range is checked by the kernel
        else:
            s = _float_array("signal", signal, bools=False)
            if s.shape != (self._n,):
                raise InvalidInputError(f"signal: expected {self._n} values, got shape {s.shape}")
        t = _real("now", now, -np.inf, np.inf)
        out = np.empty(self._n)
        bad, code = self._core.adjust(b, s, scalar, t, out)
        if bad >= 0:
            if code == 1:
                raise InvalidInputError(
                    f"bids[{bad}] = {b[bad].item()!r}: must be finite and >= 0 (and stay "
                    "finite times max_increase)"
                )
            if code == 2:
                v = s[0 if scalar else bad].item()
                where = "signal" if scalar else f"signal[{bad}]"
                raise InvalidInputError(f"{where} = {v!r}: must be {_SIGNAL[self._strategy]}")
            last = float(self._core.last_update[bad])
            raise InvalidInputError(
                f"now = {t!r}: earlier than campaign {bad}'s last update at {last!r}"
            )
        return out
