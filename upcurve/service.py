"""Use cases the command line and the web call: read, check, compute, write.

This is the only layer that materialises engine tables (``to_pyarrow``); everything below it returns Ibis
expressions.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from upcurve import __version__
from upcurve.config import RevenuePolicy
from upcurve.contract import known_at, plan_features, read_folder, typed_tables, validate
from upcurve.engine import connect, file_reader, hand_over, tune_for_compute
from upcurve.errors import ContractError, Problem, UpcurveError
from upcurve.folders import check_destination as check_folder_destination
from upcurve.folders import write_folder
from upcurve.outputs import check_destination, money_columns, write_tables
from upcurve.revenue import (
    account_growth,
    account_month_facts,
    account_months_from_pairs,
    cohort_retention,
    entity_movements,
    expansion_by_source,
    fact_sums,
    line_months,
    metrics_from_sums,
    month_calendar,
    month_end,
    month_index,
    month_label,
    movements,
    product_account_months,
    product_months,
    product_pairs,
    segment_metrics,
    services_revenue,
)
from upcurve.scoring import (
    AccountScorer,
    calibration_table,
    premium_add_ons,
    ranking_metrics,
    rule_scores,
    snapshot_dates,
    training_snapshots,
)
from upcurve.scoring.worklist import weekly_worklist
from upcurve.settings_file import UpcurveConfig
from upcurve.signals import account_signals_at
from upcurve.signals.health import health_scores

__all__ = [
    "BacktestResult",
    "RevenueTables",
    "RunResult",
    "backtest",
    "check_folder",
    "compute_revenue",
    "fit_scorer",
    "run",
    "score_accounts",
    "simulate",
    "training_dates",
]

Progress = Callable[[str], None]
REVENUE_TABLES = ("mrr", "movements", "metrics", "expansion_by_source", "segments", "cohorts", "account_growth")


@dataclass
class RunResult:
    """What a run computed: its tables (as Arrow, money as decimals) and what it noticed on the way."""

    as_of: dt.date
    tables: dict[str, pa.Table]
    notes: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    policy: RevenuePolicy = field(default_factory=lambda: RevenuePolicy())
    model_card: dict[str, Any] | None = None


@dataclass
class RevenueTables:
    """The revenue tables as engine expressions (cents), before materialising."""

    calendar: ir.Table
    product_months: ir.Table
    account_months: ir.Table
    movements: ir.Table
    tables: dict[str, ir.Table]


def check_folder(data_dir: str | Path, *, reporting_currency: str = "USD",
                 engine_url: str = "duckdb://") -> list[Problem]:
    """Every problem of a data folder against the input contract (errors first, then notes), read by the engine's
    file reader (so its memory settings apply)."""
    try:
        folder = read_folder(data_dir, file_reader(connect(engine_url)))
    except ContractError as exc:
        return exc.problems
    return validate(folder, reporting_currency=reporting_currency)


def _as_of_bounds(lines: ir.Table, as_of: dt.date | None, *, today: dt.date | None = None,
                   notes: list[str] | None = None) -> tuple[dt.date, dt.date]:
    """The first billed day and the as-of date of a run.

    The default as-of date is the start of the latest invoice line that starts on or before today: the last day
    the data is known to be complete (a line is issued when its period starts). Lines dated in the future, such
    as a typo of 2031 for 2021, cannot move it; they are left out and a note says so.
    """
    today = today or dt.date.today()
    bounds = lines.aggregate(
        first=lines.period_start.min(),
        last=ibis.ifelse(lines.period_start <= today, lines.period_start, ibis.null("date")).max(),
    ).to_pyarrow()
    first, last = bounds["first"][0].as_py(), bounds["last"][0].as_py()
    if first is None:
        raise UpcurveError("invoice_lines has no rows: there is no revenue to measure")
    if as_of is None:
        if last is None:
            raise UpcurveError(f"every invoice line starts after today ({today}); pass --as-of to measure a date")
        as_of = last
        if notes is not None:
            notes.append(f"as of {as_of}, the start of the latest invoice line (pass --as-of to measure another "
                         "date)")
    if as_of < first:
        raise UpcurveError(f"--as-of {as_of} is before the first billed day in invoice_lines ({first})")
    return first, as_of


EVENT_SCALE = ("events", "usage")


def compute_accounts(
    tables: dict[str, ir.Table], revenue: RevenueTables, config: UpcurveConfig, *, as_of: dt.date,
    signals: ir.Table | None = None,
) -> ir.Table:
    """The ``accounts`` table: one row per account with its attributes, signals, health and its trend.

    ``signals``: :func:`account_signals_at` already computed at ``as_of`` and 30 days before (among other dates).
    """
    accounts = tables["accounts"]
    before_day = as_of - dt.timedelta(days=30)
    if signals is None:
        signals = account_signals_at(tables, revenue.account_months, plan_features(tables["plans"]),
                                     [before_day, as_of])
    now = signals.filter(signals.as_of == as_of).drop("as_of")
    then = signals.filter(signals.as_of == before_day).drop("as_of")
    segments = accounts.select("account_id", "segment")
    health = health_scores(now, config.health, as_of=as_of, segments=segments)
    health_then = health_scores(then, config.health, as_of=before_day, segments=segments)
    health_then = health_then.select("account_id", health_score_30d_ago="health_score")
    out = accounts.select("account_id", *[c for c in ("name", "segment", "owner") if c in accounts.columns])
    out = out.left_join(now, "account_id").select(out, *[c for c in now.columns if c != "account_id"])
    out = out.left_join(health, "account_id").select(out, *[c for c in health.columns if c != "account_id"])
    out = out.left_join(health_then, "account_id").select(out, "health_score_30d_ago")
    # Health is a customer's: an account paying nothing at the as-of date has signals but no score.
    customer = out.mrr_cents > 0
    health_cols = [c for c in health.columns if c != "account_id"] + ["health_score_30d_ago"]
    out = out.mutate(**{c: ibis.ifelse(customer, out[c], ibis.null(out[c].type())) for c in health_cols})
    delta = out.health_score - out.health_score_30d_ago
    trend = ibis.cases((delta > 2, "up"), (delta < -2, "down"), (delta.notnull(), "same"), else_=ibis.null("string"))
    out = out.mutate(health_trend=trend)
    return out.order_by(ibis.desc(customer), ibis.desc(out.health_score), ibis.desc(out.mrr_cents), out.account_id)


def compute_revenue(
    tables: dict[str, ir.Table], *, as_of: dt.date, first: dt.date, policy: RevenuePolicy
) -> RevenueTables:
    """Build every revenue table as an expression on the tables' engine, caching the shared intermediate ones."""
    cal = month_calendar(first, as_of)
    lines, plans, fx = tables["invoice_lines"], tables["plans"], tables.get("fx_rates")
    lm = line_months(lines, plans, fx, cal, policy=policy)
    pm = product_months(lm).cache()
    pairs = product_pairs(pm, cal).cache()
    am = account_months_from_pairs(pairs).cache()
    mv = movements(pm, cal, policy=policy, account_months=am, product_pairs=pairs).cache()
    pam = product_account_months(pairs)
    pmv = entity_movements(pam, ["account_id", "product"], policy=policy).cache()
    # Every metric, overall and by segment, is a sum of these facts. They are left as expressions: cached, they
    # held a gigabyte more at 100,000 accounts than recomputing them costs in time.
    facts = account_month_facts(am, mv)
    product_facts = account_month_facts(pam, pmv, ["account_id", "product"])
    services = services_revenue(lines, fx, cal, policy=policy)
    months = cal.select("month_idx", "month")
    mrr = pm.filter(pm.mrr_cents != 0).join(months, "month_idx")
    out = {
        "mrr": mrr.select("month_idx", "month", "account_id", "product", "mrr_cents").order_by(
            ["month_idx", "account_id", "product"]
        ),
        "movements": mv.join(months, "month_idx")
        .select("month_idx", "month", "account_id", "type", "source", "amount_cents")
        .order_by(["month_idx", "account_id", "type", "source"]),
        "metrics": metrics_from_sums(fact_sums(facts), cal, services=services),
        "expansion_by_source": expansion_by_source(mv, cal),
        "segments": segment_metrics(tables["accounts"], facts, product_facts, cal, policy=policy),
        "cohorts": cohort_retention(am, cal),
        "account_growth": account_growth(am, pm, mv, cal),
    }
    return RevenueTables(cal, pm, am, mv, out)


@dataclass
class Loaded:
    """A checked data folder, cut at its as-of date and handed to the engine."""

    as_of: dt.date
    first: dt.date
    tables: dict[str, ir.Table]
    notes: list[str]


def _load(data_dir: str | Path, as_of: dt.date | None, policy: RevenuePolicy, engine_url: str,
          say: Progress) -> Loaded:
    engine = connect(engine_url)
    say("reading and checking the input")
    folder = read_folder(data_dir, file_reader(engine))
    problems = validate(folder, reporting_currency=policy.reporting_currency)
    if any(p.severity == "error" for p in problems):
        raise ContractError(problems)
    notes = [p.describe() for p in problems]
    typed = typed_tables(folder)
    first, as_of = _as_of_bounds(typed["invoice_lines"], as_of, notes=notes)
    lines = typed["invoice_lines"]
    later = lines.filter(lines.period_start > as_of).aggregate(n=ibis._.count(), last=ibis._.period_start.max())
    later_row = later.to_pyarrow().to_pylist()[0]
    if later_row["n"]:
        notes.append(f"{later_row['n']} invoice lines start after the as-of date {as_of} (the latest on "
                     f"{later_row['last']}) and were left out of this run")
    typed = known_at(typed, as_of)
    say("loading into the engine")
    tables = hand_over(engine, typed, in_place=EVENT_SCALE)
    tune_for_compute(engine)
    return Loaded(as_of, first, tables, notes)


def training_dates(first: dt.date, as_of: dt.date, config: UpcurveConfig) -> list[dt.date]:
    """The month ends, after the warm-up, whose whole outcome window has passed by ``as_of``."""
    cfg = config.scoring
    # the as-of month counts as seen only when the as-of date is its last day
    seen = month_index(as_of) - (0 if (as_of + dt.timedelta(days=1)).day == 1 else 1)
    last = seen - cfg.horizon_months
    dates = [d for d in snapshot_dates(first, month_end(last), warmup_months=cfg.warmup_months) if d <= as_of]
    return dates or [month_end(month_index(first))]


def labelled_snapshots(tables: dict[str, ir.Table], revenue: RevenueTables, config: UpcurveConfig, *,
                       first: dt.date, as_of: dt.date, signals: ir.Table | None = None) -> ir.Table:
    """Month-end snapshots of every paying account up to ``as_of`` whose whole horizon has passed by then, with
    their outcomes (see :func:`training_dates`)."""
    return training_snapshots(tables, revenue.account_months, revenue.movements, revenue.calendar,
                              plan_features(tables["plans"]), training_dates(first, as_of, config),
                              horizon_months=config.scoring.horizon_months, product_months=revenue.product_months,
                              premium=premium_add_ons(tables["plans"]), signals=signals)


def fit_scorer(tables: dict[str, ir.Table], revenue: RevenueTables, config: UpcurveConfig, *, first: dt.date,
               as_of: dt.date, signals: ir.Table | None = None) -> AccountScorer:
    """An :class:`AccountScorer` trained on the snapshots whose outcomes are known at ``as_of``."""
    if signals is None:
        # held by the engine: the labels and the features both read it, and it must not be computed twice
        signals = account_signals_at(tables, revenue.account_months, plan_features(tables["plans"]),
                                     training_dates(first, as_of, config)).cache()
    frame = labelled_snapshots(tables, revenue, config, first=first, as_of=as_of, signals=signals).to_pyarrow()
    scorer = AccountScorer(config.scoring).fit(frame)
    scorer.card_["as_of"] = as_of.isoformat()
    return scorer


def check_model_destination(models_dir: str | Path, *, inputs: list[str | Path]) -> Path:
    """Check, before computing, that a model may be saved in ``models_dir`` (see
    :func:`upcurve.folders.check_destination`)."""
    return check_folder_destination(models_dir, inputs=inputs, what="model")


def _saved_scorer(models_dir: str | Path, config: UpcurveConfig, as_of: dt.date) -> AccountScorer:
    """The scorer saved in ``models_dir``, if it may score at ``as_of`` with these settings."""
    scorer = AccountScorer.load(models_dir, config.scoring)
    card = scorer.card_
    trained = card.get("as_of")
    if trained and dt.date.fromisoformat(trained) > as_of:
        raise UpcurveError(f"{models_dir}: the saved model learned from data up to {trained}, after this run's "
                           f"as-of date {as_of}; scoring the past with it would use the future. Train one at "
                           f"{as_of} (`upcurve train --as-of {as_of}`) or run without --models.")
    for key in ("horizon_months", "model"):
        if card.get(key) != getattr(config.scoring, key):
            raise UpcurveError(f"{models_dir}: the saved model has {key} = {card.get(key)!r} but the settings say "
                               f"{getattr(config.scoring, key)!r}; retrain it (`upcurve run --retrain` or "
                               "`upcurve train`)")
    return scorer


def score_accounts(accounts: pa.Table, scorer: AccountScorer) -> pa.Table:
    """``accounts`` with the scorer's columns, in the same order; accounts paying nothing at the as-of date are not
    scored."""
    paying = accounts.filter(pc.greater(accounts["mrr_cents"].fill_null(0), 0))
    scores = scorer.score(paying)
    at = pc.index_in(accounts["account_id"], value_set=scores["account_id"])
    out = accounts
    for name in scores.column_names[1:]:
        out = out.append_column(name, scores[name].take(at))
    return out


def run(
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    as_of: dt.date | None = None,
    fmt: str = "parquet",
    config: UpcurveConfig | None = None,
    engine_url: str = "duckdb://",
    progress: Progress | None = None,
    models_dir: str | Path | None = None,
    retrain: bool = False,
) -> RunResult:
    """Read and check a data folder, compute every table at ``as_of`` and write them to ``out_dir``.

    Accounts are scored by the model saved in ``models_dir`` when there is one (unless ``retrain``); otherwise a
    model is trained on the company's history up to ``as_of`` and, when ``models_dir`` is given, saved there.

    Raises
    ------
    ContractError
        Listing every problem of the input; nothing is written.
    """
    say = progress or (lambda _msg: None)
    if out_dir is not None:
        check_destination(out_dir, fmt, inputs=[data_dir])
    if models_dir is not None:
        check_model_destination(models_dir, inputs=[data_dir])
    config = config or UpcurveConfig()
    policy = config.revenue
    loaded = _load(data_dir, as_of, policy, engine_url, say)
    as_of, tables, notes = loaded.as_of, loaded.tables, loaded.notes
    say("computing MRR, movements and metrics")
    revenue = compute_revenue(tables, as_of=as_of, first=loaded.first, policy=policy)
    say("computing account signals and health")
    use_saved = models_dir is not None and not retrain and (Path(models_dir) / "model_card.json").exists()
    # the signals now, 30 days ago and, to learn from, at every past month end: one query, kept by the engine
    dates = {as_of, as_of - dt.timedelta(days=30)}
    if not use_saved:
        dates.update(training_dates(loaded.first, as_of, config))
    signals = account_signals_at(tables, revenue.account_months, plan_features(tables["plans"]),
                                 sorted(dates)).cache()
    accounts = compute_accounts(tables, revenue, config, as_of=as_of, signals=signals)
    results: dict[str, pa.Table] = {}
    for name, expr in revenue.tables.items():
        say(f"computing {name}")
        results[name] = money_columns(expr.to_pyarrow())
    scored = accounts.to_pyarrow()
    scorer = None
    if use_saved and models_dir is not None:
        say(f"scoring with the model saved in {models_dir}")
        scorer = _saved_scorer(models_dir, config, as_of)
    else:
        say("learning expansion and churn from the company's history")
        scorer = fit_scorer(tables, revenue, config, first=loaded.first, as_of=as_of, signals=signals)
        scorer.card_["data_dir"] = str(Path(data_dir).resolve())
        if models_dir is not None and not scorer.fallback_.get("expansion"):
            scorer.save(models_dir, inputs=[data_dir])
    scored = score_accounts(scored, scorer)
    results["accounts"] = money_columns(scored)
    results["worklist"] = money_columns(weekly_worklist(scored, config.scoring, as_of=as_of))
    notes.extend(f"{target}: {why}" for target, why in scorer.fallback_.items())
    result = RunResult(as_of=as_of, tables=results, notes=notes, policy=policy, model_card=scorer.card_)
    if out_dir is not None:
        say("writing the results")
        manifest = {
            "upcurve": __version__,
            "as_of": as_of.isoformat(),
            "data_dir": str(Path(data_dir).resolve()),
            "policy": policy.model_dump(mode="json"),
            "notes": notes,
        }
        result.out_dir = write_tables(results, out_dir, fmt, manifest, inputs=[data_dir])
    return result


def simulate(
    out_dir: str | Path,
    *,
    accounts: int = 2000,
    months: int = 36,
    seed: int = 7,
    profile: str = "mid_market",
    fmt: str = "parquet",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Write a simulated company's data folder (every contract table, and its ground truth in ``truth/``).

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
                                     progress=progress))

    info = {"accounts": accounts, "months": months, "seed": seed, "profile": profile}
    write_folder(out_dir, fill, kind="simulation", info=info, what="simulated data")
    return rows


def check_demo_destination(out_dir: str | Path) -> None:
    """Check, before simulating, that the demo may write its three folders in ``out_dir``: ``data`` (the simulated
    company), ``results`` and ``models``; each may only replace what an earlier demo wrote."""
    out = Path(out_dir)
    check_folder_destination(out / "data", what="simulated data")
    check_destination(out / "results", "parquet", inputs=[out / "data"])
    check_model_destination(out / "models", inputs=[out / "data"])


def train(
    data_dir: str | Path,
    models_dir: str | Path,
    *,
    as_of: dt.date | None = None,
    config: UpcurveConfig | None = None,
    engine_url: str = "duckdb://",
    progress: Progress | None = None,
) -> AccountScorer:
    """Train the scorer on the company's history up to ``as_of`` and save it, with its model card, in
    ``models_dir``; later runs reuse it until it is trained again."""
    say = progress or (lambda _msg: None)
    check_model_destination(models_dir, inputs=[data_dir])
    config = config or UpcurveConfig()
    loaded = _load(data_dir, as_of, config.revenue, engine_url, say)
    say("computing MRR and movements")
    revenue = compute_revenue(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=config.revenue)
    say("learning expansion and churn from point-in-time snapshots")
    scorer = fit_scorer(loaded.tables, revenue, config, first=loaded.first, as_of=loaded.as_of)
    scorer.card_["data_dir"] = str(Path(data_dir).resolve())
    if "expansion" in scorer.fallback_:
        raise UpcurveError(f"no model was saved: {scorer.fallback_['expansion']}. Runs rank accounts by the "
                           "cold-start rules until the history is long enough.")
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
    engine_url: str = "duckdb://",
    progress: Progress | None = None,
) -> BacktestResult:
    """Replay the history: at each of the last ``cutoffs`` month ends whose outcomes are known (``horizon`` apart,
    so their outcome windows do not overlap), train every model on what was known then, score that month's
    accounts and compare with what happened.

    Models: LightGBM, logistic regression, the cold-start rules and the health score. Returns the tables
    ``backtest_metrics`` (cutoff, target, model, auc, log_loss, brier, precision_at_k, lift_top_decile, base_rate,
    rows, lever_match) and ``backtest_calibration`` (model, target, bin, rows, mean predicted, observed rate). A
    model that could not be trained at a cutoff is reported as such, and the rules stand in.
    """
    say = progress or (lambda _msg: None)
    if out_dir is not None:
        check_destination(out_dir, "parquet", inputs=[data_dir])
    config = config or UpcurveConfig()
    cfg = config.scoring
    loaded = _load(data_dir, as_of, config.revenue, engine_url, say)
    say("computing MRR and movements")
    revenue = compute_revenue(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=config.revenue)
    say("computing point-in-time snapshots")
    signals = account_signals_at(loaded.tables, revenue.account_months, plan_features(loaded.tables["plans"]),
                                 training_dates(loaded.first, loaded.as_of, config)).cache()
    snaps = labelled_snapshots(loaded.tables, revenue, config, first=loaded.first, as_of=loaded.as_of,
                               signals=signals)
    keyed = snaps.mutate(_key=snaps.account_id + "@" + snaps.snapshot_idx.cast("string"))
    # the health score of each snapshot row, with its segment's weights (rows keyed account@month)
    accounts = loaded.tables["accounts"]
    segment = accounts.select("account_id", "segment") if "segment" in accounts.columns else None
    segments = None
    if segment is not None:
        k = keyed.select("account_id", "_key").view()
        segments = k.join(segment, "account_id").select(account_id=k._key, segment=segment.segment)
    health = health_scores(keyed.mutate(account_id=keyed._key), config.health, as_of=loaded.as_of,
                           segments=segments)
    health = health.select(_key="account_id", health_score="health_score")
    snaps = keyed.left_join(health, "_key").select(keyed, health.health_score).drop("_key")
    frame = snaps.to_pyarrow()
    months = sorted(set(frame["snapshot_idx"].to_pylist()))
    picked = [m for m in months[::-1][::cfg.horizon_months]][:cutoffs][::-1]
    notes: list[str] = []
    needed = cfg.min_training_months + cfg.horizon_months + cfg.calibration_months
    rows: list[dict[str, Any]] = []
    calib: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    idx = np.asarray(frame["snapshot_idx"].to_pylist())
    if not picked or len([m for m in months if m + cfg.horizon_months <= picked[0]]) < needed:
        notes.append(f"history too short for a model: {len(months)} months of snapshots with known outcomes; "
                     f"a backtest needs {needed} months before a cutoff plus {cfg.horizon_months} to see outcomes. "
                     "Accounts are ranked by the cold-start rules until then.")
    for cutoff in picked:
        say(f"replaying {month_label(cutoff)}")
        train = frame.filter(pa.array(idx + cfg.horizon_months <= cutoff))
        test = frame.filter(pa.array(idx == cutoff))
        y = {t: np.asarray(test[c].to_pylist(), dtype=int) for t, c in (("expansion", "label_expansion"),
                                                                       ("churn", "label_churn"))}
        truth_lever = test["expansion_lever"].to_pylist()
        for kind in ("lightgbm", "logistic"):
            scorer = AccountScorer(cfg.model_copy(update={"model": kind})).fit(train)
            scores = scorer.score(test)
            for target, column in (("expansion", "expansion_propensity"), ("churn", "churn_risk")):
                p = np.asarray(scores[column].to_pylist(), dtype=float)
                fell_back = target in scorer.fallback_
                name = "rules" if fell_back else kind
                m = ranking_metrics(y[target], p, probabilities=not fell_back)
                row = {"cutoff": month_end(cutoff), "target": target, "model": name, **m}
                if target == "expansion":
                    levers = scores["recommended_lever"].to_pylist()
                    pairs = [(a, b) for a, b in zip(levers, truth_lever, strict=True) if b is not None]
                    row["lever_match"] = (sum(a == b for a, b in pairs) / len(pairs)) if pairs else math.nan
                if fell_back:  # the rules' own row below stands for it
                    why = f"{month_label(cutoff)}, {target}: no {kind} model ({scorer.fallback_[target]})"
                    if why not in notes:
                        notes.append(why)
                    continue
                calib.setdefault((kind, target), []).append((p, y[target]))
                rows.append(row)
        rules = rule_scores(test, cfg.rules)
        h = np.asarray([math.nan if v is None else v for v in test["health_score"].to_pylist()], dtype=float)
        for target, score in (("expansion", rules["expansion"]), ("churn", rules["churn"])):
            rows.append({"cutoff": month_end(cutoff), "target": target, "model": "rules",
                         **ranking_metrics(y[target], score, probabilities=False)})
        for target, score in (("expansion", h), ("churn", 100 - h)):
            rows.append({"cutoff": month_end(cutoff), "target": target, "model": "health_score",
                         **ranking_metrics(y[target], score, probabilities=False)})
    metrics = _rows_table(rows, ["cutoff", "target", "model", "auc", "log_loss", "brier", "precision_at_k",
                                 "lift_top_decile", "base_rate", "rows", "lever_match"])
    tables = {"backtest_metrics": metrics, "backtest_calibration": calibration_table(calib)}
    result = BacktestResult(tables=tables, notes=notes, cutoffs=[month_end(c) for c in picked])
    if out_dir is not None:
        manifest = {"upcurve": __version__, "as_of": loaded.as_of.isoformat(), "command": "backtest",
                    "data_dir": str(Path(data_dir).resolve()), "notes": notes}
        result.out_dir = write_tables(tables, out_dir, "parquet", manifest, inputs=[data_dir])
    return result


def _rows_table(rows: list[dict[str, Any]], columns: list[str]) -> pa.Table:
    return pa.table({c: [r.get(c) for r in rows] for c in columns})
