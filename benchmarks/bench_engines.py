"""Benchmark: one company's run on each computing engine (DuckDB, SQLite, local Spark, PostgreSQL), and whether they
agree.

Simulates a company of --accounts accounts × --months months (every contract table, as Parquet), then runs
``upcurve run`` on each engine named in --engines, step by step, and compares every revenue table and the accounts
table with DuckDB's, row for row (money to the cent).

With ``--postgres URL`` (a database this benchmark may fill: it writes the company's tables into it, replacing
tables of the contract's names), two more: ``postgres``, the folder computed on PostgreSQL (its rows handed over
through Arrow), and ``warehouse``, the company's tables in that database computed where they are (``upcurve run
URL``: checked and computed by PostgreSQL, nothing copied out).

Prints seconds per step and in all, invoice lines per second, and the process's peak RSS after each engine (Spark's
own memory is its JVM's, reported by the JVM: the Python process's peak leaves it out).

    python benchmarks/bench_engines.py [--accounts 300] [--months 24] [--engines duckdb,sqlite,spark]
        [--postgres postgresql://user@host/db]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from upcurve.engine import connect
from upcurve.simulate import simulate_tables, write_folder
from upcurve.usecases import run

URLS = {
    "duckdb": "duckdb://",
    "sqlite": "sqlite://",
    # every core of this machine; Spark's defaults otherwise (adaptive planning, generated code)
    "spark": "pyspark://?spark.master=local%5B*%5D&spark.sql.shuffle.partitions=4",
}
COMPARED = ["mrr", "movements", "metrics", "expansion_by_source", "segments", "cohorts", "account_growth",
            "plan_mrr", "coupon_mrr", "accounts"]


def _rows(table: pa.Table) -> list[tuple]:
    out = []
    for row in table.to_pylist():
        out.append(tuple(round(v, 6) if isinstance(v, float) else v for v in row.values()))
    return sorted(out, key=lambda r: tuple(str(v) for v in r))


def _timed(call: Callable[[Callable[[str], None]], dict[str, pa.Table]]) -> tuple[float, dict[str, pa.Table]]:
    marks: list[tuple[float, str]] = []
    start = time.perf_counter()
    tables = call(lambda message: marks.append((time.perf_counter(), message)))
    end = time.perf_counter()
    for (t, message), (t_next, _) in zip(marks, [*marks[1:], (end, "")], strict=True):
        print(f"  {t_next - t:6.2f} s  {message}")
    return end - start, tables


def _fill(url: str, data: Path) -> None:
    """The company's tables as tables of the database at ``url``, in their Parquet types."""
    import ibis
    import pyarrow.parquet as pq

    con = ibis.connect(url)
    for path in sorted(data.glob("*.parquet")):
        con.create_table(path.stem, pq.read_table(path), overwrite=True)
    con.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--engines", default="duckdb,sqlite,spark")
    parser.add_argument("--postgres", help="a PostgreSQL database to fill: adds the engines postgres and warehouse")
    args = parser.parse_args()
    engines = args.engines.split(",") + (["postgres", "warehouse"] if args.postgres else [])
    urls = {**URLS, "postgres": args.postgres, "warehouse": args.postgres}
    with tempfile.TemporaryDirectory() as tmp:
        company = simulate_tables(args.accounts, args.months, seed=7)
        data = write_folder(company, Path(tmp) / "data", "parquet")
        lines = company["invoice_lines"].num_rows
        as_of = max(company["invoice_lines"].column("period_start").to_pylist())
        print(f"{args.accounts:,} accounts × {args.months} months ({lines:,} invoice lines), every contract table, "
              f"as of {as_of}")
        results: dict[str, dict[str, pa.Table]] = {}
        for name in engines:
            print(f"\n{name} ({urls[name]})")
            if name == "warehouse":
                filled = time.perf_counter()
                _fill(args.postgres, data)
                print(f"  {time.perf_counter() - filled:6.2f} s  writing the company's tables into the database "
                      "(not part of the run)")
                seconds, results[name] = _timed(
                    lambda say: run(args.postgres, None, as_of=as_of, progress=say).tables)
            else:
                opened = time.perf_counter()
                engine = connect(urls[name])
                print(f"  {time.perf_counter() - opened:6.2f} s  opening the engine")
                seconds, results[name] = _timed(
                    lambda say, engine=engine: run(data, None, as_of=as_of, engine=engine, progress=say).tables)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
            print(f"  total {seconds:.1f} s, {lines / seconds:,.0f} invoice lines/s, peak RSS so far {peak:.2f} GB")
        if "duckdb" in results:
            for name in engines:
                if name == "duckdb":
                    continue
                differ = [t for t in COMPARED if _rows(results[name][t]) != _rows(results["duckdb"][t])]
                print(f"{name} against duckdb: " + (f"differs in {', '.join(differ)}" if differ else
                                                    f"the same rows in all {len(COMPARED)} tables compared"))


if __name__ == "__main__":
    main()
