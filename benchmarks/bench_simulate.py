"""Benchmark: `upcurve simulate` streaming a whole company to Parquet.

Prints rows per table, rows/s over all tables and peak RSS. Memory stays bounded because accounts are simulated in
blocks and each block is appended to the files and dropped: peak RSS should not grow with --accounts.

    python benchmarks/bench_simulate.py [--accounts 20000] [--months 36]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

from upcurve.simulate import simulate_company


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rows = simulate_company(tmp, accounts=args.accounts, months=args.months, seed=1)
        seconds = time.perf_counter() - t0
    total = sum(v for k, v in rows.items() if not k.startswith("truth/"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"simulate {args.accounts:,} accounts × {args.months} months: {total:,} rows in {seconds:.1f} s, "
          f"{total / seconds:,.0f} rows/s, peak RSS {peak_mb:,.0f} MB")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))


if __name__ == "__main__":
    main()
