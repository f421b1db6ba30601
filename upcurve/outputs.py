"""Writing result tables: money as exact decimals, and a folder that appears whole or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from upcurve.errors import UpcurveError

__all__ = ["FORMATS", "check_destination", "money_columns", "write_tables"]

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


MANIFEST = "run.json"


def check_destination(out_dir: str | Path, fmt: str) -> Path:
    """The resolved output folder, after checking that the format is known and that the folder may be replaced.

    Called before a run computes anything, so a wrong option costs nothing; and again when writing.
    """
    if fmt not in FORMATS:
        raise UpcurveError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    out = Path(out_dir).resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).exists())):
        raise UpcurveError(
            f"{out} exists and is not an upcurve output folder (no {MANIFEST}); choose an empty or new folder"
        )
    return out


def write_tables(
    tables: Mapping[str, pa.Table], out_dir: str | Path, fmt: str = "parquet", manifest: Mapping | None = None
) -> Path:
    """Write ``tables`` into ``out_dir``, one file each, replacing the folder whole.

    Everything is first written to a temporary folder beside ``out_dir``; only when every table is written does it
    take the place of ``out_dir`` (an earlier result there is replaced in one rename). A failure leaves the earlier
    folder as it was and no half-written file. ``run.json`` records what was written; a non-empty folder without it
    is not an upcurve result and is never replaced.
    """
    out = check_destination(out_dir, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, table in tables.items():
            path = tmp / f"{name}.{fmt}"
            if fmt == "parquet":
                pq.write_table(table, path)
            else:
                pacsv.write_csv(table, path)
        info = {"tables": {n: {"rows": t.num_rows, "file": f"{n}.{fmt}"} for n, t in tables.items()}}
        (tmp / MANIFEST).write_text(json.dumps({**(manifest or {}), **info}, indent=2, default=str))
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old.{os.getpid()}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
