"""Benchmark: the workspace at scale, as a user meets it on the command line.

A simulated company's billing (default 100,000 accounts × 36 months, Parquet), then, each as its own `upcurve`
process (so every figure includes starting the command): the first run into a new workspace (training the models),
a second run that scores with the model the first one registered, and each reading command. Prints seconds, invoice
lines per second for the runs, and each process's peak RSS. The floor (``floor.sql``: plain DuckDB SQL for MRR,
movements and monthly NRR/GRR on the same files) runs first, as a process of its own timed the same way, and each
run's seconds are printed as a multiple of it.

    python benchmarks/bench_workspace.py [--accounts 100000] [--months 36]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UPCURVE = [sys.executable, "-m", "upcurve"]
FLOOR = [sys.executable, str(Path(__file__).with_name("floor.py"))]


def timed(args: list[str], program: list[str] = UPCURVE) -> tuple[float, float]:
    """Run one upcurve command; its seconds and its peak RSS in MB (from the kernel's accounting of that process)."""
    start = time.perf_counter()
    proc = subprocess.Popen([*program, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "200"})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        said = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(program[1:])} {' '.join(args)} failed:\n{said}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        from upcurve.simulate import BILLING_TABLES, simulate_tables, write_folder

        tables = simulate_tables(args.accounts, args.months, seed=1)
        write_folder(tables, Path(args.generate), "parquet", BILLING_TABLES)
        print(tables["invoice_lines"].num_rows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = Path(tmp) / "data"
        # generated in a child process: a process started by this one inherits its peak memory in the kernel's
        # accounting (it survives exec), so this one stays small for each command's figure to be its own
        done = subprocess.run([sys.executable, __file__, "--generate", str(data), "--accounts", str(args.accounts),
                               "--months", str(args.months)], check=True, capture_output=True, text=True)
        lines = int(done.stdout)
        print(f"generated {args.accounts:,} accounts × {args.months} months: {lines:,} invoice lines "
              f"in {time.perf_counter() - t0:.1f} s")
        floor, floor_peak = timed([str(data)], FLOOR)
        print(f"the floor (plain DuckDB SQL, its own process): {floor:.2f} s, peak RSS {floor_peak:,.0f} MB")
        ws = str(Path(tmp) / "workspace")
        steps = [
            ("run (first: trains the models)", ["run", str(data), "--workspace", ws], lines),
            ("run (again: scores with the registered model)", ["run", str(data), "--workspace", ws], lines),
            ("runs", ["runs", "--workspace", ws], 0),
            ("worklist", ["worklist", "--workspace", ws], 0),
            ("accounts --sort churn", ["accounts", "--workspace", ws, "--sort", "churn"], 0),
            ("diff", ["diff", "--workspace", ws], 0),
            ("export --format parquet", ["export", "--workspace", ws, "--out", str(Path(tmp) / "export")], 0),
        ]
        print(f"{'command':<48} {'seconds':>8} {'lines/s':>10} {'peak RSS':>10} {'× floor':>8}")
        for label, command, rows in steps:
            seconds, peak = timed(command)
            rate = f"{rows / seconds:,.0f}" if rows else ""
            ratio = f"{seconds / floor:.1f}" if rows else ""
            print(f"{label:<48} {seconds:8.2f} {rate:>10} {peak:8,.0f} MB {ratio:>8}")


if __name__ == "__main__":
    main()
