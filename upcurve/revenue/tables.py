"""Every revenue table of a run, built as expressions on the tables' engine."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis.expr.types as ir

from upcurve.config import RevenuePolicy
from upcurve.engine import cached, release
from upcurve.revenue.calendar import month_calendar
from upcurve.revenue.cohorts import account_growth, cohort_retention, expansion_by_source
from upcurve.revenue.ledger import coupon_mrr, line_months, plan_mrr, product_months, services_revenue
from upcurve.revenue.metrics import account_month_facts, fact_sums, metrics_from_sums
from upcurve.revenue.movements import (
    account_months_from_pairs,
    entity_movements,
    movements,
    product_account_months,
    product_pairs,
)
from upcurve.revenue.segments import segment_metrics

__all__ = ["REVENUE_TABLES", "RevenueTables", "revenue_ledger", "revenue_tables"]

#: The revenue tables of a run, in the order they are written.
REVENUE_TABLES = ("mrr", "movements", "metrics", "expansion_by_source", "segments", "cohorts", "account_growth",
                  "plan_mrr", "coupon_mrr")


@dataclass
class RevenueTables:
    """The revenue tables as engine expressions (cents), with the intermediate ones later steps reuse."""

    calendar: ir.Table
    product_months: ir.Table
    account_months: ir.Table
    movements: ir.Table
    tables: dict[str, ir.Table]


@dataclass
class _Ledger:
    """The ledger every revenue table and every learning step reads, held by the engine."""

    calendar: ir.Table
    line_months: ir.Table
    product_months: ir.Table
    product_pairs: ir.Table
    account_months: ir.Table
    movements: ir.Table


def _ledger(tables: dict[str, ir.Table], *, as_of: dt.date, first: dt.date, policy: RevenuePolicy) -> _Ledger:
    cal = month_calendar(first, as_of)
    lines, plans, fx = tables["invoice_lines"], tables["plans"], tables.get("fx_rates")
    # two plain counts decide whether the queries need the proration steps: data without any run as before
    marked = lines.filter(lines.proration == "true")
    prorations = bool(marked.count().to_pyarrow().as_py())
    credits = prorations and bool(marked.filter(marked.amount < 0).count().to_pyarrow().as_py())
    lm = line_months(lines, plans, fx, cal, policy=policy, prorations=prorations)
    if prorations:  # held once: with the proration steps beneath it, SQLite's parser refuses the next query
        lm = cached(lm)
    pm = cached(product_months(lm, credits=credits))
    pairs = cached(product_pairs(pm, cal))
    am = cached(account_months_from_pairs(pairs))
    mv = cached(movements(pm, cal, policy=policy, account_months=am, product_pairs=pairs))
    return _Ledger(cal, lm, pm, pairs, am, mv)


def revenue_ledger(tables: dict[str, ir.Table], *, as_of: dt.date, first: dt.date,
                   policy: RevenuePolicy) -> RevenueTables:
    """The MRR ledger alone, held by the engine (the calendar, product months, account months and movements), for
    a step that writes no revenue table (learning, a backtest); :attr:`RevenueTables.tables` is empty.

    The products' movements, which only the revenue tables read, are not computed, and the product pairs, the
    ledger's widest table, are released once the account months and movements computed from them are held: at a
    million accounts a backtest holding them ran out of the engine's default 3 GiB (docs/benchmarks.md)."""
    ledger = _ledger(tables, as_of=as_of, first=first, policy=policy)
    release(ledger.product_pairs)
    return RevenueTables(ledger.calendar, ledger.product_months, ledger.account_months, ledger.movements, {})


def revenue_tables(tables: dict[str, ir.Table], *, as_of: dt.date, first: dt.date,
                   policy: RevenuePolicy) -> RevenueTables:
    """Build every revenue table (:data:`REVENUE_TABLES`) from the contract's tables, caching the shared
    intermediate ones in the engine."""
    ledger = _ledger(tables, as_of=as_of, first=first, policy=policy)
    cal, lm, pm = ledger.calendar, ledger.line_months, ledger.product_months
    am, mv = ledger.account_months, ledger.movements
    lines, plans, fx = tables["invoice_lines"], tables["plans"], tables.get("fx_rates")
    pam = product_account_months(ledger.product_pairs)
    pmv = cached(entity_movements(pam, ["account_id", "product"], policy=policy))
    # Every metric, overall and by segment, is a sum of these facts. They are left as expressions: cached, they
    # held a gigabyte more at 100,000 accounts than recomputing them costs in time.
    facts = account_month_facts(am, mv)
    product_facts = account_month_facts(pam, pmv, ["account_id", "product"])
    services = services_revenue(lines, fx, cal, policy=policy)
    months = cal.select("month_idx", "month")
    mrr = pm.filter(pm.mrr_cents != 0).join(months, "month_idx")
    out = {
        "mrr": mrr.select("month_idx", "month", "account_id", "product", "mrr_cents").order_by(
            ["month_idx", "account_id", "product"]
        ),
        "movements": mv.join(months, "month_idx")
        .select("month_idx", "month", "account_id", "type", "source", "amount_cents")
        .order_by(["month_idx", "account_id", "type", "source"]),
        "metrics": metrics_from_sums(fact_sums(facts), cal, services=services),
        "expansion_by_source": expansion_by_source(mv, cal),
        "segments": segment_metrics(tables["accounts"], facts, product_facts, cal, policy=policy),
        "cohorts": cohort_retention(am, cal),
        "account_growth": account_growth(am, pm, mv, cal),
        "plan_mrr": plan_mrr(lm, cal, plans),
        "coupon_mrr": coupon_mrr(lm, cal),
    }
    return RevenueTables(cal, pm, am, mv, out)
