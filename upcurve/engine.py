"""The one place that opens backend connections.

upcurve computes with Ibis, so every computation runs on any Ibis backend. Files are always read and checked by an
embedded DuckDB (the file reader); when the computing engine is another backend, the validated tables are handed
over to it: written by DuckDB as typed Parquet files that an engine reading files itself (Spark) reads natively, and
sent through Arrow only to an engine that reads no file (SQLite).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from upcurve.errors import UpcurveError

if TYPE_CHECKING:  # Ibis is imported when an engine is opened: reading a workspace never needs it
    import ibis
    import ibis.expr.types as ir
    import pyarrow as pa
    from ibis.backends.duckdb import Backend as DuckDBBackend

__all__ = ["DUCKDB_MEMORY_LIMIT", "HELD_CATALOG", "READER_MEMORY_LIMIT", "EngineError", "as_int", "cached",
           "connect", "database_error", "engine_errors", "file_reader", "hand_over", "month_idx_of", "reads_parquet",
           "redacted", "release", "round_half_away", "sweep_spill_folders", "tune_for_compute"]

#: The memory DuckDB may hold when it only reads files for another engine (it spills beyond it).
READER_MEMORY_LIMIT = "50%"

#: Engines that read Parquet files themselves, in parallel and at any size: tables are handed to them as files.
_PARQUET_READERS = frozenset({"pyspark"})

#: Spark settings upcurve needs unless the URL sets them (docs/engines.md says why each): dates and timestamps cut in
#: UTC as on DuckDB, no progress bars over upcurve's, plan texts capped, and memory pages small enough for the
#: account signals' forty reductions in one task.
_SPARK_DEFAULTS = {"spark.sql.session.timeZone": "UTC", "spark.ui.showConsoleProgress": "false",
                   "spark.sql.maxPlanStringLength": "100000", "spark.buffer.pageSize": "4m"}


#: The most memory DuckDB holds when the engine URL sets no ``memory_limit`` (beyond it, DuckDB spills to disk); on a
#: machine with less memory, 80% of it (DuckDB's own default). Signals over 100 million events: 3.4 GB peak and
#: 34.9 s, against 4.2 GB and 31.5 s at DuckDB's default of 80% of the machine's memory (docs/benchmarks.md).
DUCKDB_MEMORY_LIMIT = 3 * 1024**3


class EngineError(UpcurveError, RuntimeError):
    """The computing engine cannot be opened or could not finish; the message says what to change."""


def _compile_unfused() -> None:
    """Have Ibis compile each query as it is built, without fusing each chain of selects into one.

    Fusing (``ibis.options.sql.fuse_selects``) is about a third of Ibis's compiling, the largest fixed cost of a
    small company's run (docs/benchmarks.md), and buys nothing on the engines upcurve runs on: DuckDB, SQLite,
    PostgreSQL and Spark each merge nested selects in their own planners. The results are the same row for row (the
    engine conformance tests compare every table on every engine). Set when upcurve opens an engine or a file
    reader; an Ibis option, so it holds for the rest of the process."""
    import ibis

    ibis.options.sql.fuse_selects = False


def connect(url: str = "duckdb://") -> ibis.BaseBackend:
    """Open the computing engine named by an Ibis URL (``duckdb://``, ``duckdb://path.db``, ``sqlite://``, ...).

    Raises
    ------
    EngineError
        When the URL names no engine Ibis knows, the engine's package is not installed, or it cannot be opened.
    """
    import ibis

    _compile_unfused()
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "pyspark":
        try:
            return _spark(url)
        except ImportError:
            raise EngineError("the engine 'pyspark' needs its package: pip install 'upcurve[spark]'") from None
        except Exception as exc:  # Spark's own errors (no Java, a master it cannot reach) have no common base
            why = _first_line(exc).rstrip(".")
            raise EngineError(f"cannot start Spark from {url!r}: {why}. Spark needs Java 17 (java on the PATH, or "
                              "JAVA_HOME) and a master it can reach (spark.master on the URL)") from None
    try:
        if scheme == "duckdb":
            return _duckdb(url)
        return ibis.connect(url)
    except ImportError:
        raise EngineError(f"the engine {scheme!r} needs its package: pip install 'ibis-framework[{scheme}]'") \
            from None
    except ValueError as exc:
        if "Don't know how to connect" in str(exc) or not scheme:
            raise EngineError(f"{redacted(url)!r} is not an engine URL upcurve can open: use duckdb:// (the default), "
                              "duckdb://path/to/file.duckdb, sqlite://path.db, or another Ibis backend's URL") \
                from None
        raise EngineError(f"cannot open the engine {redacted(url)!r}: {exc}") from None
    except (duckdb.Error, OSError) as exc:
        raise EngineError(f"cannot open the engine {redacted(url)!r}: {_first_line(exc)}") from None
    except Exception as exc:
        if _lost_connection(exc):  # no server there, a wrong password, no such database
            raise EngineError(f"cannot open the engine {redacted(url)}: {_first_line(exc)}") from None
        raise


def _duckdb(url: str) -> ibis.BaseBackend:
    """DuckDB with upcurve's memory settings unless the URL sets them: at most :data:`DUCKDB_MEMORY_LIMIT`, spilling
    beyond it to a private temporary folder, removed with the connection (DuckDB's own choice is ``.tmp`` in the
    current folder, which it leaves behind; and a killed run's folder is removed by the next engine opened)."""
    import weakref
    from urllib.parse import parse_qsl, urlencode

    import ibis

    # the query is split off by hand: urllib would rewrite duckdb:////abs/path.db as a relative path
    base, _, query = url.partition("?")
    settings = dict(parse_qsl(query))
    if "memory_limit" not in settings and "max_memory" not in settings:
        machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        settings["memory_limit"] = f"{min(DUCKDB_MEMORY_LIMIT, int(machine * 0.8)) // 1024**2}MiB"
    spill = None
    if "temp_directory" not in settings:
        spill = _spill_folder()
        settings["temp_directory"] = spill[0]
    try:
        engine = ibis.connect(f"{base}?{urlencode(settings)}")
    except BaseException:
        if spill:
            _remove_spill_folder(*spill)
        raise
    if spill:
        weakref.finalize(engine, _remove_spill_folder, *spill)
    return engine


#: Spill folders are named with this prefix in the temporary folder (``TMPDIR``), each with :data:`_SPILL_LOCK`
#: inside, locked by the process that uses it for as long as it runs.
_SPILL_PREFIX = "upcurve-spill-"
_SPILL_LOCK = ".upcurve-spill.lock"


def _spill_folder() -> tuple[str, int]:
    """A new private spill folder, and the descriptor of its lock, held until the folder is removed.

    The folders of processes that ended without removing theirs (a killed run: no finalizer runs) are swept
    first (:func:`sweep_spill_folders`): a run killed while spilling would otherwise leave gigabytes behind."""
    import fcntl
    import tempfile

    sweep_spill_folders()
    folder = tempfile.mkdtemp(prefix=_SPILL_PREFIX)
    fd = os.open(os.path.join(folder, _SPILL_LOCK), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: no one else holds it
    return folder, fd


def _remove_spill_folder(folder: str, fd: int) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    os.close(fd)


def sweep_spill_folders(temp: str | Path | None = None) -> list[Path]:
    """Remove the spill folders that upcurve processes left when they ended without removing them, and return them.

    A folder is removed only when it is upcurve's (named ``upcurve-spill-…`` in the temporary folder ``temp``,
    default ``TMPDIR``, with upcurve's lock file inside) and no process holds its lock: the lock is the kernel's, so
    it is released however its process ended, and a running process's folder is never touched. A folder without
    the lock file (made by an upcurve before this one, or not upcurve's) is left as it is."""
    import fcntl
    import shutil
    import tempfile

    removed = []
    for folder in sorted(Path(temp or tempfile.gettempdir()).glob(_SPILL_PREFIX + "*")):
        try:
            fd = os.open(folder / _SPILL_LOCK, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue  # no lock file: not provably upcurve's
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # held: its process is running
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)
        removed.append(folder)
    return removed


def _spark(url: str) -> ibis.BaseBackend:
    """A Spark session from ``pyspark://[warehouse folder]?spark.setting=value&...`` (``spark.master`` names the
    cluster; default: Spark's own, ``local[*]``), with :data:`_SPARK_DEFAULTS` unless the URL sets them.

    Built here rather than by ``ibis.connect``, which sets every setting again on the running session, where Spark
    refuses the static ones (``spark.ui.showConsoleProgress``, ``spark.driver.memory``)."""
    from urllib.parse import parse_qsl, urlsplit

    import ibis
    from pyspark.sql import SparkSession

    parts = urlsplit(url)
    settings = {**_SPARK_DEFAULTS, **dict(parse_qsl(parts.query))}
    if parts.netloc or parts.path.strip("/"):
        settings.setdefault("spark.sql.warehouse.dir", str(Path(parts.netloc + parts.path).absolute()))
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    # Spark's INFO and WARN lines (its start-up, its planner's notes) are for its operators, not upcurve's users
    session.sparkContext.setLogLevel(settings.get("spark.log.level", "ERROR"))
    return ibis.pyspark.connect(session)


def reads_parquet(engine: ibis.BaseBackend) -> bool:
    """Whether ``engine`` reads Parquet files itself (Spark): tables are then handed to it as files, not rows."""
    return engine.name in _PARQUET_READERS


#: The in-memory catalog in which a DuckDB engine holds what :func:`cached` computes, compressed.
HELD_CATALOG = "upcurve_held"


def cached(table: ir.Table, *, compress: bool = True) -> ir.Table:
    """``table`` computed once and kept by its engine for the queries that read it again, until no expression
    refers to it any more or it is :func:`released <release>`.

    DuckDB keeps it compressed, in an in-memory catalog of its own (:data:`HELD_CATALOG`, attached with DuckDB's
    ``COMPRESS``): a run's typed invoice lines and MRR ledger at 100,000 accounts (six tables, 11 million rows) hold
    about a seventh of the memory they hold uncompressed, and are read faster (docs/benchmarks.md). DuckDB
    compresses an in-memory table when its catalog is checkpointed, so each table is checkpointed once written.
    ``compress=False`` holds it as it is: for a table read once or twice soon after it is written (what the signals
    read from events), compressing costs more time than the memory it saves (docs/benchmarks.md). Any other
    engine, and a DuckDB file opened read-only (which cannot attach a catalog), keeps it as Ibis does
    (``Table.cache``). Ibis's PySpark backend compiles a cached table without first registering the in-memory tables
    it reads (a calendar, a list of dates), which Spark then cannot find; they are registered here, as any query
    would.
    """
    backend = table.get_backend()
    if compress and backend.name == "duckdb" and not _read_only(backend):
        return _held_compressed(backend, table)
    if backend.name == "pyspark":
        backend._run_pre_execute_hooks(table)
    return table.cache()


def release(table: ir.Table) -> None:
    """Drop a table :func:`cached` holds now, rather than when the last expression referring to it is freed (an
    expression computed from it may live for the whole run). Any other table is left as it is."""
    import ibis.expr.operations as ops
    from ibis.expr.types import CachedTable

    op = table.op()
    if isinstance(op, ops.DatabaseTable) and op.namespace.catalog == HELD_CATALOG:
        _drop_held(op.source, op.name)
    elif isinstance(table, CachedTable):
        table.release()


def _read_only(engine: DuckDBBackend) -> bool:
    """Whether ``engine`` is a database file opened read-only: it cannot attach another catalog, so it holds tables
    as Ibis does (DuckDB's temporary tables, uncompressed)."""
    return bool(engine.con.execute("SELECT current_setting('access_mode') = 'read_only'").fetchall()[0][0])


def _held_compressed(engine: DuckDBBackend, table: ir.Table) -> ir.Table:
    """``table`` written into the compressed catalog of ``engine`` and read from there; dropped once no expression
    refers to it (as Ibis drops the tables it caches)."""
    import weakref

    import ibis

    name = ibis.util.gen_name("held")
    engine.raw_sql(f"ATTACH IF NOT EXISTS ':memory:' AS {HELD_CATALOG} (COMPRESS)")
    held = engine.create_table(name, table, database=(HELD_CATALOG, "main"))
    # refused while another write is under way (a caller's own transaction): the table is whole, only not
    # compressed until the next checkpoint
    with contextlib.suppress(duckdb.TransactionException):
        engine.raw_sql(f"CHECKPOINT {HELD_CATALOG}")
    weakref.finalize(held.op(), _drop_held, engine, name)
    return held


def _drop_held(engine: DuckDBBackend, name: str) -> None:
    """Drop a held table (again: a no-op), unless its engine is closed or broken already (then so is its memory);
    also called when the interpreter exits, after a run that may have failed, where it must not raise."""
    with contextlib.suppress(duckdb.Error):
        engine.raw_sql(f'DROP TABLE IF EXISTS {HELD_CATALOG}.main."{name}"')


def strip_spaces(value: ir.StringValue, engine: str) -> ir.StringValue:
    """``value`` without the white space around it (spaces, tabs, line breaks), on every engine.

    Ibis writes TRIM's characters as escapes (``'\\f'``, ``'\\v'``) that Spark reads as the letters f and v, so
    on Spark ``flat`` would lose its f and ``dev`` its v; there the white space is removed by a pattern."""
    if engine == "pyspark":
        return value.re_replace(r"^\s+|\s+$", "")
    return value.strip()


def month_idx_of(value: ir.DateValue | ir.TimestampValue) -> ir.IntegerValue:
    """The month of a date or timestamp as one integer, ``year × 12 + month − 1`` (``int64``; the numbering of
    :func:`upcurve.months.month_index`, so the next month is ``+ 1``), on every engine."""
    return value.year().cast("int64") * 12 + value.month().cast("int64") - 1


def as_int(flag: ir.BooleanValue) -> ir.IntegerValue:
    """``flag`` as 1 or 0 (``int64``; a null flag stays null), on every engine: PostgreSQL casts a boolean to a
    4-byte integer only, so the cast goes through one."""
    return flag.cast("int32").cast("int64")


def round_half_away(value: ir.NumericValue) -> ir.IntegerValue:
    """``value`` rounded to a whole number, halves away from zero (``int64``; null stays null), on every engine.

    SQL's ``round`` leaves ties to the engine: DuckDB, SQLite and Spark round 0.5 away from zero, PostgreSQL rounds
    a double precision 0.5 to the even neighbour. Money is rounded half away from zero (docs/revenue.md), so the
    rule is written out."""
    import ibis

    return ibis.ifelse(value >= 0, (value + 0.5).floor(), (value - 0.5).ceil()).cast("int64")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Turn the engine's failures that a user can act on (memory, disk) into an :class:`EngineError`."""
    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        raise EngineError(f"the engine ran out of memory ({_first_line(exc)}). Give DuckDB more memory or a folder "
                          "to spill to on the engine URL, e.g. duckdb://?memory_limit=16GB&temp_directory=/scratch")\
            from None
    except duckdb.IOException as exc:
        raise EngineError(f"the engine could not read or write a file: {_first_line(exc)}") from None
    except Exception as exc:
        if _lost_connection(exc):
            raise EngineError(f"the connection to the database failed: {_first_line(exc)}") from None
        raise


#: The database drivers whose errors upcurve tells apart (DB-API modules). SQLite's is not among them: its
#: ``OperationalError`` also stands for a query it cannot run, which would be upcurve's to fix.
_DRIVERS = frozenset({"psycopg", "psycopg2", "pymysql", "MySQLdb", "snowflake", "pyodbc"})


def _driver_error(exc: BaseException, kind: str) -> bool:
    """Whether ``exc`` is a database driver's error of the DB-API class ``kind`` (or a subclass of it)."""
    return any(cls.__name__ == kind and cls.__module__.split(".")[0] in _DRIVERS for cls in type(exc).__mro__)


def database_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a database's refusal of a value in its data (DB-API's ``DataError``: a value out of a
    type's range, a division by zero), which a warehouse checked where it is reports as a problem of the table, as
    DuckDB's errors on a file are. A query the database cannot run (``ProgrammingError``) is upcurve's: not this."""
    return _driver_error(exc, "DataError")


def _lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` is a database driver's failure to reach or stay connected to its server (DB-API's
    ``OperationalError``), which a user fixes, not upcurve."""
    return _driver_error(exc, "OperationalError")


def redacted(url: str) -> str:
    """The URL without its password, to show and to store."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def file_reader(engine: ibis.BaseBackend) -> DuckDBBackend:
    """The DuckDB connection that reads input files: the engine itself when it is DuckDB (with the memory limit
    its URL sets), otherwise an embedded DuckDB capped at :data:`READER_MEMORY_LIMIT` of the machine's memory."""
    from ibis.backends.duckdb import Backend as DuckDBBackend

    _compile_unfused()
    if isinstance(engine, DuckDBBackend):
        return engine
    reader = _duckdb(f"duckdb://?memory_limit={READER_MEMORY_LIMIT}")  # spilling to a private folder, as the engine
    assert isinstance(reader, DuckDBBackend)
    return reader


def hand_over(
    engine: ibis.BaseBackend, tables: Mapping[str, ir.Table], *, in_place: Collection[str] = (),
    stage: str | Path | None = None,
) -> dict[str, ir.Table]:
    """Materialise ``tables`` inside ``engine`` and return them bound to it.

    On the engine that read them this caches the parsed tables, so the input files are parsed once; tables named
    in ``in_place`` (event-scale ones) are left where they are and read from their files by every query instead.
    An engine that reads Parquet itself (:func:`reads_parquet`) is given each table as a typed Parquet file that
    DuckDB writes into the folder ``stage`` (required then; on a cluster, a folder every executor reads), so no
    row passes through Python and money keeps its exact decimal type. Any other engine is sent the rows through
    Arrow, money as float64 (SQLite stores no decimal).
    """
    import pyarrow as pa

    out = {}
    for name, table in tables.items():
        if table.get_backend() is engine:
            out[name] = table if name in in_place else cached(table)
        elif reads_parquet(engine):
            if stage is None:
                raise ValueError(f"the engine {engine.name!r} reads its tables from files: give hand_over a stage")
            path = Path(stage, f"{name}.parquet").absolute()
            table.to_parquet(path)  # DuckDB's COPY: streamed from the input files, never held in Python
            # a file:// URI: on a cluster whose default file system is HDFS or S3, a bare path would be read there
            out[name] = engine.read_parquet(path.as_uri(), table_name=f"upcurve_{name}")
        else:
            data = table.to_pyarrow()
            # Not every engine stores decimals (SQLite has none); amounts are rounded to cents after a float
            # conversion in the ledger anyway, so handing them over as float64 changes no result.
            data = data.cast(pa.schema([
                pa.field(f.name, pa.float64()) if pa.types.is_decimal(f.type) else f for f in data.schema
            ]))
            if engine.name == "sqlite":
                out[name] = _sqlite_table(engine, f"upcurve_{name}", data)
            else:
                out[name] = engine.create_table(f"upcurve_{name}", data, temp=True, overwrite=True)
    return out


def _sqlite_table(engine: ibis.BaseBackend, name: str, data: pa.Table) -> ir.Table:
    """``data`` as a temporary SQLite table. Ibis inserts rows through pandas, where a missing timestamp becomes
    ``NaT``, which SQLite cannot store; here each value is inserted as Python gives it (a missing one as NULL).

    SQLite compares timestamps as text: they are written as Ibis writes its own in-memory tables (the calendar,
    the as-of dates), ``2024-01-31T09:30:00``, so a timestamp and a window's bound compare as they do on DuckDB.
    """
    import ibis
    import pyarrow as pa
    from ibis.backends.sqlite import Backend as SQLiteBackend

    assert isinstance(engine, SQLiteBackend)  # hand_over calls this for SQLite only

    def values(column: pa.ChunkedArray) -> list[object]:
        if pa.types.is_timestamp(column.type):
            return [None if v is None else v.isoformat() for v in column.to_pylist()]
        return column.to_pylist()

    table = engine.create_table(name, schema=ibis.Schema.from_pyarrow(data.schema), temp=True, overwrite=True)
    if data.num_rows:
        marks = ", ".join("?" * data.num_columns)
        rows = zip(*(values(column) for column in data.columns), strict=True)
        engine.con.executemany(f'INSERT INTO temp."{name}" VALUES ({marks})', rows)
    return table


def tune_for_compute(engine: ibis.BaseBackend) -> None:
    """Once the input is read, let DuckDB drop row order where no query asks for it (every result table is
    ordered explicitly): its operators then run in parallel without keeping order, using less memory."""
    from ibis.backends.duckdb import Backend as DuckDBBackend

    if isinstance(engine, DuckDBBackend):
        engine.raw_sql("SET preserve_insertion_order = false")
