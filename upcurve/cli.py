"""The ``upcurve`` command line: parse, call a use case, render."""

from __future__ import annotations

import datetime as dt
import gc
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.compute as pc
import typer
from rich.text import Text

from upcurve import __version__
from upcurve.cli_plays import levers as levers_command
from upcurve.cli_plays import plays_app
from upcurve.cli_pricing import price_app, usage_command
from upcurve.cli_sources import import_app, push_app, sources_command
from upcurve.cli_support import (
    EXIT_BAD_INPUT,
    AsOf,
    DataArgument,
    EngineOption,
    ReadAsOf,
    RunOption,
    WorkspaceOption,
    _config,
    _counting,
    _currency,
    _fail,
    _progress,
    _rows_table,
    _store,
    _usecases,
    _with_progress,
    console,
    err,
)
from upcurve.config import Settings
from upcurve.engine import engine_errors
from upcurve.errors import UpcurveError
from upcurve.folders import check_destination as check_folder_destination
from upcurve.folders import write_folder
from upcurve.present.safe import literal, visible
from upcurve.present.terminal import (
    render_accounts,
    render_backtest,
    render_diff,
    render_model_card,
    render_problems,
    render_runs,
    render_summary,
    render_worklist,
)
from upcurve.web.commands import report as web_report
from upcurve.web.commands import serve as web_serve
from upcurve.web.commands import tokens_app, users_app
from upcurve.workspace import RunDiff, RunRecord, Store, WorkspaceError, diff_runs

app = typer.Typer(help="upcurve: the expansion revenue engine.", no_args_is_help=True)


class AccountSort(StrEnum):
    health = "health"
    risk = "risk"
    mrr = "mrr"
    expansion = "expansion"
    churn = "churn"


class FileFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


class Motion(StrEnum):
    expand = "expand"
    retain = "retain"


def _version(value: bool) -> None:
    if value:
        print(f"upcurve {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show upcurve's version and exit.")] = False,
) -> None:
    """upcurve: the expansion revenue engine.

    Exit codes: 0 done; 2 the input (data, settings file or an option) is wrong and nothing was written; 1 upcurve
    could not finish for another reason it names (an output folder it may not replace, the engine out of memory,
    a busy workspace).
    """
MappingOption = Annotated[Path | None, typer.Option(
    "--mapping", help="With a database URL: a mapping file naming the table and columns of each contract table "
                      "(docs/sources.md).")]


@app.command()
def run(
    data_dir: DataArgument,
    workspace: WorkspaceOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also (or, without --workspace, only) write the tables "
                                                           "as files in this folder (replaced whole).")] = None,
    as_of: AsOf = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv (with --out).")] = "parquet",
    currency: Annotated[str | None, typer.Option(help="Reporting currency (default from settings: USD).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
    engine: EngineOption = None,
    models: Annotated[Path | None, typer.Option(help="With --out only: a folder of a saved model (see `upcurve "
                                                     "train`) to score with.")] = None,
    retrain: Annotated[bool, typer.Option(help="Train the model again instead of reusing it.")] = False,
    mapping: MappingOption = None,
    import_to: Annotated[Path, typer.Option(help="With DATA stripe://: the folder the Stripe account is imported "
                                                 "into first (replaced by each import).")]
    = Path("upcurve-imports/stripe"),
) -> None:
    """Compute MRR, movements, retention, cohorts, segments, account scores and this week's worklist, and keep
    them in the workspace (and/or write them to --out). DATA stripe:// reads the Stripe account (STRIPE_API_KEY;
    STRIPE_API_BASE for another address) into --import-to first, then runs on that folder."""
    settings = Settings()
    cfg = _config(config, settings)
    if data_dir == "stripe://":
        key = os.environ.get("STRIPE_API_KEY", "")
        api_base = os.environ.get("STRIPE_API_BASE") or None  # another API address: a proxy, or a test server
        imported = _with_progress(lambda say: _usecases().import_stripe(import_to, api_key=key, api_base=api_base,
                                                                        say=say))
        if imported.validation.problems:
            render_problems(console, imported.validation.problems)
            raise typer.Exit(EXIT_BAD_INPUT)
        how = f"{imported.changed:,} changed objects synced" if imported.mode == "sync" else "read in full"
        console.print(literal(console, f"Imported the Stripe account into {imported.out_dir} "
                                       f"({how}, {imported.requests:,} requests)"))
        data_dir = str(imported.out_dir)
    if currency:
        cfg = cfg.model_copy(update={"revenue": cfg.revenue.model_copy(
            update={"reporting_currency": currency.upper()})})
    day = as_of.date() if as_of else None
    engine_url = engine or settings.engine
    if out is not None and workspace is None:
        result = _with_progress(lambda say: _usecases().run(
            data_dir, out, as_of=day, fmt=fmt, config=cfg, engine=engine_url, progress=say, models_dir=models,
            retrain=retrain, source_mapping=mapping))
    else:
        # the workspace is checked now and made once the input is read and checked: a run refused for its input
        # leaves no workspace behind
        location = workspace or settings.workspace
        try:
            Store.check(location)
        except UpcurveError as exc:
            raise _fail(exc) from None
        result = _with_progress(lambda say: _usecases().run_in_workspace(
            lambda: _store(workspace, settings, create=True), data_dir, as_of=day, config=cfg, engine=engine_url,
            retrain=retrain, out_dir=out, fmt=fmt, progress=say, source_mapping=mapping))
        store = Store(location)  # where the run was kept, as the workspace names itself
    render_summary(console, result.tables, result.policy.reporting_currency, result.as_of)
    render_worklist(console, result.tables["worklist"], currency=result.policy.reporting_currency, top=10)
    for note in result.notes:
        console.print(Text.assemble(("note:", "yellow"), " ", literal(console, note)))
    if result.run is not None:
        where = store.where  # a URL is shown without its password
        console.print(literal(console, f"Run {result.run.run_id} kept in the workspace {where}"))
    if result.out_dir is not None:
        console.print(literal(console, f"Wrote {len(result.tables)} tables to {result.out_dir}"))


@app.command()
def runs(workspace: WorkspaceOption = None) -> None:
    """The workspace's history: every run, its as-of date, its input and the model that scored it."""
    settings = Settings()
    store = _store(workspace, settings)
    found = _with_progress(lambda say: store.runs())
    render_runs(console, found)


def _read_run(workspace: str | None, run_id: str | None, as_of: dt.datetime | None) -> tuple[Store, RunRecord]:
    settings = Settings()
    store = _store(workspace, settings)
    record = _with_progress(lambda say: store.find_run(run_id, as_of=as_of.date() if as_of else None))
    return store, record


@app.command()
def accounts(
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    as_of: ReadAsOf = None,
    top: Annotated[int, typer.Option(min=1, help="How many accounts to show.")] = 25,
    sort: Annotated[AccountSort, typer.Option(help="health (best first), risk (worst health first), mrr, expansion "
                                                   "or churn (likeliest first).")] = AccountSort.health,
) -> None:
    """Rank the accounts of a run (the latest by default) with their signals, health and scores."""
    store, record = _read_run(workspace, run_id, as_of)
    table, customers = _with_progress(lambda say: _ranked_accounts(store, record, sort, top))
    render_accounts(console, table, sort=sort.value, top=top, currency=_currency(record), as_of=record.as_of,
                    customers=customers)


#: The column each sort ranks by, and its direction (the rest by MRR, largest first; empty values last).
_ACCOUNT_ORDER = {"health": ("health_score", "DESC"), "risk": ("health_score", "ASC"), "mrr": ("mrr", "DESC"),
                  "expansion": ("expansion_propensity", "DESC"), "churn": ("churn_risk", "DESC")}


def _ranked_accounts(store: Store, record: RunRecord, sort: AccountSort, top: int) -> tuple[pa.Table, int]:
    """The top paying accounts of a run by ``sort``, ranked in the workspace's database (a run of 100,000 accounts
    answers at once), and how many accounts pay."""
    key, direction = _ACCOUNT_ORDER[sort.value]
    # one query: the count of paying accounts rides along on every row (a window over the whole filter)
    ranked = store.query(f'SELECT *, count(*) OVER () AS upcurve_paying FROM accounts WHERE run_id = ? AND mrr > 0 '
                         f'ORDER BY "{key}" {direction} NULLS LAST, mrr DESC, account_id LIMIT ?',
                         [record.run_id, top])
    count = ranked["upcurve_paying"][0].as_py() if ranked.num_rows else 0
    return ranked.drop_columns(["run_id", "upcurve_paying"]), int(count)


@app.command()
def worklist(
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    as_of: ReadAsOf = None,
    top: Annotated[int, typer.Option(min=1, help="How many accounts to show.")] = 25,
    motion: Annotated[Motion | None, typer.Option(help="Only the accounts to expand, or only those to retain.")]
    = None,
) -> None:
    """The worklist of a run (the latest by default): the accounts to work that week, why and with which play."""
    store, record = _read_run(workspace, run_id, as_of)
    table = _with_progress(lambda say: store.table("worklist", record.run_id))
    if motion is not None:
        table = table.filter(pc.equal(table["motion"], motion.value))
    render_worklist(console, table, currency=_currency(record), top=top)


@app.command()
def diff(
    run_a: Annotated[str | None, typer.Argument(help="The earlier run (default: the run before the latest).")] = None,
    run_b: Annotated[str | None, typer.Argument(help="The later run (default: the latest).")] = None,
    workspace: WorkspaceOption = None,
    top: Annotated[int, typer.Option(min=1, help="How many accounts to list in each part.")] = 10,
) -> None:
    """What changed between two runs: the MRR bridge between their dates, the worklist, health tiers, churn risks."""
    settings = Settings()
    store = _store(workspace, settings)

    def work(say: Callable[[str], None]) -> RunDiff:
        history = store.runs()
        if run_a is None and run_b is None and len(history) < 2:
            raise WorkspaceError("a diff needs two runs; the workspace holds "
                                 f"{len(history)}: `upcurve run DATA` again (e.g. at another --as-of)")
        b = store.find_run(run_b) if run_b else history[-1]
        a = store.find_run(run_a) if run_a else [r for r in history if r.run_id != b.run_id][-1]
        # the run's own setting (every run stores its settings whole); 0.3 is the setting's default
        threshold = float(b.settings.get("scoring", {}).get("high_churn_risk", 0.3))
        return diff_runs(store, a, b, threshold=threshold)

    render_diff(console, _with_progress(work), top=top)


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the run's tables to (replaced whole).")],
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    as_of: ReadAsOf = None,
    fmt: Annotated[FileFormat, typer.Option("--format", help="File format.")] = FileFormat.parquet,
) -> None:
    """Write the tables of a run (the latest by default) as files."""
    settings = Settings()
    store = _store(workspace, settings)
    record, path = _with_progress(lambda say: _usecases().export_run(
        store, out, run_id=run_id, as_of=as_of.date() if as_of else None, fmt=fmt.value))
    console.print(literal(console, f"Wrote the {len(record.rows)} tables of run {record.run_id} to {path}"))


@app.command()
def validate(
    data_dir: DataArgument,
    currency: Annotated[str | None, typer.Option(help="Reporting currency (default from settings: USD).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
    engine: EngineOption = None,
    mapping: MappingOption = None,
) -> None:
    """List every problem of DATA against the input contract; exit 2 if there is any."""
    settings = Settings()
    cfg = _config(config, settings)
    reporting = (currency or cfg.revenue.reporting_currency).upper()
    found = _with_progress(lambda say: _usecases().check_folder(
        data_dir, reporting_currency=reporting, fx_quote_currency=cfg.revenue.fx_quote_currency,
        engine=engine or settings.engine, mapping=mapping))
    if found.problems:
        render_problems(console if not found.errors else err, found.problems)
    if found.errors:
        raise typer.Exit(EXIT_BAD_INPUT)
    _rows_table(found.rows, f"Read {len(found.rows)} tables, {sum(found.rows.values()):,} rows")
    console.print(literal(console, f"{data_dir}: the input meets the contract.", "green"))


@app.command()
def train(
    data_dir: DataArgument,
    models: Annotated[Path, typer.Option("--models", help="Folder to save the model and its card in.")],
    as_of: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Train on what was known at this date.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
    engine: EngineOption = None,
    mapping: MappingOption = None,
) -> None:
    """Train the expansion and churn models on the company's history and save them (with a model card)."""
    settings = Settings()
    cfg = _config(config, settings)
    scorer = _with_progress(lambda say: _usecases().train(
        data_dir, models, as_of=as_of.date() if as_of else None, config=cfg, engine=engine or settings.engine,
        progress=say, source_mapping=mapping))
    render_model_card(console, scorer.card_)
    console.print(literal(console, f"Saved to {models}; `upcurve run --models {models}` scores with it until it is "
                                   "trained again."))


@app.command()
def backtest(
    data_dir: DataArgument,
    cutoffs: Annotated[int, typer.Option(min=1, max=24, help="How many past dates to replay.")] = 4,
    out: Annotated[Path | None, typer.Option("--out", help="Folder to write the backtest tables to.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
    engine: EngineOption = None,
    workspace: Annotated[str | None, typer.Option("--workspace", help="Also keep the backtest in this workspace "
                                                                      "(the web app's model page shows it).")] = None,
    oracle: Annotated[Path | None, typer.Option(help="Each account's true probabilities (a simulated company's "
                                                     "truth/oracle.parquet): each model's AUC as a share of "
                                                     "theirs.")] = None,
    mapping: MappingOption = None,
) -> None:
    """Replay past dates: train on what was known, score, and compare each model with what happened next."""
    settings = Settings()
    cfg = _config(config, settings)
    store = _store(workspace, settings, create=True) if workspace else None
    result = _with_progress(lambda say: _usecases().backtest(
        data_dir, out, cutoffs=cutoffs, config=cfg, engine=engine or settings.engine, progress=say, store=store,
        oracle=oracle, source_mapping=mapping))
    from upcurve.scoring.backtest import backtest_sentence

    metrics = result.tables["backtest_metrics"].to_pylist()
    for target in ("expansion", "churn"):
        said = backtest_sentence(metrics, target=target, horizon_days=cfg.scoring.horizon_months * 30)
        if said:
            console.print(literal(console, f"{target.capitalize()}: {said}"))
    render_backtest(console, result.tables["backtest_metrics"], result.tables["backtest_calibration"], result.notes)
    if result.out_dir is not None:
        console.print(literal(console, f"Wrote the backtest tables to {result.out_dir}"))
    if store is not None:
        console.print(literal(console, f"Kept the backtest in the workspace {store.where}"))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the data folder to.")],
    accounts: Annotated[int, typer.Option(min=1, help="Number of accounts.")] = 2000,
    months: Annotated[int, typer.Option(min=1, max=240, help="Months of billing history.")] = 36,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same company.")] = 7,
    profile: Annotated[str, typer.Option(help="plg, mid_market, enterprise, annual_contracts, usage_led or "
                                               "seasonal_smb.")] = "mid_market",
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    oracle_months: Annotated[int, typer.Option(min=0, help="Month ends (the last whose window ahead is simulated) "
                                               "to write each account's true odds for, in truth/oracle.parquet; "
                                               "a backtest of K cutoffs needs H·(K−1)+1 for a window of H.")] = 0,
    oracle_runs: Annotated[int, typer.Option(min=1, help="Futures re-simulated per month end for the oracle.")]
    = 200,
    oracle_horizon_months: Annotated[int, typer.Option(min=1, help="The oracle's window H in months: the backtest's "
                                                       "scoring.horizon_months.")] = 3,
) -> None:
    """Write a simulated company's data folder: every contract table, and its ground truth in truth/."""
    try:
        with _counting() as bar:
            task = bar.add_task("simulating accounts", total=accounts)
            rows = _usecases().simulate(out, accounts=accounts, months=months, seed=seed, profile=profile, fmt=fmt,
                                    progress=lambda done, total: bar.update(task, completed=done),
                                    oracle_months=oracle_months, oracle_runs=oracle_runs,
                                    oracle_horizon_months=oracle_horizon_months)
    except UpcurveError as exc:
        raise _fail(exc) from None
    _rows_table(rows, f"Simulated {profile} company: {accounts:,} accounts, {months} months → {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(
        "--out", help="Folder for the sample data, its workspace and the results.")] = Path("demo-output"),
    accounts: Annotated[int, typer.Option(min=1, help="Number of accounts.")] = 3000,
    months: Annotated[int, typer.Option(min=1, max=240, help="Months of billing history.")] = 36,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    config: Annotated[Path | None, typer.Option(help="YAML settings file.")] = None,
    engine: EngineOption = None,
) -> None:
    """Simulate a sample company and run the whole pipeline on it, keeping the run in a workspace, and write its
    board report."""
    from upcurve.web.report import write_report

    settings = Settings()
    cfg = _config(config, settings)
    data, results, ws, board = out / "data", out / "results", out / "workspace", out / "report"
    try:
        _usecases().check_demo_destination(out)
        check_folder_destination(board, what="report")
        store = Store.open(ws, create=True, wait_seconds=settings.workspace_wait)
        with _progress() as bar, engine_errors():
            task = bar.add_task(f"simulating {accounts:,} accounts over {months} months", total=None)
            _usecases().simulate(data, accounts=accounts, months=months, seed=seed,
                              progress=lambda done, total: bar.update(
                                  task, description=f"simulating accounts: {done:,} of {total:,}"))
            result = _usecases().run_in_workspace(
                store, data, config=cfg, engine=engine or settings.engine, out_dir=results,
                progress=lambda msg: bar.update(task, description=visible(msg)))
            bar.update(task, description="firing the plays: trigger rules and playbooks")
            plays = _usecases().plays_run(store, run_id=result.run.run_id if result.run else None, config=cfg)
            bar.update(task, description="writing the board report")
            # in a folder of its own, written whole with its manifest: a later demo replaces only what it wrote
            write_folder(board, lambda stage: write_report(store, stage / "report.html"), kind="report",
                         what="report")
    except UpcurveError as exc:
        raise _fail(exc) from None
    render_summary(console, result.tables, result.policy.reporting_currency, result.as_of)
    if result.model_card:
        render_model_card(console, result.model_card)
    render_worklist(console, result.tables["worklist"], currency=result.policy.reporting_currency, top=10)
    for note in result.notes:
        console.print(Text.assemble(("note:", "yellow"), " ", literal(console, note)))
    counts = plays.counts()
    console.print(literal(console, f"Plays: {counts['opened']:,} actions opened with owners and due dates "
                                   f"({counts['held out']:,} accounts held out to measure them), {counts['closed']:,} "
                                   f"closed; `upcurve plays list --workspace {ws}` lists them."))
    run_id = result.run.run_id if result.run else ""
    console.print(literal(console, f"Sample data in {data}; run {run_id} kept in the workspace {ws}; its tables "
                                   f"also as files in {results}."))
    console.print(literal(console, f"Open the board report: {board / 'report.html'} (it works offline), or browse "
                                   f"the workspace: `upcurve users add you --workspace {ws}` then `upcurve serve "
                                   f"--workspace {ws}`."))
    usage = result.tables.get("account_usage")
    near = [r for r in usage.select(["account_id", "share_used"]).to_pylist() if r["share_used"] is not None] \
        if usage is not None and usage.num_rows else []
    closest = f", `upcurve usage {max(near, key=lambda r: r['share_used'])['account_id']} --workspace {ws}` (the " \
              "account nearest its usage limit)" if near else ""
    console.print(literal(console, f"Next: `upcurve worklist --workspace {ws}`, `upcurve accounts --workspace {ws} "
                                   f"--sort risk`, `upcurve plays uplift --workspace {ws}`, `upcurve levers "
                                   f"--workspace {ws}`, `upcurve runs --workspace {ws}`, `upcurve backtest {data}`"
                                   f"{closest}."))


app.command("serve")(web_serve)
app.command("report")(web_report)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(plays_app, name="plays")
app.add_typer(price_app, name="price")
app.add_typer(price_app, name="pricing")  # the same commands: `upcurve pricing simulate`, `upcurve price quote`
app.command("usage")(usage_command)
app.command("sources")(sources_command)
app.add_typer(import_app, name="import")
app.add_typer(push_app, name="push")
app.command("levers")(levers_command)


#: How many net allocations of container objects Python's garbage collector lets pass before it looks at the young
#: ones (Python's default is 700). Importing Ibis, sqlglot, pandas and scikit-learn and building a run's queries make
#: many short-lived objects: at 700 the collector ran about 1,000 times in one process importing upcurve and running
#: a 300-account company (6.3–8.1 s) and took 0.9–1.1 s of it, at 10,000 about 60 times and 0.3–0.4 s, and higher
#: thresholds gave no more (benchmarks/bench_small.py, docs/benchmarks.md). Objects are still freed by their
#: reference counts at once; only a cycle among them waits for the next collection.
YOUNG_COLLECTION_THRESHOLD = 10_000


def collect_garbage_less_often() -> None:
    """Set the garbage collector's first threshold to :data:`YOUNG_COLLECTION_THRESHOLD` for this process (the
    older generations' thresholds are kept). The command line does it before parsing its arguments; a program
    calling upcurve's Python API decides for itself."""
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def main() -> None:
    """The ``upcurve`` command (its console script and ``python -m upcurve``)."""
    collect_garbage_less_often()
    app()
