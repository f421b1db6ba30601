"""The pages over HTTP: login sessions, cookies, CSRF on every form that changes something, escaping, CSV."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.web.conftest import PASSWORD
from upcurve.workspace import Store
from upcurve.workspace import access as acc


def login(client: Any, username: str = "ann", password: str = PASSWORD) -> Any:
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)[1]
    return client.post("/login", data={"username": username, "password": password, "csrf": csrf, "next": "/"},
                       follow_redirects=False)


@pytest.fixture
def session(app: Any) -> Any:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        response = login(c)
        assert response.status_code == 303 and response.headers["location"] == "/"
        yield c


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page)[1]


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
    acc.record_action(store, run_id, account, "contacted", note, "ann")
    page = session.get(f"/accounts/{account}").text
    assert note not in page and "&lt;script&gt;" in page
    csv_text = session.get("/worklist.csv?motion=expand").text
    assert csv_text.splitlines()[0].startswith("week,rank,owner")


def test_csv_guards_formulas() -> None:
    from upcurve.web.pages import _csv_cell

    assert _csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and _csv_cell("Acme") == "Acme" and _csv_cell(3) == 3


def test_unknown_pages_and_parameters_answer_clearly(session: Any) -> None:
    assert session.get("/accounts/nobody").status_code == 404
    assert session.get("/?run=run-nope").status_code == 404
    assert session.get("/?month=2024-13").status_code == 422
    assert session.get("/worklist?sort=nope").status_code == 404
