"""Benchmark: training the scorer on every month-end snapshot of a large company, then scoring it.

Builds a simulated company's billing, users, usage and CRM tables (--accounts × 36 months) and an events table of
--events rows spread over its users and the three years (written by the engine straight to Parquet, so Python
never holds it). Then times `upcurve train` (point-in-time snapshots at every month end with their labels, then
the LightGBM models) and `upcurve run --models` (every table, scored with the saved model). Prints snapshot
rows/s, seconds and peak RSS.

    python benchmarks/bench_training.py [--accounts 100000] [--events 100000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

from synthetic_events import write_events

from upcurve.simulate import simulate_tables, write_folder
from upcurve.usecases import run, train


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        tables = simulate_tables(args.accounts, 36, seed=1)
        write_folder(tables, data, "parquet", tuple(t for t in tables if t != "events"))
        del tables
        write_events(data, args.events, start=dt.date(2023, 1, 1), days=1095)
        print(f"built {args.accounts:,} accounts × 36 months and {args.events:,} events in "
              f"{time.perf_counter() - t0:.1f} s")
        models = Path(tmp) / "models"
        t0 = time.perf_counter()
        scorer = train(data, models)
        seconds = time.perf_counter() - t0
        rows, used = scorer.card_["snapshot_rows"], scorer.card_["rows"]
        print(f"train: {rows:,} labelled snapshot rows over {scorer.card_['labelled_months']} months "
              f"(the models learn from {used:,}) in {seconds:.1f} s ({rows / seconds:,.0f} rows/s), "
              f"peak RSS {_peak_mb():,.0f} MB")
        for target, info in scorer.card_["targets"].items():
            held = info["held_out"]
            print(f"  {target}: held-out AUC {held['auc']:.3f}, lift {held['lift_top_decile']:.2f}")
        t0 = time.perf_counter()
        result = run(data, models_dir=models)
        seconds = time.perf_counter() - t0
        print(f"run scored with the saved model: {result.tables['accounts'].num_rows:,} accounts, "
              f"{result.tables['worklist'].num_rows:,} on the worklist, in {seconds:.1f} s, "
              f"peak RSS {_peak_mb():,.0f} MB")


if __name__ == "__main__":
    main()
