"""TreeSHAP once per cell of each tree gives LightGBM's own values, for any data a model meets."""

from __future__ import annotations

from typing import Any

import lightgbm
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upcurve.scoring.treeshap import tree_contributions

#: values LightGBM decides by: zero, the numbers on either side of its zero threshold (1e-35 as a float), negatives,
#: missing, the largest numbers and infinities
_ZERO = float(np.float32(1e-35))
_EDGES = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, _ZERO, -_ZERO, np.nextafter(_ZERO, 1), 2e-35, -1.0,
                   np.nan, 1e300, -1e300, 1e301, -1e301, np.inf, -np.inf])


def _column(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    if kind == "continuous":
        values = rng.normal(size=n)
    elif kind == "counts":  # few distinct values: the cells that make the grouping pay
        values = rng.integers(0, 5, n).astype(float)
    elif kind == "edges":
        values = rng.choice(_EDGES, n)
    else:  # category codes as a model meets them: unseen, negative, fractional, missing
        values = rng.choice([0.0, 1.0, 2.0, 3.0, 2.5, -1.0, 7.0, np.nan], n, p=[.2, .2, .2, .1, .1, .05, .05, .1])
    values[rng.random(n) < 0.1] = np.nan
    return values


def _thresholds(node: dict[str, Any]) -> list[tuple[int, float]]:
    if "split_feature" not in node:
        return []
    here = [] if node["decision_type"] == "==" else [(node["split_feature"], float(node["threshold"]))]
    return here + _thresholds(node["left_child"]) + _thresholds(node["right_child"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(st.sampled_from(["continuous", "counts", "edges", "category"]), min_size=1, max_size=5),
    seed=st.integers(0, 2**32 - 1),
    trees=st.integers(1, 30),
    leaves=st.integers(2, 31),
    zero_as_missing=st.booleans(),
    use_missing=st.booleans(),
    regression=st.booleans(),
)
def test_values_are_lightgbms_own(kinds: list[str], seed: int, trees: int, leaves: int, zero_as_missing: bool,
                                  use_missing: bool, regression: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    X = np.column_stack([_column(rng, n, kind) for kind in kinds])
    signal = np.clip(np.nan_to_num(X, nan=0.0), -3.0, 3.0).sum(axis=1)  # outcomes of a size a model meets
    y = signal + rng.normal(size=n) if regression else (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(int)
    y[:2] = [0, 1]  # both classes, whatever the draw
    params = {"objective": "regression" if regression else "binary", "num_leaves": leaves, "min_data_in_leaf": 5,
              "min_data_per_group": 5, "cat_smooth": 1.0, "zero_as_missing": zero_as_missing,
              "use_missing": use_missing, "verbose": -1, "seed": seed % 1000, "deterministic": True}
    categorical = [i for i, kind in enumerate(kinds) if kind == "category"]
    booster = lightgbm.train(params, lightgbm.Dataset(X, y, categorical_feature=categorical or "auto"),
                             num_boost_round=trees)
    # scored on other rows, and on each threshold exactly and the floats on either side of it
    scored = [np.column_stack([_column(rng, 300, kind) for kind in kinds])]
    for tree in booster.dump_model()["tree_info"]:
        for feature, threshold in _thresholds(tree["tree_structure"]):
            at = np.tile(scored[0][:3], (3, 1))
            at[:, feature] = np.repeat([np.nextafter(threshold, -np.inf), threshold,
                                        np.nextafter(threshold, np.inf)], 3)
            scored.append(at)
    rows = np.vstack(scored)
    expected = booster.predict(rows, pred_contrib=True)
    got = tree_contributions(booster, rows, cells_from=0)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.sum(axis=1), booster.predict(rows, raw_score=True), rtol=0, atol=1e-9)


class _Counting:
    """A LightGBM booster that counts the rows it is asked to explain."""

    def __init__(self, booster: lightgbm.Booster) -> None:
        self.booster, self.explained = booster, 0

    def dump_model(self) -> dict[str, Any]:
        return self.booster.dump_model()

    def num_model_per_iteration(self) -> int:
        return self.booster.num_model_per_iteration()

    def predict(self, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        self.explained += len(X)
        return self.booster.predict(X, **kwargs)


def test_each_tree_explains_one_row_per_cell() -> None:
    """Two features of 4 and 3 values (and missing): at most 5 × 4 = 20 cells in any tree, whatever its splits."""
    rng = np.random.default_rng(1)
    n = 20_000
    X = np.column_stack([rng.integers(0, 4, n), rng.integers(0, 3, n)]).astype(float)
    X[rng.random(n) < 0.05, 0] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(-(X[:, 0] - 1.5 + X[:, 1])))).astype(int)
    booster = lightgbm.train({"objective": "binary", "num_leaves": 15, "verbose": -1}, lightgbm.Dataset(X, y),
                             num_boost_round=50)
    counting = _Counting(booster)
    got = tree_contributions(counting, X, cells_from=0)
    np.testing.assert_allclose(got, booster.predict(X, pred_contrib=True), rtol=0, atol=1e-9)
    assert counting.explained <= 50 * 20  # LightGBM alone explains 50 trees × 20,000 rows


def test_a_booster_of_many_classes_is_explained_by_lightgbm() -> None:
    rng = np.random.default_rng(2)
    X = rng.integers(0, 3, (3_000, 2)).astype(float)
    booster = lightgbm.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                             lightgbm.Dataset(X, rng.integers(0, 3, 3_000)), num_boost_round=5)
    np.testing.assert_array_equal(tree_contributions(booster, X, cells_from=0), booster.predict(X, pred_contrib=True))


def test_no_rows_give_no_values() -> None:
    X = np.random.default_rng(0).normal(size=(100, 3))
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 5},
                             lightgbm.Dataset(X, (X[:, 0] > 0).astype(int)), num_boost_round=3)
    assert tree_contributions(booster, np.empty((0, 3)), cells_from=0).shape == (0, 4)
