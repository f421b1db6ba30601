"""The usage view of an account, as the account page, the API and `upcurve usage` show it, checked against the
workspace's tables and priced again here by hand."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.web.test_api import auth
from upcurve.cli import app as cli
from upcurve.simulate.catalog import PLANS
from upcurve.workspace import Store


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _metered_account(store: Store) -> dict[str, Any]:
    run = store.runs()[-1]
    rows = store.query("SELECT account_id, metric, plan_id, usage_limit, used_this_period, share_used FROM "
                       "account_usage WHERE run_id = ? AND plan_id IS NOT NULL AND used_prev_30d > 0 "
                       "AND usage_limit IS NOT NULL ORDER BY used_this_period DESC, account_id LIMIT 1",
                       [run.run_id]).to_pylist()
    assert rows, "the simulated company has metered use on a usage plan"
    return {**rows[0], "run": run}


def test_the_account_page_shows_each_limit_its_projection_priced_and_the_roles(session: TestClient,
                                                                               store: Store) -> None:
    found = _metered_account(store)
    run, account = found["run"], found["account_id"]
    projection = store.query("SELECT period_start, projected_use, projected_cost, cost_currency FROM "
                             "usage_projection WHERE run_id = ? AND account_id = ? ORDER BY periods_ahead",
                             [run.run_id, account]).to_pylist()
    assert len(projection) == 4  # this month and the next three
    # the simulated company's price: the limit's calls included, then the unit price a call (its plans'
    # price_model); priced again here by hand from the projected use
    price = Decimal(str(next(p.unit_price for p in PLANS if p.plan_id == found["plan_id"])))
    included = Decimal(repr(found["usage_limit"]))
    assert any(p["projected_use"] > found["usage_limit"] for p in projection), "an account that pays overage"
    for p in projection:
        use = Decimal(repr(p["projected_use"])).quantize(Decimal("0.000001"), ROUND_HALF_UP)
        expected = (max(use - included, Decimal(0)) * price).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert Decimal(str(p["projected_cost"])) == expected
        assert p["cost_currency"] == "USD"
    page = session.get(f"/accounts/{account}")
    assert page.status_code == 200
    block = re.search(rf'<div class="metered" id="usage-{found["metric"]}".*?</div>\s*(?=<div class="metered"|'
                      r'<p class="usage-trend")', page.text, re.S)
    assert block, "the usage view's block"
    text = _text(block[0])
    assert (f"{found['used_this_period']:,.0f} of {found['usage_limit']:,.0f} used this month "
            f"({found['share_used'] * 100:.1f}%") in text
    for p in projection:
        assert f"{p['period_start']:%Y-%m}" in text and f"{p['projected_use']:,.0f}" in text
        assert f"{p['projected_cost']:,.2f} USD" in text
    assert "<polyline" in block[0] and "the last 13 weeks" in text
    roles = store.query("SELECT \"group\", used_30d FROM usage_roles WHERE run_id = ? AND account_id = ? "
                        "ORDER BY used_30d DESC", [run.run_id, account]).to_pylist()
    assert roles, "the simulated company's use names its users"
    for r in roles:
        assert f"{r['group']} {r['used_30d']:,.0f}" in text


def test_the_api_and_the_command_line_give_the_same_view(client: TestClient, tokens: dict[str, str],
                                                         store: Store) -> None:
    found = _metered_account(store)
    account = found["account_id"]
    response = client.get(f"/api/accounts/{account}/usage", headers=auth(tokens["read"]))
    assert response.status_code == 200
    body = response.json()
    assert body["account_id"] == account and body["run_id"] == found["run"].run_id
    [limit] = [m for m in body["limits"] if m["metric"] == found["metric"]]
    assert limit["used_this_period"] == found["used_this_period"] and limit["usage_limit"] == found["usage_limit"]
    assert len(body["weeks"]) == 13 * len(body["limits"])
    assert all(isinstance(p["projected_cost"], str) for p in body["projection"])
    assert client.get("/api/accounts/nobody/usage", headers=auth(tokens["read"])).status_code == 404
    assert client.get(f"/api/accounts/{account}/usage").status_code == 401

    result = CliRunner().invoke(cli, ["usage", account, "--workspace", str(store.database.parent), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["limits"][0]["used_this_period"] == body["limits"][0]["used_this_period"]
    assert [p["projected_cost"] for p in printed["projection"]] == [p["projected_cost"] for p in body["projection"]]

    shown = CliRunner().invoke(cli, ["usage", account, "--workspace", str(store.database.parent)])
    assert shown.exit_code == 0, shown.output
    assert "projected at the current trajectory" in shown.output and "USD" in shown.output

    missing = CliRunner().invoke(cli, ["usage", "nobody", "--workspace", str(store.database.parent)])
    assert missing.exit_code == 2 and "no account 'nobody'" in missing.output
