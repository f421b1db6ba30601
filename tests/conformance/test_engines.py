"""The revenue and signals tables on DuckDB, SQLite and local Spark: the same company, the same rows.

Each engine is given the company as a user's run gives it (:func:`upcurve.sources.load_folder`: checked by DuckDB,
then handed over: Parquet files that Spark reads itself, rows through Arrow to SQLite), and each table is compared
row for row with DuckDB's. A gap an engine is known to have is a strict xfail naming its reason: when it is mended
the test fails until the mark is removed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pytest

from upcurve.config import RevenuePolicy
from upcurve.contract import plan_features
from upcurve.engine import connect
from upcurve.outputs import money_columns
from upcurve.revenue import revenue_tables
from upcurve.signals import account_signals_at, accounts_table
from upcurve.signals.health import HealthConfig
from upcurve.simulate import simulate_tables, write_folder
from upcurve.sources import LoadedData, load_folder

AS_OF = dt.date(2024, 12, 31)
#: signals at the as-of date, a month before and a year before (when some accounts had not started)
DATES = [dt.date(2023, 12, 31), dt.date(2024, 11, 30), AS_OF]
REVENUE = ["mrr", "movements", "metrics", "expansion_by_source", "segments", "cohorts", "account_growth",
           "plan_mrr"]
#: one Spark core (the suite runs on two workers on two cores); for a company this small, no adaptive planning and
#: no generated code, which cost more than they save (the results are the same either way)
SPARK = ("pyspark://?spark.master=local%5B1%5D&spark.sql.shuffle.partitions=1&spark.default.parallelism=1"
         "&spark.sql.adaptive.enabled=false&spark.sql.codegen.wholeStage=false")

#: the gaps each engine is known to have, by table: the reason is the test's xfail reason
KNOWN_GAPS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small company with every table (events, usage, renewals, tickets, NPS...), as Parquet files."""
    return write_folder(simulate_tables(30, 24, seed=5), tmp_path_factory.mktemp("company"), "parquet")


def _loaded(company: Path, engine: ibis.BaseBackend) -> LoadedData:
    return load_folder(company, engine, as_of=AS_OF, policy=RevenuePolicy())


def _tables(loaded: LoadedData) -> dict[str, ir.Table]:
    tables = loaded.tables
    revenue = revenue_tables(tables, as_of=AS_OF, first=loaded.first, policy=RevenuePolicy())
    signals = account_signals_at(tables, revenue.account_months, plan_features(tables["plans"]), DATES)
    accounts = accounts_table(tables, revenue.account_months, HealthConfig(), as_of=AS_OF)
    return {**{name: revenue.tables[name] for name in REVENUE}, "signals": signals, "accounts": accounts}


_ENGINES: dict[str, ibis.BaseBackend] = {}
_RESULTS: dict[str, dict[str, pa.Table]] = {}


def _results(engine_name: str, company: Path) -> dict[str, pa.Table]:
    """Every table computed on the engine, once per test process (Spark's session lives as long as it)."""
    if engine_name not in _RESULTS:
        url = {"duckdb": "duckdb://", "sqlite": "sqlite://", "spark": SPARK}[engine_name]
        engine = _ENGINES.setdefault(engine_name, connect(url))
        loaded = _loaded(company, engine)
        out = {}
        for name, expr in _tables(loaded).items():
            try:
                out[name] = money_columns(expr.to_pyarrow())
            except Exception as exc:  # a gap is reported by the table's own test
                out[name] = exc  # type: ignore[assignment]
        _RESULTS[engine_name] = out
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


def _cases() -> list[object]:
    cases = []
    for engine in ("sqlite", "spark"):
        for name in [*REVENUE, "signals", "accounts"]:
            reason = KNOWN_GAPS.get((engine, name))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(engine, name, marks=marks, id=f"{engine}-{name}"))
    return cases


@pytest.mark.parametrize(("engine", "table"), _cases())
def test_every_engine_gives_duckdbs_rows(company: Path, engine: str, table: str) -> None:
    expected = _results("duckdb", company)[table]
    got = _results(engine, company)[table]
    if isinstance(got, Exception):
        raise got
    assert expected.num_rows > 0, f"the company should fill {table}"
    assert got.column_names == expected.column_names
    assert _columns_that_differ(got, expected) == {}
    assert _normalised(got) == _normalised(expected)


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
