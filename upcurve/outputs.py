"""Writing result tables: money as exact decimals, and a folder that appears whole or not at all."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from upcurve.errors import UpcurveError
from upcurve.folders import check_destination as check_folder_destination
from upcurve.folders import write_folder

__all__ = ["FORMATS", "RUN_INFO", "check_destination", "money_columns", "write_tables"]

FORMATS = ("parquet", "csv")
MONEY = pa.decimal128(20, 2)


def money_columns(table: pa.Table) -> pa.Table:
    """Turn every ``*_cents`` integer column into an exact decimal column without the suffix (16667 → 166.67).

    Engine bookkeeping columns (``month_idx``) are dropped: ``month`` carries the month for people.
    """
    cols, names = [], []
    for name, col in zip(table.column_names, table.columns, strict=True):
        if name == "month_idx" or name.startswith("_"):
            continue
        if name.endswith("_cents"):
            wide = col.cast(pa.decimal128(19, 0))
            col = pc.multiply(wide, pa.scalar(Decimal("0.01"), pa.decimal128(3, 2))).cast(MONEY)
            name = name.removesuffix("_cents")
        cols.append(col)
        names.append(name)
    return pa.table(cols, names=names)


#: The run's own description (as-of date, policy, notes, row counts), beside its tables.
RUN_INFO = "run.json"


def check_destination(out_dir: str | Path, fmt: str, *, inputs: Iterable[str | Path] = ()) -> Path:
    """The resolved output folder, after checking that the format is known and that upcurve may write the folder
    (see :func:`upcurve.folders.check_destination`).

    Called before a run computes anything, so a wrong option costs nothing; and again when writing.
    """
    if fmt not in FORMATS:
        raise UpcurveError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return check_folder_destination(out_dir, inputs=inputs)


def write_tables(
    tables: Mapping[str, pa.Table], out_dir: str | Path, fmt: str = "parquet", manifest: Mapping | None = None,
    *, inputs: Iterable[str | Path] = (), kind: str = "results",
) -> Path:
    """Write ``tables`` into ``out_dir``, one file each, replacing the folder whole.

    Everything is first written to a staging folder beside ``out_dir``, which then takes its place in one step
    (:func:`upcurve.folders.write_folder`): a failure or a kill leaves the earlier folder as it was. ``run.json``
    records what was computed; the folder's manifest lists every file, so only a folder upcurve wrote is ever
    replaced, and never one of the ``inputs``.
    """
    check_destination(out_dir, fmt, inputs=inputs)

    def fill(stage: Path) -> None:
        for name, table in tables.items():
            path = stage / f"{name}.{fmt}"
            if fmt == "parquet":
                pq.write_table(table, path)
            else:
                pacsv.write_csv(table, path)
        info = {"tables": {n: {"rows": t.num_rows, "file": f"{n}.{fmt}"} for n, t in tables.items()}}
        (stage / RUN_INFO).write_text(json.dumps({**(manifest or {}), **info}, indent=2, default=str))

    return write_folder(out_dir, fill, kind=kind, inputs=inputs)
