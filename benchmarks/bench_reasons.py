"""Benchmark: explaining every paying account's probabilities, by cell of each tree against LightGBM's single call.

Simulates a company's billing (--accounts accounts × --months months), runs it once (learning the models), keeps
the feature matrix each LightGBM model explained while scoring, then explains it again both ways, each timed:
``upcurve.scoring.treeshap.tree_contributions`` (once per cell of each tree) and LightGBM's ``pred_contrib`` over
every row (the reference, and what upcurve did before). Prints, for each model in the order scoring explains them
(expansion, then churn), seconds, rows per second and how far apart the values are; then the same rows' reasons in
words from those values and the model card's calibration, as scoring puts them (``probability_contributions``,
then ``top_reasons``: the three largest of each row, each put in words); and peak RSS.

    python benchmarks/bench_reasons.py [--accounts 100000] [--months 36]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from upcurve.scoring import TARGETS, models
from upcurve.scoring.reasons import probability_contributions, top_reasons
from upcurve.scoring.treeshap import tree_contributions
from upcurve.simulate import BILLING_TABLES, simulate_tables, write_folder
from upcurve.usecases import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args()
    explained: list[tuple[Any, np.ndarray]] = []
    original = models.PropensityModel.contributions

    def keep(self: models.PropensityModel, X: np.ndarray) -> np.ndarray:
        if self.kind == "lightgbm":
            explained.append((self.booster_, X.copy()))
        return original(self, X)

    models.PropensityModel.contributions = keep
    with tempfile.TemporaryDirectory() as tmp:
        tables = simulate_tables(args.accounts, args.months, seed=1)
        data = write_folder({k: v for k, v in tables.items() if k in BILLING_TABLES}, Path(tmp) / "data", "parquet")
        started = time.perf_counter()
        result = run(data, None)
        print(f"{args.accounts:,} accounts × {args.months} months: run in {time.perf_counter() - started:.1f} s")
    models.PropensityModel.contributions = original
    card = result.model_card or {}
    # the targets LightGBM scored, in the order scoring explains them: each one's calibration turns its values to points
    targets = [t for t in TARGETS if card.get("targets", {}).get(t, {}).get("model") == "lightgbm"]
    print(f"{'model':<9} {'rows':>8} {'trees':>6} {'by cell':>9} {'rows/s':>10} {'LightGBM':>9} {'rows/s':>10} "
          f"{'faster':>7} {'largest difference':>19}")
    explanations = []
    for target, (booster, X) in zip(targets, explained, strict=True):
        t0 = time.perf_counter()
        by_cell = tree_contributions(booster, X)
        t1 = time.perf_counter()
        reference = booster.predict(X, pred_contrib=True)
        t2 = time.perf_counter()
        rows = len(X)
        print(f"{target:<9} {rows:>8,} {booster.num_trees():>6} {t1 - t0:>8.2f}s {rows / (t1 - t0):>10,.0f} "
              f"{t2 - t1:>8.2f}s {rows / (t2 - t1):>10,.0f} {(t2 - t1) / (t1 - t0):>6.1f}× "
              f"{float(np.abs(by_cell - reference).max()):>19.1e}")
        explanations.append((target, X, by_cell))
    # the same rows' reasons in words, from the values just computed, as scoring puts them
    print(f"{'model':<9} {'rows':>8} {'points':>9} {'in words':>9} {'rows/s':>10}")
    for target, X, contrib in explanations:
        calibration = card["targets"][target]["calibration"]
        t0 = time.perf_counter()
        points, _ = probability_contributions(contrib, calibration["a"], calibration["b"])
        t1 = time.perf_counter()
        top_reasons(card["features"], X, points, currency=result.policy.reporting_currency,
                    categories=card["categories"])
        t2 = time.perf_counter()
        print(f"{target:<9} {len(X):>8,} {t1 - t0:>8.2f}s {t2 - t1:>8.2f}s {len(X) / (t2 - t0):>10,.0f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
