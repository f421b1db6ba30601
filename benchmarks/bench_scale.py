"""Benchmark: the scale curve of `upcurve run`, from 10,000 to 1,000,000 accounts.

Each size runs in a process of its own (so its peak RSS is its own), optionally under an address-space limit
(``--memory-gb``; 0, the default, sets none: DuckDB reserves more address space than it uses, so a limit can end a
run that would have fitted): it simulates the company's billing
(--months months), writes it as Parquet, runs the floor (``floor.sql``) on it, then ``upcurve run`` step by step,
each step printed as it ends, so a size that fails in its last steps still shows the ones before. The curve is
printed as one row per size: invoice lines, the floor, the engine's steps (every step before learning), learning
and scoring, the whole run, lines per second and peak RSS; time and memory should grow no faster than the lines.

``--duckdb-memory`` gives DuckDB another memory limit than upcurve's default (3 GiB), for both the floor and the
run (``duckdb://?memory_limit=…``), to tell time spent spilling from time spent computing.

    python benchmarks/bench_scale.py [--accounts 10000 100000 1000000] [--months 36] [--memory-gb 0]
                                     [--duckdb-memory 10GB]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

from stepwise import StepTimer, outcome, report, run_child


def one_size(accounts: int, months: int, duckdb_memory: str | None) -> None:
    """In the child: print one JSON line per finished step."""
    from floor import run_floor

    from upcurve.simulate import BILLING_TABLES, simulate_tables, write_folder
    from upcurve.usecases import run

    with tempfile.TemporaryDirectory() as tmp:
        tables = simulate_tables(accounts, months, seed=1)
        data = write_folder(tables, Path(tmp) / "data", "parquet", BILLING_TABLES)
        report(step="generated", lines=tables["invoice_lines"].num_rows)
        del tables
        engine = f"duckdb://?memory_limit={duckdb_memory}" if duckdb_memory else "duckdb://"
        floor, _ = run_floor(data, engine)
        report(step="floor", seconds=floor)
        progress = StepTimer()
        run(data, Path(tmp) / "out", progress=progress, engine=engine)
        progress("done")
        report(step="run", seconds=progress.last - progress.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--memory-gb", type=float, default=0)
    parser.add_argument("--duckdb-memory")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_size(args.one, args.months, args.duckdb_memory)
        return
    limit = int(args.memory_gb * 1024**3) or resource.RLIM_INFINITY
    rows = []
    for accounts in args.accounts:
        steps, returncode, said = run_child(
            [sys.executable, __file__, "--one", str(accounts), "--months", str(args.months),
             *(["--duckdb-memory", args.duckdb_memory] if args.duckdb_memory else [])],
            f"{accounts:,} accounts", address_space=limit)
        rows.append((accounts, steps, returncode, said))
    print(f"{'accounts':>10} {'lines':>12} {'floor s':>8} {'engine s':>9} {'learn+score s':>14} {'run s':>8} "
          f"{'lines/s':>9} {'× floor':>8} {'peak RSS':>10}  note")
    for accounts, steps, returncode, said in rows:
        seconds, peak, note = outcome(steps, returncode, said)
        lines = next((s["lines"] for s in steps if s["step"] == "generated"), 0)
        learning = sum(v for k, v in seconds.items() if k.startswith(("learning", "scoring")))
        engine = sum(v for k, v in seconds.items()
                     if k not in ("generated", "floor", "run") and not
                     k.startswith(("learning", "scoring", "writing")))
        total = seconds.get("run")
        floor = seconds.get("floor", 0.0)
        print(f"{accounts:>10,} {lines:>12,} {floor:>8.2f} {engine:>9.1f} {learning:>14.1f} "
              f"{total if total is not None else float('nan'):>8.1f} "
              f"{lines / total if total else 0:>9,.0f} {total / floor if total and floor else 0:>8.1f} "
              f"{peak:>7,} MB  {note}", flush=True)


if __name__ == "__main__":
    main()
