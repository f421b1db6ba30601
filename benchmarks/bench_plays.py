"""Benchmark: a plays run over a large book of accounts, kept in a workspace.

Builds a workspace holding two runs of ``--accounts`` accounts (default 100,000) whose signals are drawn at random
so that each default trigger matches a realistic share of them (a few percent each), then times, each in its own
process (so peak RSS is the step's own):

1. ``plays run`` on the first run: every action created, its steps run and recorded, in one transaction;
2. ``plays run`` on the first run again: nothing new (every key already open): the cost of dedupe;
3. ``plays run`` on the second run, a month later: actions updated, closed, steps advanced, new ones opened.

    python benchmarks/bench_plays.py [--accounts 100000] [--workspace /tmp/plays-bench]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa

STEP = """
import json, resource, sys, time
from upcurve.workspace import Store
from upcurve.usecases import plays_run
store = Store.open(sys.argv[1], create=False)
started = time.perf_counter()
plan = plays_run(store, run_id=sys.argv[2])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "counts": plan.counts(),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def accounts(n: int, rng: np.random.Generator) -> pa.Table:
    ids = [f"A{i:07d}" for i in range(n)]
    return pa.table({
        "account_id": ids, "name": [f"Customer {i}" for i in range(n)],
        "owner": [f"csm_{i % 40:02d}" for i in range(n)],
        "usage_share_used": rng.beta(2, 5, n), "usage_this_month": rng.integers(0, 100_000, n).astype(float),
        "usage_limit": np.full(n, 100_000.0), "usage_metric": ["api_calls"] * n,
        "features_first_used_7d": rng.poisson(0.4, n), "new_active_30d": rng.poisson(1.2, n),
        "active_users": rng.integers(1, 200, n), "purchased_seats": rng.integers(1, 200, n),
        "outcome_status": rng.choice(["exceeded", "on_track", "behind"], n, p=[0.05, 0.6, 0.35]),
        "days_to_renewal": rng.integers(0, 366, n), "churn_risk": rng.beta(1, 12, n),
        "health_score": rng.uniform(0, 100, n), "health_tier": rng.choice(["Nurture", "At Risk"], n),
        "recommended_lever": rng.choice(["seat", "tier", "usage"], n),
        "flag_premium_gap": rng.random(n) < 0.03, "premium_gap_features": rng.integers(0, 4, n),
        "tier_headroom": rng.integers(0, 3, n), "tenure_days": rng.integers(0, 1500, n),
        "nps_12m": rng.uniform(-100, 100, n), "products_unowned": rng.integers(0, 3, n),
    })


def movements(n: int, rng: np.random.Generator, month: str) -> pa.Table:
    chosen = rng.choice(n, n // 20, replace=False)
    return pa.table({"month": [month] * len(chosen), "account_id": [f"A{i:07d}" for i in chosen],
                     "type": ["expansion"] * len(chosen), "source": rng.choice(["seat", "tier", "usage"], len(chosen)),
                     "amount": pa.array([Decimal("25.00")] * len(chosen), pa.decimal128(20, 2))})


def build(where: Path, n: int) -> list[str]:
    from upcurve.workspace import Store

    rng = np.random.default_rng(5)
    store = Store.open(where)
    runs = []
    for as_of, month in ((dt.date(2025, 5, 31), "2025-05"), (dt.date(2025, 6, 30), "2025-06")):
        worklist = pa.table({"account_id": [f"A{i:07d}" for i in range(0, 400)], "rank": list(range(1, 401)),
                             "motion": ["expand"] * 400, "suggested_play": ["Seat call"] * 400,
                             "reasons": ["seat saturation 96%"] * 400})
        record = store.save_run(as_of=as_of, source="bench", fingerprint=month, settings={}, notes=[],
                                tables={"accounts": accounts(n, rng), "worklist": worklist,
                                        "movements": movements(n, rng, month)},
                                started_at=dt.datetime.combine(as_of, dt.time(6)))
        runs.append(record.run_id)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--workspace", type=Path, default=None)
    args = parser.parse_args()
    where = args.workspace or Path(tempfile.mkdtemp(prefix="upcurve-plays-bench-")) / "ws"
    started = time.perf_counter()
    first, second = build(where, args.accounts)
    print(f"built a workspace of two runs × {args.accounts:,} accounts in {time.perf_counter() - started:.1f} s "
          f"({where})")
    print(f"{'step':<52} {'seconds':>8} {'accounts/s':>11} {'peak RSS':>10}  what it did")
    for label, run_id in (("plays run (first: creates every action)", first),
                          ("plays run on the same run again (dedupe only)", first),
                          ("plays run a month later (update, close, advance)", second)):
        done = subprocess.run([sys.executable, "-c", STEP, str(where), run_id], capture_output=True, text=True)
        if done.returncode:
            sys.exit(done.stderr)
        found = json.loads(done.stdout.strip().splitlines()[-1])
        rate = args.accounts / found["seconds"]
        counts = ", ".join(f"{v:,} {k}" for k, v in found["counts"].items() if v)
        print(f"{label:<52} {found['seconds']:8.2f} {rate:>11,.0f} {found['peak_mb']:8,.0f} MB  {counts}")
    print(f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB)")


if __name__ == "__main__":
    main()
