"""Cohort retention and account-level growth facts."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from upcurve.engine import as_int

__all__ = ["account_growth", "cohort_retention", "expansion_by_source"]


def cohort_retention(account_months: ir.Table, calendar: ir.Table) -> ir.Table:
    """Logo and MRR retention of each first-paid-month cohort, month by month.

    Formula
    -------
    An account's cohort is the first month it had MRR. For cohort ``c`` and ``k`` months later:
    ``logo_retention = accounts paying at c+k ÷ accounts in c`` and ``mrr_retention = their MRR at c+k ÷ the
    cohort's MRR at c`` (above 1 when expansion outgrows churn: negative churn).

    Edge cases
    ----------
    Accounts that churn and come back count again from the month they return. The calendar's first month holds
    every account already paying then (the opening cohort).
    """
    am = account_months
    paying = am.filter(am.cur_mrr_cents > 0)
    first = paying.group_by("account_id").aggregate(cohort_idx=paying.month_idx.min())
    start = paying.join(first, [paying.account_id == first.account_id, paying.month_idx == first.cohort_idx])
    sizes = start.group_by("cohort_idx").aggregate(
        customers=start.count(), starting_mrr_cents=start.cur_mrr_cents.sum()
    )
    active = paying.join(first, "account_id")
    active = active.group_by(["cohort_idx", "month_idx"]).aggregate(
        active_customers=active.count(), mrr_cents=active.cur_mrr_cents.sum()
    )
    grid = sizes.join(calendar.select("month_idx", "month"), sizes.cohort_idx <= calendar.month_idx)
    cohort_month = calendar.view().select(cohort_idx="month_idx", cohort="month")
    grid = grid.join(cohort_month, "cohort_idx")
    t = grid.left_join(active, ["cohort_idx", "month_idx"])
    active_customers = t.active_customers.fill_null(0)
    mrr = t.mrr_cents.fill_null(0)
    return t.select(
        t.cohort,
        months_since=t.month_idx - t.cohort_idx,
        month=t.month,
        customers=t.customers,
        active_customers=active_customers,
        logo_retention=active_customers.cast("float64") / t.customers,
        starting_mrr_cents=t.starting_mrr_cents,
        mrr_cents=mrr,
        mrr_retention=ibis.ifelse(
            t.starting_mrr_cents == 0, ibis.null("float64"), mrr.cast("float64") / t.starting_mrr_cents
        ),
    ).order_by(["cohort", "months_since"])


def expansion_by_source(movements: ir.Table, calendar: ir.Table) -> ir.Table:
    """Expansion and contraction MRR of each month by source (cross_sell, usage, seat, tier, price).

    Formula
    -------
    ``expansion``: Σ of the source's parts of expansion movements; ``contraction``: the same of contraction
    movements (negative); ``net`` = their sum. A part can have the other sign than its movement (a seat
    reduction inside an account that expanded overall through cross-sell).
    """
    mv = movements.filter(movements.source.notnull())
    zero = ibis.literal(0, "int64")
    out = mv.group_by(["month_idx", "source"]).aggregate(
        expansion_cents=ibis.ifelse(mv.type == "expansion", mv.amount_cents, zero).sum(),
        contraction_cents=ibis.ifelse(mv.type == "contraction", mv.amount_cents, zero).sum(),
    )
    out = out.join(calendar.select("month_idx", "month"), "month_idx")
    return out.select(
        "month_idx", "month", "source", "expansion_cents", "contraction_cents",
        net_cents=out.expansion_cents + out.contraction_cents,
    ).order_by(["month_idx", "source"])


def account_growth(
    account_months: ir.Table, product_months: ir.Table, movements: ir.Table, calendar: ir.Table
) -> ir.Table:
    """Growth facts per account: when it first expanded, and how its seats, usage and products grew.

    Formula
    -------
    - ``months_to_first_expansion`` = first month with an expansion movement − first paid month (null: never).
    - ``seat_growth`` = seats now − seats in the first paid month (per-seat subscriptions, all products).
    - ``usage_growth`` = usage MRR now ÷ usage MRR in the first month with usage − 1 (null without usage).
    - ``products``: products with MRR now; ``multi_product``: two or more.

    Edge cases
    ----------
    "Now" is the as-of month; an account that churned has 0 seats, usage and products now.
    """
    am = account_months
    paying = am.filter(am.cur_mrr_cents > 0)
    first = paying.group_by("account_id").aggregate(
        first_paid_idx=paying.month_idx.min(), last_paid_idx=paying.month_idx.max()
    )
    exp = movements.filter(movements.type == "expansion")
    first_exp = exp.group_by("account_id").aggregate(first_expansion_idx=exp.month_idx.min())
    pm = product_months
    seats = pm.group_by(["account_id", "month_idx"]).aggregate(
        seats=pm.seats.sum(),
        usage_cents=pm.usage_cents.sum(),
        products=as_int(pm.mrr_cents > 0).sum(),  # one row per product: a count, not a distinct count
        mrr_cents=pm.mrr_cents.sum(),
    )
    usage_first = seats.filter(seats.usage_cents > 0)
    usage_first = usage_first.mutate(
        _n=ibis.row_number().over(group_by=usage_first.account_id, order_by=usage_first.month_idx)
    )
    usage_first = usage_first.filter(usage_first._n == 0).select("account_id", usage_first_cents="usage_cents")
    at_start = seats.view()
    at_start = at_start.select(
        "account_id", first_paid_idx="month_idx", first_mrr_cents="mrr_cents", seats_first="seats"
    )
    now = seats.view()
    now = now.filter(now.month_idx == calendar.select("month_idx").month_idx.max().as_scalar())
    now = now.select(
        "account_id", mrr_now_cents="mrr_cents", seats_now="seats", usage_now_cents="usage_cents", products="products"
    )
    t = first.left_join(at_start, ["account_id", "first_paid_idx"])
    t = t.left_join(first_exp, "account_id").left_join(now, "account_id").left_join(usage_first, "account_id")
    months = calendar.select("month_idx", "month")
    first_month = months.view().select(first_paid_idx="month_idx", first_paid_month="month")
    exp_month = months.view().select(first_expansion_idx="month_idx", first_expansion_month="month")
    t = t.left_join(first_month, "first_paid_idx").left_join(exp_month, "first_expansion_idx")
    seats_now = t.seats_now.fill_null(0)
    usage_now = t.usage_now_cents.fill_null(0)
    return t.select(
        "account_id",
        "first_paid_month",
        "first_expansion_month",
        months_to_first_expansion=t.first_expansion_idx - t.first_paid_idx,
        first_mrr_cents=t.first_mrr_cents,
        mrr_now_cents=t.mrr_now_cents.fill_null(0),
        seats_first=t.seats_first,
        seats_now=seats_now,
        seat_growth=seats_now - t.seats_first,
        usage_first_cents=t.usage_first_cents,
        usage_now_cents=usage_now,
        usage_growth=ibis.ifelse(
            t.usage_first_cents.isnull() | (t.usage_first_cents == 0),
            ibis.null("float64"),
            usage_now.cast("float64") / t.usage_first_cents - 1,
        ),
        products=t.products.fill_null(0),
        multi_product=t.products.fill_null(0) >= 2,
    ).order_by("account_id")
