"""The mechanisms that make one simulated company work differently from another, as set by its profile.

Each is a field of :class:`~upcurve.simulate.catalog.CompanyProfile` whose default is the way ``mid_market`` and
``enterprise`` work, so they simulate the same company, seed for seed, as before the mechanism existed:

- **price rises** (``price_rises``): list prices rise at given points of the history, for new periods only (an
  annual contract keeps its price until renewal); several rises compound. Default: 10% halfway through.
- **changes only at renewal** (``renewal_changes_only``): annual contracts buy seats and buy or drop add-ons only
  in their renewal month; the need shows first (users past their seats, previews and trials that go on until
  renewal).
- **seasonality** (``expansion_seasonality``, ``churn_seasonality`` and their peak months): a yearly cycle, such as
  budgets that release expansions in Q1 and Q4, scales the rates of upgrades, add-on purchases, team growth and
  churn by the calendar month (:func:`seasonal_factor`).
- **metered usage without a limit** (``api_included = 0``): every API call is billed from the first; the API plan's
  ``usage_limit`` is empty. ``usage_ceiling`` caps how far an account's usage grows.
- **the mix of levers** (``invites``, ``upgrade``, ``cross_sell``, ``usage_growth``, ``api_share``, ``api_calls``,
  ``api_adoption``): how much of a company's expansion comes from seats, tiers, add-ons or usage.

Examples
--------
>>> from upcurve.simulate.catalog import CompanyProfile
>>> [list_price_factor(CompanyProfile(), 10, m) for m in (4, 5)]
[1.0, 1.1]
>>> round(seasonal_factor(0.5, 1, dt.date(2023, 1, 1), 6), 3)  # month 6 is July, opposite a January peak
0.5
"""

from __future__ import annotations

import datetime as dt
import math

from upcurve.simulate.catalog import CompanyProfile

__all__ = ["calendar_month", "list_price_factor", "price_rise_months", "seasonal_factor"]


def price_rise_months(profile: CompanyProfile, months: int) -> list[int]:
    """The month indices of a ``months``-month history from which each of the profile's list-price rises holds."""
    return [int(months * at) for at, _ in profile.price_rises]


def list_price_factor(profile: CompanyProfile, months: int, m: int) -> float:
    """The multiplier of every list price for periods starting in month ``m`` of a ``months``-month history.

    Formula
    -------
    The product of the multipliers of the rises whose month (``int(months × share)``) is at or before ``m``;
    1.0 before the first. ``1.1`` reads: new periods are billed 10% above the catalogue's list price.
    """
    factor = 1.0
    for (_, multiplier), month in zip(profile.price_rises, price_rise_months(profile, months), strict=True):
        if m >= month:
            factor *= multiplier
    return factor


def calendar_month(start: dt.date, m: int) -> int:
    """The calendar month (1–12) of month index ``m`` of a history starting at ``start``."""
    return (start.month - 1 + m) % 12 + 1


def seasonal_factor(amplitude: float, peak_month: int, start: dt.date, m: int) -> float:
    """How much a seasonal rate is scaled in month index ``m`` of a history starting at ``start``.

    Formula
    -------
    ``1 + amplitude × cos(2π (calendar month − peak_month) / 12)``: ``1 + amplitude`` in the peak month,
    ``1 − amplitude`` six months away, 1 on average over a year. Exactly 1.0 when ``amplitude`` is 0.
    """
    if not amplitude:
        return 1.0
    return 1.0 + amplitude * math.cos(2 * math.pi * (calendar_month(start, m) - peak_month) / 12)
