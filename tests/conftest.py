"""Shared helpers: write small data folders from CSV text, and run the revenue pipeline on them."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import ibis
import pytest

from upcurve.config import RevenuePolicy
from upcurve.settings_file import UpcurveConfig
from upcurve.usecases import RunResult, run

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
