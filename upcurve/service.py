"""Use cases the command line and the web call: read, check, compute, write.

This is the only layer that materialises engine tables (``to_pyarrow``); everything below it returns Ibis
expressions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from upcurve import __version__
from upcurve.config import RevenuePolicy
from upcurve.contract import known_at, plan_features, read_folder, typed_tables, validate
from upcurve.engine import connect, file_reader, hand_over, tune_for_compute
from upcurve.errors import ContractError, Problem, UpcurveError
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
    movements,
    product_account_months,
    product_months,
    product_pairs,
    segment_metrics,
    services_revenue,
)
from upcurve.settings_file import UpcurveConfig
from upcurve.signals import account_signals_at
from upcurve.signals.health import health_scores

__all__ = ["RevenueTables", "RunResult", "check_folder", "compute_revenue", "run", "simulate"]

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


@dataclass
class RevenueTables:
    """The revenue tables as engine expressions (cents), before materialising."""

    calendar: ir.Table
    product_months: ir.Table
    account_months: ir.Table
    movements: ir.Table
    tables: dict[str, ir.Table]


def check_folder(data_dir: str | Path, *, reporting_currency: str = "USD") -> list[Problem]:
    """Every problem of a data folder against the input contract (errors first, then notes)."""
    try:
        folder = read_folder(data_dir, file_reader(connect()))
    except ContractError as exc:
        return exc.problems
    return validate(folder, reporting_currency=reporting_currency)


def _as_of_bounds(lines: ir.Table, as_of: dt.date | None) -> tuple[dt.date, dt.date]:
    bounds = lines.aggregate(first=lines.period_start.min(), last=lines.period_start.max()).to_pyarrow()
    first, last = bounds["first"][0].as_py(), bounds["last"][0].as_py()
    if first is None:
        raise UpcurveError("invoice_lines has no rows: there is no revenue to measure")
    if as_of is None:
        as_of = last
    if as_of < first:
        raise UpcurveError(f"--as-of {as_of} is before the first billed day in invoice_lines ({first})")
    return first, as_of


EVENT_SCALE = ("events", "usage")


def compute_accounts(
    tables: dict[str, ir.Table], revenue: RevenueTables, config: UpcurveConfig, *, as_of: dt.date
) -> ir.Table:
    """The ``accounts`` table: one row per account with its attributes, signals, health and its trend."""
    features = plan_features(tables["plans"])
    accounts = tables["accounts"]
    before_day = as_of - dt.timedelta(days=30)
    both = account_signals_at(tables, revenue.account_months, features, [before_day, as_of])
    now = both.filter(both.as_of == as_of).drop("as_of")
    then = both.filter(both.as_of == before_day).drop("as_of")
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


def run(
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    as_of: dt.date | None = None,
    fmt: str = "parquet",
    config: UpcurveConfig | None = None,
    engine_url: str = "duckdb://",
    progress: Progress | None = None,
) -> RunResult:
    """Read and check a data folder, compute every revenue table at ``as_of`` and write them to ``out_dir``.

    Raises
    ------
    ContractError
        Listing every problem of the input; nothing is written.
    """
    say = progress or (lambda _msg: None)
    if out_dir is not None:
        check_destination(out_dir, fmt)
    config = config or UpcurveConfig()
    policy = config.revenue
    engine = connect(engine_url)
    say("reading and checking the input")
    folder = read_folder(data_dir, file_reader(engine))
    problems = validate(folder, reporting_currency=policy.reporting_currency)
    if any(p.severity == "error" for p in problems):
        raise ContractError(problems)
    notes = [p.describe() for p in problems]
    typed = typed_tables(folder)
    first, as_of = _as_of_bounds(typed["invoice_lines"], as_of)
    lines = typed["invoice_lines"]
    later = int(lines.filter(lines.period_start > as_of).count().to_pyarrow().as_py())
    if later:
        notes.append(f"{later} invoice lines start after the as-of date {as_of} and were left out of this run")
    typed = known_at(typed, as_of)
    say("loading into the engine")
    tables = hand_over(engine, typed, in_place=EVENT_SCALE)
    tune_for_compute(engine)
    say("computing MRR, movements and metrics")
    revenue = compute_revenue(tables, as_of=as_of, first=first, policy=policy)
    say("computing account signals and health")
    revenue.tables["accounts"] = compute_accounts(tables, revenue, config, as_of=as_of)
    results: dict[str, pa.Table] = {}
    for name, expr in revenue.tables.items():
        say(f"computing {name}")
        results[name] = money_columns(expr.to_pyarrow())
    result = RunResult(as_of=as_of, tables=results, notes=notes, policy=policy)
    if out_dir is not None:
        say("writing the results")
        manifest = {
            "upcurve": __version__,
            "as_of": as_of.isoformat(),
            "data_dir": str(Path(data_dir).resolve()),
            "policy": policy.model_dump(mode="json"),
            "notes": notes,
        }
        result.out_dir = write_tables(results, out_dir, fmt, manifest)
    return result


def simulate(
    out_dir: str | Path,
    *,
    accounts: int = 2000,
    months: int = 36,
    seed: int = 7,
    profile: str = "mid_market",
    fmt: str = "parquet",
    replace: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Write a simulated company's data folder (every contract table, and its ground truth in ``truth/``).

    Returns the rows written per table. ``replace`` lets it overwrite an earlier simulated folder.
    """
    from upcurve.simulate import PROFILES, simulate_company

    if profile not in PROFILES:
        raise UpcurveError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    if fmt not in ("parquet", "csv"):
        raise UpcurveError(f"unknown format {fmt!r}: use parquet or csv")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not replace:
            raise UpcurveError(f"{out} is not empty; choose a new folder")
        for old in [*out.glob("*.csv"), *out.glob("*.parquet"), *out.glob("truth/*.parquet")]:
            old.unlink()
    return simulate_company(out, accounts=accounts, months=months, seed=seed, profile=profile, fmt=fmt,
                            progress=progress)
