"""Expansion propensity and churn risk models, with scikit-learn's habits: keyword-only parameters stored in
``__init__``, validation in ``fit``, ``fit`` returns ``self``, learned state ends in ``_``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from upcurve.errors import UpcurveError
from upcurve.scoring.treeshap import tree_contributions
from upcurve.signals import SIGNAL_COLUMNS

__all__ = ["FEATURES", "PlattCalibration", "PropensityModel", "categories_of", "column_values", "feature_matrix",
           "tree_threads"]

_TEXT = {"usage_metric", "outcome_status"}
#: Signals shown to people but not learned from: the usage of the last 30, 60 and 90 days (the models learn the
#: usage trend from this month's share and run-rate; adding these would change every trained model's features).
_SHOWN_ONLY = {"usage_30d", "usage_60d", "usage_90d"}
#: The model's features: every numeric or yes/no signal, and the latest outcome as an ordinal.
FEATURES: tuple[str, ...] = (*[c for c in SIGNAL_COLUMNS if c not in _TEXT | _SHOWN_ONLY], "outcome_level")
_OUTCOME = {"behind": 0.0, "on_track": 1.0, "exceeded": 2.0}


def tree_threads() -> int:
    """The threads LightGBM learns and predicts with: its own default for learning, the machine's physical cores
    (within a container's CPU limit), but no more than OpenMP is allowed: ``OMP_NUM_THREADS``, or a
    ``threadpoolctl.threadpool_limits`` block, as scikit-learn's own models do.

    LightGBM's scikit-learn classes set their thread count themselves and so ignore both. Two processes on two cores
    (two test workers, or two runs side by side) then ran two threads each, one spinning while the other process held
    the second core: the scorer's tests took 79–92 s instead of 48–53 s (2026-12-06, docs/benchmarks.md). Its
    predictions take OpenMP's default unless told: every CPU the process may run on, which in a container with a
    CPU quota is more than its share.

    Called where LightGBM is imported (a fit, or a booster to predict with): its OpenMP runtime is then loaded, and
    threadpoolctl reads the limits of the runtimes loaded.
    """
    from joblib import cpu_count
    from threadpoolctl import threadpool_info

    allowed = [int(info["num_threads"]) for info in threadpool_info() if info["user_api"] == "openmp"]
    return max(1, min([cpu_count(only_physical_cores=True), *allowed]))


def column_values(frame: pa.Table, name: str) -> np.ndarray:
    """A numeric or yes/no column as floats (NaN where empty, yes/no as 1/0); all NaN when the column is absent."""
    if name not in frame.column_names:
        return np.full(frame.num_rows, np.nan)
    col = frame[name]
    # money arrives as decimal(38, 6): a float is all a model needs, so the cast may round (safe=False)
    return np.asarray(col.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=float)


def categories_of(frame: pa.Table, names: Sequence[str], *, most: int = 100) -> dict[str, list[str]]:
    """The values of each text column of ``names`` (sorted), for those with at most ``most`` distinct values: the
    categories a model learns. A text column with more (an identifier, a free-text note) is no category."""
    found = {}
    for name in names:
        if name in frame.column_names and pa.types.is_string(frame.schema.field(name).type):
            values = [v for v in pc.unique(frame[name]).to_pylist() if v is not None]
            if len(values) <= most:
                found[name] = sorted(values)
    return found


def feature_matrix(frame: pa.Table, features: Sequence[str] = FEATURES,
                   categories: Mapping[str, Sequence[str]] | None = None) -> np.ndarray:
    """The features of a snapshot table as a float matrix (NaN where a signal is empty; yes/no as 1/0). A feature
    of ``categories`` is its value's position among them (NaN for a value not among them)."""
    cols = []
    for name in features:
        if categories and name in categories:
            if name not in frame.column_names:
                cols.append(np.full(frame.num_rows, np.nan))
                continue
            at = pc.index_in(frame[name], value_set=pa.array(list(categories[name]), pa.string()))
            cols.append(np.asarray(pc.cast(at, pa.float64()).to_numpy(zero_copy_only=False), dtype=float))
        elif name == "outcome_level":
            status = frame["outcome_status"].to_pylist()
            cols.append(np.asarray([_OUTCOME.get(v, np.nan) if v is not None else np.nan for v in status]))
        else:
            cols.append(column_values(frame, name))
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

    ``fit(X, y, categorical=…)``: the columns holding category codes; the trees split them as categories, the
    logistic model weighs each category seen in training as a yes/no column of its own (a code is no number to
    weigh; a category it never saw weighs nothing). Its contributions still come one per feature: a category
    feature's is the sum over its yes/no columns.
    """

    def __init__(self, *, kind: str = "lightgbm", n_estimators: int = 300, learning_rate: float = 0.03,
                 num_leaves: int = 15, min_child_samples: int = 40, random_state: int = 0) -> None:
        self.kind = kind
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray, categorical: Sequence[int] = (),
            sample_weight: np.ndarray | None = None) -> PropensityModel:
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

            model = lightgbm.LGBMClassifier(
                n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                min_child_samples=self.min_child_samples, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                reg_lambda=1.0, random_state=self.random_state, verbose=-1, deterministic=True,
                force_col_wise=True, n_jobs=tree_threads(),
            ).fit(X, y, sample_weight=sample_weight, categorical_feature=list(categorical) or "auto")
            self.booster_: Any = model.booster_
        else:
            from sklearn.linear_model import LogisticRegression

            codes = np.asarray(X, dtype=float)[:, list(categorical)]
            seen = np.nan_to_num(np.nanmax(codes, axis=0, initial=-1), nan=-1).astype(int) + 1
            self.levels_ = [(int(at), int(n)) for at, n in zip(categorical, seen, strict=True) if n > 0]
            Z = self._standardised(X, fit=True)
            fitted = LogisticRegression(max_iter=2000, C=0.5).fit(Z, y, sample_weight=sample_weight)
            self.coef_ = np.asarray(fitted.coef_[0], dtype=float)
            self.intercept_ = float(fitted.intercept_[0])
        return self

    def _expand(self, X: np.ndarray) -> np.ndarray:
        """The logistic model's columns: the features with category codes zeroed (constant, so standardised to 0
        and weighed 0), then a yes/no column per category seen in training (:attr:`levels_`)."""
        levels = getattr(self, "levels_", [])
        out = np.empty((X.shape[0], X.shape[1] + sum(n for _, n in levels)))  # one array, filled in place
        out[:, : X.shape[1]] = X
        out[:, [at for at, _ in levels]] = 0.0
        column = X.shape[1]
        for at, n in levels:
            for code in range(n):
                out[:, column] = X[:, at] == code
                column += 1
        return out

    def _folded(self, parts: np.ndarray) -> np.ndarray:
        """Per-column contributions of :meth:`_expand`'s columns, each category's yes/no columns summed back into
        its feature: one contribution per feature."""
        out = parts[:, : self.n_features_in_].copy()
        at_column = self.n_features_in_
        for at, n in getattr(self, "levels_", []):
            out[:, at] += parts[:, at_column: at_column + n].sum(axis=1)
            at_column += n
        return out

    def _standardised(self, X: np.ndarray, *, fit: bool = False) -> np.ndarray:
        """The logistic model's input: :meth:`_expand`'s columns, an empty or infinite value replaced by its
        column's training median, then each column less its training mean over its spread (a constant column's
        spread taken as 1). ``fit``: learn the medians, means and spreads from ``X`` first.

        Filled and scaled in place in the one array :meth:`_expand` makes: hundreds of thousands of rows are
        standardised many times in training, and each new array of that size costs as much as the arithmetic."""
        out = self._expand(X)
        if fit:
            self.median_ = _finite_medians(out)
        np.copyto(out, self.median_, where=~np.isfinite(out))
        if fit:
            self.mean_ = out.mean(axis=0)
        out -= self.mean_
        if fit:  # numpy's std, without the copy it makes: the root of the centred columns' mean square
            spread = np.sqrt(np.einsum("ij,ij->j", out, out) / len(out))
            self.scale_ = np.where(spread > 0, spread, 1.0)
        out /= self.scale_
        return out

    def _check(self, X: np.ndarray) -> None:
        if not hasattr(self, "n_features_in_"):
            raise UpcurveError("this model is not fitted yet: call fit(X, y) first")
        if X.shape[1] != self.n_features_in_:
            raise UpcurveError(f"the model was trained on {self.n_features_in_} features, not {X.shape[1]}")

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Each feature's signed contribution to each row's log-odds, with the base value as the last column.

        A row's contributions and the base value sum to :meth:`log_odds`: TreeSHAP values for ``lightgbm``
        (LightGBM's own; from :data:`upcurve.scoring.treeshap.CELLS_FROM` rows on, computed once per cell of each
        tree, see :func:`upcurve.scoring.treeshap.tree_contributions`), ``coefficient × standardised value`` (base: the
        intercept) for ``logistic``.
        """
        self._check(X)
        if self.kind == "lightgbm":
            return tree_contributions(self.booster_, X, threads=tree_threads())
        Z = self._standardised(X)
        return np.column_stack([self._folded(Z * self.coef_), np.full(len(Z), self.intercept_)])

    def log_odds(self, X: np.ndarray) -> np.ndarray:
        """The model's raw output: the log-odds of the outcome for each row."""
        self._check(X)
        if self.kind == "lightgbm":
            return np.asarray(self.booster_.predict(X, raw_score=True, num_threads=tree_threads()), dtype=float)
        return np.asarray(self._standardised(X) @ self.coef_ + self.intercept_, dtype=float)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The probability of the outcome for each row (before any calibration)."""
        return 1.0 / (1.0 + np.exp(-self.log_odds(X)))

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain data (trees as LightGBM's own text format), for :meth:`from_dict`."""
        self._check(np.empty((0, getattr(self, "n_features_in_", 0))))
        out: dict[str, Any] = {"kind": self.kind, "n_features_in": self.n_features_in_,
                               "random_state": self.random_state}
        if self.kind == "lightgbm":
            out["trees"] = self.booster_.model_to_string()
        else:
            out.update(coef=self.coef_.tolist(), intercept=self.intercept_, median=self.median_.tolist(),
                       mean=self.mean_.tolist(), scale=self.scale_.tolist(),
                       levels=[list(pair) for pair in getattr(self, "levels_", [])])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PropensityModel:
        model = cls(kind=data["kind"], random_state=data.get("random_state", 0))
        model.n_features_in_ = int(data["n_features_in"])
        if model.kind == "lightgbm":
            import lightgbm

            model.booster_ = lightgbm.Booster(model_str=data["trees"])
        else:
            model.coef_ = np.asarray(data["coef"], dtype=float)
            model.intercept_ = float(data["intercept"])
            model.median_ = np.asarray(data["median"], dtype=float)
            model.mean_ = np.asarray(data["mean"], dtype=float)
            model.scale_ = np.asarray(data["scale"], dtype=float)
            model.levels_ = [(int(at), int(n)) for at, n in data.get("levels") or []]
        return model


class PlattCalibration:
    """Probabilities that match observed rates: ``p = 1 / (1 + exp(−(a · log_odds + b)))``, fitted on later data.

    A logistic fit of the outcome on the model's log-odds (Platt scaling). With ``a > 0`` it is strictly
    increasing, so it never reorders accounts: ranking metrics are unchanged and only the probabilities move.

    Edge cases
    ----------
    With fewer than ``min_each`` positives or negatives in the calibration months (a rare outcome in a short
    window, or none at all) a slope cannot be learned: ``a`` stays 1 and only the level moves, ``b`` chosen so that
    the mean probability equals the observed rate with half an outcome added each way, ``(k + ½) ÷ (n + 1)`` for
    ``k`` outcomes in ``n`` rows. No positive at all then gives small probabilities in the same order, not the
    model's training rate. A fitted slope that is not positive (it would reorder accounts) is treated the same way.
    """

    def __init__(self, a: float = 1.0, b: float = 0.0, *, min_each: int = 5) -> None:
        self.a = a
        self.b = b
        self.min_each = min_each

    def fit(self, log_odds: np.ndarray, y: np.ndarray) -> PlattCalibration:
        from scipy.optimize import brentq
        from sklearn.linear_model import LogisticRegression

        raw = np.asarray(log_odds, dtype=float)
        y = np.asarray(y, dtype=int)
        if not len(y):
            return self
        positives = int(y.sum())
        if min(positives, len(y) - positives) >= self.min_each:
            fitted = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
            a, b = float(fitted.coef_[0][0]), float(fitted.intercept_[0])
            if a > 0:
                self.a, self.b = a, b
                return self
        target = (positives + 0.5) / (len(y) + 1)

        def gap(b: float) -> float:
            return float(np.mean(1 / (1 + np.exp(-(raw + b))))) - target

        # a level below every log-odds gives probabilities near 0, one above them near 1: the target is between
        self.a, self.b = 1.0, float(brentq(gap, -float(raw.max()) - 40.0, -float(raw.min()) + 40.0))
        return self

    def log_odds(self, raw: np.ndarray) -> np.ndarray:
        return self.a * np.asarray(raw, dtype=float) + self.b

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.log_odds(raw)))


def _finite_medians(X: np.ndarray) -> np.ndarray:
    """Each column's median over its finite values; 0 for a column with none (a signal no snapshot has, such as
    product usage in billing data), without numpy's warning about an all-missing column on the user's screen."""
    medians = np.zeros(X.shape[1])
    # column by column: numpy's nanmedian over a whole matrix copied it twice and took each column apart in Python
    # anyway (about three times slower on a training sample of 400,000 rows)
    for j in range(X.shape[1]):
        column = X[:, j]
        finite = column[np.isfinite(column)]
        if finite.size:
            medians[j] = np.median(finite)
    return medians
