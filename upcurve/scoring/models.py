"""Expansion propensity and churn risk models, with scikit-learn's habits: keyword-only parameters stored in
``__init__``, validation in ``fit``, ``fit`` returns ``self``, learned state ends in ``_``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from upcurve.errors import UpcurveError
from upcurve.signals import SIGNAL_COLUMNS

__all__ = ["FEATURES", "PropensityModel", "feature_matrix"]

_TEXT = {"usage_metric", "outcome_status"}
#: The model's features: every numeric or yes/no signal, and the latest outcome as an ordinal.
FEATURES: tuple[str, ...] = (*[c for c in SIGNAL_COLUMNS if c not in _TEXT], "outcome_level")
_OUTCOME = {"behind": 0.0, "on_track": 1.0, "exceeded": 2.0}


def feature_matrix(frame: pa.Table, features: Sequence[str] = FEATURES) -> np.ndarray:
    """The features of a snapshot table as a float matrix (NaN where a signal is empty; yes/no as 1/0)."""
    cols = []
    for name in features:
        if name == "outcome_level":
            status = frame["outcome_status"].to_pylist()
            values = [_OUTCOME.get(v, np.nan) if v is not None else np.nan for v in status]
            cols.append(np.asarray(values, dtype=float))
            continue
        col = frame[name]
        if pa.types.is_boolean(col.type):
            col = col.cast(pa.float64())
        cols.append(col.cast(pa.float64()).to_numpy(zero_copy_only=False))
    return np.column_stack(cols) if cols else np.empty((frame.num_rows, 0))


class PropensityModel:
    """The probability of an outcome (net expansion, churn) within the horizon, from an account's signals.

    Parameters
    ----------
    kind
        ``"lightgbm"`` (gradient-boosted trees, the default) or ``"logistic"`` (an explainable baseline: logistic
        regression on standardised features, empty values imputed with the training median).
    n_estimators, learning_rate, num_leaves, min_child_samples
        The trees' settings (``lightgbm`` only).
    random_state
        Seed: the same data and seed give the same model.
    """

    def __init__(self, *, kind: str = "lightgbm", n_estimators: int = 300, learning_rate: float = 0.03,
                 num_leaves: int = 15, min_child_samples: int = 20, random_state: int = 0) -> None:
        self.kind = kind
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> PropensityModel:
        if self.kind not in ("lightgbm", "logistic"):
            raise UpcurveError(f"unknown model kind {self.kind!r}: use lightgbm or logistic")
        y = np.asarray(y, dtype=int)
        if X.shape[0] != y.shape[0]:
            raise UpcurveError(f"{X.shape[0]} rows of features but {y.shape[0]} labels")
        if len(np.unique(y)) < 2:
            raise UpcurveError("the training labels hold one class only: there is nothing to learn from")
        self.n_features_in_ = X.shape[1]
        if self.kind == "lightgbm":
            import lightgbm

            self.model_: Any = lightgbm.LGBMClassifier(
                n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                min_child_samples=self.min_child_samples, random_state=self.random_state, verbose=-1,
                deterministic=True, force_col_wise=True, n_jobs=1,
            ).fit(X, y)
        else:
            from sklearn.linear_model import LogisticRegression

            self.median_ = np.nan_to_num(np.nanmedian(np.where(np.isfinite(X), X, np.nan), axis=0))
            Z = self._standardise(X, fit=True)
            self.model_ = LogisticRegression(max_iter=2000, C=0.5).fit(Z, y)
        return self

    def _standardise(self, X: np.ndarray, *, fit: bool = False) -> np.ndarray:
        filled = np.where(np.isfinite(X), X, self.median_)
        if fit:
            self.mean_ = filled.mean(axis=0)
            self.scale_ = np.where(filled.std(axis=0) > 0, filled.std(axis=0), 1.0)
        return (filled - self.mean_) / self.scale_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The probability of the outcome for each row."""
        if not hasattr(self, "model_"):
            raise UpcurveError("this model is not fitted yet: call fit(X, y) first")
        if self.kind == "lightgbm":
            return np.asarray(self.model_.predict_proba(X)[:, 1])
        return np.asarray(self.model_.predict_proba(self._standardise(X))[:, 1])
