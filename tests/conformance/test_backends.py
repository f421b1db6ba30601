"""The same revenue pipeline on a second Ibis backend gives the same tables: nothing is tied to DuckDB."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis
import pyarrow as pa
import pytest
import yaml

from tests.conftest import write_folder as golden_folder
from upcurve.config import RevenuePolicy
from upcurve.contract import read_folder, typed_tables
from upcurve.engine import hand_over
from upcurve.outputs import money_columns
from upcurve.revenue import revenue_tables
from upcurve.simulate import BILLING_TABLES, simulate_tables, write_folder
from upcurve.usecases import run

AS_OF = dt.date(2024, 12, 31)
GOLDEN = Path(__file__).parent.parent / "golden" / "cases"


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tables = simulate_tables(60, 24, seed=3)
    return write_folder(tables, tmp_path_factory.mktemp("company"), "csv", BILLING_TABLES)


def _revenue_on(backend: ibis.BaseBackend, folder: Path) -> dict[str, pa.Table]:
    typed = typed_tables(read_folder(folder, ibis.duckdb.connect()),
                         names=["accounts", "plans", "invoice_lines", "fx_rates"])
    tables = hand_over(backend, typed)
    revenue = revenue_tables(tables, as_of=AS_OF, first=dt.date(2023, 1, 1), policy=RevenuePolicy())
    return {name: money_columns(expr.to_pyarrow()) for name, expr in revenue.tables.items()}


def _normalised(table: pa.Table) -> list[tuple]:
    """Rows as sorted tuples; floats to 9 places (engines may differ in the last bits of a ratio)."""
    rows = []
    for row in table.to_pylist():
        rows.append(tuple(round(v, 9) if isinstance(v, float) else (bool(v) if isinstance(v, bool) else v)
                          for v in row.values()))
    return sorted(rows, key=lambda r: tuple(str(v) for v in r))


def test_sqlite_gives_the_same_tables_as_duckdb(company: Path) -> None:
    duck = _revenue_on(ibis.duckdb.connect(), company)
    lite = _revenue_on(ibis.sqlite.connect(), company)
    assert duck.keys() == lite.keys()
    assert duck["movements"].num_rows > 100, "the sample company should move"
    for name in duck:
        assert duck[name].column_names == lite[name].column_names, name
        assert _normalised(duck[name]) == _normalised(lite[name]), name


def test_csv_and_parquet_give_the_same_results(company: Path, tmp_path: Path) -> None:
    parquet = write_folder(simulate_tables(60, 24, seed=3), tmp_path / "pq", "parquet", BILLING_TABLES)
    a = run(company, None, as_of=AS_OF).tables
    b = run(parquet, None, as_of=AS_OF).tables
    for name in a:
        assert _normalised(a[name]) == _normalised(b[name]), name


@pytest.mark.parametrize("case", ["prorations", "prorations_to_the_second", "daily_exchange_rates"])
def test_sqlite_measures_prorations_and_daily_rates_as_duckdb_does(case: str, tmp_path: Path) -> None:
    """The hand-computed cases the simulated company has no lines for (proration lines, a share of the period,
    a plan anchored on the 31st, daily rates) give the same tables on SQLite."""
    spec = yaml.safe_load((GOLDEN / f"{case}.yaml").read_text())
    folder = golden_folder(tmp_path / "data", spec["tables"])
    as_of = dt.date.fromisoformat(str(spec["as_of"]))

    def revenue_on(backend: ibis.BaseBackend) -> dict[str, pa.Table]:
        typed = typed_tables(read_folder(folder, ibis.duckdb.connect()))
        tables = hand_over(backend, typed)
        first = min(tables["invoice_lines"].period_start.min().to_pyarrow().as_py(), as_of)
        revenue = revenue_tables(tables, as_of=as_of, first=first, policy=RevenuePolicy())
        return {name: money_columns(expr.to_pyarrow()) for name, expr in revenue.tables.items()}

    duck, lite = revenue_on(ibis.duckdb.connect()), revenue_on(ibis.sqlite.connect())
    assert duck["movements"].num_rows >= 4
    for name in duck:
        assert _normalised(duck[name]) == _normalised(lite[name]), name
