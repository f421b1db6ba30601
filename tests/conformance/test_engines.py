"""The revenue and signals tables on DuckDB, SQLite, local Spark and PostgreSQL: the same company, the same rows.

Each engine is given the company as a user's run gives it (:func:`upcurve.sources.load_folder`: checked by DuckDB,
then handed over: Parquet files that Spark reads itself, rows through Arrow to SQLite and to a real PostgreSQL
server the tests start), and each table is compared
row for row with DuckDB's. A gap an engine is known to have is declared in ``KNOWN_GAPS`` with its reason; when it
is mended the test fails until the declaration is removed.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable
from functools import cache
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pytest

from upcurve.config import RevenuePolicy
from upcurve.contract import plan_features
from upcurve.engine import as_int, cached, connect, round_half_away, strip_spaces
from upcurve.outputs import money_columns
from upcurve.revenue import revenue_tables
from upcurve.signals import TREND_DAYS, account_signals_at, accounts_table
from upcurve.signals.health import HealthConfig
from upcurve.signals.usage import USAGE_TABLES, usage_view
from upcurve.simulate import simulate_tables, write_folder
from upcurve.sources import LoadedData, load_folder

AS_OF = dt.date(2024, 12, 31)
#: signals at the as-of date, a month before (the day the accounts table's health trend starts from) and a year
#: before (when some accounts had not started)
DATES = [dt.date(2023, 12, 31), AS_OF - dt.timedelta(days=TREND_DAYS), AS_OF]
REVENUE = ["mrr", "movements", "metrics", "expansion_by_source", "segments", "cohorts", "account_growth",
           "plan_mrr", "coupon_mrr"]
#: one Spark core (the suite runs on two workers on two cores); for a company this small, no adaptive planning,
#: which costs more than it saves (the results are the same either way)
SPARK = ("pyspark://?spark.master=local%5B1%5D&spark.sql.shuffle.partitions=1&spark.default.parallelism=1"
         "&spark.sql.adaptive.enabled=false")

#: the gaps each engine is known to have: (engine, table) → why. None today; one declared here must still differ.
KNOWN_GAPS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small usage-led company with every table (product events, metered usage, renewals, tickets, NPS...), as
    Parquet files; its exchange rates daily (each month's rate on the 1st, and another on the 17th)."""
    tables = simulate_tables(30, 24, seed=5, profile="usage_led", events=True)
    monthly = tables["fx_rates"].to_pylist()
    daily = [{"day": dt.date.fromisoformat(f"{r['month']}-{day:02d}"), "currency": r["currency"],
              "rate": round(r["rate"] * factor, 6)} for r in monthly for day, factor in ((1, 1.0), (17, 1.013))]
    tables["fx_rates"] = pa.Table.from_pylist(daily)
    return write_folder(tables, tmp_path_factory.mktemp("company"), "parquet")


def _loaded(company: Path, engine: ibis.BaseBackend) -> LoadedData:
    return load_folder(company, engine, as_of=AS_OF, policy=RevenuePolicy())


def _tables(loaded: LoadedData) -> dict[str, Callable[[], ir.Table]]:
    """Each table to compare, computed as a run computes it (:func:`upcurve.usecases.compute_run`): the signals at
    every date in one query, held by the engine, and the accounts table read from them."""
    tables = loaded.tables
    revenue = revenue_tables(tables, as_of=AS_OF, first=loaded.first, policy=RevenuePolicy())

    @cache
    def signals() -> ir.Table:
        return cached(account_signals_at(tables, revenue.account_months, plan_features(tables["plans"]), DATES))

    def accounts() -> ir.Table:
        return accounts_table(tables, revenue.account_months, HealthConfig(), as_of=AS_OF, signals=signals())

    usage = usage_view(tables, as_of=AS_OF)
    return {**{name: _as_is(revenue.tables[name]) for name in REVENUE}, "signals": signals, "accounts": accounts,
            **{name: _as_is(expr) for name, expr in usage.items()}}


def _as_is(table: ir.Table) -> Callable[[], ir.Table]:
    return lambda: table


_RESULTS: dict[str, dict[str, pa.Table | Exception]] = {}


def _results(engine_name: str, company: Path, url: str | None = None) -> dict[str, pa.Table | Exception]:
    """Every table computed on the engine (or the engine's failure), once per test process."""
    if engine_name not in _RESULTS:
        url = url or {"duckdb": "duckdb://", "sqlite": "sqlite://", "spark": SPARK}[engine_name]
        loaded = _loaded(company, connect(url))
        out: dict[str, pa.Table | Exception] = {}
        for name, table in _tables(loaded).items():
            try:
                out[name] = money_columns(table().to_pyarrow())
            except Exception as exc:  # an engine's failure is a difference, reported with the others
                out[name] = exc
        _RESULTS[engine_name] = out
        # the engine's cached tables are dropped now, while its server runs (not at exit, after it stopped)
        del loaded
        gc.collect()
    return _RESULTS[engine_name]


def _normalised(table: pa.Table) -> list[tuple]:
    """Rows as sorted tuples: floats to 9 places (engines may differ in the last bits of a ratio), timestamps and
    dates as ISO text, decimals as text to the cent."""
    rows = []
    for row in table.to_pylist():
        values = []
        for v in row.values():
            if isinstance(v, float):
                v = None if v != v else round(v, 9)  # NaN and null are both "no value"
            elif isinstance(v, (dt.date, dt.datetime)):
                v = v.isoformat()
            values.append(v)
        rows.append(tuple(values))
    return sorted(rows, key=lambda r: tuple(str(v) for v in r))


TABLES = [*REVENUE, "signals", "accounts", *USAGE_TABLES]


def _differences(engine: str, company: Path, url: str | None = None) -> dict[str, object]:
    """Each table whose rows on ``engine`` are not DuckDB's, with what differs (the columns, or the failure)."""
    expected, got = _results("duckdb", company), _results(engine, company, url)
    out: dict[str, object] = {}
    for name in TABLES:
        mine, theirs = got[name], expected[name]
        assert isinstance(theirs, pa.Table), f"DuckDB failed on {name}: {theirs}"
        if isinstance(mine, Exception):
            out[name] = f"{type(mine).__name__}: {str(mine).strip().splitlines()[0][:300]}"
        elif mine.column_names != theirs.column_names:
            out[name] = {"columns": mine.column_names}
        elif _normalised(mine) != _normalised(theirs):
            out[name] = _columns_that_differ(mine, theirs) or "the same values, not in the same rows"
    return out


# One test per engine, every table in it: an engine's results are computed once per test process (Spark's session
# is a process's), so its tables must not be spread over two workers. Strict both ways: a table that differs must
# be a declared gap, and a declared gap that no longer differs fails too (until its declaration is removed).
@pytest.mark.parametrize("engine", ["sqlite", "spark", "postgres"])
def test_every_engine_gives_duckdbs_rows(company: Path, engine: str, request: pytest.FixtureRequest) -> None:
    expected = _results("duckdb", company)
    assert [n for n in TABLES if isinstance(expected[n], pa.Table) and not expected[n].num_rows] == [], \
        "the company should fill every table"
    # PostgreSQL: a database of its own on the server this test process started
    url = request.getfixturevalue("postgres_server").database("engine") if engine == "postgres" else None
    differences = _differences(engine, company, url)
    declared = {table: reason for (gap_engine, table), reason in KNOWN_GAPS.items() if gap_engine == engine}
    assert {name: why for name, why in differences.items() if name not in declared} == {}
    assert [table for table in declared if table not in differences] == [], "a declared gap is mended: remove it"


def _columns_that_differ(got: pa.Table, expected: pa.Table) -> dict[str, tuple]:
    """Each column whose values (as a multiset) differ, with a value only one side has: a readable first check."""
    out = {}
    for name in expected.column_names:
        a = _normalised(got.select([name]))
        b = _normalised(expected.select([name]))
        if a != b:
            only = sorted(set(a) ^ set(b), key=str)[:3]
            out[name] = tuple(v[0] for v in only)
    return out


@pytest.mark.parametrize("engine", ["duckdb", "sqlite", "postgres"])
def test_money_rounds_half_away_from_zero_on_every_engine(engine: str, request: pytest.FixtureRequest) -> None:
    """PostgreSQL's ``round`` sends a double's half to the even neighbour; upcurve's rounding does not."""
    url = request.getfixturevalue("postgres_server").database("rounding") if engine == "postgres" else \
        f"{engine}://"
    con = connect(url)
    values = [0.5, 1.5, 2.5, -0.5, -2.5, 2.4999, 520.625 * 100, -0.49, 0.0, None]
    t = con.create_table("amounts", pa.table({"i": range(len(values)), "v": pa.array(values, pa.float64())}),
                         temp=True)
    got = t.select("i", r=round_half_away(t.v)).order_by("i").to_pyarrow()["r"].to_pylist()
    assert got == [1, 2, 3, -1, -3, 2, 52063, 0, 0, None]
    flags = t.select("i", f=as_int(t.v > 0)).order_by("i").to_pyarrow()["f"].to_pylist()
    assert flags == [1, 1, 1, 0, 0, 1, 1, 0, 0, None]


@pytest.mark.parametrize("engine", ["duckdb", "sqlite", "spark", "postgres"])
def test_white_space_is_stripped_alike_on_every_engine(engine: str, request: pytest.FixtureRequest) -> None:
    """Keys and codes are trimmed as they are joined: on Spark, TRIM as Ibis writes it also took the letters f and v
    off the ends ('flat' was 'lat'), which refused a plan's pricing checked in place."""
    url = {"spark": SPARK, "postgres": None}.get(engine, f"{engine}://")
    con = connect(url or request.getfixturevalue("postgres_server").database("stripping"))
    values = [" flat\t", "dev", "\x0bfvf\x0c ", "a b", "  ", "\nv\r", None]
    if engine == "spark":  # Ibis's PySpark backend makes no temporary tables: a view of the session's own
        con._session.createDataFrame([(i, v) for i, v in enumerate(values)], "i long, v string") \
            .createOrReplaceTempView("texts")
        t = con.table("texts")
    else:
        t = con.create_table("texts", pa.table({"i": range(len(values)), "v": pa.array(values, pa.string())}),
                             temp=True)
    got = t.select("i", s=strip_spaces(t.v, con.name)).order_by("i").to_pyarrow()["s"].to_pylist()
    assert got == ["flat", "dev", "fvf", "a b", "", "v", None]
