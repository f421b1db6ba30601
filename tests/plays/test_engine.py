"""The plays engine on hand-built accounts: each default trigger fires on its account and not on a near miss;
threshold crossings, dedupe, cooldown, snooze, auto-close, holdout and the steps of a playbook."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pytest

from tests.plays.conftest import movements
from upcurve.plays import PlayAction, PlaysConfig, PlaysPlan, evaluation_table, plan_plays
from upcurve.plays.uplift import stable_holdout

TIERS = ["Expansion Ready", "Nurture", "At Risk", "Churn Risk"]
DAY = dt.date(2025, 3, 31)

#: An account that fires nothing: each value just short of a default trigger.
QUIET: dict[str, Any] = {
    "account_id": "A1", "name": "Acme", "owner": "ann", "usage_share_used": 0.4, "usage_this_month": 400.0,
    "usage_limit": 1000.0, "usage_metric": "api_calls", "features_first_used_7d": 2, "outcome_status": "on_track",
    "new_active_30d": 4, "active_users": 9, "purchased_seats": 10, "days_to_renewal": 120, "churn_risk": 0.1,
    "health_score": 70.0, "health_tier": "Nurture", "recommended_lever": "seat", "flag_premium_gap": False,
    "premium_gap_features": 0, "tier_headroom": 1, "tenure_days": 400, "nps_12m": 50.0, "products_unowned": 1,
    "flag_cancellation_scheduled": False,
}
#: An account ready for a cross-sell on every count (the quiet one is held back by its health).
READY = {"health_score": 85.0}


#: The default plays without their holdouts, so that a single account is always worked.
NO_HOLDOUT = PlaysConfig.model_validate({"plays": {
    key: {**play.model_dump(), "holdout": 0.0} for key, play in PlaysConfig().plays.items()}})


def accounts(*rows: dict[str, Any]) -> pa.Table:
    full = [{**QUIET, **row} for row in rows]
    return pa.Table.from_pylist(full)


def evaluated(table: pa.Table, *, worklist: pa.Table | None = None, previous: pa.Table | None = None) -> pa.Table:
    return evaluation_table(table, worklist if worklist is not None else pa.table({}), previous, tiers=TIERS,
                            high_churn_risk=0.3)


def plan(table: pa.Table, actions: list[PlayAction] | None = None, *, config: PlaysConfig | None = None,
         today: dt.date = DAY, run: str = "run-1", movements: pa.Table | None = None) -> PlaysPlan:
    return plan_plays(table, actions or [], config or PlaysConfig(), today=today, run_id=run, movements=movements)


def stored(actions: list[PlayAction], p: PlaysPlan) -> list[PlayAction]:
    """The actions as the workspace holds them after applying ``p`` (what :func:`apply_plays` does)."""
    by_id = {a.action_id: a for a in actions}
    for change in p.changes:
        by_id[change.action_id] = replace(by_id[change.action_id], **change.fields)
    for a in p.created:
        by_id[a.action_id] = a
    return list(by_id.values())


def opened(p: PlaysPlan, trigger: str) -> list[PlayAction]:
    return [a for a in p.created if a.trigger == trigger and a.status == "open"]


@pytest.mark.parametrize(("trigger", "hit", "miss"), [
    ("usage_limit", {"usage_share_used": 0.8}, {"usage_share_used": 0.79}),
    ("usage_90", {"usage_share_used": 0.9}, {"usage_share_used": 0.899}),
    ("usage_75", {"usage_share_used": 0.75}, {"usage_share_used": 0.749}),
    ("usage_50", {"usage_share_used": 0.5}, {"usage_share_used": 0.499}),
    ("advanced_adoption", {"features_first_used_7d": 3}, {"features_first_used_7d": 2}),
    ("outcome_achieved", {"outcome_status": "exceeded"}, {"outcome_status": "on_track"}),
    ("team_growth", {"new_active_30d": 5}, {"new_active_30d": 4}),
    ("renewal_90", {"days_to_renewal": 90}, {"days_to_renewal": 91}),
    ("renewal_90", {"days_to_renewal": 1}, {"days_to_renewal": 0}),
    ("churn_risk", {"churn_risk": 0.3}, {"churn_risk": 0.29}),
    ("cancellation_scheduled", {"flag_cancellation_scheduled": True}, {"flag_cancellation_scheduled": False}),
    ("tier_ready", {"flag_premium_gap": True, "premium_gap_features": 2}, {"flag_premium_gap": False}),
    ("tier_ready", {"flag_premium_gap": True}, {"flag_premium_gap": True, "tier_headroom": 0}),
    ("cross_sell_ready", READY, {"health_score": 79.9}),
    ("cross_sell_ready", READY, {**READY, "tenure_days": 179}),
    ("cross_sell_ready", READY, {**READY, "nps_12m": 40.0}),
    ("cross_sell_ready", READY, {**READY, "products_unowned": 0}),
])
def test_each_default_trigger_fires_on_its_account_and_not_on_a_near_miss(trigger: str, hit: dict[str, Any],
                                                                          miss: dict[str, Any]) -> None:
    table = evaluated(accounts({"account_id": "HIT", **hit}, {"account_id": "MISS", **miss}))
    p = plan(table, config=NO_HOLDOUT)
    assert [a.account_id for a in opened(p, trigger)] == ["HIT"]
    assert p.matched[trigger] == 1


def test_quiet_account_fires_nothing() -> None:
    assert plan(evaluated(accounts({}))).created == []


def test_a_falling_health_tier_and_a_place_on_the_worklist_fire() -> None:
    now = accounts({"account_id": "FELL", "health_tier": "At Risk"}, {"account_id": "SAME"},
                   {"account_id": "ROSE", "health_tier": "Expansion Ready"})
    before = accounts({"account_id": "FELL"}, {"account_id": "SAME"}, {"account_id": "ROSE", "health_tier": "At Risk"})
    worklist = pa.table({"account_id": ["SAME"], "rank": [1], "motion": ["expand"], "suggested_play": ["Seat call"],
                         "reasons": ["seat saturation 96%"]})
    p = plan(evaluated(now, worklist=worklist, previous=before))
    assert [a.account_id for a in opened(p, "churn_risk")] == ["FELL"]
    assert "health_tier_fell" in opened(p, "churn_risk")[0].reason
    [listed] = opened(p, "worklist")
    assert listed.account_id == "SAME" and listed.owner == "ann" and listed.lever == "seat"
    [step] = [s for s in p.steps if s.action_id == listed.action_id]
    assert step.subject == "Acme: #1 on this week's worklist"
    assert step.message == "Seat call. Why: seat saturation 96%"


def test_an_action_has_its_owner_due_date_and_reason_in_words() -> None:
    p = plan(evaluated(accounts({"new_active_30d": 7})))
    [a] = opened(p, "team_growth")
    assert (a.play, a.owner, a.started_on, a.due_on) == ("seat_expansion", "ann", DAY, DAY + dt.timedelta(days=3))
    assert a.reason == "5 or more new users in 30 days (new_active_30d 7)"
    # day 0 of the seat playbook: the offer to the customer's admin, kept as a task (no route is set)
    [first] = [s for s in p.steps if s.action_id == a.action_id]
    assert first.to == "admin" and first.status == "task"
    assert first.message.startswith("Your team at Acme has 9 active users on 10 seats.")


def test_business_days_skip_the_weekend() -> None:
    config = PlaysConfig.model_validate({"plays": {"seat_expansion": {
        "description": "seats", "owner": "csm", "due_days": 3, "business_days": True}}})
    friday = dt.date(2025, 3, 28)
    [a] = opened(plan(evaluated(accounts({"new_active_30d": 7})), config=config, today=friday), "team_growth")
    assert a.due_on == dt.date(2025, 4, 2)  # Mon, Tue, Wed


def test_threshold_crossing_fires_once_per_period_and_resolves_when_it_falls_back() -> None:
    only_alerts = PlaysConfig.model_validate({"triggers": {
        key: {"description": "off", "play": "worklist", "when": ["on_worklist"], "enabled": False}
        for key in ("usage_limit", "worklist")}})
    first = plan(evaluated(accounts({"usage_share_used": 0.6})), config=only_alerts)
    assert [a.trigger for a in first.created] == ["usage_50"]
    actions = stored([], first)
    # later the same month, still above 50%: nothing new (the alert is open); above 75%: the 75% alert fires
    again = plan(evaluated(accounts({"usage_share_used": 0.7})), actions, config=only_alerts,
                 today=DAY - dt.timedelta(days=1), run="run-2")
    assert again.created == []
    crossed = plan(evaluated(accounts({"usage_share_used": 0.8})), actions, config=only_alerts, run="run-3")
    assert [a.trigger for a in crossed.created] == ["usage_75"]
    actions = stored(actions, crossed)
    # falls back under 50%: both alerts resolve
    fell = plan(evaluated(accounts({"usage_share_used": 0.3})), actions, config=only_alerts, run="run-4")
    assert sorted(c.detail for c in fell.changes) == ["its trigger no longer holds"] * 2
    actions = stored(actions, fell)
    # crossing 50% again in the same month does not fire again: once per period
    back = plan(evaluated(accounts({"usage_share_used": 0.6})), actions, config=only_alerts, run="run-5")
    assert back.created == []
    # next month it fires again
    next_month = plan(evaluated(accounts({"usage_share_used": 0.6})), actions, config=only_alerts, run="run-6",
                      today=dt.date(2025, 4, 30))
    assert [(a.trigger, a.reason_key) for a in next_month.created] == [("usage_50", "usage_50:2025-04")]


def test_several_thresholds_crossed_at_once_open_one_action_the_highest() -> None:
    p = plan(evaluated(accounts({"usage_share_used": 0.95})))
    alerts = [a for a in p.created if a.play == "usage_alert"]
    assert [(a.trigger, a.status) for a in alerts] == [("usage_90", "open"), ("usage_75", "closed"),
                                                       ("usage_50", "closed")]
    assert alerts[1].outcome == "covered by usage_90"
    # and the covered ones do not fire later in the period
    later = plan(evaluated(accounts({"usage_share_used": 0.95})), stored([], p), run="run-2")
    assert [a for a in later.created if a.play == "usage_alert"] == []


def test_same_key_is_updated_not_duplicated_and_a_rerun_creates_nothing() -> None:
    table = evaluated(accounts({"churn_risk": 0.5}))
    first = plan(table)
    actions = stored([], first)
    assert plan(table, actions).created == [] and plan(table, actions).changes == []  # the same run again
    later = plan(table, actions, run="run-2", today=DAY + dt.timedelta(days=7))
    assert later.created == []
    assert [(c.event, c.fields) for c in later.changes] == [("updated", {"last_run_id": "run-2"})]


def test_cooldown_after_an_action_ends() -> None:
    table = evaluated(accounts({"churn_risk": 0.5}))
    [a] = plan(table).created
    done = [replace(a, status="done", outcome="done", ended_on=DAY)]
    assert plan(table, done, today=DAY + dt.timedelta(days=29)).created == []  # cooldown_days: 30
    [again] = plan(table, done, today=DAY + dt.timedelta(days=30)).created
    assert again.trigger == "churn_risk" and again.action_id != a.action_id


def test_snooze_keeps_quiet_until_its_date_then_opens_again_or_closes() -> None:
    table = evaluated(accounts({"churn_risk": 0.5}))
    [a] = plan(table).created
    snoozed = [replace(a, status="snoozed", snoozed_until=DAY + dt.timedelta(days=10), snooze_reason="on holiday")]
    quiet = plan(table, snoozed, today=DAY + dt.timedelta(days=9), run="run-2")
    assert quiet.created == [] and [c.event for c in quiet.changes] == ["updated"]
    woke = plan(table, snoozed, today=DAY + dt.timedelta(days=10), run="run-3")
    assert [(c.event, c.fields["status"]) for c in woke.changes] == [("reopened", "open")]
    cleared = plan(evaluated(accounts({"churn_risk": 0.1})), snoozed, today=DAY + dt.timedelta(days=10), run="run-3")
    assert [(c.event, c.fields["outcome"]) for c in cleared.changes] == [("closed", "cleared")]


def test_auto_close_when_cleared_but_a_playbook_runs_on() -> None:
    table = evaluated(accounts({"churn_risk": 0.5, "new_active_30d": 6}))
    actions = stored([], plan(table))
    calm = plan(evaluated(accounts({})), actions, run="run-2", today=DAY + dt.timedelta(days=7))
    closed = {c.action_id for c in calm.changes if c.event == "closed"}
    by_trigger = {a.trigger: a.action_id for a in actions}
    assert by_trigger["churn_risk"] in closed  # close_when_cleared (default)
    assert by_trigger["team_growth"] not in closed  # the seat playbook runs to its end


def test_seat_playbook_steps_run_on_their_day_and_stop_at_success() -> None:
    growing = evaluated(accounts({"new_active_30d": 6}))
    start = plan(growing)
    actions = stored([], start)
    [seat] = [a for a in actions if a.play == "seat_expansion"]
    assert seat.next_step == 1
    week = plan(growing, actions, run="run-2", today=DAY + dt.timedelta(days=7))
    steps = [(s.step, s.to, s.status) for s in week.steps if s.action_id == seat.action_id]
    assert steps == [(1, "admin", "task"), (2, "csm", "task")]
    actions = stored(actions, week)
    # seats bought in April: day 14's call is skipped and the play closes as a success
    bought = movements(("2025-04", "A1", "expansion", "seat", "100.00"))
    fortnight = plan(growing, actions, run="run-3", today=DAY + dt.timedelta(days=14), movements=bought)
    assert [(s.step, s.status) for s in fortnight.steps if s.action_id == seat.action_id] == [(3, "skipped")]
    closes = [c for c in fortnight.changes if c.action_id == seat.action_id and c.event == "closed"]
    assert [c.fields["outcome"] for c in closes] == ["success"]


def test_no_success_closes_once_the_window_passed_and_every_step_ran() -> None:
    growing = evaluated(accounts({"new_active_30d": 6}))
    actions = stored([], plan(growing))
    for run, days in (("run-2", 7), ("run-3", 14)):
        actions = stored(actions, plan(growing, actions, run=run, today=DAY + dt.timedelta(days=days)))
    other_source = movements(("2025-04", "A1", "expansion", "tier", "50.00"))
    late = plan(growing, actions, run="run-4", today=DAY + dt.timedelta(days=31), movements=other_source)
    [close] = [c for c in late.changes if c.event == "closed" and c.fields.get("outcome") == "no success"]
    assert close.detail == "no seat expansion within 30 days"


def test_a_step_with_an_empty_placeholder_is_skipped_not_sent_with_a_blank() -> None:
    p = plan(evaluated(accounts({"churn_risk": 0.5, "health_score": None})))
    [step] = p.steps
    assert step.status == "skipped" and "{health_score} is empty" in step.detail and p.messages == []


def test_holdout_is_a_stable_share_and_sends_nothing() -> None:
    config = PlaysConfig.model_validate({"plays": {"save_play": {
        "description": "save", "lever": "retain", "holdout": 0.2,
        "steps": [{"day": 0, "to": "csm", "subject": "{name}", "message": "{name} is at risk"}]}},
        "routes": [{"to": ["csm"], "webhook": "team"}],
        "delivery": {"webhooks": {"team": {"url": "http://127.0.0.1:9/hook"}}}})
    table = evaluated(accounts(*({"account_id": f"A{i:04d}", "churn_risk": 0.5} for i in range(1000))))
    p = plan(table, config=config)
    held = {a.account_id for a in p.created if a.status == "holdout"}
    assert held == {f"A{i:04d}" for i in range(1000) if stable_holdout("save_play", f"A{i:04d}", 0.2)}
    assert 150 < len(held) < 250  # 20% ± 3.9 standard deviations
    assert {m.payload["account_id"] for m in p.messages}.isdisjoint(held)
    assert len(p.messages) == 1000 - len(held)
    again = plan(table, config=config, run="run-2")  # another run, the same split
    assert {a.account_id for a in again.created if a.status == "holdout"} == held


def test_messages_go_to_every_route_of_a_role_with_stable_idempotency_keys() -> None:
    config = PlaysConfig.model_validate({
        "routes": [{"to": ["csm", "owner"], "webhook": "slack"}, {"to": ["csm"], "email": True}],
        "delivery": {"webhooks": {"slack": {"url": "http://127.0.0.1:9/hook", "format": "slack"}},
                     "smtp": {"host": "127.0.0.1", "sender": "plays@example.com"}}})
    table = evaluated(accounts({"churn_risk": 0.5}))
    p = plan(table, config=config, run="run-1")
    assert sorted((m.channel, m.target) for m in p.messages) == [("email", "ann"), ("webhook", "slack")]
    assert p.messages[0].subject == "Acme is at risk: churn risk 50%"
    keys = {m.idempotency_key for m in p.messages}
    assert len(keys) == 2 and keys == {m.idempotency_key for m in plan(table, config=config).messages}
