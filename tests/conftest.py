"""Shared helpers: write small data folders from CSV text, and run the revenue pipeline on them; a throwaway
PostgreSQL server for the workspace and plays tests (one per test process: each xdist worker has its own; a fresh
database per workspace, stopped and deleted at the end).

The server binaries come with the system package (`make system-packages` installs it when missing): a machine
without them fails those tests with a message saying so, it never skips them."""

from __future__ import annotations

import datetime as dt
import functools
import gc
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import psycopg
import pytest
import typer.testing

from upcurve.cli import collect_garbage_less_often
from upcurve.config import RevenuePolicy
from upcurve.settings_file import UpcurveConfig
from upcurve.usecases import RunResult, run


def pytest_configure(config: pytest.Config) -> None:
    """The garbage collector as the ``upcurve`` command sets it: the suite runs what users run, and the collector's
    full passes over a test process's objects took about a tenth of its time at Python's default.

    Typer's test runner builds the command line from the app at every ``invoke`` (about 60 ms for upcurve's
    commands, each one's signature read again); a process of the ``upcurve`` command builds it once, and so does
    the suite now: the app does not change while the tests run."""
    collect_garbage_less_often()
    # Typer's own name for the step (typer.testing): were it renamed, every test would build the command line again
    assert hasattr(typer.testing, "_get_command"), "typer.testing._get_command is gone: build the app once another way"
    typer.testing._get_command = functools.cache(typer.testing._get_command)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Out of the collector's sight what collecting made (every test module, its imports and its parameters): kept
    for the whole session anyway, and scanned again at every full collection otherwise."""
    gc.freeze()


ACCOUNTS = "account_id,name,segment,owner\n"
PLANS = textwrap.dedent(
    """\
    plan_id,product,tier,tier_rank,pricing,interval_months,unit_price
    team_m,core,team,2,per_seat,1,10
    team_y,core,team,2,per_seat,12,100
    business_m,core,business,3,per_seat,1,20
    starter_m,core,starter,1,flat,1,49
    addon_m,analytics,standard,1,per_seat,1,30
    api_m,api,metered,1,usage,1,0.01
    """
)


def write_folder(folder: Path, tables: dict[str, str]) -> Path:
    """Write each CSV text as ``<name>.csv`` in ``folder`` (dedented; ``plans`` defaults to :data:`PLANS`)."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = {"plans": PLANS, **tables}
    if "accounts" not in tables:
        ids = sorted({row.split(",")[1] for row in tables["invoice_lines"].strip().splitlines()[1:]})
        tables["accounts"] = ACCOUNTS + "".join(f"{a},{a} Inc,smb,ann\n" for a in ids)
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(textwrap.dedent(text).strip() + "\n")
    return folder


def run_folder(folder: Path, as_of: str | dt.date | None = None, **policy: object) -> RunResult:
    """Run the pipeline on a folder without writing outputs."""
    config = UpcurveConfig(revenue=RevenuePolicy.model_validate(policy))
    if isinstance(as_of, str):
        as_of = dt.date.fromisoformat(as_of)
    return run(folder, None, as_of=as_of, config=config)


@pytest.fixture
def folder(tmp_path: Path):
    """A function writing CSV tables into a fresh data folder."""

    def make(tables: dict[str, str]) -> Path:
        return write_folder(tmp_path / "data", tables)

    return make


@pytest.fixture
def duck() -> ibis.BaseBackend:
    return ibis.duckdb.connect()


# -- a throwaway PostgreSQL server ---------------------------------------------------------------------------
def _server_binaries() -> Path:
    """The folder of initdb and pg_ctl: the newest Debian install, else ``pg_config --bindir``, else the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(v) if (v := Path(p).parts[-3]).isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    if shutil.which("pg_config"):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if bindir and (Path(bindir) / "initdb").exists():
            return Path(bindir)
    if initdb := shutil.which("initdb"):
        return Path(initdb).parent
    pytest.fail("the PostgreSQL server binaries (initdb, pg_ctl) are not installed: run `make system-packages` "
                "(apt-get install postgresql); the PostgreSQL workspace tests need a real server", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; :meth:`database` makes a fresh database and returns its URL."""

    port: int
    names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self, name: str | None = None) -> str:
        name = name or f"ws_{next(self.names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test process, with trust authentication on 127.0.0.1 (user ``postgres``)."""
    bindir = _server_binaries()
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []  # initdb refuses to run as root
    if as_root:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, the test server needs the `postgres` system user (the postgresql package "
                        "creates it): run `make system-packages`", pytrace=False)
    base = Path(tempfile.mkdtemp(prefix="upcurve-pg-"))  # short: the socket's path has a length limit
    data = base / "data"
    if as_root:
        shutil.chown(base, "postgres", "postgres")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*run_as, *args], capture_output=True, text=True, cwd=base)

    done = run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
               "--locale=C", "--no-sync")
    if done.returncode:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed: {done.stdout}{done.stderr}", pytrace=False)
    port = 0
    for _attempt in range(3):  # another process may take the free port first
        port = _free_port()
        options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off")
        done = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w",
                   "start")
        if done.returncode == 0:
            break
    else:
        log = (base / "server.log").read_text(errors="replace")[-2000:] if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"the PostgreSQL server did not start: {done.stdout}{done.stderr}\n{log}", pytrace=False)
    try:
        yield PostgresServer(port)
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a database of the test server: ``postgresql://postgres@127.0.0.1:PORT/upcurve_test``."""
    return postgres_server.database("upcurve_test")


@pytest.fixture(params=["duckdb", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty workspace goes on each backend: a new folder, or a new PostgreSQL database."""
    if request.param == "duckdb":
        return str(tmp_path / "ws")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.database()
