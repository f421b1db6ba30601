"""Read a data folder into engine tables, refusing what cannot be read before it reaches the engine.

Files are read by an embedded DuckDB connection (the only reader that streams CSV and Parquet of any size and keeps
each row's position in its file). Checking happens in the engine too: every rule is a boolean column of one pass
over the table, so a billion-row events file is checked without leaving the engine.

Before a file reaches DuckDB, its header alone is read (the first line of a CSV, at most :data:`HEADER_BYTES`; the
schema in a Parquet footer): an empty file, a table wider than :data:`MAX_COLUMNS`, a header that cannot be used or
a Parquet column whose type cannot hold its contract type is refused at once, without scanning the file. What only
a scan can find (a line that is not UTF-8, a ragged line, a corrupt page) surfaces in the checking pass and is
reported, like every broken rule, as a :class:`Problem` naming the file and, where the reader says so, the line.
"""

from __future__ import annotations

import codecs
import csv
import errno
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.parquet as pq
from ibis.backends.duckdb import Backend as DuckDBBackend

from upcurve.contract.schema import (
    CONTRACT,
    EVENT_SCALE,
    MAX_COLUMNS,
    TableSchema,
)
from upcurve.engine import cached, release
from upcurve.errors import ContractError, Problem

__all__ = ["EXAMPLES", "MONEY", "MONTH_TEXT", "PARSES_TEXT", "ROW", "DataFolder", "RawTable", "database_folder",
           "engine_problem", "read_folder"]

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
EXAMPLES = 5
ROW = "_row"
#: Column names upcurve adds while reading a file; a file may not have its own.
RESERVED = (ROW, "file_row_number")
#: How many bytes of a CSV file are read to find its header line.
HEADER_BYTES = 65_536
#: Money is parsed as a fixed-point decimal so that "166.67" is 166.67, not 166.6699999...; 32 integer digits hold
#: every amount below :data:`MONEY_LIMIT` and let larger ones be told apart from text that is not a number.
MONEY = "decimal(38,6)"
_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class RawTable:
    """A table as read from its file: text (CSV) or file types (Parquet), plus ``_row``, its position in the file.

    ``unusable`` holds the contract columns whose type in the file cannot hold their contract type (Parquet); they
    are reported once and left out of every other rule.
    """

    name: str
    path: Path
    table: ir.Table
    location: str  # "line" for CSV (the header is line 1), "row" for Parquet (1-based)
    unusable: frozenset[str] = frozenset()
    #: how problems name a table that is not a file (a database's table, and the order its rows are numbered in)
    label: str = ""
    #: a database's table as it is where it lives (``table`` is it with its rows numbered, held for the checks):
    #: the steps after checking read this one
    source: ir.Table | None = None

    @property
    def file(self) -> str:
        return self.label or self.path.name


@dataclass(frozen=True)
class DataFolder:
    """The tables of a data folder, as read, with the notes about files that were not used and the problems found
    while reading: files that could not be read (they are not in ``tables``) and headers that break the contract."""

    tables: dict[str, RawTable]
    notes: tuple[Problem, ...] = ()
    problems: tuple[Problem, ...] = ()

    def release(self) -> None:
        """Drop the tables the engine holds for the checks (a CSV file parsed once, a database's table with its rows
        numbered). Call it once the checked tables are handed over: the steps after read those, and a held table
        would otherwise stay beside them for as long as this folder is referred to (and, on an engine where Ibis
        holds it, while a table held from it lives)."""
        for raw in self.tables.values():
            release(raw.table)


def _discover(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    problems: list[Problem] = []
    if not folder.is_dir():
        raise ContractError([Problem(str(folder), "the data folder does not exist or is not a folder")])
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise ContractError([Problem(str(folder), f"the data folder cannot be read: {exc.strerror or exc}",
                                     hint="Give the user running upcurve read access to it")]) from None
    found: dict[str, list[Path]] = {}
    for path in entries:
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.suffix.lower() not in SUFFIXES:
            problems.append(Problem(path.name, "not a CSV or Parquet file; left out", severity="note"))
            continue
        if path.stem not in CONTRACT:
            problems.append(
                Problem(
                    path.name,
                    "not a table of the input contract; left out",
                    hint="Known tables: " + ", ".join(CONTRACT),
                    severity="note",
                )
            )
            continue
        found.setdefault(path.stem, []).append(path)
    chosen: dict[str, Path] = {}
    for name, paths in found.items():
        if len(paths) > 1:
            problems.append(
                Problem(
                    ", ".join(p.name for p in paths),
                    f"two files for table {name!r}",
                    hint="Keep one file per table",
                )
            )
        chosen[name] = paths[0]
    for name, schema in CONTRACT.items():
        if schema.required and name not in chosen:
            problems.append(
                Problem(f"{name}.csv", f"required table {name!r} is missing from {folder}", hint="Add the file")
            )
    return chosen, problems


# --- a file's header, read before DuckDB sees the file; the reader's errors in words ---------------------


_LINK_FIX = "Point the link at the table's file, or put the file itself in the folder"


def _cannot_open(path: Path) -> tuple[str, str] | None:
    """Why the file cannot be opened as a regular file (a dangling or looping link, a pipe, ...) and the fix."""
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops back on itself", _LINK_FIX
        if path.is_symlink():
            return f"a symbolic link to {os.readlink(path)}, which does not exist", _LINK_FIX
        return exc.strerror or str(exc), "Give the user running upcurve read access to it"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file", "Put the table's file itself in the folder (not a pipe, socket or device)"
    return None


def _head(path: Path) -> tuple[bytes, int]:
    """The first :data:`HEADER_BYTES` of the file and its size."""
    with path.open("rb") as fh:
        return fh.read(HEADER_BYTES), os.fstat(fh.fileno()).st_size


def _empty(file: str, schema: TableSchema, rule: str, rows: tuple[int, ...] = (), *, what: str = "a header line"
           ) -> Problem:
    return Problem(file, f"{rule}: expected {what} with the columns " + ", ".join(schema.column_names),
                   count=len(rows), rows=rows, location="line",
                   hint="Write the column names on the first line" + ("" if schema.required else
                                                                       ", or remove the file; it was left out"),
                   severity="error" if schema.required else "note")


@dataclass(frozen=True)
class _Header:
    """What a file's header says: its columns, CSV delimiter, the contract columns whose file type cannot hold
    their contract type, and its problems; ``readable`` is False when the file must not be read at all."""

    names: tuple[str, ...] = ()
    delimiter: str = ","
    unusable: frozenset[str] = frozenset()
    problems: tuple[Problem, ...] = ()
    readable: bool = True


def _refused(*problems: Problem) -> _Header:
    return _Header(problems=problems, readable=False)


def _header_names(file: str, names: list[str], location: str, *, complete: bool = True) -> list[Problem]:
    """Problems of a header's names: too many, repeated (ignoring case, as the engine does) or reserved."""
    if len(names) > MAX_COLUMNS:
        many = f"{len(names):,}" if complete else f"at least {len(names):,}"
        return [Problem(file, f"{many} columns: more than the {MAX_COLUMNS} a table may have",
                        hint="Keep the contract's columns and the extra ones you use; move the others to another "
                             "file")]
    problems = []
    seen: dict[str, list[str]] = {}
    for name in names:
        seen.setdefault(name.lower(), []).append(name)
    for same in seen.values():
        if len(same) > 1:
            problems.append(Problem(file, f"the column name {same[0]!r} appears {len(same)} times in the header",
                                    same[0], hint="Give every column its own name (names are compared ignoring "
                                                  "case)"))
    for name in names:
        if name in RESERVED:
            problems.append(Problem(file, f"the column name {name!r} is reserved for the {location} number that "
                                          "upcurve adds", name, hint="Rename the column"))
    return problems


def _csv_header(file: str, schema: TableSchema, head: bytes, size: int) -> _Header:
    """The column names of a CSV file and its delimiter (the one of ``, ; tab |`` giving the most columns)."""
    if not head.strip() and size <= len(head):
        return _refused(_empty(file, schema, "the file is empty"))
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    complete = bool(ends) or size <= len(head)
    line = head[: min(ends)] if ends else head
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(line, final=complete)
    except UnicodeDecodeError:
        return _refused(Problem(file, "the header line is not UTF-8 text", count=1, rows=(1,), location="line",
                                hint="Save the file as UTF-8 (in Excel: CSV UTF-8)"))
    if not text.strip():
        return _refused(_empty(file, schema, "the first line is empty", (1,)))
    try:
        delimiter, found = max(((d, next(csv.reader([text], delimiter=d))) for d in _DELIMITERS),
                               key=lambda pair: len(pair[1]))
    except csv.Error as exc:
        return _refused(Problem(file, f"the header line cannot be read: {exc}", count=1, rows=(1,),
                                location="line", hint="Write the column names on the first line, separated by "
                                                      "commas"))
    names = [n.strip() or f"column{i}" for i, n in enumerate(found)]
    if not complete and len(names) <= MAX_COLUMNS:
        return _refused(Problem(file, f"the header line is longer than {HEADER_BYTES:,} bytes", count=1, rows=(1,),
                                location="line", hint="The first line must be the column names, separated by "
                                                      "commas"))
    problems = _header_names(file, names, "line", complete=complete)
    if problems:
        return _refused(*problems)
    return _Header(tuple(names), delimiter)


def _kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_integer(t) or pa.types.is_decimal(t):
        return "exact"
    if pa.types.is_floating(t) and not pa.types.is_float16(t):
        return "float"
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return "temporal"
    return "other"


#: The Parquet types each logical type is read from, besides text (which is parsed) and all-null columns.
_FITS = {
    "string": ({"exact"}, "text (a string column, or integers)"),
    "int": ({"exact", "float"}, "a whole number (an integer, decimal or floating-point column, or text)"),
    "number": ({"exact", "float"}, "a number (an integer, decimal or floating-point column, or text)"),
    "date": ({"temporal"}, "a date (a date or timestamp column, or text)"),
    "timestamp": ({"temporal"}, "a timestamp (a timestamp or date column, or text)"),
    "month": ({"temporal"}, "a month (a date or timestamp column, or text YYYY-MM)"),
}


def _unusable_types(file: str, schema: TableSchema, kinds: dict[str, str], shown: dict[str, str]
                    ) -> tuple[list[str], list[Problem]]:
    """The contract columns whose type (``kinds``: each column's :func:`_kind`; ``shown``: its type as the source
    names it) cannot hold their contract type, and a problem for each."""
    unusable, problems = [], []
    for name, kind in kinds.items():
        if name not in schema.column_names:
            continue
        fits, expected = _FITS[schema.column(name).type]
        if kind == "text-only":
            unusable.append(name)
            problems.append(Problem(file, f"the column is text ({shown[name]}), which only DuckDB parses into "
                                          f"{schema.column(name).type} values where they are", name,
                                    hint=f"Store {name} in its type in the database, or compute on DuckDB "
                                         "(--engine duckdb://: the tables are then copied and parsed)"))
        elif kind not in {"null", "text"} | fits:
            unusable.append(name)
            problems.append(Problem(file, f"the column's type is {shown[name]}, which cannot hold {expected}", name,
                                    hint=f"Write {name} as {expected}"))
    return unusable, problems


def _parquet_header(file: str, schema: TableSchema, path: Path) -> _Header:
    """The column names of a Parquet file, from its footer, and its contract columns of a type that cannot hold
    their contract type (each a problem; the file is still read for the other rules)."""
    try:
        arrow = pq.read_schema(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        return _refused(Problem(file, "not a readable Parquet file", hint=f"{reason}. Write the file again"))
    names = list(arrow.names)
    problems = _header_names(file, names, "row")
    if problems:
        return _refused(*problems)
    unusable, problems = _unusable_types(file, schema, {f.name: _kind(f.type) for f in arrow},
                                         {f.name: str(f.type) for f in arrow})
    return _Header(tuple(names), unusable=frozenset(unusable), problems=tuple(problems))


def _header(name: str, path: Path) -> _Header:
    schema = CONTRACT[name]
    reason = _cannot_open(path)
    if reason is None:
        try:
            head, size = _head(path)
        except OSError as exc:
            reason = exc.strerror or str(exc), "Give the user running upcurve read access to it"
    if reason is not None:
        return _refused(Problem(path.name, f"the file cannot be read: {reason[0]}", hint=reason[1]))
    if SUFFIXES[path.suffix.lower()] == "csv":
        return _csv_header(path.name, schema, head, size)
    if size == 0:
        return _refused(_empty(path.name, schema, "the file is empty", what="a Parquet file"))
    return _parquet_header(path.name, schema, path)


#: A reader's errors (a regular expression over its message), in words: the rule broken and the fix.
_READER_ERRORS: tuple[tuple[str, Callable[[re.Match[str]], str], str], ...] = (
    (r"Invalid unicode|not utf-8 encoded", lambda m: "the file is not UTF-8 text",
     "Save it as UTF-8 (in Excel: CSV UTF-8)"),
    (r"Maximum line size of (\d+) bytes", lambda m: f"a line is longer than {int(m[1]):,} bytes, the most the "
     "reader takes", "Look for a quote that is never closed or a missing line break"),
    (r"Expected Number of Columns: (\d+) Found: (\d+)", lambda m: f"a line has {m[2]} fields where the header "
     f"has {m[1]}", "Give every line as many fields as the header; quote a value that holds the delimiter"),
    (r"unterminated quote", lambda m: "a quoted value is never closed",
     "Close the quote; write a quote inside a quoted value as two (\"\")"),
)


def engine_problem(file: str, location: str, exc: Exception) -> Problem:
    """A reader's error as a problem of the file: what is wrong and, when the reader says, on which line."""
    text = str(exc).strip()
    line = re.search(r"CSV Error on Line: (\d+)", text)
    rows = (int(line[1]),) if line else ()
    rule = "the file cannot be read: " + (text.splitlines()[0][:300] if text else type(exc).__name__)
    hint = "Write the file again"
    for pattern, said, fix in _READER_ERRORS:
        found = re.search(pattern, text, re.IGNORECASE)
        if found:
            rule, hint = said(found), fix
            break
    if rows:
        hint += "; the reader stops at the first such line: fix it and check again"
    return Problem(file, rule, count=len(rows), rows=rows, location="line" if line else location, hint=hint)


#: The largest CSV file (bytes) of a table not at the scale of events that is parsed once and held by DuckDB for the
#: checks. Measured 2026-12-07, alternating with the code before: a two-account folder's checks 0.35–0.41 s →
#: 0.30–0.40 s (compiling their 17 queries 0.104–0.115 s → 0.068–0.091 s), 30,000 accounts' billing
#: (a 52 MB invoice_lines.csv) 3.72–4.02 s → 3.12–3.43 s; at 100,000 accounts (170 MB) held checks were no faster
#: (9.1 s against 8.7 s, one run each), so a larger file is parsed by each check.
HELD_CSV_BYTES = 64 * 1024**2


def _read(con: DuckDBBackend, name: str, path: Path, header: _Header) -> RawTable:
    if SUFFIXES[path.suffix.lower()] == "csv":
        # The dialect comes from the header line, so DuckDB does not sniff it from a sample: a ragged or broken line
        # is then an error naming its line, never a guess that reads the file as one column or skips rows.
        table = con.read_csv(path, table_name=f"raw_{name}", columns={n: "VARCHAR" for n in header.names},
                             header=True, delim=header.delimiter, quote='"', escape='"', strict_mode=True)
        # DuckDB keeps the file's order when reading (preserve_insertion_order), so the row number is the position.
        table = table.mutate(**{ROW: ibis.row_number() + 2})
        if name not in EVENT_SCALE and path.stat().st_size <= HELD_CSV_BYTES:
            # parsed once and held by the engine until the checked tables are handed over (DataFolder.release):
            # every check is a pass over the file, and each pass over a CSV view parsed it and numbered its lines again
            table = cached(table)
        return RawTable(name, path, table, "line", header.unusable)
    table = con.read_parquet(path, table_name=f"raw_{name}", file_row_number=True)
    table = table.mutate(**{ROW: table.file_row_number + 1}).drop("file_row_number")
    return RawTable(name, path, table, "row", header.unusable)


def read_folder(folder: str | Path, con: DuckDBBackend) -> DataFolder:
    """Read every contract table found in ``folder`` through the DuckDB connection ``con``.

    A file that cannot be read (or whose header already breaks the contract) is left out of ``tables`` and its
    problems are kept in ``problems``; :func:`upcurve.contract.load.validate` reports them with every other problem.

    Raises
    ------
    ContractError
        When the folder is missing or cannot be listed.
    """
    folder = Path(folder)
    paths, problems = _discover(folder)
    notes = [p for p in problems if p.severity != "error"]
    errors = [p for p in problems if p.severity == "error"]
    tables = {}
    for name, path in paths.items():
        header = _header(name, path)
        errors += header.problems
        if not header.readable:
            continue
        try:
            tables[name] = _read(con, name, path, header)
        except duckdb.OutOfMemoryException:
            raise  # the engine's memory limit, not the file: reported as an engine failure
        except duckdb.Error as exc:
            errors.append(engine_problem(path.name, "line" if path.suffix.lower() == ".csv" else "row", exc))
    return DataFolder(tables, tuple(notes), tuple(errors))


#: Engines whose ``TRY_CAST`` gives null for a text that is not a value of the type, so that a number, date or amount
#: kept as text in a database is parsed and checked there as in a CSV file. PostgreSQL's cast fails the query and
#: SQLite's reads ``"abc"`` as 0: on them, such columns must be stored in their types.
PARSES_TEXT = frozenset({"duckdb"})
#: A month as text that every engine casts to a date without failing (``YYYY-MM``, then ``-01``).
MONTH_TEXT = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


def _dtype_kind(dtype: dt.DataType) -> str:
    """:func:`_kind` for an Ibis type (a database's column)."""
    if dtype.is_null():
        return "null"
    if dtype.is_string():
        return "text"
    if dtype.is_integer() or dtype.is_decimal():
        return "exact"
    if dtype.is_floating():
        return "float"
    if dtype.is_date() or dtype.is_timestamp():
        return "temporal"
    return "other"


def database_folder(tables: dict[str, tuple[str, ir.Table]], source: str) -> DataFolder:
    """The contract's tables of a database (``tables``: each contract table's name in the database and the table,
    its columns already named as the contract names them), read where they are, for :func:`validate` to check in
    that database.

    Each table's rows are numbered by its key (by all its contract columns when it has none), so that a problem's
    row numbers name the same rows whenever it is checked; the numbered table is held by the database
    (:func:`upcurve.engine.cached`: a temporary table there; a DuckDB file opened for writing holds it in its
    compressed catalog) for the checks, never copied out; the steps after them
    read the table itself (:attr:`RawTable.source`).
    Problems name the table as ``name (in SOURCE; rows by KEY)``. A contract column whose type cannot hold
    its contract type is reported, as a Parquet file's is; so is one kept as text where a number, date or amount is
    due, on an engine that cannot parse text without failing (:data:`PARSES_TEXT`).
    """
    out: dict[str, RawTable] = {}
    problems: list[Problem] = []
    for name, (located, table) in tables.items():
        schema = CONTRACT[name]
        types = dict(table.schema().items())
        present = [c.name for c in schema.columns if c.name in types]
        key = schema.key_of(set(present))
        order = list(key) if key and set(key) <= set(present) else present
        label = f"{located} (in {source}; rows by {', '.join(order)})"
        found = _header_names(label, list(types), "row")
        if found:
            problems += found
            continue
        kinds = {c: _dtype_kind(t) for c, t in types.items()}
        if table.get_backend().name not in PARSES_TEXT:
            # a month as text (YYYY-MM, as the contract writes it) is parsed safely by a pattern; other types not
            kinds = {c: "text-only" if k == "text" and c in schema.column_names
                     and schema.column(c).type not in {"string", "month"} else k for c, k in kinds.items()}
        unusable, found = _unusable_types(label, schema, kinds, {c: str(t) for c, t in types.items()})
        problems += found
        numbered = table.mutate(**{ROW: ibis.row_number().over(order_by=[table[c] for c in order]) + 1})
        out[name] = RawTable(name, Path(name), cached(numbered), "row", frozenset(unusable), label, table)
    return DataFolder(out, (), tuple(problems))
