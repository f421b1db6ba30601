"""The usage view of an account, checked by hand: limits, use, trajectory, projected use and cost, days until the
limit, alerts, weeks and roles."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import ibis
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upcurve.errors import ConfigError
from upcurve.pricing import price_model_from_json, quote
from upcurve.signals.usage import UsageConfig, usage_view

AS_OF = dt.date(2024, 3, 15)
GRADUATED = json.dumps({"model": "graduated", "tiers": [{"up_to": 3000, "unit_amount": "0.01"},
                                                         {"up_to": None, "unit_amount": "0.005"}]})


def _plans(price_model: str | None = None) -> pa.Table:
    return pa.table({
        "plan_id": ["api_m", "api_big", "team_m"], "product": ["api", "api", "core"],
        "tier": ["m", "big", "team"], "tier_rank": [1, 2, 1], "pricing": ["usage", "usage", "per_seat"],
        "interval_months": [1, 1, 1], "unit_price": [0.01, 0.008, 10.0], "included_seats": pa.nulls(3, pa.int64()),
        "usage_metric": ["api_calls", "api_calls", None], "usage_limit": [3000.0, 10000.0, None],
        "features": pa.nulls(3, pa.string()), "price_model": [price_model, None, None]})


def _daily(account: str, first: dt.date, last: dt.date, per_day: float, user: str | None = None
           ) -> list[dict[str, Any]]:
    days = (last - first).days + 1
    return [{"ts": dt.datetime.combine(first + dt.timedelta(days=d), dt.time(12)), "account_id": account,
             "metric": "api_calls", "quantity": per_day, "user_id": user} for d in range(days)]


LINES = pa.schema([("line_id", pa.string()), ("account_id", pa.string()), ("plan_id", pa.string()),
                   ("kind", pa.string()), ("quantity", pa.float64()), ("amount", pa.float64()),
                   ("currency", pa.string()), ("period_start", pa.date32()), ("period_end", pa.date32())])


def _view(usage: list[dict[str, Any]], *, plans: pa.Table | None = None, held: dict[str, str] | None = None,
          users: pa.Table | None = None, config: UsageConfig | None = None,
          lines: pa.Table | None = None) -> dict[str, list[dict[str, Any]]]:
    held = {"A": "api_m"} if held is None else held
    lines = lines if lines is not None else pa.table({
        "line_id": [str(i) for i in range(len(held))], "account_id": list(held), "plan_id": list(held.values()),
        "kind": ["usage"] * len(held), "quantity": [1.0] * len(held), "amount": [1.0] * len(held),
        "currency": ["USD"] * len(held), "period_start": [dt.date(2024, 3, 1)] * len(held),
        "period_end": [dt.date(2024, 4, 1)] * len(held)}, schema=LINES)
    schema = pa.schema([("ts", pa.timestamp("us")), ("account_id", pa.string()), ("metric", pa.string()),
                        ("quantity", pa.float64()), ("user_id", pa.string())])
    # the tables in the engine, as a run gives them: the view holds a part of itself there for its two tables
    con = ibis.duckdb.connect()
    arrow = {"usage": pa.Table.from_pylist(usage, schema), "plans": plans if plans is not None else _plans(),
             "invoice_lines": lines, **({} if users is None else {"users": users})}
    # a column with no value at all is text, as it reads from a file (an engine holds no column without a type)
    tables = {name: con.create_table(name, rows.cast(pa.schema([
        f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in rows.schema])))
        for name, rows in arrow.items()}
    return {name: con.to_pyarrow(expr).to_pylist() for name, expr in usage_view(tables, as_of=AS_OF,
                                                                                 config=config).items()}


def test_steady_use_projects_flat_with_days_to_the_limit_cost_and_alerts() -> None:
    """100 calls a day for 60 days: 1,500 used by the 15th of a 3,000 limit (50%); 16 days left of March at 100 a
    day project 3,100 (above 90% of the limit); the limit is reached in 15 days; 0.01 a call."""
    view = _view(_daily("A", dt.date(2024, 1, 16), AS_OF, 100.0))
    [row] = view["account_usage"]
    assert row["usage_limit"] == 3000.0 and row["limit_source"] == "plan" and row["plan_id"] == "api_m"
    assert row["used_this_period"] == 1500.0 and row["share_used"] == 0.5
    assert (row["used_30d"], row["used_prev_30d"], row["used_60d"], row["used_90d"]) == (3000, 3000, 6000, 6000)
    assert row["trend_30d"] == 0.0 and row["daily_rate"] == pytest.approx(100.0)
    assert row["days_until_limit"] == pytest.approx(15.0)
    assert (row["alert"], row["projected_alert"]) == (0.5, 0.9)
    assert (row["period_start"], row["period_end"]) == (dt.date(2024, 3, 1), dt.date(2024, 4, 1))
    projection = view["usage_projection"]
    assert [p["period_start"] for p in projection] == [dt.date(2024, m, 1) for m in (3, 4, 5, 6)]
    assert [p["periods_ahead"] for p in projection] == [0, 1, 2, 3]
    assert [p["projected_use"] for p in projection] == pytest.approx([3100.0, 3000.0, 3100.0, 3000.0])
    assert [p["projected_cost"] for p in projection] == [Decimal("31.00"), Decimal("30.00"), Decimal("31.00"),
                                                         Decimal("30.00")]
    assert {p["cost_currency"] for p in projection} == {"USD"}
    assert projection[0]["projected_share"] == pytest.approx(3100 / 3000)


def test_falling_use_falls_to_zero_and_never_reaches_the_limit() -> None:
    """200 a day, then 100 a day: the line through the two means (200 and 100, 30 days apart) is at 50 a day now
    and reaches zero 15 days on: 50·15 − (10/3)·15²/2 = 375 more this month, none after."""
    use = _daily("A", dt.date(2024, 1, 16), dt.date(2024, 2, 14), 200.0) + _daily("A", dt.date(2024, 2, 15),
                                                                                  AS_OF, 100.0)
    view = _view(use)
    [row] = view["account_usage"]
    assert row["trend_30d"] == pytest.approx(-50.0) and row["daily_rate"] == pytest.approx(50.0)
    assert row["days_until_limit"] is None  # 1,500 + 375 never reaches 3,000
    assert [p["projected_use"] for p in view["usage_projection"]] == pytest.approx([1875.0, 0.0, 0.0, 0.0])
    assert row["projected_alert"] == 0.5


def test_growing_use_keeps_growing_by_the_same_units_a_day() -> None:
    """Nothing before, then 100 a day for 30 days: mean rates 0 and 100, so the line rises 100/30 a day and is at
    150 a day now; this month: 16 days, 150·16 + (10/3)·16²/2 more than the 1,500 used."""
    view = _view(_daily("A", dt.date(2024, 2, 15), AS_OF, 100.0))
    [row] = view["account_usage"]
    assert row["trend_30d"] is None  # nothing the 30 days before to compare with
    extra = 150 * 16 + (10 / 3) * 16 ** 2 / 2
    assert view["usage_projection"][0]["projected_use"] == pytest.approx(1500 + extra)
    # 1,500 left: (10/6)·d² + 150·d = 1,500 → d = (−150 + √(150² + 4·(10/6)·1,500)) / (2·10/6)
    assert row["days_until_limit"] == pytest.approx((-150 + (150 ** 2 + 4 * (10 / 6) * 1500) ** 0.5) / (20 / 6))


def test_a_price_model_prices_the_projection_tier_by_tier() -> None:
    """The plan's price_model (graduated: 3,000 at 0.01, then 0.005) prices 3,100 calls at 30 + 0.50."""
    view = _view(_daily("A", dt.date(2024, 1, 16), AS_OF, 100.0), plans=_plans(GRADUATED))
    costs = [p["projected_cost"] for p in view["usage_projection"]]
    assert costs == [Decimal("30.50"), Decimal("30.00"), Decimal("30.50"), Decimal("30.00")]


def test_an_account_without_a_metered_plan_is_measured_against_the_entry_plan_without_a_cost() -> None:
    view = _view(_daily("B", dt.date(2024, 3, 1), AS_OF, 10.0), held={})
    [row] = view["account_usage"]
    assert (row["account_id"], row["plan_id"], row["usage_limit"], row["limit_source"]) == ("B", None, 3000.0,
                                                                                           "entry plan")
    assert {p["projected_cost"] for p in view["usage_projection"]} == {None}


def test_a_held_plan_without_use_is_listed_at_zero() -> None:
    view = _view([], held={"C": "api_big"})
    [row] = view["account_usage"]
    assert (row["account_id"], row["usage_limit"], row["used_this_period"], row["alert"]) == ("C", 10000.0, 0.0,
                                                                                           None)
    assert [p["projected_cost"] for p in view["usage_projection"]] == [Decimal("0.00")] * 4


def test_weeks_for_the_sparkline_and_use_by_role() -> None:
    use = (_daily("A", dt.date(2024, 3, 2), AS_OF, 10.0, "u1") + _daily("A", dt.date(2024, 3, 9), AS_OF, 5.0, "u2")
           + _daily("A", dt.date(2024, 3, 15), AS_OF, 1.0, "ghost") + _daily("A", dt.date(2024, 3, 15), AS_OF, 2.0)
           # midnight starting the 9th opens the last week; the second before it closes the week before
           + [{"ts": dt.datetime(2024, 3, 9), "account_id": "A", "metric": "api_calls", "quantity": 1000.0,
               "user_id": None},
              {"ts": dt.datetime(2024, 3, 8, 23, 59, 59), "account_id": "A", "metric": "api_calls",
               "quantity": 2000.0, "user_id": None}])
    users = pa.table({"user_id": ["u1", "u2"], "account_id": ["A", "A"], "role": ["admin", "developer"]})
    view = _view(use, users=users, config=UsageConfig(weeks=3))
    weeks = {w["week_ending"]: w["quantity"] for w in view["usage_weeks"]}
    assert weeks == {dt.date(2024, 3, 8): 70.0 + 2000.0, dt.date(2024, 3, 15): 70.0 + 35.0 + 3.0 + 1000.0}
    roles = [(r["group"], r["used_30d"], r["users"]) for r in view["usage_roles"]]
    assert roles == [("admin", 140.0, 1), ("developer", 35.0, 1), ("no role", 1.0, 1)]
    assert {r["breakdown"] for r in view["usage_roles"]} == {"role"}


def test_a_breakdown_column_users_lack_is_an_error_naming_it() -> None:
    users = pa.table({"user_id": ["u1"], "account_id": ["A"], "role": ["admin"]})
    with pytest.raises(ConfigError, match=r"users has no column 'team'.*role"):
        _view(_daily("A", AS_OF, AS_OF, 1.0, "u1"), users=users, config=UsageConfig(breakdown="team"))


def test_alert_shares_must_ascend_above_zero() -> None:
    with pytest.raises(ValueError, match="ascending"):
        UsageConfig(alerts=(0.9, 0.5))
    with pytest.raises(ValueError, match="above 0"):
        UsageConfig(alerts=(0.0, 0.5))


@settings(max_examples=25, deadline=None)
@given(before=st.integers(0, 500), after=st.integers(0, 500), used_days=st.integers(1, 15))
def test_projection_invariants(before: int, after: int, used_days: int) -> None:
    """Whatever the use: projections are never negative, this month's is at least what is used so far, and each
    projected cost is what a quote of that use gives."""
    use = _daily("A", dt.date(2024, 1, 16), dt.date(2024, 2, 14), float(before)) + \
        _daily("A", AS_OF - dt.timedelta(days=used_days - 1), AS_OF, float(after))
    view = _view(use, plans=_plans(GRADUATED))
    if not view["account_usage"]:
        return
    [row] = view["account_usage"]
    projection = view["usage_projection"]
    assert all(p["projected_use"] >= -1e-9 for p in projection)
    assert projection[0]["projected_use"] >= row["used_this_period"] - 1e-9
    model = price_model_from_json(GRADUATED)
    for p in projection:
        assert p["projected_cost"] == quote(model, usage=Decimal(repr(p["projected_use"])).quantize(
            Decimal("0.000001"))).amount


def _line(plan: str, start: dt.date, end: dt.date, amount: float = 1.0) -> dict[str, Any]:
    return {"line_id": f"{plan}-{start}-{amount}", "account_id": "A", "plan_id": plan, "kind": "usage",
            "quantity": 1.0, "amount": amount, "currency": "USD", "period_start": start, "period_end": end}


def test_a_plan_billed_in_arrears_is_still_held_and_a_plan_left_is_not() -> None:
    """Usage billed at the end of its month: on 15 March the latest line covers February, and the plan is still the
    account's (its limit and price). After a move from the big plan to the small one on 10 March (a credit for the
    big one), the small one is held."""
    use = _daily("A", dt.date(2024, 1, 16), AS_OF, 100.0)
    arrears = pa.Table.from_pylist([_line("api_m", dt.date(2024, 2, 1), dt.date(2024, 3, 1))], schema=LINES)
    [row] = _view(use, lines=arrears)["account_usage"]
    assert (row["plan_id"], row["limit_source"], row["usage_limit"]) == ("api_m", "plan", 3000.0)
    moved = pa.Table.from_pylist([
        _line("api_big", dt.date(2024, 3, 1), dt.date(2024, 4, 1)),
        _line("api_big", dt.date(2024, 3, 10), dt.date(2024, 4, 1), amount=-57.0),
        _line("api_m", dt.date(2024, 3, 10), dt.date(2024, 4, 1))], schema=LINES)
    [row] = _view(use, lines=moved)["account_usage"]
    assert (row["plan_id"], row["usage_limit"], row["days_until_limit"]) == ("api_m", 3000.0, pytest.approx(15.0))
    old = pa.Table.from_pylist([_line("api_m", dt.date(2024, 1, 1), dt.date(2024, 2, 1))], schema=LINES)
    [row] = _view(use, lines=old)["account_usage"]
    assert (row["plan_id"], row["limit_source"]) == (None, "entry plan")  # billed last for January: no longer held
