"""The plays' state in the workspace: actions, their history, and the outbox of messages to deliver.

A plays run reads the actions and applies its plan while it holds the workspace's writer lock, in one transaction:
two ``upcurve plays run`` at once take turns, and the second sees what the first created, so it creates no
duplicate. People change an action's status (done, dismissed, snoozed) through :func:`set_status`; every change is
an event in ``action_events`` with who made it and why.

The outbox delivers **at least once, and once in practice**: a message is queued under an idempotency key that is
unique in the workspace (a plan queued twice queues it once); a sender claims a batch of messages (so two senders
never send the same one), sends them without holding the workspace, then records each result. A message whose
send fails is retried later with backoff, and stays visible as ``failed`` with its last error after its last
attempt. Only a sender killed between sending and recording leaves a message that is sent again once its claim
expires; it carries the same idempotency key (``Idempotency-Key`` header, email ``Message-ID``), so the receiver
can drop the copy.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from upcurve.errors import UpcurveError
from upcurve.plays.delivery import Message
from upcurve.plays.engine import PlayAction, PlaysPlan
from upcurve.workspace._database import Connection, holder_name
from upcurve.workspace.store import Store

__all__ = ["ActionEvent", "ActionNotFound", "OutboxMessage", "apply_plays", "claim_messages", "find_action",
           "list_actions", "list_events", "list_outbox", "record_delivery", "retry_failed", "set_status"]

_ACTION_FIELDS = [f.name for f in fields(PlayAction)]
#: How long a sender's claim on a message lasts: after it, a message claimed by a sender that died is sent again.
CLAIM_MINUTES = 15


class ActionNotFound(UpcurveError, LookupError):
    """No action, or more than one, matches the id given."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _column(name: str) -> str:
    return "trigger_key" if name == "trigger" else name


def _action(row: dict[str, Any]) -> PlayAction:
    values = {name: row[_column(name)] for name in _ACTION_FIELDS}
    return PlayAction(**values)


def _read_actions(con: Connection, where: str = "", params: Sequence[Any] = ()) -> list[PlayAction]:
    names, rows = con.rows(f"SELECT * FROM actions {where} ORDER BY started_on, action_id", params)
    return [_action(dict(zip(names, row, strict=True))) for row in rows]


def _event_id(at: dt.datetime, n: int = 0, salt: str = "") -> str:
    """An event id that sorts in the order events happened (events written together share a timestamp; ``salt``,
    random per write, keeps two processes writing at the same microsecond apart)."""
    return f"evt-{at:%Y%m%d%H%M%S%f}-{n:07d}-{salt or secrets.token_hex(4)}"


def _event(con: Connection, action_id: str, kind: str, actor: str, detail: str, run_id: str | None,
           at: dt.datetime) -> None:
    con.execute("INSERT INTO action_events VALUES (?, ?, ?, ?, ?, ?, ?)",
                [_event_id(at), action_id, at, run_id, kind, actor, detail])


def apply_plays(store: Store, plan_for: Callable[[list[PlayAction]], PlaysPlan], *, dry_run: bool = False
                ) -> PlaysPlan:
    """Plan a plays run from the actions the workspace holds, and apply the plan in one transaction (unless
    ``dry_run``), all while holding the workspace: a second plays run waits, then plans from what this one did."""
    with store._writing() as con:
        plan = plan_for(_read_actions(con))
        if dry_run:
            return plan
        now, salt = _now(), secrets.token_hex(4)
        created: list[list[Any]] = []
        events: list[list[Any]] = []
        messages: list[list[Any]] = []

        def event(action_id: str, kind: str, detail: str) -> None:
            events.append([_event_id(now, len(events), salt), action_id, now, plan.run_id, kind, "upcurve", detail])

        for action in plan.created:
            created.append([*(getattr(action, name) for name in _ACTION_FIELDS), now, now])
            detail = "held out (measured against, sends nothing)" if action.status == "holdout" else action.reason
            event(action.action_id, "created", detail)
            if action.status == "closed":  # created closed: covered by another trigger of the same play
                event(action.action_id, "closed", action.outcome or "")
        for step in plan.steps:
            detail = json.dumps({"step": step.step + 1, "to": step.to, "recipient": step.recipient,
                                 "status": step.status, "subject": step.subject, "message": step.message,
                                 "note": step.detail})
            event(step.action_id, "step", detail)
        with con.transaction():
            queued = {r[0] for r in con.rows("SELECT idempotency_key FROM outbox")[1]}
            for message in plan.messages:
                if message.idempotency_key in queued:
                    continue  # queued by an earlier plan: never twice
                queued.add(message.idempotency_key)
                messages.append([f"msg-{secrets.token_hex(8)}", message.idempotency_key,
                                 message.payload.get("action_id"), message.channel, message.target, message.subject,
                                 message.text, json.dumps(dict(message.payload), default=str), "pending", 0, now,
                                 now])
            columns = [_column(n) for n in _ACTION_FIELDS]
            if plan.updated:
                # each changed action's final state replaces its row, through a temporary table: one DELETE and
                # one INSERT (DuckDB updates many columns of rows in random order very slowly: 64 s for 50,000)
                con.execute("CREATE TEMP TABLE _updated AS SELECT * FROM actions WHERE false")
                con.insert_rows("_updated", [*columns, "created_at", "updated_at"],
                                [[*(getattr(a, n) for n in _ACTION_FIELDS), now, now] for a in plan.updated])
                con.execute("UPDATE _updated SET created_at = a.created_at FROM actions a "
                            "WHERE _updated.action_id = a.action_id")
                con.execute("DELETE FROM actions WHERE action_id IN (SELECT action_id FROM _updated)")
                con.execute("INSERT INTO actions SELECT * FROM _updated")
                con.execute("DROP TABLE _updated")
            con.insert_rows("actions", [*columns, "created_at", "updated_at"], created)
            for change in plan.changes:
                event(change.action_id, change.event, change.detail)
            con.insert_rows("action_events", ["event_id", "action_id", "happened_at", "run_id", "kind", "actor",
                                              "detail"], events)
            con.insert_rows("outbox", ["message_id", "idempotency_key", "action_id", "channel", "target", "subject",
                                       "body", "payload", "status", "attempts", "next_attempt_at", "created_at"],
                            messages)
    return plan


def list_actions(store: Store, *, status: Sequence[str] | None = None, owner: str | None = None,
                 account_id: str | None = None, play: str | None = None) -> list[PlayAction]:
    """The actions matching every filter given, oldest first."""
    where, params = [], []
    if status:
        where.append(f"status IN ({', '.join('?' * len(status))})")
        params += list(status)
    for column, value in (("owner", owner), ("account_id", account_id), ("play", play)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    with store._reading() as con:
        if not con.columns("actions"):
            return []
        return _read_actions(con, ("WHERE " + " AND ".join(where)) if where else "", params)


def find_action(store: Store, action_id: str) -> PlayAction:
    """An action by id (a unique prefix will do)."""
    prefix = action_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with store._reading() as con:  # only the actions the prefix can match are read, not every action
        found = [a for a in _read_actions(con, "WHERE action_id LIKE ? ESCAPE '\\'", [prefix])
                 if a.action_id.startswith(action_id)]
    exact = [a for a in found if a.action_id == action_id]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    raise ActionNotFound(f"{'no' if not found else 'more than one'} action matches {action_id!r}; "
                         "`upcurve plays list` shows them")


@dataclass(frozen=True)
class ActionEvent:
    """One line of an action's history."""

    action_id: str
    at: dt.datetime
    run_id: str | None
    kind: str
    actor: str
    detail: str | None


def list_events(store: Store, action_id: str | Sequence[str] | None = None) -> list[ActionEvent]:
    """An action's history (or several actions', or every action's), oldest first."""
    sql, params = "SELECT action_id, happened_at, run_id, kind, actor, detail FROM action_events", []
    if action_id is not None:
        params = [action_id] if isinstance(action_id, str) else list(action_id)
        if not params:
            return []
        sql += f" WHERE action_id IN ({', '.join('?' * len(params))})"
    with store._reading() as con:
        _, rows = con.rows(sql + " ORDER BY happened_at, event_id", params)
    return [ActionEvent(*row) for row in rows]


def set_status(store: Store, action_id: str, status: str, *, actor: str, note: str | None = None,
               until: dt.date | None = None, today: dt.date | None = None) -> PlayAction:
    """A person marks an action ``done``, ``dismissed`` or ``snoozed`` (until a date, with a reason), or opens it
    again (``open``). Every change is an event with who made it and why."""
    allowed = ("done", "dismissed", "snoozed", "open")
    if status not in allowed:
        raise UpcurveError(f"an action can be marked {', '.join(allowed)}, not {status!r}")
    if status == "snoozed" and (until is None or not note):
        raise UpcurveError("a snooze needs a date (--until YYYY-MM-DD) and a reason (--reason)")
    action = find_action(store, action_id)
    if action.held_out:
        raise UpcurveError(f"action {action.action_id} is in the play's holdout: it is measured against, and "
                           "nobody works it")
    today = today or dt.date.today()
    if status == "snoozed" and until is not None and until <= today:
        raise UpcurveError(f"snooze until a date after today ({today}), not {until}")
    changes: dict[str, Any] = {"status": status}
    if status in ("done", "dismissed"):
        changes.update(ended_on=today, outcome=status, snoozed_until=None, snooze_reason=None)
    elif status == "snoozed":
        changes.update(snoozed_until=until, snooze_reason=note)
    else:
        changes.update(ended_on=None, outcome=None, snoozed_until=None, snooze_reason=None)
    detail = note or ""
    if until is not None:
        detail = f"until {until}: {detail}"
    now = _now()
    with store._writing() as con, con.transaction():
        assignments = ", ".join(f"{k} = ?" for k in changes)
        con.execute(f"UPDATE actions SET {assignments}, updated_at = ? WHERE action_id = ?",
                    [*changes.values(), now, action.action_id])
        _event(con, action.action_id, status, actor, detail, None, now)
    return find_action(store, action.action_id)


# -- the outbox ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutboxMessage:
    """A queued message and its delivery state."""

    message_id: str
    idempotency_key: str
    action_id: str | None
    channel: Literal["webhook", "email"]
    target: str
    subject: str
    body: str
    payload: dict[str, Any]
    status: str  # pending, sending, sent, failed
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    receipt: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None

    @property
    def message(self) -> Message:
        return Message(idempotency_key=self.idempotency_key, channel=self.channel,
                       target=self.target, subject=self.subject, text=self.body, payload=self.payload)


_OUTBOX_COLUMNS = ("message_id", "idempotency_key", "action_id", "channel", "target", "subject", "body", "payload",
                   "status", "attempts", "next_attempt_at", "last_error", "receipt", "created_at", "sent_at")


def _outbox(rows: list[tuple[Any, ...]]) -> list[OutboxMessage]:
    out = []
    for row in rows:
        values = dict(zip(_OUTBOX_COLUMNS, row, strict=True))
        values["payload"] = json.loads(values["payload"])
        out.append(OutboxMessage(**values))
    return out


def list_outbox(store: Store, *, status: Sequence[str] | None = None) -> list[OutboxMessage]:
    """The outbox (with the statuses given), oldest first."""
    sql, params = f"SELECT {', '.join(_OUTBOX_COLUMNS)} FROM outbox", list(status or [])
    if status:
        sql += f" WHERE status IN ({', '.join('?' * len(status))})"
    with store._reading() as con:
        if not con.columns("outbox"):
            return []
        _, rows = con.rows(sql + " ORDER BY created_at, message_id", params)
    return _outbox(rows)


def claim_messages(store: Store, *, now: dt.datetime | None = None, limit: int = 100) -> list[OutboxMessage]:
    """Claim the messages due for sending (pending or failed with a retry due, or claimed by a sender whose claim
    expired): they are this sender's until it records their results."""
    now = now or _now()
    expired = now - dt.timedelta(minutes=CLAIM_MINUTES)
    with store._writing() as con, con.transaction():
        _, rows = con.rows(
            f"SELECT {', '.join(_OUTBOX_COLUMNS)} FROM outbox WHERE "
            "(status IN ('pending', 'failed') AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?) "
            "OR (status = 'sending' AND claimed_at < ?) ORDER BY created_at, message_id LIMIT ?",
            [now, expired, limit])
        claimed = _outbox(rows)
        for m in claimed:
            con.execute("UPDATE outbox SET status = 'sending', claimed_by = ?, claimed_at = ? WHERE message_id = ?",
                        [holder_name(), now, m.message_id])
    return claimed


def record_delivery(store: Store, message_id: str, *, receipt: str | None = None, error: str | None = None,
                    next_attempt_at: dt.datetime | None = None, now: dt.datetime | None = None) -> None:
    """Record a send: ``receipt`` when it was delivered; else ``error`` and when to try again (None: no more
    automatic attempts; it stays ``failed`` until a person retries it)."""
    now = now or _now()
    with store._writing() as con, con.transaction():
        if error is None:
            con.execute("UPDATE outbox SET status = 'sent', attempts = attempts + 1, receipt = ?, sent_at = ?, "
                        "next_attempt_at = NULL, last_error = NULL, claimed_by = NULL, claimed_at = NULL "
                        "WHERE message_id = ?", [receipt, now, message_id])
        else:
            con.execute("UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?, "
                        "next_attempt_at = ?, claimed_by = NULL, claimed_at = NULL WHERE message_id = ?",
                        [error[:2000], next_attempt_at, message_id])


def retry_failed(store: Store, *, now: dt.datetime | None = None) -> int:
    """Make every failed message due again now (after a person fixed what made it fail); how many."""
    now = now or _now()
    with store._writing() as con, con.transaction():
        count = int(con.scalar("SELECT count(*) FROM outbox WHERE status = 'failed'") or 0)
        con.execute("UPDATE outbox SET next_attempt_at = ? WHERE status = 'failed'", [now])
    return count

