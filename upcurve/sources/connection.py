"""Tables in a database as a source: a warehouse schema, a DuckDB file, any database Ibis connects to.

The contract's tables are looked up by their names (``invoice_lines``, ``plans``, …) in the database the URL names,
or where a mapping file (:class:`WarehouseMapping`) says they are and what their columns are called, copied once
into Parquet files in a private temporary folder, and from there read and checked exactly as a data folder is:
every rule, every problem at once, each naming its table and row. A copy makes a run see one consistent state of
tables that others may be writing to, and lets the same checks serve every source.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, field_validator

from upcurve.config import RevenuePolicy, load_yaml_model
from upcurve.contract import CONTRACT, DataFolder, database_folder
from upcurve.engine import redacted
from upcurve.errors import ContractError, Problem, UpcurveError
from upcurve.sources.folder import LoadedData, check_folder, check_tables, load_checked, load_folder

if TYPE_CHECKING:
    import ibis

__all__ = ["ConnectionSnapshot", "TableMapping", "WarehouseMapping", "check_connection", "check_in_place",
           "computes_in_place", "in_place_engine", "is_connection_url", "load_connection", "load_in_place",
           "load_warehouse_mapping", "redacted", "snapshot_connection"]


class TableMapping(BaseModel):
    """Where one contract table is: ``table`` (``name`` or ``schema.name``; default: the contract's name) and, for
    each contract column whose name differs, the column holding it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str | None = None
    columns: dict[str, str] = {}


class WarehouseMapping(BaseModel):
    """A mapping file for a database source: for each contract table (``tables``), its table and column names.

    Example
    -------
    ``tables: {invoice_lines: {table: billing.invoice_items, columns: {line_id: id, account_id: customer_id}}}``
    reads ``invoice_lines`` from the table ``invoice_items`` of the schema ``billing``, its ``line_id`` from the
    column ``id`` and its ``account_id`` from ``customer_id``; every other column as it is named.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: dict[str, TableMapping] = {}

    @field_validator("tables")
    @classmethod
    def _contract_names(cls, value: dict[str, TableMapping]) -> dict[str, TableMapping]:
        wrong = [f"{name}: not a table of the contract ({', '.join(CONTRACT)})" for name in value
                 if name not in CONTRACT]
        for name, mapping in value.items():
            if name in CONTRACT:
                known = [c.name for c in CONTRACT[name].columns]
                wrong += [f"{name}.{column}: not a column of {name} ({', '.join(known)})"
                          for column in mapping.columns if column not in known]
        if wrong:
            raise ValueError("; ".join(wrong))
        return value


def load_warehouse_mapping(path: str | Path | None) -> WarehouseMapping:
    """The mapping file (none: every table and column by the contract's name).

    Raises
    ------
    ConfigError
        Naming the file and every wrong key or value.
    """
    return load_yaml_model(path, WarehouseMapping, "mapping file")

#: ``scheme://`` at the start of a data argument: a database to read, not a folder.
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_connection_url(data: str | Path) -> bool:
    """Whether a data argument names a database (``duckdb:///acme.duckdb``, ``postgresql://…``) and not a folder."""
    return isinstance(data, str) and bool(_URL.match(data))


class ConnectionSnapshot:
    """The contract's tables of a database, copied into a temporary folder that lives as long as this object.

    Attributes
    ----------
    folder
        The folder of Parquet files, one per contract table found, to read as a data folder.
    source
        The database's URL without its password.
    fingerprint
        SHA-256 (first 16 hex digits) of the copied files' names and contents: two runs with the same fingerprint
        read the same tables.
    """

    def __init__(self, folder: tempfile.TemporaryDirectory[str], source: str, fingerprint: str) -> None:
        self._folder = folder
        self.folder = Path(folder.name)
        self.source = source
        self.fingerprint = fingerprint

    def close(self) -> None:
        self._folder.cleanup()


def _open(url: str) -> ibis.BaseBackend:
    from upcurve.engine import connect

    return connect(url)


def _mapped_table(con: ibis.BaseBackend, name: str, mapping: TableMapping | None, where: str,
                  problems: list[Problem]) -> ibis.Table | None:
    """The contract table ``name`` as the database holds it, its mapped columns renamed to the contract's; None
    when there is no such table, or when a mapped column does not exist (a problem then)."""
    located = (mapping.table if mapping is not None and mapping.table else name).split(".")
    try:
        table = con.table(located[-1], database=tuple(located[:-1]) if len(located) > 2 else
                          (located[0] if len(located) == 2 else None))
    except Exception:  # each backend says "no such table" its own way; absent is all that matters here
        return None
    columns = mapping.columns if mapping is not None else {}
    absent = [source for source in columns.values() if source not in table.columns]
    for source in absent:
        problems.append(Problem(where, f"table {name} ({'.'.join(located)}): the column {source!r} it names does "
                                       "not exist", source, hint="Columns found: " + ", ".join(table.columns)))
    if absent:
        return None
    # a mapped column takes the contract's name; a column already holding that name gives way to it
    kept = [c for c in table.columns if c not in columns.values() and c not in columns]
    return table.select(*[table[c] for c in kept], **{contract: table[source] for contract, source in columns.items()})


def _contract_tables(con: ibis.BaseBackend, url: str, mapping: WarehouseMapping | None, mapping_name: str
                     ) -> dict[str, tuple[str, ibis.Table]]:
    """The contract's tables found in the database ``con`` (at ``url``): for each, its name there and the table with
    its mapped columns renamed to the contract's.

    Raises
    ------
    ContractError
        When a required table is missing, or a mapped table or column does not exist (all named at once).
    UpcurveError
        When the database holds no table of the contract.
    """
    missing = []
    mapped: list[Problem] = []
    tables = mapping.tables if mapping is not None else {}
    found: dict[str, tuple[str, ibis.Table]] = {}
    for name, schema in CONTRACT.items():
        before = len(mapped)
        table = _mapped_table(con, name, tables.get(name), mapping_name, mapped)
        if table is None:
            if len(mapped) > before:  # a mapped column is not there: said
                continue
            if name in tables and tables[name].table:
                mapped.append(Problem(mapping_name, f"table {name}: {tables[name].table} does not exist in "
                                                    f"{redacted(url)}", hint="Name a table of the database"))
            elif schema.required:
                missing.append(name)
            continue
        entry = tables.get(name)
        found[name] = (entry.table if entry is not None and entry.table else name, table)
    if missing or mapped:
        raise ContractError([*mapped, *[Problem(redacted(url), f"required table {name!r} is missing from the "
                                                               "database",
                                                hint=f"Create a table or view named {name}, or name its table in a "
                                                     "mapping file (see docs/sources.md)")
                                        for name in missing]])
    if not found:
        raise UpcurveError(f"no table of the contract in {redacted(url)}")
    return found


def snapshot_connection(url: str, mapping: WarehouseMapping | None = None, *,
                        mapping_name: str = "mapping file") -> ConnectionSnapshot:
    """Copy the contract's tables found in the database at ``url`` into Parquet files, each where ``mapping``
    says and its columns renamed as it says (``mapping_name``: the file, as problems name it).

    Raises
    ------
    ContractError
        When a required table is missing, or a mapped table or column does not exist (all named at once).
    UpcurveError
        When the database cannot be opened.
    """
    con = _open(url)
    scratch = tempfile.TemporaryDirectory(prefix="upcurve-source-")
    folder = Path(scratch.name)
    digest = hashlib.sha256()
    try:
        for name, (_located, table) in _contract_tables(con, url, mapping, mapping_name).items():
            path = folder / f"{name}.parquet"
            # streamed by the backend (DuckDB copies straight to the file): a large events table never sits in
            # memory whole
            table.to_parquet(path)
            digest.update(name.encode() + b"\0" + path.read_bytes())
    except BaseException:
        scratch.cleanup()
        raise
    finally:
        disconnect = getattr(con, "disconnect", None)
        if disconnect is not None:
            disconnect()
    return ConnectionSnapshot(scratch, redacted(url), digest.hexdigest()[:16])


def _named_by_table(problems: list[Problem], snapshot: ConnectionSnapshot) -> list[Problem]:
    """Problems found in the copied files, named by the database's tables instead of the copies."""
    renamed = []
    for problem in problems:
        stem = problem.file.removesuffix(".parquet")
        if stem in CONTRACT:
            problem = dataclasses.replace(problem, file=f"{stem} (in {snapshot.source})")
        renamed.append(problem)
    return renamed


def check_connection(url: str, engine: ibis.BaseBackend, *, reporting_currency: str = "USD",
                     fx_quote_currency: str | None = None,
                     mapping: str | Path | None = None) -> tuple[list[Problem], dict[str, int]]:
    """:func:`upcurve.sources.check_folder` for the contract's tables in a database (where the ``mapping`` file
    says they are)."""
    try:
        snapshot = snapshot_connection(url, load_warehouse_mapping(mapping), mapping_name=_name(mapping))
    except ContractError as exc:
        return exc.problems, {}
    try:
        problems, rows = check_folder(snapshot.folder, engine, reporting_currency=reporting_currency,
                                      fx_quote_currency=fx_quote_currency)
        return _named_by_table(problems, snapshot), rows
    finally:
        snapshot.close()


def _name(mapping: str | Path | None) -> str:
    return Path(mapping).name if mapping is not None else "mapping file"


def load_connection(url: str, engine: ibis.BaseBackend, *, as_of: dt.date | None, policy: RevenuePolicy,
                    say: Callable[[str], None] = lambda _msg: None,
                    mapping: str | Path | None = None) -> LoadedData:
    """:func:`upcurve.sources.load_folder` for the contract's tables in a database (where the ``mapping`` file says
    they are): copied, then read and checked as a folder; the copy lives as long as the returned tables."""
    settings = load_warehouse_mapping(mapping)
    say("copying the tables from the database")
    snapshot = snapshot_connection(url, settings, mapping_name=_name(mapping))
    try:
        loaded = load_folder(snapshot.folder, engine, as_of=as_of, policy=policy, say=say)
    except ContractError as exc:
        snapshot.close()
        raise ContractError(_named_by_table(exc.problems, snapshot)) from None
    except BaseException:
        snapshot.close()
        raise
    return dataclasses.replace(loaded, source=snapshot.source, fingerprint=snapshot.fingerprint,
                               keep_alive=(snapshot, loaded.keep_alive))


# -- where the tables are ---------------------------------------------------------------------------------------
def computes_in_place(url: str, engine: str | ibis.BaseBackend | None) -> bool:
    """Whether a run on the database at ``url`` computes where its tables are: when no engine is named, or the
    engine named is the database itself. Any other engine is given a copy (:func:`load_connection`)."""
    return engine is None or (isinstance(engine, str) and engine == url)


def in_place_engine(url: str) -> ibis.BaseBackend:
    """The database at ``url``, opened to compute where its tables are. A DuckDB file is opened read-only: what
    upcurve computes there is held in temporary tables, in memory, and nothing can be written to the file."""
    if url.startswith("duckdb://") and "read_only" not in url:
        url += ("&" if "?" in url else "?") + "read_only=true"
    return _open(url)


def _tables_in_place(url: str, con: ibis.BaseBackend, mapping: str | Path | None) -> DataFolder:
    tables = _contract_tables(con, url, load_warehouse_mapping(mapping), _name(mapping))
    return database_folder(tables, redacted(url))


def check_in_place(url: str, *, reporting_currency: str = "USD", fx_quote_currency: str | None = None,
                   mapping: str | Path | None = None) -> tuple[list[Problem], dict[str, int]]:
    """:func:`upcurve.sources.check_folder` for the contract's tables of a database, checked by the database
    where they are (nothing is copied out)."""
    con = in_place_engine(url)
    try:
        folder = _tables_in_place(url, con, mapping)
    except ContractError as exc:
        return exc.problems, {}
    return check_tables(folder, reporting_currency=reporting_currency, fx_quote_currency=fx_quote_currency)


def _shape_fingerprint(folder: DataFolder) -> str:
    """SHA-256 (first 16 hex digits) of each table's name, columns, types and row count: what a database can say of
    its tables without reading them out (a table whose values changed but not its rows keeps its fingerprint)."""
    digest = hashlib.sha256()
    for name, raw in sorted(folder.tables.items()):
        rows = int(raw.table.count().to_pyarrow().as_py())
        digest.update(f"{name}\0{raw.table.schema()!r}\0{rows}\n".encode())
    return digest.hexdigest()[:16]


def load_in_place(url: str, *, as_of: dt.date | None, policy: RevenuePolicy,
                  say: Callable[[str], None] = lambda _msg: None, mapping: str | Path | None = None) -> LoadedData:
    """:func:`upcurve.sources.load_folder` for the contract's tables of a database (where the ``mapping`` file says
    they are), computed where they are: the database checks them, and the returned tables are bound to it, so every
    later step runs there too. Nothing is copied out; what upcurve holds while it computes is in the database's
    temporary tables, which end with the connection.

    Raises
    ------
    ContractError
        Listing every problem of the tables, each naming its table, column, row (numbered by the table's key) and
        value.
    """
    con = in_place_engine(url)
    say("checking the tables where they are")
    folder = _tables_in_place(url, con, mapping)
    loaded = load_checked(folder, con, as_of=as_of, policy=policy, say=say, source=redacted(url),
                          fingerprint=_shape_fingerprint(folder), keep_alive=con)
    loaded.notes.append(f"computed in {redacted(url)}, where its tables are: nothing was copied out")
    return loaded
