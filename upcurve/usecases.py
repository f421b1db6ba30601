"""Use cases the command line, the web app and the Python API call: thin recipes over the packages.

Each reads like the steps a person would name: load the data, build the revenue tables, the accounts table,
score, write. This is the only layer that materialises engine tables (``to_pyarrow``); the packages below return
Ibis expressions or fitted estimators.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from upcurve import __version__
from upcurve.config import RevenuePolicy
from upcurve.contract import plan_features
from upcurve.engine import cached, connect, release
from upcurve.errors import ConfigError, Problem, UpcurveError
from upcurve.folders import MANIFEST, write_folder
from upcurve.folders import check_destination as check_folder_destination
from upcurve.outputs import check_destination, money_columns, write_tables
from upcurve.plays import (
    ACTION_STATUSES,
    DeliveryError,
    PlayAction,
    PlaysPlan,
    PlayUplift,
    assignments_from_activities,
    deliver,
    evaluation_table,
    expansion_funnel,
    lever_yield,
    matching,
    next_attempt_at,
    outcomes,
    plan_plays,
    uplift,
    weekly_worklist,
)
from upcurve.plays.crm_fields import (
    FieldChange,
    HubSpotCompanies,
    SalesforceAccounts,
    desired_values,
    load_push_mapping,
    planned_changes,
)
from upcurve.pricing.whatif import PricingImpact, load_scenario, simulate_pricing
from upcurve.revenue import revenue_ledger, revenue_tables
from upcurve.scoring import (
    TARGETS,
    AccountScorer,
    SnapshotsAt,
    account_context,
    check_saved_scorer,
    draw_backtest,
    draw_training_sample,
    fit_scorer,
    labelled_snapshots,
    model_decision,
    read_oracle,
    replay,
    score_accounts,
    snapshot_health,
    training_dates,
)
from upcurve.settings_file import UpcurveConfig
from upcurve.signals import TREND_DAYS, account_signals_at, accounts_table
from upcurve.signals.usage import usage_view
from upcurve.sources import (
    LoadedData,
    check_connection,
    check_in_place,
    computes_in_place,
    is_connection_url,
    load_connection,
    load_folder,
    load_in_place,
)
from upcurve.sources import check_folder as check_data_folder
from upcurve.workspace import ModelRecord, RunRecord, Store
from upcurve.workspace import actions as outbox
from upcurve.workspace.actions import apply_plays
from upcurve.workspace.backtests import save_backtest

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from upcurve.sources.crm import CrmFacts

__all__ = [
    "BacktestResult",
    "DeliveryResult",
    "PushResult",
    "RunResult",
    "Validation",
    "backtest",
    "check_demo_destination",
    "check_folder",
    "check_model_destination",
    "export_run",
    "levers",
    "plays_audience",
    "plays_deliver",
    "plays_evaluation",
    "plays_measure",
    "plays_run",
    "push_scores",
    "run",
    "run_in_workspace",
    "simulate",
    "train",
]

Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    """Progress that says nothing."""


@dataclass
class RunResult:
    """What a run computed: its tables (as Arrow, money as decimals) and what it noticed on the way; where it was
    written (a folder of files, a workspace run)."""

    as_of: dt.date
    tables: dict[str, pa.Table]
    notes: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    policy: RevenuePolicy = field(default_factory=lambda: RevenuePolicy())
    model_card: dict[str, Any] | None = None
    run: RunRecord | None = None


@dataclass
class Validation:
    """What ``validate`` found: every problem, and the rows of each table when there is no error."""

    problems: list[Problem]
    rows: dict[str, int]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def check_folder(data_dir: str | Path, *, reporting_currency: str = "USD", fx_quote_currency: str | None = None,
                 engine: str | ibis.BaseBackend | None = None, mapping: str | Path | None = None) -> Validation:
    """Every problem of a data folder against the input contract (errors first, then notes). ``mapping``: a
    database's mapping file (see :class:`upcurve.sources.connection.WarehouseMapping`). A database's tables are
    checked where they are unless ``engine`` names another engine (see :func:`run`)."""
    if is_connection_url(data_dir) and computes_in_place(str(data_dir), engine):
        problems, rows = check_in_place(str(data_dir), reporting_currency=reporting_currency,
                                        fx_quote_currency=fx_quote_currency, mapping=mapping)
    elif is_connection_url(data_dir):
        problems, rows = check_connection(str(data_dir), _engine(engine), reporting_currency=reporting_currency,
                                          fx_quote_currency=fx_quote_currency, mapping=mapping)
    else:
        _no_mapping(mapping)
        problems, rows = check_data_folder(data_dir, _engine(engine), reporting_currency=reporting_currency,
                                           fx_quote_currency=fx_quote_currency)
    return Validation(problems, rows)


def check_model_destination(models_dir: str | Path, *, inputs: list[str | Path]) -> Path:
    """Check, before computing, that a model may be saved in ``models_dir`` (see
    :func:`upcurve.folders.check_destination`)."""
    return check_folder_destination(models_dir, inputs=inputs, what="model")


def _engine(engine: str | ibis.BaseBackend | None) -> ibis.BaseBackend:
    """The computing engine: opened from its URL (None: embedded DuckDB), or a connection the caller holds (one
    connection, held by a notebook or the web app, serves several use cases)."""
    if engine is None:
        return connect("duckdb://")
    return connect(engine) if isinstance(engine, str) else engine


def _load(data_dir: str | Path, as_of: dt.date | None, policy: RevenuePolicy, engine: str | ibis.BaseBackend | None,
          say: Progress, mapping: str | Path | None = None) -> LoadedData:
    """The input, checked and held by the engine. A database (a URL) is computed where its tables are when no
    engine is named or the engine named is the database itself; any other engine is given a copy of its tables."""
    if is_connection_url(data_dir) and computes_in_place(str(data_dir), engine):
        return load_in_place(str(data_dir), as_of=as_of, policy=policy, say=say, mapping=mapping)
    if is_connection_url(data_dir):
        return load_connection(str(data_dir), _engine(engine), as_of=as_of, policy=policy, say=say, mapping=mapping)
    _no_mapping(mapping)
    return load_folder(data_dir, _engine(engine), as_of=as_of, policy=policy, say=say)


def _no_mapping(mapping: str | Path | None) -> None:
    if mapping is not None:
        raise ConfigError(f"{mapping}: a mapping file names a database's tables and columns; a data folder's files "
                          "are named after the contract's tables (docs/contract.md)")


def run(
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    as_of: dt.date | None = None,
    fmt: str = "parquet",
    config: UpcurveConfig | None = None,
    engine: str | ibis.BaseBackend | None = None,
    progress: Progress | None = None,
    models_dir: str | Path | None = None,
    retrain: bool = False,
    source_mapping: str | Path | None = None,
) -> RunResult:
    """Read and check a data folder, compute every table at ``as_of`` and write them to ``out_dir``.

    Accounts are scored by the model saved in ``models_dir`` when there is one (unless ``retrain``); otherwise a
    model is trained on the company's history up to ``as_of`` and, when ``models_dir`` is given, saved there.

    Raises
    ------
    ContractError
        Listing every problem of the input; nothing is written.
    """
    say = progress or _quiet
    if out_dir is not None:
        check_destination(out_dir, fmt, inputs=[data_dir])
    if models_dir is not None:
        check_model_destination(models_dir, inputs=[data_dir])
    config = config or UpcurveConfig()
    loaded = _load(data_dir, as_of, config.revenue, engine, say, source_mapping)
    saved = None
    # a folder with a model in it (upcurve 0.1 saved no manifest: loading says it must be trained again)
    has_model = models_dir is not None and any(Path(models_dir, f).exists() for f in (MANIFEST, "model_card.json"))
    if models_dir is not None and has_model and not retrain:
        say(f"checking the model saved in {models_dir}")
        saved = check_saved_scorer(AccountScorer.load(models_dir, config.scoring), config.scoring, loaded.as_of,
                                   str(models_dir))
    result = compute_run(loaded, config, scorer=saved, say=say)
    if saved is None and models_dir is not None and result.scorer is not None and result.scorer.learned:
        result.scorer.card_["data_dir"] = loaded.source
        result.scorer.save(models_dir, inputs=[data_dir])
    out = RunResult(as_of=loaded.as_of, tables=result.tables, notes=result.notes, policy=config.revenue,
                    model_card=result.scorer.card_ if result.scorer else None)
    if out_dir is not None:
        say("writing the results")
        manifest = {"upcurve": __version__, "as_of": loaded.as_of.isoformat(), "data_dir": loaded.source,
                    "policy": config.revenue.model_dump(mode="json"), "notes": out.notes}
        out.out_dir = write_tables(out.tables, out_dir, fmt, manifest, inputs=[data_dir])
    return out


@dataclass
class ComputedRun:
    """Every table of a run (Arrow, money as decimals), the scorer that scored it and the notes."""

    tables: dict[str, pa.Table]
    notes: list[str]
    scorer: AccountScorer | None


def compute_run(loaded: LoadedData, config: UpcurveConfig, *, scorer: AccountScorer | None = None,
                say: Progress = _quiet) -> ComputedRun:
    """Compute every table of a run from loaded data; score with ``scorer``, or train one on the history."""
    as_of, tables, notes = loaded.as_of, loaded.tables, list(loaded.notes)
    say("computing MRR, movements and metrics")
    revenue = revenue_tables(tables, as_of=as_of, first=loaded.first, policy=config.revenue)
    say("computing account signals and health")
    # the signals now, 30 days ago and, to learn from, at every past month end (of the training sample's accounts
    # alone, when the history is too large to learn from whole): one query, kept by the engine
    own_dates = [as_of - dt.timedelta(days=TREND_DAYS), as_of]
    dates, only, sample = own_dates, None, None
    if scorer is None:
        sample = draw_training_sample(tables, revenue, config.scoring, first=loaded.first, as_of=as_of)
        dates = sorted({*own_dates, *sample.dates})
        only = sample.signal_pairs(tables["accounts"], also_at=own_dates)
    signals = cached(account_signals_at(tables, revenue.account_months, plan_features(tables["plans"]), dates,
                                        only=only))
    accounts = accounts_table(tables, revenue.account_months, config.health, as_of=as_of, signals=signals)
    results: dict[str, pa.Table] = {}
    for n, (name, expr) in enumerate(revenue.tables.items(), start=1):
        say(f"computing {name}: {n} of {len(revenue.tables)} revenue tables")
        results[name] = money_columns(expr.to_pyarrow())
    say("scoring each account's health")  # read from the signals held above
    scored = accounts.to_pyarrow()
    if scorer is None:
        say("learning expansion and churn from the company's history")
        scorer = fit_scorer(tables, revenue, config.scoring, first=loaded.first, as_of=as_of, signals=signals,
                            sample=sample)
        scorer.card_["data_dir"] = loaded.source
    else:
        say("scoring with the saved model")
    context = account_context(tables, [as_of]).to_pyarrow()
    scored = score_accounts(scored, scorer, currency=config.revenue.reporting_currency, context=context)
    results["accounts"] = money_columns(scored)
    results["worklist"] = money_columns(weekly_worklist(scored, config.scoring, as_of=as_of))
    if "activities" in tables:
        # the plays the company logged itself, as exposures to measure (held-out accounts logged as `holdout`)
        logged = {play: (s.within_days, None if s.source == "any" else s.source)
                  for play, s in config.plays.logged.items()}
        results["play_exposures"] = assignments_from_activities(tables["activities"].to_pyarrow(), plays=logged)
    if "events" in tables:
        say("computing the expansion funnel")
        results["funnel"] = money_columns(expansion_funnel(tables["events"], results["movements"], config.plays.funnel,
                                                           as_of=as_of))
    views = usage_view(tables, as_of=as_of, config=config.usage, currency=config.revenue.reporting_currency)
    for n, (name, expr) in enumerate(views.items(), start=1):
        say(f"computing {name}: {n} of {len(views)} usage tables")
        results[name] = expr.to_pyarrow()
    notes.extend(f"{target}: {why}" for target, why in scorer.fallback_.items())
    return ComputedRun(results, notes, scorer)


def run_in_workspace(
    store: Store | Callable[[], Store],
    data_dir: str | Path,
    *,
    as_of: dt.date | None = None,
    config: UpcurveConfig | None = None,
    engine: str | ibis.BaseBackend | None = None,
    retrain: bool = False,
    out_dir: str | Path | None = None,
    fmt: str = "parquet",
    progress: Progress | None = None,
    source_mapping: str | Path | None = None,
) -> RunResult:
    """Compute a run and keep it in the workspace, whole; score with the workspace's active model unless the
    retraining policy (:func:`upcurve.scoring.model_decision`) says to train one, and register what it trained.
    With ``out_dir`` the tables are also written there as files.

    ``store`` is the workspace, or a function that opens it: called once the input is read and checked, so a run
    refused for its input (or a database that cannot be reached) creates no workspace."""
    say = progress or _quiet
    if out_dir is not None:
        check_destination(out_dir, fmt, inputs=[data_dir])
    config = config or UpcurveConfig()
    started = dt.datetime.now(dt.UTC)
    loaded = _load(data_dir, as_of, config.revenue, engine, say, source_mapping)
    store = store() if callable(store) else store
    say("choosing the model")
    active = store.active_model()
    scorer, unusable = None, None
    if active is not None and not retrain:
        try:
            scorer = AccountScorer.from_files(active.files, config.scoring, where=f"model {active.model_id}")
        except UpcurveError as exc:
            unusable = str(exc)
    decision = model_decision(active.card if active else None, config.scoring, loaded.as_of, retrain=retrain,
                              unusable=unusable)
    computed = compute_run(loaded, config, scorer=scorer if decision.use_active else None, say=say)
    notes = [*computed.notes, f"model: {decision.reason}"]
    new_model, model_id = None, active.model_id if (active and decision.use_active) else None
    trained = computed.scorer
    if not decision.use_active and trained is not None and trained.learned:
        model_id = store.new_model_id()
        new_model = ModelRecord(model_id=model_id, created_at=dt.datetime.now(dt.UTC),
                                trained_as_of=loaded.as_of, source=loaded.source, fingerprint=loaded.fingerprint,
                                kind=str(trained.card_.get("model")), active=decision.activate_new,
                                card=trained.card_, files=trained.to_files())
    say("saving the run in the workspace")
    record = store.save_run(as_of=loaded.as_of, source=loaded.source, fingerprint=loaded.fingerprint,
                            settings=config.model_dump(mode="json"), tables=computed.tables, notes=notes,
                            started_at=started, model=(model_id, decision.reason), new_model=new_model,
                            activate=decision.activate_new)
    result = RunResult(as_of=loaded.as_of, tables=computed.tables, notes=notes, policy=config.revenue,
                       model_card=trained.card_ if trained else None, run=record)
    if out_dir is not None:
        say("writing the results")
        manifest = {"upcurve": __version__, "as_of": loaded.as_of.isoformat(), "data_dir": loaded.source,
                    "run_id": record.run_id, "policy": config.revenue.model_dump(mode="json"), "notes": notes}
        result.out_dir = write_tables(result.tables, out_dir, fmt, manifest, inputs=[data_dir])
    return result


def export_run(store: Store, out_dir: str | Path, *, run_id: str | None = None, as_of: dt.date | None = None,
               fmt: str = "parquet") -> tuple[RunRecord, Path]:
    """Write the tables of a workspace run (the latest by default) as files in ``out_dir``, whole."""
    check_destination(out_dir, fmt)
    record = store.find_run(run_id, as_of=as_of)
    tables = {name: store.table(name, record.run_id) for name in record.rows}
    manifest = {"upcurve": __version__, "as_of": record.as_of.isoformat(), "run_id": record.run_id,
                "data_dir": record.source, "notes": record.notes}
    return record, write_tables(tables, out_dir, fmt, manifest, kind="export")


def simulate(
    out_dir: str | Path,
    *,
    accounts: int = 2000,
    months: int = 36,
    seed: int = 7,
    profile: str = "mid_market",
    fmt: str = "parquet",
    progress: Callable[[int, int], None] | None = None,
    oracle_months: int = 0,
    oracle_runs: int = 200,
    oracle_horizon_months: int = 3,
) -> dict[str, int]:
    """Write a simulated company's data folder (every contract table, and its ground truth in ``truth/``).

    ``oracle_months``: for that many of the last month ends whose ``oracle_horizon_months`` window the history
    holds, each paying account's true probabilities of expanding and churning within it (``truth/oracle.parquet``,
    re-simulated ``oracle_runs`` times, see :mod:`upcurve.simulate.oracle`): ``upcurve backtest --oracle``
    measures the models against them (with the same ``scoring.horizon_months``).
    Returns the rows written per table. The folder is written whole (:func:`upcurve.folders.write_folder`): an
    earlier simulated folder there is replaced, a folder holding anything else is refused.
    """
    from upcurve.simulate import PROFILES, simulate_company

    if profile not in PROFILES:
        raise UpcurveError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    if fmt not in ("parquet", "csv"):
        raise UpcurveError(f"unknown format {fmt!r}: use parquet or csv")
    rows: dict[str, int] = {}

    def fill(stage: Path) -> None:
        rows.update(simulate_company(stage, accounts=accounts, months=months, seed=seed, profile=profile, fmt=fmt,
                                     progress=progress, oracle_months=oracle_months, oracle_runs=oracle_runs,
                                     oracle_horizon_months=oracle_horizon_months))

    info = {"accounts": accounts, "months": months, "seed": seed, "profile": profile, **(
        {"oracle_months": oracle_months, "oracle_runs": oracle_runs, "oracle_horizon_months": oracle_horizon_months}
        if oracle_months else {})}
    write_folder(out_dir, fill, kind="simulation", info=info, what="simulated data")
    return rows


def check_demo_destination(out_dir: str | Path) -> None:
    """Check, before simulating, that the demo may write its folders in ``out_dir``: ``data`` (the simulated
    company) and ``results`` may only replace what an earlier demo wrote; ``workspace`` is opened (or created) as
    any workspace is, so each demo adds a run to its history."""
    out = Path(out_dir)
    check_folder_destination(out / "data", what="simulated data")
    check_destination(out / "results", "parquet", inputs=[out / "data"])


def train(
    data_dir: str | Path,
    models_dir: str | Path,
    *,
    as_of: dt.date | None = None,
    config: UpcurveConfig | None = None,
    engine: str | ibis.BaseBackend | None = None,
    progress: Progress | None = None,
    source_mapping: str | Path | None = None,
) -> AccountScorer:
    """Train the scorer on the company's history up to ``as_of`` and save it, with its model card, in
    ``models_dir``; later runs reuse it until it is trained again."""
    say = progress or _quiet
    check_model_destination(models_dir, inputs=[data_dir])
    config = config or UpcurveConfig()
    loaded = _load(data_dir, as_of, config.revenue, engine, say, source_mapping)
    say("computing MRR and movements")
    revenue = revenue_ledger(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=config.revenue)
    say("learning expansion and churn from point-in-time snapshots")
    scorer = fit_scorer(loaded.tables, revenue, config.scoring, first=loaded.first, as_of=loaded.as_of)
    scorer.card_["data_dir"] = loaded.source
    if not scorer.learned:
        why = "; ".join(f"{target}: {reason}" for target, reason in scorer.fallback_.items() if target in TARGETS)
        raise UpcurveError(f"no model was saved: {why}. Runs rank accounts by the cold-start rules until the "
                           "history is long enough.")
    scorer.save(models_dir, inputs=[data_dir])
    return scorer


@dataclass
class BacktestResult:
    """What a backtest measured: ranking metrics per cutoff, model and target, and calibration tables."""

    tables: dict[str, pa.Table]
    notes: list[str]
    cutoffs: list[dt.date]
    out_dir: Path | None = None


def backtest(
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    cutoffs: int = 4,
    as_of: dt.date | None = None,
    config: UpcurveConfig | None = None,
    engine: str | ibis.BaseBackend | None = None,
    progress: Progress | None = None,
    store: Store | None = None,
    oracle: str | Path | None = None,
    source_mapping: str | Path | None = None,
) -> BacktestResult:
    """Replay the history at the last ``cutoffs`` month ends whose outcomes are known (see
    :func:`upcurve.scoring.replay`): LightGBM, logistic regression, the cold-start rules and the health score.
    ``oracle``: a Parquet file of each account's true probabilities (a simulated company's
    ``truth/oracle.parquet``): each model's AUC is then also reported as a share of the oracle's.

    Returns the tables ``backtest_metrics`` (cutoff, target, model, auc, log_loss, brier, precision_at_k,
    lift_top_decile, base_rate, rows, lever_match, share_of_oracle), ``backtest_accounts`` (each account at each
    cutoff as the configured model scored it, and what happened after) and ``backtest_calibration`` (model, target,
    bin, rows, mean predicted, observed rate). With ``store``, the backtest is kept in the workspace (for the model
    page).
    """
    say = progress or _quiet
    if out_dir is not None:
        check_destination(out_dir, "parquet", inputs=[data_dir])
    config = config or UpcurveConfig()
    # checked before minutes of work, not after
    truth = None if oracle is None else read_oracle(oracle, horizon_months=config.scoring.horizon_months)
    loaded = _load(data_dir, as_of, config.revenue, engine, say, source_mapping)
    say("computing MRR and movements")
    revenue = revenue_ledger(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=config.revenue)
    say("computing point-in-time snapshots")  # with a draw, their keys and signals; each cutoff's as it is replayed
    dates = training_dates(loaded.first, loaded.as_of, config.scoring)
    # a history that could exceed the training sample: each cutoff's sample and accounts are drawn from the
    # snapshots' keys first, and only their signals are computed and held (a million accounts' month ends would
    # not fit in memory)
    draw = draw_backtest(loaded.tables, revenue, config.scoring, first=loaded.first, as_of=loaded.as_of,
                          cutoffs=cutoffs)
    signals = cached(account_signals_at(loaded.tables, revenue.account_months, plan_features(loaded.tables["plans"]),
                                        dates, only=None if draw is None else ibis.memtable(draw.pairs)))

    def snapshots(of: ir.Table) -> ir.Table:
        """The labelled snapshots of the signals ``of``, each with its health score."""
        labelled = labelled_snapshots(loaded.tables, revenue, config.scoring, first=loaded.first, as_of=loaded.as_of,
                                      signals=of)
        return snapshot_health(labelled, loaded.tables["accounts"], config.health, as_of=loaded.as_of)

    def snapshots_at(cutoff: int) -> pa.Table:
        """A cutoff's drawn snapshots, computed as it is replayed: a million accounts' drawn snapshots (four
        cutoffs' accounts and samples, a hundred columns each) would not fit in the engine's memory at once."""
        assert draw is not None
        pairs = ibis.memtable(draw.pairs_at[cutoff])
        return snapshots(signals.semi_join(pairs, ["as_of", "account_id"])).to_pyarrow()

    try:
        if draw is None:
            frame: pa.Table | SnapshotsAt = snapshots(signals).to_pyarrow()
            release(signals)  # the frame holds what the replays read
        else:
            frame = snapshots_at
        replayed = replay(frame, config.scoring, cutoffs=cutoffs, oracle=truth, say=say, draw=draw)
    finally:
        release(signals)  # again: a no-op
    result = BacktestResult(tables=replayed.tables, notes=replayed.notes, cutoffs=replayed.cutoffs)
    if store is not None:
        save_backtest(store, as_of=loaded.as_of, source=loaded.source, cutoffs=replayed.cutoffs, notes=result.notes,
                      tables=result.tables)
    if out_dir is not None:
        manifest = {"upcurve": __version__, "as_of": loaded.as_of.isoformat(), "command": "backtest",
                    "data_dir": loaded.source, "notes": result.notes}
        result.out_dir = write_tables(result.tables, out_dir, "parquet", manifest, inputs=[data_dir])
    return result


# -- plays --------------------------------------------------------------------------------------------------------
def _previous_run(store: Store, record: RunRecord) -> RunRecord | None:
    """The run before ``record`` in the workspace's history (to see health tiers fall)."""
    earlier = [r for r in store.runs() if (r.as_of, r.started_at) < (record.as_of, record.started_at)]
    return earlier[-1] if earlier else None


def plays_evaluation(store: Store, record: RunRecord, config: UpcurveConfig) -> pa.Table:
    """A run's accounts as the trigger rules read them (:func:`upcurve.plays.evaluation_table`)."""
    previous = _previous_run(store, record)
    return evaluation_table(
        store.table("accounts", record.run_id), store.table("worklist", record.run_id),
        store.table("accounts", previous.run_id) if previous is not None else None,
        tiers=[t.name for t in config.health.tiers], high_churn_risk=config.scoring.high_churn_risk)


def plays_run(store: Store, *, run_id: str | None = None, config: UpcurveConfig | None = None,
              dry_run: bool = False) -> PlaysPlan:
    """Fire the trigger rules on a run (the latest by default) and advance the playbooks: new actions with owners
    and due dates, steps whose day has come, their messages queued in the outbox, actions closed whose trigger
    cleared or whose success was seen. ``dry_run`` plans the same and keeps nothing."""
    config = config or UpcurveConfig()
    record = store.find_run(run_id)
    evaluated = plays_evaluation(store, record, config)
    movements = store.table("movements", record.run_id)
    currency = str(record.settings.get("revenue", {}).get("reporting_currency", "USD"))
    return apply_plays(store, lambda actions: plan_plays(
        evaluated, actions, config.plays, today=record.as_of, run_id=record.run_id, movements=movements,
        currency=currency, new_id=lambda: f"act-{uuid.uuid4().hex[:12]}"), dry_run=dry_run)


def plays_audience(store: Store, trigger: str, *, run_id: str | None = None, config: UpcurveConfig | None = None
                   ) -> pa.Table:
    """The accounts a trigger matches in a run, with the values its conditions read: who it would reach."""
    config = config or UpcurveConfig()
    if trigger not in config.plays.triggers:
        raise ConfigError(f"no trigger {trigger!r}; the triggers are {', '.join(config.plays.triggers)}")
    rule = config.plays.triggers[trigger]
    record = store.find_run(run_id)
    evaluated = plays_evaluation(store, record, config)
    columns = ["account_id", "name", "owner", *dict.fromkeys(c.column for c in (*rule.conditions,
                                                                                 *rule.alternatives))]
    matched = evaluated.filter(pa.array(matching(evaluated, rule)))
    return matched.select([c for c in columns if c in matched.column_names])


@dataclass
class DeliveryResult:
    """What one delivery pass did."""

    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def plays_deliver(store: Store, *, config: UpcurveConfig | None = None, retry_failed: bool = False,
                  now: dt.datetime | None = None, progress: Callable[[int, int], None] | None = None
                  ) -> DeliveryResult:
    """Send the outbox's due messages (see :mod:`upcurve.workspace.actions`): each delivered once, a failure
    retried later with backoff, and kept visible with its last error."""
    config = config or UpcurveConfig()
    settings = config.plays.delivery
    if retry_failed:
        outbox.retry_failed(store, now=now)
    result = DeliveryResult()
    claimed = outbox.claim_messages(store, now=now)
    for done, queued in enumerate(claimed, start=1):
        at = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        try:
            receipt = deliver(queued.message, settings)
        except DeliveryError as exc:
            later = next_attempt_at(queued.attempts + 1, at, settings, retry_after_seconds=exc.retry_after_seconds) \
                if exc.retryable else None
            outbox.record_delivery(store, queued.message_id, error=str(exc), next_attempt_at=later, now=at)
            result.failed += 1
            result.errors.append(f"{queued.target}: {exc}")
        else:
            outbox.record_delivery(store, queued.message_id, receipt=receipt, now=at)
            result.sent += 1
        if progress is not None:
            progress(done, len(claimed))
    return result


def _exposures_of_actions(actions: list[PlayAction]) -> pa.Table:
    """upcurve's own actions as exposures: each (play, account) once, from its first action (treated, or held out
    by the play's holdout)."""
    first: dict[tuple[str, str], PlayAction] = {}
    for a in sorted(actions, key=lambda a: (a.started_on, a.action_id)):
        if a.measurable:
            first.setdefault((a.play, a.account_id), a)
    chosen = list(first.values())
    return pa.table({
        "play": pa.array([a.play for a in chosen], pa.string()),
        "account_id": pa.array([a.account_id for a in chosen], pa.string()),
        "group": pa.array(["holdout" if a.held_out else "treated" for a in chosen], pa.string()),
        "started_on": pa.array([a.started_on for a in chosen], pa.date32()),
        "window_days": pa.array([a.success_window_days for a in chosen], pa.int64()),
        "success_source": pa.array([None if a.success_source in (None, "any") else a.success_source
                                    for a in chosen], pa.string()),
    })


def plays_measure(store: Store, *, run_id: str | None = None, confidence: float = 0.95) -> list[PlayUplift]:
    """What each play really moved, measured on a run (the latest by default): its treated accounts against its
    holdout (:func:`upcurve.plays.uplift`), for upcurve's own plays and the plays the company logged in
    ``activities``. A play with no holdout is reported as observational only."""
    record = store.find_run(run_id)
    movements = store.table("movements", record.run_id)
    own = _exposures_of_actions(outbox.list_actions(store, status=list(ACTION_STATUSES)))
    logged = store.table("play_exposures", record.run_id)
    parts = [t.select(own.column_names).cast(own.schema) for t in (own, logged) if t.num_rows]
    if not parts or movements.num_rows == 0:
        return []
    exposures = pa.concat_tables(parts)
    currency = str(record.settings.get("revenue", {}).get("reporting_currency", "USD"))
    return uplift(outcomes(exposures, movements, as_of=record.as_of), confidence=confidence, currency=currency)


def levers(store: Store, *, run_id: str | None = None, months: int = 12) -> pa.Table:
    """Each lever's yield over the ``months`` months up to a run (:func:`upcurve.plays.lever_yield`): the expansion
    MRR it produced, the accounts, and the effort of the plays that pulled it."""
    record = store.find_run(run_id)
    return lever_yield(store.table("movements", record.run_id),
                       outbox.list_actions(store, status=list(ACTION_STATUSES)), as_of=record.as_of, months=months)



def pricing_simulation(store: Store, scenario_path: str | Path, *, run_id: str | None = None,
                       as_of: dt.date | None = None) -> PricingImpact:
    """A price change (a scenario file) applied to a run's book of business (the latest run by default).

    Raises
    ------
    ConfigError
        The scenario is invalid, or the run kept no book of business (it is older than what-if pricing).
    """
    scenario = load_scenario(scenario_path)
    record = store.find_run(run_id, as_of=as_of)
    if "plan_mrr" not in (record.rows or {}):
        raise ConfigError(f"run {record.run_id} kept no book of business (plan_mrr): it is older than what-if "
                          "pricing; run upcurve run again")
    usage = store.table("usage_projection", record.run_id) if "usage_projection" in record.rows else pa.table({})
    accounts = store.table("accounts", record.run_id)
    keep = [c for c in ("account_id", "name", "segment", "owner", "mrr", "churn_risk") if c in accounts.column_names]
    currency = str((record.settings or {}).get("revenue", {}).get("reporting_currency", "USD"))
    return simulate_pricing(scenario, book=store.table("plan_mrr", record.run_id), usage=usage,
                            accounts=accounts.select(keep), as_of=record.as_of, currency=currency)


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote: the folder, the rows of each table, how many requests it took, and the folder's
    check against the contract."""

    out_dir: Path
    rows: dict[str, int]
    requests: int
    validation: Validation
    #: How a source with a cursor was read: ``full``, or ``sync`` (the changes since the last import); the
    #: objects a sync read again, and the cursor now kept (ISO 8601, UTC).
    mode: str = "full"
    changed: int = 0
    synced_to: str | None = None


#: The sources ``upcurve import`` reads, and what each needs.
SOURCES = {
    "stripe": "Stripe billing: customers, prices, subscriptions, invoices with every line, credit notes, and the "
              "rates Stripe converted charges at; each import after the first reads only what changed "
              "(STRIPE_API_KEY; a restricted read-only key is enough)",
    "segment": "Segment track, identify and group calls (JSON lines) as events and users, with a mapping file",
    "amplitude": "an Amplitude export (JSON lines, gzipped or not) as events and users, with a mapping file",
    "mixpanel": "a Mixpanel raw event export (JSON lines) as events and users, with a mapping file",
    "salesforce": "a Salesforce data export (Account, User, Opportunity, Case, Task, Event CSV files) or the org's "
                  "API: owners, segments, renewals, tickets and activities, into a data folder",
    "hubspot": "HubSpot's CSV exports of companies, deals, tickets, calls and meetings, or its API: owners, "
               "segments, renewals, tickets and activities, into a data folder",
}


def import_stripe(out_dir: str | Path, *, api_key: str, api_base: str | None = None, fmt: str = "csv",
                  full: bool = False, fx_rates: str | Path | None = None, say: Progress = _quiet,
                  now: float | None = None) -> ImportResult:
    """Read a Stripe account and write it as a contract folder (whole or not at all), then check it.

    When ``out_dir`` holds an earlier Stripe import whose cursor Stripe still has the events of (30 days), only the
    objects changed since are read again (:func:`upcurve.sources.stripe.sync_stripe`); ``full`` reads the whole
    account regardless. Written into an earlier import, the Stripe tables are replaced and everything else the
    folder holds (events and users, the CRM's renewals and tickets) is kept, as are the accounts' owner, segment,
    industry and region where Stripe has none (a CRM import's). ``fx_rates`` (a CSV or Parquet file of the
    contract's ``fx_rates``) is copied in as the folder's rates, and kept by later imports; daily rates (``day`` or
    ``date`` instead of ``month``) are kept day by day, one rate per currency and day. Without rates of the user's
    (now or given to an earlier import), the rates Stripe converted charges at are the folder's ``fx_rates``
    (:func:`upcurve.sources.stripe.stripe_rates`).

    Raises
    ------
    ConfigError
        No API key, an unknown format, or an ``fx_rates`` file that is missing, neither CSV nor Parquet, or
        without the columns of rates.
    ContractError
        A daily ``fx_rates`` file's every unreadable day, missing currency and rate that is not above 0.
    StripeError
        Stripe refused the key or answered with an error, or its data lacks a field a table needs (nothing is
        written then).
    OutputError
        ``out_dir`` holds anything upcurve did not write.
    """
    import time

    from upcurve.folders import folder_manifest
    from upcurve.sources.stripe import (
        STRIPE_API_VERSION,
        StripeAccount,
        read_stripe,
        stripe_rates,
        stripe_tables,
        sync_stripe,
    )

    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"unknown format {fmt!r}: use csv or parquet")
    dest = Path(out_dir)
    rates = None if fx_rates is None else Path(fx_rates)
    if rates is not None and (not rates.is_file() or rates.suffix.lower() not in (".csv", ".parquet")):
        raise ConfigError(f"{rates}: no such CSV or Parquet file of exchange rates (month, currency, rate)")
    check_folder_destination(dest, inputs=[] if rates is None else [rates], what="imported data")
    rate_file = None if rates is None else _rates_file(rates)  # read and checked before a single request
    now = time.time() if now is None else now
    earlier = folder_manifest(dest) if dest.is_dir() else None
    cache = dest / STRIPE_OBJECTS
    previous = StripeAccount.loads(cache.read_bytes()) if earlier and cache.is_file() and not full else None
    if previous is not None and previous.can_sync(now):
        account = sync_stripe(api_key, previous, api_base=api_base, say=say, now=now)
        mode = "sync"
    else:
        if earlier and cache.is_file() and not full:
            say("the last import is too old to sync (Stripe keeps 30 days of events), or was read at another "
                "API version: reading the whole account")
        account = read_stripe(api_key, api_base=api_base, say=say, now=now)
        mode = "full"
    say("mapping Stripe's objects to the contract's tables")
    tables = stripe_tables(account)
    # Stripe's own rates fill the folder's fx_rates unless the user gave rates (now, or to an earlier import)
    stripe_fx = stripe_rates(account.conversions)
    given_before = earlier.get("fx_rates") if earlier is not None and earlier.get("kind") == "import" else None
    user_rates = rates is not None or (given_before is not None and not str(given_before).startswith(STRIPE_RATES))
    synced_to = dt.datetime.fromtimestamp(account.synced_to or now, dt.UTC).isoformat(timespec="seconds")
    info = {"source": "stripe", "api_version": STRIPE_API_VERSION, "requests": account.requests, "read": mode,
            "synced_to": synced_to, "changed": account.changed,
            "objects": {"customers": len(account.customers), "prices": len(account.prices),
                        "subscriptions": len(account.subscriptions), "invoices": len(account.invoices),
                        "credit_notes": len(account.credit_notes)}}
    extra = {STRIPE_OBJECTS: account.dumps()}
    if rates is not None and rate_file is not None:
        name, blob, daily = rate_file
        extra[name] = blob
        info["fx_rates"] = f"{rates} (daily)" if daily else str(rates)
    elif stripe_fx is not None and not user_rates:
        tables["fx_rates"], settled = stripe_fx
        info["fx_rates"] = f"{STRIPE_RATES} (each day's last rate), quoted in {settled}"
    if earlier is not None and earlier.get("kind") == "import":
        old_accounts = _read_contract_file(dest, "accounts")
        if old_accounts is not None:
            tables = {**tables, "accounts": _kept_account_facts(tables["accounts"], old_accounts)}
        out = _replace_tables(dest, tables, inputs=[] if rates is None else [rates], info=info, fmt=fmt,
                              extra=extra)
    else:
        def fill(stage: Path) -> None:
            for name, table in tables.items():
                _write_contract_file(stage / f"{name}.{fmt}", table, fmt)
            for name, blob in extra.items():
                (stage / name).write_bytes(blob)

        out = write_folder(dest, fill, kind="import", inputs=[] if rates is None else [rates], info=info,
                           what="imported data")
    say("checking the folder against the contract")
    return ImportResult(out, {name: t.num_rows for name, t in tables.items()}, account.requests, check_folder(out),
                        mode=mode, changed=account.changed, synced_to=synced_to)


def _rates_file(rates: Path) -> tuple[str, bytes, bool]:
    """The folder's ``fx_rates`` file from a user's file of rates: a monthly one as it is, a daily one as the
    contract's daily rates (:func:`upcurve.sources.fx.daily_rates`): its name, its bytes, and whether the rates
    are daily."""
    import io

    import pyarrow.csv as pacsv

    from upcurve.sources.fx import daily_rates

    daily = daily_rates(rates)
    if daily is None:
        return f"fx_rates{rates.suffix.lower()}", rates.read_bytes(), False
    out = io.BytesIO()
    pacsv.write_csv(daily, out)
    return "fx_rates.csv", out.getvalue(), True


#: What a Stripe import's manifest says of ``fx_rates`` it derived from Stripe's conversions (not the user's).
STRIPE_RATES = "Stripe's own conversions"

#: Where a Stripe import keeps the objects it read and its cursor, for the next sync (hidden from the contract).
STRIPE_OBJECTS = ".stripe-objects.json.gz"


def _kept_account_facts(accounts: pa.Table, before: pa.Table) -> pa.Table:
    """``accounts`` (a source's) with what ``before`` (the folder's) knew of the same accounts kept: a value the
    source leaves empty is taken from ``before``, and ``before``'s other columns are carried (a CRM import's
    owner and segment survive the next billing import)."""
    old = {str(r["account_id"]): r for r in before.to_pylist()}
    columns = list(dict.fromkeys([*accounts.column_names, *before.column_names]))
    rows = []
    for row in accounts.to_pylist():
        kept = old.get(str(row["account_id"]), {})
        rows.append({c: row[c] if row.get(c) is not None else kept.get(c) for c in columns})
    extra = [pa.field(c, before.schema.field(c).type) for c in columns if c not in accounts.column_names]
    return pa.Table.from_pylist(rows, schema=pa.schema([*accounts.schema, *extra]))


def _read_contract_file(folder: Path, name: str) -> pa.Table | None:
    """A data folder's table ``name`` (CSV or Parquet; ids read as text), or None when it has none."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if (folder / f"{name}.parquet").is_file():
        return pq.read_table(folder / f"{name}.parquet")
    if (folder / f"{name}.csv").is_file():
        return pacsv.read_csv(folder / f"{name}.csv", convert_options=pacsv.ConvertOptions(
            column_types={"account_id": pa.string()}))
    return None


def _write_contract_file(path: Path, table: pa.Table, fmt: str) -> None:
    """A table as a CSV or Parquet file; exact decimals written as plain decimal text in CSV (10.5, not 10.500)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        pq.write_table(table, path)
        return
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_decimal(column.type):
            column = pa.array([None if v is None else format(v.normalize(), "f") for v in column.to_pylist()],
                              pa.string())
        columns[name] = column
    pacsv.write_csv(pa.table(columns), path)


def _data_format(folder: Path) -> str:
    """The file format of a data folder's tables (its invoice lines'), CSV when it has none yet."""
    return "parquet" if (folder / "invoice_lines.parquet").exists() else "csv"


def _replace_tables(folder: Path, tables: dict[str, pa.Table], *, inputs: list[str | Path],
                    info: dict[str, Any], fmt: str | None = None, extra: dict[str, bytes] | None = None) -> Path:
    """``folder`` (a data folder upcurve wrote) with ``tables`` written in place of its tables of those names (in
    ``fmt``, else its own format) and the ``extra`` files beside them; its other files as they were, and its
    manifest's description kept, updated with ``info``. Whole or not at all.

    Raises
    ------
    ConfigError
        ``folder`` does not exist (nothing to add to).
    OutputError
        ``folder`` holds anything upcurve did not write.
    """
    import json
    import shutil

    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such data folder to add to; import the billing first (upcurve import "
                          "stripe --out DATA), or write a new folder with --out")
    check_folder_destination(folder, inputs=inputs, what="imported data")
    kept = json.loads((folder / MANIFEST).read_text()) if (folder / MANIFEST).exists() else {}
    ext = fmt or _data_format(folder)
    extra = extra or {}

    replaced = {*tables, *(Path(name).stem for name in extra)}  # fx_rates.parquet gives way to fx_rates.csv

    def fill(stage: Path) -> None:
        for item in folder.iterdir():
            if item.name == MANIFEST or (item.is_file() and item.stem in replaced):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, stage / item.name)
        for name, table in tables.items():
            _write_contract_file(stage / f"{name}.{ext}", table, ext)
        for name, blob in extra.items():
            (stage / name).write_bytes(blob)

    described = {k: v for k, v in kept.items() if k not in ("written_by", "upcurve", "kind", "written_at", "files")}
    return write_folder(folder, fill, kind=str(kept.get("kind") or "import"), inputs=inputs,
                        info={**described, **info}, what="imported data")


def import_analytics(fmt: str, files: list[str | Path], *, mapping: str | Path | None = None,
                     into: str | Path | None = None, out: str | Path | None = None,
                     say: Progress = _quiet) -> ImportResult:
    """A product analytics export (Segment, Amplitude, Mixpanel) as ``events`` and ``users``: written into a data
    folder upcurve wrote (``into``: an import or a simulated company, whose other tables stay as they are), or as
    a new folder of the two tables (``out``). Either is written whole or not at all, then checked.

    Raises
    ------
    ConfigError
        An unknown format, a missing file, a wrong mapping file, or neither or both of ``into`` and ``out``.
    ContractError
        Every malformed line of the export (nothing is written).
    OutputError
        The folder holds anything upcurve did not write.
    """
    from upcurve.sources.analytics import analytics_tables, load_mapping

    target = into if out is None else out
    if target is None or (into is not None and out is not None):
        raise ConfigError("say where the events go: --into DATA (a data folder upcurve wrote) or --out DATA (a new "
                          "folder of events and users)")
    dest = Path(target)
    if into is not None and not dest.is_dir():
        raise ConfigError(f"{dest}: no such data folder to add the events to; write a new folder with --out")
    check_folder_destination(dest, inputs=files, what="imported data")  # before the export is read
    rules = load_mapping(mapping)
    say(f"reading the {fmt} export")
    tables, notes = analytics_tables(fmt, files, rules)
    about = {"format": fmt, "files": [str(f) for f in files], "notes": notes}
    if into is not None:
        written = _replace_tables(dest, tables, inputs=files, info={"analytics": about})
    else:
        def fill(stage: Path) -> None:
            for name, table in tables.items():
                _write_contract_file(stage / f"{name}.csv", table, "csv")

        written = write_folder(dest, fill, kind="import", inputs=files, info={"analytics": about},
                               what="imported data")
    for note in notes:
        say(note)
    validation = check_folder(written) if into is not None else Validation([], {})
    return ImportResult(written, {name: t.num_rows for name, t in tables.items()}, 0, validation)


def import_salesforce(export_dir: str | Path | None, *, into: str | Path, mapping: str | Path | None = None,
                      access_token: str = "", instance_url: str | None = None, session: Any = None,
                      say: Progress = _quiet) -> ImportResult:
    """A Salesforce data export's facts (or without ``export_dir`` the org's, read through its API at
    ``instance_url`` with ``access_token``) written into a data folder upcurve wrote: each matching account's
    owner, segment, industry and region, and the folder's ``renewals`` and ``tickets`` (replaced). Whole or not at
    all, then checked.

    Raises
    ------
    ConfigError
        No ``Account.csv``, no token or instance URL, a wrong mapping file, or a folder without accounts.
    ContractError
        Every missing column and unreadable date of the export (nothing is written).
    CrmError
        Salesforce refused the token or answered with an error (nothing is written).
    OutputError
        The folder holds anything upcurve did not write.
    """
    from upcurve.sources.crm import load_salesforce_mapping, salesforce_api_facts, salesforce_facts

    if export_dir is None:
        return _import_crm("Salesforce", lambda: salesforce_api_facts(
            access_token, instance_url or "", load_salesforce_mapping(mapping), session=session, say=say),
            into=into, export_dir=None, say=say)
    return _import_crm("Salesforce", lambda: salesforce_facts(export_dir, load_salesforce_mapping(mapping)),
                       into=into, export_dir=export_dir, say=say)


def import_hubspot(export_dir: str | Path | None, *, into: str | Path, mapping: str | Path | None = None,
                   access_token: str = "", api_base: str | None = None, say: Progress = _quiet) -> ImportResult:
    """HubSpot's CSV exports (companies, deals, tickets) in ``export_dir``, or without it HubSpot's API (companies,
    owners, deals and tickets with their associations, read with ``access_token``), written into a data folder
    upcurve wrote, as :func:`import_salesforce` does.

    Raises
    ------
    ConfigError
        No export of companies, two of one object, no token, a wrong mapping file, or a folder without accounts.
    ContractError
        Every missing column and unreadable date (nothing is written).
    CrmError
        HubSpot refused the token or answered with an error (nothing is written).
    OutputError
        The folder holds anything upcurve did not write.
    """
    from upcurve.sources.crm import hubspot_api_facts, hubspot_facts, load_hubspot_api_mapping, load_hubspot_mapping

    if export_dir is None:
        return _import_crm("HubSpot", lambda: hubspot_api_facts(
            access_token, load_hubspot_api_mapping(mapping), api_base=api_base, say=say),
            into=into, export_dir=None, say=say)
    return _import_crm("HubSpot", lambda: hubspot_facts(export_dir, load_hubspot_mapping(mapping)),
                       into=into, export_dir=export_dir, say=say)


def _import_crm(crm: str, read: Callable[[], CrmFacts], *, into: str | Path, export_dir: str | Path | None,
                say: Progress) -> ImportResult:
    """The CRM's facts (``read``, from ``export_dir`` or, without it, the CRM's API) merged into the data folder
    ``into``: see :func:`import_salesforce`."""
    dest = Path(into)
    inputs: list[str | Path] = [] if export_dir is None else [export_dir]
    check_folder_destination(dest, inputs=inputs, what="imported data")
    if not any((dest / f"accounts.{ext}").is_file() for ext in ("csv", "parquet")):
        raise ConfigError(f"{dest}: no accounts table to add the CRM's facts to: import the billing first "
                          "(upcurve import stripe --out DATA)")
    say(f"reading the {crm} export" if export_dir is not None else f"reading {crm}'s API")
    facts = read()
    accounts = _read_contract_file(dest, "accounts")
    assert accounts is not None  # checked above
    rows = accounts.to_pylist()
    matched = 0
    for row in rows:
        found = facts.accounts.get(str(row["account_id"]))
        if found is not None:
            matched += 1
            row.update(found)
    columns = list(dict.fromkeys([*accounts.column_names, *(k for f in facts.accounts.values() for k in f)]))
    updated = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
    notes = [*facts.notes, f"{matched:,} of {len(rows):,} accounts matched a {crm} account"]
    tables = {"accounts": updated, "renewals": facts.renewals, "tickets": facts.tickets}
    if facts.activities is not None:  # an export without activity records leaves the folder's as they are
        tables["activities"] = facts.activities
    written = _replace_tables(dest, tables, inputs=inputs,
                              info={"crm": {"source": crm.lower(), "export": "API" if export_dir is None
                                            else str(export_dir), "notes": notes}})
    for note in notes:
        say(note)
    counts = {"accounts matched": matched, **{name: t.num_rows for name, t in tables.items() if name != "accounts"}}
    return ImportResult(written, counts, 0, check_folder(written))


@dataclass
class PushResult:
    """What a push of scores to the CRM did (or, in a dry run, would do): the field changes, the CRM records
    holding a billing id and those whose account the run scored, the properties created (or to create), requests."""

    run_id: str
    changes: list[FieldChange]
    records: int
    matched: int
    accounts: int
    created: list[str]
    requests: int
    dry_run: bool


#: The CRMs scores can be pushed to.
PUSH_TARGETS = {"hubspot": "HubSpot company properties (HUBSPOT_ACCESS_TOKEN: a private app's token)",
                "salesforce": "Salesforce Account fields (SALESFORCE_ACCESS_TOKEN and SALESFORCE_INSTANCE_URL)"}


def push_scores(store: Store, crm: str, *, access_token: str, mapping: str | Path | None = None,
                run_id: str | None = None, api_base: str | None = None, dry_run: bool = False,
                say: Progress = _quiet, progress: Callable[[int, int], None] | None = None,
                session: Any = None) -> PushResult:
    """Write a run's scores (the latest by default) to the CRM's records: only the fields whose value differs, in
    batches, creating missing HubSpot properties first; ``dry_run`` reads the CRM, plans the same and writes
    nothing. ``api_base``: HubSpot's address (default: its API), or the Salesforce org's instance URL (required).
    ``session``: a ``requests`` session for Salesforce. See :mod:`upcurve.plays.crm_fields`.

    Raises
    ------
    ConfigError
        An unknown CRM, no token, a wrong mapping file, a run without scores, or fields missing that upcurve may
        not create.
    CrmError
        The CRM refused the token or answered with an error.
    """
    if crm not in PUSH_TARGETS:
        raise ConfigError(f"unknown CRM {crm!r}: scores can be pushed to {', '.join(PUSH_TARGETS)}")
    settings = load_push_mapping(mapping)
    fields = settings.fields(crm)
    batch = settings.batch(crm)
    record = store.find_run(run_id)
    desired = desired_values(store.table("accounts", record.run_id), fields)
    target: HubSpotCompanies | SalesforceAccounts = (
        HubSpotCompanies(access_token, api_base=api_base) if crm == "hubspot"
        else SalesforceAccounts(access_token, api_base or "", session=session))
    names = list(fields.values())
    missing = target.missing_properties(names)
    if missing and not (target.creates_properties and settings.create_properties):
        raise ConfigError(target.missing_message(missing))
    say(f"reading the {crm} records")
    records = target.records(settings.key(crm), [n for n in names if n not in missing])
    changes = planned_changes(desired, records)
    if missing and not dry_run and isinstance(target, HubSpotCompanies):  # the one that creates its properties
        say(f"creating {len(missing)} properties")
        target.create_properties(missing, settings)
    if changes and not dry_run:
        say(f"writing {len(changes):,} fields")
        target.write(changes, batch, progress)
    matched = sum(1 for _, account_id, _ in records if account_id in desired)
    return PushResult(record.run_id, changes, len(records), matched, len(desired), missing, target.requests, dry_run)
