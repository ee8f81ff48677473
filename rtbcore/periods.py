"""Budget periods on the calendar: a campaign's day runs from local day start to day start.

:class:`DayCalendar` maps a Unix time (seconds, as ``time.time()``) to the day that contains it
in a time zone (``zoneinfo``), so a day is 24 hours long except on the days a daylight-saving
change falls on: 23 hours in spring, 25 in autumn. Pacers take it as ``calendar=`` and
:class:`rtbcore.budget.DailyBudget` rolls budgets over with it.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rtbcore.errors import InvalidInputError

__all__ = ["DayCalendar", "Period"]


class Period(NamedTuple):
    """One period: ``day`` (the local date it starts on), ``start`` (Unix seconds) and
    ``length`` (seconds: 86400, or 82800 / 90000 across a daylight-saving change)."""

    day: _dt.date
    start: float
    length: float

    @property
    def end(self) -> float:
        return self.start + self.length


class DayCalendar:
    """Days from ``day_start`` (local time, ``"HH:MM"``) to the next, in the time zone ``tz``
    (an IANA name such as ``"America/New_York"``; ``"UTC"`` by default).

    ``bounds(t)`` returns ``(start, length)`` of the day containing Unix time ``t`` (the
    interface pacers use), ``period(t)`` the whole :class:`Period`. A day start that a clock
    change skips (02:30 on a spring-forward night) is taken at the time it maps to by the
    offset before the change.
    """

    def __init__(self, tz: str = "UTC", day_start: str = "00:00") -> None:
        if not isinstance(tz, str):
            raise InvalidInputError(f"tz: expected an IANA time zone name, got {tz!r}")
        try:
            self.tz = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise InvalidInputError(f"tz: unknown time zone {tz!r} ({e})") from None
        try:
            h, m = (int(x) for x in str(day_start).split(":"))
            self.day_start = _dt.time(h, m)
        except ValueError:
            raise InvalidInputError(
                f"day_start: expected 'HH:MM' (00:00 to 23:59), got {day_start!r}"
            ) from None
        self.name = tz

    def _start_of(self, day: _dt.date) -> float:
        return _dt.datetime.combine(day, self.day_start, tzinfo=self.tz).timestamp()

    def period(self, t: float) -> Period:
        """The day containing Unix time ``t`` (its start included, its end excluded)."""
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise InvalidInputError(f"t: expected finite Unix seconds, got {t!r}")
        local = _dt.datetime.fromtimestamp(t, self.tz)
        day = local.date()
        if self._start_of(day) > t:
            day -= _dt.timedelta(days=1)
        elif self._start_of(day + _dt.timedelta(days=1)) <= t:
            day += _dt.timedelta(days=1)
        start = self._start_of(day)
        return Period(day, start, self._start_of(day + _dt.timedelta(days=1)) - start)

    def bounds(self, t: float) -> tuple[float, float]:
        """``(start, length)`` of the day containing ``t``."""
        p = self.period(t)
        return p.start, p.length

    def to_state(self) -> dict[str, str]:
        return {"tz": self.name, "day_start": self.day_start.strftime("%H:%M")}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DayCalendar) and self.to_state() == other.to_state()

    def __hash__(self) -> int:
        return hash((self.name, self.day_start))

    def __reduce__(self) -> tuple[type[DayCalendar], tuple[str, str]]:
        return (DayCalendar, (self.name, self.day_start.strftime("%H:%M")))

    def __repr__(self) -> str:
        return f"DayCalendar({self.name!r}, day_start={self.day_start.strftime('%H:%M')!r})"
