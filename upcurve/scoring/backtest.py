"""Replaying history: train on earlier snapshots, score later ones, and measure how well the scores ranked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["HEADLINE_MODELS", "auc_difference", "backtest_sentence", "calibration_table", "headline_model",
           "model_in_words", "ranking_metrics"]

_OUTCOME = {"expansion": "expanded", "churn": "churned"}


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


def auc_difference(y: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """How much better ``second`` ranks the outcomes ``y`` than ``first`` does on the same rows, and the standard
    error of that difference: DeLong's paired test (DeLong, DeLong & Clarke-Pearson 1988, in Sun & Xu's 2014 form).

    Formula
    -------
    Each score's AUC from average ranks; each positive's and negative's placement values give the two AUCs'
    covariance ``S = S₁₀ / m + S₀₁ / n`` (``m`` positives, ``n`` negatives), and the difference's variance is
    ``S[0,0] + S[1,1] − 2 S[0,1]``. Ties count half, as in the AUC. With no positive or no negative: ``(nan, nan)``.
    """
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=bool)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return math.nan, math.nan
    aucs, placed_positive, placed_negative = [], [], []
    for score in (np.asarray(first, dtype=float), np.asarray(second, dtype=float)):
        pos, neg = score[y], score[~y]
        together = rankdata(np.concatenate([pos, neg]))
        within_pos, within_neg = rankdata(pos), rankdata(neg)
        aucs.append(float(together[:m].sum() / (m * n) - (m + 1) / (2 * n)))
        placed_positive.append((together[:m] - within_pos) / n)
        placed_negative.append(1.0 - (together[m:] - within_neg) / m)
    covariance = np.cov(np.vstack(placed_positive)) / m + np.cov(np.vstack(placed_negative)) / n
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    return aucs[1] - aucs[0], math.sqrt(max(variance, 0.0))


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


#: The models a backtest speaks for, first found first: the one ``model: auto`` chooses, then the fixed kinds.
HEADLINE_MODELS = ("auto", "lightgbm", "logistic")


def headline_model(metrics: Sequence[dict[str, Any]]) -> str:
    """The model a backtest's sentence and calibration chart speak for: the first of :data:`HEADLINE_MODELS` with
    rows (a backtest run with ``model: auto`` has ``auto`` rows; one with a fixed kind, that kind's).

    >>> headline_model([{"model": "lightgbm"}, {"model": "auto"}]), headline_model([])
    ('auto', 'lightgbm')
    """
    present = {r.get("model") for r in metrics}
    return next((m for m in HEADLINE_MODELS if m in present), "lightgbm")


def backtest_sentence(metrics: Sequence[dict[str, Any]], *, target: str = "expansion", model: str | None = None,
                      horizon_days: int = 90) -> str | None:
    """The backtest in one sentence a customer-success leader reads: what the model's top decile held, against the
    average and against the health score alone. Means over the cutoffs; None when the backtest has no such row.

    Formula
    -------
    ``precision_at_k`` (the share of the top 10% that expanded) and ``lift_top_decile`` (that share ÷ the base
    rate), each the mean over the cutoffs, for ``model`` (default: :func:`headline_model`) and for the health score
    (model ``health_score``).

    Examples
    --------
    >>> rows = [{"target": "expansion", "model": "lightgbm", "precision_at_k": 0.77, "lift_top_decile": 3.6},
    ...         {"target": "expansion", "model": "health_score", "precision_at_k": 0.36, "lift_top_decile": 1.7}]
    >>> for part in backtest_sentence(rows).split("; "):
    ...     print(part)
    Of the 10% of accounts it puts first, 77% expanded within 90 days, 3.6× the average
    the health score alone finds 1.7×.
    """
    def mean(name: str, of: str) -> float | None:
        values = [float(r[name]) for r in metrics if r.get("target") == target and r.get("model") == of
                  and r.get(name) is not None and not math.isnan(float(r[name]))]
        return sum(values) / len(values) if values else None

    model = model or headline_model(metrics)
    share, lift = mean("precision_at_k", model), mean("lift_top_decile", model)
    if share is None or lift is None:
        return None
    verb = "expanded" if target == "expansion" else "churned"
    sentence = (f"Of the 10% of accounts it puts first, {share:.0%} {verb} within {horizon_days} days, "
                f"{lift:.1f}× the average")
    health = mean("lift_top_decile", "health_score")
    return sentence + (f"; the health score alone finds {health:.1f}×." if health is not None else ".")


def model_in_words(card: dict[str, Any]) -> list[str]:
    """What a model card says, one sentence per target.

    >>> card = {"horizon_months": 3, "training_window": ["2023-04", "2024-04"], "rows": 3390, "targets": {
    ...     "expansion": {"held_out": {"precision_at_k": 0.77, "lift_top_decile": 3.6, "base_rate": 0.214,
    ...                                "auc": 0.83}}}}
    >>> print(model_in_words(card)[1][:101])
    Expansion: of the 10% of accounts it puts first, 77% expanded within 3 months, 3.6× the average (21%)
    """
    months = card.get("horizon_months", 3)
    window = card.get("training_window") or []
    sentences = [f"Trained on {card.get('rows', 0):,} monthly snapshots of accounts"
                 + (f" from {window[0]} to {window[-1]}" if len(window) == 2 else "")
                 + f", to foresee what happens within {months} months; checked on later months it never saw."]
    for target, info in (card.get("targets") or {}).items():
        held = info.get("held_out") or {}
        verb = _OUTCOME.get(target, f"had {target}")
        parts = []
        precision, lift, base = held.get("precision_at_k"), held.get("lift_top_decile"), held.get("base_rate")
        if precision is not None and lift is not None and base is not None:
            parts.append(f"of the 10% of accounts it puts first, {precision:.0%} {verb} within {months} months, "
                         f"{lift:.1f}× the average ({base:.0%}).")
        auc = held.get("auc")
        if auc is not None:
            parts.append(f"Its ranking is right {auc:.0%} of the time for a pair of accounts where one {verb} "
                         f"and one did not (AUC {auc:.2f}).")
        sentences.append(f"{target.capitalize()}: " + (" ".join(parts) if parts else "not measured (too few "
                                                                                     "cases in the held-out months)."))
    for target, why in (card.get("fallback") or {}).items():
        sentences.append(f"{target.capitalize()} is scored by the rules: {why}.")
    return sentences
