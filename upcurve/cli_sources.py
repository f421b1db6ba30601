"""``upcurve sources``, ``upcurve import`` and ``upcurve push``: bring data in from where it lives, and scores back
out to where teams work. Thin: parse, call a use case, render."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from upcurve.cli_support import (
    RunOption,
    WorkspaceOption,
    _rows_table,
    _store,
    _usecases,
    _with_progress,
    console,
)
from upcurve.config import Settings
from upcurve.present.safe import safe_text
from upcurve.present.terminal import render_problems

__all__ = ["import_app", "push_app", "sources_command"]

#: Changes a push shows in its table (all are counted).
_SHOWN_CHANGES = 50

import_app = typer.Typer(help="Import a source's data as a contract folder you can inspect, fix and run.",
                         no_args_is_help=True)


def sources_command() -> None:
    """The sources upcurve reads: folders, databases, and the services ``upcurve import`` connects to."""
    table = Table(title=safe_text("Sources", "table.title"))
    table.add_column("source")
    table.add_column("how")
    table.add_row("folder", "upcurve run DATA: one CSV or Parquet file per contract table (docs/contract.md)")
    table.add_row("database", "upcurve run duckdb:///file.duckdb or postgresql://…: tables named after the contract's")
    for name, what in _usecases().SOURCES.items():
        table.add_row(safe_text(name), safe_text(f"upcurve import {name} --out DATA: {what}"))
    console.print(table)


@import_app.command("stripe")
def import_stripe_command(
    out: Annotated[Path, typer.Option(help="The folder to write the contract's tables to.")],
    fmt: Annotated[str, typer.Option("--format", help="csv (to read and fix by hand) or parquet.")] = "csv",
    api_key_env: Annotated[str, typer.Option(help="The environment variable holding the API key.")]
    = "STRIPE_API_KEY",
    api_base: Annotated[str | None, typer.Option(help="Another API address (a proxy, or a test server).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Read the whole account again, not only what changed since "
                                                      "the last import into this folder.")] = False,
    fx_rates: Annotated[Path | None, typer.Option(help="A CSV or Parquet file of exchange rates to copy in, used "
                                                       "instead of the rates Stripe converted charges at: monthly "
                                                       "(month, currency, rate), or daily (day or date, currency, "
                                                       "rate).")] = None,
) -> None:
    """Read a Stripe account (customers, prices, subscriptions, invoices with every line, credit notes, the rates
    it converted charges at) and write it as a contract folder, then check it. Into a folder of an earlier import,
    only what changed since is read again (Stripe keeps 30 days of events), and the folder's other tables are
    kept."""
    key = os.environ.get(api_key_env, "")
    result = _with_progress(lambda say: _usecases().import_stripe(out, api_key=key, api_base=api_base, fmt=fmt,
                                                                  full=full, fx_rates=fx_rates, say=say))
    how = (f"synced {result.changed:,} changed objects" if result.mode == "sync" else "read the whole account")
    _rows_table(result.rows, f"Imported from Stripe into {result.out_dir}: {how}, {result.requests:,} requests; "
                             f"cursor {result.synced_to}")
    if result.validation.problems:
        render_problems(console, result.validation.problems)
    else:
        console.print(f"The folder meets the contract: upcurve run {result.out_dir}", markup=False)


def _analytics_command(fmt: str, title: str) -> None:
    def command(
        files: Annotated[list[Path], typer.Argument(help="The export's files (JSON lines; .gz read too).")],
        mapping: Annotated[Path | None, typer.Option(help="The mapping file: logins, features, the account of "
                                                           "each user (docs/sources.md).")] = None,
        into: Annotated[Path | None, typer.Option(help="A data folder upcurve wrote (an import, a simulated "
                                                        "company): its events and users are replaced.")] = None,
        out: Annotated[Path | None, typer.Option(help="A new folder holding the events and users only.")] = None,
    ) -> None:
        result = _with_progress(lambda say: _usecases().import_analytics(fmt, list(files), mapping=mapping,
                                                                        into=into, out=out, say=say))
        _rows_table(result.rows, f"Imported from {title} into {result.out_dir}")
        if result.validation.problems:
            render_problems(console, result.validation.problems)

    command.__doc__ = (f"Read a {title} export as the contract's events and users, into a data folder upcurve "
                       "wrote or a new one.")
    import_app.command(fmt)(command)


for _fmt, _title in (("segment", "Segment"), ("amplitude", "Amplitude"), ("mixpanel", "Mixpanel")):
    _analytics_command(_fmt, _title)


@import_app.command("salesforce")
def import_salesforce_command(
    into: Annotated[Path, typer.Option(help="A data folder upcurve wrote (e.g. an import of the billing).")],
    export: Annotated[Path | None, typer.Argument(help="The folder of a Salesforce data export (Account.csv, "
                                                       "User.csv, Opportunity.csv, Case.csv). Without it, the org's "
                                                       "API (SALESFORCE_ACCESS_TOKEN, SALESFORCE_INSTANCE_URL).")]
    = None,
    mapping: Annotated[Path | None, typer.Option(help="The mapping file: the Account field holding the billing "
                                                       "account id, and the others (docs/sources.md).")] = None,
    token_env: Annotated[str, typer.Option(help="Without EXPORT: the environment variable holding the access "
                                                "token.")] = "SALESFORCE_ACCESS_TOKEN",
    instance_url: Annotated[str | None, typer.Option(help="Without EXPORT: the org's address (default: "
                                                          "SALESFORCE_INSTANCE_URL).")] = None,
) -> None:
    """Add Salesforce's facts to a data folder, from a data export or the org's API: each account's owner,
    segment, industry and region, its renewal dates and its support cases."""
    token = os.environ.get(token_env, "")
    url = instance_url or os.environ.get("SALESFORCE_INSTANCE_URL")
    result = _with_progress(lambda say: _usecases().import_salesforce(export, into=into, mapping=mapping,
                                                                     access_token=token, instance_url=url, say=say))
    _rows_table(result.rows, f"Imported from Salesforce into {result.out_dir}")
    if result.validation.problems:
        render_problems(console, result.validation.problems)


@import_app.command("hubspot")
def import_hubspot_command(
    into: Annotated[Path, typer.Option(help="A data folder upcurve wrote (e.g. an import of the billing).")],
    export: Annotated[Path | None, typer.Argument(help="The folder of HubSpot's CSV exports: companies (required), "
                                                       "deals and tickets, one file each. Without it, HubSpot's API "
                                                       "(HUBSPOT_ACCESS_TOKEN).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="The mapping file: the company property holding the billing "
                                                       "account id, and the others (docs/sources.md).")] = None,
    token_env: Annotated[str, typer.Option(help="Without EXPORT: the environment variable holding the access "
                                                "token.")] = "HUBSPOT_ACCESS_TOKEN",
    api_base: Annotated[str | None, typer.Option(help="Another API address (a proxy, or a test server).")] = None,
) -> None:
    """Add HubSpot's facts to a data folder, from its CSV exports or its API: each company's owner, segment,
    industry and region, renewal dates from renewal deals (and a contract end date), and its tickets."""
    token = os.environ.get(token_env, "")
    result = _with_progress(lambda say: _usecases().import_hubspot(export, into=into, mapping=mapping,
                                                                  access_token=token, api_base=api_base, say=say))
    _rows_table(result.rows, f"Imported from HubSpot into {result.out_dir}")
    if result.validation.problems:
        render_problems(console, result.validation.problems)


push_app = typer.Typer(help="Push each account's scores to its CRM record, where account teams work.",
                       no_args_is_help=True)


@push_app.command("hubspot")
def push_hubspot_command(
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    mapping: Annotated[Path | None, typer.Option(help="The mapping file: the company property holding the billing "
                                                       "account id, and the property each value goes to "
                                                       "(docs/sources.md).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read HubSpot and show the changes; write nothing.")]
    = False,
    token_env: Annotated[str, typer.Option(help="The environment variable holding the access token.")]
    = "HUBSPOT_ACCESS_TOKEN",
    api_base: Annotated[str | None, typer.Option(help="Another API address (a proxy, or a test server).")] = None,
) -> None:
    """Write a run's health, tier, expansion propensity, churn risk, lever and top reason to HubSpot company
    properties: only the values that changed, in batches of 100; --dry-run shows them first."""
    _push("hubspot", workspace, run_id, mapping, dry_run, os.environ.get(token_env, ""), api_base)


@push_app.command("salesforce")
def push_salesforce_command(
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    mapping: Annotated[Path | None, typer.Option(help="The mapping file: the Account field holding the billing "
                                                       "account id, and the field each value goes to "
                                                       "(docs/sources.md).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read Salesforce and show the changes; write nothing.")]
    = False,
    token_env: Annotated[str, typer.Option(help="The environment variable holding the access token.")]
    = "SALESFORCE_ACCESS_TOKEN",
    instance_url: Annotated[str | None, typer.Option(help="The org's address, https://yourorg.my.salesforce.com "
                                                          "(default: SALESFORCE_INSTANCE_URL).")] = None,
) -> None:
    """Write a run's health, tier, expansion propensity, churn risk, lever and top reason to Salesforce Account
    fields: only the values that changed, in batches of 200; --dry-run shows them first."""
    _push("salesforce", workspace, run_id, mapping, dry_run, os.environ.get(token_env, ""),
          instance_url or os.environ.get("SALESFORCE_INSTANCE_URL"))


def _push(crm: str, workspace: str | None, run_id: str | None, mapping: Path | None, dry_run: bool, token: str,
          api_base: str | None) -> None:
    store = _store(workspace, Settings())
    title = {"hubspot": "HubSpot", "salesforce": "Salesforce"}[crm]

    def push(say: Callable[[str], None]) -> Any:
        return _usecases().push_scores(store, crm, access_token=token, mapping=mapping, run_id=run_id,
                                       api_base=api_base, dry_run=dry_run, say=say,
                                       progress=lambda done, total: say(f"writing batch {done} of {total}"))

    result = _with_progress(push)
    shown = result.changes[:_SHOWN_CHANGES]
    if shown:
        table = Table(title=safe_text(f"{'Would change' if result.dry_run else 'Changed'} in {title}", "table.title"))
        for column in ("account", "record", "field", "was", "now"):
            table.add_column(column)
        for change in shown:
            table.add_row(safe_text(change.account_id), safe_text(change.record_id), safe_text(change.property),
                          safe_text(change.old or ""), safe_text(change.new))
        console.print(table)
    records = len({c.record_id for c in result.changes})
    lines = [f"{len(result.changes):,} field(s) of {records:,} record(s) {'to change' if result.dry_run else 'changed'}"
             + (f" (the first {_SHOWN_CHANGES:,} shown)." if len(result.changes) > _SHOWN_CHANGES else "."),
             f"{result.matched:,} of {result.records:,} {title} records with a billing id matched the "
             f"{result.accounts:,} accounts of run {result.run_id}."]
    if result.created:
        lines.append(f"Properties {'to create' if result.dry_run else 'created'}: {', '.join(result.created)}.")
    lines.append("A dry run: nothing was written." if result.dry_run else f"{result.requests:,} requests.")
    for line in lines:
        console.print(safe_text(line), markup=False, highlight=False)
