"""The workspace keeps every run whole, answers from what it kept, and decides when to retrain: the same tests on
an embedded DuckDB workspace and on a PostgreSQL one (a throwaway server, see conftest.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from upcurve import usecases
from upcurve.cli import app
from upcurve.scoring import ScoringConfig, model_decision
from upcurve.simulate import simulate_company
from upcurve.usecases import run_in_workspace
from upcurve.workspace import SCHEMA_VERSION, ModelRecord, Store, WorkspaceError, diff_runs
from upcurve.workspace._postgres import LOCK_KEY
from upcurve.workspace.schema import MIGRATIONS


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("company") / "data"
    simulate_company(folder, accounts=40, months=14, seed=5)
    return folder


@pytest.fixture(scope="module")
def computed_once() -> Iterator[None]:
    """Each run's computing done once per test process: the same run stored on DuckDB and on PostgreSQL computes
    the same tables, and what this module tests is how they are stored (``run_in_workspace`` still decides the
    model and saves the run on each store)."""
    real, done = usecases.compute_run, {}

    def compute_run(loaded: Any, config: Any, *, scorer: Any = None, say: Any = None) -> Any:
        key = (loaded.as_of, loaded.fingerprint, config.model_dump_json(), scorer is None)
        if key not in done or scorer is not None:
            done[key] = real(loaded, config, scorer=scorer, say=say)
        return done[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(usecases, "compute_run", compute_run)
        yield


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def workspace(request: pytest.FixtureRequest, data: Path, tmp_path_factory: pytest.TempPathFactory,
              computed_once: None) -> Store:
    if request.param == "duckdb":
        location = str(tmp_path_factory.mktemp("ws") / "workspace")
    else:
        location = request.getfixturevalue("postgres_url")
    store = Store.open(location)
    run_in_workspace(store, data, as_of=dt.date(2023, 11, 30))
    run_in_workspace(store, data, as_of=dt.date(2024, 2, 29))
    return store


def test_every_run_is_kept_with_its_tables(workspace: Store) -> None:
    runs = workspace.runs()
    assert [r.as_of for r in runs] == [dt.date(2023, 11, 30), dt.date(2024, 2, 29)]
    for record in runs:
        assert record.status == "complete" and record.fingerprint and record.upcurve
        for name, rows in record.rows.items():
            assert workspace.table(name, record.run_id).num_rows == rows
    # history stays queryable: the earlier run's worklist is that week's, not today's
    first = workspace.table("worklist", runs[0].run_id)
    assert set(first["week"].to_pylist()) == {dt.date(2023, 11, 27)}
    # and answers a notebook through Ibis
    assert workspace.ibis().table("runs").count().execute() == 2


def test_the_diff_bridges_mrr_between_the_two_dates_to_the_cent(workspace: Store) -> None:
    a, b = workspace.runs()
    diff = diff_runs(workspace, a, b)
    lines = {r["line"]: r["amount"] for r in diff.bridge.to_pylist()}
    moves = sum((v for k, v in lines.items() if k not in ("start", "end")), Decimal(0))
    assert lines["start"] + moves == lines["end"]
    metrics = {r["month"]: r["mrr"] for r in workspace.table("metrics", b.run_id).to_pylist()}
    assert lines["start"] == metrics["2023-11"] and lines["end"] == metrics["2024-02"]
    worklist_a = set(workspace.table("worklist", a.run_id)["account_id"].to_pylist())
    worklist_b = set(workspace.table("worklist", b.run_id)["account_id"].to_pylist())
    assert set(diff.entered["account_id"].to_pylist()) == worklist_b - worklist_a
    assert set(diff.left["account_id"].to_pylist()) == worklist_a - worklist_b


def test_reading_commands_answer_from_the_workspace(workspace: Store, tmp_path: Path) -> None:
    runner = CliRunner()
    ws = workspace.location
    for args in (["runs"], ["worklist"], ["accounts", "--sort", "churn"], ["diff"],
                 ["worklist", "--as-of", "2023-11-30"]):
        result = runner.invoke(app, [*args, "--workspace", ws], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (args, result.output)
    assert "2 run(s) in the workspace" in runner.invoke(app, ["runs", "--workspace", ws]).output
    missing = runner.invoke(app, ["worklist", "--workspace", ws, "--as-of", "2020-01-31"])
    assert missing.exit_code == 1 and "no run as of 2020-01-31" in " ".join(missing.output.split())
    out = tmp_path / "export"
    assert runner.invoke(app, ["export", "--workspace", ws, "--out", str(out), "--format", "csv"]).exit_code == 0
    assert {p.stem for p in out.glob("*.csv")} == set(workspace.runs()[-1].rows)


def test_no_workspace_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["runs", "--workspace", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no workspace at" in " ".join(result.output.split())
    with pytest.raises(WorkspaceError, match="holds other files"):
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("mine")
        Store.open(tmp_path / "mine")


def test_the_retraining_policy() -> None:
    cfg = ScoringConfig()
    card = {"as_of": "2024-06-30", "horizon_months": 3, "model": "auto"}
    use = model_decision(card, cfg, dt.date(2024, 8, 31))
    assert use.use_active and "2024-06-30" in use.reason
    assert not model_decision(None, cfg, dt.date(2024, 8, 31)).use_active
    assert not model_decision(card, cfg, dt.date(2024, 8, 31), retrain=True).use_active
    stale = model_decision(card, cfg, dt.date(2024, 10, 31))
    assert not stale.use_active and "4 months before" in stale.reason
    backfill = model_decision(card, cfg, dt.date(2024, 3, 31))
    assert not backfill.use_active and not backfill.activate_new
    other = model_decision({**card, "model": "logistic"}, cfg, dt.date(2024, 7, 31))
    assert not other.use_active and "model" in other.reason
    broken = model_decision(card, cfg, dt.date(2024, 7, 31), unusable="edited")
    assert not broken.use_active and "edited" in broken.reason


def test_a_run_killed_at_any_moment_leaves_every_earlier_run(data: Path, location: str, computed_once: None) -> None:
    ws = location
    store = Store.open(ws)
    first = run_in_workspace(store, data, as_of=dt.date(2023, 12, 31)).run
    assert first is not None
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for delay in (1.0, 4.0, 8.0):
        proc = subprocess.Popen([sys.executable, "-m", "upcurve", "run", str(data), "--workspace", ws],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        runs = Store.open(ws).runs()
        assert runs[0].run_id == first.run_id
        for record in runs:
            for name, rows in record.rows.items():
                assert store.table(name, record.run_id).num_rows == rows


def test_two_runs_at_once_both_land(data: Path, location: str) -> None:
    ws = location
    Store.open(ws)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "upcurve", "run", str(data), "--workspace", ws,
                               "--as-of", day], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for day in ("2023-12-31", "2024-01-31")]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    assert sorted(str(r.as_of) for r in Store.open(ws).runs()) == ["2023-12-31", "2024-01-31"]


# -- the store itself, on both databases (small hand-made tables: no pipeline run) ----------------------------------
def _save(store: Store, tables: dict[str, pa.Table], *, as_of: dt.date = dt.date(2024, 1, 31),
          new_model: ModelRecord | None = None, activate: bool = False) -> str:
    record = store.save_run(as_of=as_of, source="test", fingerprint="f", settings={}, tables=tables, notes=[],
                            started_at=dt.datetime.now(dt.UTC), model=(new_model.model_id if new_model else None, None),
                            new_model=new_model, activate=activate)
    return record.run_id


def _model(store: Store, trained_as_of: dt.date) -> ModelRecord:
    card = {"as_of": trained_as_of.isoformat(), "horizon_months": 3, "model": "auto"}
    return ModelRecord(model_id=store.new_model_id(), created_at=dt.datetime.now(dt.UTC), trained_as_of=trained_as_of,
                       source="test", fingerprint="f", kind="lightgbm", active=False, card=card,
                       files={"models.json": b'{"targets": {}}', "model_card.json": json.dumps(card).encode()})


def _write_sql(store: Store, statement: str) -> None:
    """Change the workspace behind upcurve's back (as a person with a database client could)."""
    if store.database is not None:
        with duckdb.connect(str(store.database)) as con:
            con.execute(statement)
    else:
        with psycopg.connect(store.location, autocommit=True) as con:
            con.execute(statement)


# every Arrow type a result table uses, with the values that go wrong when a database rounds, pads or re-types them
_EDGES = pa.table({
    "account_id": ["a-1", "b'2", 'c"3', "tab\there\\ back\nnew line", "", None, "ünïcødé €"],
    "mrr": pa.array([Decimal("0.01"), Decimal("-12345678.90"), Decimal("99999999999999.99"), Decimal("0.10"),
                     Decimal("0"), None, Decimal("1234.5")], pa.decimal128(20, 2)),
    "amount": pa.array([Decimal("0.000001"), Decimal("-1.5"), None, Decimal("12345678901234567890.123456"),
                        Decimal("0"), Decimal("7"), Decimal("-0.000001")], pa.decimal128(38, 6)),
    "week": pa.array([dt.date(2024, 1, 1), dt.date(1999, 12, 31), None, dt.date(2024, 2, 29), dt.date(2038, 1, 19),
                      dt.date(1970, 1, 1), dt.date(2024, 12, 30)], pa.date32()),
    "at": pa.array([dt.datetime(2024, 1, 1, 12, 30, 5, 123456), None, dt.datetime(2000, 2, 29), None, None, None,
                    dt.datetime(2024, 3, 31, 23, 59, 59)], pa.timestamp("us")),
    "customers": pa.array([1, -2, None, 2**62, 0, 3, 4], pa.int64()),
    "rank": pa.array([1, 2, 3, None, 5, 6, 7], pa.int32()),
    "churn_risk": [0.1, 1 / 3, None, float("inf"), -0.0, 1e-300, 2.5e300],
    "multi_product": [True, False, None, True, False, True, None],
})


def test_a_table_reads_back_with_the_same_arrow_types_and_values_on_both(
        workspace: Store, postgres_server: Any, tmp_path: Path) -> None:
    source = workspace.runs()[-1]
    tables = {name: workspace.table(name, source.run_id) for name in source.rows}
    tables["movements"] = _EDGES  # and every type with its edge values
    stores = [Store.open(tmp_path / "duck"), Store.open(postgres_server.database())]
    read = []
    for store in stores:
        run_id = _save(store, tables)
        read.append({name: store.table(name, run_id) for name in tables})
    for name, table in tables.items():
        for back in read:
            assert back[name].schema == table.schema, name
            assert back[name].equals(table), name  # decimals to the cent, dates, nulls, escapes: all as written
    mrr = read[1]["movements"]["mrr"].to_pylist()
    assert mrr[:3] == [Decimal("0.01"), Decimal("-12345678.90"), Decimal("99999999999999.99")]


def test_a_column_a_later_run_adds_is_added_and_earlier_runs_have_it_empty(location: str) -> None:
    store = Store.open(location)
    cents = pa.decimal128(20, 2)
    first = _save(store, {"metrics": pa.table({"month": ["2024-01"], "mrr": pa.array([Decimal("1.50")], cents)})})
    later = pa.table({"month": ["2024-02"], "mrr": pa.array([Decimal("2.25")], cents),
                      "arr": pa.array([Decimal("27.00")], cents), "customers": pa.array([3], pa.int64())})
    second = _save(store, {"metrics": later})
    assert store.table("metrics", second).equals(later)
    earlier = store.table("metrics", first)
    assert earlier.schema == later.schema and earlier["arr"].to_pylist() == [None]
    assert store.schema_version() == SCHEMA_VERSION


def test_a_run_and_its_model_land_together_and_the_registry_keeps_the_active_one(location: str) -> None:
    store = Store.open(location)
    table = {"metrics": pa.table({"month": ["2024-01"]})}
    model = _model(store, dt.date(2024, 1, 31))
    run_id = _save(store, table, new_model=model, activate=True)
    assert store.run_record(run_id).model_id == model.model_id
    active = store.active_model()
    assert active is not None and active.model_id == model.model_id and active.files == model.files
    cfg = ScoringConfig()
    assert model_decision(active.card, cfg, dt.date(2024, 3, 31)).use_active
    # a backfill's model scores its own run and leaves the active one
    backfill = _model(store, dt.date(2023, 6, 30))
    _save(store, table, as_of=dt.date(2023, 6, 30), new_model=backfill, activate=False)
    assert [m.model_id for m in store.models()] == [model.model_id, backfill.model_id]
    assert _active_id(store) == model.model_id
    # a run that fails takes its model with it
    broken = _model(store, dt.date(2024, 6, 30))
    with pytest.raises(WorkspaceError, match="not a result table"):
        _save(store, {**table, "nope": table["metrics"]}, new_model=broken, activate=True)
    assert len(store.runs()) == 2 and _active_id(store) == model.model_id
    newer = _model(store, dt.date(2024, 6, 30))
    store.save_model(newer)
    assert _active_id(store) == newer.model_id
    _write_sql(store, f"UPDATE models SET files = '{{}}' WHERE model_id = '{newer.model_id}'")
    with pytest.raises(WorkspaceError, match="changed after it was saved"):
        store.active_model()


def test_a_second_writer_waits_then_says_who_holds_the_workspace(location: str) -> None:
    store = Store.open(location)
    holder = "upcurve process 4242 on the-other-host"
    with contextlib.ExitStack() as held:
        if store.folder is not None:
            import fcntl

            lock = os.open(store.folder / "workspace.lock", os.O_RDWR)
            held.callback(os.close, lock)
            fcntl.flock(lock, fcntl.LOCK_EX)
            os.pwrite(lock, holder.encode(), 0)
        else:
            con = held.enter_context(psycopg.connect(location, autocommit=True, application_name=holder))
            held.enter_context(con.transaction())
            con.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        started = time.monotonic()
        with pytest.raises(WorkspaceError, match=f"is busy: {holder} is writing to it"):
            Store.open(location, wait_seconds=0.3)
        assert time.monotonic() - started < 5
        assert store.runs() == []  # readers do not wait
    Store.open(location, wait_seconds=0.3)  # and once it is free, the next writer goes on


def test_the_schema_of_an_older_workspace_is_migrated(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    with duckdb.connect(str(ws / "workspace.duckdb")) as con:  # a workspace of schema 1, as the first release left it
        con.execute("CREATE TABLE upcurve_schema (version INTEGER, migrated_at TIMESTAMP, upcurve VARCHAR)")
        for statement in MIGRATIONS[1]:
            con.execute(statement)
        con.execute("INSERT INTO upcurve_schema VALUES (1, now(), '0.1.0')")
        con.execute("CREATE TABLE metrics AS SELECT 'run-1' AS run_id, '2024-01' AS month, 1.50::DECIMAL(20,2) AS mrr")
        con.execute("INSERT INTO runs VALUES ('run-1', DATE '2024-01-31', 'old', 'f', 'complete', now(), now(), "
                    "'0.1.0', '{}', '[]', NULL, NULL, '{\"metrics\": 1}')")
    store = Store.open(ws)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.table("metrics", "run-1").to_pylist() == [{"month": "2024-01", "mrr": Decimal("1.50")}]
    run_id = _save(store, {"metrics": pa.table({"month": ["2024-02"]})})
    assert store.table("metrics", run_id)["mrr"].to_pylist() == [None]


def test_a_postgresql_workspace_is_named_without_its_password_and_needs_its_own_database(
        postgres_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WorkspaceError, match=f"cannot open the workspace postgresql://ann@127.0.0.1:{port}/x") as err:
        Store.open(f"postgresql://ann:s3cret@127.0.0.1:{port}/x")
    assert "s3cret" not in str(err.value)
    empty = postgres_server.database()
    result = CliRunner().invoke(app, ["runs", "--workspace", empty])
    assert result.exit_code == 1 and f"no workspace at {empty}" in " ".join(result.output.split())
    with psycopg.connect(empty, autocommit=True) as con:
        con.execute("CREATE TABLE runs (id int)")
    with pytest.raises(WorkspaceError, match="holds tables named runs but no workspace"):
        Store.open(empty)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # the driver not installed
    monkeypatch.delitem(sys.modules, "upcurve.workspace._postgres", raising=False)
    with pytest.raises(WorkspaceError, match=r"pip install 'upcurve\[postgres\]'"):
        Store.open("postgresql://ann:s3cret@db.example.com/upcurve")


def _active_id(store: Store) -> str | None:
    active = store.active_model()
    return active.model_id if active is not None else None
