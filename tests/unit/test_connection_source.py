"""Tables in a database as the source: the same checks and the same results as the same tables in a folder."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from upcurve import cli
from upcurve.cli import app
from upcurve.simulate import simulate_company
from upcurve.sources.connection import is_connection_url, redacted


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A simulated company as a folder of files and as tables in a DuckDB database file."""
    home = tmp_path_factory.mktemp("source")
    folder = home / "data"
    simulate_company(folder, accounts=30, months=8, seed=4)
    database = home / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        for path in folder.glob("*.parquet"):
            con.execute(f"CREATE TABLE {path.stem} AS SELECT * FROM read_parquet(?)", [str(path)])
    return folder, database


def _invoke(args: list[str], monkeypatch: pytest.MonkeyPatch, *, exit_code: int = 0) -> str:
    for console in (cli.console, cli.err):  # made at import: wide enough that no problem row wraps
        monkeypatch.setattr(console, "width", 300)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == exit_code, result.output
    return result.output


def test_a_database_gives_the_results_of_the_same_tables_in_a_folder(
        company: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, database = company
    url = f"duckdb:///{database}"
    said = _invoke(["validate", url], monkeypatch)
    assert "the input meets the contract" in said
    _invoke(["run", str(folder), "--out", str(tmp_path / "from_folder")], monkeypatch)
    _invoke(["run", url, "--out", str(tmp_path / "from_database")], monkeypatch)
    for name in ("mrr", "movements", "metrics", "worklist"):
        assert pq.read_table(tmp_path / "from_database" / f"{name}.parquet").equals(
            pq.read_table(tmp_path / "from_folder" / f"{name}.parquet")), name


def test_a_database_kept_in_a_workspace_names_its_url_without_a_password(
        company: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, database = company
    said = _invoke(["run", f"duckdb:///{database}", "--workspace", str(tmp_path / "ws")], monkeypatch)
    assert "kept in the workspace" in said
    runs = _invoke(["runs", "--workspace", str(tmp_path / "ws")], monkeypatch)
    assert "warehouse.duckdb" in runs


def test_a_missing_required_table_is_bad_input_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "empty.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE accounts (account_id VARCHAR)")
        con.execute("INSERT INTO accounts VALUES ('A')")
    text = _invoke(["validate", f"duckdb:///{database}"], monkeypatch, exit_code=2)
    assert "'plans' is missing" in text and "'invoice_lines' is missing" in text


def test_a_connection_url_is_told_from_a_folder_and_shown_without_its_password() -> None:
    assert is_connection_url("duckdb:///data/acme.duckdb") and is_connection_url("postgresql://u:p@h/db")
    assert not is_connection_url("data/acme") and not is_connection_url("C:/data")
    assert redacted("postgresql://ana:s3cret@db.acme.io:5432/billing") == "postgresql://ana:***@db.acme.io:5432/billing"
    assert redacted("duckdb:///x.duckdb") == "duckdb:///x.duckdb"


def test_a_bad_row_in_a_database_table_is_named_by_its_table(
        company: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = company
    database = tmp_path / "bad.duckdb"
    with duckdb.connect(str(database)) as con:
        for path in folder.glob("*.parquet"):
            con.execute(f"CREATE TABLE {path.stem} AS SELECT * FROM read_parquet(?)", [str(path)])
        con.execute("INSERT INTO invoice_lines SELECT * FROM invoice_lines LIMIT 1")  # a line id twice
    text = _invoke(["validate", f"duckdb:///{database}"], monkeypatch, exit_code=2)
    line = next(x for x in text.splitlines() if "duplicate line_id" in x)
    # checked where it is: its rows are numbered in the order of its key, where the two copies are side by side
    assert f"invoice_lines (in duckdb:///{database}; rows by line_id)" in line and "rows 1, 2" in line


def test_a_mapping_file_reads_tables_and_columns_named_otherwise(
        company: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The warehouse keeps the invoice lines as billing.invoice_items with its own column names, and the accounts
    as crm.customers: with a mapping file the results are those of the folder."""
    folder, _ = company
    database = tmp_path / "renamed.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE SCHEMA billing; CREATE SCHEMA crm")
        for path in folder.glob("*.parquet"):
            if path.stem == "invoice_lines":
                con.execute("CREATE TABLE billing.invoice_items AS SELECT * RENAME (line_id AS id, account_id AS "
                            "customer, amount AS amount_net) FROM read_parquet(?)", [str(path)])
            elif path.stem == "accounts":
                con.execute("CREATE TABLE crm.customers AS SELECT * RENAME (account_id AS customer_id) FROM "
                            "read_parquet(?)", [str(path)])
            else:
                con.execute(f"CREATE TABLE {path.stem} AS SELECT * FROM read_parquet(?)", [str(path)])
    mapping = tmp_path / "warehouse.yaml"
    mapping.write_text("tables:\n"
                       "  invoice_lines:\n    table: billing.invoice_items\n"
                       "    columns: {line_id: id, account_id: customer, amount: amount_net}\n"
                       "  accounts:\n    table: crm.customers\n    columns: {account_id: customer_id}\n")
    url = f"duckdb:///{database}"
    # without the mapping the required tables are missing, named with the way out
    missing = _invoke(["validate", url], monkeypatch, exit_code=2)
    assert "required table 'invoice_lines' is missing" in missing and "mapping file" in missing
    assert "the input meets the contract" in _invoke(["validate", url, "--mapping", str(mapping)], monkeypatch)
    _invoke(["run", str(folder), "--out", str(tmp_path / "from_folder")], monkeypatch)
    _invoke(["run", url, "--mapping", str(mapping), "--out", str(tmp_path / "mapped")], monkeypatch)
    for name in ("mrr", "movements", "metrics"):
        assert pq.read_table(tmp_path / "mapped" / f"{name}.parquet").equals(
            pq.read_table(tmp_path / "from_folder" / f"{name}.parquet")), name
    # a column the mapping names that is not there: the file, the table, the column and the columns that are
    mapping.write_text("tables:\n  invoice_lines:\n    table: billing.invoice_items\n"
                       "    columns: {line_id: line, account_id: customer, amount: amount_net}\n"
                       "  accounts:\n    table: crm.clients\n")
    wrong = _invoke(["validate", url, "--mapping", str(mapping)], monkeypatch, exit_code=2)
    assert "warehouse.yaml" in wrong and "table invoice_lines (billing.invoice_items): the column 'line'" in wrong
    assert "Columns found: id, customer" in wrong and "table accounts: crm.clients does not exist" in wrong
    mapping.write_text("tables:\n  invoice_line:\n    table: x\n  plans:\n    columns: {price: list_price}\n")
    keys = " ".join(_invoke(["validate", url, "--mapping", str(mapping)], monkeypatch, exit_code=2).split())
    assert "invoice_line: not a table of the contract" in keys and "plans.price: not a column of plans" in keys
    folder_too = _invoke(["validate", str(folder), "--mapping", str(tmp_path / "warehouse.yaml")], monkeypatch,
                         exit_code=2)
    assert "a mapping file names a database's tables" in folder_too
