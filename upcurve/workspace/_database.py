"""The databases a workspace lives in, behind :class:`~upcurve.workspace.store.Store`.

Each kind of database (an embedded DuckDB file in a folder, a PostgreSQL database for a team) opens itself for
reading, or for writing while it holds the workspace's lock, and speaks its own SQL dialect where it must: how it
takes parameters, creates a result table from an Arrow schema, bulk-loads rows and reads them back as Arrow. The
store's own SQL is portable (``?`` placeholders, types both accept), so it never asks which database it talks to.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import duckdb
import pyarrow as pa

from upcurve.errors import UpcurveError

if TYPE_CHECKING:  # Ibis is imported only when a caller asks for an Ibis connection
    import ibis

__all__ = ["Connection", "Database", "DuckDBDatabase", "WorkspaceError", "busy", "holder_name", "missing",
           "quote", "shown_url"]

_DATABASE = "workspace.duckdb"
_LOCK = "workspace.lock"


class WorkspaceError(UpcurveError, RuntimeError):
    """The workspace cannot be opened, is busy, or does not hold what was asked for."""


def missing(where: str, then: str = "first") -> WorkspaceError:
    """The error for a workspace that is not there yet."""
    return WorkspaceError(f"no workspace at {where}: run `upcurve run DATA --workspace {where}` {then}")


def busy(where: str, holder: str) -> WorkspaceError:
    """The error for a writer that waited its time for another one."""
    return WorkspaceError(f"the workspace {where} is busy: {holder} is writing to it. Wait for it to finish, or "
                          "raise the wait with UPCURVE_WORKSPACE_WAIT (seconds)")


def holder_name() -> str:
    """How this process names itself to another one waiting for the workspace."""
    return f"upcurve process {os.getpid()} on {socket.gethostname()}"


def shown_url(url: str) -> str:
    """A database URL as messages show it: without its password (in the address or as a parameter).

    >>> shown_url("postgresql://ann:s3cret@db.example.com:5432/upcurve?sslmode=require&password=x")
    'postgresql://ann@db.example.com:5432/upcurve?sslmode=require'
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def quote(identifier: str) -> str:
    """An SQL identifier, quoted (the same way on DuckDB and PostgreSQL)."""
    return '"' + identifier.replace('"', '""') + '"'


def conform(table: pa.Table, types: Mapping[str, pa.DataType]) -> pa.Table:
    """``table`` with each column of a known type cast to it (a no-op when the database kept the type)."""
    for i, name in enumerate(table.column_names):
        wanted = types.get(name)
        if wanted is not None and table.schema.field(i).type != wanted:
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                table = table.set_column(i, name, table.column(i).cast(wanted))
    return table


class Connection(ABC):
    """A workspace database, open. SQL takes ``?`` placeholders on every database."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement."""

    @abstractmethod
    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert many rows into an existing table in one bulk load (a row at a time is far too slow)."""

    @abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        """A query's column names and rows, as Python values."""

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The one value a query returns (None when it returns no row)."""
        _, rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    @abstractmethod
    def arrow(self, sql: str, params: Sequence[Any] = (), types: Mapping[str, pa.DataType] | None = None) -> pa.Table:
        """A query's result as Arrow; a column named in ``types`` comes back with that type."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A block whose statements commit together, or not at all."""

    @abstractmethod
    def columns(self, table: str) -> list[str]:
        """The columns of a table, in order (none when there is no such table)."""

    @abstractmethod
    def append(self, table: str, data: pa.Table) -> None:
        """Add rows to a result table, creating it from their Arrow schema, or adding the columns it lacks."""


class Database(ABC):
    """Where a workspace lives. ``where`` names it in messages (a folder, or a URL without its password)."""

    where: str
    folder: Path | None = None

    @abstractmethod
    def check(self, *, create: bool) -> None:
        """Check the workspace can be opened (and, with ``create``, made) here, making nothing; raise why not. The
        first :meth:`writing` makes it."""

    @abstractmethod
    def writing(self, wait_seconds: float) -> contextlib.AbstractContextManager[Connection]:
        """The database open for writing, while this process alone holds the workspace."""

    @abstractmethod
    def reading(self, wait_seconds: float) -> contextlib.AbstractContextManager[Connection]:
        """The database open for reading; raises :func:`missing` when it holds no workspace."""

    @abstractmethod
    def ibis(self, wait_seconds: float) -> ibis.BaseBackend:
        """The database as a read-only Ibis connection."""


# -- DuckDB: one embedded file in a folder, a lock file beside it ------------------------------------------------
class DuckDBConnection(Connection):
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params))

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        data = pa.table({c: pa.array([r[i] for r in rows]) for i, c in enumerate(columns)})
        self.con.register("_rows", data)
        try:
            names = ", ".join(quote(c) for c in columns)
            self.con.execute(f"INSERT INTO {quote(table)} ({names}) SELECT {names} FROM _rows")
        finally:
            with contextlib.suppress(duckdb.Error):  # after a failed insert: keep its error, not this one's
                self.con.unregister("_rows")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = self.con.execute(sql, list(params))
        return [d[0] for d in cursor.description or []], cursor.fetchall()

    def arrow(self, sql: str, params: Sequence[Any] = (), types: Mapping[str, pa.DataType] | None = None) -> pa.Table:
        relation: Any = self.con.sql(sql, params=list(params))
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2 renamed DuckDB 1's call
        table: pa.Table = fetch()
        return conform(table, types) if types else table

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            raise

    def columns(self, table: str) -> list[str]:
        _, rows = self.rows("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                            "ORDER BY ordinal_position", [table])
        return [r[0] for r in rows]

    def append(self, table: str, data: pa.Table) -> None:
        existing = set(self.columns(table))
        self.con.register("_incoming", data)
        try:
            if not existing:
                self.con.execute(f"CREATE TABLE {quote(table)} AS SELECT * FROM _incoming LIMIT 0")
                existing = set(data.column_names)
            for column in data.column_names:
                if column not in existing:
                    # a column a later upcurve adds: earlier runs have it empty
                    kind = self.scalar(f"SELECT typeof({quote(column)}) FROM _incoming LIMIT 1")
                    sql_type = kind if kind and kind != "NULL" else "VARCHAR"
                    self.con.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column)} {sql_type}")
            columns = ", ".join(quote(c) for c in data.column_names)
            self.con.execute(f"INSERT INTO {quote(table)} ({columns}) SELECT {columns} FROM _incoming")
        finally:
            self.con.unregister("_incoming")


class DuckDBDatabase(Database):
    """A folder holding ``workspace.duckdb`` and ``workspace.lock``; writers take turns on the lock file."""

    def __init__(self, folder: Path) -> None:
        self.folder = self.root = folder
        self.where = str(folder)
        self.path = folder / _DATABASE

    def check(self, *, create: bool) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise WorkspaceError(f"{self.root} is a file, not a workspace folder")
        if not self.path.exists():
            if not create:
                raise missing(self.where, "to create it")
            if self.root.exists() and any(p for p in self.root.iterdir() if p.name != _LOCK):
                raise WorkspaceError(f"{self.root} holds other files; a workspace needs an empty or new folder")

    @contextlib.contextmanager
    def writing(self, wait_seconds: float) -> Iterator[Connection]:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.root / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = os.pread(lock, 200, 0).decode("utf-8", "replace").strip() or "another process"
                        raise busy(self.where, holder) from None
                    time.sleep(0.1)
            os.ftruncate(lock, 0)
            os.pwrite(lock, holder_name().encode(), 0)
            con = self._connect(read_only=False, wait_seconds=wait_seconds)
            try:
                yield DuckDBConnection(con)
            finally:
                con.close()
        finally:
            os.close(lock)

    def _connect(self, *, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise WorkspaceError(f"cannot open the workspace {self.where}: {str(exc).splitlines()[0]}") \
                        from None
                time.sleep(0.1)

    @contextlib.contextmanager
    def reading(self, wait_seconds: float) -> Iterator[Connection]:
        if not self.path.exists():
            raise missing(self.where)
        con = self._connect(read_only=True, wait_seconds=wait_seconds)
        try:
            yield DuckDBConnection(con)
        finally:
            con.close()

    def ibis(self, wait_seconds: float) -> ibis.BaseBackend:
        if not self.path.exists():
            raise WorkspaceError(f"no workspace at {self.where}")
        import ibis

        return ibis.duckdb.from_connection(self._connect(read_only=True, wait_seconds=wait_seconds))
