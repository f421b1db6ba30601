"""Benchmark: account signals and health over a large events table.

Builds a simulated company's billing, users and CRM tables, then an events table of --events rows spread over its
accounts and users (written by the engine, so the Python process never holds it), and times `account_signals` plus
`health_scores` at the as-of date. Prints events/s, seconds and peak RSS. Then the events' floor, in the same
process: the three reductions of the events the signals read, as plain DuckDB SQL on the same Parquet file (each
user's events and logins per day over the 90 days before the as-of date, each account's users of each feature per
day over the 60 days before it, each account's first day with each feature), each read to Arrow, in a fresh DuckDB
connection opened as a run opens DuckDB.

    python benchmarks/bench_signals.py [--events 100000000] [--accounts 20000] [--engine duckdb://]

The engine is opened as ``upcurve run --engine`` opens it (upcurve's defaults included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

from floor import duckdb_connection
from synthetic_events import write_events

from upcurve.contract import read_folder, typed_tables
from upcurve.engine import connect, hand_over
from upcurve.revenue import revenue_tables
from upcurve.settings_file import UpcurveConfig
from upcurve.signals import accounts_table
from upcurve.simulate import simulate_tables, write_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000_000)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--engine", default="duckdb://")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        tables = simulate_tables(args.accounts, 36, seed=1)
        write_folder(tables, data, "parquet", ("accounts", "plans", "invoice_lines", "fx_rates", "users",
                                               "renewals", "tickets", "nps", "outcomes"))
        del tables
        con = connect(args.engine)
        t0 = time.perf_counter()
        # Events over 2025, drawn uniformly: the engine writes them straight to Parquet.
        write_events(data, args.events, start=dt.date(2025, 1, 1), days=365)
        print(f"wrote {args.events:,} events in {time.perf_counter() - t0:.1f} s")
        as_of = dt.date(2025, 12, 31)
        folder = read_folder(data, con)
        typed = typed_tables(folder)
        tables_in = hand_over(con, typed, in_place=("events",))
        revenue = revenue_tables(tables_in, as_of=as_of, first=dt.date(2023, 1, 1),
                                  policy=UpcurveConfig().revenue)
        t0 = time.perf_counter()
        accounts = accounts_table(tables_in, revenue.account_months, UpcurveConfig().health, as_of=as_of).to_pyarrow()
        seconds = time.perf_counter() - t0
        floor = _events_floor(data / "events.parquet", as_of)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"the events' floor (plain DuckDB SQL): {floor:.1f} s, {args.events / floor:,.0f} events/s")
    print(f"signals and health for {accounts.num_rows:,} accounts over {args.events:,} events: {seconds:.1f} s, "
          f"{args.events / seconds:,.0f} events/s, peak RSS {peak_mb:,.0f} MB")


def _events_floor(events: Path, as_of: dt.date) -> float:
    """Seconds of the plain SQL a data engineer would write for the reductions of the events the signals read."""
    end = as_of + dt.timedelta(days=1)
    queries = [
        f"""SELECT account_id, user_id, ts::DATE AS day, count(*) AS events, count(*) FILTER (event = 'login')
            AS logins FROM read_parquet('{events}') WHERE ts >= DATE '{end}' - 90 AND ts < DATE '{end}'
            GROUP BY ALL""",
        f"""SELECT DISTINCT account_id, user_id, feature, category, ts::DATE AS day FROM read_parquet('{events}')
            WHERE feature IS NOT NULL AND ts >= DATE '{end}' - 60 AND ts < DATE '{end}'""",
        f"""SELECT account_id, feature, min(ts::DATE) AS first FROM read_parquet('{events}')
            WHERE feature IS NOT NULL AND ts < DATE '{end}' GROUP BY ALL""",
    ]
    t0 = time.perf_counter()
    con = duckdb_connection()  # upcurve's memory limit and spill folder, as the signals had
    for sql in queries:
        con.sql(sql).to_arrow_table()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
