"""The JSON API: every endpoint, authentication (401), scopes (403), bad parameters (422), exact money."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from upcurve.workspace import Store
from upcurve.workspace import access as acc

GETS = ["/api/runs", "/api/metrics", "/api/bridge", "/api/expansion", "/api/expansion?by=segment",
        "/api/segments?dimension=owner", "/api/cohorts", "/api/movements", "/api/accounts", "/api/worklist",
        "/api/diff", "/api/model", "/api/actions", "/api/coupons"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get(client: Any, tokens: dict[str, str], path: str) -> Any:
    response = client.get(path, headers=auth(tokens["read"]))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("path", GETS)
def test_every_endpoint_needs_a_token(client: Any, tokens: dict[str, str], path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers=auth("upc_0000_nothing")).status_code == 401
    assert client.get(path, headers=auth(tokens["write"])).status_code == 403  # write alone cannot read
    assert client.get(path, headers=auth(tokens["read"])).status_code == 200


def test_a_revoked_token_stops_working_within_the_time_a_live_token_is_trusted(client: Any, store: Store) -> None:
    reader = client.app.state.reader
    token, record = acc.create_token(store, "temporary", ["read"])
    assert client.get("/api/runs", headers=auth(token)).status_code == 200
    acc.revoke_token(store, record.token_id)  # as `upcurve tokens revoke` does, from another process
    time.sleep(reader.auth_ttl + 0.1)
    assert client.get("/api/runs", headers=auth(token)).status_code == 401
    assert all(t.token_id != record.token_id or t.revoked_at for t in acc.list_tokens(store))


def test_a_token_is_stored_only_as_its_hash(store: Store, tokens: dict[str, str]) -> None:
    stored = store.query("SELECT token_hash FROM api_tokens").column(0).to_pylist()
    secret = tokens["read"].split("_", 2)[2]
    assert all(secret not in h for h in stored)
    users = store.query("SELECT password_hash FROM users").column(0).to_pylist()
    assert users and all(h.startswith("scrypt$") for h in users)


def test_metrics_are_exact_decimal_strings_with_their_currency(client: Any, tokens: dict[str, str]) -> None:
    body = get(client, tokens, "/api/metrics")
    assert body["currency"] == "USD" and body["headline"].startswith("In ")
    last = body["items"][-1]
    assert isinstance(last["mrr"], str) and Decimal(last["mrr"]) * 12 == Decimal(last["arr"])


def test_the_bridge_adds_up_and_its_bars_list_their_movements(client: Any, tokens: dict[str, str]) -> None:
    body = get(client, tokens, "/api/bridge")
    lines = body["lines"]
    assert lines[0]["line"] == "start" and lines[-1]["line"] == "end"
    assert sum(Decimal(x["amount"]) for x in lines[:-1]) == Decimal(lines[-1]["amount"])
    expansion = [x for x in lines if x["type"] == "expansion" and x["source"]]
    assert expansion
    bar = expansion[0]
    moved = get(client, tokens, f"/api/movements?type=expansion&source={bar['source']}&month_from={body['month']}"
                                f"&month_to={body['month']}&limit=1000")
    assert sum(Decimal(m["amount"]) for m in moved["items"]) == Decimal(bar["amount"])
    assert moved["total"] == len(moved["items"])


def test_lists_are_paginated(client: Any, tokens: dict[str, str]) -> None:
    whole = get(client, tokens, "/api/accounts?limit=1000&sort=account_id&order=asc")
    first = get(client, tokens, "/api/accounts?limit=10&sort=account_id&order=asc")
    second = get(client, tokens, "/api/accounts?limit=10&offset=10&sort=account_id&order=asc")
    assert first["total"] == whole["total"] == len(whole["items"])
    assert [a["account_id"] for a in first["items"] + second["items"]] == \
        [a["account_id"] for a in whole["items"][:20]]
    beyond = get(client, tokens, f"/api/accounts?offset={whole['total'] + 5}")
    assert beyond["items"] == [] and beyond["total"] == whole["total"]


def test_accounts_filter_and_sort(client: Any, tokens: dict[str, str]) -> None:
    body = get(client, tokens, "/api/accounts?segment=smb&sort=churn_risk&order=desc&limit=1000")
    assert body["items"] and {a["segment"] for a in body["items"]} == {"smb"}
    risks = [a["churn_risk"] for a in body["items"] if a["churn_risk"] is not None]
    assert risks == sorted(risks, reverse=True)
    cohort = get(client, tokens, "/api/cohorts")["items"][0]["cohort"]
    assert get(client, tokens, f"/api/accounts?cohort={cohort}")["total"] > 0


def test_an_account_has_everything_its_page_shows(client: Any, tokens: dict[str, str]) -> None:
    first = get(client, tokens, "/api/accounts?limit=1")["items"][0]
    body = get(client, tokens, f"/api/accounts/{first['account_id']}")
    assert body["account"]["account_id"] == first["account_id"]
    assert body["mrr"] and body["movements"]
    assert len(body["history"]) == 2  # the account in both runs
    assert client.get("/api/accounts/nobody", headers=auth(tokens["read"])).status_code == 404


def test_worklist_filters_and_sorts(client: Any, tokens: dict[str, str]) -> None:
    whole = get(client, tokens, "/api/worklist?limit=1000")
    assert [w["rank"] for w in whole["items"]] == sorted(w["rank"] for w in whole["items"])
    owner = whole["items"][0]["owner"]
    mine = get(client, tokens, f"/api/worklist?owner={owner}&sort=value_at_stake&order=desc")
    assert {w["owner"] for w in mine["items"]} == {owner}
    values = [Decimal(w["value_at_stake"]) for w in mine["items"]]
    assert values == sorted(values, reverse=True)
    retain = get(client, tokens, "/api/worklist?motion=retain&limit=1000")
    assert all(w["motion"] == "retain" for w in retain["items"])
    segment = whole["items"][0]["segment"]
    assert all(w["segment"] == segment for w in get(client, tokens, f"/api/worklist?segment={segment}")["items"])


def test_runs_diff_and_model(client: Any, tokens: dict[str, str]) -> None:
    runs = get(client, tokens, "/api/runs")
    assert len(runs) == 2
    earlier = get(client, tokens, f"/api/metrics?run={runs[0]['run_id']}")
    assert earlier["as_of"] == runs[0]["as_of"]
    diff = get(client, tokens, "/api/diff")
    assert diff["a"]["run_id"] == runs[0]["run_id"] and diff["b"]["run_id"] == runs[1]["run_id"]
    assert set(diff["totals"]) == {"entered", "left", "tier_moves", "new_churn_risks"}
    for part, total in diff["totals"].items():
        whole = get(client, tokens, "/api/diff?limit=1000")[part]
        pages = [get(client, tokens, f"/api/diff?limit=3&offset={at}")[part] for at in range(0, total + 3, 3)]
        assert len(whole) == total and [r for p in pages for r in p] == whole, part
    model = get(client, tokens, "/api/model")
    assert model["model_id"] and any("10% of accounts" in w for w in model["in_words"])


@pytest.mark.parametrize("path", ["/api/accounts?limit=0", "/api/accounts?limit=5000", "/api/accounts?sort=nope",
                                  "/api/movements?type=refund", "/api/metrics?month_from=2024-13",
                                  "/api/accounts?offset=-1", "/api/worklist?motion=sell",
                                  "/api/diff?threshold=2"])
def test_bad_parameters_get_422_with_a_message(client: Any, tokens: dict[str, str], path: str) -> None:
    response = client.get(path, headers=auth(tokens["read"]))
    assert response.status_code == 422
    assert response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/metrics?run=run-nope", "/api/segments?dimension=planet",
                                  "/api/bridge?month=1999-01", "/api/expansion?by=planet"])
def test_unknown_things_get_404(client: Any, tokens: dict[str, str], path: str) -> None:
    response = client.get(path, headers=auth(tokens["read"]))
    assert response.status_code == 404 and response.json()["detail"]


def test_recording_an_action_needs_the_write_scope(client: Any, tokens: dict[str, str]) -> None:
    account = get(client, tokens, "/api/worklist?limit=1")["items"][0]["account_id"]
    body = {"account_id": account, "status": "contacted", "note": "called <b>them</b>"}
    before = get(client, tokens, "/api/actions")
    assert client.post("/api/actions", json=body).status_code == 401
    assert client.post("/api/actions", json=body, headers=auth(tokens["read"])).status_code == 403
    assert get(client, tokens, "/api/actions") == before  # nothing changed
    made = client.post("/api/actions", json=body, headers=auth(tokens["write"]))
    assert made.status_code == 201 and made.json()["status"] == "contacted"
    assert len(get(client, tokens, "/api/actions")) == len(before) + 1
    bad = client.post("/api/actions", json={**body, "status": "sold"}, headers=auth(tokens["write"]))
    assert bad.status_code == 422
    missing = client.post("/api/actions", json={**body, "account_id": "nobody"}, headers=auth(tokens["write"]))
    assert missing.status_code == 404


def test_the_openapi_schema_documents_every_endpoint(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/api/runs", "/api/metrics", "/api/bridge", "/api/movements", "/api/accounts",
                 "/api/accounts/{account_id}", "/api/worklist", "/api/diff", "/api/segments", "/api/cohorts",
                 "/api/coupons"):
        assert path in schema["paths"]
    assert not any(p.startswith(("/worklist", "/login")) for p in schema["paths"])


def test_a_live_token_is_remembered_briefly_by_its_hash_and_a_logout_forgets_it(store: Store) -> None:
    from upcurve.web.data import Reader

    reader = Reader(store, auth_ttl=60)
    asked: list[str] = []

    def check_token(_store: Store, secret: str) -> str | None:
        asked.append(secret)
        return "token" if secret == "upc_live_secret" else None

    assert reader.live(check_token, "upc_live_secret") == reader.live(check_token, "upc_live_secret") == "token"
    assert asked == ["upc_live_secret"]  # the workspace was asked once
    assert reader.live(check_token, "upc_bad") is None and reader.live(check_token, "upc_bad") is None
    assert asked.count("upc_bad") == 2  # an unknown or revoked token is never remembered
    assert not any("secret" in part for key in reader._live for part in key)  # only a hash of it is kept
    reader.forget("upc_live_secret")
    reader.live(check_token, "upc_live_secret")
    assert asked.count("upc_live_secret") == 2


def test_coupons_give_the_months_mrr_and_discount_of_each_coupon(client: Any, tokens: dict[str, str]) -> None:
    """The simulated company gives enterprise accounts 15% off the core plan: each month the coupon's discount is
    15/85 of its MRR, to the cent on each line (at most a cent per line apart)."""
    latest = get(client, tokens, "/api/coupons")
    assert latest["month"] == get(client, tokens, "/api/metrics")["items"][-1]["month"]
    [row] = latest["items"]
    assert row["coupon"] == "Enterprise 15%" and row["month"] == latest["month"] and row["accounts"] > 0
    mrr, discount = Decimal(row["mrr"]), Decimal(row["discount"])
    assert abs(discount - mrr * 15 / 85) <= Decimal("0.01") * 3 * row["accounts"]
    earlier = get(client, tokens, "/api/coupons?month=2024-06")
    assert earlier["month"] == "2024-06" and all(r["month"] == "2024-06" for r in earlier["items"])
    assert client.get("/api/coupons?month=1999-01", headers=auth(tokens["read"])).status_code == 404
