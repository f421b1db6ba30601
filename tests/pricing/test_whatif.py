"""What-if pricing on a small book, every number computed by hand: grandfathering and notice dates, the impact
month by month, by segment and by account, the churn at risk, changed limits; the scenario file's errors; and the
estimator of old against new prices."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upcurve.errors import ConfigError
from upcurve.pricing import parse_price_model
from upcurve.pricing.whatif import PricingScenario, compare_prices, load_scenario, simulate_pricing

AS_OF = dt.date(2024, 12, 15)
D = Decimal

BOOK = pa.Table.from_pylist([
    {"account_id": "A", "plan_id": "team_m", "product": "core", "kind": "subscription", "pricing": "per_seat",
     "quantity": 10.0, "mrr": D("100.00"), "renews_on": dt.date(2024, 12, 25), "interval_months": 1},
    {"account_id": "B", "plan_id": "team_y", "product": "core", "kind": "subscription", "pricing": "per_seat",
     "quantity": 20.0, "mrr": D("250.00"), "renews_on": dt.date(2025, 6, 1), "interval_months": 12},
    {"account_id": "C", "plan_id": "starter_m", "product": "core", "kind": "subscription", "pricing": "flat",
     "quantity": 1.0, "mrr": D("49.00"), "renews_on": dt.date(2024, 12, 20), "interval_months": 1},
    {"account_id": "D", "plan_id": "api_m", "product": "api", "kind": "usage", "pricing": "usage",
     "quantity": 110000.0, "mrr": D("20.00"), "renews_on": dt.date(2025, 1, 1), "interval_months": 1},
], schema=pa.schema([("account_id", pa.string()), ("plan_id", pa.string()), ("product", pa.string()),
                     ("kind", pa.string()), ("pricing", pa.string()), ("quantity", pa.float64()),
                     ("mrr", pa.decimal128(20, 2)), ("renews_on", pa.date32()), ("interval_months", pa.int64())]))
#: D's projected API calls (100,000 included, then 0.002 a call): 120,000, 130,000 and 140,000 cost 40, 60, 80.
USAGE = pa.Table.from_pylist([
    {"account_id": "D", "metric": "api_calls", "plan_id": "api_m", "usage_limit": 100000.0,
     "period_start": dt.date(2024 + (11 + k) // 12, (11 + k) % 12 + 1, 1), "periods_ahead": k,
     "projected_use": use, "projected_share": use / 100000, "projected_cost": cost, "cost_currency": "USD"}
    for k, use, cost in ((0, 110000.0, D("20.00")), (1, 120000.0, D("40.00")), (2, 130000.0, D("60.00")),
                         (3, 140000.0, D("80.00")))])
ACCOUNTS = pa.Table.from_pylist([
    {"account_id": "A", "name": "Acme", "segment": "smb", "owner": "ann", "mrr": D("100.00"), "churn_risk": 0.1},
    {"account_id": "B", "name": "Beta", "segment": "mid", "owner": "bob", "mrr": D("250.00"), "churn_risk": 0.2},
    {"account_id": "C", "name": "Cato", "segment": "smb", "owner": "ann", "mrr": D("49.00"), "churn_risk": 0.05},
    {"account_id": "D", "name": "Dyna", "segment": "smb", "owner": "bob", "mrr": D("30.00"), "churn_risk": 0.3},
])
NEW_API = {"model": "tiered_overage", "included_units": 80000, "overage_unit_amount": "0.002", "base_amount": 0}


def _scenario(**fields: Any) -> PricingScenario:
    changes = fields.pop("changes", [{"plans": ["team_m", "team_y"], "list_price_pct": 10},
                                     {"plans": ["api_m"], "price_model": NEW_API, "usage_limit": 80000}])
    return PricingScenario.model_validate({"changes": changes, **fields})


def _impact_by_month(impact: Any) -> dict[str, tuple[Decimal, Decimal]]:
    return {f"{r['month']:%Y-%m}": (r["subscription_impact"], r["usage_impact"])
            for r in impact.by_month.to_pylist()}


def test_until_renewal_each_plan_changes_at_its_first_renewal_after_the_notice() -> None:
    """Notice 30 days from 15 December: prices start on 14 January. A (monthly, renews the 25th) is raised at its
    25 January renewal: +10 from January; B (annual, renews 1 June) from June: +25; D's usage from February, the
    first month starting after 14 January: 120,000 calls with 80,000 included cost 80 (40 before), and so on."""
    impact = simulate_pricing(_scenario(), book=BOOK, usage=USAGE, accounts=ACCOUNTS, as_of=AS_OF)
    assert impact.start == dt.date(2025, 1, 14)
    months = _impact_by_month(impact)
    assert list(months) == [f"2025-{m:02d}" for m in range(1, 13)]
    assert months["2025-01"] == (D("10.00"), D("0.00"))
    assert months["2025-02"] == (D("10.00"), D("40.00"))  # 130,000 calls: 100 against 60
    assert months["2025-05"] == (D("10.00"), D("40.00"))  # months after the projection hold March's 140,000
    assert months["2025-06"] == months["2025-12"] == (D("35.00"), D("40.00"))
    changed = {f"{r['month']:%Y-%m}": r["accounts_changed"] for r in impact.by_month.to_pylist()}
    assert (changed["2025-01"], changed["2025-02"], changed["2025-06"]) == (1, 2, 3)
    s = impact.summary
    assert (s["impact"], s["arr_impact"], s["mrr_now"]) == (D("75.00"), D("900.00"), D("429.00"))
    assert s["accounts"] == 4  # the paying accounts
    assert (s["accounts_affected"], s["accounts_raised"], s["full_effect_month"]) == (3, 3, dt.date(2025, 6, 1))
    # churn at the model's risk (elasticity 0): Σ p × new MRR = .1×110 + .2×275 + .3×70; before .1×100 + ...
    assert (s["revenue_at_risk"], s["revenue_at_risk_before"]) == (D("87.00"), D("69.00"))
    assert s["risk_adjusted_impact"] == D("57.00")  # .9×10 + .8×25 + .7×40
    [limit] = s["limits"]
    assert (limit["old_limit"], limit["new_limit"], limit["over_old"], limit["over_new"]) == (100000, 80000, 1, 1)
    accounts = {r["account_id"]: r for r in impact.accounts.to_pylist()}
    assert list(accounts) == ["D", "B", "A"]  # the largest rise first
    assert (accounts["D"]["mrr"], accounts["D"]["new_mrr"], accounts["D"]["first_month"]) == (
        D("30.00"), D("70.00"), dt.date(2025, 2, 1))
    segments = {r["segment"]: r for r in impact.by_segment.to_pylist()}
    assert (segments["smb"]["accounts"], segments["smb"]["affected"], segments["smb"]["mrr"],
            segments["smb"]["impact"]) == (3, 2, D("179.00"), D("50.00"))
    assert (segments["mid"]["affected"], segments["mid"]["impact"]) == (1, D("25.00"))


def test_without_grandfathering_every_price_changes_at_the_start_and_months_defer_it() -> None:
    none = _impact_by_month(simulate_pricing(_scenario(grandfathering="none"), book=BOOK, usage=USAGE,
                                             accounts=ACCOUNTS, as_of=AS_OF))
    assert none["2025-01"] == (D("35.00"), D("0.00")) and none["2025-02"] == (D("35.00"), D("40.00"))
    # three months after 14 January: 14 April; usage from May, the first month starting after it
    later = _impact_by_month(simulate_pricing(_scenario(grandfathering="months", grandfather_months=3),
                                              book=BOOK, usage=USAGE, accounts=ACCOUNTS, as_of=AS_OF))
    assert later["2025-03"] == (D("0.00"), D("0.00"))
    assert later["2025-04"] == (D("35.00"), D("0.00")) and later["2025-05"] == (D("35.00"), D("40.00"))


def test_an_effective_date_later_than_the_notice_and_no_notice() -> None:
    later = simulate_pricing(_scenario(effective="2025-03-01"), book=BOOK, usage=USAGE, accounts=ACCOUNTS,
                             as_of=AS_OF)
    assert later.start == dt.date(2025, 3, 1)
    months = _impact_by_month(later)
    assert months["2025-02"] == (D("0.00"), D("0.00"))
    assert months["2025-03"] == (D("10.00"), D("40.00"))  # A renews on 25 March; usage from 1 March
    now = simulate_pricing(_scenario(notice_days=0), book=BOOK, usage=USAGE, accounts=ACCOUNTS, as_of=AS_OF)
    assert now.start == dt.date(2024, 12, 16)


def test_churn_elasticity_raises_the_risk_of_the_accounts_whose_bill_rises() -> None:
    """Elasticity 1: A and B rise 10% (risk ×1.1), D 133⅓% (risk ×2⅓ = 0.7)."""
    s = simulate_pricing(_scenario(churn_elasticity=1), book=BOOK, usage=USAGE, accounts=ACCOUNTS,
                         as_of=AS_OF).summary
    assert s["revenue_at_risk"] == D("121.60")  # .11×110 + .22×275 + .7×70
    assert s["risk_adjusted_impact"] == D("22.40")  # (.89×110 − .9×100) + (.78×275 − .8×250) + (.3×70 − .7×30)


def test_a_price_cut_lowers_and_a_percentage_moves_usage_costs() -> None:
    impact = simulate_pricing(_scenario(changes=[{"products": ["api"], "list_price_pct": -25}], notice_days=0),
                              book=BOOK, usage=USAGE, accounts=ACCOUNTS, as_of=AS_OF)
    months = _impact_by_month(impact)
    assert months["2025-01"] == (D("0.00"), D("-10.00")) and months["2025-03"] == (D("0.00"), D("-20.00"))
    assert impact.summary["accounts_lowered"] == 1 and impact.summary["revenue_at_risk"] == D("0.00")


def test_two_changes_of_one_plan_are_an_error_naming_both() -> None:
    scenario = _scenario(changes=[{"plans": ["team_m"], "list_price_pct": 5}, {"products": ["core"],
                                                                               "list_price_pct": 7}])
    with pytest.raises(ConfigError, match=r"changes\[1\] and changes\[2\] both change plan 'team_m'"):
        simulate_pricing(scenario, book=BOOK, usage=USAGE, accounts=ACCOUNTS, as_of=AS_OF)


def test_a_plan_no_account_holds_is_a_note() -> None:
    impact = simulate_pricing(_scenario(changes=[{"plans": ["gold_m"], "list_price_pct": 5}]), book=BOOK,
                              usage=USAGE, accounts=ACCOUNTS, as_of=AS_OF)
    assert any("gold_m" in n and "no account" in n for n in impact.notes)
    assert impact.summary["impact"] == 0


def test_a_scenario_file_names_every_wrong_field(tmp_path: Path) -> None:
    path = tmp_path / "rise.yaml"
    path.write_text("name: rise\nnotice_dayz: 30\ngrandfathering: forever\nchanges:\n"
                    "  - list_price_pct: 10\n  - plans: [api_m]\n    price_model: {model: per_unit, unit_amount: -1}\n"
                    "  - plans: [x]\n    list_price_pct: 5\n    price_model: {model: flat, flat_amount: 1}\n")
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert str(path) in message
    for part in ("notice_dayz: not a field of a scenario", "grandfathering", "changes[1]: name the plans",
                 "changes[2].price_model", "unit_amount", "changes[3]: list_price_pct and price_model"):
        assert part in message, part
    path.write_text("changes:\n  - plans: [team_m]\n    list_price_pct: 10.5\ngrandfathering: months\n")
    with pytest.raises(ConfigError, match="grandfather_months"):
        load_scenario(path)
    path.write_text("changes:\n  - plans: [team_m]\n    list_price_pct: 10.5\n")
    assert load_scenario(path).changes[0].list_price_pct == D("10.5")  # exact: read from the text


def test_compare_prices_for_one_usage() -> None:
    old = parse_price_model({"model": "tiered_overage", "included_units": 100000, "overage_unit_amount": "0.002",
                             "base_amount": 0})
    new = parse_price_model(NEW_API)
    found = compare_prices(old, new, "120000")
    assert (found["old"].amount, found["new"].amount, found["difference"]) == (D("40.00"), D("80.00"), D("40.00"))
    assert found["difference_pct"] == 1.0


@settings(max_examples=30, deadline=None)
@given(mrrs=st.lists(st.decimals(min_value=1, max_value=100000, places=2), min_size=1, max_size=6),
       pct=st.decimals(min_value=-50, max_value=50, places=1))
def test_without_grandfathering_the_full_effect_is_each_rounded_new_price_less_the_old(mrrs: list[Decimal],
                                                                                       pct: Decimal) -> None:
    book = pa.Table.from_pylist([
        {"account_id": f"A{i}", "plan_id": "p", "product": "core", "kind": "subscription", "pricing": "flat",
         "quantity": 1.0, "mrr": m, "renews_on": dt.date(2025, 3, 1), "interval_months": 12}
        for i, m in enumerate(mrrs)], schema=BOOK.schema)
    accounts = pa.Table.from_pylist([{"account_id": f"A{i}", "mrr": m, "segment": "s", "churn_risk": 0.1}
                                     for i, m in enumerate(mrrs)])
    scenario = _scenario(changes=[{"plans": ["p"], "list_price_pct": pct}], grandfathering="none")
    impact = simulate_pricing(scenario, book=book, usage=USAGE.slice(0, 0), accounts=accounts, as_of=AS_OF)
    expected = sum(((m * (1 + pct / 100)).quantize(D("0.01"), "ROUND_HALF_UP") - m for m in mrrs), D(0))
    assert impact.summary["impact"] == expected
    assert all(r["impact"] == expected for r in impact.by_month.to_pylist())
    assert sum((r["impact"] for r in impact.by_segment.to_pylist()), D(0)) == expected


def test_a_products_change_reaches_usage_plans_the_book_does_not_hold_and_mils_are_cents() -> None:
    """D's usage plan is not in the book this time (usage left out of MRR): `products: [api]` still reaches it
    through the projection's product. Costs priced to the mil (KWD) are compared in cents, as the engine counts."""
    usage = USAGE.append_column("product", pa.array(["api"] * USAGE.num_rows))
    usage = usage.set_column(usage.schema.get_field_index("cost_currency"), "cost_currency",
                             pa.array(["KWD"] * usage.num_rows))
    usage = usage.set_column(usage.schema.get_field_index("projected_cost"), "projected_cost",
                             pa.array([D("20.004"), D("40.005"), D("60.006"), D("80.004")], pa.decimal128(20, 3)))
    book = BOOK.filter(pa.compute.not_equal(BOOK["kind"], "usage"))
    scenario = _scenario(changes=[{"products": ["api"], "list_price_pct": 10}], notice_days=0)
    impact = simulate_pricing(scenario, book=book, usage=usage, accounts=ACCOUNTS, as_of=AS_OF, currency="KWD")
    months = _impact_by_month(impact)
    # 40.005 → 40.01 a cent; +10%: 44.01 (44.0055 rounded); the change is 4.00
    assert months["2025-01"] == (D("0.00"), D("4.00"))
    assert months["2025-02"] == (D("0.00"), D("6.00"))  # 60.01 → 66.01
    assert not any("no account" in n for n in impact.notes)
