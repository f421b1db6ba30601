"""The ``accounts`` table: one row per account with its attributes, signals, health and its trend."""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from upcurve.contract import plan_features
from upcurve.signals.account_signals import account_signals_at
from upcurve.signals.health import HealthConfig, health_scores

__all__ = ["TREND_DAYS", "accounts_table"]

#: The health trend compares the score now with the score this many days earlier.
TREND_DAYS = 30


def accounts_table(tables: dict[str, ir.Table], account_months: ir.Table, health: HealthConfig, *,
                   as_of: dt.date, signals: ir.Table | None = None) -> ir.Table:
    """One row per account: its attributes, :func:`account_signals_at` ``as_of``, its health and trend.

    Parameters
    ----------
    tables
        The contract's tables, as known at ``as_of``.
    account_months
        The revenue ledger's account months (:func:`upcurve.revenue.account_months_from_pairs`).
    signals
        :func:`account_signals_at` already computed at ``as_of`` and :data:`TREND_DAYS` before (among other
        dates), so one query serves the accounts table and the training snapshots.

    Edge cases
    ----------
    Health belongs to customers: an account paying nothing at ``as_of`` has signals but no health score, tier or
    trend. The trend is ``up``/``down`` when the score moved by more than 2 points in :data:`TREND_DAYS`, ``same``
    otherwise, empty when either score is missing.
    """
    accounts = tables["accounts"]
    before_day = as_of - dt.timedelta(days=TREND_DAYS)
    if signals is None:
        signals = account_signals_at(tables, account_months, plan_features(tables["plans"]), [before_day, as_of])
    now = signals.filter(signals.as_of == as_of).drop("as_of")
    segments = accounts.select("account_id", "segment")
    # both dates scored in one pass: one health expression in the query, not two
    scored = health_scores(signals.filter(signals.as_of.isin([before_day, as_of])), health, as_of=as_of,
                           segments=segments)
    health_now = scored.filter(scored.as_of == as_of).drop("as_of")
    health_then = scored.filter(scored.as_of == before_day)
    health_then = health_then.select("account_id", health_score_30d_ago="health_score")
    out = accounts.select("account_id", *[c for c in ("name", "segment", "owner") if c in accounts.columns])
    out = out.left_join(now, "account_id").select(out, *[c for c in now.columns if c != "account_id"])
    out = out.left_join(health_now, "account_id").select(
        out, *[c for c in health_now.columns if c != "account_id"])
    out = out.left_join(health_then, "account_id").select(out, "health_score_30d_ago")
    customer = out.mrr_cents > 0
    health_cols = [c for c in health_now.columns if c != "account_id"] + ["health_score_30d_ago"]
    out = out.mutate(**{c: ibis.ifelse(customer, out[c], ibis.null(out[c].type())) for c in health_cols})
    delta = out.health_score - out.health_score_30d_ago
    trend = ibis.cases((delta > 2, "up"), (delta < -2, "down"), (delta.notnull(), "same"), else_=ibis.null("string"))
    out = out.mutate(health_trend=trend)
    return out.order_by(ibis.desc(customer), ibis.desc(out.health_score), ibis.desc(out.mrr_cents), out.account_id)
