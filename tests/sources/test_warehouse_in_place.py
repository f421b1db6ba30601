"""A warehouse's tables computed where they are: a real PostgreSQL server, the same results as the same tables in a
folder, every problem named by table, row, column and value, and nothing copied out."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import socket
from pathlib import Path

import duckdb
import ibis
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.conftest import PostgresServer, write_folder
from upcurve import cli
from upcurve.cli import app
from upcurve.config import RevenuePolicy
from upcurve.simulate import simulate_company
from upcurve.sources import load_in_place

TABLES = ("mrr", "movements", "metrics", "segments", "cohorts", "accounts", "worklist", "account_usage")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("company") / "data"
    simulate_company(folder, accounts=30, months=8, seed=4)
    return folder


def _warehouse(url: str, folder: Path) -> str:
    """The folder's tables as tables of the database at ``url`` (their columns in their Parquet types)."""
    con = ibis.connect(url)
    for path in sorted(folder.glob("*.parquet")):
        con.create_table(path.stem, pq.read_table(path))
    con.disconnect()
    return url


@pytest.fixture(scope="module")
def warehouse(postgres_server: PostgresServer, folder: Path) -> str:
    return _warehouse(postgres_server.database("warehouse"), folder)


def _invoke(args: list[str], monkeypatch: pytest.MonkeyPatch, *, exit_code: int = 0) -> str:
    for console in (cli.console, cli.err):  # made at import: wide enough that no problem row wraps
        monkeypatch.setattr(console, "width", 400)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.output


def _tables_of(url: str) -> set[str]:
    with psycopg.connect(url) as con:
        return {r[0] for r in con.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_a_run_on_a_warehouse_computes_there_and_gives_the_folders_results(
        warehouse: str, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _tables_of(warehouse)
    assert "the input meets the contract" in _invoke(["validate", warehouse], monkeypatch)
    _invoke(["run", str(folder), "--out", str(tmp_path / "from_folder")], monkeypatch)
    said = " ".join(_invoke(["run", warehouse, "--out", str(tmp_path / "in_place")], monkeypatch).split())
    assert f"computed in {warehouse}, where its tables are: nothing was copied out" in said
    for name in TABLES:
        assert pq.read_table(tmp_path / "in_place" / f"{name}.parquet").equals(
            pq.read_table(tmp_path / "from_folder" / f"{name}.parquet")), name
    # what upcurve held while computing was temporary: the warehouse has its own tables and no others
    assert _tables_of(warehouse) == before


def test_every_table_is_bound_to_the_warehouse(warehouse: str) -> None:
    """Loaded in place, every table the later steps read is a table or query of the warehouse itself."""
    loaded = load_in_place(warehouse, as_of=None, policy=RevenuePolicy())
    backends = {name: table.get_backend() for name, table in loaded.tables.items()}
    assert {b.name for b in backends.values()} == {"postgres"}
    assert len({id(b) for b in backends.values()}) == 1
    # the largest tables are read where they are, by every query, not held
    assert "events" in loaded.tables["events"].compile()
    assert loaded.source.startswith("postgresql://") and len(loaded.fingerprint) == 16
    assert loaded.as_of == loaded.tables["invoice_lines"].period_start.max().to_pyarrow().as_py()


def test_another_engine_is_given_a_copy(warehouse: str, folder: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _invoke(["run", str(folder), "--out", str(tmp_path / "from_folder")], monkeypatch)
    said = _invoke(["run", warehouse, "--engine", "duckdb://", "--out", str(tmp_path / "copied")], monkeypatch)
    assert "where its tables are" not in said
    for name in ("mrr", "movements", "metrics"):
        assert pq.read_table(tmp_path / "copied" / f"{name}.parquet").equals(
            pq.read_table(tmp_path / "from_folder" / f"{name}.parquet")), name


def test_bad_rows_in_a_warehouse_are_named_by_table_row_column_and_value(
        postgres_server: PostgresServer, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _warehouse(postgres_server.database("bad_warehouse"), folder)
    with psycopg.connect(url, autocommit=True) as con:
        first = con.execute("SELECT min(line_id) FROM invoice_lines").fetchone()[0]
        con.execute("INSERT INTO invoice_lines SELECT * FROM invoice_lines WHERE line_id = %s", [first])
        con.execute("UPDATE invoice_lines SET amount = NULL WHERE line_id = (SELECT max(line_id) FROM "
                    "invoice_lines)")
        con.execute("UPDATE fx_rates SET month = '2024-13' WHERE ctid = (SELECT min(ctid) FROM fx_rates)")
        con.execute("ALTER TABLE plans ALTER COLUMN unit_price TYPE text")
        # a score beyond any integer: PostgreSQL refuses the whole check of the table, reported as its problem
        con.execute("ALTER TABLE nps ALTER COLUMN score TYPE double precision")
        con.execute("UPDATE nps SET score = 1e30 WHERE ctid = (SELECT min(ctid) FROM nps)")
    text = " ".join(_invoke(["validate", url], monkeypatch, exit_code=2).split())
    lines = "invoice_lines (in " + url.split("://")[0]
    assert lines in text and "; rows by line_id)" in text
    assert "duplicate line_id" in text and "rows 1, 2" in text and first in text
    assert "amount" in text and "required" in text
    assert "fx_rates (in" in text and "2024-13" in text
    assert "unit_price" in text and "only DuckDB parses" in text and "--engine duckdb://" in text
    assert "nps (in" in text and "the database refused to check the table" in text and "out of range" in text
    # a run refuses the same input, naming the same problems, and writes nothing
    run = " ".join(_invoke(["run", url, "--out", str(Path(url.rsplit("/", 1)[1]))], monkeypatch,
                           exit_code=2).split())
    assert "duplicate line_id" in run and "2024-13" in run and not Path("bad_warehouse").exists()
    # on DuckDB, which parses text, the copy is checked as a folder is: the text prices are read as numbers
    copied = " ".join(_invoke(["validate", url, "--engine", "duckdb://"], monkeypatch, exit_code=2).split())
    assert "unit_price" not in copied and "duplicate line_id" in copied


def test_daily_rates_in_a_warehouse_give_the_folders_results(
        postgres_server: PostgresServer, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Daily rates (each month's rate on the 1st, another on the 17th) as a warehouse table and as a folder's file:
    the same results; a day and currency given twice is named as the table's key."""
    daily = tmp_path / "daily"
    shutil.copytree(folder, daily)
    monthly = pq.read_table(daily / "fx_rates.parquet").to_pylist()
    pq.write_table(pa.Table.from_pylist([
        {"day": dt.date.fromisoformat(f"{r['month']}-{day:02d}"), "currency": r["currency"],
         "rate": round(r["rate"] * factor, 6)} for r in monthly for day, factor in ((1, 1.0), (17, 0.987))]),
        daily / "fx_rates.parquet")
    url = _warehouse(postgres_server.database("daily_rates"), daily)
    _invoke(["run", str(daily), "--out", str(tmp_path / "from_folder")], monkeypatch)
    _invoke(["run", url, "--out", str(tmp_path / "in_place")], monkeypatch)
    for name in TABLES:
        assert pq.read_table(tmp_path / "in_place" / f"{name}.parquet").equals(
            pq.read_table(tmp_path / "from_folder" / f"{name}.parquet")), name
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("INSERT INTO fx_rates SELECT day, currency, rate * 2 FROM fx_rates WHERE ctid = "
                    "(SELECT min(ctid) FROM fx_rates)")
    text = " ".join(_invoke(["validate", url], monkeypatch, exit_code=2).split())
    assert "rows by day, currency" in text and "duplicate (day, currency)" in text


def test_a_duckdb_file_is_computed_where_it_is_and_never_written(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        for path in folder.glob("*.parquet"):
            con.execute(f"CREATE TABLE {path.stem} AS SELECT * FROM read_parquet(?)", [str(path)])
    digest = hashlib.sha256(database.read_bytes()).hexdigest()
    url = f"duckdb:///{database}"
    loaded = load_in_place(url, as_of=None, policy=RevenuePolicy())
    assert {t.get_backend().name for t in loaded.tables.values()} == {"duckdb"}
    del loaded
    _invoke(["run", url, "--out", str(tmp_path / "out")], monkeypatch)
    assert hashlib.sha256(database.read_bytes()).hexdigest() == digest


def test_a_database_that_cannot_be_reached_is_a_message_without_its_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://ana:s3cret@127.0.0.1:{port}/billing"
    for args in (["validate", url], ["run", url, "--out", str(tmp_path / "out")]):
        said = " ".join(_invoke(args, monkeypatch, exit_code=1).split())
        assert f"cannot open the engine postgresql://ana:***@127.0.0.1:{port}/billing" in said
        assert "s3cret" not in said and "Traceback" not in said
    assert not (tmp_path / "out").exists()


def test_a_run_refused_before_it_computes_leaves_no_workspace(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The workspace a run is kept in is made once its input is read and checked: a database that cannot be
    reached, or a folder that breaks the contract, leaves none behind (a folder that cannot hold one is refused
    before anything is read)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workspace = tmp_path / "ws"
    _invoke(["run", f"postgresql://ana@127.0.0.1:{port}/billing", "--workspace", str(workspace)], monkeypatch,
            exit_code=1)
    bad = write_folder(tmp_path / "bad", {"invoice_lines": "line_id,account_id,plan_id,kind,quantity,amount,"
                                          "currency,period_start,period_end\n1,A,team_m,subscription,1,,USD,"
                                          "2024-01-01,2024-02-01\n"})
    said = " ".join(_invoke(["run", str(bad), "--workspace", str(workspace)], monkeypatch, exit_code=2).split())
    assert "a required value is empty" in said
    assert not workspace.exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("the user's")
    said = " ".join(_invoke(["run", str(bad), "--workspace", str(tmp_path / "taken")], monkeypatch,
                            exit_code=1).split())
    assert "holds other files" in said and "a required value is empty" not in said
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    good = write_folder(tmp_path / "good", {"invoice_lines": "line_id,account_id,plan_id,kind,quantity,amount,"
                                            "currency,period_start,period_end\n1,A,team_m,subscription,1,10,USD,"
                                            "2024-01-01,2024-02-01\n"})
    _invoke(["run", str(good), "--workspace", str(workspace)], monkeypatch)
    from upcurve.workspace import Store

    assert len(Store.open(workspace, create=False).runs()) == 1


def test_a_spark_catalogs_tables_are_checked_and_computed_where_they_are(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The company's tables as tables of a Spark session's catalog (views over their files, as a lake's tables
    are): checked by Spark, bound to it, and the revenue tables computed there are the folder's. (Every table on
    Spark against DuckDB: ``tests/conformance/test_engines.py``.)"""
    from tests.conformance.test_engines import SPARK
    from upcurve.engine import connect
    from upcurve.outputs import money_columns
    from upcurve.revenue import revenue_tables
    from upcurve.sources import load_folder

    session = connect(SPARK)._session  # the session a run at this URL computes in
    for path in sorted(folder.glob("*.parquet")):
        session.read.parquet(str(path)).createOrReplaceTempView(path.stem)
    try:
        assert "the input meets the contract" in _invoke(["validate", SPARK], monkeypatch)
        loaded = load_in_place(SPARK, as_of=None, policy=RevenuePolicy())
        assert {t.get_backend().name for t in loaded.tables.values()} == {"pyspark"}
        assert "nothing was copied out" in loaded.notes[-1]
        expected = load_folder(folder, ibis.duckdb.connect(), as_of=None, policy=RevenuePolicy())
        assert (loaded.as_of, loaded.first) == (expected.as_of, expected.first)
        tables = [revenue_tables(d.tables, as_of=d.as_of, first=d.first, policy=RevenuePolicy()).tables
                  for d in (loaded, expected)]
        for name in ("mrr", "movements", "metrics"):
            got, want = (money_columns(t[name].to_pyarrow()) for t in tables)
            assert sorted(got.to_pylist(), key=str) == sorted(want.to_pylist(), key=str), name
    finally:
        for path in folder.glob("*.parquet"):
            session.catalog.dropTempView(path.stem)
