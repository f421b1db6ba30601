"""The propensity models and the backtest's ranking metrics."""

from __future__ import annotations

import math

import lightgbm
import numpy as np
import pyarrow as pa
import pytest
from joblib import cpu_count
from threadpoolctl import threadpool_limits

from upcurve.errors import UpcurveError
from upcurve.scoring.backtest import ranking_metrics
from upcurve.scoring.models import FEATURES, PropensityModel, feature_matrix, tree_threads


def test_ranking_metrics_by_hand() -> None:
    """Positives score 0.9 and 0.7, negatives 0.8 and 0.1: 3 of the 4 positive-negative pairs are ordered right."""
    m = ranking_metrics([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], top_share=0.25)
    assert m["auc"] == pytest.approx(0.75)
    assert m["precision_at_k"] == 1.0 and m["lift_top_decile"] == pytest.approx(2.0)
    assert m["brier"] == pytest.approx((0.01 + 0.64 + 0.09 + 0.01) / 4)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.7, 0.9])))
    rule = ranking_metrics([1, 0, 1, 0], [90, 80, 80, 10], probabilities=False)
    assert rule["auc"] == pytest.approx(0.875) and math.isnan(rule["brier"])  # a tie counts one half
    assert math.isnan(ranking_metrics([1, 1], [0.2, 0.3])["auc"])


def _data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[rng.random((n, 4)) < 0.1] = np.nan  # empty signals are part of life
    logit = 2.5 * np.nan_to_num(X[:, 0]) - 1.5 * np.nan_to_num(X[:, 2])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_models_learn_a_signal_and_are_deterministic(kind: str) -> None:
    X, y = _data()
    model = PropensityModel(kind=kind, random_state=3).fit(X[:400], y[:400])
    p = model.predict_proba(X[400:])
    assert ((p >= 0) & (p <= 1)).all()
    assert ranking_metrics(y[400:], p)["auc"] > 0.8
    again = PropensityModel(kind=kind, random_state=3).fit(X[:400], y[:400]).predict_proba(X[400:])
    assert np.array_equal(p, again)


def test_model_errors_say_what_to_do() -> None:
    X, y = _data(50)
    with pytest.raises(UpcurveError, match="call fit"):
        PropensityModel().predict_proba(X)
    with pytest.raises(UpcurveError, match="one class"):
        PropensityModel().fit(X, np.zeros(50))
    with pytest.raises(UpcurveError, match="unknown model kind"):
        PropensityModel(kind="forest").fit(X, y)


def test_feature_matrix_turns_flags_and_outcomes_into_numbers() -> None:
    columns = {name: pa.array([None, None], pa.float64()) for name in FEATURES if name != "outcome_level"}
    columns["flag_seat_saturation"] = pa.array([True, None])
    columns["outcome_status"] = pa.array(["exceeded", None])
    X = feature_matrix(pa.table(columns))
    assert X.shape == (2, len(FEATURES))
    assert X[0, FEATURES.index("flag_seat_saturation")] == 1.0
    assert X[0, FEATURES.index("outcome_level")] == 2.0 and np.isnan(X[1, FEATURES.index("outcome_level")])


def test_calibration_table_by_hand() -> None:
    from upcurve.scoring import calibration_table

    two_cutoffs = [(np.array([0.9, 0.1]), np.array([1, 0])), (np.array([0.2, 0.8]), np.array([0, 0]))]
    calib = {("lightgbm", "churn"): two_cutoffs}
    rows = calibration_table(calib, bins=2).to_pylist()
    assert [(r["bin"], r["rows"]) for r in rows] == [(1, 2), (2, 2)]
    assert rows[0]["mean_predicted"] == pytest.approx(0.15) and rows[0]["observed_rate"] == 0.0
    assert rows[1]["mean_predicted"] == pytest.approx(0.85) and rows[1]["observed_rate"] == 0.5


def test_the_trees_learn_with_no_more_threads_than_openmp_allows() -> None:
    """LightGBM's scikit-learn classes pick their own thread count; upcurve keeps it within OpenMP's limit (a
    ``threadpool_limits`` block here, ``OMP_NUM_THREADS`` for a process) and the machine's physical cores. (LightGBM is
    imported at the top, so its OpenMP runtime is loaded before the first limit is read, as in a fit.)"""
    X, y = _data()
    with threadpool_limits(limits=1, user_api="openmp"):
        assert tree_threads() == 1
        alone = PropensityModel(n_estimators=20).fit(X, y).booster_
    assert isinstance(alone, lightgbm.Booster) and alone.params["num_threads"] == 1
    assert 1 <= tree_threads() <= cpu_count(only_physical_cores=True)
    # and the same trees whatever the thread count (the parameters written after them name the count)
    shared = PropensityModel(n_estimators=20).fit(X, y).booster_
    assert shared.params["num_threads"] == tree_threads()
    assert shared.model_to_string().split("parameters:")[0] == alone.model_to_string().split("parameters:")[0]


def test_predictions_and_reasons_keep_within_openmps_limit_too() -> None:
    """LightGBM's predictions take OpenMP's default (every CPU the process may run on, more than a container's share)
    unless told: each of the model's calls names the threads, and the values do not depend on them."""
    X, y = _data()
    model = PropensityModel(n_estimators=20).fit(X, y)
    asked: list[object] = []
    predict = model.booster_.predict

    def recorded(*args: object, **kwargs: object) -> object:  # the real booster's calls, with the threads asked for
        asked.append(kwargs.get("num_threads"))
        return predict(*args, **kwargs)

    model.booster_.predict = recorded
    free = model.log_odds(X), model.contributions(X)
    assert asked and set(asked) == {tree_threads()}
    asked.clear()
    with threadpool_limits(limits=1, user_api="openmp"):
        limited = model.log_odds(X), model.contributions(X)
    assert asked and set(asked) == {1}
    assert np.array_equal(free[0], limited[0]) and np.array_equal(free[1], limited[1])
