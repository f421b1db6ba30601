"""Daily exchange rates: every value converted at the rate in force on the day it is counted, to the cent.

Where the numbers come from: the hand-computed golden case ``daily_exchange_rates.yaml``; here, two properties
against conversions done in Python (the rate in force on a day: its own, else the latest earlier day's, else the
first), and the invariant that a monthly rate is the same as a daily rate on the first of its month.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import ibis
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upcurve.config import RevenuePolicy
from upcurve.revenue import line_months, month_calendar, services_revenue

START = dt.date(2024, 1, 1)
PLANS = pa.table({"plan_id": ["p"], "product": ["core"], "tier_rank": [1], "pricing": ["flat"],
                  "interval_months": [1]})
LINES = pa.schema([("line_id", pa.string()), ("account_id", pa.string()), ("plan_id", pa.string()),
                   ("kind", pa.string()), ("quantity", pa.float64()), ("amount", pa.float64()),
                   ("currency", pa.string()), ("period_start", pa.date32()), ("period_end", pa.date32())])

recurring = st.tuples(
    st.sampled_from(["EUR", "GBP", None]),
    st.integers(-50_000, 900_000),  # amount in cents (a negative one: a proration credit)
    st.integers(0, 14),  # first month
    st.sampled_from([1, 1, 3, 12]),  # months of service
)
one_time = st.tuples(st.sampled_from(["EUR", "GBP", None]), st.integers(-90_000, 900_000), st.integers(0, 450))
# a currency's rates: day offsets from START → rate
daily = st.dictionaries(st.integers(-40, 500), st.decimals("0.004", "2.5", places=4), min_size=1, max_size=12)


def _month(idx: int) -> dt.date:
    return dt.date(START.year + idx // 12, idx % 12 + 1, 1)


def _lines(subscriptions: list, charges: list) -> pa.Table:
    rows = [(f"s{i}", "subscription", c, cents, _month(s), _month(s + n))
            for i, (c, cents, s, n) in enumerate(subscriptions)]
    rows += [(f"o{i}", "one_time", c, cents, START + dt.timedelta(days=d), START + dt.timedelta(days=d + 1))
             for i, (c, cents, d) in enumerate(charges)]
    return pa.table({
        "line_id": [r[0] for r in rows], "account_id": ["A"] * len(rows),
        "plan_id": ["p" if r[1] == "subscription" else None for r in rows], "kind": [r[1] for r in rows],
        "quantity": [1.0] * len(rows), "amount": [r[3] / 100 for r in rows], "currency": [r[2] for r in rows],
        "period_start": [r[4] for r in rows], "period_end": [r[5] for r in rows]}, schema=LINES)


def _run(lines: pa.Table, fx: pa.Table, months: int) -> tuple[dict, dict]:
    """Each line-month's (mrr_cents, cc_mrr_cents), and each month's services revenue in cents."""
    cal = month_calendar(START, _month(months) - dt.timedelta(days=1))
    policy = RevenuePolicy()
    con = ibis.duckdb.connect()
    lm = line_months(ibis.memtable(lines), ibis.memtable(PLANS), ibis.memtable(fx), cal, policy=policy)
    sr = services_revenue(ibis.memtable(lines), ibis.memtable(fx), cal, policy=policy)
    base = START.year * 12 + START.month - 1
    per_line = {(r["line_id"], r["month_idx"] - base): (r["mrr_cents"], r["cc_mrr_cents"])
                for r in con.to_pyarrow(lm).to_pylist()}
    return per_line, {r["month_idx"] - base: r["services_cents"] for r in con.to_pyarrow(sr).to_pylist()}


def _daily_table(rates: dict[str, dict[int, Decimal]]) -> pa.Table:
    rows = [(START + dt.timedelta(days=d), c, float(r)) for c, known in rates.items() for d, r in known.items()]
    return pa.table({"day": pa.array([r[0] for r in rows], pa.date32()), "currency": [r[1] for r in rows],
                     "rate": [r[2] for r in rows]})


def _in_force(known: dict[int, Decimal], day: dt.date) -> Decimal:
    """The rate in force on ``day``: its own or the latest earlier day's; before the first, the first."""
    offset = (day - START).days
    earlier = [d for d in known if d <= offset]
    return known[max(earlier)] if earlier else known[min(known)]


def _last_day(idx: int) -> dt.date:
    return _month(idx + 1) - dt.timedelta(days=1)


def _cents(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))  # half away from zero, as the ledger rounds


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(recurring, max_size=8), st.lists(one_time, max_size=6), daily, daily, st.integers(1, 16))
def test_each_value_converts_at_the_rate_in_force_on_its_day(subscriptions, charges, eur, gbp, months) -> None:
    rates = {"EUR": eur, "GBP": gbp}
    per_line, services = _run(_lines(subscriptions, charges), _daily_table(rates), months)

    def rate(currency: str | None, day: dt.date) -> Decimal:
        return Decimal(1) if currency is None else _in_force(rates[currency], day)

    expected = set()
    for i, (currency, cents, start, length) in enumerate(subscriptions):
        monthly = Decimal(cents) / length  # whole months: the service period is a calendar-month difference
        for m in range(start, min(start + length, months)):
            expected.add((f"s{i}", m))
            # measured on the month's last day; the constant-currency value at the previous month's (month 0: its own)
            want = (_cents(monthly * rate(currency, _last_day(m))),
                    _cents(monthly * rate(currency, _last_day(max(m - 1, 0)))))
            got = per_line[(f"s{i}", m)]
            # rounded once, to the cent: a half cent in float arithmetic may fall either way
            assert all(abs(g - w) <= 1 for g, w in zip(got, want, strict=True)), (i, m, got, want)
    assert set(per_line) == expected
    booked: dict[int, int] = {}
    for currency, cents, d in charges:
        day = START + dt.timedelta(days=d)
        m = (day.year - START.year) * 12 + day.month - 1
        if m < months:
            booked[m] = booked.get(m, 0) + _cents(Decimal(cents) * rate(currency, day))
    assert set(services) == set(booked)
    for m, cents in booked.items():
        assert abs(services[m] - cents) <= len(charges), m  # each line rounded once: a float's last bit at most


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(recurring, max_size=8), st.lists(one_time, max_size=6),
       st.dictionaries(st.integers(-2, 16), st.decimals("0.004", "2.5", places=4), min_size=1, max_size=10),
       st.integers(1, 16))
def test_a_monthly_rate_is_a_daily_rate_from_the_first_of_its_month(subscriptions, charges, known, months) -> None:
    lines = _lines(subscriptions, charges)
    firsts = [_month(m) for m in known]
    monthly = pa.table({"month": pa.array(firsts, pa.date32()), "currency": ["EUR"] * len(known),
                        "rate": [float(r) for r in known.values()]})
    as_days = pa.table({"day": pa.array(firsts, pa.date32()), "currency": ["EUR"] * len(known),
                        "rate": [float(r) for r in known.values()]})
    gbp = {"currency": ["GBP"], "rate": [1.25]}
    monthly = pa.concat_tables([monthly, pa.table({"month": pa.array([START], pa.date32()), **gbp})])
    as_days = pa.concat_tables([as_days, pa.table({"day": pa.array([START], pa.date32()), **gbp})])
    assert _run(lines, monthly, months) == _run(lines, as_days, months)
