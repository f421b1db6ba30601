"""``upcurve sources`` and ``upcurve import``: bring data in from where it lives. Thin: parse, call a use case,
render."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from upcurve.cli_support import _rows_table, _usecases, _with_progress, console
from upcurve.present.safe import safe_text
from upcurve.present.terminal import render_problems

__all__ = ["import_app", "sources_command"]

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
) -> None:
    """Read a Stripe account (customers, prices, subscriptions, invoices with every line, credit notes) and write
    it as a contract folder, then check it."""
    key = os.environ.get(api_key_env, "")
    result = _with_progress(lambda say: _usecases().import_stripe(out, api_key=key, api_base=api_base, fmt=fmt,
                                                                  say=say))
    _rows_table(result.rows, f"Imported from Stripe into {result.out_dir} ({result.requests:,} requests)")
    if result.validation.problems:
        render_problems(console, result.validation.problems)
    else:
        console.print(f"The folder meets the contract: upcurve run {result.out_dir}", markup=False)
