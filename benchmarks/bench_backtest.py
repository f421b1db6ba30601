"""Benchmark: `upcurve backtest` of a large billing-only company, at 100,000 and 1,000,000 accounts.

Each size runs in a process of its own (so its peak RSS is its own): it simulates the company's billing (--months
months, seed 1, the company of the scale curve), writes it as Parquet, then replays its history at --cutoffs month
ends (``upcurve.usecases.backtest``, as ``upcurve backtest`` does), each step printed as it ends, so a size that
fails in its last steps still shows the ones before. ``--data`` replays a folder already written instead of
simulating one (one size). The table gives per size: invoice lines, reading and loading, MRR and movements, the
snapshots' step (the drawn snapshots' keys and signals; every snapshot, for a history within
``scoring.max_training_rows``), the replays (each cutoff's snapshots computed, both kinds of model fitted on its
sample and its accounts scored), the whole backtest, lines per second and peak RSS. There is no hand-written floor
for a backtest: most of it is fitting models, which plain SQL does not do.

``--duckdb-memory`` gives DuckDB another memory limit than upcurve's default (3 GiB) (``duckdb://?memory_limit=…``).

    python benchmarks/bench_backtest.py [--accounts 100000 1000000] [--months 36] [--cutoffs 4]
                                        [--data FOLDER] [--duckdb-memory 8GiB]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from stepwise import StepTimer, outcome, report, run_child


def one_size(accounts: int, months: int, cutoffs: int, data: str | None, duckdb_memory: str | None) -> None:
    """In the child: print one JSON line per finished step."""
    import duckdb

    from upcurve.cli import collect_garbage_less_often
    from upcurve.simulate import BILLING_TABLES, simulate_tables, write_folder
    from upcurve.usecases import backtest

    collect_garbage_less_often()  # as the upcurve command does
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            tables = simulate_tables(accounts, months, seed=1)
            folder = write_folder(tables, Path(tmp) / "data", "parquet", BILLING_TABLES)
            del tables
        else:
            folder = Path(data)
            if not folder.is_dir():
                raise SystemExit(f"{folder}: no such folder")
        counts = {}
        for table in ("accounts", "invoice_lines"):  # a folder of CSV or Parquet files
            path = next(folder.glob(f"{table}.*"))
            counts[table] = duckdb.sql(f"SELECT count(*) FROM '{path}'").fetchall()[0][0]
        report(step="generated", accounts=counts["accounts"], lines=counts["invoice_lines"])
        engine = f"duckdb://?memory_limit={duckdb_memory}" if duckdb_memory else "duckdb://"
        progress = StepTimer()
        backtest(folder, cutoffs=cutoffs, progress=progress, engine=engine)
        progress("done")
        report(step="backtest", seconds=progress.last - progress.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--cutoffs", type=int, default=4)
    parser.add_argument("--data", help="a billing folder to replay instead of simulating one (one size)")
    parser.add_argument("--duckdb-memory")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_size(args.one, args.months, args.cutoffs, args.data, args.duckdb_memory)
        return
    rows = []
    for accounts in args.accounts[:1] if args.data else args.accounts:
        steps, returncode, said = run_child(
            [sys.executable, __file__, "--one", str(accounts), "--months", str(args.months), "--cutoffs",
             str(args.cutoffs), *(["--data", args.data] if args.data else []),
             *(["--duckdb-memory", args.duckdb_memory] if args.duckdb_memory else [])],
            args.data or f"{accounts:,} accounts")
        rows.append((accounts, steps, returncode, said))
    print(f"{'accounts':>10} {'lines':>12} {'read+load s':>12} {'MRR s':>7} {'snapshots s':>12} {'replays s':>10} "
          f"{'backtest s':>11} {'lines/s':>9} {'peak RSS':>10}  note")
    for accounts, steps, returncode, said in rows:
        seconds, peak, note = outcome(steps, returncode, said)
        generated = next((s for s in steps if s["step"] == "generated"), {})
        lines, accounts = generated.get("lines", 0), generated.get("accounts", accounts)
        reading = sum(v for k, v in seconds.items() if k.startswith(("reading", "loading")))
        replays = sum(v for k, v in seconds.items() if k.startswith("replaying"))
        total = seconds.get("backtest")
        print(f"{accounts:>10,} {lines:>12,} {reading:>12.1f} {seconds.get('computing MRR and movements', 0):>7.1f} "
              f"{seconds.get('computing point-in-time snapshots', 0):>12.1f} {replays:>10.1f} "
              f"{total if total is not None else float('nan'):>11.1f} {lines / total if total else 0:>9,.0f} "
              f"{peak:>7,} MB  {note}", flush=True)


if __name__ == "__main__":
    main()
