"""Days that roll over: DayCalendar against zoneinfo wall-clock arithmetic, pacers that follow the
calendar, and DailyBudget (carry-over, mid-day changes, a pacer kept in step) against a model."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from rtbcore import DailyBudget, DayCalendar, LinearPacer, PIDPacer, cap_bid, worst_case_cost
from rtbcore.errors import InvalidInputError

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]
# 2026-01-01 .. 2027-12-31 UTC
T0, T1 = 1_767_225_600.0, 1_830_297_600.0


def _midnight(day: dt.date, tz: ZoneInfo, at: dt.time) -> float:
    return dt.datetime(day.year, day.month, day.day, at.hour, at.minute, tzinfo=tz).timestamp()


@settings(max_examples=300, deadline=None)
@given(tz=st.sampled_from(ZONES), t=st.floats(T0, T1), hh=st.integers(0, 23))
def test_a_day_is_local_day_start_to_day_start(tz, t, hh):
    cal = DayCalendar(tz, f"{hh:02d}:00")
    p = cal.period(t)
    z = ZoneInfo(tz)
    assert p.start <= t < p.end
    assert p.start == _midnight(p.day, z, dt.time(hh))
    assert p.end == _midnight(p.day + dt.timedelta(days=1), z, dt.time(hh))
    # 24 h, or 24 h +- the zone's DST shift (1 h; 30 min on Lord Howe Island)
    assert p.length in (86_400.0, 82_800.0, 90_000.0, 84_600.0, 88_200.0)
    assert cal.period(p.end).start == p.end  # days are back to back


def test_dst_days_are_23_and_25_hours():
    cal = DayCalendar("America/New_York")
    z = ZoneInfo("America/New_York")
    noon = dt.datetime(2026, 3, 8, 12, tzinfo=z).timestamp()
    assert cal.period(noon).length == 23 * 3600
    noon = dt.datetime(2026, 11, 1, 12, tzinfo=z).timestamp()
    assert cal.period(noon).length == 25 * 3600
    assert DayCalendar("UTC").period(noon).length == 24 * 3600


def test_bad_calendar_arguments_are_named():
    with pytest.raises(InvalidInputError, match="tz"):
        DayCalendar("Mars/Olympus_Mons")
    with pytest.raises(InvalidInputError, match="day_start"):
        DayCalendar("UTC", "25:00")
    with pytest.raises(InvalidInputError, match="t:"):
        DayCalendar().period(float("nan"))


def test_a_pacer_on_a_calendar_rolls_over_instead_of_refusing():
    z = ZoneInfo("Europe/Berlin")
    now = [dt.datetime(2026, 3, 28, 23, 0, tzinfo=z).timestamp()]
    cal = DayCalendar("Europe/Berlin")
    lin = LinearPacer(clock=lambda: now[0], calendar=cal)
    assert lin.total == 86_400 and lin.elapsed() == 23 * 3600
    now[0] += 2 * 3600  # 01:00 on the spring-forward day (23 h long)
    assert lin.elapsed() == 3600 and lin.total == 23 * 3600
    pid = PIDPacer(np.array([100.0, 50.0]), clock=lambda: now[0], calendar=cal)
    pid.update(np.array([10.0, 10.0]))
    assert pid.updates == 1
    now[0] += 86_400  # the next day: a fresh controller
    assert pid.elapsed() == 2 * 3600 and pid.updates == 0 and pid.total == 86_400
    # without a calendar the period still ends
    plain = LinearPacer(clock=lambda: now[0], start=now[0])
    now[0] += 86_401
    with pytest.raises(InvalidInputError, match="past the end of the period"):
        plain.elapsed()
    plain.rollover()
    assert plain.elapsed() == 1.0


def test_pid_rollover_and_budget_change_are_all_or_nothing():
    pid = PIDPacer(np.array([100.0, 50.0]), start=0.0, clock=lambda: 0.0)
    pid.update(np.array([80.0, 0.0]), elapsed=43_200)
    before = (pid.start, pid.total, pid.budget.tolist(), pid.integral.tolist())
    with pytest.raises(InvalidInputError, match=r"budget\[1\]"):
        pid.rollover(budget=np.array([1.0, -1.0]))
    with pytest.raises(InvalidInputError, match="shape"):
        pid.set_budget(np.ones(3))
    assert (pid.start, pid.total, pid.budget.tolist(), pid.integral.tolist()) == before
    hi = pid.multiplier(np.array([50.0, 25.0]), elapsed=43_200)
    pid.set_budget(np.array([200.0, 50.0]))  # mid-day: campaign 0 is now far behind
    assert pid.multiplier(np.array([50.0, 25.0]), elapsed=43_200)[0] > hi[0]


def test_an_uncapped_carry_over_of_a_zero_budget_is_zero_not_nan():
    # carry_cap = inf means no cap, for a zero daily budget too (inf x 0 is NaN)
    now = [1_767_225_600.0]  # 2026-01-01 00:00 UTC
    book = DailyBudget(np.array([0.0, 10.0]), DayCalendar("UTC"), carry=0.5,
                       carry_cap=float("inf"), clock=lambda: now[0])  # fmt: skip
    now[0] += 86_400.0
    assert book.advance() == 1
    assert book.carried.tolist() == [0.0, 5.0]
    assert book.budget.tolist() == [0.0, 15.0]


def test_cap_bid_and_worst_case_cost():
    assert cap_bid(95.0, 100.0, 8.0) == 5.0
    assert cap_bid(100.0, 100.0, 8.0) == 0.0 and cap_bid(120.0, 100.0, 8.0) == 0.0
    b = cap_bid(np.array([0.0, 99.0]), 100.0, np.array([2.0, np.nan]))
    assert b[0] == 2.0 and np.isnan(b[1])
    assert cap_bid(99.0, 100.0, 3000.0, units="cpm") == 1000.0  # 1 left = 1000 CPM
    assert worst_case_cost([1.0, np.nan, 2.5]) == 3.5
    assert worst_case_cost([1000.0, 500.0], units="cpm") == 1.5
    with pytest.raises(InvalidInputError, match=r"spent = -1"):
        cap_bid(-1.0, 100.0, 1.0)
    with pytest.raises(InvalidInputError, match="units"):
        worst_case_cost([1.0], units="cpc")


class BudgetDays(RuleBasedStateMachine):
    """DailyBudget with a PIDPacer in step, against a model of days, carry and spend."""

    @initialize(
        tz=st.sampled_from(ZONES),
        t=st.floats(T0, T1),
        daily=st.lists(st.integers(0, 1000), min_size=1, max_size=3),
        carry=st.sampled_from([0.0, 0.5, 1.0]),
        cap=st.sampled_from([0.0, 0.25, 1.0, float("inf")]),
    )
    def setup(self, tz, t, daily, carry, cap):
        self.cal = DayCalendar(tz)
        self.now = t
        self.daily = np.array(daily, dtype=float)
        self.pid = PIDPacer(self.daily, clock=lambda: self.now, start=0.0)
        self.book = DailyBudget(self.daily, self.cal, carry=carry, carry_cap=cap,
                                clock=lambda: self.now, pacer=self.pid)  # fmt: skip
        self.carry, self.cap = carry, cap
        self.m_day = self.cal.period(t)
        self.m_carried = np.zeros_like(self.daily)
        self.m_budget = self.daily.copy()
        self.m_spent = np.zeros_like(self.daily)

    @rule(dt_=st.floats(0.0, 3 * 86_400.0))
    def wait(self, dt_):
        self.now += dt_
        rolled = self.book.advance()
        n = 0
        while self.now >= self.m_day.end:  # the model: day by day
            unspent = np.maximum(self.m_budget - self.m_spent, 0.0)
            cap = np.inf if self.cap == np.inf else self.cap * self.daily
            self.m_carried = np.minimum(self.carry * unspent, cap)
            self.m_budget = self.daily + self.m_carried
            self.m_spent = np.zeros_like(self.daily)
            self.m_day = self.cal.period(self.m_day.end)
            n += 1
        assert rolled == n
        if n:
            assert self.pid.updates == 0

    @rule(share=st.floats(0.0, 1.0))
    def spend(self, share):
        amounts = np.floor(self.book.remaining * share)
        self.book.record_spend(amounts)
        self.m_spent = self.m_spent + amounts
        self.pid.update(self.book.spent, elapsed=self.book.elapsed())

    @rule(new=st.integers(0, 2000), today=st.booleans())
    def change(self, new, today):
        self.daily = np.full_like(self.daily, float(new))
        self.book.set_daily(self.daily, today=today)
        if today:
            self.m_budget = self.daily + self.m_carried

    @invariant()
    def agrees(self):
        if not hasattr(self, "book"):
            return
        assert self.book.period == self.m_day
        np.testing.assert_array_equal(self.book.budget, self.m_budget)
        np.testing.assert_array_equal(self.book.spent, self.m_spent)
        assert (self.book.remaining >= 0).all()
        assert self.pid.start == self.m_day.start and self.pid.total == self.m_day.length
        np.testing.assert_array_equal(self.pid.budget, self.m_budget)
        assert 0.0 <= self.book.elapsed() <= self.book.total


TestBudgetDays = BudgetDays.TestCase
TestBudgetDays.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
