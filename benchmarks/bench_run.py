"""Benchmark: `upcurve run` over a simulated company's invoice lines.

Default size: 100,000 accounts × 36 months (target on a 2-core machine: under 30 s and 3 GB peak RSS).
Prints the generation time, the run's seconds step by step, invoice lines per second and peak RSS, then (Parquet
only) the floor's seconds (``floor.sql``: plain DuckDB SQL for MRR, movements and monthly NRR/GRR on the same files,
measured after the run so its tables do not count in the run's peak), the run as a multiple of it, and whether the
floor computed what upcurve computed.

    python benchmarks/bench_run.py [--accounts 100000] [--months 36] [--format parquet]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from floor import floor_agrees, run_floor  # beside this script

from upcurve.simulate import BILLING_TABLES, simulate_tables, write_folder
from upcurve.usecases import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tables = simulate_tables(args.accounts, args.months, seed=1)
        data = write_folder(tables, Path(tmp) / "data", args.format, BILLING_TABLES)
        lines = tables["invoice_lines"].num_rows
        del tables
        print(f"generated {args.accounts:,} accounts × {args.months} months: {lines:,} invoice lines "
              f"in {time.perf_counter() - t0:.1f} s")
        steps: list[tuple[float, str]] = []
        t0 = time.perf_counter()
        result = run(data, Path(tmp) / "out", progress=lambda m: steps.append((time.perf_counter() - t0, m)))
        seconds = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # after the run: the floor's tables, kept for the check, must not count in the run's peak
        floor, floor_tables = run_floor(data) if args.format == "parquet" else (0.0, {})
    for (at, msg), nxt in zip(steps, [*steps[1:], (seconds, "")], strict=True):
        print(f"  {nxt[0] - at:6.2f} s  {msg}")
    rows = {name: t.num_rows for name, t in result.tables.items()}
    print(f"upcurve run: {seconds:.1f} s, {lines / seconds:,.0f} invoice lines/s, peak RSS {peak_mb:,.0f} MB")
    if floor_tables:
        print(f"the floor (plain DuckDB SQL): {floor:.2f} s; upcurve's run is {seconds / floor:.1f}× the floor")
        problems = floor_agrees(floor_tables, result.tables)
        print("the floor computed what upcurve computed" if not problems else
              "\n".join(["THE FLOOR DIFFERS:", *problems]))
    else:
        print("(the floor reads Parquet only: no floor for --format csv)")
    print("rows out: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))


if __name__ == "__main__":
    main()
