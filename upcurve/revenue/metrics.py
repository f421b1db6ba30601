"""Monthly SaaS metrics: the MRR bridge, retention and efficiency ratios, overall or by segment.

Money columns end in ``_cents`` (whole cents of the reporting currency); ratios are fractions (1.08 is 108%).
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

__all__ = ["METRIC_COLUMNS", "monthly_metrics", "retention_12m"]

METRIC_COLUMNS = (
    "month", "mrr_cents", "arr_cents", "customers", "new_cents", "expansion_cents", "contraction_cents",
    "churn_cents", "reactivation_cents", "fx_cents", "net_new_mrr_cents", "logo_churn_rate", "expansion_rate",
    "nrr_month", "nrr_12m", "grr_12m", "arpa_cents", "quick_ratio", "services_revenue_cents",
    "new_customers", "churned_customers", "reactivated_customers", "multi_product_rate",
)


def _ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    """``num / den`` as a float, null when ``den`` is 0 (a rate over nothing is undefined, not 0)."""
    return ibis.ifelse(den == 0, ibis.null("float64"), num.cast("float64") / den.cast("float64"))


def retention_12m(
    account_months: ir.Table, entity_keys: Sequence[str], group_keys: Sequence[str] = ()
) -> ir.Table:
    """Twelve-month net and gross revenue retention.

    Formula
    -------
    ``nrr_12m(m) = Σ_a MRR_a(m) ÷ Σ_a MRR_a(m−12)`` over the accounts ``a`` with ``MRR_a(m−12) > 0``;
    ``grr_12m(m)`` is the same with each ``MRR_a(m)`` capped at ``MRR_a(m−12)``. An NRR of 1.10 means last year's
    customers pay 10% more now, with no new logos counted; GRR ≤ 1 and GRR ≤ NRR always.

    Edge cases
    ----------
    No row (null in the metrics) until 12 months of history exist, or when the base is 0. Accounts that churned
    count with MRR 0. Includes exchange-rate effects (both months at their own rates).
    """
    keys = list(entity_keys)
    groups = list(group_keys)
    am = account_months
    base = am.filter(am.cur_mrr_cents > 0).select(
        *keys, *groups, month_idx=am.month_idx + 12, base_cents=am.cur_mrr_cents
    )
    now = am.view()
    now = now.select(*keys, *groups, "month_idx", now_cents=now.cur_mrr_cents)
    joined = base.left_join(now, [*keys, *groups, "month_idx"])
    now_cents = joined.now_cents.fill_null(0)
    out = joined.group_by([joined.month_idx, *[joined[g] for g in groups]]).aggregate(
        _base=joined.base_cents.sum(),
        _now=now_cents.sum(),
        _kept=ibis.least(now_cents, joined.base_cents).sum(),
    )
    return out.select(
        "month_idx", *groups, nrr_12m=_ratio(out._now, out._base), grr_12m=_ratio(out._kept, out._base)
    )


def monthly_metrics(
    account_months: ir.Table,
    movements: ir.Table,
    calendar: ir.Table,
    *,
    services: ir.Table | None = None,
    entity_keys: Sequence[str] = ("account_id",),
    group_keys: Sequence[str] = (),
) -> ir.Table:
    """The monthly metrics table: MRR, the bridge from last month, retention and ratios.

    Formula
    -------
    - ``mrr``: Σ MRR of paying accounts; ``arr = 12 × mrr``; ``customers``: accounts with MRR > 0.
    - ``new``, ``expansion``, ``contraction``, ``churn``, ``reactivation``, ``fx``: Σ movements of each type
      (contraction and churn negative); ``net_new_mrr`` = their sum = ``mrr − mrr(m−1)``.
    - ``logo_churn_rate`` = churned accounts ÷ customers last month.
    - ``expansion_rate`` = expansion ÷ MRR last month.
    - ``nrr_month`` = (MRR last month + expansion + contraction + churn) ÷ MRR last month, at constant currency
      (ChartMogul's per-interval NRR).
    - ``nrr_12m``, ``grr_12m``: see :func:`retention_12m`.
    - ``arpa`` = mrr ÷ customers (ARPA of accounts paying 100, 100, 300, 500, 500 is 300).
    - ``quick_ratio`` = (new + expansion + reactivation) ÷ |contraction + churn|.
    - ``services_revenue``: one-time revenue of the month (not MRR).
    - ``multi_product_rate``: share of customers paying for two products or more.

    Edge cases
    ----------
    Every ratio is null where its denominator is 0 (the first month has no "last month"; a month with no losses
    has no quick ratio). The calendar's first month is the opening balance: all its MRR is ``new``.

    Parameters
    ----------
    account_months
        From :func:`upcurve.revenue.movements.account_months`, with ``group_keys`` columns attached.
    movements
        Movements of the same entities, with ``type``, ``amount_cents`` and ``group_keys`` columns.
    services
        ``month_idx``, ``services_cents`` (only for the overall view).
    """
    groups = list(group_keys)
    am = account_months
    base = am.group_by(["month_idx", *groups]).aggregate(
        mrr_cents=am.cur_mrr_cents.sum(),
        customers=(am.cur_mrr_cents > 0).cast("int64").sum(),
        prev_mrr_cents=am.prev_mrr_cents.sum(),
        prev_customers=(am.prev_mrr_cents > 0).cast("int64").sum(),
        multi_product=(am.cur_products >= 2).cast("int64").sum(),
    )
    mv = movements
    zero = ibis.literal(0, "int64")
    sums = {
        f"{t}_cents": ibis.ifelse(mv.type == t, mv.amount_cents, zero).sum()
        for t in ("new", "expansion", "contraction", "churn", "reactivation", "fx")
    }
    counts = {
        f"{t}_customers": (mv.type == t).cast("int64").sum() for t in ("new", "churned", "reactivation")
    }
    counts["churned_customers"] = (mv.type == "churn").cast("int64").sum()
    counts["reactivated_customers"] = counts.pop("reactivation_customers")
    moved = mv.group_by(["month_idx", *groups]).aggregate(**sums, **counts)

    if groups:
        frame = calendar.select("month_idx", "month").cross_join(base.select(*groups).distinct())
    else:
        frame = calendar.select("month_idx", "month")
    keys = ["month_idx", *groups]
    t = frame.left_join(base, keys).left_join(moved, keys)
    t = t.left_join(retention_12m(am, entity_keys, groups), keys)
    if services is not None:
        t = t.left_join(services, "month_idx")
    t = t.select(
        *keys,
        "month",
        *[c for c in base.columns + moved.columns if c not in keys],
        "nrr_12m",
        "grr_12m",
        *(["services_cents"] if services is not None else []),
    )
    filled = {c: t[c].fill_null(0) for c in t.columns if c.endswith(("_cents", "customers", "multi_product"))}
    t = t.mutate(**filled)
    losses = t.contraction_cents + t.churn_cents
    return t.select(
        *keys,
        "month",
        "mrr_cents",
        arr_cents=t.mrr_cents * 12,
        customers=t.customers,
        new_cents=t.new_cents,
        expansion_cents=t.expansion_cents,
        contraction_cents=t.contraction_cents,
        churn_cents=t.churn_cents,
        reactivation_cents=t.reactivation_cents,
        fx_cents=t.fx_cents,
        net_new_mrr_cents=t.mrr_cents - t.prev_mrr_cents,
        logo_churn_rate=_ratio(t.churned_customers, t.prev_customers),
        expansion_rate=_ratio(t.expansion_cents, t.prev_mrr_cents),
        nrr_month=_ratio(t.prev_mrr_cents + t.expansion_cents + losses, t.prev_mrr_cents),
        nrr_12m=t.nrr_12m,
        grr_12m=t.grr_12m,
        arpa_cents=ibis.ifelse(
            t.customers == 0, ibis.null("int64"), (t.mrr_cents.cast("float64") / t.customers).round().cast("int64")
        ),
        quick_ratio=_ratio(t.new_cents + t.expansion_cents + t.reactivation_cents, losses.abs()),
        services_revenue_cents=t.services_cents if services is not None else ibis.literal(0, "int64"),
        new_customers=t.new_customers,
        churned_customers=t.churned_customers,
        reactivated_customers=t.reactivated_customers,
        multi_product_rate=_ratio(t.multi_product, t.customers),
    ).order_by(keys)
