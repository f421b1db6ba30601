"""The ``upcurve`` command line: parse, call the service, render."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from upcurve import service
from upcurve.config import Settings
from upcurve.engine import engine_errors
from upcurve.errors import ConfigError, ContractError, UpcurveError
from upcurve.present.safe import literal, safe_text, visible
from upcurve.present.terminal import (
    render_accounts,
    render_backtest,
    render_model_card,
    render_problems,
    render_summary,
    render_worklist,
)
from upcurve.settings_file import UpcurveConfig, load_config

app = typer.Typer(help="upcurve: the expansion revenue engine.", no_args_is_help=True, add_completion=False)
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


def _config(path: Path | None, settings: Settings) -> UpcurveConfig:
    try:
        return load_config(path or settings.config)
    except UpcurveError as exc:
        raise _fail(exc) from None


@app.command()
def run(
    data_dir: Annotated[Path, typer.Argument(help="Folder with one CSV or Parquet file per contract table.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the result tables to (replaced whole).")],
    as_of: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Point in time (default: latest date in data).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    currency: Annotated[str | None, typer.Option(help="Reporting currency (default from settings: USD).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
    engine: Annotated[str | None, typer.Option(help="Ibis connection URL of the computing engine.")] = None,
    models: Annotated[Path | None, typer.Option(help="Folder of a saved model (see `upcurve train`) to score "
                                                     "with; without one, a model is trained for this run.")] = None,
    retrain: Annotated[bool, typer.Option(help="Train again and replace the model saved in --models.")] = False,
) -> None:
    """Compute MRR, movements, retention, cohorts, segments, account scores and this week's worklist into OUT."""
    settings = Settings()
    cfg = _config(config, settings)
    if currency:
        cfg = cfg.model_copy(update={"revenue": cfg.revenue.model_copy(
            update={"reporting_currency": currency.upper()})})
    result = _with_progress(lambda say: service.run(
        data_dir, out, as_of=as_of.date() if as_of else None, fmt=fmt, config=cfg,
        engine_url=engine or settings.engine, progress=say, models_dir=models, retrain=retrain,
    ))
    render_summary(console, result.tables, result.policy.reporting_currency, result.as_of)
    render_worklist(console, result.tables["worklist"], currency=result.policy.reporting_currency, top=10)
    for note in result.notes:
        console.print(Text.assemble(("note:", "yellow"), " ", literal(console, note)))
    console.print(literal(console, f"Wrote {len(result.tables)} tables to {result.out_dir}"))


@app.command()
def validate(
    data_dir: Annotated[Path, typer.Argument(help="Folder with one CSV or Parquet file per contract table.")],
    currency: Annotated[str | None, typer.Option(help="Reporting currency (default from settings: USD).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
    engine: Annotated[str | None, typer.Option(help="Ibis connection URL of the computing engine.")] = None,
) -> None:
    """List every problem of DATA_DIR against the input contract; exit 2 if there is any."""
    settings = Settings()
    cfg = _config(config, settings)
    reporting = (currency or cfg.revenue.reporting_currency).upper()
    problems = _with_progress(lambda say: service.check_folder(data_dir, reporting_currency=reporting,
                                                              engine_url=engine or settings.engine))
    errors = [p for p in problems if p.severity == "error"]
    if problems:
        render_problems(console if not errors else err, problems)
    if errors:
        raise typer.Exit(EXIT_BAD_INPUT)
    console.print(literal(console, f"{data_dir}: the input meets the contract.", "green"))


@app.command()
def accounts(
    data_dir: Annotated[Path, typer.Argument(help="Folder with one CSV or Parquet file per contract table.")],
    as_of: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Point in time (default: latest date in data).")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="How many accounts to show.")] = 25,
    sort: Annotated[str, typer.Option(
        help="health (best first), risk (worst health first), mrr, expansion or churn (likeliest first)."
    )] = "health",
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
) -> None:
    """Rank accounts with their signals and health score, in the terminal."""
    settings = Settings()
    if sort not in ("health", "risk", "mrr", "expansion", "churn"):
        err.print("[red]error:[/red] --sort takes health, risk, mrr, expansion or churn")
        raise typer.Exit(1)
    cfg = _config(config, settings)
    result = _with_progress(lambda say: service.run(
        data_dir, None, as_of=as_of.date() if as_of else None, config=cfg, engine_url=settings.engine,
        progress=say))
    render_accounts(console, result.tables["accounts"], sort=sort, top=top,
                    currency=result.policy.reporting_currency, as_of=result.as_of)


@app.command()
def train(
    data_dir: Annotated[Path, typer.Argument(help="Folder with one CSV or Parquet file per contract table.")],
    models: Annotated[Path, typer.Option("--models", help="Folder to save the model and its card in.")],
    as_of: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Train on what was known at this date.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
) -> None:
    """Train the expansion and churn models on the company's history and save them (with a model card)."""
    settings = Settings()
    cfg = _config(config, settings)
    scorer = _with_progress(lambda say: service.train(
        data_dir, models, as_of=as_of.date() if as_of else None, config=cfg, engine_url=settings.engine,
        progress=say))
    render_model_card(console, scorer.card_)
    console.print(literal(console, f"Saved to {models}; `upcurve run --models {models}` scores with it until it is "
                                   "trained again."))


@app.command()
def backtest(
    data_dir: Annotated[Path, typer.Argument(help="Folder with one CSV or Parquet file per contract table.")],
    cutoffs: Annotated[int, typer.Option(min=1, max=24, help="How many past dates to replay.")] = 4,
    out: Annotated[Path | None, typer.Option("--out", help="Folder to write the backtest tables to.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
) -> None:
    """Replay past dates: train on what was known, score, and compare each model with what happened next."""
    settings = Settings()
    cfg = _config(config, settings)
    result = _with_progress(lambda say: service.backtest(
        data_dir, out, cutoffs=cutoffs, config=cfg, engine_url=settings.engine, progress=say))
    render_backtest(console, result.tables["backtest_metrics"], result.tables["backtest_calibration"], result.notes)
    if result.out_dir is not None:
        console.print(literal(console, f"Wrote the backtest tables to {result.out_dir}"))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the data folder to.")],
    accounts: Annotated[int, typer.Option(min=1, help="Number of accounts.")] = 2000,
    months: Annotated[int, typer.Option(min=1, max=240, help="Months of billing history.")] = 36,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same company.")] = 7,
    profile: Annotated[str, typer.Option(help="plg, mid_market or enterprise.")] = "mid_market",
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Write a simulated company's data folder: every contract table, and its ground truth in truth/."""
    try:
        with _counting() as bar:
            task = bar.add_task("simulating accounts", total=accounts)
            rows = service.simulate(out, accounts=accounts, months=months, seed=seed, profile=profile, fmt=fmt,
                                    progress=lambda done, total: bar.update(task, completed=done))
    except UpcurveError as exc:
        raise _fail(exc) from None
    _rows_table(rows, f"Simulated {profile} company: {accounts:,} accounts, {months} months → {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the sample data and the results.")] = Path(
        "demo-output"
    ),
    accounts: Annotated[int, typer.Option(min=1, help="Number of accounts.")] = 3000,
    months: Annotated[int, typer.Option(min=1, max=240, help="Months of billing history.")] = 36,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Simulate a sample company and run the whole pipeline on it with embedded DuckDB."""
    data, results = out / "data", out / "results"
    try:
        service.check_demo_destination(out)
        with _progress() as bar:
            task = bar.add_task(f"simulating {accounts:,} accounts over {months} months", total=None)
            service.simulate(data, accounts=accounts, months=months, seed=seed,
                             progress=lambda done, total: bar.update(
                                 task, description=f"simulating accounts: {done:,} of {total:,}"))
            result = service.run(data, results, progress=lambda msg: bar.update(task, description=visible(msg)),
                                 models_dir=out / "models", retrain=True)
    except UpcurveError as exc:
        raise _fail(exc) from None
    render_summary(console, result.tables, result.policy.reporting_currency, result.as_of)
    if result.model_card:
        render_model_card(console, result.model_card)
    render_worklist(console, result.tables["worklist"], currency=result.policy.reporting_currency, top=10)
    console.print(literal(console, f"Sample data in {data}; result tables in {results}: " + ", ".join(result.tables)))
    console.print(literal(console, f"The trained model and its card are in {out / 'models'}; replay its history "
                                   f"with `upcurve backtest {data}`."))


def main() -> None:  # pragma: no cover - console entry point
    app()
