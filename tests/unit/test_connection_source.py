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
    assert f"invoice_lines (in duckdb:///{database})" in line
