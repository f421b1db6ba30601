"""Replaying history: train on earlier snapshots, score later ones, and measure how well the scores ranked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["calibration_table", "ranking_metrics"]


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged): the chance a random positive scores above a random negative."""
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return math.nan
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def ranking_metrics(y: Sequence[int] | np.ndarray, score: Sequence[float] | np.ndarray, *,
                    probabilities: bool = True, top_share: float = 0.1) -> dict[str, float]:
    """How well ``score`` ranks the outcomes ``y``.

    Formula
    -------
    ``auc``: ROC AUC. ``log_loss`` and ``brier``: −mean(y·ln p + (1−y)·ln(1−p)) and mean((p − y)²), for
    probabilities only (NaN for a rule score). ``precision_at_k``: the outcome rate among the top ``top_share`` of
    scores (k = at least 1 row); ``lift_top_decile``: that rate ÷ the overall rate.

    Edge cases
    ----------
    With one class only, AUC is NaN; probabilities are clipped to [1e-6, 1 − 1e-6] for the log loss.
    """
    y = np.asarray(y, dtype=int)
    s = np.asarray(score, dtype=float)
    s = np.where(np.isfinite(s), s, np.nanmin(s[np.isfinite(s)]) - 1 if np.isfinite(s).any() else 0.0)
    k = max(1, round(len(y) * top_share))
    top = np.argsort(-s, kind="mergesort")[:k]
    base = y.mean() if len(y) else math.nan
    precision = float(y[top].mean()) if len(y) else math.nan
    out = {"auc": _auc(y, s), "precision_at_k": precision, "lift_top_decile": precision / base if base else math.nan,
           "base_rate": float(base), "rows": float(len(y))}
    if probabilities:
        p = np.clip(s, 1e-6, 1 - 1e-6)
        out["log_loss"] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        out["brier"] = float(np.mean((s - y) ** 2))
    else:
        out["log_loss"] = math.nan
        out["brier"] = math.nan
    return out


def calibration_table(calib: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]], bins: int = 10) -> pa.Table:
    """Predicted against observed rates by bin (deciles by default) of the predicted probability.

    ``calib`` maps (model, target) to the (probabilities, outcomes) of each cutoff; the cutoffs are pooled.
    """
    columns = ["model", "target", "bin", "rows", "mean_predicted", "observed_rate"]
    rows: list[dict[str, Any]] = []
    for (model, target), parts in sorted(calib.items()):
        p = np.concatenate([a for a, _ in parts])
        y = np.concatenate([b for _, b in parts])
        order = np.argsort(p, kind="mergesort")
        for b, chunk in enumerate(np.array_split(order, bins), start=1):
            if len(chunk):
                rows.append({"model": model, "target": target, "bin": b, "rows": len(chunk),
                             "mean_predicted": float(p[chunk].mean()), "observed_rate": float(y[chunk].mean())})
    return pa.table({c: [r[c] for r in rows] for c in columns})
