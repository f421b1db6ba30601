"""Benchmark: how well the models rank next quarter's expansion and churn on the simulated company.

Builds monthly point-in-time snapshots, trains on the earlier 60% of snapshot months, scores the later 40%, and
prints each model's ROC AUC, log loss, Brier score, precision in the top decile and lift, beside the rule-based
health score, with the seconds each step took.

    python benchmarks/bench_scoring.py [--accounts 800] [--months 24] [--seed 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import ibis
import numpy as np

from upcurve.config import RevenuePolicy
from upcurve.contract import known_at, plan_features, read_folder, typed_tables
from upcurve.engine import hand_over
from upcurve.scoring import PropensityModel, feature_matrix, ranking_metrics, snapshot_dates, training_snapshots
from upcurve.service import compute_revenue
from upcurve.signals.health import HealthConfig, health_scores
from upcurve.simulate import simulate_company


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=800)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    first = dt.date(2023, 1, 1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        simulate_company(Path(tmp), accounts=args.accounts, months=args.months, seed=args.seed)
        idx = first.year * 12 + first.month - 1 + args.months
        as_of = dt.date(idx // 12, idx % 12 + 1, 1) - dt.timedelta(days=1)
        con = ibis.duckdb.connect()
        tables = hand_over(con, known_at(typed_tables(read_folder(Path(tmp), con)), as_of),
                           in_place=("events", "usage"))
        revenue = compute_revenue(tables, as_of=as_of, first=first, policy=RevenuePolicy())
        dates = snapshot_dates(first, as_of - dt.timedelta(days=92), warmup_months=4)
        frame = training_snapshots(tables, revenue.account_months, revenue.movements, revenue.calendar,
                                   plan_features(tables["plans"]), dates)
        frame = frame.filter(frame.label_expansion.notnull())
        # health is scored row by row: key each snapshot row uniquely, then join the score back
        keyed = frame.mutate(_key=frame.account_id + "@" + frame.snapshot_idx.cast("string"))
        health = health_scores(keyed.mutate(account_id=keyed._key), HealthConfig(), as_of=as_of)
        frame = keyed.join(health.select(_key="account_id", health_score="health_score"), "_key").drop("_key")
        data = frame.to_pyarrow()
        print(f"{data.num_rows:,} account snapshots over {len(dates)} months in {time.perf_counter() - t0:.1f} s")
    month = np.asarray(data["snapshot_idx"].to_pylist())
    cut = np.quantile(month, 0.6)
    train, test = month <= cut, month > cut
    X = feature_matrix(data)
    health = np.asarray([np.nan if v is None else v for v in data["health_score"].to_pylist()], dtype=float)
    for target, rule in (("label_expansion", health), ("label_churn", -health)):
        y = np.asarray(data[target].to_pylist(), dtype=int)
        print(f"\n{target}: {int(y[train].sum())} of {int(train.sum())} in training, "
              f"{int(y[test].sum())} of {int(test.sum())} in the test months")
        for kind in ("lightgbm", "logistic"):
            t0 = time.perf_counter()
            p = PropensityModel(kind=kind).fit(X[train], y[train]).predict_proba(X[test])
            m = ranking_metrics(y[test], p)
            print(f"  {kind:9s} AUC {m['auc']:.3f}  log loss {m['log_loss']:.3f}  Brier {m['brier']:.3f}  "
                  f"precision@10% {m['precision_at_k']:.3f}  lift {m['lift_top_decile']:.2f}  "
                  f"({time.perf_counter() - t0:.1f} s)")
        m = ranking_metrics(y[test], rule[test], probabilities=False)
        print(f"  {'health':9s} AUC {m['auc']:.3f}  precision@10% {m['precision_at_k']:.3f}  "
              f"lift {m['lift_top_decile']:.2f}")


if __name__ == "__main__":
    main()
