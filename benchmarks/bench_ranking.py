"""Benchmark: how close the worklist's ranking comes to the best possible one, on companies that work differently.

For each company (a simulator profile and seed, with all its data or its billing data only) the simulator also
writes each paying account's true odds of expanding and churning at the backtest's cutoffs (the oracle,
``truth/oracle.parquet``); ``upcurve backtest --oracle`` then replays the cutoffs and measures every model on the
same accounts and outcomes. Printed per company, the mean over the cutoffs:

- expansion: the model's AUC (``model: auto``: LightGBM or the logistic regression per outcome, as upcurve learns
  by default), the oracle's, the model's share of it (goal ≥ 90%), its top-decile lift (goal ≥ 3) beside the
  oracle's own (the best lift there can be), the health score's AUC and the model's margin over it (goal ≥ 0.10);
- the recommended lever among the true levers of the accounts that expanded (goal ≥ 85%): the levers the simulator
  recorded behind each expansion in the window (``truth/expansions``), beside the oracle's lever (the lever that
  moved in most of the futures where the account expanded) measured the same way: the best there can be;
- churn: the model's AUC and its share of the oracle's;
- how often each outcome was learned by the logistic regression rather than LightGBM (of the cutoffs).

    python benchmarks/bench_ranking.py [--accounts 2000] [--months 30] [--cutoffs 4] [--runs 100]
    python benchmarks/bench_ranking.py --company mid_market:11 --company plg:3:billing
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from upcurve.simulate import BILLING_TABLES

#: Each company: profile, seed, and whether only its billing tables are kept.
COMPANIES = ["mid_market:11", "plg:12", "enterprise:13", "annual_contracts:14", "usage_led:15", "seasonal_smb:16",
             "mid_market:17:billing"]
GOALS = {"share": 0.90, "lift": 3.0, "margin": 0.10, "lever": 0.85}
#: The model measured: what upcurve learns with its default settings.
MODEL = "auto"


def logistic_share(scored: pa.Table, target: str) -> str:
    """At how many cutoffs ``auto`` learned ``target`` with the logistic regression, as the backtest recorded."""
    kinds = dict(zip(scored["cutoff"].to_pylist(), scored[f"{target}_scored_by"].to_pylist(), strict=True))
    return f"{sum(kind == 'logistic' for kind in kinds.values())}/{len(kinds)}"


def keep_billing_only(folder: Path) -> None:
    """Remove every table a billing system does not hold (product events, users, usage, the CRM's)."""
    for path in folder.iterdir():
        if path.is_file() and path.suffix in (".parquet", ".csv") and path.stem not in BILLING_TABLES:
            path.unlink()


def lever_among_true(accounts: list[dict], truth: Path, horizon: int) -> tuple[float, float]:
    """The share of expanded accounts (at the cutoffs) whose recommended lever is one the simulator recorded behind
    one of their expansions within the window; and the same share for the oracle's lever (the lever likeliest to
    move in the futures where the account expands: the best any recommendation can do)."""
    from upcurve.revenue import month_index, month_label

    recorded = pq.read_table(truth / "expansions.parquet").to_pylist()
    by_account: dict[str, set[tuple[str, str]]] = {}
    for r in recorded:
        by_account.setdefault(r["account_id"], set()).add((r["month"], r["lever"]))
    oracle = {(r["account_id"], r["month"]): r["lever"]
              for r in pq.read_table(truth / "oracle.parquet", columns=["account_id", "month", "lever"]).to_pylist()}
    hits = best = total = 0
    for a in accounts:
        if not a["label_expansion"] or a["recommended_lever"] is None:
            continue
        index = month_index(a["cutoff"])
        window = {month_label(index + k) for k in range(1, horizon + 1)}
        levers = {lever for month, lever in by_account.get(a["account_id"], ()) if month in window}
        if levers:
            total += 1
            hits += a["recommended_lever"] in levers
            best += oracle.get((a["account_id"], month_label(index))) in levers
    return (hits / total, best / total) if total else (float("nan"), float("nan"))


def measure(company: str, accounts: int, months: int, cutoffs: int, runs: int, home: Path) -> dict[str, Any]:
    from upcurve.simulate import simulate_company
    from upcurve.usecases import backtest

    profile, seed, *rest = company.split(":")
    folder = home / company.replace(":", "-")
    horizon = 3
    start = time.perf_counter()
    simulate_company(folder, accounts=accounts, months=months, seed=int(seed), profile=profile,
                     oracle_months=horizon * (cutoffs - 1) + 1, oracle_runs=runs)
    simulated = time.perf_counter() - start
    if rest and rest[0] == "billing":
        keep_billing_only(folder)
    start = time.perf_counter()
    result = backtest(folder, cutoffs=cutoffs, oracle=folder / "truth" / "oracle.parquet")
    replayed = time.perf_counter() - start
    rows = result.tables["backtest_metrics"].to_pylist()

    def mean(model: str, target: str, name: str) -> float:
        values = [r[name] for r in rows if r["model"] == model and r["target"] == target and r[name] is not None]
        return statistics.fmean(values) if values else float("nan")

    scored = result.tables["backtest_accounts"]
    scored = scored.filter(pc.is_valid(scored["label_expansion"]))
    return {
        "auc": mean(MODEL, "expansion", "auc"), "oracle": mean("oracle", "expansion", "auc"),
        "share": mean(MODEL, "expansion", "share_of_oracle"), "lift": mean(MODEL, "expansion", "lift_top_decile"),
        "oracle_lift": mean("oracle", "expansion", "lift_top_decile"),
        "health": mean("health_score", "expansion", "auc"),
        **dict(zip(("lever", "oracle_lever"), lever_among_true(scored.to_pylist(), folder / "truth", horizon),
                   strict=True)),
        "churn": mean(MODEL, "churn", "auc"), "churn_share": mean(MODEL, "churn", "share_of_oracle"),
        "logistic": {t: logistic_share(result.tables["backtest_accounts"], t) for t in ("expansion", "churn")},
        "simulated_s": simulated, "backtest_s": replayed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--months", type=int, default=30)
    parser.add_argument("--cutoffs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=100, help="futures re-simulated per month end for the oracle")
    parser.add_argument("--company", action="append", help="profile:seed[:billing] (repeatable)")
    parser.add_argument("--keep", type=Path, help="keep the simulated companies in this folder")
    args = parser.parse_args()
    home = args.keep or Path(tempfile.mkdtemp(prefix="bench-ranking-"))
    companies = args.company or COMPANIES
    print(f"{args.accounts:,} accounts × {args.months} months each, {args.cutoffs} cutoffs, oracle of {args.runs} "
          f"futures; expansion AUC (model {MODEL}, oracle, share), top-decile lift (model, oracle), health score AUC "
          "and the margin over it, lever among the true levers (model, oracle), churn AUC and share, cutoffs "
          "learned by the "
          "logistic regression (expansion, churn)")
    header = (f"{'company':24} {'AUC':>6} {'oracle':>7} {'share':>6} {'lift':>5} {'o.lift':>6} {'health':>7} "
              f"{'margin':>7} {'lever':>6} {'o.lev':>6} {'churn':>6} {'share':>6} {'logit e/c':>9} {'sim s':>6} "
              f"{'bt s':>6}")
    print(header)
    missed = []
    try:
        for company in companies:
            r = measure(company, args.accounts, args.months, args.cutoffs, args.runs, home)
            margin = r["auc"] - r["health"]
            chose = f"{r['logistic']['expansion']} {r['logistic']['churn']}"
            print(f"{company:24} {r['auc']:6.3f} {r['oracle']:7.3f} {r['share']:6.1%} {r['lift']:5.2f} "
                  f"{r['oracle_lift']:6.2f} {r['health']:7.3f} {margin:+7.3f} {r['lever']:6.1%} "
                  f"{r['oracle_lever']:6.1%} {r['churn']:6.3f} {r['churn_share']:6.1%} {chose:>9} "
                  f"{r['simulated_s']:6.0f} {r['backtest_s']:6.0f}", flush=True)
            for name, value in (("share", r["share"]), ("lift", r["lift"]), ("margin", margin), ("lever", r["lever"])):
                if not value >= GOALS[name]:
                    missed.append(f"{company}: {name} {value:.3f} (goal {GOALS[name]})")
    finally:
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)
    print("every company met every goal" if not missed else "missed:\n  " + "\n  ".join(missed))


if __name__ == "__main__":
    main()
