"""The MRR ledger: what each invoice line contributes to each month, in integer cents of the reporting currency.

Money is kept as whole cents (``int64``) from the moment a line's monthly amount is converted, so every sum,
bridge and reconciliation is exact on every engine. Each line is rounded once per month, half away from zero.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from upcurve.config import RevenuePolicy
from upcurve.contract.known import rate_day
from upcurve.engine import as_int, month_idx_of, round_half_away

__all__ = ["counted_back", "coupon_mrr", "fx_rates_by_month", "fx_rates_on_days", "line_months",
           "months_in_period", "plan_mrr", "product_months", "proration_months", "services_revenue"]

#: Days in an average month, for periods that do not run from one day of the month to the same day of another.
DAYS_PER_MONTH = 365.25 / 12


def days_in_month(day: ir.DateValue) -> ir.IntegerValue:
    """The number of days of ``day``'s month, by arithmetic alone (every engine has it)."""
    return _days_of(day.year(), day.month())


def _days_of(year: ir.IntegerValue, month: ir.IntegerValue) -> ir.IntegerValue:
    """The number of days of ``month`` (1–12) of ``year``."""
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    return ibis.cases(
        (month == 2, ibis.ifelse(leap, 29, 28)),
        (month.isin([4, 6, 9, 11]), 30),
        else_=31,
    )


def months_in_period(start: ir.DateValue, end: ir.DateValue) -> ir.FloatingValue:
    """How many months the service period ``[start, end)`` lasts.

    Formula
    -------
    The calendar-month difference when the period runs from a day of the month to the same day of a later month
    (Jan 15 → Feb 15 is 1, Jan 15 → Jan 15 next year is 12); otherwise its days ÷ (365.25 / 12).

    Edge cases
    ----------
    Month-end anniversaries count as calendar months: an end on the last day of its month matches any start day
    at or after it (Jan 31 → Feb 28 is 1 month, as Stripe clamps a billing anchor of the 31st), and a period from
    one month's last day to another's (Feb 28 → Mar 31) is 1 month. Short prorations (Jan 15 → Feb 1) use days.
    """
    start_day = start.day()
    end_day = end.day()
    end_is_last = end_day == days_in_month(end)
    start_is_last = start_day == days_in_month(start)
    aligned = (start_day == end_day) | (end_is_last & (start_day >= end_day)) | (start_is_last & end_is_last)
    calendar_months = (end.year() - start.year()) * 12 + end.month() - start.month()
    days = end.delta(start, unit="day")
    return ibis.ifelse(aligned, calendar_months.cast("float64"), days.cast("float64") / DAYS_PER_MONTH)


def counted_back(end: ir.DateValue, interval_months: ir.IntegerValue) -> ir.DateValue:
    """The day ``interval_months`` (1 when empty) before ``end``: the same day of that month, or its last day when
    it has fewer days (Mar 31 − 1 month is Feb 28 or 29)."""
    interval = interval_months.cast("int64").fill_null(1)
    index = month_idx_of(end) - interval
    year = (index // 12).cast("int32")
    month = (index % 12 + 1).cast("int32")
    # the year and month as numbers, not through a date: SQLite's parser refuses the deeper expression
    day = ibis.least(end.day().cast("int32"), _days_of(year, month).cast("int32"))
    return ibis.date(year, month, day)


def proration_months(start: ir.DateValue, end: ir.DateValue, interval_months: ir.IntegerValue,
                     full_start: ir.DateValue | None = None, share: ir.NumericValue | None = None
                     ) -> ir.FloatingValue:
    """How many months a proration line ``[start, end)`` stands for: its share of the full billing period it ends,
    in that period's months.

    Formula
    -------
    ``interval × share``, ``interval`` the plan's ``interval_months`` (1 when empty) and ``share`` the line's
    ``proration_share`` when the source gives it (the share its billing system charged: Stripe prorates to the
    second), else ``days(start, end) ÷ days(full_start, end)``. A billing system prorates by the period it
    changes: 17 days of a 31-day January are 17/31 of a month, so a credit of −50 × 17/31 is −50 a month, exactly
    the plan it takes back (``days ÷ 30.44`` would leave −49.10 and a false movement).

    Edge cases
    ----------
    ``full_start`` is the start of the billing period the line ends: :func:`line_months` gives the one the
    account's regular line of the plan's interval ending the same day billed (a plan anchored on the 31st runs
    Jan 31 → Feb 29), else :func:`counted_back` from ``end`` (also the default here).
    """
    interval = interval_months.cast("int64").fill_null(1)
    begun = counted_back(end, interval) if full_start is None else full_start
    full_days = end.delta(begun, unit="day").cast("float64")
    by_days = end.delta(start, unit="day").cast("float64") / full_days
    return interval.cast("float64") * (by_days if share is None else ibis.coalesce(share.cast("float64"), by_days))


def fx_rates_on_days(fx_rates: ir.Table, days: ir.Table) -> ir.Table:
    """The rate of every currency in force on each day of ``days`` (its column ``day``).

    Formula
    -------
    ``rate``: the rate of the currency's latest rate day on or before the day. A daily rate is in force from its
    ``day``, a monthly one from the first of its ``month`` (so every day of a month with a monthly rate takes it,
    and a month without one the latest earlier month's); days before a currency's first rate take that first rate.

    Returns
    -------
    Columns ``day``, ``currency``, ``rate``: a row per distinct day and currency of the rates.
    """
    fx = fx_rates.select(currency=fx_rates.currency, fx_day=rate_day(fx_rates), rate=fx_rates.rate.cast("float64"))
    currencies = fx.select("currency").distinct()
    pairs = days.select("day").distinct().cross_join(currencies)
    known = pairs.left_join(fx, [pairs.currency == fx.currency, fx.fx_day <= pairs.day]).select(
        pairs.day, pairs.currency, fx.fx_day, fx.rate
    )
    newest_first = ibis.window(group_by=[known.day, known.currency], order_by=ibis.desc(known.fx_day))
    latest = known.mutate(_n=ibis.row_number().over(newest_first))
    latest = latest.filter(latest._n == 0)
    oldest_first = ibis.window(group_by=fx.currency, order_by=fx.fx_day)
    first = fx.mutate(_n=ibis.row_number().over(oldest_first))
    first = first.filter(first._n == 0).select("currency", first_rate=first.rate)
    return latest.join(first, "currency").select("day", "currency", rate=ibis.coalesce(latest.rate, first.first_rate))


def fx_rates_by_month(fx_rates: ir.Table, calendar: ir.Table) -> ir.Table:
    """The rate of every currency for every calendar month, and the previous month's.

    Formula
    -------
    ``rate``: the currency's rate in force on the month's measuring day (``measured_on``: its last day, the as-of
    date in the as-of month; see :func:`fx_rates_on_days`): with monthly rates, the month's own rate, or the
    latest earlier month's; with daily rates, the rate of that day or the latest earlier one. ``prev_rate``: the
    same for the previous month (the month's own rate in the calendar's first month).

    Returns
    -------
    Columns ``month_idx``, ``currency``, ``rate``, ``prev_rate``. Reporting-currency lines need no row here, unless
    the rates are quoted in another currency: the reporting currency's own rows then make the cross rates.
    """
    months = calendar.select("month_idx", day=calendar.measured_on)
    on_days = fx_rates_on_days(fx_rates, months)
    rated = months.join(on_days, "day").select("month_idx", "currency", "rate")
    before = rated.view()
    before = before.select(month_idx=before.month_idx + 1, currency=before.currency, prev_rate=before.rate)
    both = rated.left_join(before, [rated.month_idx == before.month_idx, rated.currency == before.currency])
    return both.select(
        rated.month_idx, rated.currency, rated.rate, prev_rate=ibis.coalesce(before.prev_rate, rated.rate)
    )


def _with_rates(
    lines: ir.Table, rates: ir.Table, line_col: str, policy: RevenuePolicy, rate_col: str = "month_idx"
) -> ir.Table:
    """Attach each line's ``rate`` (and, when ``rates`` has them, ``prev_rate``) into the reporting currency (1.0
    for it), matching the line's ``line_col`` with the rates' ``rate_col`` (a month or a day).

    When the reporting currency has rates of its own, ``fx_rates`` are quoted in another currency (the quote
    currency, see :class:`~upcurve.config.RevenuePolicy`) and each rate is a cross rate: the line currency's rate
    divided by the reporting currency's, both for the same month or day (each with its fallback). A line in a
    currency without rates is then in the quote currency, whose rate in itself is 1.
    """
    home = policy.reporting_currency
    lines = lines.mutate(currency=ibis.coalesce(lines.currency, ibis.literal(home)))
    has_prev = "prev_rate" in rates.columns
    own = rates.filter(rates.currency == home)
    own = own.select(_own_at=own[rate_col], _own_rate=own.rate,
                     _own_prev=own.prev_rate if has_prev else ibis.literal(1.0))
    # one chained join, one select: SQLite's parser refuses a query nested a few levels deeper
    joined = lines.left_join(
        rates, [lines.currency == rates.currency, lines[line_col] == rates[rate_col]]
    ).left_join(own, lines[line_col] == own._own_at)
    crossed = own._own_rate.notnull()
    quote = ibis.ifelse(crossed, 1.0, ibis.null("float64"))  # no rates: the quote currency, when not the home one
    is_home = lines.currency == home
    out = {"rate": ibis.ifelse(is_home, 1.0, ibis.coalesce(rates.rate, quote) / ibis.coalesce(own._own_rate, 1.0))}
    if has_prev:
        out["prev_rate"] = ibis.ifelse(
            is_home, 1.0, ibis.coalesce(rates.prev_rate, quote) / ibis.coalesce(own._own_prev, 1.0))
    return joined.select(
        *[lines[c] for c in lines.columns if c not in ("rate", "prev_rate")],  # an extra column may be named so
        **out,
    )


def line_months(
    invoice_lines: ir.Table,
    plans: ir.Table,
    fx_rates: ir.Table | None,
    calendar: ir.Table,
    *,
    policy: RevenuePolicy,
    prorations: bool = False,
) -> ir.Table:
    """Each recurring line's MRR in each month whose measuring day its service period contains.

    Formula
    -------
    ``mrr_cents = round(amount × rate(month) × 100 ÷ months_in_period(line))`` for every month whose
    ``measured_on`` day (its last day; the as-of date in the as-of month) falls in ``[period_start, period_end)``.
    ``rate(month)`` converts the line's currency into the reporting one: its ``fx_rates`` rate in force on the
    measuring day (the month's rate, or with daily rates that day's; :func:`fx_rates_by_month`), or, when the rates
    are quoted in another currency (the reporting currency has rates of its own), the cross rate
    ``rate(currency) ÷ rate(reporting currency)``: €100 at 1.10 USD per EUR, reported in GBP at 1.25 USD per GBP,
    is 100 × 1.10 ÷ 1.25 = £88.00. ``cc_mrr_cents`` is the same at the previous month's rate (both legs of a cross
    rate): the constant-currency value that movements are classified on, so that exchange rates never create
    expansion or contraction.

    Edge cases
    ----------
    Lines with an empty currency are in the reporting currency (rate 1); with cross rates, a line in the quote
    currency (which has no rates) converts at ``1 ÷ rate(reporting currency)``. A month without a rate takes the
    latest earlier one, for each leg of a cross rate alike (:func:`fx_rates_by_month`); the product is rounded to
    the cent once.
    ``one_time`` lines are not MRR (see :func:`services_revenue`); ``usage`` lines count only while
    ``policy.usage_in_mrr``. A period shorter than a month (a proration) counts in the month whose measuring day
    it contains, at its monthly rate. With ``prorations`` (the data marks proration lines), a line marked
    ``proration`` is measured against the full period it belongs to (:func:`proration_months`: by its
    ``proration_share`` when given, else by days, the full period being the one the account's regular line
    ending the same day billed). A negative line
    (a proration credit for unused time) counts its ``quantity`` negative, so an upgrade mid-period nets the plan it
    leaves to zero.

    Returns
    -------
    Columns ``line_id``, ``account_id``, ``plan_id``, ``product``, ``tier_rank``, ``pricing``, ``kind``,
    ``quantity``, ``period_end``, ``month_idx``, ``mrr_cents``, ``cc_mrr_cents``, ``coupon`` and
    ``discount_cents`` (the line's ``discount`` measured as its amount is; null without one).
    """
    kinds = ["subscription", "usage"] if policy.usage_in_mrr else ["subscription"]
    lines = invoice_lines.filter(invoice_lines.kind.isin(kinds))
    if prorations:
        intervals = plans.select("plan_id", _interval=plans.interval_months.cast("int64").fill_null(1))
        lines = lines.join(intervals, "plan_id")
        marked = (lines.proration == "true").fill_null(False)
        # the billing period a proration line ends: the one the account's regular line ending that day billed
        regular = lines.filter(~marked)
        periods = regular.group_by(
            _p_account=regular.account_id, _p_end=regular.period_end, _p_interval=regular._interval
        ).aggregate(_full_start=regular.period_start.min())
        lines = lines.left_join(periods, [lines.account_id == periods._p_account,
                                          lines.period_end == periods._p_end,
                                          lines._interval == periods._p_interval]
                                ).select(*[lines[c] for c in lines.columns],
                                         _begun=ibis.coalesce(periods._full_start,
                                                              counted_back(lines.period_end, lines._interval)))
        share = lines.proration_share if "proration_share" in lines.columns else None
        lines = lines.mutate(months=ibis.ifelse(
            (lines.proration == "true").fill_null(False),
            proration_months(lines.period_start, lines.period_end, lines._interval, lines._begun, share),
            months_in_period(lines.period_start, lines.period_end)))
    else:
        lines = lines.mutate(months=months_in_period(lines.period_start, lines.period_end))
    spans = lines.join(
        calendar,
        [calendar.measured_on >= lines.period_start, calendar.measured_on < lines.period_end],
    )
    plan_cols = plans.select("plan_id", "product", "tier_rank", "pricing")
    spans = spans.join(plan_cols, "plan_id")
    if fx_rates is None:
        spans = spans.mutate(rate=ibis.literal(1.0), prev_rate=ibis.literal(1.0))
    else:
        spans = _with_rates(spans, fx_rates_by_month(fx_rates, calendar), "month_idx", policy)
    monthly = spans.amount.cast("float64") * 100 / spans.months
    # a coupon's monthly value, measured as the amount is (a folder without the columns has none)
    coupon = spans.coupon if "coupon" in spans.columns else ibis.null("string")
    discount = spans.discount.cast("float64") * 100 / spans.months if "discount" in spans.columns else None
    return spans.select(
        "line_id",
        "account_id",
        "plan_id",
        "product",
        "tier_rank",
        "pricing",
        "kind",
        # a credit takes back the seats it was charged for
        quantity=ibis.coalesce(spans.quantity.cast("float64"), 1.0) * ibis.ifelse(spans.amount < 0, -1.0, 1.0),
        period_end=spans.period_end,
        month_idx=spans.month_idx,
        mrr_cents=round_half_away(monthly * spans.rate),
        cc_mrr_cents=round_half_away(monthly * spans.prev_rate),
        coupon=coupon,
        discount_cents=ibis.null("int64") if discount is None else round_half_away(discount * spans.rate),
    )


def coupon_mrr(line_months: ir.Table, calendar: ir.Table) -> ir.Table:
    """MRR by coupon: in each month, the lines that carry a coupon, grouped by it.

    Formula
    -------
    Per ``month`` and ``coupon`` (the invoice lines' ``coupon``): ``accounts``, the accounts with such a line in
    the month's MRR; ``mrr_cents``, their MRR (net of the coupon, as every MRR is); ``discount_cents``, what the
    coupon takes off each month: ``round(discount × rate(month) × 100 ÷ months_in_period(line))`` summed, measured
    and converted as the line's amount is (:func:`line_months`). A $1,200 annual plan with a $100 coupon is $91.67 of
    MRR and $8.33 of discount a month.

    Edge cases
    ----------
    Lines without a coupon are not here (the table is empty for data without coupons); a line with several coupons
    counts under their joined name (``"Launch 25%, Partner"``), as the source wrote it. A coupon without a
    ``discount`` (the source did not say how much) counts its MRR and accounts with no discount. Usage lines count
    while ``usage_in_mrr``, as in MRR.
    """
    t = line_months.filter(line_months.coupon.notnull())
    by = t.group_by(["month_idx", "coupon"]).aggregate(
        accounts=t.account_id.nunique(),
        mrr_cents=t.mrr_cents.sum(),
        discount_cents=t.discount_cents.fill_null(0).sum(),
    )
    months = calendar.select("month_idx", "month")
    return by.join(months, "month_idx").select(
        "month_idx", "month", "coupon", "accounts", "mrr_cents", "discount_cents"
    ).order_by(["month_idx", "coupon"])


def product_months(line_months: ir.Table, *, credits: bool = False) -> ir.Table:
    """Each account's position in each product and month: the ledger the movements are read from.

    With ``credits`` (the data has proration credits), a plan whose credit takes back all of its month's MRR (the
    plan an account left mid-period) no longer holds its tier nor counts as a line; without any, every line counts
    as it is (the query skips that step).

    Returns
    -------
    Per ``account_id``, ``product``, ``month_idx``: ``mrr_cents`` and ``cc_mrr_cents`` (all lines),
    ``sub_cents``/``sub_cc_cents`` (subscription lines), ``usage_cents``/``usage_cc_cents`` (usage lines),
    ``seats`` (quantity of per-seat subscription lines, a credit's negative), ``sub_lines``, ``seat_lines`` and
    ``tier_rank`` (the highest rank among its subscription lines).
    """
    t = line_months
    if credits:
        plan = ibis.window(group_by=[t.account_id, t.product, t.month_idx, t.plan_id])
        left = (t.mrr_cents.min().over(plan) < 0) & (t.mrr_cents.sum().over(plan) <= 0)
        t = t.mutate(_kept=~left)
    else:
        t = t.mutate(_kept=ibis.literal(True))
    is_sub = t.kind == "subscription"
    is_seat = is_sub & (t.pricing == "per_seat")
    zero = ibis.literal(0, "int64")
    return t.group_by(["account_id", "product", "month_idx"]).aggregate(
        mrr_cents=t.mrr_cents.sum(),
        cc_mrr_cents=t.cc_mrr_cents.sum(),
        sub_cents=ibis.ifelse(is_sub, t.mrr_cents, zero).sum(),
        sub_cc_cents=ibis.ifelse(is_sub, t.cc_mrr_cents, zero).sum(),
        usage_cents=ibis.ifelse(is_sub, zero, t.mrr_cents).sum(),
        usage_cc_cents=ibis.ifelse(is_sub, zero, t.cc_mrr_cents).sum(),
        seats=ibis.ifelse(is_seat, t.quantity, 0.0).sum(),
        sub_lines=as_int(is_sub & t._kept).sum(),
        seat_lines=as_int(is_seat & t._kept).sum(),
        tier_rank=ibis.ifelse(is_sub & t._kept, t.tier_rank, ibis.null("int64")).max(),
    )


def plan_mrr(line_months: ir.Table, calendar: ir.Table, plans: ir.Table) -> ir.Table:
    """The book of business at the as-of date: each account's MRR by plan, with when each plan's price can next
    change (the end of its current service period).

    Formula
    -------
    Per ``account_id`` and ``plan_id`` (with ``product``, ``kind`` and ``pricing``): the sum of its lines'
    ``mrr_cents`` and ``quantity`` in the as-of month (the calendar's last); ``renews_on``: the latest
    ``period_end`` (exclusive) of those lines, the first day of the next service period; and the plan's
    ``interval_months`` (1 when the price book leaves it empty), the length of the periods after it.

    Edge cases
    ----------
    Two lines of one plan (an upgrade mid-period) are one row, renewing with the later. Usage lines are rows too
    (while ``usage_in_mrr``), with their billed month's MRR.
    """
    last = calendar.month_idx.max().as_scalar()
    t = line_months.filter(line_months.month_idx == last)
    book = t.group_by(["account_id", "plan_id", "product", "kind", "pricing"]).aggregate(
        quantity=t.quantity.sum(), mrr_cents=t.mrr_cents.sum(), renews_on=t.period_end.max(),
    )
    intervals = plans.select("plan_id", interval_months=plans.interval_months.cast("int64").fill_null(1))
    return book.join(intervals, "plan_id").order_by(["account_id", "plan_id"])


def services_revenue(
    invoice_lines: ir.Table, fx_rates: ir.Table | None, calendar: ir.Table, *, policy: RevenuePolicy
) -> ir.Table:
    """One-time revenue (services, set-up fees, refunds) per month, in cents: not MRR.

    Formula
    -------
    ``Σ round(amount × rate(period_start) × 100)`` over ``one_time`` lines, booked in the month of
    ``period_start``, at the rate (or cross rate) in force on that day (:func:`fx_rates_on_days`: with monthly
    rates, the month's). Refunds are negative one-time lines and reduce it.

    With ``policy.spread_one_time``, each line is spread over its service period ``[period_start, period_end)``
    by days: month *m*'s share is ``round(A × D≤m ÷ D) − round(A × D<m ÷ D)`` cents of the line's currency
    (``A`` the amount in cents, ``D`` the period's days, ``D≤m`` and ``D<m`` its days up to the end of *m* and
    before *m*), converted at the rate of *m*'s measuring day, as its MRR is. The shares add up to the line's
    amount to the cent: $1,000 over January to March 2024 (91 days) is 340.66, 318.68, 340.66.

    Edge cases
    ----------
    A line whose period is one day (or none) is booked in its month, spread or not. The share of months after the
    as-of month is not yet revenue (it is deferred): it appears in a later run.
    """
    lines = invoice_lines.filter(invoice_lines.kind == "one_time")
    if policy.spread_one_time:
        lines = _spread_over_months(lines, calendar)
        if fx_rates is not None:
            lines = _with_rates(lines, fx_rates_by_month(fx_rates, calendar), "month_idx", policy)
    else:
        lines = lines.mutate(
            month_idx=month_idx_of(lines.period_start),
            cents=lines.amount.cast("float64") * 100,
        )
        lines = lines.join(calendar.select("month_idx"), "month_idx")
        if fx_rates is not None:  # at the rate of the line's own day
            days = lines.select(day=lines.period_start)
            lines = _with_rates(lines, fx_rates_on_days(fx_rates, days), "period_start", policy, rate_col="day")
    if fx_rates is None:
        lines = lines.mutate(rate=ibis.literal(1.0))
    cents = round_half_away(lines.cents * lines.rate)
    return lines.group_by("month_idx").aggregate(services_cents=cents.sum())


def _spread_over_months(lines: ir.Table, calendar: ir.Table) -> ir.Table:
    """Each one-time line once per calendar month its service period touches, with ``cents``: its share of the
    line's amount in cents of its currency (see :func:`services_revenue`)."""
    idx = calendar.month_idx
    year = (idx // 12).cast("int32")
    month_start = ibis.date(year, (idx % 12 + 1).cast("int32"), ibis.literal(1, "int32"))
    next_idx = idx + 1
    next_start = ibis.date((next_idx // 12).cast("int32"), (next_idx % 12 + 1).cast("int32"),
                           ibis.literal(1, "int32"))
    months = calendar.select("month_idx", _from=month_start, _to=next_start)
    lines = lines.mutate(_days=ibis.greatest(lines.period_end.delta(lines.period_start, unit="day"), 1))
    touched = lines.join(months, [months._to > lines.period_start,
                                  months._from.delta(lines.period_start, unit="day") < lines._days])
    total = touched._days.cast("float64")
    before = ibis.greatest(touched._from.delta(touched.period_start, unit="day"), 0)
    through = ibis.least(touched._to.delta(touched.period_start, unit="day"), touched._days)
    amount = touched.amount.cast("float64") * 100
    share = (round_half_away(amount * through.cast("float64") / total)
             - round_half_away(amount * before.cast("float64") / total))
    return touched.select(*[c for c in lines.columns if not c.startswith("_")], month_idx=touched.month_idx,
                          cents=share)
