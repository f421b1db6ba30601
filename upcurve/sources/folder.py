"""A data folder: one CSV or Parquet file per contract table."""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir

from upcurve.config import RevenuePolicy
from upcurve.contract import EVENT_SCALE, DataFolder, known_at, read_folder, typed_tables, validate
from upcurve.engine import file_reader, hand_over, reads_parquet, tune_for_compute
from upcurve.errors import ContractError, Problem, UpcurveError

__all__ = ["EVENT_SCALE", "LoadedData", "as_of_bounds", "check_folder", "check_tables", "folder_fingerprint",
           "load_checked", "load_folder"]

@dataclass
class LoadedData:
    """The contract's tables, checked, cut at the as-of date and handed to the engine."""

    as_of: dt.date
    first: dt.date
    tables: dict[str, ir.Table]
    notes: list[str] = field(default_factory=list)
    source: str = ""
    fingerprint: str = ""
    #: What must live as long as the tables (the copied files of a database source, the files an engine reads).
    keep_alive: object = None


def check_folder(data_dir: str | Path, engine: ibis.BaseBackend, *, reporting_currency: str = "USD",
                 fx_quote_currency: str | None = None) -> tuple[list[Problem], dict[str, int]]:
    """Every problem of a data folder against the input contract (errors first, then notes), and the rows of each
    table read, through the engine's file reader (so its memory settings apply). ``fx_quote_currency``: the
    currency ``fx_rates`` are quoted in (``revenue.fx_quote_currency``; ``None``: the reporting one or inferred)."""
    try:
        folder = read_folder(data_dir, file_reader(engine))
    except ContractError as exc:
        return exc.problems, {}
    return check_tables(folder, reporting_currency=reporting_currency, fx_quote_currency=fx_quote_currency)


def check_tables(folder: DataFolder, *, reporting_currency: str = "USD", fx_quote_currency: str | None = None
                 ) -> tuple[list[Problem], dict[str, int]]:
    """Every problem of the tables read (a folder's files, or a database's tables where they are) and, when none
    is an error, the rows of each."""
    problems = validate(folder, reporting_currency=reporting_currency, fx_quote_currency=fx_quote_currency)
    if any(p.severity == "error" for p in problems):
        return problems, {}
    rows = {name: int(raw.table.count().to_pyarrow().as_py()) for name, raw in folder.tables.items()}
    return problems, rows


def folder_fingerprint(data_dir: str | Path) -> str:
    """A fingerprint of a data folder's files: their names, sizes and modification times (SHA-256 of them).

    Cheap at any size: it reads no file. Two runs with the same fingerprint read the same input.
    """
    sha = hashlib.sha256()
    for path in sorted(Path(data_dir).iterdir()):
        if path.is_file() and not path.name.startswith("."):
            stat = path.stat()
            sha.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return sha.hexdigest()[:16]


def as_of_bounds(lines: ir.Table, as_of: dt.date | None, *, today: dt.date | None = None,
                 notes: list[str] | None = None) -> tuple[dt.date, dt.date]:
    """The first billed day and the as-of date of a run.

    The default as-of date is the start of the latest invoice line that starts on or before today: the last day
    the data is known to be complete (a line is issued when its period starts). Lines dated in the future, such
    as a typo of 2031 for 2021, cannot move it; they are left out and a note says so.
    """
    today = today or dt.date.today()
    bounds = lines.aggregate(
        first=lines.period_start.min(),
        last=ibis.ifelse(lines.period_start <= today, lines.period_start, ibis.null("date")).max(),
    ).to_pyarrow()
    first, last = bounds["first"][0].as_py(), bounds["last"][0].as_py()
    if first is None:
        raise UpcurveError("invoice_lines has no rows: there is no revenue to measure")
    if as_of is None:
        if last is None:
            raise UpcurveError(f"every invoice line starts after today ({today}); pass --as-of to measure a date")
        as_of = last
        if notes is not None:
            notes.append(f"as of {as_of}, the start of the latest invoice line (pass --as-of to measure another "
                         "date)")
    if as_of < first:
        raise UpcurveError(f"--as-of {as_of} is before the first billed day in invoice_lines ({first})")
    return first, as_of


def load_folder(data_dir: str | Path, engine: ibis.BaseBackend, *, as_of: dt.date | None, policy: RevenuePolicy,
                say: Callable[[str], None] = lambda _msg: None) -> LoadedData:
    """Read and check a data folder, cut it at its as-of date and hand it to ``engine``.

    Raises
    ------
    ContractError
        Listing every problem of the input.
    """
    say("reading and checking the input")
    folder = read_folder(data_dir, file_reader(engine))
    return load_checked(folder, engine, as_of=as_of, policy=policy, say=say, source=str(Path(data_dir).resolve()),
                        fingerprint=folder_fingerprint(data_dir))


def load_checked(folder: DataFolder, engine: ibis.BaseBackend, *, as_of: dt.date | None, policy: RevenuePolicy,
                 source: str, fingerprint: str, say: Callable[[str], None] = lambda _msg: None,
                 keep_alive: object = None) -> LoadedData:
    """Check the tables read (a folder's files, or a database's tables where they are), cut them at the as-of date
    and hand them to ``engine`` (:func:`upcurve.engine.hand_over`).

    Raises
    ------
    ContractError
        Listing every problem of the input.
    """
    problems = validate(folder, reporting_currency=policy.reporting_currency,
                        fx_quote_currency=policy.fx_quote_currency)
    if any(p.severity == "error" for p in problems):
        raise ContractError(problems)
    notes = [p.describe() for p in problems]
    typed = typed_tables(folder)
    first, as_of = as_of_bounds(typed["invoice_lines"], as_of, notes=notes)
    lines = typed["invoice_lines"]
    later = lines.filter(lines.period_start > as_of).aggregate(n=ibis._.count(), last=ibis._.period_start.max())
    later_row = later.to_pyarrow().to_pylist()[0]
    if later_row["n"]:
        notes.append(f"{later_row['n']} invoice lines start after the as-of date {as_of} (the latest on "
                     f"{later_row['last']}) and were left out of this run")
    typed = known_at(typed, as_of)
    say("loading into the engine")
    # an engine that reads files (Spark) is given typed Parquet files, kept as long as the tables that read them
    stage = tempfile.TemporaryDirectory(prefix="upcurve-stage-") if reads_parquet(engine) else None
    tables = hand_over(engine, typed, in_place=EVENT_SCALE, stage=stage.name if stage else None)
    folder.release()  # what was held for the checks: the steps after read the tables handed over
    tune_for_compute(engine)
    return LoadedData(as_of, first, tables, notes, source=source, fingerprint=fingerprint,
                      keep_alive=(stage, keep_alive))
