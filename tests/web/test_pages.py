"""The pages over HTTP: login sessions, cookies, CSRF on every form that changes something, escaping, CSV."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import Any

import pytest

from tests.web.conftest import PASSWORD, csrf_of, figure, login
from upcurve.workspace import Store
from upcurve.workspace import access as acc


@pytest.mark.parametrize("path", ["/", "/worklist", "/accounts", "/segments", "/runs", "/model", "/worklist.csv"])
def test_pages_need_a_login(client: Any, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_a_wrong_password_or_a_forged_login_form_gets_no_session(client: Any) -> None:
    assert "upcurve_session" not in login(client, password="wrong password").headers.get("set-cookie", "")
    forged = client.post("/login", data={"username": "ann", "password": PASSWORD, "csrf": "forged"},
                         follow_redirects=False)
    assert "upcurve_session" not in forged.headers.get("set-cookie", "")


def test_the_session_cookie_is_httponly_and_samesite(app: Any) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        cookie = login(c).headers["set-cookie"]
    assert "upcurve_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


@pytest.mark.parametrize("path", ["/", "/worklist?sort=value_at_stake&order=desc&motion=expand", "/accounts",
                                  "/accounts?q=1&sort=churn_risk", "/segments?dimension=owner", "/runs", "/model",
                                  "/partials/movements?type=churn", "/partials/accounts?dimension=segment&value=smb"])
def test_every_page_renders(session: Any, path: str) -> None:
    response = session.get(path)
    assert response.status_code == 200, response.text
    assert "script-src 'self'" in response.headers.get("content-security-policy", "") or "partials" in path


def test_any_earlier_run_can_be_shown(session: Any, store: Store) -> None:
    first = store.runs()[0]
    page = session.get(f"/?run={first.run_id}").text
    assert "an earlier run" in page and str(first.as_of) in page


def test_account_page_shows_usage_and_health_as_progress_bars(session: Any, store: Store) -> None:
    found = store.query("SELECT account_id FROM accounts WHERE usage_limit IS NOT NULL LIMIT 1")
    account = found.column(0).to_pylist()[0]
    page = session.get(f"/accounts/{account}").text
    assert page.count("<progress") >= 5 and 'class="limit"' in page


def test_forms_that_change_something_need_the_csrf_token(session: Any, store: Store) -> None:
    page = session.get("/worklist").text
    run_id, account = store.runs()[-1].run_id, re.search(r'name="account_id" value="([^"]+)"', page)[1]
    form = {"run_id": run_id, "account_id": account, "status": "won"}
    count = len(acc.list_actions(store, run_id))
    assert session.post("/worklist/action", data={**form, "csrf": "forged"}).status_code == 403
    assert session.post("/worklist/action", data=form).status_code == 422
    assert len(acc.list_actions(store, run_id)) == count
    done = session.post("/worklist/action", data={**form, "csrf": csrf_of(page)}, follow_redirects=False)
    assert done.status_code == 303 and len(acc.list_actions(store, run_id)) == count + 1
    assert session.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert session.post("/logout", data={"csrf": csrf_of(page)}, follow_redirects=False).status_code == 303
    assert session.get("/", follow_redirects=False).status_code == 303  # the session ended


def test_data_is_escaped_in_pages_and_csv(session: Any, store: Store) -> None:
    run_id = store.runs()[-1].run_id
    account = store.query("SELECT account_id FROM worklist WHERE run_id = ? LIMIT 1", [run_id]).column(0).to_pylist()[0]
    note = '<script>alert("x")</script>'
    form = {"run_id": run_id, "account_id": account, "status": "contacted", "note": note,
            "csrf": csrf_of(session.get("/worklist").text)}
    assert session.post("/worklist/action", data=form, follow_redirects=False).status_code == 303
    page = session.get(f"/accounts/{account}").text
    assert note not in page and "&lt;script&gt;" in page
    csv_text = session.get("/worklist.csv?motion=expand").text
    assert csv_text.splitlines()[0].startswith("week,rank,owner")


def test_csv_guards_formulas() -> None:
    from upcurve.present.safe import spreadsheet_cell

    assert spreadsheet_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and spreadsheet_cell("Acme") == "Acme"
    assert spreadsheet_cell(3) == 3 and spreadsheet_cell("-1+1") == "'-1+1"


def test_unknown_pages_and_parameters_answer_clearly(session: Any) -> None:
    assert session.get("/accounts/nobody").status_code == 404
    assert session.get("/?run=run-nope").status_code == 404
    assert session.get("/?month=2024-13").status_code == 422
    assert session.get("/worklist?sort=nope").status_code == 404


def test_the_overview_shows_expansion_by_source_segment_product_and_owner(session: Any) -> None:
    reader = session.app.state.reader
    run = reader.run()
    page = session.get("/").text
    for dimension in ("source", "segment", "product", "owner"):
        shown = figure(page, f"by_{dimension}")
        expected = reader.expansion_by(run, dimension)
        assert expected and shown["data"][0]["x"] == [r["value"] for r in expected], dimension
        assert shown["data"][0]["y"] == [float(r["expansion"]) for r in expected], dimension
    assert 'id="chart-by_owner" data-figure="fig-by_owner" data-drill="dimension"' in page


def test_an_owner_bar_and_a_cohort_cell_list_their_accounts(session: Any, store: Store) -> None:
    run_id = store.runs()[-1].run_id
    owner = store.query("SELECT owner FROM accounts WHERE run_id = ? AND owner IS NOT NULL ORDER BY account_id "
                        "LIMIT 1", [run_id]).column(0)[0].as_py()
    listed = session.get(f"/partials/accounts?dimension=owner&value={owner}&limit=500").text
    owners = re.findall(r"<tr><td><a [^>]*>[^<]*</a></td><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>", listed)
    mine = store.query("SELECT count(*) FROM accounts WHERE run_id = ? AND owner = ?", [run_id, owner]).column(0)
    assert f"owner {owner}: {mine[0].as_py()} account(s)" in listed and set(owners) == {owner}
    cohorts = figure(session.get("/").text, "cohorts")["data"][0]
    cohort = cohorts["customdata"][2][0][0]  # the cell a click sends: [cohort, months since]
    members = store.query("SELECT account_id FROM account_growth WHERE run_id = ? AND first_paid_month = ?",
                          [run_id, cohort]).column(0).to_pylist()
    listed = session.get(f"/partials/accounts?cohort={cohort}&limit=500").text
    assert members and f"cohort {cohort}: {len(members)} account(s)" in listed
    assert set(re.findall(r'href="/accounts/([^"?]+)\?', listed)) == set(members)


def test_the_model_page_says_what_the_model_means_in_words(session: Any) -> None:
    page = session.get("/model").text
    assert re.search(r"of the 10% of accounts it puts first, \d+% expanded within \d+ months, [\d.]+× the average",
                     page)


def test_the_csv_export_writes_the_worklist_as_shown(session: Any) -> None:
    owners = re.search(r'id="filter-owner">(.*?)</select>', session.get("/worklist").text, re.S)
    assert owners
    owner = re.findall(r'<option value="([^"]+)"', owners[1])[0]
    query = f"owner={owner}&sort=value_at_stake&order=desc"
    shown = re.findall(r'<tr data-account="([^"]+)"', session.get(f"/worklist?{query}").text)
    response = session.get(f"/worklist.csv?{query}")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert shown and [r["account_id"] for r in rows] == shown
    assert {r["owner"] for r in rows} == {owner} and {r["currency"] for r in rows} == {"USD"}
    values = [Decimal(r["value_at_stake"]) for r in rows]
    assert values == sorted(values, reverse=True)
