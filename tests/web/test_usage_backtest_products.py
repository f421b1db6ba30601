"""The account page's usage trend, the model page's backtest and the accounts behind a product's expansion, each
checked against what the workspace holds, computed again here by hand."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import login
from upcurve.web.data import Reader
from upcurve.workspace import Store
from upcurve.workspace import access as acc
from upcurve.workspace.backtests import save_backtest


@pytest.fixture
def session(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        assert login(c).status_code == 303
        yield c


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# -- 1. usage against limits, with its 30/60/90-day trend -----------------------------------------------------------
def test_the_account_page_shows_the_usage_trend_as_computed_by_hand(session: TestClient, store: Store) -> None:
    run = store.runs()[-1]
    row = store.query("SELECT account_id, usage_metric, usage_30d, usage_60d, usage_90d FROM accounts "
                      "WHERE run_id = ? AND usage_30d IS NOT NULL AND usage_60d > usage_30d "
                      "ORDER BY account_id LIMIT 1", [run.run_id]).to_pylist()[0]
    page = session.get(f"/accounts/{row['account_id']}")
    assert page.status_code == 200
    trend = _text(re.search(r'<p class="usage-trend".*?</p>', page.text, re.S)[0])
    last, avg60, avg90 = row["usage_30d"], row["usage_60d"] / 2, row["usage_90d"] / 3
    assert f"last 30 days {last:,.0f}; 30-day average over 60 days {avg60:,.0f}, over 90 days {avg90:,.0f}" in trend
    assert row["usage_metric"] in trend
    change = last / (row["usage_60d"] - last) - 1
    word = "rising" if change > 0.05 else "falling" if change < -0.05 else "steady"
    assert f"Use {word}, {change * 100:+.1f}% against the 30 days before" in trend
    assert {"rising": "↑", "falling": "↓", "steady": "→"}[word] in trend


def test_an_account_without_usage_data_says_so(session: TestClient, store: Store) -> None:
    run = store.runs()[-1]
    account = store.query("SELECT account_id FROM accounts WHERE run_id = ? AND usage_30d IS NULL LIMIT 1",
                          [run.run_id]).column(0).to_pylist()[0]
    page = session.get(f"/accounts/{account}")
    assert page.status_code == 200
    assert "No usage data for this account" in page.text
    assert 'data-direction="unknown"' in page.text


def test_the_account_api_carries_the_usage_windows(client: TestClient, tokens: dict[str, str],
                                                   store: Store) -> None:
    run = store.runs()[-1]
    row = store.query("SELECT account_id, usage_30d, usage_60d, usage_90d FROM accounts WHERE run_id = ? AND "
                      "usage_30d IS NOT NULL LIMIT 1", [run.run_id]).to_pylist()[0]
    found = client.get(f"/api/accounts/{row['account_id']}",
                       headers={"Authorization": f"Bearer {tokens['read']}"}).json()["account"]
    for column in ("usage_30d", "usage_60d", "usage_90d", "usage_this_month", "usage_limit", "usage_share_used",
                   "usage_projected_month", "days_until_limit", "usage_metric"):
        assert column in found
    assert (found["usage_30d"], found["usage_60d"], found["usage_90d"]) == (row["usage_30d"], row["usage_60d"],
                                                                            row["usage_90d"])


# -- 2. the backtest in plain language ------------------------------------------------------------------------------
def _metrics() -> pa.Table:
    rows = []
    for cutoff, shift in (("2024-06-30", 0.0), ("2024-09-30", 0.1)):
        for target, base in (("expansion", 0.2), ("churn", 0.04)):
            for model, auc, precision in (("lightgbm", 0.8, 0.7), ("logistic", 0.78, 0.6), ("rules", 0.6, 0.3),
                                          ("health_score", 0.62, 0.34)):
                p = precision - shift if target == "expansion" else precision / 5
                rows.append({"cutoff": cutoff, "target": target, "model": model, "auc": auc + shift / 2,
                             "log_loss": None, "brier": None, "precision_at_k": p, "lift_top_decile": p / base,
                             "base_rate": base, "rows": 120.0, "lever_match": None})
    return pa.Table.from_pylist(rows)


def _calibration() -> pa.Table:
    rows = [{"model": model, "target": target, "bin": b, "rows": 24, "mean_predicted": b / 12,
             "observed_rate": b / 11} for model in ("lightgbm", "logistic") for target in ("expansion", "churn")
            for b in range(1, 11)]
    return pa.Table.from_pylist(rows)


@pytest.fixture(scope="module")
def kept(built_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A copy of the test workspace keeping a backtest (of made-up but plausible numbers)."""
    mine = tmp_path_factory.mktemp("backtest") / "workspace"
    shutil.copytree(built_workspace, mine)
    (mine / "workspace.lock").unlink(missing_ok=True)
    store = Store.open(mine, create=False)
    save_backtest(store, as_of=dt.date(2024, 12, 31), source="<b>data</b>", cutoffs=[dt.date(2024, 6, 30),
                  dt.date(2024, 9, 30)], notes=["a note <script>"],
                  tables={"backtest_metrics": _metrics(), "backtest_calibration": _calibration()})
    return store


@pytest.fixture(scope="module")
def kept_client(kept: Store) -> Iterator[TestClient]:
    from upcurve.web.app import create_app

    with TestClient(create_app(kept)) as c:
        yield c


def _hand_means(metrics: pa.Table) -> dict[tuple[str, str], tuple[float, float, float]]:
    out = {}
    for row in metrics.to_pylist():
        out.setdefault((row["target"], row["model"]), []).append(row)
    return {key: tuple(sum(r[c] for r in rows) / len(rows) for c in ("auc", "lift_top_decile", "precision_at_k"))
            for key, rows in out.items()}


def test_the_model_page_says_the_backtest_in_words_then_means_then_calibration(kept_client: TestClient) -> None:
    assert login(kept_client).status_code == 303
    page = kept_client.get("/model")
    assert page.status_code == 200
    text = _text(page.text)
    means = _hand_means(_metrics())
    for target, verb in (("expansion", "expanded"), ("churn", "churned")):
        _, lift, precision = means[(target, "lightgbm")]
        health = means[(target, "health_score")][1]
        assert (f"{target.capitalize()}: Of the 10% of accounts it puts first, {precision:.0%} {verb} within 90 "
                f"days, {lift:.1f}× the average; the health score alone finds {health:.1f}×.") in text
    assert page.text.index('id="backtest-sentences"') < page.text.index('id="backtest-means"') \
        < page.text.index('id="chart-calibration"')
    for (target, model), (auc, lift, precision) in _hand_means(_metrics()).items():
        row = re.search(rf'<tr data-target="{target}" data-model="{model}">(.*?)</tr>', page.text, re.S)[1]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert cells[2:5] == [f"{auc:.3f}", f"{lift:.1f}×", f"{precision * 100:.1f}%"], (target, model)
    figure = re.search(r'<script type="application/json" id="fig-calibration">(.*?)</script>', page.text, re.S)[1]
    assert '"expansion"' in figure and '"churn"' in figure
    assert "<b>data</b>" not in page.text and "&lt;b&gt;data&lt;/b&gt;" in page.text
    assert "a note <script>" not in page.text and "a note &lt;script&gt;" in page.text


def test_the_backtest_api_answers_the_same(kept_client: TestClient, kept: Store) -> None:
    token = acc.create_token(kept, "reader", ["read"])[0]
    found = kept_client.get("/api/backtest", headers={"Authorization": f"Bearer {token}"})
    assert found.status_code == 200
    body = found.json()
    assert body["kept"] is True and body["cutoffs"] == ["2024-06-30", "2024-09-30"]
    assert [s["target"] for s in body["sentences"]] == ["expansion", "churn"]
    means = {(m["target"], m["model"]): (m["auc"], m["lift_top_decile"], m["precision_at_k"]) for m in body["means"]}
    expected = _hand_means(_metrics())
    assert means.keys() == expected.keys()
    assert all(means[key] == pytest.approx(expected[key]) for key in expected)
    assert len(body["calibration"]) == 20  # LightGBM only: 10 deciles × 2 targets
    assert kept_client.get("/api/backtest").status_code == 401


def test_without_a_backtest_the_model_page_says_how_to_make_one(session: TestClient, client: TestClient,
                                                                tokens: dict[str, str]) -> None:
    page = session.get("/model")
    assert page.status_code == 200 and 'id="no-backtest"' in page.text
    assert "upcurve backtest DATA --workspace WS" in page.text
    body = client.get("/api/backtest", headers={"Authorization": f"Bearer {tokens['read']}"}).json()
    assert body["kept"] is False and body["how_to"] == "upcurve backtest DATA --workspace WS"


def test_a_backtest_kept_while_the_app_serves_shows_up(built_workspace: Path, tmp_path: Path) -> None:
    mine = tmp_path / "workspace"
    shutil.copytree(built_workspace, mine)
    (mine / "workspace.lock").unlink(missing_ok=True)
    store = Store.open(mine, create=False)
    reader = Reader(store, runs_ttl=0.0)
    assert reader.backtests.view() is None
    save_backtest(store, as_of=dt.date(2024, 12, 31), source=None, cutoffs=[dt.date(2024, 9, 30)], notes=[],
                  tables={"backtest_metrics": _metrics(), "backtest_calibration": _calibration()})
    view = reader.backtests.view()
    assert view is not None and view["cutoffs"] == ["2024-09-30"]
    assert reader.backtests.view() is view  # made once per backtest


# -- 3. the accounts behind a product's expansion -------------------------------------------------------------------
def _by_hand(store: Store, run_id: str, product: str, since: str, until: str) -> dict[str, Decimal]:
    """Each account's rises in the product's MRR, month to month within the months, from the stored table."""
    mrr: dict[tuple[str, str], Decimal] = {}
    for row in store.table("mrr", run_id).to_pylist():
        if row["product"] == product:
            mrr[(row["account_id"], row["month"])] = row["mrr"]
    out: dict[str, Decimal] = {}
    for (account, month), value in mrr.items():
        year, mon = int(month[:4]), int(month[5:])
        before = f"{year - (mon == 1):04d}-{12 if mon == 1 else mon - 1:02d}"
        prev = mrr.get((account, before), Decimal(0))
        if since <= month <= until and prev > 0 and value > prev:
            out[account] = out.get(account, Decimal(0)) + value - prev
    return out


def test_the_accounts_behind_a_product_bar_match_a_hand_computation(client: TestClient, tokens: dict[str, str],
                                                                    session: TestClient, store: Store) -> None:
    headers = {"Authorization": f"Bearer {tokens['read']}"}
    run = store.runs()[-1]
    bars = client.get("/api/expansion", params={"by": "product"}, headers=headers).json()["items"]
    assert bars
    for bar in bars:
        # twelve months by default, the last one included: from eleven months before the last month
        year, mon = int(bar["until"][:4]), int(bar["until"][5:])
        assert bar["since"] == f"{year - (mon < 12):04d}-{mon % 12 + 1:02d}"
        expected = _by_hand(store, run.run_id, bar["value"], bar["since"], bar["until"])
        found = client.get("/api/expansion/accounts", headers=headers, params={
            "product": bar["value"], "month_from": bar["since"], "month_to": bar["until"], "limit": 1000}).json()
        assert found["total"] == len(expected)
        assert {i["account_id"]: Decimal(i["rise"]) for i in found["items"]} == expected
        assert Decimal(found["amount"]) == sum(expected.values(), Decimal(0))
        rises = [Decimal(i["rise"]) for i in found["items"]]
        assert rises == sorted(rises, reverse=True)
    top = bars[0]
    expected = _by_hand(store, run.run_id, top["value"], top["since"], top["until"])
    page = session.get("/partials/product", params={"product": top["value"], "month_from": top["since"],
                                                    "month_to": top["until"], "limit": 5})
    assert page.status_code == 200
    assert f"{len(expected)} account(s)" in page.text
    listed = re.findall(r'<tr data-account="([^"]+)" data-rise="([^"]+)">', page.text)
    assert len(listed) == min(5, len(expected))
    assert all(expected[a] == Decimal(r) for a, r in listed)


def test_a_product_drill_checks_its_parameters(client: TestClient, tokens: dict[str, str],
                                               session: TestClient) -> None:
    headers = {"Authorization": f"Bearer {tokens['read']}"}
    assert client.get("/api/expansion/accounts", params={"product": "<nope>"}, headers=headers).status_code == 404
    assert client.get("/api/expansion/accounts", params={"product": "core", "month_from": "2024-13"},
                      headers=headers).status_code == 422
    assert client.get("/api/expansion/accounts", headers=headers).status_code == 422
    empty = client.get("/api/expansion/accounts", params={"product": "core", "month_from": "2031-01"},
                       headers=headers).json()
    assert empty["total"] == 0 and empty["items"] == [] and empty["amount"] == "0.00"
    page = session.get("/partials/product", params={"product": "<nope>"})
    assert page.status_code == 404 and "<nope>" not in page.text


def test_an_account_scored_from_billing_alone_says_so_on_its_page(built_workspace: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from tests.web.conftest import CONFIG, PASSWORD, login
    from upcurve.usecases import run_in_workspace
    from upcurve.web.app import create_app
    from upcurve.workspace import Store
    from upcurve.workspace import access as acc

    data = tmp_path / "billing"
    shutil.copytree(built_workspace.parent / "data", data)
    for path in data.iterdir():  # a company that brings its billing system only
        if path.is_file() and path.stem not in ("accounts", "plans", "invoice_lines", "fx_rates"):
            path.unlink()
    store = Store.open(tmp_path / "workspace")
    run_in_workspace(store, data, config=CONFIG)
    acc.set_user(store, "ann", PASSWORD)
    run = store.runs()[-1]
    accounts = store.table("accounts", run.run_id).to_pylist()
    scored = [a for a in accounts if a["health_score"] is not None]
    assert scored and all(a["health_basis"] == "billing" for a in scored)
    account = scored[0]
    with TestClient(create_app(store)) as c:
        login(c)
        page = c.get(f"/accounts/{account['account_id']}").text
    assert "Scored from billing alone" in page
    for component in ("mrr trend", "contractions", "tenure"):
        assert component in page


def test_the_account_page_lists_the_components_the_run_scored_with() -> None:
    from types import SimpleNamespace
    from typing import cast

    from upcurve.web.pages import _component_names
    from upcurve.workspace import RunRecord

    custom = cast(RunRecord, SimpleNamespace(settings={"health": {
        "components": [{"name": "adoption"}, {"name": "support"}], "billing_components": [{"name": "renewal"}]}}))
    assert _component_names(custom, "product") == ["adoption", "support"]
    assert _component_names(custom, "billing") == ["renewal"]
    kept_none = cast(RunRecord, SimpleNamespace(settings={}))
    assert _component_names(kept_none, "billing") == ["mrr_trend", "contractions", "renewal", "tenure"]
    assert "product_usage" in _component_names(kept_none, None)


def test_a_backtest_against_the_oracle_shows_the_share_and_speaks_for_auto() -> None:
    from types import SimpleNamespace
    from typing import cast

    from upcurve.web._backtest import backtest_view
    from upcurve.workspace.backtests import BacktestRecord

    rows = _metrics().to_pylist()
    rows += [{**r, "model": "auto"} for r in rows if r["model"] == "lightgbm"]
    for r in rows:
        r["share_of_oracle"] = r["auc"] / 0.9
    calibration = [{**r, "model": "auto"} for r in _calibration().to_pylist() if r["model"] == "lightgbm"]
    record = cast(BacktestRecord, SimpleNamespace(
        backtest_id="b", created_at=dt.datetime(2024, 12, 31), as_of="2024-12-31", source="s", cutoffs=[],
        notes=[], metrics=rows, calibration=calibration))
    view = backtest_view(record)
    assert view["calibrated"] == "auto" and len(view["calibration"]) == 20
    means = {(m["target"], m["model"]): m for m in view["means"]}
    assert means[("expansion", "auto")]["share_of_oracle"] == pytest.approx((0.8 + 0.85) / 2 / 0.9)
    assert next(m["model"] for m in view["means"] if m["target"] == "expansion") == "auto"  # listed first
