"""Tables as they were known at a point in time."""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

__all__ = ["known_at", "rate_day"]

#: The column that dates each table's rows: a row dated after the as-of day was not known then.
DATED = {"users": "invited_at", "events": "ts", "usage": "ts", "tickets": "opened_at",
         "nps": "ts", "outcomes": "as_of", "activities": "ts", "invoice_lines": "period_start"}


def known_at(tables: dict[str, ir.Table], as_of: dt.date) -> dict[str, ir.Table]:
    """Each table as it was known at the end of the as-of day: nothing dated later is used."""
    end = ibis.timestamp(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time()))
    out = dict(tables)
    if "fx_rates" in out:  # a rate is dated by its day, or a monthly one by the first of its month
        t = out["fx_rates"]
        out["fx_rates"] = t.filter(rate_day(t) <= as_of)
    for name, column in DATED.items():
        if name in out:
            t = out[name]
            col = t[column]
            keep = (col <= as_of) if col.type().is_date() else (col < end)
            out[name] = t.filter(keep | col.isnull()) if name == "users" else t.filter(keep)
    if "subscriptions" in out:
        # a subscription started by then, its cancellation only once it was asked for
        t = out["subscriptions"]
        t = t.filter(t.started_on.isnull() | (t.started_on <= as_of))
        asked = (t.canceled_at <= as_of).fill_null(False)
        out["subscriptions"] = t.mutate(
            cancel_at=ibis.ifelse(asked, t.cancel_at, ibis.null("date")),
            canceled_at=ibis.ifelse(asked, t.canceled_at, ibis.null("date")),
            cancel_reason=ibis.ifelse(asked, t.cancel_reason, ibis.null("string")),
        )
    return out


def rate_day(fx_rates: ir.Table) -> ir.DateValue:
    """The day from which each rate of ``fx_rates`` is in force: its ``day``, or the first of its ``month``."""
    month = fx_rates.month.cast("date") if "month" in fx_rates.columns else ibis.null("date")
    return ibis.coalesce(fx_rates.day, month) if "day" in fx_rates.columns else month
