"""The one place that opens backend connections.

upcurve computes with Ibis, so every computation runs on any Ibis backend. Files are always read by an embedded
DuckDB (the file reader); when the computing engine is another backend, the validated tables are handed over to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING

import duckdb

from upcurve.errors import UpcurveError

if TYPE_CHECKING:  # Ibis is imported when an engine is opened: reading a workspace never needs it
    import ibis
    import ibis.expr.types as ir
    from ibis.backends.duckdb import Backend as DuckDBBackend

__all__ = ["READER_MEMORY_LIMIT", "EngineError", "connect", "engine_errors", "file_reader", "hand_over",
           "tune_for_compute"]

#: The memory DuckDB may hold when it only reads files for another engine (it spills beyond it).
READER_MEMORY_LIMIT = "50%"


class EngineError(UpcurveError, RuntimeError):
    """The computing engine cannot be opened or could not finish; the message says what to change."""


def connect(url: str = "duckdb://") -> ibis.BaseBackend:
    """Open the computing engine named by an Ibis URL (``duckdb://``, ``duckdb://path.db``, ``sqlite://``, ...).

    Raises
    ------
    EngineError
        When the URL names no engine Ibis knows, the engine's package is not installed, or it cannot be opened.
    """
    import ibis

    scheme = url.split("://", 1)[0] if "://" in url else ""
    try:
        return ibis.connect(url)
    except ImportError:
        raise EngineError(f"the engine {scheme!r} needs its package: pip install 'ibis-framework[{scheme}]'") \
            from None
    except ValueError as exc:
        if "Don't know how to connect" in str(exc) or not scheme:
            raise EngineError(f"{url!r} is not an engine URL upcurve can open: use duckdb:// (the default), "
                              "duckdb://path/to/file.duckdb, sqlite://path.db, or another Ibis backend's URL") \
                from None
        raise EngineError(f"cannot open the engine {url!r}: {exc}") from None
    except (duckdb.Error, OSError) as exc:
        raise EngineError(f"cannot open the engine {url!r}: {_first_line(exc)}") from None


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


def file_reader(engine: ibis.BaseBackend) -> DuckDBBackend:
    """The DuckDB connection that reads input files: the engine itself when it is DuckDB (with the memory limit
    its URL sets), otherwise an embedded DuckDB capped at :data:`READER_MEMORY_LIMIT` of the machine's memory."""
    import ibis
    from ibis.backends.duckdb import Backend as DuckDBBackend

    if isinstance(engine, DuckDBBackend):
        return engine
    reader = ibis.duckdb.connect()
    reader.raw_sql(f"SET memory_limit = '{READER_MEMORY_LIMIT}'")
    return reader


def hand_over(
    engine: ibis.BaseBackend, tables: Mapping[str, ir.Table], *, in_place: Collection[str] = ()
) -> dict[str, ir.Table]:
    """Materialise ``tables`` inside ``engine`` (as temporary tables) and return them bound to it.

    On the engine that read them this caches the parsed tables, so the input files are parsed once; tables named
    in ``in_place`` (event-scale ones) are left where they are and read from their files by every query instead.
    """
    import pyarrow as pa

    out = {}
    for name, table in tables.items():
        if table._find_backend() is engine:
            out[name] = table if name in in_place else table.cache()
        else:
            data = table.to_pyarrow()
            # Not every engine stores decimals (SQLite has none); amounts are rounded to cents after a float
            # conversion in the ledger anyway, so handing them over as float64 changes no result.
            data = data.cast(pa.schema([
                pa.field(f.name, pa.float64()) if pa.types.is_decimal(f.type) else f for f in data.schema
            ]))
            out[name] = engine.create_table(f"upcurve_{name}", data, temp=True, overwrite=True)
    return out


def tune_for_compute(engine: ibis.BaseBackend) -> None:
    """Once the input is read, let DuckDB drop row order where no query asks for it (every result table is
    ordered explicitly): its operators then run in parallel without keeping order, using less memory."""
    from ibis.backends.duckdb import Backend as DuckDBBackend

    if isinstance(engine, DuckDBBackend):
        engine.raw_sql("SET preserve_insertion_order = false")
