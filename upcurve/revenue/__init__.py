"""Revenue tables, written once in Ibis: the MRR ledger, movements by source, retention, cohorts, segments.

Every function takes Ibis tables and returns Ibis tables; nothing here executes a query or knows which engine runs
it. Money is whole cents (``*_cents``, ``int64``).
"""

from upcurve.revenue.calendar import month_calendar, month_index, month_label
from upcurve.revenue.cohorts import account_growth, cohort_retention, expansion_by_source
from upcurve.revenue.ledger import fx_rates_by_month, line_months, months_in_period, product_months, services_revenue
from upcurve.revenue.metrics import METRIC_COLUMNS, monthly_metrics, retention_12m
from upcurve.revenue.movements import MOVEMENT_TYPES, SOURCES, account_months, entity_movements, movements
from upcurve.revenue.segments import segment_columns, segment_metrics

__all__ = [
    "METRIC_COLUMNS",
    "MOVEMENT_TYPES",
    "SOURCES",
    "account_growth",
    "account_months",
    "cohort_retention",
    "entity_movements",
    "expansion_by_source",
    "fx_rates_by_month",
    "line_months",
    "month_calendar",
    "month_index",
    "month_label",
    "monthly_metrics",
    "months_in_period",
    "movements",
    "product_months",
    "retention_12m",
    "segment_columns",
    "segment_metrics",
    "services_revenue",
]
