"""Tables in a database as a source: a warehouse schema, a DuckDB file, any database Ibis connects to.

The contract's tables are looked up by their names (``invoice_lines``, ``plans``, …) in the database the URL names,
copied once into Parquet files in a private temporary folder, and from there read and checked exactly as a data
folder is: every rule, every problem at once, each naming its table and row. A copy makes a run see one consistent
state of tables that others may be writing to, and lets the same checks serve every source.
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

from upcurve.config import RevenuePolicy
from upcurve.contract import CONTRACT
from upcurve.errors import ContractError, Problem, UpcurveError
from upcurve.sources.folder import LoadedData, check_folder, load_folder

if TYPE_CHECKING:
    import ibis

__all__ = ["ConnectionSnapshot", "check_connection", "is_connection_url", "load_connection", "redacted",
           "snapshot_connection"]

#: ``scheme://`` at the start of a data argument: a database to read, not a folder.
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_connection_url(data: str | Path) -> bool:
    """Whether a data argument names a database (``duckdb:///acme.duckdb``, ``postgresql://…``) and not a folder."""
    return isinstance(data, str) and bool(_URL.match(data))


def redacted(url: str) -> str:
    """The URL without its password, to show and to store."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


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


def snapshot_connection(url: str) -> ConnectionSnapshot:
    """Copy the contract's tables found in the database at ``url`` into Parquet files.

    Raises
    ------
    ContractError
        When a required table is missing (all of them named at once), as for a folder.
    UpcurveError
        When the database cannot be opened.
    """
    con = _open(url)
    scratch = tempfile.TemporaryDirectory(prefix="upcurve-source-")
    folder = Path(scratch.name)
    digest = hashlib.sha256()
    missing = []
    try:
        for name, schema in CONTRACT.items():
            try:
                table = con.table(name)
            except Exception:  # each backend says "no such table" its own way; absent is all that matters here
                if schema.required:
                    missing.append(name)
                continue
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
    if missing:
        scratch.cleanup()
        raise ContractError([Problem(redacted(url), f"required table {name!r} is missing from the database",
                                     hint=f"Create a table or view named {name} (see docs/contract.md)")
                             for name in missing])
    if not any(folder.iterdir()):
        scratch.cleanup()
        raise UpcurveError(f"no table of the contract in {redacted(url)}")
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
                     fx_quote_currency: str | None = None) -> tuple[list[Problem], dict[str, int]]:
    """:func:`upcurve.sources.check_folder` for the contract's tables in a database."""
    try:
        snapshot = snapshot_connection(url)
    except ContractError as exc:
        return exc.problems, {}
    try:
        problems, rows = check_folder(snapshot.folder, engine, reporting_currency=reporting_currency,
                                      fx_quote_currency=fx_quote_currency)
        return _named_by_table(problems, snapshot), rows
    finally:
        snapshot.close()


def load_connection(url: str, engine: ibis.BaseBackend, *, as_of: dt.date | None, policy: RevenuePolicy,
                    say: Callable[[str], None] = lambda _msg: None) -> LoadedData:
    """:func:`upcurve.sources.load_folder` for the contract's tables in a database: copied, then read and checked
    as a folder; the copy lives as long as the returned tables."""
    say("copying the tables from the database")
    snapshot = snapshot_connection(url)
    try:
        loaded = load_folder(snapshot.folder, engine, as_of=as_of, policy=policy, say=say)
    except ContractError as exc:
        snapshot.close()
        raise ContractError(_named_by_table(exc.problems, snapshot)) from None
    except BaseException:
        snapshot.close()
        raise
    return dataclasses.replace(loaded, source=snapshot.source, fingerprint=snapshot.fingerprint,
                               keep_alive=snapshot)
