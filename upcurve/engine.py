"""The one place that opens backend connections.

upcurve computes with Ibis, so every computation runs on any Ibis backend. Files are always read by an embedded
DuckDB (the file reader); when the computing engine is another backend, the validated tables are handed over to it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from ibis.backends.duckdb import Backend as DuckDBBackend

__all__ = ["connect", "file_reader", "hand_over", "tune_for_compute"]


def connect(url: str = "duckdb://") -> ibis.BaseBackend:
    """Open the computing engine named by an Ibis URL (``duckdb://``, ``duckdb://path.db``, ``sqlite://``, ...)."""
    return ibis.connect(url)


def file_reader(engine: ibis.BaseBackend) -> DuckDBBackend:
    """The DuckDB connection that reads input files: the engine itself when it is DuckDB."""
    if isinstance(engine, DuckDBBackend):
        return engine
    return ibis.duckdb.connect()


def hand_over(
    engine: ibis.BaseBackend, tables: Mapping[str, ir.Table], *, in_place: Collection[str] = ()
) -> dict[str, ir.Table]:
    """Materialise ``tables`` inside ``engine`` (as temporary tables) and return them bound to it.

    On the engine that read them this caches the parsed tables, so the input files are parsed once; tables named
    in ``in_place`` (event-scale ones) are left where they are and read from their files by every query instead.
    """
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
    if isinstance(engine, DuckDBBackend):
        engine.raw_sql("SET preserve_insertion_order = false")
