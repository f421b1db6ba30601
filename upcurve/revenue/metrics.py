"""Monthly SaaS metrics: the MRR bridge, retention and efficiency ratios, overall or by segment.

Every metric is a ratio of sums of additive per-account facts (:func:`account_month_facts`). The facts are summed at
any grain (the company, a segment, a product) and the ratios taken last, so a breakdown by five dimensions costs one
pass over the accounts, not five.

Money columns end in ``_cents`` (whole cents of the reporting currency); ratios are fractions (1.08 is 108%).
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from upcurve.engine import as_int, round_half_away

__all__ = ["FACT_COLUMNS", "account_month_facts", "fact_sums", "metrics_from_sums", "monthly_metrics"]

MOVEMENT_FACTS = ("new", "expansion", "contraction", "churn", "reactivation", "fx")
#: The additive facts of an account in a month; every metric is a ratio of their sums.
FACT_COLUMNS = (
    "mrr_cents", "customers", "prev_mrr_cents", "prev_customers", "multi_product",
    *(f"{t}_cents" for t in MOVEMENT_FACTS),
    "new_customers", "churned_customers", "reactivated_customers",
    "base_12m_cents", "now_12m_cents", "kept_12m_cents",
)


def _ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    """``num / den`` as a float, null when ``den`` is 0 (a rate over nothing is undefined, not 0)."""
    return ibis.ifelse(den == 0, ibis.null("float64"), num.cast("float64") / den.cast("float64"))


def _facts(table: ir.Table, keys: Sequence[str], month: ir.IntegerValue, **values: ir.Value) -> ir.Table:
    zero = ibis.literal(0, "int64")
    cols = {c: (as_int(values[c]) if values[c].type().is_boolean() else values[c].cast("int64")) if c in values
            else zero for c in FACT_COLUMNS}
    return table.select(*keys, month_idx=month, **cols)


def account_month_facts(
    account_months: ir.Table, movements: ir.Table, entity_keys: Sequence[str] = ("account_id",)
) -> ir.Table:
    """The additive facts of every entity in every month, as rows to be summed.

    Formula
    -------
    From :func:`~upcurve.revenue.movements.account_months`: ``mrr_cents``, ``customers`` (1 when MRR > 0), the same
    for last month, ``multi_product`` (1 when paying for two products or more). From the movements: the amount of
    each type and the counts of new, churned and reactivated customers. For twelve-month retention, in month ``m``
    for each entity paying at ``m − 12``: ``base_12m_cents`` (its MRR then), ``now_12m_cents`` (its MRR at ``m``,
    0 if it churned) and ``kept_12m_cents`` (the smaller of the two).

    Edge cases
    ----------
    An entity can have several rows in a month (one from each source); only sums of these facts are meaningful.
    """
    keys = list(entity_keys)
    am, mv = account_months, movements
    state = _facts(
        am, keys, am.month_idx,
        mrr_cents=am.cur_mrr_cents,
        customers=am.cur_mrr_cents > 0,
        prev_mrr_cents=am.prev_mrr_cents,
        prev_customers=am.prev_mrr_cents > 0,
        multi_product=am.cur_products >= 2,
    )
    zero = ibis.literal(0, "int64")
    moved = _facts(
        mv, keys, mv.month_idx,
        **{f"{t}_cents": ibis.ifelse(mv.type == t, mv.amount_cents, zero) for t in MOVEMENT_FACTS},
        new_customers=mv.type == "new",
        churned_customers=mv.type == "churn",
        reactivated_customers=mv.type == "reactivation",
    )
    base = am.filter(am.cur_mrr_cents > 0).select(*keys, month_idx=am.month_idx + 12, base=am.cur_mrr_cents)
    now = am.view()
    now = now.select(*keys, "month_idx", now=now.cur_mrr_cents)
    joined = base.left_join(now, [*keys, "month_idx"])
    now_cents = joined.now.fill_null(0)
    retained = _facts(
        joined, keys, joined.month_idx,
        base_12m_cents=joined.base, now_12m_cents=now_cents, kept_12m_cents=ibis.least(now_cents, joined.base),
    )
    return ibis.union(state, moved, retained, distinct=False)


def fact_sums(facts: ir.Table, group_keys: Sequence[str] = ()) -> ir.Table:
    """The facts summed per month (and group)."""
    return facts.group_by(["month_idx", *group_keys]).aggregate(**{c: facts[c].sum() for c in FACT_COLUMNS})


def metrics_from_sums(
    sums: ir.Table,
    calendar: ir.Table,
    *,
    group_keys: Sequence[str] = (),
    services: ir.Table | None = None,
) -> ir.Table:
    """The metrics table from summed facts: every month of the calendar (for every group), ratios taken last.

    Formula
    -------
    - ``mrr``: Σ MRR of paying accounts; ``arr = 12 × mrr``; ``customers``: accounts with MRR > 0.
    - ``new``, ``expansion``, ``contraction``, ``churn``, ``reactivation``, ``fx``: Σ movements of each type
      (contraction and churn negative); ``net_new_mrr`` = ``mrr − mrr(m−1)`` = their sum.
    - ``logo_churn_rate`` = churned accounts ÷ customers last month.
    - ``expansion_rate`` = expansion ÷ MRR last month.
    - ``nrr_month`` = (MRR last month + expansion + contraction + churn) ÷ MRR last month, at constant currency
      (ChartMogul's per-interval NRR).
    - ``nrr_12m = Σ_a MRR_a(m) ÷ Σ_a MRR_a(m−12)`` over the accounts ``a`` with ``MRR_a(m−12) > 0``; ``grr_12m``
      the same with each ``MRR_a(m)`` capped at ``MRR_a(m−12)``. An NRR of 1.10 means last year's customers pay
      10% more now, with no new logos counted. GRR ≤ 1 and GRR ≤ NRR always.
    - ``arpa`` = mrr ÷ customers (ARPA of accounts paying 100, 100, 300, 500, 500 is 300).
    - ``quick_ratio`` = (new + expansion + reactivation) ÷ |contraction + churn|.
    - ``services_revenue``: one-time revenue of the month (not MRR).
    - ``multi_product_rate``: share of customers paying for two products or more.

    Edge cases
    ----------
    Every ratio is null where its denominator is 0: the first month has no "last month", a month with no losses
    has no quick ratio, and ``nrr_12m``/``grr_12m`` stay null until 12 months of history exist. The calendar's
    first month is the opening balance: all its MRR is ``new``. Twelve-month retention includes exchange-rate
    effects (both months at their own rates); ``nrr_month`` does not.
    """
    groups = list(group_keys)
    months = calendar.select("month_idx", "month")
    frame = months.cross_join(sums.select(*groups).distinct()) if groups else months
    keys = ["month_idx", *groups]
    t = frame.left_join(sums, keys)
    if services is not None:
        t = t.left_join(services, "month_idx")
    t = t.select(
        *keys, "month", **{c: t[c].fill_null(0) for c in FACT_COLUMNS},
        services_cents=t.services_cents.fill_null(0) if services is not None else ibis.literal(0, "int64"),
    )
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
        nrr_12m=_ratio(t.now_12m_cents, t.base_12m_cents),
        grr_12m=_ratio(t.kept_12m_cents, t.base_12m_cents),
        arpa_cents=ibis.ifelse(
            t.customers == 0, ibis.null("int64"), round_half_away(t.mrr_cents.cast("float64") / t.customers)
        ),
        quick_ratio=_ratio(t.new_cents + t.expansion_cents + t.reactivation_cents, losses.abs()),
        services_revenue_cents=t.services_cents,
        new_customers=t.new_customers,
        churned_customers=t.churned_customers,
        reactivated_customers=t.reactivated_customers,
        multi_product_rate=_ratio(t.multi_product, t.customers),
    ).order_by(keys)


def monthly_metrics(
    account_months: ir.Table,
    movements: ir.Table,
    calendar: ir.Table,
    *,
    services: ir.Table | None = None,
    entity_keys: Sequence[str] = ("account_id",),
) -> ir.Table:
    """The company's monthly metrics table (see :func:`metrics_from_sums` for every formula).

    Parameters
    ----------
    account_months
        From :func:`upcurve.revenue.movements.account_months`.
    movements
        The same entities' movements (``type``, ``amount_cents``).
    services
        ``month_idx``, ``services_cents``: one-time revenue per month.
    """
    facts = account_month_facts(account_months, movements, entity_keys)
    return metrics_from_sums(fact_sums(facts), calendar, services=services)
