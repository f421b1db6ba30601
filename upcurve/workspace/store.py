"""The workspace: every run, its tables and its models, in one database that lasts.

A workspace is a folder holding one embedded DuckDB database (``workspace.duckdb``), or a PostgreSQL database
named by its URL for a team. It holds:

- ``runs``: one row per run (id, as-of date, the data source and a fingerprint of its input, the settings,
  upcurve's version, start and end, status, notes, the model that scored it and why);
- every result table of every run (``mrr``, ``movements``, ``metrics``, …, ``worklist``), each with a leading
  ``run_id`` column, so history stays queryable;
- ``models``: the model registry (each trained model's files and card, what it learned from, which is active);
- ``upcurve_schema``: the schema's version, so a later upcurve migrates an older workspace forward.

A run lands whole or not at all: its rows are written in one transaction with its ``complete`` status, so a run
killed at any moment leaves every earlier run as it was. Only one process writes at a time: a second one waits
for the first (up to ``wait_seconds``) and then stops with a message saying who holds the workspace.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pyarrow as pa

from upcurve import __version__
from upcurve.errors import UpcurveError
from upcurve.workspace.schema import MIGRATIONS, RESULT_TABLES, SCHEMA_VERSION

__all__ = ["DEFAULT_WORKSPACE", "ModelRecord", "RunRecord", "Store", "WorkspaceError"]

#: The workspace used when none is named (``--workspace`` or ``UPCURVE_WORKSPACE``): a folder in the current one.
DEFAULT_WORKSPACE = "upcurve-workspace"
_DATABASE = "workspace.duckdb"
_LOCK = "workspace.lock"


class WorkspaceError(UpcurveError, RuntimeError):
    """The workspace cannot be opened, is busy, or does not hold what was asked for."""


@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``."""

    run_id: str
    as_of: dt.date
    source: str
    fingerprint: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    upcurve: str
    settings: dict[str, Any]
    notes: list[str]
    model_id: str | None
    model_reason: str | None
    rows: dict[str, int]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        return cls(run_id=row["run_id"], as_of=row["as_of"], source=row["source"], fingerprint=row["fingerprint"],
                   status=row["status"], started_at=row["started_at"], finished_at=row["finished_at"],
                   upcurve=row["upcurve"], settings=json.loads(row["settings"] or "{}"),
                   notes=json.loads(row["notes"] or "[]"), model_id=row["model_id"],
                   model_reason=row["model_reason"], rows=json.loads(row["row_counts"] or "{}"))


@dataclass(frozen=True)
class ModelRecord:
    """One row of ``models``: a trained model, its files and its card."""

    model_id: str
    created_at: dt.datetime
    trained_as_of: dt.date
    source: str
    fingerprint: str
    kind: str
    active: bool
    card: dict[str, Any]
    files: dict[str, bytes]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModelRecord:
        files = {name: text.encode("utf-8") for name, text in json.loads(row["files"]).items()}
        return cls(model_id=row["model_id"], created_at=row["created_at"], trained_as_of=row["trained_as_of"],
                   source=row["source"], fingerprint=row["fingerprint"], kind=row["kind"],
                   active=bool(row["active"]), card=json.loads(row["card"]), files=files)


def _arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> pa.Table:
    """A query's result as an Arrow table (DuckDB 2 renamed the call DuckDB 1 had)."""
    relation: Any = con.sql(sql, params=params)
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    table: pa.Table = fetch()
    return table


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The one value a query returns (None when it returns no row), with the result read to its end."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def _new_id(prefix: str) -> str:
    return f"{prefix}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"


class Store:
    """A workspace's database. Open it with :meth:`open`; every method opens the database only as long as it
    needs it, so other processes can use the workspace in between.

    Parameters
    ----------
    location
        A folder (created when missing) for an embedded DuckDB workspace, or a ``postgresql://`` URL.
    wait_seconds
        How long a writer waits for another process holding the workspace before it gives up.
    """

    def __init__(self, location: str | Path, *, wait_seconds: float = 120.0) -> None:
        self.location = str(location)
        self.wait_seconds = wait_seconds
        if self.location.startswith(("postgresql://", "postgres://")):
            raise WorkspaceError("PostgreSQL workspaces are not available in this version yet; use a folder")
        self.folder = Path(self.location).expanduser()

    # -- opening --------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, location: str | Path, *, create: bool = True, wait_seconds: float = 120.0) -> Store:
        """Open (and, with ``create``, create or migrate) the workspace at ``location``."""
        store = cls(location, wait_seconds=wait_seconds)
        if store.folder.exists() and not store.folder.is_dir():
            raise WorkspaceError(f"{store.folder} is a file, not a workspace folder")
        database = store.folder / _DATABASE
        if not database.exists():
            if not create:
                raise WorkspaceError(f"no workspace at {store.folder}: run `upcurve run DATA --workspace "
                                     f"{store.folder}` to create it")
            if store.folder.exists() and any(p for p in store.folder.iterdir() if p.name != _LOCK):
                raise WorkspaceError(f"{store.folder} holds other files; a workspace needs an empty or new folder")
            store.folder.mkdir(parents=True, exist_ok=True)
        with store._writing() as con:
            store._migrate(con)
        return store

    @property
    def database(self) -> Path:
        return self.folder / _DATABASE

    @contextlib.contextmanager
    def _writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The database opened for writing, while this process holds the workspace's lock."""
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.wait_seconds
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = os.pread(lock, 200, 0).decode("utf-8", "replace").strip() or "another process"
                        raise WorkspaceError(f"the workspace {self.folder} is busy: {holder} is writing to it. "
                                             "Wait for it to finish, or raise the wait with "
                                             "UPCURVE_WORKSPACE_WAIT (seconds)") from None
                    time.sleep(0.1)
            os.ftruncate(lock, 0)
            os.pwrite(lock, f"upcurve process {os.getpid()} on {socket.gethostname()}".encode(), 0)
            con = self._connect(read_only=False)
            try:
                yield con
            finally:
                con.close()
        finally:
            os.close(lock)

    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                return duckdb.connect(str(self.database), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise WorkspaceError(f"cannot open the workspace {self.folder}: {str(exc).splitlines()[0]}") \
                        from None
                time.sleep(0.1)

    @contextlib.contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The database opened for reading."""
        if not self.database.exists():
            raise WorkspaceError(f"no workspace at {self.folder}: run `upcurve run DATA --workspace {self.folder}` "
                                 "first")
        con = self._connect(read_only=True)
        try:
            yield con
        finally:
            con.close()

    def ibis(self) -> ibis.BaseBackend:
        """The workspace as an Ibis connection, read-only: result tables as Ibis tables (for notebooks)."""
        if not self.database.exists():
            raise WorkspaceError(f"no workspace at {self.folder}")
        return ibis.duckdb.from_connection(self._connect(read_only=True))

    # -- schema ---------------------------------------------------------------------------------------------
    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS upcurve_schema (version INTEGER, migrated_at TIMESTAMP, "
                    "upcurve VARCHAR)")
        found = _scalar(con, "SELECT max(version) FROM upcurve_schema")
        version = int(found) if found is not None else 0
        if version > SCHEMA_VERSION:
            raise WorkspaceError(f"the workspace {self.folder} has schema version {version}, newer than this "
                                 f"upcurve ({__version__}, schema {SCHEMA_VERSION}) reads; upgrade upcurve")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            con.execute("BEGIN TRANSACTION")
            for statement in MIGRATIONS[target]:
                con.execute(statement)
            con.execute("INSERT INTO upcurve_schema VALUES (?, ?, ?)",
                        [target, dt.datetime.now(dt.UTC).replace(tzinfo=None), __version__])
            con.execute("COMMIT")

    def schema_version(self) -> int:
        with self.reading() as con:
            found = _scalar(con, "SELECT max(version) FROM upcurve_schema")
        return int(found) if found is not None else 0

    # -- runs -----------------------------------------------------------------------------------------------
    def save_run(self, *, as_of: dt.date, source: str, fingerprint: str, settings: Mapping[str, Any],
                 tables: Mapping[str, pa.Table], notes: list[str], started_at: dt.datetime,
                 model: tuple[str | None, str | None] = (None, None),
                 new_model: ModelRecord | None = None, activate: bool = False) -> RunRecord:
        """Store a run whole: its row in ``runs``, its tables, and the model it trained, in one transaction."""
        run_id = _new_id("run")
        finished = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = {name: t.num_rows for name, t in tables.items()}
        with self._writing() as con:
            self._reap(con)
            con.execute("BEGIN TRANSACTION")
            try:
                if new_model is not None:
                    self._insert_model(con, new_model, activate=activate)
                for name, table in tables.items():
                    if name not in RESULT_TABLES:
                        raise WorkspaceError(f"{name!r} is not a result table the workspace keeps")
                    self._insert(con, name, table, run_id)
                con.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, as_of, source, fingerprint, started_at.replace(tzinfo=None), finished, __version__,
                     json.dumps(settings, default=str), json.dumps(notes), model[0], model[1], json.dumps(rows)])
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
        return self.run_record(run_id)

    @staticmethod
    def _reap(con: duckdb.DuckDBPyConnection) -> None:
        """Nothing to repair: a run's rows and its ``runs`` row commit together, so a killed run left nothing."""

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, run_id: str) -> None:
        data = table.add_column(0, "run_id", pa.array([run_id] * table.num_rows, pa.string()))
        existing = {r[0]: r[1] for r in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [name]).fetchall()}
        con.register("_incoming", data)
        try:
            if not existing:
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _incoming LIMIT 0')
                existing = {c: "" for c in data.column_names}
            for column in data.column_names:
                if column not in existing:
                    # a column a later upcurve adds: earlier runs have it empty
                    kind = _scalar(con, f'SELECT typeof("{column}") FROM _incoming LIMIT 1')
                    sql_type = kind if kind and kind != "NULL" else "VARCHAR"
                    con.execute(f'ALTER TABLE "{name}" ADD COLUMN "{column}" {sql_type}')
            columns = ", ".join(f'"{c}"' for c in data.column_names)
            con.execute(f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM _incoming')
        finally:
            con.unregister("_incoming")

    def runs(self) -> list[RunRecord]:
        """Every complete run, oldest first."""
        with self.reading() as con:
            cursor = con.execute("SELECT * FROM runs WHERE status = 'complete' ORDER BY started_at, run_id")
            names = [d[0] for d in cursor.description]
            return [RunRecord.from_row(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def run_record(self, run_id: str) -> RunRecord:
        for record in self.runs():
            if record.run_id == run_id:
                return record
        raise WorkspaceError(f"no run {run_id!r} in the workspace {self.folder}; `upcurve runs` lists them")

    def find_run(self, run_id: str | None = None, *, as_of: dt.date | None = None) -> RunRecord:
        """A run by id (a unique prefix will do), the latest run at an as-of date, or the latest run."""
        runs = self.runs()
        if not runs:
            raise WorkspaceError(f"the workspace {self.folder} holds no run yet: `upcurve run DATA --workspace "
                                 f"{self.folder}`")
        if run_id is not None:
            matches = [r for r in runs if r.run_id == run_id] or [r for r in runs if r.run_id.startswith(run_id)]
            if len(matches) != 1:
                raise WorkspaceError(f"{'no' if not matches else 'more than one'} run matches {run_id!r}; "
                                     "`upcurve runs` lists them")
            return matches[0]
        if as_of is not None:
            at = [r for r in runs if r.as_of == as_of]
            if not at:
                dates = ", ".join(sorted({str(r.as_of) for r in runs}))
                raise WorkspaceError(f"no run as of {as_of}; the runs are as of {dates}")
            return at[-1]
        return runs[-1]

    def table(self, name: str, run_id: str) -> pa.Table:
        """A result table of a run, as Arrow, without its ``run_id`` column."""
        if name not in RESULT_TABLES:
            raise WorkspaceError(f"unknown table {name!r}: the tables are {', '.join(RESULT_TABLES)}")
        with self.reading() as con:
            present = _scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name])
            if not present:
                return pa.table({})
            return _arrow(con, f'SELECT * EXCLUDE (run_id) FROM "{name}" WHERE run_id = ?', [run_id])

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run a read-only SQL query on the workspace (the result tables, ``runs`` and ``models``)."""
        with self.reading() as con:
            return _arrow(con, sql, params or [])

    # -- models ---------------------------------------------------------------------------------------------
    def _insert_model(self, con: duckdb.DuckDBPyConnection, record: ModelRecord, *, activate: bool) -> None:
        files = {name: data.decode("utf-8") for name, data in record.files.items()}
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        if activate:
            con.execute("UPDATE models SET active = false WHERE active")
        con.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [record.model_id, record.created_at.replace(tzinfo=None), record.trained_as_of, record.source,
                     record.fingerprint, record.kind, activate, json.dumps(record.card, default=str),
                     json.dumps(files), digest])

    def save_model(self, record: ModelRecord, *, activate: bool = True) -> None:
        """Add a trained model to the registry (and make it the active one)."""
        with self._writing() as con:
            con.execute("BEGIN TRANSACTION")
            self._insert_model(con, record, activate=activate)
            con.execute("COMMIT")

    def models(self) -> list[ModelRecord]:
        """Every registered model, oldest first."""
        with self.reading() as con:
            cursor = con.execute("SELECT * FROM models ORDER BY created_at, model_id")
            names = [d[0] for d in cursor.description]
            records = []
            for row in cursor.fetchall():
                data = dict(zip(names, row, strict=True))
                if hashlib.sha256(json.dumps(json.loads(data["files"]), sort_keys=True).encode()).hexdigest() \
                        != data["sha256"]:
                    raise WorkspaceError(f"the model {data['model_id']} in {self.folder} was changed after it was "
                                         "saved; it is refused. Retrain with `upcurve run --retrain`")
                records.append(ModelRecord.from_row(data))
            return records

    def active_model(self) -> ModelRecord | None:
        active = [m for m in self.models() if m.active]
        return active[-1] if active else None

    @staticmethod
    def new_model_id() -> str:
        return _new_id("model")
