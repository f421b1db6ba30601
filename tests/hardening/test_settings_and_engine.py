"""Settings that would do silent harm are refused with the file and the key; the engine's failures are one clear
line, never a traceback."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from pathlib import Path

import ibis
import pytest
from ibis.backends.duckdb import Backend as DuckDBBackend
from typer.testing import CliRunner

from tests.conftest import write_folder
from upcurve import cli
from upcurve.cli import YOUNG_COLLECTION_THRESHOLD, app
from upcurve.config import RevenuePolicy
from upcurve.engine import DUCKDB_MEMORY_LIMIT, HELD_CATALOG, cached, connect, release
from upcurve.errors import ConfigError
from upcurve.settings_file import load_config
from upcurve.sources import load_folder

LINES = textwrap.dedent("""\
    line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end
    l1,A,team_m,subscription,10,100,USD,2024-01-01,2024-02-01
    l2,A,team_m,subscription,12,120,USD,2024-02-01,2024-03-01
    l3,B,team_m,subscription,5,50,USD,2024-02-01,2024-03-01
    """)


def _settings(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "upcurve.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BAD_SETTINGS = {
    "negative segment weight": ("health:\n  segment_weights:\n    smb: {support: -50}\n", "weights must be 0 or more"),
    "all segment weights zero": (
        "health:\n  segment_weights:\n    smb: {product_usage: 0, engagement_trend: 0, support: 0,\n"
        "          business_outcomes: 0, sentiment: 0}\n", "every weight is 0"),
    "unknown signal": (
        "health:\n  components:\n    - {name: usage, weight: 1, signal: dau_per_sear,\n"
        "       bands: [{min: 0, score: 50}]}\n",
        "did you mean 'dau_per_seat'"),
    "unknown play": ("scoring:\n  plays:\n    seats: Call them\n", "unknown play key"),
    "repeated key": ("revenue:\n  usage_in_mrr: false\nrevenue:\n  reporting_currency: EUR\n", "appears twice"),
    "unknown key": ("revenue:\n  usage_in_mr: false\n", "usage_in_mr"),
    "a list, not sections": ("- revenue\n", "must be a mapping"),
    "band upside down": (
        "health:\n  components:\n    - {name: u, weight: 1, signal: tickets_30d,\n"
        "       bands: [{min: 5, max: 1, score: 9}]}\n",
        "above its max"),
}


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_harmful_settings_are_refused_naming_the_file_and_key(tmp_path: Path, case: str) -> None:
    text, message = BAD_SETTINGS[case]
    path = _settings(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(path)
    assert str(path) in str(raised.value)
    data = write_folder(tmp_path / "d", {"invoice_lines": LINES})
    result = CliRunner().invoke(app, ["run", str(data), "--out", str(tmp_path / "out"), "--config", str(path)],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["folder", "not utf-8", "missing"])
def test_an_unreadable_settings_file_is_one_clear_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "settings.yaml"
    if kind == "folder":
        path.mkdir()
    elif kind == "not utf-8":
        path.write_bytes(b"revenue:\n  reporting_currency: \xff\xfe\n")
    data = write_folder(tmp_path / "d", {"invoice_lines": LINES})
    for command in (["validate", str(data)], ["run", str(data), "--out", str(tmp_path / "out")]):
        result = CliRunner().invoke(app, [*command, "--config", str(path)], env={"COLUMNS": "300"})
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit)
        assert str(path) in result.output.replace("\n", "")


def test_an_unknown_segment_column_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _settings(tmp_path, "revenue:\n  segment_by: [segment, regoin]\n")
    data = write_folder(tmp_path / "d", {"invoice_lines": LINES})
    result = CliRunner().invoke(app, ["run", str(data), "--out", str(tmp_path / "out"), "--config", str(path)],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "'regoin'" in text and "does not have" in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("url", "message"), [
    ("nosuch://x", "is not an engine URL upcurve can open"),
    ("mssql://x", "needs its package"),
    ("duckdb:///no/such/folder/x.duckdb", "cannot open the engine"),
    ("duckdb://?memory_limit=1MB", "ran out of memory"),
])
def test_engine_failures_are_one_clear_line(tmp_path: Path, url: str, message: str) -> None:
    data = write_folder(tmp_path / "d", {"invoice_lines": LINES})
    for command in (["validate", str(data)], ["run", str(data), "--out", str(tmp_path / "out")]):
        result = CliRunner().invoke(app, [*command, "--engine", url], env={"COLUMNS": "300"})
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert message in " ".join(result.output.split())
        assert not (tmp_path / "out").exists()


def test_a_line_dated_years_ahead_does_not_move_the_default_as_of(tmp_path: Path) -> None:
    lines = LINES + "l4,B,team_m,subscription,5,50,USD,2031-02-01,2031-03-01\n"
    data = write_folder(tmp_path / "d", {"invoice_lines": lines})
    result = CliRunner().invoke(app, ["run", str(data), "--out", str(tmp_path / "out")], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "as of 2024-02-01" in text
    assert "1 invoice lines start after the as-of date 2024-02-01 (the latest on 2031-02-01)" in text
    assert "customers 2" in text


def test_a_wide_accounts_file_breaks_down_a_bounded_number_of_columns(tmp_path: Path) -> None:
    """150 free-text columns in accounts made the segments table the slowest part of a run: by default only the
    contract's attributes and the first others, up to the limit, are broken down."""
    import pyarrow.parquet as pq

    from upcurve.revenue.segments import DEFAULT_SEGMENT_LIMIT

    extra = [f"note_{i}" for i in range(150)]
    accounts = "account_id,name," + ",".join(extra) + ",segment\n"
    accounts += "".join(f"{a},{a} Inc," + ",".join(f"{a}{i}" for i in range(150)) + ",smb\n" for a in "AB")
    data = write_folder(tmp_path / "d", {"invoice_lines": LINES, "accounts": accounts})
    result = CliRunner().invoke(app, ["run", str(data), "--out", str(tmp_path / "out"), "--format", "parquet"])
    assert result.exit_code == 0, result.output
    dimensions = set(pq.read_table(tmp_path / "out" / "segments.parquet")["dimension"].to_pylist())
    contract = {"segment", "industry", "region", "owner"}  # a contract column a file lacks is read as empty
    assert dimensions == {"product", *contract, *extra[:DEFAULT_SEGMENT_LIMIT - len(contract)]}


def _duckdb_settings(engine: ibis.BaseBackend) -> tuple[float, Path]:
    """The engine's memory limit in GiB (DuckDB shows it as ``2.8 GiB``) and its spill folder."""
    assert isinstance(engine, DuckDBBackend)
    limit, spill = engine.raw_sql(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    number, unit = limit.split()
    return float(number) / {"KiB": 1024**2, "MiB": 1024, "GiB": 1}[unit], Path(spill)


def test_duckdb_holds_at_most_upcurves_limit_and_spills_to_a_folder_removed_with_it() -> None:
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    engine = connect("duckdb://")
    limit, spill = _duckdb_settings(engine)
    assert limit == pytest.approx(min(DUCKDB_MEMORY_LIMIT, machine * 0.8) / 1024**3, abs=0.05)
    assert spill.is_dir() and spill.name.startswith("upcurve-spill-") and spill.parent == Path(tempfile.gettempdir())
    del engine
    gc.collect()
    assert not spill.exists(), "the spill folder goes with the connection"


def _held_tables(engine: DuckDBBackend) -> set[str]:
    return {name for (name,) in engine.con.execute(
        f"SELECT table_name FROM duckdb_tables() WHERE database_name = '{HELD_CATALOG}'").fetchall()}


def test_duckdb_holds_a_cached_table_compressed_until_it_is_released_or_no_longer_read() -> None:
    engine = connect("duckdb://")
    engine.raw_sql("CREATE TABLE numbers AS SELECT i, 'acct_' || (i % 1000) AS account_id FROM range(300000) t(i)")
    numbers = engine.table("numbers")
    held = cached(numbers)
    name = held.op().name
    assert _held_tables(engine) == {name}
    assert held.aggregate(rows=held.count(), total=held.i.sum(), accounts=held.account_id.nunique()).to_pyarrow(
        ).to_pylist() == [{"rows": 300_000, "total": 299_999 * 300_000 // 2, "accounts": 1000}]
    methods = {method for (method,) in engine.con.execute(
        f"SELECT DISTINCT compression FROM pragma_storage_info('{HELD_CATALOG}.main.{name}')").fetchall()}
    assert methods - {"Uncompressed"}, f"held uncompressed: {methods}"
    release(held)
    assert _held_tables(engine) == set(), "released at once"
    again = cached(numbers)
    assert _held_tables(engine) == {again.op().name}
    del again
    gc.collect()
    assert _held_tables(engine) == set(), "dropped once no expression reads it"


def test_a_table_cached_uncompressed_is_held_as_it_is_until_released() -> None:
    """``compress=False`` (the events' day-by-day reductions): the same rows, held as a temporary table, not
    checkpointed into the compressed catalog, and dropped by ``release`` as a compressed one is."""
    engine = connect("duckdb://")
    engine.raw_sql("CREATE TABLE numbers AS SELECT i FROM range(1000) t(i)")
    held = cached(engine.table("numbers").filter(ibis._.i % 2 == 0), compress=False)
    assert held.i.sum().to_pyarrow().as_py() == sum(range(0, 1000, 2))
    assert _held_tables(engine) == set(), "not in the compressed catalog"
    temporary = "SELECT count(*) FROM duckdb_tables() WHERE temporary"
    assert engine.con.execute(temporary).fetchall() == [(1,)]
    release(held)
    assert engine.con.execute(temporary).fetchall() == [(0,)]


def test_a_table_cached_while_another_write_is_under_way_is_held_whole() -> None:
    """DuckDB refuses to checkpoint (to compress) while another transaction writes: the table is held anyway."""
    engine = connect("duckdb://")
    engine.raw_sql("CREATE TABLE numbers AS SELECT range AS i FROM range(1000)")
    first = cached(engine.table("numbers"))
    writer = engine.con.cursor()
    writer.execute("BEGIN")
    writer.execute(f"CREATE TABLE {HELD_CATALOG}.main.scratch AS SELECT 1 AS x")
    second = cached(engine.table("numbers").filter(ibis._.i < 10))
    assert second.i.sum().to_pyarrow().as_py() == 45
    writer.execute("COMMIT")
    assert first.count().to_pyarrow().as_py() == 1000


def test_the_files_parsed_for_the_checks_are_dropped_once_the_checked_tables_are_handed_over(tmp_path: Path
                                                                                           ) -> None:
    data = write_folder(tmp_path / "d", {"invoice_lines": LINES})
    engine = connect("duckdb://")
    loaded = load_folder(data, engine, as_of=None, policy=RevenuePolicy(), say=lambda _msg: None)
    held = _held_tables(engine)
    assert len(held) == len(loaded.tables) == 3, "the checked tables alone, not the parsed files beside them"
    assert held == {table.op().name for table in loaded.tables.values()}


def test_a_duckdb_file_opened_read_only_holds_a_cached_table_as_a_temporary_one(tmp_path: Path) -> None:
    ibis.duckdb.connect(tmp_path / "company.duckdb").raw_sql("CREATE TABLE accounts AS SELECT 'A' AS account_id")
    engine = connect(f"duckdb:///{tmp_path}/company.duckdb?read_only=true")
    held = cached(engine.table("accounts"))
    assert held.to_pyarrow().to_pylist() == [{"account_id": "A"}]
    assert _held_tables(engine) == set()
    release(held)
    assert engine.con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() == [(0,)]


def test_duckdb_settings_on_the_url_are_kept_and_the_users_folder_too(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    engine = connect(f"duckdb://?memory_limit=1GiB&temp_directory={scratch}")
    assert _duckdb_settings(engine) == (pytest.approx(1.0, abs=0.01), scratch)
    del engine
    gc.collect()
    assert scratch.is_dir(), "a folder the user named is never removed"


def test_a_duckdb_file_named_by_its_absolute_path_is_opened_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    monkeypatch.chdir(tmp_path)
    engine = connect(f"duckdb:///{tmp_path}/engine.duckdb")  # duckdb:////tmp/...: four slashes
    engine.raw_sql("CREATE TABLE kept AS SELECT 1 AS x")
    assert (tmp_path / "engine.duckdb").is_file()
    assert _duckdb_settings(engine)[1].name.startswith("upcurve-spill-")


def test_spark_that_cannot_start_is_one_clear_line(tmp_path: Path) -> None:
    """No Java where JAVA_HOME says: exit 1 and what Spark needs, never a traceback. In its own process: a Spark
    session, once started by another test in this one, would be reused."""
    data = write_folder(tmp_path / "d", {"invoice_lines": LINES})
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java"), "COLUMNS": "300"}
    done = subprocess.run([sys.executable, "-m", "upcurve", "validate", str(data), "--engine", "pyspark://"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    text = " ".join((done.stdout + done.stderr).split())
    assert "cannot start Spark" in text and "Java 17" in text and "Traceback" not in text


_HOLDS_AN_ENGINE = textwrap.dedent("""
    import sys, time
    from upcurve.engine import connect
    engine = connect("duckdb://")
    print(engine.con.execute("SELECT current_setting('temp_directory')").fetchone()[0], flush=True)
    time.sleep(120)
""")


def _engine_process(temp: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process that opened an engine (spill folder in ``temp``) and waits; and its spill folder."""
    child = subprocess.Popen([sys.executable, "-c", _HOLDS_AN_ENGINE], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "TMPDIR": str(temp)})
    assert child.stdout is not None
    return child, Path(child.stdout.readline().strip())


def test_a_killed_runs_spill_folder_is_removed_by_the_next_engine_and_a_running_ones_never(tmp_path: Path) -> None:
    from upcurve.engine import sweep_spill_folders

    killed, left = _engine_process(tmp_path)
    running, used = _engine_process(tmp_path)
    try:
        (left / "duckdb_temp_block.tmp").write_bytes(b"\0" * 1024)  # what DuckDB spills there
        killed.kill()  # no finalizer runs: the folder stays behind
        killed.wait()
        assert left.is_dir() and left.parent == tmp_path and left.name.startswith("upcurve-spill-")
        stranger = tmp_path / "upcurve-spill-not-ours"  # no lock file: not provably upcurve's
        stranger.mkdir()
        (stranger / "keep.txt").write_text("mine")
        # the next engine opened sweeps as it starts (and removes its own folder when it ends): the killed run's
        # folder goes, the running process's and the stranger stay
        opened = subprocess.run([sys.executable, "-c", "from upcurve.engine import connect; connect('duckdb://')"],
                                env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True, text=True)
        assert opened.returncode == 0, opened.stderr
        assert not left.exists() and used.is_dir() and (stranger / "keep.txt").read_text() == "mine"
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([used.name, stranger.name])
        assert sweep_spill_folders(tmp_path) == []  # the running one is held
    finally:
        running.kill()
        running.wait()
    assert sweep_spill_folders(tmp_path) == [used]
    assert [p.name for p in tmp_path.iterdir()] == [stranger.name]


def test_the_command_line_collects_young_garbage_less_often_than_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``upcurve`` command (its console script and ``python -m upcurve``) raises the garbage collector's first
    threshold before it parses its arguments, keeping the older generations' thresholds."""
    seen: list[tuple[int, ...]] = []
    monkeypatch.setattr(cli, "app", lambda: seen.append(gc.get_threshold()))
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's defaults, whatever the test process set
    try:
        cli.main()
    finally:
        gc.set_threshold(*before)
    assert seen == [(YOUNG_COLLECTION_THRESHOLD, 10, 10)]
    scripts = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["upcurve"] == "upcurve.cli:main"
    assert "from upcurve.cli import main" in (Path(cli.__file__).parent / "__main__.py").read_text()
