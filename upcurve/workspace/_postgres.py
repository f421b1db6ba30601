"""A workspace in a PostgreSQL database, for a team: the same tables as the embedded one, behind the same store.

Writers take turns on a transaction-level advisory lock (released when they commit, roll back or die); each
write is one transaction, so a run lands whole or not at all. Result tables are created from the Arrow schema of
the first run that writes them and filled with ``COPY``; they are read back as Arrow with the types they were
written with. Needs the driver: ``pip install 'upcurve[postgres]'``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pyarrow as pa

from upcurve.workspace._database import (
    Connection,
    Database,
    WorkspaceError,
    busy,
    holder_name,
    missing,
    quote,
    shown_url,
)
from upcurve.workspace.schema import RESULT_TABLES

if TYPE_CHECKING:  # Ibis is imported only when a caller asks for an Ibis connection
    import ibis

__all__ = ["LOCK_KEY", "PostgresDatabase", "sql_type"]

#: The advisory lock writers of a workspace take turns on ("upcv"); advisory locks are per database.
LOCK_KEY = 0x75706376

#: The tables a workspace makes: a database already holding one of them, but no workspace, is someone else's.
_OURS = frozenset({"upcurve_schema", "runs", "models", "table_schemas", *RESULT_TABLES})


def sql_type(field: pa.Field, table: str = "") -> str:
    """The PostgreSQL type a result column of this Arrow type is stored as.

    >>> sql_type(pa.field("mrr", pa.decimal128(20, 2)))
    'NUMERIC(20,2)'
    """
    t = field.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return "TEXT"  # a column with no value yet is kept as text, as DuckDB does
    if pa.types.is_decimal(t):
        return f"NUMERIC({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"  # TIMESTAMP would drop the offset of a zoned time
    for check, name in ((pa.types.is_boolean, "BOOLEAN"), (pa.types.is_int64, "BIGINT"),
                        (pa.types.is_int32, "INTEGER"), (pa.types.is_int16, "SMALLINT"), (pa.types.is_int8, "SMALLINT"),
                        (pa.types.is_float64, "DOUBLE PRECISION"), (pa.types.is_float32, "REAL"),
                        (pa.types.is_date32, "DATE")):
        if check(t):
            return name
    raise WorkspaceError(f"the column {table}.{field.name} is of type {t}, which a PostgreSQL workspace cannot "
                         "keep; report it as a bug in upcurve")


# PostgreSQL type ids (pg_type.oid) and the Arrow type each is read as, for columns whose type was not stored
_ARROW_OF_OID: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 25: pa.string(), 1043: pa.string(),
    1042: pa.string(), 19: pa.string(), 700: pa.float32(), 701: pa.float64(), 1082: pa.date32(),
    1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"),
}
_NUMERIC = 1700


def _arrow_type(column: psycopg.Column, values: Sequence[Any]) -> pa.DataType | None:
    """The Arrow type of a query's column, from its PostgreSQL type (None: let Arrow infer it from the values)."""
    if column.type_code == _NUMERIC:
        if column.precision is not None and column.scale is not None:
            return pa.decimal128(column.precision, column.scale)
        # a computed NUMERIC (a sum, a coalesce) has no declared scale: the scale of its values, as DuckDB gives
        finite = [v for v in values if isinstance(v, Decimal) and v.is_finite()]
        scale = max((-int(v.as_tuple().exponent) for v in finite), default=0)
        return pa.decimal128(38, max(scale, 0))
    return _ARROW_OF_OID.get(column.type_code)


def _pyformat(sql: str) -> str:
    """Portable SQL (``?`` placeholders) as psycopg takes it (``%s``, and a literal ``%`` doubled)."""
    out, quoted = [], ""
    for char in sql:
        if quoted:
            quoted = "" if char == quoted else quoted
        elif char in "'\"":
            quoted = char
        elif char == "?":
            out.append("%s")
            continue
        out.append("%%" if char == "%" else char)
    return "".join(out)


class PostgresConnection(Connection):
    def __init__(self, con: psycopg.Connection[Any]) -> None:
        self.con = con

    def _cursor(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[Any]:
        if params:
            return self.con.execute(_pyformat(sql), list(params))
        return self.con.execute(sql)  # without parameters psycopg reads no placeholder

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor(sql, params)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        names = ", ".join(quote(c) for c in columns)
        with self.con.cursor() as cursor, cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = self._cursor(sql, params)
        return [c.name for c in cursor.description or []], cursor.fetchall()

    def arrow(self, sql: str, params: Sequence[Any] = (), types: Mapping[str, pa.DataType] | None = None) -> pa.Table:
        cursor = self._cursor(sql, params)
        description = cursor.description or []
        rows = cursor.fetchall()
        values = list(zip(*rows, strict=True)) if rows else [()] * len(description)
        arrays, names = [], []
        for column, column_values in zip(description, values, strict=True):
            kind = (types or {}).get(column.name) or _arrow_type(column, column_values)
            if kind is None and not column_values:
                kind = pa.string()  # nothing to infer a type from
            arrays.append(pa.array(column_values, type=kind))
            names.append(column.name)
        return pa.Table.from_arrays(arrays, names=names)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # inside the writer's transaction this is a savepoint: the lock stays held until the writer commits
        with self.con.transaction():
            yield

    def columns(self, table: str) -> list[str]:
        _, rows = self.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                            "current_schema() AND table_name = ? ORDER BY ordinal_position", [table])
        return [r[0] for r in rows]

    def append(self, table: str, data: pa.Table) -> None:
        existing = self.columns(table)
        if not existing:
            columns = ", ".join(f"{quote(f.name)} {sql_type(f, table)}" for f in data.schema)
            self.execute(f"CREATE TABLE {quote(table)} ({columns})")
            if "run_id" in data.column_names:
                self.execute(f"CREATE INDEX ON {quote(table)} (run_id)")  # every read picks one run
        for field in data.schema:
            if existing and field.name not in existing:
                # a column a later upcurve adds: earlier runs have it empty
                self.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(field.name)} {sql_type(field, table)}")
        names = ", ".join(quote(c) for c in data.column_names)
        with self.con.cursor() as cursor, cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN") as copy:
            for row in zip(*(column.to_pylist() for column in data.columns), strict=True):
                copy.write_row(row)


class PostgresDatabase(Database):
    """A PostgreSQL database (its current schema) named by a ``postgresql://`` URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = shown_url(url)

    def _connect(self) -> psycopg.Connection[Any]:
        options: dict[str, Any] = {"application_name": holder_name()}
        if "connect_timeout" not in self.url:
            options["connect_timeout"] = 10
        try:
            return psycopg.connect(self.url, autocommit=True, **options)
        except psycopg.Error as exc:
            raise WorkspaceError(f"cannot open the workspace {self.where}: {_first_line(exc)}") from None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        con = self._connect()
        try:
            yield con
        except psycopg.OperationalError as exc:  # the server went away, a timeout: nothing upcurve can repair
            raise WorkspaceError(f"the workspace {self.where} failed: {_first_line(exc)}") from None
        finally:
            con.close()

    @staticmethod
    def _tables(con: psycopg.Connection[Any]) -> set[str]:
        rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        return {r[0] for r in rows.fetchall()}

    def check(self, *, create: bool) -> None:
        with self._connection() as con:
            tables = self._tables(con)
        if "upcurve_schema" in tables:
            return
        if not create:
            raise missing(self.where, "to create it")
        if tables & _OURS:
            raise WorkspaceError(f"the database {self.where} holds tables named {', '.join(sorted(tables & _OURS))} "
                                 "but no workspace; a workspace needs its own database (or its own schema)")

    @contextlib.contextmanager
    def writing(self, wait_seconds: float) -> Iterator[Connection]:
        with self._connection() as con, con.transaction():
            deadline = time.monotonic() + wait_seconds
            while con.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY]).fetchone() != (True,):
                if time.monotonic() >= deadline:
                    raise busy(self.where, self._holder(con))
                time.sleep(0.1)
            yield PostgresConnection(con)

    @staticmethod
    def _holder(con: psycopg.Connection[Any]) -> str:
        """Who holds the lock, as it named itself (``application_name``)."""
        found = con.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid::bigint = %s "
            "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [LOCK_KEY]).fetchone()
        return str(found[0]) if found and found[0] else "another process"

    @contextlib.contextmanager
    def reading(self, wait_seconds: float) -> Iterator[Connection]:
        with self._connection() as con, con.transaction():
            con.execute("SET TRANSACTION READ ONLY")
            if con.execute("SELECT to_regclass('upcurve_schema')").fetchone() == (None,):
                raise missing(self.where)
            yield PostgresConnection(con)

    def ibis(self, wait_seconds: float) -> ibis.BaseBackend:
        con = self._connect()
        con.execute("SET default_transaction_read_only = on")
        if con.execute("SELECT to_regclass('upcurve_schema')").fetchone() == (None,):
            con.close()
            raise WorkspaceError(f"no workspace at {self.where}")
        import ibis

        return ibis.postgres.from_connection(con)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

