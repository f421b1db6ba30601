"""The backtest: replay past month ends, train every model on what was known then, and compare with what
happened."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ibis.expr.types as ir
import numpy as np
import pyarrow as pa

from upcurve.revenue import month_end, month_label
from upcurve.scoring.backtest import calibration_table, ranking_metrics
from upcurve.scoring.config import ScoringConfig
from upcurve.scoring.scorer import AccountScorer, rule_scores
from upcurve.signals.health import HealthConfig, health_scores

__all__ = ["BACKTEST_METRICS", "Replay", "replay", "snapshot_health"]

#: The columns of ``backtest_metrics``.
BACKTEST_METRICS = ["cutoff", "target", "model", "auc", "log_loss", "brier", "precision_at_k", "lift_top_decile",
                    "base_rate", "rows", "lever_match"]


@dataclass
class Replay:
    """What a backtest measured: ``tables`` (``backtest_metrics``, ``backtest_calibration``), the cutoffs and
    notes."""

    tables: dict[str, pa.Table]
    notes: list[str]
    cutoffs: list[dt.date]


def snapshot_health(snapshots: ir.Table, accounts: ir.Table, health: HealthConfig, *, as_of: dt.date) -> ir.Table:
    """``snapshots`` with the health score of each row (account × month), with its segment's weights: the
    baseline every model is compared with."""
    keyed = snapshots.mutate(_key=snapshots.account_id + "@" + snapshots.snapshot_idx.cast("string"))
    segments = None
    if "segment" in accounts.columns:
        k = keyed.select("account_id", "_key").view()
        segment = accounts.select("account_id", "segment")
        segments = k.join(segment, "account_id").select(account_id=k._key, segment=segment.segment)
    scored = health_scores(keyed.mutate(account_id=keyed._key), health, as_of=as_of, segments=segments)
    scored = scored.select(_key="account_id", health_score="health_score")
    return keyed.left_join(scored, "_key").select(keyed, scored.health_score).drop("_key")


def replay(frame: pa.Table, config: ScoringConfig, *, cutoffs: int,
           say: Callable[[str], None] = lambda _msg: None) -> Replay:
    """Replay the last ``cutoffs`` month ends of ``frame`` (labelled snapshots with ``health_score``), each
    ``horizon`` apart so their outcome windows do not overlap.

    At each cutoff LightGBM and the logistic regression are trained on the rows whose outcomes were known then,
    and they, the cold-start rules and the health score rank that month's accounts. A model that could not be
    trained at a cutoff is reported in the notes, and the rules stand in.
    """
    cfg = config
    months = sorted(set(frame["snapshot_idx"].to_pylist()))
    picked = [m for m in months[::-1][::cfg.horizon_months]][:cutoffs][::-1]
    notes: list[str] = []
    needed = cfg.min_training_months + cfg.horizon_months + cfg.calibration_months
    rows: list[dict[str, Any]] = []
    calib: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    idx = np.asarray(frame["snapshot_idx"].to_pylist())
    if not picked or len([m for m in months if m + cfg.horizon_months <= picked[0]]) < needed:
        notes.append(f"history too short for a model: {len(months)} months of snapshots with known outcomes; "
                     f"a backtest needs {needed} months before a cutoff plus {cfg.horizon_months} to see outcomes. "
                     "Accounts are ranked by the cold-start rules until then.")
    for n, cutoff in enumerate(picked, start=1):
        say(f"replaying {month_label(cutoff)}: {n} of {len(picked)}")
        train = frame.filter(pa.array(idx + cfg.horizon_months <= cutoff))
        test = frame.filter(pa.array(idx == cutoff))
        y = {t: np.asarray(test[c].to_pylist(), dtype=int) for t, c in (("expansion", "label_expansion"),
                                                                       ("churn", "label_churn"))}
        truth_lever = test["expansion_lever"].to_pylist()
        for kind in ("lightgbm", "logistic"):
            scorer = AccountScorer(cfg.model_copy(update={"model": kind})).fit(train)
            scores = scorer.score(test)
            for target, column in (("expansion", "expansion_propensity"), ("churn", "churn_risk")):
                p = np.asarray(scores[column].to_pylist(), dtype=float)
                fell_back = target in scorer.fallback_
                m = ranking_metrics(y[target], p, probabilities=not fell_back)
                row = {"cutoff": month_end(cutoff), "target": target, "model": kind, **m}
                if target == "expansion":
                    levers = scores["recommended_lever"].to_pylist()
                    pairs = [(a, b) for a, b in zip(levers, truth_lever, strict=True) if b is not None]
                    row["lever_match"] = (sum(a == b for a, b in pairs) / len(pairs)) if pairs else math.nan
                if fell_back:  # the rules' own row below stands for it
                    why = f"{month_label(cutoff)}, {target}: no {kind} model ({scorer.fallback_[target]})"
                    if why not in notes:
                        notes.append(why)
                    continue
                calib.setdefault((kind, target), []).append((p, y[target]))
                rows.append(row)
        rules = rule_scores(test, cfg.rules)
        h = np.asarray([math.nan if v is None else v for v in test["health_score"].to_pylist()], dtype=float)
        for target, score in (("expansion", rules["expansion"]), ("churn", rules["churn"])):
            rows.append({"cutoff": month_end(cutoff), "target": target, "model": "rules",
                         **ranking_metrics(y[target], score, probabilities=False)})
        for target, score in (("expansion", h), ("churn", 100 - h)):
            rows.append({"cutoff": month_end(cutoff), "target": target, "model": "health_score",
                         **ranking_metrics(y[target], score, probabilities=False)})
    metrics = pa.table({c: [r.get(c) for r in rows] for c in BACKTEST_METRICS})
    tables = {"backtest_metrics": metrics, "backtest_calibration": calibration_table(calib)}
    return Replay(tables=tables, notes=notes, cutoffs=[month_end(c) for c in picked])
