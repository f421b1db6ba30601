"""Months as integers (``upcurve.months``): every package that counts months counts them the same way."""

from __future__ import annotations

import calendar
import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from upcurve.months import month_end, month_index, month_label, month_start, month_start_after

days = st.dates(dt.date(1900, 1, 1), dt.date(2199, 12, 31))


@given(days)
def test_a_day_lies_between_its_months_first_and_last_day(day: dt.date) -> None:
    index = month_index(day)
    assert month_start(index) == day.replace(day=1)
    assert month_end(index) == day.replace(day=calendar.monthrange(day.year, day.month)[1])
    assert month_end(index) + dt.timedelta(days=1) == month_start(index + 1)
    assert month_label(index) == day.strftime("%Y-%m")


@given(days, st.integers(-600, 600))
def test_months_after_a_day_count_calendar_months(day: dt.date, months: int) -> None:
    first = month_start_after(day, months)
    assert first.day == 1
    assert (first.year - day.year) * 12 + first.month - day.month == months


def test_hand_computed_months() -> None:
    assert month_index(dt.date(2024, 1, 15)) == 2024 * 12
    assert month_end(month_index(dt.date(2024, 2, 10))) == dt.date(2024, 2, 29)  # a leap year's February
    assert month_end(month_index(dt.date(2100, 2, 10))) == dt.date(2100, 2, 28)  # a century is not a leap year
    assert month_start_after(dt.date(2024, 12, 31), 1) == dt.date(2025, 1, 1)
    assert month_start_after(dt.date(2024, 1, 31), -1) == dt.date(2023, 12, 1)
    assert month_label(month_index(dt.date(999, 5, 1))) == "0999-05"
