"""The usage view of an account: each metered limit, how much of it is used, where use is heading and what it
will cost.

For every account and metric with use in the last 90 days or a plan that meters it, at the as-of date:

- **the limit**: the ``usage_limit`` (per month) of the plan the account holds for the metric (billed for a period
  that covers the as-of day or ended at most 31 days before, as usage is billed in arrears; after a change of
  plan the newer one; else the largest), else the entry plan's (the smallest limit of any plan metering it: the
  limit it would buy into); ``limit_source`` says which. The period is the calendar month of the as-of date.
- **use**: this period's use so far, its share of the limit, and use over the last 30, 60 and 90 days; the trend is
  the last 30 days against the 30 before, in %.
- **the trajectory**: the line through the mean daily rates of the last 30 days and of the 30 before (their centres
  30 days apart), floored at zero: ``rate(t) = max(0, r + s·(t + 15))`` for ``t`` days after the as-of day, with
  ``r = use_30d / 30`` and ``s = (use_30d − use_prev_30d) / 900``. Flat use projects flat; growing use keeps
  growing by the same number of units a day, every day; falling use falls to zero and stays there.
- **projections**, in ``usage_projection`` (with the plan's ``product``): this period's use (use so far plus the
  trajectory to the month's end) and each of the next ``periods_ahead`` months', each as a share of the limit
  and at the plan's price (``projected_cost``): its ``price_model`` if it has one, else ``unit_price`` per unit
  for a ``usage`` plan; no cost for a plan that does not price usage, or an account that holds no plan for the
  metric.
- **days until the limit**: the days after the as-of day at which the trajectory's use this period reaches the
  limit (0 once reached); null when it does not reach it by the end of the period (the count starts again next
  month: the projections say whether a later month goes over).
- **alerts**: the highest of the configured shares (default 50%, 75%, 90%) the use so far has reached
  (``alert``), and the highest the projected use of this period reaches (``projected_alert``).

``usage_weeks`` holds each account's use by week (the ``weeks`` 7-day windows ending on the as-of day) for a
sparkline; ``usage_roles`` the last 30 days' use and users by the using user's role (or the ``users`` column named
by ``breakdown``, such as a ``team``; column ``group``), from ``usage`` rows that name a ``user_id``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

import ibis
import ibis.expr.datatypes as dtypes
import ibis.expr.types as ir
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from upcurve.engine import cached
from upcurve.errors import ConfigError
from upcurve.months import month_start_after
from upcurve.pricing import PriceModel, minor_unit_digits, price_model_from_json
from upcurve.pricing.bulk import charge_expression
from upcurve.pricing.models import PerUnit

__all__ = ["USAGE_TABLES", "UsageConfig", "plan_price_models", "usage_view"]

#: The tables of the usage view, as a run keeps them.
USAGE_TABLES = ("account_usage", "usage_projection", "usage_weeks", "usage_roles")
_DAY = 86400
_KEY = ["account_id", "metric"]


class UsageConfig(BaseModel):
    """The usage view's settings (``usage:`` in the settings file).

    ``alerts``: the shares of a limit that raise an alert, each above 0, ascending. ``breakdown``: the ``users``
    column use is broken down by. ``weeks``: the weeks of use kept for the sparkline. ``periods_ahead``: the months
    projected after the current one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alerts: tuple[float, ...] = (0.5, 0.75, 0.9)
    breakdown: str = "role"
    weeks: int = Field(13, ge=2, le=104)
    periods_ahead: int = Field(3, ge=0, le=24)

    @field_validator("alerts")
    @classmethod
    def _ascending(cls, alerts: tuple[float, ...]) -> tuple[float, ...]:
        if any(a <= 0 for a in alerts):
            raise ValueError("each alert is a share of the limit above 0, such as 0.75 for 75%")
        if list(alerts) != sorted(set(alerts)):
            raise ValueError("list the alert shares once each, ascending")
        return alerts


def plan_price_models(plans: pa.Table, currency: str) -> dict[str, PriceModel]:
    """The price of each plan's monthly usage: its ``price_model``, else ``unit_price`` per unit (in ``currency``,
    the reporting currency) for a ``usage`` plan. Plans without a usage metric, or that price no usage, are left
    out. The contract has checked every ``price_model`` already."""
    found: dict[str, PriceModel] = {}
    for row in plans.to_pylist():
        if not row.get("usage_metric"):
            continue
        text = row.get("price_model")
        if text:
            found[row["plan_id"]] = price_model_from_json(text, f"plans [price_model] of {row['plan_id']}")
        elif row.get("pricing") == "usage" and row.get("unit_price") is not None:
            found[row["plan_id"]] = PerUnit(model="per_unit", unit_amount=Decimal(str(row["unit_price"])),
                                            currency=currency)
    return found


#: How long after its last billed period a metered plan is still held: usage is billed in arrears, so on the 15th
#: the latest usage line covers the month before.
_ARREARS = dt.timedelta(days=31)


def _held_plans(lines: ir.Table, plans: ir.Table, as_of: dt.date) -> ir.Table:
    """The plan each account holds for each metric on the as-of day: among its lines of a plan metering it that
    started by then and cover the day or ended at most 31 days before (usage billed in arrears), not credits, the
    one that started last (after a change of plan, the new one), then the largest limit."""
    on = lines.filter((lines.period_start <= as_of) & (lines.period_end > as_of - _ARREARS)
                      & lines.plan_id.notnull() & (lines.amount >= 0))
    metered = plans.filter(plans.usage_metric.notnull()).select(
        "plan_id", metric=plans.usage_metric, own_limit=plans.usage_limit.cast("float64"))
    held = on.group_by(["account_id", "plan_id"]).aggregate(_started=on.period_start.max()).join(metered, "plan_id")
    best = ibis.window(group_by=[held.account_id, held.metric],
                       order_by=[ibis.desc(held._started), ibis.desc(held.own_limit.fill_null(-1.0)),
                                 held.plan_id])
    held = held.mutate(_n=ibis.row_number().over(best))
    return held.filter(held._n == 0).drop("_n", "_started")


def _integral(c: ir.FloatingValue, s: ir.FloatingValue, a: float, b: float) -> ir.FloatingValue:
    """∫ from ``a`` to ``b`` of max(0, c + s·t) dt."""
    t0 = -c / ibis.ifelse(s == 0, ibis.literal(1.0), s)  # where the line crosses zero (unused when flat)
    lo = ibis.ifelse(s > 0, ibis.greatest(ibis.least(t0, b), a), ibis.literal(a))
    hi = ibis.ifelse(s < 0, ibis.least(ibis.greatest(t0, a), b), ibis.literal(b))
    sloped = c * (hi - lo) + s * (hi * hi - lo * lo) / 2.0
    return ibis.ifelse(s == 0, ibis.greatest(c, 0.0) * (b - a), sloped)


def _highest_reached(share: ir.FloatingValue, alerts: tuple[float, ...]) -> ir.FloatingValue:
    cases = [(share >= a, ibis.literal(a)) for a in reversed(alerts)]
    return ibis.cases(*cases, else_=ibis.null("float64")) if cases else ibis.null("float64")


def usage_view(tables: Mapping[str, ir.Table], *, as_of: dt.date, config: UsageConfig | None = None,
               currency: str = "USD") -> dict[str, ir.Table]:
    """The usage view's tables (:data:`USAGE_TABLES`) at ``as_of``; none when the data has no ``usage`` table.

    Their shared rows (one per account and metric: the windows' sums, the held plan, the limit and the pace) are
    computed here and held by the tables' engine, so ``tables`` must be bound to one (as a run's are).

    Raises
    ------
    ConfigError
        ``breakdown`` names a column ``users`` does not have.
    """
    if "usage" not in tables:
        return {}
    config = config or UsageConfig()
    usage, plans, lines = tables["usage"], tables["plans"], tables["invoice_lines"]
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    period_start = month_start_after(as_of)

    def ago(days: int) -> ir.TimestampScalar:
        return ibis.timestamp(end - dt.timedelta(days=days))

    recent = usage.filter((usage.ts >= ago(max(90, 7 * config.weeks))) & (usage.ts < ibis.timestamp(end)))
    rq = recent.quantity.cast("float64")

    def within(since: ir.TimestampScalar, before: ir.TimestampScalar | None = None) -> ir.FloatingValue:
        inside = recent.ts >= since if before is None else (recent.ts >= since) & (recent.ts < before)
        return ibis.ifelse(inside, rq, 0.0).sum()

    used = recent.group_by(_KEY).aggregate(
        used_this_period=within(ibis.timestamp(dt.datetime.combine(period_start, dt.time()))),
        used_30d=within(ago(30)), used_prev_30d=within(ago(60), ago(30)), used_60d=within(ago(60)),
        used_90d=within(ago(90)),
    )
    used = used.filter((used.used_90d != 0) | (used.used_this_period != 0)).view()
    held = _held_plans(lines, plans, as_of).view()
    rows = used.outer_join(held, [used.account_id == held.account_id, used.metric == held.metric])
    rows = rows.select(
        account_id=ibis.coalesce(rows.account_id, rows.account_id_right),
        metric=ibis.coalesce(rows.metric, rows.metric_right),
        plan_id=rows.plan_id, own_limit=rows.own_limit,
        **{c: rows[c].fill_null(0.0) for c in ("used_this_period", "used_30d", "used_prev_30d", "used_60d",
                                                "used_90d")},
    )
    metered = plans.filter(plans.usage_metric.notnull() & plans.usage_limit.notnull())
    entry = metered.group_by(metric=metered.usage_metric).aggregate(
        entry_limit=metered.usage_limit.cast("float64").min())
    rows, entry = rows.view(), entry.view()
    rows = rows.left_join(entry, rows.metric == entry.metric).select(rows, entry.entry_limit)
    limit = ibis.coalesce(rows.own_limit, rows.entry_limit)
    r = rows.used_30d / 30.0
    s = (rows.used_30d - rows.used_prev_30d) / 900.0
    c = r + 15.0 * s  # the rate at the end of the as-of day
    days_left = float((month_start_after(as_of, 1) - as_of).days - 1)  # whole days after the as-of day this month
    rows = rows.mutate(
        usage_limit=limit,
        limit_source=ibis.cases((rows.own_limit.notnull(), "plan"), (rows.entry_limit.notnull(), "entry plan"),
                                else_=ibis.null("string")),
        share_used=ibis.ifelse(limit > 0, rows.used_this_period / limit, ibis.null("float64")),
        trend_30d=ibis.ifelse(rows.used_prev_30d > 0,
                              (rows.used_30d - rows.used_prev_30d) / rows.used_prev_30d * 100.0,
                              ibis.null("float64")),
        daily_rate=c.clip(lower=0.0), _c=c, _s=s,
    )
    left = rows.usage_limit - rows.used_this_period
    root = (-rows._c + (rows._c * rows._c + 2.0 * rows._s * left).clip(lower=0.0).sqrt()) / rows._s
    reachable = ibis.ifelse(rows._s == 0, rows._c > 0,
                            (rows._c * rows._c + 2.0 * rows._s * left >= 0) & ((rows._s > 0) | (rows._c > 0)))
    days = ibis.cases(
        (rows.usage_limit.isnull() | (rows.usage_limit <= 0), ibis.null("float64")),
        (left <= 0, ibis.literal(0.0)),
        (~reachable, ibis.null("float64")),
        (rows._s == 0, left / rows._c),
        else_=root,
    )
    this_period = rows.used_this_period + _integral(rows._c, rows._s, 0.0, days_left)
    # held by the engine: the usage and the projection (a copy per period ahead) both read it, and its joins and
    # the 90 days' sums would otherwise be compiled and computed for each
    rows = cached(rows.mutate(days_until_limit=ibis.ifelse(days <= days_left, days, ibis.null("float64")),
                              projected_this_period=this_period))
    share_projected = ibis.ifelse(rows.usage_limit > 0, rows.projected_this_period / rows.usage_limit,
                                  ibis.null("float64"))
    account_usage = rows.mutate(
        period_start=ibis.date(period_start), period_end=ibis.date(month_start_after(as_of, 1)),
        alert=_highest_reached(rows.share_used, config.alerts),
        projected_alert=_highest_reached(share_projected, config.alerts),
    ).select("account_id", "metric", "plan_id", "usage_limit", "limit_source", "period_start", "period_end",
             "used_this_period", "share_used", "used_30d", "used_prev_30d", "used_60d", "used_90d", "trend_30d",
             "daily_rate", "days_until_limit", "alert", "projected_alert")

    # each period's projected use, share and cost: one row per account, metric and period
    periods = []
    for k in range(config.periods_ahead + 1):
        start, stop = month_start_after(as_of, k), month_start_after(as_of, k + 1)
        use = rows.projected_this_period if k == 0 else _integral(rows._c, rows._s, float((start - as_of).days - 1),
                                                                  float((stop - as_of).days - 1))
        periods.append(rows.select("account_id", "metric", "plan_id", "usage_limit", period_start=ibis.date(start),
                                   periods_ahead=ibis.literal(k, "int64"), projected_use=use))
    projection = ibis.union(*periods) if len(periods) > 1 else periods[0]
    projection = projection.mutate(
        projected_share=ibis.ifelse(projection.usage_limit > 0, projection.projected_use / projection.usage_limit,
                                    ibis.null("float64")))
    products = plans.select(_plan=plans.plan_id, product=plans.product)
    projection = projection.left_join(products, projection.plan_id == products._plan).drop("_plan")
    projection = _with_cost(projection, plans, currency)

    weeks = recent.filter(recent.ts >= ago(7 * config.weeks))
    # whole weeks before the end of the as-of day: a week holds [end − 7(k+1) days, end − 7k days)
    back = ((int(end.replace(tzinfo=dt.UTC).timestamp()) - weeks.ts.epoch_seconds() - 1) // (7 * _DAY)).cast("int64")
    weekly = weeks.mutate(_weeks_back=back).group_by([*_KEY, "_weeks_back"]).aggregate(
        quantity=weeks.quantity.cast("float64").sum())
    # each week's last day, joined rather than computed: date arithmetic on a column is not on every engine
    # (SQLite before 3.46 has none)
    endings = ibis.memtable(pa.table({
        "_weeks_back": pa.array(range(config.weeks), pa.int64()),
        "week_ending": pa.array([as_of - dt.timedelta(days=7 * k) for k in range(config.weeks)], pa.date32()),
    }))
    weekly = weekly.join(endings, "_weeks_back")
    weekly = weekly.select(*_KEY, "week_ending", "quantity").order_by([*_KEY, "week_ending"])

    return {"account_usage": account_usage.order_by(_KEY),
            "usage_projection": projection.order_by([*_KEY, "periods_ahead"]),
            "usage_weeks": weekly, "usage_roles": _by_role(recent, tables, config.breakdown, ago(30))}


def _with_cost(projection: ir.Table, plans: ir.Table, currency: str) -> ir.Table:
    """``projection`` with ``projected_cost`` and ``cost_currency``: each row's projected use at its plan's price."""
    models = plan_price_models(plans.to_pyarrow(), currency)
    digits = max([2, *(minor_unit_digits(m.currency) for m in models.values())])
    money = dtypes.Decimal(20, digits)
    if not models:
        return projection.mutate(projected_cost=ibis.null(money), cost_currency=ibis.null("string"))
    cost = ibis.cases(*[(projection.plan_id == plan_id, charge_expression(model, projection.projected_use)
                         .cast(money)) for plan_id, model in sorted(models.items())], else_=ibis.null(money))
    named = ibis.cases(*[(projection.plan_id == plan_id, ibis.literal(model.currency.upper()))
                         for plan_id, model in sorted(models.items())], else_=ibis.null("string"))
    return projection.mutate(projected_cost=cost, cost_currency=named)


def _by_role(recent: ir.Table, tables: Mapping[str, ir.Table], breakdown: str, since: ir.TimestampScalar
             ) -> ir.Table:
    """The last 30 days' use by the ``breakdown`` column of the user who used it (``no <breakdown>`` when the
    user has none or is unknown)."""
    named = recent.filter(recent.user_id.notnull() & (recent.ts >= since))
    if "users" in tables:
        users = tables["users"]
        if breakdown not in users.columns:
            raise ConfigError(f"usage.breakdown: users has no column {breakdown!r}; its columns are "
                              + ", ".join(users.columns))
        who = users.select(user_id=users.user_id, group=users[breakdown].cast("string"))
        named = named.left_join(who, "user_id").drop("user_id_right")
        group = ibis.coalesce(named.group, ibis.literal(f"no {breakdown}"))
    else:
        group = ibis.literal(f"no {breakdown}")
    named = named.mutate(group=group)
    out = named.group_by([*_KEY, "group"]).aggregate(used_30d=named.quantity.cast("float64").sum(),
                                                      users=named.user_id.nunique())
    out = out.select(*_KEY, breakdown=ibis.literal(breakdown), group=out.group, used_30d=out.used_30d,
                     users=out.users)
    return out.order_by([*_KEY, ibis.desc("used_30d"), "group"])
