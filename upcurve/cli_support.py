"""What every command shares: the consoles, exit codes, progress, errors as one line, the common options and
the workspace opened for a command."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from upcurve.config import Settings
from upcurve.engine import engine_errors
from upcurve.errors import ConfigError, ContractError, UpcurveError
from upcurve.present.safe import literal, safe_text, visible
from upcurve.present.terminal import render_problems
from upcurve.workspace import RunRecord, Store

if TYPE_CHECKING:
    from upcurve.settings_file import UpcurveConfig

console = Console()
err = Console(stderr=True)

#: Exit codes: the input (data, settings file or options) is wrong and nothing was written; or upcurve could not
#: finish for another reason it names (an output folder it may not replace, the engine out of memory, a saved
#: model it refuses). Anything else is a traceback: a bug in upcurve.
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _fail(exc: UpcurveError) -> typer.Exit:
    if isinstance(exc, ContractError):
        render_problems(err, exc.problems)
        err.print(f"[red]The input breaks the contract ({len(exc.problems)} problem(s)); nothing was written.[/red]")
        return typer.Exit(EXIT_BAD_INPUT)
    err.print(Text.assemble(("error:", "red"), " ", literal(err, exc, multiline=True)))
    return typer.Exit(EXIT_BAD_INPUT if isinstance(exc, ConfigError) else EXIT_FAILED)


def _counting() -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True)


def _rows_table(rows: dict[str, int], title: str) -> None:
    table = Table(title=safe_text(title, "table.title"))
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in rows.items():
        table.add_row(safe_text(name), f"{count:,}")
    console.print(table)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), TimeElapsedColumn(),
                    console=err, transient=True)


T = TypeVar("T")


def _with_progress(work: Callable[[Callable[[str], None]], T]) -> T:
    """Run ``work(say)`` under a spinner that shows what it says; a user error exits with its message."""
    try:
        with _progress() as bar, engine_errors():
            task = bar.add_task("starting", total=None)
            return work(lambda msg: bar.update(task, description=visible(msg)))
    except UpcurveError as exc:
        raise _fail(exc) from None


def _usecases() -> ModuleType:
    """The use cases, imported by the commands that compute: a command that reads the workspace starts without the
    engine and the models."""
    from upcurve import usecases

    return usecases


def _config(path: Path | None, settings: Settings) -> UpcurveConfig:
    from upcurve.settings_file import load_config

    try:
        return load_config(path or settings.config)
    except UpcurveError as exc:
        raise _fail(exc) from None


DataArgument = Annotated[str, typer.Argument(
    metavar="DATA", help="A folder with one CSV or Parquet file per contract table, or a database URL whose tables "
                         "are named after them (duckdb:///warehouse.duckdb, postgresql://…).")]
AsOf = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Point in time YYYY-MM-DD (default: "
                                                   "the start of the latest invoice line).")]
EngineOption = Annotated[str | None, typer.Option(
    help="Ibis connection URL of the computing engine (default: embedded DuckDB; a database given as DATA is computed "
         "where its tables are, unless another engine is named: it is then given a copy).")]
WorkspaceOption = Annotated[str | None, typer.Option(
    "--workspace", help="Workspace: a folder, or a postgresql:// URL (default: UPCURVE_WORKSPACE, else "
                        "./upcurve-workspace).")]
RunOption = Annotated[str | None, typer.Option("--run", help="A run id, or a unique start of one (`upcurve runs`).")]
ReadAsOf = Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="The latest run at this as-of date.")]


def _store(workspace: str | None, settings: Settings, *, create: bool = False) -> Store:
    try:
        return Store.open(workspace or settings.workspace, create=create, wait_seconds=settings.workspace_wait)
    except UpcurveError as exc:
        raise _fail(exc) from None


def _currency(record: RunRecord) -> str:
    return str(record.settings.get("revenue", {}).get("reporting_currency", "USD"))
