"""Large events tables for the benchmarks, written by DuckDB straight to Parquet (Python never holds them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis


def write_events(data: Path, events: int, *, start: dt.date, days: int) -> None:
    """Write ``data/events.parquet``: ``events`` rows over the users of ``data/users.parquet`` (taken in turn),
    at uniform random times over ``days`` days from ``start``; 40% logins, the rest uses of five features."""
    con = ibis.duckdb.connect()
    users = con.read_parquet(data / "users.parquet").count().to_pyarrow().as_py()
    con.raw_sql(f"""
        COPY (
          SELECT TIMESTAMP '{start.isoformat()}' + to_seconds((random() * {days} * 86400)::BIGINT) AS ts,
                 u.account_id, u.user_id,
                 CASE WHEN random() < 0.4 THEN 'login' ELSE 'feature_used' END AS event,
                 ['projects', 'comments', 'dashboards', 'reports', 'sso'][1 + (i % 5)::INT] AS feature,
                 ['core', 'core', 'collaboration', 'analytics', 'premium'][1 + (i % 5)::INT] AS category
          FROM range({events}) r(i)
          JOIN (SELECT row_number() OVER () - 1 AS k, account_id, user_id
                FROM read_parquet('{data}/users.parquet')) u ON u.k = i % {users}
        ) TO '{data}/events.parquet' (FORMAT parquet)
    """)
