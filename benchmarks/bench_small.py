"""Benchmark: a small company end to end, where the fixed cost of building and compiling queries dominates.

Simulates a company of --accounts accounts × --months months (every contract table), then times:

- ``run`` step by step, a first run (learning the models) and a run that scores with the saved model;
- the account signals query alone (the largest query of a run, at every past month end a first run learns
  from): building the Ibis expression, compiling it to SQL, and executing that SQL in DuckDB to Arrow, each
  separately.

The garbage collector is set as the ``upcurve`` command sets it (``upcurve.cli.collect_garbage_less_often``);
``--python-gc`` keeps Python's default thresholds instead, as a program calling the Python API has them.

Prints seconds per step, the totals and peak RSS.

    python benchmarks/bench_small.py [--accounts 300] [--months 24] [--python-gc]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from upcurve.cli import collect_garbage_less_often
from upcurve.config import RevenuePolicy
from upcurve.contract import plan_features
from upcurve.engine import connect
from upcurve.revenue import revenue_tables
from upcurve.scoring import training_dates
from upcurve.settings_file import UpcurveConfig
from upcurve.signals import account_signals_at
from upcurve.simulate import simulate_tables, write_folder
from upcurve.sources import load_folder
from upcurve.usecases import run


class _CollectorClock:
    """The garbage collector's passes and the seconds they took (``gc.callbacks``), since the last ``reset``."""

    def __init__(self) -> None:
        self.passes, self.seconds, self._started = 0, 0.0, 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.passes += 1
            self.seconds += time.perf_counter() - self._started

    def reset(self) -> None:
        self.passes, self.seconds = 0, 0.0


def _steps(label: str, call: Callable[[Callable[[str], None]], object], collector: _CollectorClock) -> float:
    """Run ``call`` with a progress callback; print how long each announced step took, the total and the garbage
    collector's share of it."""
    marks: list[tuple[float, str]] = []
    collector.reset()
    start = time.perf_counter()
    call(lambda message: marks.append((time.perf_counter(), message)))
    end = time.perf_counter()
    print(f"\n{label}: {end - start:.2f} s (the garbage collector: {collector.passes:,} passes, "
          f"{collector.seconds:.2f} s)")
    for (t, message), (t_next, _) in zip(marks, [*marks[1:], (end, "")], strict=True):
        print(f"  {t_next - t:6.2f} s  {message}")
    return end - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--python-gc", action="store_true", help="keep Python's garbage collector thresholds")
    args = parser.parse_args()
    if not args.python_gc:
        collect_garbage_less_often()
    print(f"garbage collector thresholds {gc.get_threshold()}")
    collector = _CollectorClock()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_folder(simulate_tables(args.accounts, args.months, seed=7), Path(tmp) / "data", "parquet")
        models = Path(tmp) / "models"
        print(f"{args.accounts:,} accounts × {args.months} months, every contract table")
        first = _steps("run, learning the models", lambda say: run(data, None, models_dir=models, progress=say),
                       collector)
        saved = _steps("run, scoring with the saved model", lambda say: run(data, None, models_dir=models,
                                                                             progress=say), collector)

        con = connect("duckdb://")
        policy = RevenuePolicy()
        loaded = load_folder(data, con, as_of=None, policy=policy)
        revenue = revenue_tables(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=policy)
        dates = sorted({loaded.as_of, *training_dates(loaded.first, loaded.as_of, UpcurveConfig().scoring)})
        print(f"\naccount signals at {len(dates)} dates (median of 3):")
        timings: dict[str, list[float]] = {"build": [], "compile": [], "execute": []}
        for _ in range(3):
            t0 = time.perf_counter()
            expr = account_signals_at(loaded.tables, revenue.account_months, plan_features(loaded.tables["plans"]),
                                      dates)
            t1 = time.perf_counter()
            sql = con.compile(expr)
            t2 = time.perf_counter()
            con._run_pre_execute_hooks(expr)  # registers the expression's in-memory tables (the dates)
            rows = con.con.sql(sql).to_arrow_table().num_rows
            t3 = time.perf_counter()
            for name, seconds in zip(timings, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                timings[name].append(seconds)
        for name, seconds_list in timings.items():
            print(f"  {name:8s} {sorted(seconds_list)[1]:6.2f} s")
        print(f"  ({rows:,} rows, {len(sql) / 1000:,.0f} KB of SQL)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nfirst run {first:.2f} s, run with the saved model {saved:.2f} s; peak RSS {peak:,.0f} MB "
          f"(measured {dt.date.today()})")


if __name__ == "__main__":
    main()
