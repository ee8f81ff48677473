"""Budget arithmetic for a bidder that runs for months: days that roll over, carry-over,
budget changes mid-day, and bids clipped to what the budget has left.

Money here is in the unit of your prices, per impression by default; ``units="cpm"`` says the
bids are per thousand impressions (a won impression then costs bid / 1000).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rtbcore._state import envelope, opened
from rtbcore.errors import InvalidInputError, StateError
from rtbcore.periods import DayCalendar, Period

__all__ = ["DailyBudget", "cap_bid", "worst_case_cost"]

Units = Literal["impression", "cpm"]
_UNITS = {"impression": 1.0, "cpm": 1000.0}


def _money(name: str, x: npt.ArrayLike, nan_ok: bool = False) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidInputError(f"{name}: cannot be read as float64 numbers ({e})") from None
    ok = np.isfinite(a) & (a >= 0)
    if nan_ok:
        ok |= np.isnan(a)
    if not ok.all():
        i = int(np.flatnonzero(~ok.reshape(-1))[0])
        where = name if a.ndim == 0 else f"{name}[{i}]"
        raise InvalidInputError(f"{where} = {float(a.reshape(-1)[i])!r} must be finite and >= 0")
    return a


def _per_impression(units: str) -> float:
    if units not in _UNITS:
        raise InvalidInputError(f"units: must be 'impression' or 'cpm', got {units!r}")
    return _UNITS[units]


def cap_bid(
    spent: npt.ArrayLike, budget: npt.ArrayLike, bid: npt.ArrayLike, units: Units = "impression"
) -> Any:
    """The bid clipped to what the budget has left: min(bid, max(budget - spent, 0)).

    A campaign near its budget bids what it can still afford instead of being refused. NaN
    bids (no bid) stay NaN. ``spent`` and ``budget`` are money per impression; with
    ``units="cpm"`` the bid is per thousand impressions and is capped at 1000 x what is left.
    Scalars in, a float out; arrays broadcast.
    """
    scale = _per_impression(units)
    s, b = _money("spent", spent), _money("budget", budget)
    x = _money("bid", bid, nan_ok=True)
    try:
        out = np.minimum(x, np.maximum(b - s, 0.0) * scale)
    except ValueError as e:
        raise InvalidInputError(f"spent, budget, bid: shapes do not broadcast ({e})") from None
    return float(out) if out.ndim == 0 else out


def worst_case_cost(bids: npt.ArrayLike, units: Units = "impression") -> float:
    """The most a batch of bids can cost: every bid wins and pays its own bid (first price;
    in a second-price auction a win costs at most the bid). NaN bids (no bid) cost nothing.
    Per impression; ``units="cpm"`` divides by 1000. Give it to ``should_bid`` as ``cost``."""
    scale = _per_impression(units)
    x = _money("bids", bids, nan_ok=True)
    return float(np.nansum(x)) / scale


class DailyBudget:
    """Per-campaign budgets over the consecutive days of a :class:`DayCalendar`.

    ``DailyBudget(daily, calendar=None, *, carry=0.0, carry_cap=1.0, clock=None, pacer=None)``

    ``daily`` (scalar or array, one per campaign) is each day's budget. When a day ends, a
    share ``carry`` (in [0, 1]) of what it left unspent is added to the next day's budget, at
    most ``carry_cap`` x daily (0 = no carry-over, the default). ``advance(now)`` moves to the
    day containing ``now`` (days without spend in between carry over too) and returns how many
    days it moved; ``record_spend(amounts)`` adds spend; ``set_daily(daily, today=True)``
    changes the daily budget, from today (today's budget becomes the new daily plus today's
    carry, what was spent stays spent) or from tomorrow. ``pacer``: a pacer kept in step: it
    rolls over with the days (a ``PIDPacer`` also gets each day's budget and mid-day
    changes). ``clock`` defaults to ``time.time`` (Unix seconds: the calendar's time).
    """

    def __init__(
        self,
        daily: npt.ArrayLike,
        calendar: DayCalendar | None = None,
        *,
        carry: float = 0.0,
        carry_cap: float = 1.0,
        clock: Callable[[], float] | None = None,
        pacer: Any = None,
        now: float | None = None,
    ) -> None:
        self.daily = _money("daily", daily).copy()
        self.calendar = DayCalendar() if calendar is None else calendar
        if not callable(getattr(self.calendar, "period", None)):
            raise InvalidInputError(f"calendar: expected a DayCalendar, got {calendar!r}")
        c = _money("carry", carry)
        if c.ndim or c > 1:
            raise InvalidInputError(f"carry: a share in [0, 1], got {carry!r}")
        cap = np.asarray(carry_cap, dtype=np.float64) if not isinstance(carry_cap, str) else None
        if cap is None or cap.ndim or not cap >= 0:
            raise InvalidInputError(f"carry_cap: must be >= 0 (inf = no cap), got {carry_cap!r}")
        if clock is not None and not callable(clock):
            raise InvalidInputError(f"clock must be a callable returning seconds, got {clock!r}")
        self.carry, self.carry_cap = float(c), float(cap)
        self.clock = time.time if clock is None else clock
        self.pacer = pacer
        self.period: Period = self.calendar.period(self.clock() if now is None else now)
        self.carried = np.zeros_like(self.daily)
        self.budget = self.daily.copy()
        self.spent = np.zeros_like(self.daily)
        self._sync_pacer(new_period=True)

    # -- the day -------------------------------------------------------------------------

    @property
    def remaining(self) -> np.ndarray:
        """What today's budget has left (never negative)."""
        return np.maximum(self.budget - self.spent, 0.0)

    @property
    def total(self) -> float:
        """Today's length in seconds (86400, or 82800 / 90000 on a daylight-saving day)."""
        return self.period.length

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since today's start (rolls over first if ``now`` is in a later day)."""
        t = self.clock() if now is None else now
        self.advance(t)
        return min(max(t - self.period.start, 0.0), self.period.length)

    def advance(self, now: float | None = None) -> int:
        """Move to the day containing ``now``; returns how many days ended (0: still today)."""
        t = self.clock() if now is None else now
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
            raise InvalidInputError(f"now: expected finite Unix seconds, got {t!r}")
        if t < self.period.start:
            raise InvalidInputError(
                f"now = {t!r} is before today's start ({self.period.start!r}): "
                "time must not go backwards"
            )
        if t < self.period.end:
            return 0
        days = 0
        while t >= self.period.end:
            unspent = np.maximum(self.budget - self.spent, 0.0)
            # inf = no cap, also for a zero daily budget (where inf x 0 would be NaN)
            cap = np.inf if math.isinf(self.carry_cap) else self.carry_cap * self.daily
            self.carried = np.minimum(self.carry * unspent, cap)
            self.budget = self.daily + self.carried
            self.spent = np.zeros_like(self.daily)
            self.period = self.calendar.period(self.period.end)
            days += 1
        self._sync_pacer(new_period=True)
        return days

    def record_spend(self, amounts: npt.ArrayLike) -> None:
        """Add spend to today's (scalar or the campaigns' shape; finite and >= 0)."""
        a = _money("amounts", amounts)
        try:
            self.spent = self.spent + np.broadcast_to(a, self.daily.shape)
        except ValueError:
            raise InvalidInputError(
                f"amounts: shape {a.shape} does not match the campaigns' {self.daily.shape}"
            ) from None

    def set_daily(self, daily: npt.ArrayLike, today: bool = True) -> None:
        """A new daily budget: from today (``today=True``) or from the next day on."""
        d = _money("daily", daily)
        if d.shape != self.daily.shape:
            raise InvalidInputError(
                f"daily: shape {d.shape} does not match the campaigns' {self.daily.shape}"
            )
        self.daily = d.copy()
        if today:
            self.budget = self.daily + self.carried
            self._sync_pacer(new_period=False)

    def cap_bid(self, bid: npt.ArrayLike, units: Units = "impression") -> Any:
        """:func:`cap_bid` against today's spend and budget."""
        return cap_bid(self.spent, self.budget, bid, units)

    def _sync_pacer(self, new_period: bool) -> None:
        p = self.pacer
        if p is None:
            return
        has_budget = hasattr(p, "set_budget")
        if new_period:
            if has_budget:
                p.rollover(start=self.period.start, total=self.period.length, budget=self.budget)
            else:
                p.rollover(start=self.period.start, total=self.period.length)
        elif has_budget:
            p.set_budget(self.budget)

    # -- save and restore ----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Today, its budgets and spend, the settings (versioned; no clock, no pacer)."""
        return envelope(
            "DailyBudget",
            {
                "daily": self.daily.copy(), "budget": self.budget.copy(),
                "spent": self.spent.copy(), "carried": self.carried.copy(),
                "carry": self.carry, "carry_cap": self.carry_cap,
                "calendar": self.calendar.to_state(), "period_start": self.period.start,
            },
        )  # fmt: skip

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        clock: Callable[[], float] | None = None,
        pacer: Any = None,
    ) -> DailyBudget:
        """Resume from ``to_state()`` in the saved day; call ``advance()`` to catch up.
        ``pacer``, restored from its own state, is attached as it is."""
        keys = ("daily", "budget", "spent", "carried", "carry", "carry_cap", "calendar",
                "period_start")  # fmt: skip
        st = opened(state, "DailyBudget", keys)
        try:
            b = cls(st["daily"], DayCalendar(**st["calendar"]), carry=st["carry"],
                    carry_cap=st["carry_cap"], clock=clock, now=st["period_start"])  # fmt: skip
            for key in ("budget", "spent", "carried"):
                a = _money(key, st[key])
                if a.shape != b.daily.shape:
                    raise InvalidInputError(f"{key}: shape {a.shape} is not {b.daily.shape}")
                setattr(b, key, a.copy())
        except InvalidInputError as e:
            raise StateError(f"state: {e}") from None
        b.pacer = pacer  # restored with its own state: not rolled over
        return b

    def __repr__(self) -> str:
        return (
            f"DailyBudget(day={self.period.day}, campaigns={self.daily.shape}, "
            f"carry={self.carry}, calendar={self.calendar!r})"
        )
