"""Benchmark: how well upcurve ranks next quarter's expansion and churn on the simulated company, and how fast.

Simulates a company, replays its history with ``upcurve backtest`` (at several past month ends: train on what was
known, score that month's accounts, compare with what happened), prints every model's ROC AUC, log loss, Brier
score, precision and lift in the top decile beside the cold-start rules and the health score, and checks the
recommended lever against the simulator's ground truth (``truth/expansions``, used for nothing else). Then it
times training the scorer on every month-end snapshot and scoring today's accounts, with the peak memory.

    python benchmarks/bench_scoring.py [--accounts 3000] [--months 36] [--seed 5] [--cutoffs 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from upcurve.simulate import simulate_company
from upcurve.usecases import backtest, run


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--cutoffs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        simulate_company(data, accounts=args.accounts, months=args.months, seed=args.seed)
        print(f"simulated {args.accounts:,} accounts × {args.months} months in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        result = backtest(data, cutoffs=args.cutoffs)
        print(f"\nbacktest at {', '.join(map(str, result.cutoffs))}: {time.perf_counter() - t0:.1f} s")
        metrics = result.tables["backtest_metrics"].to_pylist()
        for target in ("expansion", "churn"):
            print(f"\n{target} (mean over cutoffs; min–max lift)")
            for model in ("lightgbm", "logistic", "rules", "health_score"):
                rows = [r for r in metrics if r["target"] == target and r["model"] == model]
                if not rows:
                    continue

                def mean(key: str, rows: list = rows) -> float:
                    values = [r[key] for r in rows if r[key] is not None and r[key] == r[key]]
                    return float(np.mean(values)) if values else float("nan")

                lifts = [r["lift_top_decile"] for r in rows]
                line = (f"  {model:12s} AUC {mean('auc'):.3f}  log loss {mean('log_loss'):.3f}  "
                        f"Brier {mean('brier'):.3f}  precision@10% {mean('precision_at_k'):.3f}  "
                        f"lift {mean('lift_top_decile'):.2f} ({min(lifts):.2f}–{max(lifts):.2f})")
                if target == "expansion" and model in ("lightgbm", "logistic"):
                    line += f"  lever = revenue's {mean('lever_match'):.0%}"
                print(line)
        for note in result.notes:
            print("note:", note)

        t0 = time.perf_counter()
        scored = run(data, models_dir=Path(tmp) / "models", retrain=True)
        seconds = time.perf_counter() - t0
        card = scored.model_card or {}
        print(f"\nrun with training: {seconds:.1f} s on {card.get('rows', 0):,} labelled snapshots "
              f"({card.get('rows', 0) / seconds:,.0f} snapshot rows/s), peak RSS {_peak_mb():,.0f} MB")

        # the lever against the simulator's truth: accounts that really expanded in the 3 months after a cutoff
        truth = pq.read_table(data / "truth" / "expansions.parquet").to_pylist()
        cut = scored.as_of - dt.timedelta(days=92)
        t0 = time.perf_counter()
        earlier = run(data, as_of=dt.date(cut.year, cut.month, 1) - dt.timedelta(days=1))
        print(f"run at {earlier.as_of} with training: {time.perf_counter() - t0:.1f} s")
        after = {(earlier.as_of.year * 12 + earlier.as_of.month - 1) + k for k in (1, 2, 3)}
        levers: dict[str, set[str]] = {}
        for r in truth:
            year, month = map(int, r["month"].split("-"))
            if year * 12 + month - 1 in after and r["lever"] != "services":
                levers.setdefault(r["account_id"], set()).add(r["lever"])
        rows = [r for r in earlier.tables["accounts"].to_pylist() if r["account_id"] in levers and r["mrr"]]
        hits = sum(r["recommended_lever"] in levers[r["account_id"]] for r in rows)
        print(f"recommended lever among the simulator's true levers: {hits} of {len(rows)} expanded accounts "
              f"({hits / max(len(rows), 1):.0%})")


if __name__ == "__main__":
    main()
