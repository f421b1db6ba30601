"""The floor: how long plain DuckDB SQL takes for the core revenue results of a folder (see ``floor.sql``).

The benchmarks of ``upcurve run`` measure it on the same files in the same process and print upcurve's time as a
multiple of it. ``floor_agrees`` checks that the floor computes what upcurve computes (MRR per account, product and
month; each account's movement of each month; the monthly metrics), so the ratio compares equal work.

    python benchmarks/floor.py DATA_FOLDER [UPCURVE_OUT_FOLDER]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from ibis.backends.duckdb import Backend as DuckDBBackend

from upcurve.engine import connect

FLOOR_SQL = Path(__file__).with_name("floor.sql")
FLOOR_TABLES = ("mrr_cells", "movements", "metrics")


def run_floor(data_dir: Path, engine: str = "duckdb://") -> tuple[float, dict[str, pa.Table]]:
    """Run the floor's queries on ``data_dir`` in a fresh DuckDB connection opened as ``upcurve run --engine``
    opens it (upcurve's memory limit and spill folder unless the URL sets others); the seconds they took
    (connecting included) and their tables."""
    sql = FLOOR_SQL.read_text().replace("{data}", str(data_dir))
    t0 = time.perf_counter()
    con = duckdb_connection(engine)
    con.execute(sql).fetchall()  # the last statement has no rows; drained, the connection takes the next query
    tables = {name: con.table(name).to_arrow_table() for name in FLOOR_TABLES}
    return time.perf_counter() - t0, tables


def duckdb_connection(engine: str = "duckdb://") -> duckdb.DuckDBPyConnection:
    """The DuckDB connection under :func:`upcurve.engine.connect`'s backend: the same settings as a run's."""
    backend = connect(engine)
    assert isinstance(backend, DuckDBBackend), "the floor is DuckDB SQL: give a duckdb:// URL"
    return backend.con


def floor_agrees(floor: dict[str, pa.Table], upcurve: dict[str, pa.Table]) -> list[str]:
    """What differs between the floor's tables and upcurve's ``mrr``, ``movements`` and ``metrics`` (as a run
    returns or writes them); empty when nothing does.

    MRR cells and movements are compared row for row in cents; the metrics' money to the cent and their ratios to
    1e-9.
    """
    con = duckdb.connect()
    for name, table in floor.items():
        con.register(f"floor_{name}", table)
    for name in ("mrr", "movements", "metrics"):
        con.register(f"upcurve_{name}", upcurve[name])
    checks = {
        "mrr": "SELECT month, account_id, product, mrr_cents FROM floor_mrr_cells WHERE mrr_cents <> 0",
        "upcurve_mrr": """
            SELECT month, account_id, product, (mrr * 100)::BIGINT AS mrr_cents
            FROM upcurve_mrr WHERE mrr <> 0""",
        "movements": """
            SELECT month, account_id, type, amount_cents FROM floor_movements
            WHERE type IS NOT NULL AND amount_cents <> 0
            UNION ALL
            SELECT month, account_id, 'fx', fx_cents FROM floor_movements WHERE fx_cents <> 0""",
        "upcurve_movements": """
            SELECT month, account_id, type, sum(amount * 100)::BIGINT AS amount_cents
            FROM upcurve_movements GROUP BY ALL HAVING sum(amount) <> 0""",
    }
    problems = []
    for name in ("mrr", "movements"):
        only_floor = con.sql(f"FROM ({checks[name]}) EXCEPT ALL FROM ({checks['upcurve_' + name]})").fetchall()
        only_upcurve = con.sql(f"FROM ({checks['upcurve_' + name]}) EXCEPT ALL FROM ({checks[name]})").fetchall()
        if only_floor or only_upcurve:
            problems.append(f"{name}: {len(only_floor)} rows only in the floor (e.g. {only_floor[:2]}), "
                            f"{len(only_upcurve)} only in upcurve's (e.g. {only_upcurve[:2]})")
    money = ["mrr", "new", "expansion", "contraction", "churn", "reactivation", "fx"]
    ratios = ["nrr_month", "nrr_12m", "grr_12m"]
    differ = con.sql(f"""
        SELECT f.month FROM floor_metrics f JOIN upcurve_metrics u USING (month)
        WHERE f.customers <> u.customers
           {''.join(f" OR f.{m}_cents <> (u.{m} * 100)::BIGINT" for m in money)}
           {''.join(f" OR NOT (abs(f.{r} - u.{r}) < 1e-9 OR (f.{r} IS NULL AND u.{r} IS NULL))" for r in ratios)}
    """).fetchall()
    if differ:
        problems.append(f"metrics differ in {len(differ)} months: {[m for (m,) in differ[:5]]}")
    counts = con.execute("SELECT (SELECT count(*) FROM floor_metrics), (SELECT count(*) FROM upcurve_metrics)"
                         ).fetchone()
    if counts is None or counts[0] != counts[1]:
        problems.append(f"metrics: {counts} months (floor, upcurve)")
    return problems


def main() -> None:
    data = Path(sys.argv[1])
    seconds, tables = run_floor(data)
    print(f"floor: {seconds:.2f} s ({', '.join(f'{k} {v.num_rows:,} rows' for k, v in tables.items())})")
    if len(sys.argv) > 2:
        out = Path(sys.argv[2])
        upcurve = {name: pq.read_table(out / f"{name}.parquet") for name in ("mrr", "movements", "metrics")}
        problems = floor_agrees(tables, upcurve)
        print("the floor computes what upcurve computes" if not problems else "\n".join(problems))


if __name__ == "__main__":
    main()
