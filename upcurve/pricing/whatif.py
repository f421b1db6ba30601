"""What-if pricing: a price change applied to the real book of business, month by month.

A **scenario** lists changes, each on some plans (or every plan of some products): a list-price change in %
(subscriptions; on a usage plan, its usage cost), a new usage price (a price model: a new tier, a new unit price, a
package), and a changed usage limit. It says when the new prices start and who keeps the old ones:

- ``effective`` (default: the day after the as-of date) and ``notice_days`` (default 30): no existing customer's
  price changes before ``max(effective, as-of + notice_days)``, the **start**;
- ``grandfathering``: ``none`` (every price changes at the start, mid-period), ``until_renewal`` (each
  subscription at its first renewal on or after the start: the end of its current period, then every
  ``interval_months``; the default) or ``months`` (``grandfather_months`` after the start).

Formulas (each account and plan of the book: the run's ``plan_mrr``; usage from its ``usage_projection``):

- a subscription's new MRR is ``round(mrr × (1 + pct / 100), 2)``, counted from the month its change date falls
  in (MRR is measured on the month's last day);
- a usage plan's new cost for a month is the projected use at the new price model (or the old cost × (1 + pct /
  100)), exact and rounded once to the minor unit; usage is billed by calendar month, so a change counts from the
  first month that starts on or after its change date. Months after the last projected one hold its use;
- the impact of a month is the sum of new − old over the changes that have started; the accounts, the segments
  and the headline are read in the last month simulated (``months``, default 12), at **full effect** once every
  change has started by then (``full_effect_month``: when the last one starts). The book is held as it is: no new
  customers, no expansion, no churn but the section below;
- **churn at risk**: for each account whose bill rises, its churn risk ``p`` (the run's churn model, over its
  horizon) rises to ``p′ = min(1, p × (1 + elasticity × rise %))`` (``churn_elasticity``, default 0: the model's
  risk as it is). Revenue at risk is ``Σ p′ × new MRR``; the risk-adjusted impact is
  ``Σ (1 − p′) × new MRR − (1 − p) × old MRR`` over the raised accounts plus the plain change of the others.

An account's usage priced in a currency other than the reporting one is left out, and said so. Every amount is in
the reporting currency's cents, as the revenue engine counts them (a three-decimal currency's usage costs, priced
to the mil, are compared to the cent).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal

import ibis
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from upcurve.errors import ConfigError
from upcurve.months import month_end, month_index, month_start, month_start_after
from upcurve.pricing.bulk import charge_expression
from upcurve.pricing.models import PriceModel, field_location, parse_price_model, read_exact_document
from upcurve.pricing.quote import quote

__all__ = ["PriceChange", "PricingImpact", "PricingScenario", "compare_prices", "load_scenario",
           "simulate_pricing"]

_CENT = Decimal("0.01")


def _cents(amount: Decimal | int | str) -> Decimal:
    """An amount in the reporting currency's cents, as the revenue engine counts (a currency of three decimals,
    priced to the mil by a price model, is compared to the cent)."""
    return Decimal(amount).quantize(_CENT, ROUND_HALF_UP)


class PriceChange(BaseModel):
    """One change of a scenario: on ``plans`` and every plan of ``products``, a ``list_price_pct`` (e.g. 10 for
    +10%), a new usage ``price_model``, or a new ``usage_limit`` (per month)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    plans: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    list_price_pct: Decimal | None = Field(None, gt=-100, le=1000)
    price_model: Any = None
    usage_limit: float | None = Field(None, ge=0)

    @field_validator("price_model")
    @classmethod
    def _model(cls, value: Any) -> PriceModel | None:
        if value is None:
            return None
        try:
            return parse_price_model(value, "price_model")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("price_model: ")) from None

    @model_validator(mode="after")
    def _says_what(self) -> PriceChange:
        if not self.plans and not self.products:
            raise ValueError("name the plans (plans: [...]) or products (products: [...]) it changes")
        if self.list_price_pct is None and self.price_model is None and self.usage_limit is None:
            raise ValueError("say what changes: list_price_pct, price_model or usage_limit")
        if self.list_price_pct is not None and self.price_model is not None:
            raise ValueError("list_price_pct and price_model both price the usage: give one of them")
        return self


class PricingScenario(BaseModel):
    """A price change to simulate (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "price change"
    effective: dt.date | None = None
    notice_days: int = Field(30, ge=0, le=3660)
    grandfathering: Literal["none", "until_renewal", "months"] = "until_renewal"
    grandfather_months: int | None = Field(None, ge=1, le=120)
    months: int = Field(12, ge=1, le=60)
    churn_elasticity: float = Field(0.0, ge=0, le=100)
    changes: tuple[PriceChange, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _months_given(self) -> PricingScenario:
        if (self.grandfathering == "months") != (self.grandfather_months is not None):
            raise ValueError("grandfather_months goes with grandfathering: months (and only with it)")
        return self


def load_scenario(path: str | Path) -> PricingScenario:
    """Read a scenario from a YAML or JSON file.

    Raises
    ------
    ConfigError
        Naming the file and every wrong field (an unknown key, a change that names no plan, a bad price model).
    """
    path = Path(path)
    data = read_exact_document(path, "scenario file")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a scenario is a mapping with a `changes:` list, not a {type(data).__name__}")
    try:
        return PricingScenario.model_validate(data)
    except ValidationError as exc:
        details = []
        for e in exc.errors():
            where = field_location(e["loc"])
            message = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                message = "not a field of a scenario" if len(e["loc"]) == 1 else "not a field of a change"
            details.append(f"{where}: {message}" if where else message)
        raise ConfigError(f"{path}: " + "; ".join(details)) from None


@dataclass(frozen=True)
class PricingImpact:
    """What a scenario does to the book: ``by_month`` (month, accounts changed so far, subscription, usage and total
    impact), ``by_segment`` and ``accounts`` (every affected account in the last month simulated, the largest rise
    first) as Arrow tables; ``summary`` (the headline numbers) and ``notes``."""

    scenario: PricingScenario
    start: dt.date
    by_month: pa.Table
    by_segment: pa.Table
    accounts: pa.Table
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _selected(scenario: PricingScenario, plan_products: dict[str, str]) -> tuple[dict[str, PriceChange], list[str]]:
    """Which change applies to each plan of the book; a plan two changes name is an error naming both."""
    found: dict[str, PriceChange] = {}
    where: dict[str, int] = {}
    problems, notes = [], []
    for i, change in enumerate(scenario.changes, start=1):
        plans = set(change.plans) | {p for p, product in plan_products.items() if product in change.products}
        unknown = sorted(set(change.plans) - set(plan_products))
        unknown_products = sorted(set(change.products) - set(plan_products.values()))
        if unknown or unknown_products:
            notes.append(f"changes[{i}] names " + ", ".join(unknown + unknown_products) + ": no account of the "
                         "book holds it")
        for plan in sorted(plans & set(plan_products)):
            if plan in found:
                problems.append(f"changes[{where[plan]}] and changes[{i}] both change plan {plan!r}")
            found[plan], where[plan] = change, i
    if problems:
        raise ConfigError("; ".join(problems) + ": give each plan one change")
    return found, notes


@dataclass
class _Part:
    """One account's plan the scenario changes: its old and new amount in each month of the horizon, counted from
    ``first_month``."""

    account_id: str
    plan_id: str
    part: str
    changes_on: dt.date
    first_month: dt.date
    old: dict[dt.date, Decimal]
    new: dict[dt.date, Decimal]


def _change_date(renews_on: dt.date, interval: int, start: dt.date, scenario: PricingScenario) -> dt.date:
    """When a subscription's new price starts: at ``start``; at its first renewal on or after it; or
    ``grandfather_months`` after it."""
    if scenario.grandfathering == "none":
        return start
    if scenario.grandfathering == "months":
        return _add_months(start, scenario.grandfather_months or 0)
    day = renews_on
    while day < start:
        day = _add_months(day, interval)
    return day


def _add_months(day: dt.date, months: int) -> dt.date:
    """``day`` ``months`` later, on the same day of the month or the month's last (Jan 31 + 1 month: Feb 29 in a
    leap year)."""
    index = month_index(day) + months
    return month_start(index).replace(day=min(day.day, month_end(index).day))


def _subscription_parts(book: pa.Table, chosen: dict[str, PriceChange], start: dt.date, months: list[dt.date],
                        scenario: PricingScenario) -> list[_Part]:
    parts = []
    for r in book.to_pylist():
        change = chosen.get(r["plan_id"])
        if r["kind"] != "subscription" or change is None or change.list_price_pct is None:
            continue
        old = Decimal(r["mrr"])
        new = (old * (1 + change.list_price_pct / 100)).quantize(_CENT, ROUND_HALF_UP)
        on = _change_date(r["renews_on"], int(r["interval_months"] or 1), start, scenario)
        parts.append(_Part(r["account_id"], r["plan_id"], "subscription", on, month_start_after(on),
                           dict.fromkeys(months, old), dict.fromkeys(months, new)))
    return parts


def _usage_parts(usage: pa.Table, chosen: dict[str, PriceChange], start: dt.date, months: list[dt.date],
                 scenario: PricingScenario, currency: str, notes: list[str]) -> list[_Part]:
    """The usage plans a change prices anew, each month's projected cost at the old and the new price (the new
    price model priced by the engine, in exact decimals)."""
    rows = [r for r in usage.to_pylist() if r.get("plan_id") in chosen and r.get("periods_ahead", 0) >= 1
            and (chosen[r["plan_id"]].price_model is not None or chosen[r["plan_id"]].list_price_pct is not None)]
    other = sorted({r["account_id"] for r in rows if r.get("cost_currency") not in (None, currency.upper())})
    if other:
        notes.append(f"{len(other)} account(s) whose usage is priced in another currency than {currency} are left "
                     "out of the usage impact")
    rows = [r for r in rows if r["account_id"] not in other and r.get("projected_cost") is not None]
    if not rows:
        return []
    priced = _priced(rows, chosen)
    by_key: dict[tuple[str, str, str], dict[dt.date, tuple[Decimal, Decimal]]] = {}
    for r, cost in zip(rows, priced, strict=True):
        by_key.setdefault((r["account_id"], r["plan_id"], r["metric"]), {})[r["period_start"]] = (
            _cents(r["projected_cost"]), cost)
    # usage is billed by calendar month: a change counts from the first month starting on or after its date
    parts = []
    for (account, plan, _metric), periods in sorted(by_key.items()):
        on = start if scenario.grandfathering != "months" else _add_months(start, scenario.grandfather_months or 0)
        first = on if on.day == 1 else month_start_after(on, 1)
        last_projected = max(periods)
        old, new = {}, {}
        for month in months:
            held = periods[min(month, last_projected)] if month > last_projected else periods.get(month)
            if held is not None:
                old[month], new[month] = held
        parts.append(_Part(account, plan, "usage", on, first, old, new))
    return parts


def _priced(rows: list[dict[str, Any]], chosen: dict[str, PriceChange]) -> list[Decimal]:
    """Each row's new cost: its projected use at the change's price model (by the engine), or its old cost moved
    by the change's percentage."""
    new: list[Decimal | None] = [None] * len(rows)
    by_plan: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        change = chosen[r["plan_id"]]
        if change.price_model is None:
            pct = change.list_price_pct or Decimal(0)
            new[i] = _cents(Decimal(r["projected_cost"]) * (1 + pct / 100))
        else:
            by_plan.setdefault(r["plan_id"], []).append(i)
    for plan, at in by_plan.items():
        model = chosen[plan].price_model
        uses = ibis.memtable(pa.table({"i": pa.array(at, pa.int64()),
                                       "use": pa.array([rows[i]["projected_use"] for i in at], pa.float64())}))
        costs = uses.select("i", cost=charge_expression(model, uses.use)).to_pyarrow()
        for i, cost in zip(costs["i"].to_pylist(), costs["cost"].to_pylist(), strict=True):
            new[i] = _cents(cost)
    return [n if n is not None else Decimal(0) for n in new]


def simulate_pricing(scenario: PricingScenario, *, book: pa.Table, usage: pa.Table, accounts: pa.Table,
                     as_of: dt.date, currency: str = "USD") -> PricingImpact:
    """Apply ``scenario`` to a run's book of business (see the module for every formula).

    ``book``: the run's ``plan_mrr``; ``usage``: its ``usage_projection`` (may be empty); ``accounts``: its
    ``accounts`` (``segment``, ``name``, ``owner``, ``mrr``, ``churn_risk`` where present).

    Raises
    ------
    ConfigError
        Two changes name one plan.
    """
    plan_products = dict(zip(book["plan_id"].to_pylist(), book["product"].to_pylist(), strict=True))
    # usage plans the book does not hold (usage left out of MRR, or not billed this month) by their product too
    for row in usage.select([c for c in ("plan_id", "product") if c in usage.column_names]).to_pylist() \
            if usage.num_rows else []:
        if row.get("plan_id") is not None:
            plan_products.setdefault(row["plan_id"], row.get("product") or "")
    chosen, notes = _selected(scenario, plan_products)
    start = max(scenario.effective or as_of + dt.timedelta(days=1), as_of + dt.timedelta(days=scenario.notice_days))
    months = [month_start_after(as_of, k) for k in range(1, scenario.months + 1)]
    parts = _subscription_parts(book, chosen, start, months, scenario) + \
        _usage_parts(usage, chosen, start, months, scenario, currency, notes)

    month_rows = []
    for month in months:
        live = [p for p in parts if p.first_month <= month and month in p.old]
        sub = sum((p.new[month] - p.old[month] for p in live if p.part == "subscription"), Decimal(0))
        use = sum((p.new[month] - p.old[month] for p in live if p.part == "usage"), Decimal(0))
        month_rows.append({"month": month, "accounts_changed": len({p.account_id for p in live}),
                           "subscription_impact": sub, "usage_impact": use, "impact": sub + use})
    by_month = pa.Table.from_pylist(month_rows, schema=pa.schema([
        ("month", pa.date32()), ("accounts_changed", pa.int64()), ("subscription_impact", pa.decimal128(20, 2)),
        ("usage_impact", pa.decimal128(20, 2)), ("impact", pa.decimal128(20, 2))]))
    if parts and max(p.first_month for p in parts) > months[-1]:
        notes.append(f"some changes start after {months[-1]:%Y-%m}, the last month simulated: raise months")
    limits = _limit_counts(usage, chosen, months[0])
    impact = _at_full_effect(scenario, start, months, parts, by_month, accounts, notes, limits)
    impact.summary["currency"] = currency.upper()
    return impact


def _limit_counts(usage: pa.Table, chosen: dict[str, PriceChange], month: dt.date) -> list[dict[str, Any]]:
    """For each changed limit: the accounts whose projected use of the first simulated month goes over the old
    and over the new limit."""
    found = []
    rows = usage.to_pylist() if usage.num_rows else []
    for plan, change in sorted(chosen.items()):
        if change.usage_limit is None:
            continue
        uses = [r for r in rows if r.get("plan_id") == plan and r["period_start"] == month]
        old = next((r["usage_limit"] for r in uses if r.get("usage_limit") is not None), None)
        found.append({"plan_id": plan, "month": month, "old_limit": old, "new_limit": change.usage_limit,
                      "accounts": len(uses),
                      "over_old": sum(1 for r in uses if old is not None and r["projected_use"] > old),
                      "over_new": sum(1 for r in uses if r["projected_use"] > change.usage_limit)})
    return found


def _at_full_effect(scenario: PricingScenario, start: dt.date, months: list[dt.date], parts: list[_Part],
                    by_month: pa.Table, accounts: pa.Table, notes: list[str],
                    limits: list[dict[str, Any]]) -> PricingImpact:
    """Each affected account in the last month, the segments, the churn at risk and the headline numbers."""
    last = months[-1]
    impact: dict[str, Decimal] = {}
    first: dict[str, dt.date] = {}
    for p in parts:
        first[p.account_id] = min(first.get(p.account_id, p.first_month), p.first_month)
        if p.first_month <= last and last in p.old:
            impact[p.account_id] = impact.get(p.account_id, Decimal(0)) + p.new[last] - p.old[last]
    known = {r["account_id"]: r for r in accounts.to_pylist()}
    elasticity = Decimal(repr(scenario.churn_elasticity))
    rows = []
    for account_id, change in impact.items():
        a = known.get(account_id, {})
        mrr = Decimal(a.get("mrr") or 0)
        risk = a.get("churn_risk")
        rise = change / mrr if mrr else None
        raised = None if risk is None else Decimal(repr(risk)) * (1 + elasticity * max(rise or Decimal(0),
                                                                                             Decimal(0)))
        after = None if raised is None else float(min(raised, Decimal(1)))
        rows.append({"account_id": account_id, "name": a.get("name"), "segment": a.get("segment"),
                     "owner": a.get("owner"), "first_month": first[account_id], "mrr": mrr,
                     "new_mrr": mrr + change, "impact": change, "impact_pct": None if rise is None else float(rise),
                     "churn_risk": risk, "churn_risk_after": after})
    rows.sort(key=lambda r: (-r["impact"], r["account_id"]))
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("account_id", pa.string()), ("name", pa.string()), ("segment", pa.string()), ("owner", pa.string()),
        ("first_month", pa.date32()), ("mrr", pa.decimal128(20, 2)), ("new_mrr", pa.decimal128(20, 2)),
        ("impact", pa.decimal128(20, 2)), ("impact_pct", pa.float64()), ("churn_risk", pa.float64()),
        ("churn_risk_after", pa.float64())]))
    segments: dict[str, dict[str, Any]] = {}
    for a in accounts.to_pylist():
        mrr = Decimal(a.get("mrr") or 0)
        if mrr <= 0:
            continue
        seg = segments.setdefault(a.get("segment") or "(none)", {"accounts": 0, "affected": 0, "mrr": Decimal(0),
                                                                 "impact": Decimal(0)})
        seg["accounts"] += 1
        seg["mrr"] += mrr
        if a["account_id"] in impact:
            seg["affected"] += 1
            seg["impact"] += impact[a["account_id"]]
    by_segment = pa.Table.from_pylist(
        [{"segment": name, **s, "impact_pct": float(s["impact"] / s["mrr"]) if s["mrr"] else None}
         for name, s in sorted(segments.items(), key=lambda kv: -kv[1]["impact"])],
        schema=pa.schema([("segment", pa.string()), ("accounts", pa.int64()), ("affected", pa.int64()),
                          ("mrr", pa.decimal128(20, 2)), ("impact", pa.decimal128(20, 2)),
                          ("impact_pct", pa.float64())]))
    mrr_now = sum((Decimal(a.get("mrr") or 0) for a in accounts.to_pylist()), Decimal(0))
    total = sum(impact.values(), Decimal(0))
    raised_rows = [r for r in rows if r["impact"] > 0 and r["churn_risk"] is not None]
    at_risk = sum((Decimal(repr(r["churn_risk_after"])) * r["new_mrr"] for r in raised_rows), Decimal(0))
    before = sum((Decimal(repr(r["churn_risk"])) * r["mrr"] for r in raised_rows), Decimal(0))
    adjusted = sum(((1 - Decimal(repr(r["churn_risk_after"]))) * r["new_mrr"]
                    - (1 - Decimal(repr(r["churn_risk"]))) * r["mrr"] for r in raised_rows), Decimal(0)) + \
        sum((r["impact"] for r in rows if not (r["impact"] > 0 and r["churn_risk"] is not None)), Decimal(0))
    summary = {
        "scenario": scenario.name, "start": start, "first_month": months[0], "last_month": last,
        "full_effect_month": max(first.values()) if first else None,
        "accounts": sum(1 for a in known.values() if Decimal(a.get("mrr") or 0) > 0),
        "accounts_affected": len(rows), "accounts_raised": sum(1 for r in rows if r["impact"] > 0),
        "accounts_lowered": sum(1 for r in rows if r["impact"] < 0), "mrr_now": mrr_now,
        "impact": total, "arr_impact": total * 12,
        "impact_pct": float(total / mrr_now) if mrr_now else None,
        "churn_known": bool(raised_rows) or not any(r["impact"] > 0 for r in rows),
        "revenue_at_risk": at_risk.quantize(_CENT, ROUND_HALF_UP),
        "revenue_at_risk_before": before.quantize(_CENT, ROUND_HALF_UP),
        "risk_adjusted_impact": adjusted.quantize(_CENT, ROUND_HALF_UP), "limits": limits,
    }
    return PricingImpact(scenario, start, by_month, by_segment, table, summary, notes)


def compare_prices(old: PriceModel, new: PriceModel, usage: Decimal | int | str) -> dict[str, Any]:
    """What one period's ``usage`` costs under the old and the new price: both quotes, the difference and the
    change in %."""
    before, after = quote(old, usage=usage), quote(new, usage=usage)
    change = after.amount - before.amount
    return {"usage": before.usage, "old": before, "new": after, "difference": change,
            "difference_pct": float(change / before.amount) if before.amount else None}
