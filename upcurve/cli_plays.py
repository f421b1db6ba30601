"""``upcurve plays …``: fire the trigger rules and advance the playbooks, list and work the actions, deliver the
outbox, export tasks for a CRM. Thin: parse, call a use case or the workspace, render."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tempfile
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from upcurve.cli_support import (
    EXIT_FAILED,
    RunOption,
    WorkspaceOption,
    _config,
    _counting,
    _currency,
    _fail,
    _store,
    _usecases,
    _with_progress,
    console,
    err,
)
from upcurve.config import Settings
from upcurve.errors import UpcurveError
from upcurve.present.safe import literal, safe_text, spreadsheet_cell

__all__ = ["levers", "plays_app"]

def _actions() -> ModuleType:
    """The workspace's actions, imported when a command reads them: the command line starts without the engine."""
    from upcurve.workspace import actions

    return actions


plays_app = typer.Typer(help="Trigger rules and playbooks: owned, dated actions, delivered where teams work.",
                        no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML settings file (its `plays:` section).")]


class ListFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class ExportFormat(StrEnum):
    csv = "csv"
    json = "json"


def _add_columns(table: Table, names: list[str], *, numeric: int) -> None:
    """Add columns to a table; the last ``numeric`` ones hold numbers and are aligned right."""
    for i, name in enumerate(names):
        table.add_column(name, justify="right" if i >= len(names) - numeric else "left")


def _plan_table(plan: Any, config: Any) -> Table:
    table = Table(title=safe_text(f"Plays on the run of {plan.today} ({plan.run_id})", "table.title"))
    _add_columns(table, ["trigger", "play", "matched", "opened", "held out"], numeric=3)
    for key, matched in plan.matched.items():
        created = [a for a in plan.created if a.trigger == key]
        table.add_row(safe_text(key), safe_text(config.plays.triggers[key].play), f"{matched:,}",
                      f"{sum(a.status == 'open' for a in created):,}",
                      f"{sum(a.status == 'holdout' for a in created):,}")
    return table


@plays_app.command("run")
def run(
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show who would get what; keep and send nothing.")] = False,
    send: Annotated[bool, typer.Option("--deliver/--no-deliver", help="Send the queued messages now.")] = True,
    top: Annotated[int, typer.Option(min=0, help="How many new actions to list.")] = 20,
) -> None:
    """Fire the trigger rules on a run (the latest by default), advance the playbooks, queue their messages and
    deliver them."""
    settings = Settings()
    cfg = _config(config, settings)
    store = _store(workspace, settings)
    plan = _with_progress(lambda say: _usecases().plays_run(store, run_id=run_id, config=cfg, dry_run=dry_run))
    console.print(_plan_table(plan, cfg))
    counts = plan.counts()
    console.print(safe_text(", ".join(f"{v:,} {k}" for k, v in counts.items())))
    if plan.created and top:
        listing = Table(title=safe_text("New actions" + (" (dry run: nothing kept)" if dry_run else ""),
                                        "table.title"))
        for name in ("account", "play", "owner", "due", "reason"):
            listing.add_column(name)
        for a in [a for a in plan.created if a.status == "open"][:top]:
            listing.add_row(safe_text(f"{a.account_name or a.account_id}\n{a.account_id}", multiline=True),
                            safe_text(a.play), safe_text(a.owner), safe_text(a.due_on.isoformat()),
                            safe_text(a.reason))
        console.print(listing)
    if dry_run:
        shown = plan.messages[:top]
        for m in shown:
            console.print(Text.assemble(("would send:", "cyan"), " ",
                                        literal(console, f"{m.channel} → {m.target}: {m.subject}")))
        console.print(literal(console, f"Dry run: {len(plan.messages):,} message(s) would be queued; nothing was "
                                       "kept or sent."))
        return
    if send:
        _deliver(store, cfg, retry_failed=False)


def _deliver(store: Any, cfg: Any, *, retry_failed: bool) -> None:
    try:
        with _counting() as bar:
            task = bar.add_task("delivering", total=None)
            result = _usecases().plays_deliver(store, config=cfg, retry_failed=retry_failed,
                                               progress=lambda done, total: bar.update(task, completed=done,
                                                                                       total=total))
    except UpcurveError as exc:
        raise _fail(exc) from None
    if result.sent or result.failed:
        console.print(literal(console, f"Delivered {result.sent:,} message(s); {result.failed:,} failed and will "
                                       "be retried (`upcurve plays outbox --status failed`)."))
    for line in result.errors[:5]:
        err.print(Text.assemble(("failed:", "yellow"), " ", literal(err, line)))


@plays_app.command("deliver")
def deliver(
    workspace: WorkspaceOption = None,
    config: ConfigOption = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try every failed message again now.")] = False,
) -> None:
    """Send the outbox's due messages: retried with backoff on failure, never sent twice."""
    settings = Settings()
    _deliver(_store(workspace, settings), _config(config, settings), retry_failed=retry_failed)


@plays_app.command("preview")
def preview(
    trigger: Annotated[str, typer.Argument(help="A trigger's key (`upcurve plays triggers` lists them).")],
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    config: ConfigOption = None,
    top: Annotated[int, typer.Option(min=1, help="How many accounts to show.")] = 25,
) -> None:
    """The accounts a trigger matches in a run, with the values it reads: its audience, before anything fires."""
    settings = Settings()
    cfg = _config(config, settings)
    store = _store(workspace, settings)
    audience = _with_progress(lambda say: _usecases().plays_audience(store, trigger, run_id=run_id, config=cfg))
    table = Table(title=safe_text(f"{trigger}: {audience.num_rows:,} account(s) match", "table.title"))
    for name in audience.column_names:
        table.add_column(safe_text(name))
    for row in audience.slice(0, top).to_pylist():
        table.add_row(*(safe_text("" if v is None else v) for v in row.values()))
    console.print(table)


@plays_app.command("triggers")
def triggers(config: ConfigOption = None) -> None:
    """The trigger rules in force (the defaults with the settings file's changes) and the play each starts."""
    cfg = _config(config, Settings())
    table = Table(title="Trigger rules")
    for name in ("trigger", "when", "play", "owner", "due", "holdout", "on"):
        table.add_column(name)
    for key, t in cfg.plays.triggers.items():
        play = cfg.plays.plays[t.play]
        when = list(t.when) + ([" or ".join(t.when_any)] if t.when_any else [])
        table.add_row(safe_text(key), safe_text("\n".join(when), multiline=True), safe_text(t.play),
                      safe_text(play.owner), f"{play.due_days} d", f"{play.holdout:.0%}", "yes" if t.enabled else "no")
    console.print(table)


_LIST_COLUMNS = ("action_id", "account_id", "account_name", "play", "status", "owner", "started_on", "due_on",
                 "reason", "outcome", "snoozed_until")


@plays_app.command("list")
def list_(
    workspace: WorkspaceOption = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner's actions.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses (open, snoozed, holdout, done, "
                                                          "dismissed, closed); default open and snoozed.")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account's actions.")] = None,
    play: Annotated[str | None, typer.Option(help="Only this play's actions.")] = None,
    fmt: Annotated[ListFormat, typer.Option("--format", help="table, csv or json.")] = ListFormat.table,
) -> None:
    """The actions, filtered: who owns what, due when, and why."""
    settings = Settings()
    store = _store(workspace, settings)
    statuses = status or ["open", "snoozed"]
    try:
        found = _actions().list_actions(store, status=statuses, owner=owner, account_id=account, play=play)
    except UpcurveError as exc:
        raise _fail(exc) from None
    rows = [{c: getattr(a, c) for c in _LIST_COLUMNS} for a in sorted(found, key=lambda a: (a.due_on, a.action_id))]
    if fmt is ListFormat.json:
        print(json.dumps(rows, default=str, indent=2))
        return
    if fmt is ListFormat.csv:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(_LIST_COLUMNS)
        for row in rows:
            writer.writerow([spreadsheet_cell(v) for v in row.values()])
        print(out.getvalue(), end="")
        return
    table = Table(title=safe_text(f"{len(rows):,} action(s): {', '.join(statuses)}", "table.title"))
    table.add_column("action", no_wrap=True)  # the id people type to work it: never cut
    for name in ("account", "play", "owner", "due", "status", "reason"):
        table.add_column(name)
    for row in rows:
        table.add_row(safe_text(row["action_id"]), safe_text(row["account_name"] or row["account_id"]),
                      safe_text(row["play"]), safe_text(row["owner"]), safe_text(row["due_on"]),
                      safe_text(row["status"] + (f" until {row['snoozed_until']}" if row["snoozed_until"] else "")),
                      safe_text(row["reason"]))
    console.print(table)


@plays_app.command("show")
def show(action_id: Annotated[str, typer.Argument(help="An action id (a unique start will do).")],
         workspace: WorkspaceOption = None) -> None:
    """One action and its whole history: created, steps and their messages, status changes, who and why."""
    store = _store(workspace, Settings())
    try:
        action = _actions().find_action(store, action_id)
        events = _actions().list_events(store, action.action_id)
    except UpcurveError as exc:
        raise _fail(exc) from None
    for name, value in vars(action).items():
        console.print(Text.assemble((f"{name}: ", "bold"), literal(console, "" if value is None else value)))
    table = Table(title="History")
    for name in ("when", "run", "what", "who", "detail"):
        table.add_column(name)
    for e in events:
        table.add_row(safe_text(f"{e.at:%Y-%m-%d %H:%M}"), safe_text(e.run_id or ""), safe_text(e.kind),
                      safe_text(e.actor), safe_text(e.detail or "", multiline=True))
    console.print(table)


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or "someone"


def _set(action_id: str, status: str, workspace: str | None, *, actor: str | None, note: str | None = None,
         until: dt.date | None = None) -> None:
    store = _store(workspace, Settings())
    try:
        action = _actions().set_status(store, action_id, status, actor=_actor(actor), note=note, until=until)
    except UpcurveError as exc:
        raise _fail(exc) from None
    console.print(literal(console, f"{action.action_id} ({action.account_name or action.account_id}, "
                                   f"{action.play}): {action.status}"))


ActionArg = Annotated[str, typer.Argument(help="An action id (a unique start will do).")]
ActorOption = Annotated[str | None, typer.Option("--by", help="Who did it (default: $USER).")]


@plays_app.command("done")
def done(action_id: ActionArg, workspace: WorkspaceOption = None, note: Annotated[str | None, typer.Option(
        help="What was done.")] = None, by: ActorOption = None) -> None:
    """Mark an action done."""
    _set(action_id, "done", workspace, actor=by, note=note)


@plays_app.command("dismiss")
def dismiss(action_id: ActionArg, reason: Annotated[str, typer.Option(help="Why it is not worth doing.")],
            workspace: WorkspaceOption = None, by: ActorOption = None) -> None:
    """Dismiss an action, with the reason."""
    _set(action_id, "dismissed", workspace, actor=by, note=reason)


@plays_app.command("snooze")
def snooze(action_id: ActionArg,
           until: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="Quiet until this day.")],
           reason: Annotated[str, typer.Option(help="Why it waits.")],
           workspace: WorkspaceOption = None, by: ActorOption = None) -> None:
    """Snooze an action until a day: its trigger stays quiet until then, then it opens again if it still holds."""
    _set(action_id, "snoozed", workspace, actor=by, note=reason, until=until.date())


@plays_app.command("reopen")
def reopen(action_id: ActionArg, workspace: WorkspaceOption = None, by: ActorOption = None) -> None:
    """Open an action again (after done, dismissed or snoozed)."""
    _set(action_id, "open", workspace, actor=by)


@plays_app.command("outbox")
def outbox(
    workspace: WorkspaceOption = None,
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses: pending, sending, sent, "
                                                          "failed.")] = None,
    top: Annotated[int, typer.Option(min=1, help="How many messages to show.")] = 50,
) -> None:
    """The outbox: every message, its status, attempts and last error."""
    store = _store(workspace, Settings())
    found = _actions().list_outbox(store, status=status)
    table = Table(title=safe_text(f"{len(found):,} message(s)", "table.title"))
    for name in ("message", "channel", "to", "subject", "status", "attempts", "next try", "last error"):
        table.add_column(name)
    for m in found[-top:]:
        table.add_row(safe_text(m.message_id), safe_text(m.channel), safe_text(m.target), safe_text(m.subject),
                      safe_text(m.status), str(m.attempts),
                      safe_text(f"{m.next_attempt_at:%Y-%m-%d %H:%M}" if m.next_attempt_at else ""),
                      safe_text(m.last_error or ""))
    console.print(table)


#: The columns of the task export, named as CRM task imports name them (Salesforce Task, HubSpot tasks).
_TASK_COLUMNS = ("subject", "due_date", "owner", "account_id", "account_name", "status", "priority", "description",
                 "play", "action_id")


@plays_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="The file to write (CSV or JSON).")],
    workspace: WorkspaceOption = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv or json.")] = ExportFormat.csv,
    owner: Annotated[str | None, typer.Option(help="Only this owner's actions.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace the file if it exists.")] = False,
) -> None:
    """The open actions as tasks ready to import into a CRM (Salesforce, HubSpot): subject, due date, owner,
    account, description. Written whole; an existing file is replaced only with --replace."""
    store = _store(workspace, Settings())
    if out.exists() and not replace:
        err.print(Text.assemble(("error:", "red"), " ", literal(err, f"{out} exists; pass --replace to replace it, "
                                                                     "or choose another name")))
        raise typer.Exit(EXIT_FAILED)
    found = _actions().list_actions(store, status=["open"], owner=owner)
    tasks = [{"subject": f"{a.play}: {a.account_name or a.account_id}", "due_date": a.due_on.isoformat(),
              "owner": a.owner, "account_id": a.account_id, "account_name": a.account_name,
              "status": "Not Started", "priority": "High" if a.lever == "retain" else "Normal",
              "description": a.reason, "play": a.play, "action_id": a.action_id}
             for a in sorted(found, key=lambda a: (a.due_on, a.action_id))]
    if fmt is ExportFormat.json:
        text = json.dumps(tasks, indent=2)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(_TASK_COLUMNS)
        for task in tasks:
            writer.writerow([spreadsheet_cell(task[c]) for c in _TASK_COLUMNS])
        text = buffer.getvalue()
    tmp: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{out.name}.", delete=False,
                                         encoding="utf-8", newline="") as handle:
            tmp = Path(handle.name)
            handle.write(text)
        os.replace(tmp, out)  # whole or not at all
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        err.print(Text.assemble(("error:", "red"), " ", literal(err, f"cannot write {out}: {exc.strerror or exc}")))
        raise typer.Exit(EXIT_FAILED) from None
    console.print(literal(console, f"Wrote {len(tasks):,} task(s) to {out}"))


def _share_of(rate: float | None, n: int) -> str:
    return f"{n:,}" if rate is None else f"{rate:.1%} of {n:,}"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.1f}"


@plays_app.command("uplift")
def measured_uplift(
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    confidence: Annotated[float, typer.Option(min=0.5, max=0.999, help="The intervals' confidence.")] = 0.95,
) -> None:
    """What each play really moved: its treated accounts against its holdout (conversion and expansion MRR within
    its success window, with intervals), for upcurve's plays and the plays logged in `activities`."""
    store = _store(workspace, Settings())
    found = _with_progress(lambda say: _usecases().plays_measure(store, run_id=run_id, confidence=confidence))
    if not found:
        console.print(literal(console, "No play to measure yet: plays are measured once their success windows have "
                                       "passed (`upcurve plays run` on later runs), or from `activities` logged with "
                                       "a `holdout` outcome."))
        return
    table = Table(title=f"Measured uplift ({confidence:.0%} intervals)")
    _add_columns(table, ["play", "verdict", "treated: converted", "held out: converted", "difference"], numeric=3)
    for u in found:
        difference = "" if u.difference is None else f"{_percent(u.difference)} points"
        if u.difference_low is not None:
            difference += f"\n({_percent(u.difference_low)} to {_percent(u.difference_high)})"
        table.add_row(safe_text(u.play), safe_text(u.verdict), _share_of(u.rate_treated, u.n_treated),
                      _share_of(u.rate_holdout, u.n_holdout), safe_text(difference, multiline=True))
    console.print(table)
    for u in found:
        console.print(literal(console, u.summary))


def levers(
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    months: Annotated[int, typer.Option(min=1, max=120, help="The months to measure, up to the run's.")] = 12,
) -> None:
    """Levers ranked by yield, from the company's own data: the expansion MRR each produced, the accounts, and the
    effort of the plays that pulled it (actions, successes, revenue per action)."""
    store = _store(workspace, Settings())
    record = _with_progress(lambda say: store.find_run(run_id))
    found = _with_progress(lambda say: _usecases().levers(store, run_id=record.run_id, months=months))
    currency = _currency(record)
    table = Table(title=safe_text(f"Levers by yield, {months} months to {record.as_of} ({currency})", "table.title"))
    _add_columns(table, ["lever", "expansion MRR", "share", "accounts", "actions", "successes",
                         "actions per success", "MRR per action"], numeric=7)
    for r in found.to_pylist():
        table.add_row(safe_text(r["lever"]), f"{r['expansion_mrr']:,.2f}",
                      "" if r["share"] is None else f"{r['share']:.0%}", f"{r['accounts']:,}",
                      "" if r["actions"] is None else f"{r['actions']:,}",
                      "" if r["successes"] is None else f"{r['successes']:,}",
                      "" if r["actions_per_success"] is None else f"{r['actions_per_success']:.1f}",
                      "" if r["revenue_per_action"] is None else f"{r['revenue_per_action']:,.2f}")
    console.print(table)


def _stage(row: dict[str, Any], name: str) -> str:
    """A funnel stage's accounts, with the share of the stage before that reached it."""
    share = row.get(f"{name}_step_rate")
    return f"{row[name]:,}" + (f" ({share:.0%})" if share is not None else "")


@plays_app.command("funnel")
def funnel(workspace: WorkspaceOption = None, run_id: RunOption = None) -> None:
    """The expansion funnel of a run: accounts from an upgrade prompt to a click, a plan page, an upgrade and the
    expansion MRR it realised, by prompt type and placement (the events are named under `plays.funnel`)."""
    store = _store(workspace, Settings())
    record = _with_progress(lambda say: store.find_run(run_id))
    rows = _with_progress(lambda say: store.table("funnel", record.run_id)).to_pylist()
    if not rows:
        console.print(literal(console, "No funnel events in this run's period: name the events of each stage under "
                                       "`plays.funnel` in the settings file (docs/plays.md)."))
        return
    table = Table(title=safe_text(f"Expansion funnel to {record.as_of} ({_currency(record)})", "table.title"))
    _add_columns(table, ["prompt", "placement", "aware", "clicked", "intent", "upgraded", "realised",
                         "realised MRR"], numeric=6)
    for r in rows:
        table.add_row(safe_text("all" if r["is_total"] else r["prompt_type"] or "(none)"),
                      safe_text("" if r["is_total"] else r["placement"] or "(none)"), _stage(r, "awareness"),
                      *(_stage(r, name) for name in ("consideration", "intent", "conversion", "realised")),
                      f"{r['realised_mrr']:,.2f}")
    console.print(table)
    total = next((r for r in rows if r["is_total"]), None)
    if total and total.get("converted_without_prompt"):
        console.print(literal(console, f"{total['converted_without_prompt']:,} account(s) upgraded without a prompt "
                                       "in the period; they are not in the funnel."))
