"""Months as integers: ``year × 12 + month − 1``, so that the next month is ``+ 1`` (the numbering of every table
keyed by month, :func:`upcurve.engine.month_idx_of` in the engine). Plain calendar arithmetic, below every package
that needs it (pricing sits below revenue, and both count months)."""

from __future__ import annotations

import datetime as dt

__all__ = ["month_end", "month_index", "month_label", "month_start", "month_start_after"]


def month_index(day: dt.date) -> int:
    """A month as one integer (``year * 12 + month - 1``), so that the next month is ``+ 1`` on every engine.

    >>> month_index(dt.date(2024, 1, 31)) + 1 == month_index(dt.date(2024, 2, 1))
    True
    """
    return day.year * 12 + day.month - 1


def month_start(index: int) -> dt.date:
    """The first day of a month index."""
    return dt.date(index // 12, index % 12 + 1, 1)


def month_end(index: int) -> dt.date:
    """The last day of a month index."""
    return month_start(index + 1) - dt.timedelta(days=1)


def month_label(index: int) -> str:
    """``YYYY-MM`` for a month index."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_start_after(day: dt.date, months: int = 0) -> dt.date:
    """The first day of the month ``months`` calendar months after ``day``'s (its own month's at 0, earlier ones
    below 0).

    >>> month_start_after(dt.date(2024, 11, 20), 2), month_start_after(dt.date(2024, 3, 31), -3)
    (datetime.date(2025, 1, 1), datetime.date(2023, 12, 1))
    """
    return month_start(month_index(day) + months)
