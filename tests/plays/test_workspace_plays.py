"""Plays kept in a real workspace, on the embedded DuckDB file and on a real PostgreSQL server: actions and their
history, people working them, two plays runs at once, and the outbox delivering through a webhook that fails on
purpose."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pytest

from tests.plays.conftest import AS_OF, movements, plays_workspace
from upcurve.errors import UpcurveError
from upcurve.settings_file import UpcurveConfig
from upcurve.usecases import levers, plays_deliver, plays_measure, plays_run
from upcurve.workspace import Store
from upcurve.workspace import actions as ws


@dataclass
class Webhook:
    """A real webhook receiver on loopback that answers 500 to its first ``fail_first`` requests."""

    fail_first: int
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(fail_first=2)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append({"key": self.headers["Idempotency-Key"], "body": json.loads(body)})
            failing = hook.fail_first > 0
            hook.fail_first -= 1
            self.send_response(500 if failing else 200)
            self.end_headers()
            self.wfile.write(b"boom" if failing else b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield hook
    server.shutdown()


def test_plays_run_keeps_actions_with_history_and_a_second_run_adds_nothing(location: str) -> None:
    store = plays_workspace(location)
    plan = plays_run(store)
    kept = ws.list_actions(store)
    assert sorted((a.account_id, a.play, a.owner) for a in kept) == [("GROW", "seat_expansion", "bob"),
                                                                    ("RISK", "save_play", "ann")]
    assert {a.action_id for a in plan.created} == {a.action_id for a in kept}
    [risk] = ws.list_actions(store, account_id="RISK")
    history = ws.list_events(store, risk.action_id)
    assert [e.kind for e in history] == ["created", "step"]
    assert json.loads(history[1].detail or "{}")["subject"] == "Risky Co is at risk: churn risk 60%"
    again = plays_run(store)
    assert again.created == [] and len(ws.list_actions(store, status=["open", "closed"])) == 2
    assert plays_run(store, dry_run=True).created == []


def test_people_work_the_actions_and_every_change_is_recorded(location: str) -> None:
    store = plays_workspace(location)
    plays_run(store)
    [risk] = ws.list_actions(store, account_id="RISK")
    with pytest.raises(UpcurveError, match="a snooze needs a date"):
        ws.set_status(store, risk.action_id, "snoozed", actor="ann", until=dt.date(2030, 1, 1))
    snoozed = ws.set_status(store, risk.action_id[:10], "snoozed", actor="ann", note="exec on holiday",
                            until=dt.date(2030, 1, 1))
    assert (snoozed.status, snoozed.snoozed_until, snoozed.snooze_reason) == ("snoozed", dt.date(2030, 1, 1),
                                                                              "exec on holiday")
    # the next plays run leaves it quiet (the run is dated before the snooze ends)
    assert plays_run(store).created == [] and ws.find_action(store, risk.action_id).status == "snoozed"
    done = ws.set_status(store, risk.action_id, "done", actor="ann", note="called the CFO", today=AS_OF)
    assert (done.status, done.outcome, done.ended_on) == ("done", "done", AS_OF)
    kinds = [(e.kind, e.actor) for e in ws.list_events(store, risk.action_id)]
    assert kinds[-2:] == [("snoozed", "ann"), ("done", "ann")]
    with pytest.raises(UpcurveError, match="can be marked"):
        ws.set_status(store, risk.action_id, "won", actor="ann")
    with pytest.raises(ws.ActionNotFound):
        ws.set_status(store, "act-nope", "done", actor="ann")


def test_two_plays_runs_at_once_create_no_duplicate(location: str) -> None:
    store = plays_workspace(location)
    script = ("import sys; from upcurve.workspace import Store; from upcurve.usecases import plays_run; "
              "plays_run(Store.open(sys.argv[1], create=False))")
    procs = [subprocess.Popen([sys.executable, "-c", script, location], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, errors = p.communicate(timeout=120)
        assert p.returncode == 0, errors
    kept = ws.list_actions(store, status=["open", "snoozed", "holdout", "closed"])
    keys = [(a.account_id, a.play, a.reason_key) for a in kept]
    assert len(keys) == len(set(keys)) == 2


def test_outbox_retries_a_failing_webhook_and_delivers_each_message_once(location: str,
                                                                          webhook: Webhook) -> None:
    store = plays_workspace(location)
    config = UpcurveConfig.model_validate({"plays": {
        "routes": [{"to": ["csm", "owner", "admin"], "webhook": "team"}],
        "delivery": {"webhooks": {"team": {"url": webhook.url, "format": "slack"}},
                     "backoff_seconds": 60}}})
    plays_run(store, config=config)
    queued = ws.list_outbox(store)
    assert len(queued) == 2 and {m.status for m in queued} == {"pending"}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) + dt.timedelta(minutes=1)
    first = plays_deliver(store, config=config, now=now)
    assert (first.sent, first.failed) == (0, 2)  # the webhook answers 500 twice
    failed = ws.list_outbox(store, status=["failed"])
    assert {m.attempts for m in failed} == {1} and all("500" in (m.last_error or "") for m in failed)
    assert {m.next_attempt_at for m in failed} == {now + dt.timedelta(seconds=60)}
    assert plays_deliver(store, config=config, now=now + dt.timedelta(seconds=30)).sent == 0  # not due yet
    second = plays_deliver(store, config=config, now=now + dt.timedelta(seconds=60))
    assert (second.sent, second.failed) == (2, 0)
    assert plays_deliver(store, config=config, now=now + dt.timedelta(days=1)).sent == 0  # never twice
    sent = ws.list_outbox(store, status=["sent"])
    assert len(sent) == 2 and {m.attempts for m in sent} == {2}
    # four requests reached the webhook: each message failed once, then was delivered once, with one key
    keys = [r["key"] for r in webhook.received]
    assert len(keys) == 4 and sorted(set(keys)) == sorted(m.idempotency_key for m in sent)
    assert all(keys.count(k) == 2 for k in set(keys))
    assert any("Risky Co" in r["body"]["text"] for r in webhook.received)
    # a plays run on the same data queues nothing again
    plays_run(store, config=config)
    assert len(ws.list_outbox(store)) == 2


def test_a_play_with_a_holdout_is_measured_on_a_later_run_and_levers_count_its_effort(tmp_path: Any) -> None:
    store = Store.open(tmp_path / "ws")
    growing = [{"account_id": f"A{i:03d}", "name": f"Co {i}", "owner": "ann", "new_active_30d": 6,
                "active_users": 12, "purchased_seats": 10} for i in range(120)]
    store.save_run(as_of=AS_OF, source="test", fingerprint="f", settings={}, notes=[],
                   tables={"accounts": pa.Table.from_pylist(growing),
                           "movements": movements(("2025-03", "GROW", "new", None, "100.00"))},
                   started_at=dt.datetime(2025, 4, 1, 8, 0))
    config = UpcurveConfig.model_validate({"plays": {"plays": {"seat_expansion": {
        "description": "Seats", "lever": "seat", "holdout": 0.5, "success": {"source": "seat", "within_days": 30},
        "steps": [{"day": 0, "to": "csm", "subject": "{name}", "message": "{active_users} users"}]}}}})
    plays_run(store, config=config)
    started = ws.list_actions(store, status=["open", "holdout"])
    held = {a.account_id for a in started if a.status == "holdout"}
    assert len(started) == 120 and 40 < len(held) < 80
    # in April, every treated account whose number is even bought seats, and one in four of the held-out ones
    bought = [a.account_id for a in started if (a.account_id in held and int(a.account_id[1:]) % 4 == 0)
              or (a.account_id not in held and int(a.account_id[1:]) % 2 == 0)]
    april = pa.table({"month": ["2025-04"] * len(bought), "account_id": bought, "type": ["expansion"] * len(bought),
                      "source": ["seat"] * len(bought),
                      "amount": pa.array([Decimal("50.00")] * len(bought), pa.decimal128(20, 2))})
    store.save_run(as_of=dt.date(2025, 5, 31), source="test", fingerprint="g", settings={}, notes=[],
                   tables={"accounts": pa.Table.from_pylist(growing), "movements": april},
                   started_at=dt.datetime(2025, 6, 1, 8, 0))
    [measured] = [u for u in plays_measure(store) if u.play == "seat_expansion"]
    treated = [a for a in started if a.account_id not in held]
    assert (measured.n_treated, measured.n_holdout) == (len(treated), len(held))
    assert measured.conversions_treated == sum(int(a.account_id[1:]) % 2 == 0 for a in treated)
    assert measured.conversions_holdout == sum(int(x[1:]) % 4 == 0 for x in held)
    expected_mean = Decimal("50.00") * measured.conversions_treated / len(treated)
    assert measured.mean_mrr_treated == expected_mean.quantize(Decimal("0.01"))  # exact money, rounded once
    # the later plays run closes the treated actions that bought seats as successes
    plays_run(store, config=config)
    outcomes = {a.account_id: a.outcome for a in ws.list_actions(store, status=["closed"])}
    assert {x for x, o in outcomes.items() if o == "success"} == set(bought)
    [seat] = [r for r in levers(store).to_pylist() if r["lever"] == "seat"]
    assert seat["expansion_mrr"] == Decimal("50.00") * len(bought) and seat["actions"] == len(treated)
    assert seat["successes"] == measured.conversions_treated


def test_email_route_delivers_each_step_once_to_the_owners_address(tmp_path: Any, smtp: Any) -> None:
    inbox, controller = smtp
    store = plays_workspace(str(tmp_path / "ws"))
    config = UpcurveConfig.model_validate({"plays": {
        "routes": [{"to": ["csm"], "email": True}],
        "delivery": {"smtp": {"host": "127.0.0.1", "port": controller.port, "sender": "plays@example.com",
                              "timeout_seconds": 5},
                     "addresses": {"ann": "ann@example.com", "bob": "bob@example.com"}}}})
    plays_run(store, config=config)
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=1)
    assert plays_deliver(store, config=config, now=later).sent == 1
    assert plays_deliver(store, config=config, now=later + dt.timedelta(hours=1)).sent == 0
    [(sender, recipients, _)] = inbox.received
    assert sender == "plays@example.com" and recipients == ["ann@example.com"]
    assert inbox.parsed()["Subject"] == "Risky Co is at risk: churn risk 60%"
    [sent] = ws.list_outbox(store, status=["sent"])
    assert sent.receipt == "250 OK queued as 42" and sent.target == "ann"
