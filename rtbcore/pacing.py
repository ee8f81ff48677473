"""Budget pacing: spread a campaign's daily budget over the day, never overspend.

Five pacers on one surface (scalars or numpy arrays in, the same shape out), cores in Cython
(``src/pacing/``, one file per pacer: validation and rule fused in one ``nogil`` pass):

- :class:`LinearPacer`: target spend = budget × elapsed / total; multiplier 0.8 above target,
  1.2 otherwise.
- :class:`TieredPacer`: ratio = spend / target; > 1.2 → 0.7, > 1.1 → 0.85, < 0.8 → 1.3,
  < 0.9 → 1.15, else 1.0 (clipped to [0.5, 2.0]).
- :class:`ThrottlingPacer`: no bid when spend + cost > budget; when the budget-used ratio
  exceeds the time ratio, bid with probability max(0.1, min(1, 1 − (used − time))), seeded.
- :class:`PIDPacer`: a PID controller (with anti-windup) on the gap between spend and a target
  curve, giving a bid multiplier or a participation rate.
- :class:`AdaptivePacer`: a :class:`PIDPacer` whose target curve follows the day's expected
  traffic (a 24- or 1440-bucket profile learned from history) instead of a straight line.

Common surface: ``multiplier(spent, budget, elapsed, total)`` (multiplier pacers),
``should_bid(spent, budget, cost, elapsed, total)`` (every pacer: the hard cap
``spent + cost <= budget``, plus the throttle or the participation coin), and
``update(spent, elapsed)`` for the feedback pacers. ``elapsed`` defaults to the pacer's clock
(``clock() - start``; inject a clock in tests), ``total`` to the pacer's period (one day).
Money (``spent``, ``budget``, ``cost``) is in the unit of your prices, per impression as
everywhere in rtbcore (``docs/clearing.md``, "Prices and units"); ``rtbcore.budget`` converts
CPM bids.
:func:`value_bid` turns predicted CTR/CVR and a conversion value into a bid.

The hard cap is exact: ``spent + cost <= budget`` is decided on the exact sum of the float64
values, never on its rounding (``should_bid(1e16, 1e16, 1.0)`` is False although
``1e16 + 1.0 == 1e16`` in float64). Integers are accepted where float64 holds them exactly
(|n| <= 2**53); larger ones are refused rather than rounded.

Bad input (negative, NaN or infinite spend, budget or cost; integers beyond 2**53; bools and
strings; elapsed < 0 or > total; time going backwards for a stateful pacer or the clock; empty or
negative profiles; mismatched shapes; seeds outside [0, 2**64 - 1]) raises
:class:`rtbcore.errors.InvalidInputError` naming the argument and index, and leaves the pacer's
state (RNG, controller) as it was.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from rtbcore._fastpath import (
    _float_array_arg,
    _LinearPacer,
    _pacing_value_bid,
    _PIDPacer,
    _ThrottlingPacer,
    _TieredPacer,
)
from rtbcore._state import envelope, opened
from rtbcore.errors import InvalidInputError, StateError
from rtbcore.periods import DayCalendar

__all__ = [
    "LinearPacer",
    "TieredPacer",
    "ThrottlingPacer",
    "PIDPacer",
    "AdaptivePacer",
    "value_bid",
    "learn_profile",
]

Clock = Callable[[], float]
ArrayLike = npt.ArrayLike


def _calendar_defaults(
    calendar: Any, clock: Clock | None, start: float | None, total: float
) -> tuple[Clock | None, float | None, float]:
    """With a calendar the clock is wall time and the first period is the one containing now."""
    if calendar is None:
        return clock, start, total
    if not callable(getattr(calendar, "bounds", None)):
        raise InvalidInputError(
            f"calendar must have a bounds(t) -> (start, length) method, got {calendar!r}"
        )
    clock = time.time if clock is None else clock
    if start is None:
        start, total = calendar.bounds(clock())
    return clock, start, total


def _restore(cls: type[_Saveable], state: dict[str, Any], clock: Clock | None) -> _Saveable:
    return cls.from_state(state, clock=clock)


class _Saveable:
    """to_state() / from_state() / pickle for the pacers (see docs/pacing.md)."""

    __slots__ = ()

    def _state_body(self) -> dict[str, Any]:
        return {}

    def _apply_state(self, st: dict[str, Any]) -> None:
        return None

    @classmethod
    def _from_body(cls, st: dict[str, Any], clock: Clock | None) -> Self:
        return cls(clock=clock, start=0.0)  # type: ignore[call-arg]

    def to_state(self) -> dict[str, Any]:
        """The pacer's state as a plain dict (versioned): period, calendar, settings and what
        it learned. The clock is not part of it."""
        cal = self.calendar  # type: ignore[attr-defined]
        body = dict(self._period_state())  # type: ignore[attr-defined]
        body["calendar"] = cal.to_state() if isinstance(cal, DayCalendar) else None
        body.update(self._state_body())
        return envelope(type(self).__name__, body)

    @classmethod
    def from_state(
        cls, state: dict[str, Any], clock: Clock | None = None, start: float | None = None
    ) -> Self:
        """A pacer that resumes from ``to_state()``. ``clock``: the clock to read (a state does
        not hold one; with a calendar the default is ``time.time``); ``start``: the clock
        reading at which the saved period starts on the new clock (give it when the new clock
        is not the saved one's, e.g. ``time.monotonic`` after a restart)."""
        st = opened(state, cls.__name__, ("total", "start", "last_clock", "calendar"))
        cal = st["calendar"]
        calendar = None
        if cal is not None:
            if not isinstance(cal, dict):
                raise StateError(f"state calendar: expected a dict or None, got {cal!r}")
            calendar = DayCalendar(**cal)
            clock = time.time if clock is None else clock
        try:
            p = cls._from_body(st, clock)
            same_clock = start is None
            p._set_period_state(  # type: ignore[attr-defined]
                float(st["total"]),
                float(st["start"] if same_clock else start),  # type: ignore[arg-type]
                float(st["last_clock"]) if same_clock else -float("inf"),
            )
            p._set_calendar(calendar)  # type: ignore[attr-defined]
            p._apply_state(st)
        except InvalidInputError as e:
            if isinstance(e, StateError):
                raise
            raise StateError(f"state: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise StateError(f"state: inconsistent {cls.__name__} state ({e!r})") from None
        return p

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.to_state(), self.clock))  # type: ignore[attr-defined]


class LinearPacer(_Saveable, _LinearPacer):
    """Straight-line pacing: multiplier 0.8 when spend is above budget × elapsed / total, else 1.2.

    ``LinearPacer(total=86400.0, clock=None, start=None)``. ``multiplier(spent, budget,
    elapsed=None, total=None)`` and ``should_bid(spent, budget, cost, elapsed=None,
    total=None)`` (the hard cap) take scalars or arrays; ``elapsed`` defaults to
    ``clock() - start`` (``clock`` = ``time.monotonic``, ``start`` = the clock at construction).
    Stateless apart from the clock, so thread-safe.
    """

    __slots__ = ()

    def __init__(
        self,
        total: float = 86_400.0,
        clock: Clock | None = None,
        start: float | None = None,
        *,
        calendar: Any = None,
    ) -> None:
        clock, start, total = _calendar_defaults(calendar, clock, start, total)
        super().__init__(total, clock, start)
        self._set_calendar(calendar)

    def __repr__(self) -> str:
        return f"LinearPacer(total={self.total:g})"


class TieredPacer(_Saveable, _TieredPacer):
    """Tiered pacing on ratio = spend / (budget × elapsed / total).

    > 1.2 → 0.7, > 1.1 → 0.85, < 0.8 → 1.3, < 0.9 → 1.15, else 1.0; clipped to [0.5, 2.0].
    At elapsed = 0 the target is 0: ratio 1 (on target) if nothing was spent, else above
    every tier (0.7). Same surface and arguments as :class:`LinearPacer`.
    """

    __slots__ = ()

    def __init__(
        self,
        total: float = 86_400.0,
        clock: Clock | None = None,
        start: float | None = None,
        *,
        calendar: Any = None,
    ) -> None:
        clock, start, total = _calendar_defaults(calendar, clock, start, total)
        super().__init__(total, clock, start)
        self._set_calendar(calendar)

    def __repr__(self) -> str:
        return f"TieredPacer(total={self.total:g})"


class ThrottlingPacer(_Saveable, _ThrottlingPacer):
    """Probabilistic throttling with a hard cap.

    ``ThrottlingPacer(total=86400.0, clock=None, start=None, seed=0)``. ``should_bid(spent,
    budget, cost, elapsed=None, total=None)``: False when ``spent + cost > budget``; otherwise,
    when used = spent / budget exceeds time = elapsed / total, True with probability
    max(0.1, min(1, 1 − (used − time))) (a zero budget counts as fully used); else True.
    The coin is a seeded splitmix64 stream (``seed``: an int in [0, 2**64 - 1], the initial
    state), one draw per throttled decision in array order, so an array call equals the same
    decisions made one scalar call at a time.
    ``bid_probability(...)`` returns the probability itself. Not thread-safe (the RNG).
    """

    __slots__ = ()

    def __init__(
        self,
        total: float = 86_400.0,
        clock: Clock | None = None,
        start: float | None = None,
        seed: int = 0,
        *,
        calendar: Any = None,
    ) -> None:
        clock, start, total = _calendar_defaults(calendar, clock, start, total)
        super().__init__(total, clock, start, seed)
        self._set_calendar(calendar)

    def _state_body(self) -> dict[str, Any]:
        return {"rng": self.rng_state}

    def _apply_state(self, st: dict[str, Any]) -> None:
        self.rng_state = st["rng"]

    def __repr__(self) -> str:
        return f"ThrottlingPacer(total={self.total:g}, rng_state={self.rng_state})"


class PIDPacer(_Saveable, _PIDPacer):
    """A PID controller on the gap between spend and a target curve, per campaign.

    ``PIDPacer(budget, total=86400.0, clock=None, start=None, *, kp=10.0, ki=50.0, kd=0.0,
    output="multiplier", base=None, lo=None, hi=None, profile=None, seed=0)``

    ``budget`` (scalar or array) fixes the campaigns' shape. The error is
    e = (budget × curve(elapsed / total) − spent) / budget, positive when behind the curve
    (``curve`` is the straight line, or the cumulative ``profile``). ``update(spent,
    elapsed=None)`` integrates e over time (in units of the period) since the last update and
    refreshes the derivative; ``output(spent)`` is clip(base + kp·e + ki·I + kd·D, lo, hi),
    with P on the *current* gap and I, D from the last update. Anti-windup: the integral is
    clamped so that ki·I alone stays within [lo − base, hi − base], and it is not integrated
    further while the output is saturated in the direction of the error (conditional
    integration).

    ``output="multiplier"`` (base 1, range [0.1, 3]): ``multiplier()`` is the output.
    ``output="participation"`` (base 0.5, range [0.01, 1]): ``multiplier()`` is 1 and
    ``should_bid`` bids with probability = the output (a coin seeded by ``seed``, an int in
    [0, 2**64 - 1]) after the hard cap.
    ``budget``/``elapsed``/``total`` arguments default to the constructor's and the clock.
    Time may not go backwards per campaign (an earlier ``elapsed`` than the last update is
    refused). Not thread-safe: feed one pacer from one thread.
    """

    __slots__ = ()

    def __init__(
        self,
        budget: ArrayLike,
        total: float = 86_400.0,
        clock: Clock | None = None,
        start: float | None = None,
        *,
        kp: float = 10.0,
        ki: float = 50.0,
        kd: float = 0.0,
        output: str = "multiplier",
        base: float | None = None,
        lo: float | None = None,
        hi: float | None = None,
        profile: ArrayLike | None = None,
        seed: int = 0,
        calendar: Any = None,
    ) -> None:
        clock, start, total = _calendar_defaults(calendar, clock, start, total)
        super().__init__(budget, total, clock, start, kp=kp, ki=ki, kd=kd, output=output,
                         base=base, lo=lo, hi=hi, profile=profile, seed=seed)
        self._set_calendar(calendar)

    def _state_body(self) -> dict[str, Any]:
        cum = self.cumulative_profile
        return {
            "budget": self.budget,
            "gains": self.gains,
            "output": self.output_kind,
            "profile": None if cum.shape[0] == 2 else np.diff(cum),
            **self._controller_state(),
        }

    @classmethod
    def _from_body(cls, st: dict[str, Any], clock: Clock | None) -> Self:
        g = dict(st["gains"])
        return cls._build(st, clock, g)

    @classmethod
    def _build(cls, st: dict[str, Any], clock: Clock | None, g: dict[str, Any]) -> Self:
        return cls(st["budget"], float(st["total"]), clock, 0.0, output=st["output"],
                   profile=st["profile"], **g)  # fmt: skip

    def _apply_state(self, st: dict[str, Any]) -> None:
        self._set_controller_state(st["integral"], st["derivative"], st["last_error"],
                                   st["last_update"], st["updates"], st["rng"])  # fmt: skip

    def __repr__(self) -> str:
        g = self.gains
        return (
            f"{type(self).__name__}(campaigns={self.shape}, total={self.total:g}, "
            f"output={self.output_kind!r}, kp={g['kp']:g}, ki={g['ki']:g}, kd={g['kd']:g}, "
            f"range=[{g['lo']:g}, {g['hi']:g}], buckets={len(self.cumulative_profile) - 1})"
        )


_PROFILE_BUCKETS = (24, 1440)


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def learn_profile(history: ArrayLike, buckets: int | None = None) -> np.ndarray:
    """The expected traffic profile of a day from past days' traffic counts.

    ``history``: counts per bucket, shape ``(days, B)`` or ``(B,)`` for one day, with B = 24
    (hours) or 1440 (minutes). ``buckets=24`` folds a minute history into hours. Returns the
    mean day (shape ``(buckets,)``), normalised to sum to 1. Every count must be finite and
    >= 0 and the history must hold some traffic.
    """
    h = _float_array_arg(history, "history", "an array of traffic counts")
    if h.ndim == 1:
        h = h[None, :]
    if h.ndim != 2 or h.shape[0] == 0 or h.shape[1] == 0:
        raise InvalidInputError(
            f"history must be (days, buckets) or (buckets,) and non-empty, got shape {h.shape}"
        )
    if h.shape[1] not in _PROFILE_BUCKETS:
        raise InvalidInputError(
            f"history has {h.shape[1]} buckets per day: use 24 (hours) or 1440 (minutes)"
        )
    bad = np.argwhere(~(np.isfinite(h) & (h >= 0)))
    if bad.size:
        d, b = (int(x) for x in bad[0])
        raise InvalidInputError(
            f"history[{d}, {b}] = {float(h[d, b])!r} must be finite and >= 0"
        )
    if buckets is None:
        buckets = h.shape[1]
    if not _is_int(buckets) or buckets not in _PROFILE_BUCKETS or buckets > h.shape[1]:
        raise InvalidInputError(
            f"buckets must be 24 or 1440 and at most the history's {h.shape[1]}, got {buckets!r}"
        )
    h = h.reshape(h.shape[0], buckets, h.shape[1] // buckets).sum(axis=2)
    day = h.mean(axis=0)
    total = float(day.sum())
    if not total > 0:
        raise InvalidInputError("history holds no traffic (all counts are 0)")
    return day / total


class AdaptivePacer(PIDPacer):
    """A :class:`PIDPacer` whose target curve follows the day's expected traffic.

    ``AdaptivePacer(budget, profile, total=86400.0, ...)``: ``profile`` holds the expected
    traffic of each of 24 (hourly) or 1440 (per-minute) buckets of the period (any positive
    scale); the target at day fraction x is the cumulative profile, linear inside a bucket, so
    the campaign is asked to spend where the traffic is. ``AdaptivePacer.from_history(budget,
    history, ...)`` learns the profile with :func:`learn_profile`. Other keywords as
    :class:`PIDPacer` (same defaults).
    """

    __slots__ = ()

    def __init__(
        self,
        budget: ArrayLike,
        profile: ArrayLike,
        total: float = 86_400.0,
        clock: Clock | None = None,
        start: float | None = None,
        **gains: Any,
    ) -> None:
        p = _float_array_arg(profile, "profile") if profile is not None else None
        if p is None or p.ndim != 1 or p.shape[0] not in _PROFILE_BUCKETS:
            shape = None if p is None else p.shape
            raise InvalidInputError(
                f"profile must be 1-D with 24 or 1440 buckets, got shape {shape}"
            )
        super().__init__(budget, total, clock, start, profile=p, **gains)

    @classmethod
    def _build(cls, st: dict[str, Any], clock: Clock | None, g: dict[str, Any]) -> Self:
        return cls(st["budget"], st["profile"], float(st["total"]), clock, 0.0,
                   output=st["output"], **g)  # fmt: skip

    @classmethod
    def from_history(
        cls, budget: ArrayLike, history: ArrayLike, buckets: int | None = None, **kwargs: Any
    ) -> AdaptivePacer:
        """Build the pacer with the profile :func:`learn_profile` learns from ``history``."""
        return cls(budget, learn_profile(history, buckets), **kwargs)

    @property
    def profile(self) -> np.ndarray:
        """The traffic profile, normalised to sum to 1."""
        return np.diff(self.cumulative_profile)


def value_bid(
    p_ctr: ArrayLike,
    p_cvr: ArrayLike,
    value: ArrayLike,
    target_roi: ArrayLike,
    multiplier: ArrayLike,
    min_bid: float = 0.10,
    max_bid: float = 50.0,
) -> Any:
    """Value-based bid: p_ctr × p_cvr × value / target_roi × multiplier, clipped to
    [min_bid, max_bid]. Scalars or arrays (same shape, scalars broadcast); a float for
    all-scalar input. p_ctr and p_cvr must be in [0, 1], value and multiplier finite and
    >= 0, target_roi finite and > 0, 0 <= min_bid <= max_bid."""
    return _pacing_value_bid(p_ctr, p_cvr, value, target_roi, multiplier, min_bid, max_bid)
