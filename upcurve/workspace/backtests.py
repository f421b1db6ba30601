"""Backtests kept in the workspace: each ``upcurve backtest --workspace`` with what it replayed and its tables, so
the web app's model page and the report show how the model ranked the past without replaying it."""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from upcurve.workspace.store import Store

__all__ = ["BacktestRecord", "latest_backtest", "save_backtest"]


@dataclass(frozen=True)
class BacktestRecord:
    """One kept backtest: when, on what, at which cutoffs, its notes, and its two tables as rows."""

    backtest_id: str
    created_at: dt.datetime
    as_of: dt.date
    source: str | None
    cutoffs: list[str]
    notes: list[str]
    metrics: list[dict[str, Any]]
    calibration: list[dict[str, Any]]


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    """A table's rows as JSON keeps them: dates as ISO text, NaN as null."""
    out = []
    for row in table.to_pylist():
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else
                        v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()})
    return out


def save_backtest(store: Store, *, as_of: dt.date, source: str | None, cutoffs: list[dt.date], notes: list[str],
                  tables: Mapping[str, pa.Table]) -> BacktestRecord:
    """Keep a backtest (its ``backtest_metrics`` and ``backtest_calibration`` tables) in the workspace."""
    record = BacktestRecord(
        backtest_id=f"backtest-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}",
        created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None), as_of=as_of, source=source,
        cutoffs=[c.isoformat() for c in cutoffs], notes=list(notes),
        metrics=_rows(tables["backtest_metrics"]), calibration=_rows(tables["backtest_calibration"]))
    with store._writing() as con, con.transaction():
        con.execute("INSERT INTO backtests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [record.backtest_id, record.created_at, record.as_of, record.source, json.dumps(record.cutoffs),
                     json.dumps(record.notes), json.dumps(record.metrics), json.dumps(record.calibration)])
    return record


def latest_backtest(store: Store) -> BacktestRecord | None:
    """The backtest kept last (None when none was kept)."""
    with store._reading() as con:
        if not con.columns("backtests"):
            return None
        _, rows = con.rows("SELECT backtest_id, created_at, as_of, source, cutoffs, notes, metrics, calibration "
                           "FROM backtests ORDER BY created_at DESC, backtest_id DESC LIMIT 1")
    if not rows:
        return None
    found = rows[0]
    return BacktestRecord(found[0], found[1], found[2], found[3], *(json.loads(v) for v in found[4:]))
