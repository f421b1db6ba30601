"""The plays in the web app: the actions through the API (filters, pages, history, marking them done, dismissed or
snoozed, with 401/403/404/422), the worklist's and the account page's buttons (CSRF), and the Plays page (levers
ranked by yield, the measured uplift, the funnel). Each test works actions of its own play, so that tests sharing
the session's workspace do not step on each other."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest

from tests.web.conftest import csrf_of, figure
from tests.web.test_api import auth, get
from upcurve.plays.engine import PlayAction
from upcurve.usecases import levers as levers_of
from upcurve.usecases import plays_measure
from upcurve.workspace import Store
from upcurve.workspace import actions as wa

LATER = (dt.date.today() + dt.timedelta(days=30)).isoformat()


def open_action(store: Store, play: str, index: int = 0) -> PlayAction:
    found = [a for a in wa.list_actions(store, status=["open"], play=play) if not a.held_out]
    assert len(found) > index, f"no open {play} action left"
    return found[index]


@pytest.mark.parametrize("path", ["/api/plays/actions", "/api/plays/actions/act-x", "/api/levers",
                                  "/api/plays/uplift", "/api/funnel", "/api/plays/open"])
def test_every_plays_endpoint_needs_a_read_token(client: Any, tokens: dict[str, str], path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers=auth(tokens["write"])).status_code == 403
    assert client.get(path, headers=auth(tokens["read"])).status_code in (200, 404)


def test_actions_list_open_and_snoozed_by_default_filtered_and_paginated(client: Any, tokens: dict[str, str],
                                                                         store: Store) -> None:
    live = wa.list_actions(store, status=["open", "snoozed"])
    body = get(client, tokens, "/api/plays/actions?limit=1000")
    assert body["total"] == len(live) == len(body["items"]) > 0
    assert {a["status"] for a in body["items"]} <= {"open", "snoozed"}
    first = get(client, tokens, "/api/plays/actions?limit=5")
    second = get(client, tokens, "/api/plays/actions?limit=5&offset=5")
    assert [a["action_id"] for a in first["items"] + second["items"]] == [a.action_id for a in live[:10]]
    closed = get(client, tokens, "/api/plays/actions?status=closed&status=holdout&limit=1000")
    assert closed["total"] == len(wa.list_actions(store, status=["closed", "holdout"])) > 0
    one = live[0]
    for key, value in (("owner", one.owner), ("account_id", one.account_id), ("play", one.play)):
        found = get(client, tokens, f"/api/plays/actions?{key}={value}&limit=1000")
        assert found["total"] == len([a for a in live if getattr(a, key) == value])
        assert {a[key] for a in found["items"]} == {value}
    assert client.get("/api/plays/actions?status=sold", headers=auth(tokens["read"])).status_code == 422


def test_an_action_has_its_history(client: Any, tokens: dict[str, str], store: Store) -> None:
    action = open_action(store, "save_play")
    body = get(client, tokens, f"/api/plays/actions/{action.action_id}")
    assert body["action"]["action_id"] == action.action_id and body["action"]["status"] == "open"
    kinds = [e["kind"] for e in body["history"]]
    assert kinds[0] == "created" and len(kinds) == len(wa.list_events(store, action.action_id))
    start = action.action_id[:-2]  # a unique start of an id will do
    assert get(client, tokens, f"/api/plays/actions/{start}")["action"]["action_id"] == action.action_id
    assert client.get("/api/plays/actions/act-nobody", headers=auth(tokens["read"])).status_code == 404


def test_marking_an_action_needs_the_write_scope_and_a_valid_change(client: Any, tokens: dict[str, str],
                                                                    store: Store) -> None:
    action = open_action(store, "save_play", 1)
    path = f"/api/plays/actions/{action.action_id}"
    done = {"status": "done", "note": "called them"}
    assert client.post(path, json=done).status_code == 401
    assert client.post(path, json=done, headers=auth(tokens["read"])).status_code == 403
    assert wa.find_action(store, action.action_id).status == "open"  # nothing changed
    write = auth(tokens["write"])
    bad = client.post(path, json={"status": "won"}, headers=write)
    assert bad.status_code == 422 and "status" in bad.json()["detail"]
    no_date = client.post(path, json={"status": "snoozed", "note": "on holiday"}, headers=write)
    assert no_date.status_code == 422 and "until" in no_date.json()["detail"]
    no_reason = client.post(path, json={"status": "snoozed", "until": LATER}, headers=write)
    assert no_reason.status_code == 422
    past = client.post(path, json={"status": "snoozed", "until": "2020-01-01", "note": "x"}, headers=write)
    assert past.status_code == 422 and "after today" in past.json()["detail"]
    assert client.post(path, json={"status": "done", "until": LATER}, headers=write).status_code == 422
    assert client.post("/api/plays/actions/act-nobody", json=done, headers=write).status_code == 404
    assert wa.find_action(store, action.action_id).status == "open"

    snoozed = client.post(path, json={"status": "snoozed", "until": LATER, "note": "on holiday"}, headers=write)
    assert snoozed.status_code == 200, snoozed.text
    assert snoozed.json()["action"]["snoozed_until"] == LATER
    assert snoozed.json()["history"][-1]["kind"] == "snoozed"
    listed = get(client, tokens, f"/api/plays/actions?account_id={action.account_id}&limit=1000")["items"]
    assert [a["status"] for a in listed if a["action_id"] == action.action_id] == ["snoozed"]  # shown at once
    made = client.post(path, json=done, headers=write)
    assert made.status_code == 200 and made.json()["action"]["status"] == "done"
    assert wa.find_action(store, action.action_id).status == "done"
    history = get(client, tokens, path)["history"]
    assert [e["kind"] for e in history[-2:]] == ["snoozed", "done"] and history[-1]["actor"].startswith("token ")
    gone = get(client, tokens, "/api/plays/actions?limit=1000")["items"]
    assert action.action_id not in {a["action_id"] for a in gone}


def test_a_held_out_action_cannot_be_worked(client: Any, tokens: dict[str, str], store: Store) -> None:
    held = [a for a in wa.list_actions(store) if a.held_out]
    assert held
    answer = client.post(f"/api/plays/actions/{held[0].action_id}", json={"status": "done"},
                         headers=auth(tokens["write"]))
    assert answer.status_code in (409, 422) and "holdout" in answer.json()["detail"]


def test_levers_uplift_and_funnel_are_what_the_use_cases_measure(client: Any, tokens: dict[str, str],
                                                               store: Store) -> None:
    run = store.runs()[-1]
    body = get(client, tokens, "/api/levers?months=12")
    expected = levers_of(store, run_id=run.run_id, months=12).to_pylist()
    assert body["currency"] == "USD" and body["months"] == 12
    assert [(r["lever"], Decimal(r["expansion_mrr"])) for r in body["items"]] \
        == [(r["lever"], r["expansion_mrr"]) for r in expected]
    mrr = [Decimal(r["expansion_mrr"]) for r in body["items"]]
    assert mrr and mrr == sorted(mrr, reverse=True)
    assert client.get("/api/levers?months=0", headers=auth(tokens["read"])).status_code == 422
    assert client.get("/api/levers?months=121", headers=auth(tokens["read"])).status_code == 422
    earlier = get(client, tokens, f"/api/levers?run={store.runs()[0].run_id}&months=3")
    assert earlier["run_id"] == store.runs()[0].run_id and earlier["months"] == 3

    uplift = get(client, tokens, "/api/plays/uplift")["items"]
    measured = plays_measure(store, run_id=run.run_id)
    assert [u["play"] for u in uplift] == [m.play for m in measured] and uplift
    assert [u["summary"] for u in uplift] == [m.summary for m in measured]
    assert all(u["verdict"] for u in uplift)

    funnel = get(client, tokens, "/api/funnel")["items"]
    assert funnel and funnel[0]["is_total"]
    assert funnel[0]["awareness"] >= funnel[0]["consideration"] >= funnel[0]["conversion"]
    assert client.get("/api/funnel?run=run-nope", headers=auth(tokens["read"])).status_code == 404


def test_open_counts_add_up(client: Any, tokens: dict[str, str], store: Store) -> None:
    counts = get(client, tokens, "/api/plays/open")
    live = wa.list_actions(store, status=["open", "snoozed"])
    assert sum(c["open"] + c["snoozed"] for c in counts) == len(live)


# -- pages -----------------------------------------------------------------------------------------------------------
def test_the_worklist_marks_an_action_done_with_the_csrf_token_only(session: Any, store: Store) -> None:
    page = session.get("/worklist").text
    shown = re.findall(r'<div class="play-action" data-action="([^"]+)" data-status="open">', page)
    worklist = {a.action_id for a in wa.list_actions(store, status=["open"], play="worklist") if not a.held_out}
    target = next(a for a in shown if a in worklist)
    form = {"status": "done", "next": "/worklist"}
    assert session.post(f"/plays/actions/{target}", data={**form, "csrf": "forged"}).status_code == 403
    assert session.post(f"/plays/actions/{target}", data=form).status_code == 422  # no token at all
    assert wa.find_action(store, target).status == "open"  # nothing changed
    done = session.post(f"/plays/actions/{target}", data={**form, "csrf": csrf_of(page)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/worklist"
    assert wa.find_action(store, target).status == "done"
    after = session.get("/worklist").text
    assert f'data-action="{target}"' not in after  # it left the open list
    account = wa.find_action(store, target).account_id
    history = session.get(f"/accounts/{account}").text
    assert f'data-action="{target}" data-status="done"' in history and "done by ann" in history


def test_a_snooze_from_a_page_needs_a_date_and_a_reason(session: Any, store: Store) -> None:
    action = open_action(store, "renewal_expansion")
    page = session.get(f"/accounts/{action.account_id}").text
    assert f'action="/plays/actions/{action.action_id}"' in page
    form = {"status": "snoozed", "csrf": csrf_of(page), "next": f"/accounts/{action.account_id}"}
    assert session.post(f"/plays/actions/{action.action_id}", data=form).status_code == 422
    assert session.post(f"/plays/actions/{action.action_id}", data={**form, "until": "soon", "note": "x"}
                        ).status_code == 422
    note = '<script>alert("x")</script>'
    made = session.post(f"/plays/actions/{action.action_id}", data={**form, "until": LATER, "note": note},
                        follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == f"/accounts/{action.account_id}"
    shown = session.get(f"/accounts/{action.account_id}").text
    assert f'data-action="{action.action_id}" data-status="snoozed"' in shown
    assert note not in shown and "&lt;script&gt;" in shown  # escaped, as every value from data
    assert session.post("/plays/actions/act-nobody", data={**form, "status": "done"}).status_code == 404


def test_the_plays_page_shows_levers_uplift_funnel_and_open_counts(session: Any, store: Store) -> None:
    reader = session.app.state.reader
    run = reader.run()
    page = session.get("/plays")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    levers = figure(page.text, "levers")["data"][0]
    expected = reader.plays.levers(run, 12)
    assert levers["orientation"] == "h" and levers["x"] == [float(r["expansion_mrr"]) for r in expected]
    assert figure(page.text, "funnel")["data"][0]["type"] == "funnel"
    for u in reader.plays.uplift(run):
        assert f'data-play="{u.play}"' in page.text
    assert 'id="uplift-table"' in page.text and 'id="funnel-table"' in page.text and 'id="open-table"' in page.text
    assert 'href="/plays"' in page.text  # in the navigation
    assert session.get("/plays?months=0").status_code == 422


def test_the_plays_pages_need_a_login(client: Any) -> None:
    response = client.get("/plays", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert client.post("/plays/actions/act-x", data={"status": "done"}, follow_redirects=False).status_code == 303
