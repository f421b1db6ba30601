"""Revenue tables, written once in Ibis: the MRR ledger, movements by source, retention, cohorts, segments.

Every function takes Ibis tables and returns Ibis tables; nothing here executes a query or knows which engine runs
it. Money is whole cents (``*_cents``, ``int64``).
"""

from upcurve.revenue.calendar import month_calendar, month_end, month_index, month_label
from upcurve.revenue.cohorts import account_growth, cohort_retention, expansion_by_source
from upcurve.revenue.ledger import (
    coupon_mrr,
    fx_rates_by_month,
    fx_rates_on_days,
    line_months,
    months_in_period,
    product_months,
    services_revenue,
)
from upcurve.revenue.metrics import (
    FACT_COLUMNS,
    account_month_facts,
    fact_sums,
    metrics_from_sums,
    monthly_metrics,
)
from upcurve.revenue.movements import (
    MOVEMENT_TYPES,
    SOURCES,
    account_months,
    account_months_from_pairs,
    entity_movements,
    movements,
    product_account_months,
    product_pairs,
)
from upcurve.revenue.segments import segment_columns, segment_metrics
from upcurve.revenue.tables import REVENUE_TABLES, RevenueTables, revenue_ledger, revenue_tables

__all__ = [
    "FACT_COLUMNS",
    "MOVEMENT_TYPES",
    "REVENUE_TABLES",
    "SOURCES",
    "RevenueTables",
    "account_growth",
    "account_month_facts",
    "account_months",
    "account_months_from_pairs",
    "cohort_retention",
    "coupon_mrr",
    "entity_movements",
    "expansion_by_source",
    "fact_sums",
    "fx_rates_by_month",
    "fx_rates_on_days",
    "line_months",
    "metrics_from_sums",
    "month_calendar",
    "month_end",
    "month_index",
    "month_label",
    "monthly_metrics",
    "months_in_period",
    "movements",
    "product_account_months",
    "product_months",
    "product_pairs",
    "revenue_ledger",
    "revenue_tables",
    "segment_columns",
    "segment_metrics",
    "services_revenue",
]
