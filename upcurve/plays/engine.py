"""The plays engine: from a run's accounts and the actions already open, what to create, advance and close.

Pure: it takes Arrow tables and the stored actions and returns a :class:`PlaysPlan`; the workspace applies the plan
in one transaction while it holds the writer's lock (so two ``plays run`` at once never create a duplicate), and a
dry run prints it instead.

The rules it follows (Gainsight's, for the first two):

- **One action per (account, play, reason).** A trigger that matches an account with an action of the same key
  still open (or snoozed, or held out) updates it; it never adds a second one. A run planned twice on the same
  data creates nothing the second time.
- **Cooldown and snooze.** After an action of a key ends (done, dismissed, closed), the trigger fires again for that
  account only once ``cooldown_days`` have passed. A snoozed action stays quiet until its date, then opens again
  if its trigger still holds (else it closes).
- **Threshold crossings fire once per period.** A ``crosses`` trigger's key carries the as-of month: it fires once
  in a month when the value reaches the threshold, and its action closes when the value falls back (resolved) or
  the month ends.
- **Auto-close.** An open action closes itself when its trigger's conditions no longer hold (``close_when_cleared``,
  the default), when its play's success is seen (outcome ``success``), or when its success window has passed and
  every step is done (outcome ``no success``).
- **Holdout.** A play with ``holdout: 0.1`` holds out 10% of the accounts it would start on, by a stable hash of
  (play, account): they get an action with status ``holdout`` (and ``held_out`` true for good, after it ends too)
  that sends nothing, so what the play changed can be measured against them (:mod:`upcurve.plays.uplift`).
- **Steps** run on their day (days after the play started, counted from the run's as-of date), in order; a step
  with ``unless_success`` is skipped once the play's success was seen. A step's message goes to every route of its
  role; with no route it is kept in the workspace as a task for ``upcurve plays list`` and the CRM export.

"Today" for the plays is the run's as-of date: the day the data describe, so replaying a past run plans what it
would have planned then.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from upcurve.plays import uplift
from upcurve.plays.delivery import Message
from upcurve.plays.rules import Condition, PlayDefinition, PlaysConfig, Step, Trigger, placeholders

__all__ = ["ACTION_STATUSES", "OPEN_STATUSES", "ActionChange", "PlayAction", "PlaysPlan", "StepRun",
           "evaluation_table", "matching", "plan_plays", "render"]

#: Every status an action can have. ``open``, ``snoozed`` and ``holdout`` are live; the others ended.
ACTION_STATUSES = ("open", "snoozed", "holdout", "done", "dismissed", "closed")
OPEN_STATUSES = ("open", "snoozed", "holdout")
#: The outcomes of the actions kept only so a trigger does not fire again (see :attr:`PlayAction.bookkeeping`).
PERIOD_ENDED, COVERED = "period ended", "covered by"

_SHARE_COLUMNS = {"usage_share_used", "seat_saturation", "adoption_breadth", "stickiness", "dau_per_seat",
                  "expansion_propensity", "churn_risk"}
_MONEY_COLUMNS = {"mrr", "expected_expansion_mrr", "value_at_stake"}


@dataclass(frozen=True)
class PlayAction:
    """An action as the workspace keeps it (one row of ``actions``)."""

    action_id: str
    account_id: str
    account_name: str | None
    play: str
    trigger: str
    reason_key: str
    reason: str
    lever: str | None
    status: str
    owner: str
    started_on: dt.date
    due_on: dt.date
    next_step: int
    success_source: str | None = None
    success_window_days: int | None = None
    outcome: str | None = None
    snoozed_until: dt.date | None = None
    snooze_reason: str | None = None
    ended_on: dt.date | None = None
    held_out: bool = False
    first_run_id: str = ""
    last_run_id: str = ""

    @property
    def bookkeeping(self) -> bool:
        """Kept only so a trigger does not fire again: a threshold covered by a higher one crossed at once, or an
        alert whose period ended. Nobody worked it; it is not an exposure to measure."""
        return self.outcome == PERIOD_ENDED or (self.outcome or "").startswith(COVERED)

    @property
    def measurable(self) -> bool:
        """An exposure the uplift and the levers measure: its play has a success window, and it is no
        :attr:`bookkeeping`."""
        return bool(self.success_window_days) and not self.bookkeeping


@dataclass(frozen=True)
class ActionChange:
    """What a plan changes in an existing action, and the event that records why."""

    action_id: str
    fields: Mapping[str, Any]
    event: str
    detail: str


@dataclass(frozen=True)
class StepRun:
    """A step a plan runs (or skips) for an action: its messages go to the outbox."""

    action_id: str
    step: int
    to: str
    recipient: str
    subject: str
    message: str
    status: str  # "sent" (messages queued), "task" (no route: kept as a task), "skipped" (with the reason)
    detail: str = ""


@dataclass
class PlaysPlan:
    """What one plays run does: new actions, changes to existing ones (each with the event that records it, and
    ``updated``: each changed action as the plan leaves it), the steps it runs and their messages."""

    today: dt.date
    run_id: str
    created: list[PlayAction] = field(default_factory=list)
    changes: list[ActionChange] = field(default_factory=list)
    updated: list[PlayAction] = field(default_factory=list)
    steps: list[StepRun] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    matched: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """How many actions it opens, holds out, updates, closes, and how many steps and messages it sends."""
        events = [c.event for c in self.changes]
        return {"opened": sum(a.status == "open" for a in self.created),
                "held out": sum(a.status == "holdout" for a in self.created),
                "updated": events.count("updated"), "reopened": events.count("reopened"),
                "closed": events.count("closed"), "steps": sum(s.status != "skipped" for s in self.steps),
                "messages": len(self.messages)}


# -- the table the rules read -----------------------------------------------------------------------------------
def evaluation_table(accounts: pa.Table, worklist: pa.Table, previous_accounts: pa.Table | None, *,
                     tiers: Sequence[str], high_churn_risk: float) -> pa.Table:
    """The run's accounts with the plays' own columns: the worklist's rank, motion, play and reasons
    (``on_worklist``), the health tier in the run before (``health_tier_previous``, ``health_tier_fell``: a tier
    lower in ``tiers``' order, highest first) and ``churn_risk_high`` (churn risk ≥ ``high_churn_risk``).

    Edge cases
    ----------
    With no earlier run, or an account absent from it, ``health_tier_fell`` is false: a fall needs two tiers.
    An account with no churn risk (not scored) is not ``churn_risk_high``.
    """
    ids = accounts["account_id"]
    n = accounts.num_rows

    def looked_up(table: pa.Table | None, column: str, kind: pa.DataType) -> pa.Array:
        if table is None or table.num_rows == 0 or column not in table.column_names:
            return pa.nulls(n, kind)
        where = pc.index_in(ids, value_set=table["account_id"].combine_chunks())
        return pc.take(table[column].combine_chunks(), where).cast(kind)

    rank = looked_up(worklist, "rank", pa.int64())
    out = accounts
    columns = {
        "on_worklist": pc.is_valid(rank),
        "worklist_rank": rank,
        "worklist_motion": looked_up(worklist, "motion", pa.string()),
        "suggested_play": looked_up(worklist, "suggested_play", pa.string()),
        "worklist_reasons": looked_up(worklist, "reasons", pa.string()),
    }
    before = looked_up(previous_accounts, "health_tier", pa.string())
    now = out["health_tier"] if "health_tier" in out.column_names else pa.nulls(n, pa.string())
    order = {name: i for i, name in enumerate(tiers)}
    fell = [b is not None and t is not None and order.get(t, -1) > order.get(b, math.inf)
            for b, t in zip(before.to_pylist(), now.to_pylist(), strict=True)]
    columns["health_tier_previous"] = before
    columns["health_tier_fell"] = pa.array(fell, pa.bool_())
    risk = out["churn_risk"] if "churn_risk" in out.column_names else pa.nulls(n, pa.float64())
    columns["churn_risk_high"] = pc.fill_null(pc.greater_equal(risk, high_churn_risk), False)
    for name, values in columns.items():
        if name in out.column_names:
            out = out.drop_columns([name])
        out = out.append_column(name, values)
    return out


def _condition_mask(table: pa.Table, c: Condition) -> pa.ChunkedArray | pa.Array:
    if c.column not in table.column_names:
        return pa.array([False] * table.num_rows)
    col = table[c.column]
    if c.op == "is_true":
        return pc.equal(col.cast(pa.bool_()), True)
    if c.op == "is_false":
        return pc.equal(col.cast(pa.bool_()), False)
    if c.op == "in":
        assert isinstance(c.value, tuple)
        values = pa.array([str(v) for v in c.value]) if pa.types.is_string(col.type) else pa.array(c.value)
        return pc.is_in(col, value_set=values)
    value = c.value
    if pa.types.is_decimal(col.type) and isinstance(value, float):
        col = col.cast(pa.float64())
    if pa.types.is_string(col.type):
        value = str(value)
    if pa.types.is_boolean(col.type):
        value = bool(value)
    op = ">=" if c.op == "crosses" else c.op
    fn = {">=": pc.greater_equal, "<=": pc.less_equal, ">": pc.greater, "<": pc.less, "==": pc.equal,
          "!=": pc.not_equal}[op]
    return fn(col, pa.scalar(value))


def matching(table: pa.Table, trigger: Trigger) -> np.ndarray:
    """Which rows of ``table`` a trigger matches: every ``when`` condition and one of ``when_any`` (a missing
    value matches nothing)."""
    mask = np.ones(table.num_rows, dtype=bool)
    for c in trigger.conditions:
        mask &= np.asarray(pc.fill_null(_condition_mask(table, c), False), dtype=bool)
    if trigger.alternatives:
        any_mask = np.zeros(table.num_rows, dtype=bool)
        for c in trigger.alternatives:
            any_mask |= np.asarray(pc.fill_null(_condition_mask(table, c), False), dtype=bool)
        mask &= any_mask
    return mask


# -- words -------------------------------------------------------------------------------------------------------
def _shown(column: str, value: Any, currency: str) -> str:
    """A value as a message shows it: shares as %, money with its currency, whole numbers without decimals."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column in _SHARE_COLUMNS and isinstance(value, int | float):
        return f"{value * 100:.0f}%"
    if column in _MONEY_COLUMNS and isinstance(value, Decimal | int | float):
        return f"{Decimal(value):,.2f} {currency}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def render(template: str, row: Mapping[str, Any], *, currency: str) -> tuple[str | None, list[str]]:
    """``template`` filled from ``row``; None and the names of the placeholders that are empty for this account
    (a message is never sent with a blank in it).

    >>> render("{name} uses {usage_share_used} of {usage_limit} {usage_metric}",
    ...        {"name": "Acme", "usage_share_used": 0.82, "usage_limit": 1000.0, "usage_metric": "api_calls"},
    ...        currency="USD")
    ('Acme uses 82% of 1,000 api_calls', [])
    >>> render("{name} renews in {days_to_renewal} days", {"name": "Acme", "days_to_renewal": None}, currency="USD")
    (None, ['days_to_renewal'])
    """
    names = placeholders(template)
    empty = [name for name in names if row.get(name) is None]
    if empty:
        return None, empty
    return template.format_map({name: _shown(name, row[name], currency) for name in names}), []


def _reason(trigger: Trigger, row: Mapping[str, Any], currency: str) -> str:
    """The trigger in words with the values that made it fire: "Usage reached 80% of the plan's limit
    (usage_share_used 82%)"."""
    shown = []
    for c in (*trigger.conditions, *trigger.alternatives):
        value = row.get(c.column)
        if value is None or (c in trigger.alternatives and not _holds(c, value)):
            continue
        shown.append(f"{c.column} {_shown(c.column, value, currency)}")
    return trigger.description + (f" ({', '.join(dict.fromkeys(shown))})" if shown else "")


_COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
            "!=": operator.ne, "crosses": operator.ge}


def _holds(c: Condition, value: Any) -> bool:
    """One value against a condition, as :func:`matching` reads a column (a missing value holds nothing)."""
    if value is None:
        return False
    if c.op in ("is_true", "is_false"):
        return bool(value) is (c.op == "is_true")
    if c.op == "in":
        assert isinstance(c.value, tuple)
        return str(value) in {str(v) for v in c.value} if isinstance(value, str) else value in c.value
    target: Any = c.value
    if isinstance(value, str):
        target = str(target)
    elif isinstance(value, Decimal) and isinstance(target, float):
        value = float(value)
    try:
        return bool(_COMPARE[c.op](value, target))
    except TypeError:
        return False


# -- dates -------------------------------------------------------------------------------------------------------
def _due(start: dt.date, days: int, business: bool) -> dt.date:
    if not business:
        return start + dt.timedelta(days=days)
    due: dt.date = np.busday_offset(np.datetime64(start), days, roll="forward").astype(dt.date)
    return due


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


# -- the plan ----------------------------------------------------------------------------------------------------
def _successes(actions: Sequence[PlayAction], movements: pa.Table | None, today: dt.date) -> dict[str, bool]:
    """For each live action with a success criterion: was its success seen up to ``today``?"""
    measured = [a for a in actions if a.success_window_days and a.status in OPEN_STATUSES]
    if not measured or movements is None or movements.num_rows == 0:
        return {}
    assignments = pa.table({
        "play": pa.array([a.action_id for a in measured], pa.string()),
        "account_id": pa.array([a.account_id for a in measured], pa.string()),
        "group": pa.array(["treated"] * len(measured), pa.string()),
        "started_on": pa.array([a.started_on for a in measured], pa.date32()),
        "window_days": pa.array([a.success_window_days for a in measured], pa.int64()),
        "success_source": pa.array([None if a.success_source in (None, "any") else a.success_source
                                    for a in measured], pa.string()),
    })
    found = uplift.outcomes(assignments, movements, as_of=today)
    return dict(zip(found["play"].to_pylist(), found["converted"].to_pylist(), strict=True))


def plan_plays(evaluated: pa.Table, actions: Sequence[PlayAction], config: PlaysConfig, *, today: dt.date,
               run_id: str, movements: pa.Table | None = None, currency: str = "USD",
               new_id: Any = None) -> PlaysPlan:
    """Plan one plays run over a run's accounts (:func:`evaluation_table`) given the stored actions.

    Parameters
    ----------
    evaluated
        The run's accounts with the plays' columns.
    actions
        Every action the workspace holds (live and ended: cooldowns read the ended ones).
    today
        The run's as-of date.
    movements
        The run's movements, to see each play's success.
    new_id
        A function returning a fresh action id (the workspace's); by default ids derive from the run, the
        account and the key, so a plan is reproducible.
    """
    plan = PlaysPlan(today=today, run_id=run_id)
    rows = {r["account_id"]: r for r in evaluated.to_pylist()}
    latest: dict[tuple[str, str, str], PlayAction] = {}
    for a in sorted(actions, key=lambda a: (a.started_on, a.action_id)):
        latest[(a.account_id, a.play, a.reason_key)] = a
    successes = _successes(actions, movements, today)
    touched: dict[str, PlayAction] = {}  # live actions after this plan's changes, by id
    period = f"{today:%Y-%m}"
    opened: dict[tuple[str, str], str] = {}  # (account, play) → the trigger that opened an action in this plan

    def change(action: PlayAction, event: str, detail: str, **fields: Any) -> PlayAction:
        plan.changes.append(ActionChange(action.action_id, fields, event, detail))
        updated = replace(action, **fields)
        touched[action.action_id] = updated
        return updated

    account_ids = np.asarray(evaluated["account_id"].to_pylist(), dtype=object)
    for trigger_key, trigger in config.active_triggers().items():
        play = config.plays[trigger.play]
        matched_ids = set(account_ids[matching(evaluated, trigger)].tolist())
        plan.matched[trigger_key] = len(matched_ids)
        reason_key = f"{trigger_key}:{period}" if trigger.once_per_period else trigger_key
        for account_id in sorted(matched_ids):
            row = rows[account_id]
            existing = latest.get((account_id, trigger.play, reason_key))
            if existing is not None and existing.status in OPEN_STATUSES:
                current = touched.get(existing.action_id, existing)
                if current.status == "snoozed" and current.snoozed_until is not None \
                        and today >= current.snoozed_until:
                    change(current, "reopened", f"snoozed until {current.snoozed_until}; the trigger still holds",
                           status="open", snoozed_until=None, snooze_reason=None, last_run_id=run_id)
                elif current.last_run_id != run_id:
                    change(current, "updated", _reason(trigger, row, currency), last_run_id=run_id)
                continue
            if existing is not None:
                if trigger.once_per_period:
                    continue  # fired in this period already
                ended = existing.ended_on or existing.started_on
                if today < ended + dt.timedelta(days=trigger.cooldown_days):
                    continue
            action = _new_action(account_id, row, trigger_key, trigger, play, config, reason_key, today=today,
                                 run_id=run_id, currency=currency, new_id=new_id)
            first = opened.get((account_id, trigger.play))
            if first is None:
                opened[(account_id, trigger.play)] = trigger_key
                plan.created.append(action)
            elif trigger.once_per_period:
                # one new action per play and account in a run (the trigger listed first: the highest threshold);
                # the others are kept closed, so they do not fire later in the period
                plan.created.append(replace(action, status="closed", outcome=f"{COVERED} {first}", ended_on=today))
        # actions of this trigger whose conditions cleared, or whose period ended
        for a in actions:
            if a.trigger != trigger_key or a.status not in OPEN_STATUSES:
                continue
            current = touched.get(a.action_id, a)
            stale_period = trigger.once_per_period and a.reason_key != reason_key
            if stale_period:
                change(current, "closed", f"the period {a.reason_key.rpartition(':')[2]} ended", status="closed",
                       outcome=PERIOD_ENDED, ended_on=today, last_run_id=run_id)
            elif a.account_id not in matched_ids and trigger.close_when_cleared:
                change(current, "closed", "its trigger no longer holds", status="closed", outcome="cleared",
                       ended_on=today, last_run_id=run_id)

    live = [touched.get(a.action_id, a) for a in actions if a.status in OPEN_STATUSES]
    live = [a for a in live if a.status in OPEN_STATUSES] + [a for a in plan.created if a.status in OPEN_STATUSES]
    for action in live:
        definition = config.plays.get(action.play)
        if definition is None:
            continue  # a play removed from the settings: its actions wait for a person
        succeeded = successes.get(action.action_id, False)
        if action.status == "open":
            action = _run_steps(plan, action, definition, rows.get(action.account_id), config, today=today,
                                succeeded=succeeded, currency=currency, change=change)
        window_over = action.success_window_days is not None and \
            today > action.started_on + dt.timedelta(days=action.success_window_days)
        if succeeded:
            change(action, "closed", f"success: {action.success_source or 'any'} expansion seen", status="closed",
                   outcome="success", ended_on=today, last_run_id=run_id)
        elif window_over and (action.status == "holdout" or action.next_step >= len(definition.steps)):
            change(action, "closed", f"no {action.success_source or ''} expansion within "
                   f"{action.success_window_days} days".replace("  ", " "), status="closed",
                   outcome="no success", ended_on=today, last_run_id=run_id)
    # a new action is stored as this plan leaves it; its steps are recorded by ``plan.steps``
    plan.created = [touched.get(a.action_id, a) for a in plan.created]
    created_ids = {a.action_id for a in plan.created}
    plan.changes = [c for c in plan.changes if c.action_id not in created_ids]
    plan.updated = [touched[i] for i in dict.fromkeys(c.action_id for c in plan.changes)]
    return plan


def _new_action(account_id: str, row: Mapping[str, Any], trigger_key: str, trigger: Trigger, play: PlayDefinition,
                config: PlaysConfig, reason_key: str, *, today: dt.date, run_id: str, currency: str,
                new_id: Any) -> PlayAction:
    held_out = play.holdout > 0 and uplift.stable_holdout(trigger.play, account_id, play.holdout)
    lever = play.lever
    if trigger.play == "worklist":
        lever = row.get("recommended_lever") or ("retain" if row.get("worklist_motion") == "retain" else None)
    action_id = new_id() if new_id is not None else \
        f"act-{_key(run_id, today.isoformat(), account_id, trigger.play, reason_key)[:16]}"
    return PlayAction(
        action_id=action_id, account_id=account_id, account_name=row.get("name"), play=trigger.play,
        trigger=trigger_key, reason_key=reason_key, reason=_reason(trigger, row, currency), lever=lever,
        status="holdout" if held_out else "open", held_out=held_out, owner=_person(config, play.owner, row),
        started_on=today,
        due_on=_due(today, play.due_days, play.business_days), next_step=0,
        success_source=play.success.source if play.success else None,
        success_window_days=play.success.within_days if play.success else None,
        first_run_id=run_id, last_run_id=run_id)


def _person(config: PlaysConfig, role: str, row: Mapping[str, Any] | None) -> str:
    """Who a role is for an account: its column's value (``unassigned`` when empty), or the role's fixed name."""
    found = config.roles[role]
    if found.name is not None:
        return found.name
    value = (row or {}).get(found.column or "")
    return str(value) if value not in (None, "") else "unassigned"


def _run_steps(plan: PlaysPlan, action: PlayAction, play: PlayDefinition, row: Mapping[str, Any] | None,
               config: PlaysConfig, *, today: dt.date, succeeded: bool, currency: str, change: Any) -> PlayAction:
    """Run the action's steps whose day has come, in order; queue their messages."""
    index = action.next_step
    elapsed = (today - action.started_on).days
    while index < len(play.steps) and play.steps[index].day <= elapsed:
        step = play.steps[index]
        plan.steps.append(_step(plan, action, index, step, row, config, succeeded=succeeded, currency=currency))
        index += 1
    if index != action.next_step:
        return change(action, "step", f"steps {action.next_step + 1} to {index} of {len(play.steps)}",
                      next_step=index, last_run_id=plan.run_id)
    return action


def _step(plan: PlaysPlan, action: PlayAction, index: int, step: Step, row: Mapping[str, Any] | None,
          config: PlaysConfig, *, succeeded: bool, currency: str) -> StepRun:
    recipient = _person(config, step.to, row)
    if succeeded and step.unless_success:
        return StepRun(action.action_id, index, step.to, recipient, step.subject, "", "skipped",
                       "the play's success was already seen")
    if row is None:
        return StepRun(action.action_id, index, step.to, recipient, step.subject, "", "skipped",
                       "the account is not in this run")
    values = {**row, "play": config.plays[action.play].description, "reason": action.reason,
              "owner_name": action.owner, "due_on": action.due_on, "started_on": action.started_on,
              "currency": currency}
    subject, empty_s = render(step.subject, values, currency=currency)
    message, empty_m = render(step.message, values, currency=currency)
    if subject is None or message is None:
        empty = ", ".join(f"{{{n}}}" for n in dict.fromkeys(empty_s + empty_m))
        return StepRun(action.action_id, index, step.to, recipient, step.subject, "", "skipped",
                       f"{empty} is empty for this account: not sent with a blank")
    routes = list(config.routes_for(step.to))
    payload = {"action_id": action.action_id, "account_id": action.account_id, "account_name": action.account_name,
               "play": action.play, "step": index + 1, "to": step.to, "recipient": recipient,
               "owner": action.owner, "due_on": action.due_on.isoformat(), "reason": action.reason,
               "lever": action.lever}
    for n, route in enumerate(routes):
        target = route.webhook if route.webhook is not None else recipient
        plan.messages.append(Message(
            idempotency_key=_key(action.action_id, str(index), str(n), target),
            channel="webhook" if route.webhook is not None else "email", target=target, subject=subject,
            text=message, payload=payload))
    return StepRun(action.action_id, index, step.to, recipient, subject, message, "sent" if routes else "task",
                   "" if routes else f"no route delivers to {step.to!r}: kept as a task")
