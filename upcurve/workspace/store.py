"""The workspace: every run, its tables and its models, in one database that lasts.

A workspace is a folder holding one embedded DuckDB database (``workspace.duckdb``), or a PostgreSQL database
named by its URL for a team (``postgresql://user@host:5432/db``; needs ``pip install 'upcurve[postgres]'``). It
holds:

- ``runs``: one row per run (id, as-of date, the data source and a fingerprint of its input, the settings,
  upcurve's version, start and end, status, notes, the model that scored it and why);
- every result table of every run (``mrr``, ``movements``, ``metrics``, …, ``worklist``), each with a leading
  ``run_id`` column, so history stays queryable; ``table_schemas`` keeps each one's Arrow schema, so it reads back
  with the types it was written with whatever the database;
- ``models``: the model registry (each trained model's files and card, what it learned from, which is active);
- ``upcurve_schema``: the schema's version, so a later upcurve migrates an older workspace forward.

A run lands whole or not at all: its rows are written in one transaction with its ``complete`` status, so a run
killed at any moment leaves every earlier run as it was. Only one process writes at a time (a lock file beside
the DuckDB file; a transaction-level advisory lock on PostgreSQL): a second one waits for the first (up to
``wait_seconds``) and then stops with a message saying who holds the workspace.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from upcurve import __version__
from upcurve.workspace._database import Connection, Database, DuckDBDatabase, WorkspaceError, quote, shown_url
from upcurve.workspace.schema import MIGRATIONS, RESULT_TABLES, SCHEMA_VERSION

if TYPE_CHECKING:  # Ibis is imported only when a caller asks for an Ibis connection
    import ibis

__all__ = ["DEFAULT_WORKSPACE", "ModelRecord", "RunRecord", "Store", "WorkspaceError"]

#: The workspace used when none is named (``--workspace`` or ``UPCURVE_WORKSPACE``): a folder in the current one.
DEFAULT_WORKSPACE = "upcurve-workspace"
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


def _type_name(kind: pa.DataType) -> str:
    return "string" if pa.types.is_null(kind) else str(kind)  # a column with no value yet is kept as text


_DECIMAL = re.compile(r"decimal128\((\d+), (\d+)\)")
_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]")
_SIMPLE_TYPES = {str(t): t for t in (pa.string(), pa.large_string(), pa.bool_(), pa.int8(), pa.int16(), pa.int32(),
                                     pa.int64(), pa.float32(), pa.float64(), pa.date32())}


def _parse_type(name: str) -> pa.DataType | None:
    """The Arrow type a ``table_schemas`` entry names (None for one this upcurve does not know: read it as stored).

    >>> kinds = [pa.decimal128(20, 2), pa.timestamp("us", tz="UTC"), pa.date32(), pa.string(), pa.float64()]
    >>> [_parse_type(str(kind)) == kind for kind in kinds], _parse_type("list<item: string>")
    ([True, True, True, True, True], None)
    """
    if name in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[name]
    if found := _DECIMAL.fullmatch(name):
        return pa.decimal128(int(found[1]), int(found[2]))
    if found := _TIMESTAMP.fullmatch(name):
        return pa.timestamp(found[1], tz=found[2])
    return None


def _new_id(prefix: str) -> str:
    return f"{prefix}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"


def _database(location: str) -> Database:
    """The database a workspace location names: a ``postgresql://`` URL, else a folder."""
    if location.startswith(("postgresql://", "postgres://")):
        try:
            from upcurve.workspace._postgres import PostgresDatabase
        except ImportError as exc:
            if (exc.name or "").startswith("upcurve"):
                raise
            raise WorkspaceError(f"the workspace {shown_url(location)} is a PostgreSQL database, and its driver is "
                                 "not installed: pip install 'upcurve[postgres]'") from None
        return PostgresDatabase(location)
    return DuckDBDatabase(Path(location).expanduser())


class Store:
    """A workspace's database. Open it with :meth:`open`; every method opens the database only as long as it
    needs it, so other processes can use the workspace in between.

    Parameters
    ----------
    location
        A folder (created when missing) for an embedded DuckDB workspace, or a ``postgresql://`` URL of an
        existing database for a team's workspace.
    wait_seconds
        How long a writer waits for another process holding the workspace before it gives up.

    Attributes
    ----------
    where
        The workspace as messages name it: its folder, or its URL without the password.
    folder
        The folder of an embedded workspace (None for PostgreSQL).
    """

    def __init__(self, location: str | Path, *, wait_seconds: float = 120.0) -> None:
        self.location = str(location)
        self.wait_seconds = wait_seconds
        self._db = _database(self.location)
        self.where = self._db.where
        self.folder: Path | None = self._db.folder

    # -- opening --------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, location: str | Path, *, create: bool = True, wait_seconds: float = 120.0) -> Store:
        """Open (and, with ``create``, create or migrate) the workspace at ``location``."""
        store = cls(location, wait_seconds=wait_seconds)
        store._db.check(create=create)
        with store._writing() as con:
            store._migrate(con)
        return store

    @classmethod
    def check(cls, location: str | Path, *, create: bool = True) -> None:
        """Raise why the workspace at ``location`` could not be opened (or, with ``create``, created), making
        nothing: a command checks this before its long work and opens the workspace once there is something to
        keep (:meth:`open`)."""
        cls(location)._db.check(create=create)

    @property
    def database(self) -> Path | None:
        """The DuckDB file of an embedded workspace (None for PostgreSQL)."""
        return self._db.path if isinstance(self._db, DuckDBDatabase) else None

    def _writing(self) -> contextlib.AbstractContextManager[Connection]:
        """The database opened for writing, while this process holds the workspace's lock."""
        return self._db.writing(self.wait_seconds)

    def _reading(self) -> contextlib.AbstractContextManager[Connection]:
        """The database opened for reading."""
        return self._db.reading(self.wait_seconds)

    def ibis(self) -> ibis.BaseBackend:
        """The workspace as an Ibis connection, read-only: result tables as Ibis tables (for notebooks)."""
        return self._db.ibis(self.wait_seconds)

    # -- schema ---------------------------------------------------------------------------------------------
    def _migrate(self, con: Connection) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS upcurve_schema (version INTEGER, migrated_at TIMESTAMP, "
                    "upcurve VARCHAR)")
        found = con.scalar("SELECT max(version) FROM upcurve_schema")
        version = int(found) if found is not None else 0
        if version > SCHEMA_VERSION:
            raise WorkspaceError(f"the workspace {self.where} has schema version {version}, newer than this "
                                 f"upcurve ({__version__}, schema {SCHEMA_VERSION}) reads; upgrade upcurve")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with con.transaction():
                for statement in MIGRATIONS[target]:
                    con.execute(statement)
                con.execute("INSERT INTO upcurve_schema VALUES (?, ?, ?)",
                            [target, dt.datetime.now(dt.UTC).replace(tzinfo=None), __version__])

    def schema_version(self) -> int:
        with self._reading() as con:
            found = con.scalar("SELECT max(version) FROM upcurve_schema")
        return int(found) if found is not None else 0

    @staticmethod
    def _stored_types(con: Connection, name: str) -> dict[str, pa.DataType | None]:
        """The Arrow type of each column of a result table, as runs wrote them (none before schema 2)."""
        if not con.columns("table_schemas"):
            return {}
        stored = con.scalar("SELECT arrow_schema FROM table_schemas WHERE table_name = ?", [name])
        return {f["name"]: _parse_type(f["type"]) for f in json.loads(stored)["fields"]} if stored else {}

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
            with con.transaction():
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
        return self.run_record(run_id)

    @staticmethod
    def _reap(con: Connection) -> None:
        """Nothing to repair: a run's rows and its ``runs`` row commit together, so a killed run left nothing."""

    def _insert(self, con: Connection, name: str, table: pa.Table, run_id: str) -> None:
        """Append a run's table, and keep the table's Arrow schema (a column a run adds is added to it)."""
        con.append(name, table.add_column(0, "run_id", pa.array([run_id] * table.num_rows, pa.string())))
        stored = con.scalar("SELECT arrow_schema FROM table_schemas WHERE table_name = ?", [name])
        fields: list[dict[str, str]] = json.loads(stored)["fields"] if stored else []
        known = {f["name"] for f in fields}
        added = [{"name": f.name, "type": _type_name(f.type)} for f in table.schema if f.name not in known]
        if added:
            con.execute("DELETE FROM table_schemas WHERE table_name = ?", [name])
            con.execute("INSERT INTO table_schemas VALUES (?, ?)", [name, json.dumps({"fields": fields + added})])

    def runs(self) -> list[RunRecord]:
        """Every complete run, oldest first."""
        with self._reading() as con:
            names, rows = con.rows("SELECT * FROM runs WHERE status = 'complete' ORDER BY started_at, run_id")
        return [RunRecord.from_row(dict(zip(names, row, strict=True))) for row in rows]

    def run_record(self, run_id: str) -> RunRecord:
        for record in self.runs():
            if record.run_id == run_id:
                return record
        raise WorkspaceError(f"no run {run_id!r} in the workspace {self.where}; `upcurve runs` lists them")

    def find_run(self, run_id: str | None = None, *, as_of: dt.date | None = None) -> RunRecord:
        """A run by id (a unique prefix will do), the latest run at an as-of date, or the latest run."""
        runs = self.runs()
        if not runs:
            raise WorkspaceError(f"the workspace {self.where} holds no run yet: `upcurve run DATA --workspace "
                                 f"{self.where}`")
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

    def table(self, name: str, run_id: str, *, account_id: str | None = None) -> pa.Table:
        """A result table of a run, as Arrow, without its ``run_id`` column, with the types the runs wrote; only
        one account's rows when ``account_id`` is given (the table must have the column)."""
        if name not in RESULT_TABLES:
            raise WorkspaceError(f"unknown table {name!r}: the tables are {', '.join(RESULT_TABLES)}")
        with self._reading() as con:
            columns = [c for c in con.columns(name) if c != "run_id"]
            if not columns:
                return pa.table({})
            types = {c: t for c, t in self._stored_types(con, name).items() if t is not None}
            listed = ", ".join(quote(c) for c in columns)
            if account_id is None:
                return con.arrow(f"SELECT {listed} FROM {quote(name)} WHERE run_id = ?", [run_id], types)
            return con.arrow(f"SELECT {listed} FROM {quote(name)} WHERE run_id = ? AND account_id = ?",
                             [run_id, account_id], types)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run a read-only SQL query on the workspace (the result tables, ``runs`` and ``models``).

        The SQL must read the same on DuckDB and PostgreSQL, with ``?`` placeholders."""
        with self._reading() as con:
            return con.arrow(sql, params or [])

    # -- models ---------------------------------------------------------------------------------------------
    @staticmethod
    def _insert_model(con: Connection, record: ModelRecord, *, activate: bool) -> None:
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
        with self._writing() as con, con.transaction():
            self._insert_model(con, record, activate=activate)

    def models(self) -> list[ModelRecord]:
        """Every registered model, oldest first."""
        with self._reading() as con:
            names, rows = con.rows("SELECT * FROM models ORDER BY created_at, model_id")
        records = []
        for row in rows:
            data = dict(zip(names, row, strict=True))
            if hashlib.sha256(json.dumps(json.loads(data["files"]), sort_keys=True).encode()).hexdigest() \
                    != data["sha256"]:
                raise WorkspaceError(f"the model {data['model_id']} in {self.where} was changed after it was "
                                     "saved; it is refused. Retrain with `upcurve run --retrain`")
            records.append(ModelRecord.from_row(data))
        return records

    def active_model(self) -> ModelRecord | None:
        active = [m for m in self.models() if m.active]
        return active[-1] if active else None

    @staticmethod
    def new_model_id() -> str:
        return _new_id("model")
