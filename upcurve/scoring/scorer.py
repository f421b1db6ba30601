"""The account scorer: expansion propensity, churn risk, expected expansion, the lever and the reasons, learned
together from a company's point-in-time snapshots, with the cold-start rules as its fallback.

Habits of scikit-learn: settings in ``__init__`` (a :class:`ScoringConfig`), ``fit`` returns the scorer, learned
state ends in ``_``; ``save`` and ``load`` keep a fitted scorer as plain JSON with its model card.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from upcurve import __version__
from upcurve.errors import UpcurveError
from upcurve.folders import read_verified, write_folder
from upcurve.months import month_label
from upcurve.scoring.backtest import auc_difference, ranking_metrics
from upcurve.scoring.config import LEVERS, ColdStartRules, ScoringConfig
from upcurve.scoring.context import context_columns
from upcurve.scoring.models import (
    FEATURES,
    PlattCalibration,
    PropensityModel,
    categories_of,
    column_values,
    feature_matrix,
    tree_threads,
)
from upcurve.scoring.reasons import probability_contributions, top_reasons
from upcurve.scoring.saved import parse_saved

__all__ = ["MODEL_KINDS", "SCORE_COLUMNS", "AccountScorer", "chosen_kind", "kind_from_check", "levers_moved",
           "model_kinds", "prefers_logistic", "rule_scores", "scored_by_summary"]

#: What :meth:`AccountScorer.score` returns for each account. ``expansion_scored_by`` and ``churn_scored_by`` name
#: what scored each target (the model kind, or ``rules`` where that target's model fell back); ``scored_by`` says
#: both in one word when they agree (``lightgbm``, ``rules``), else ``expansion: rules; churn: lightgbm``.
SCORE_COLUMNS = ("account_id", "scored_by", "expansion_scored_by", "churn_scored_by", "expansion_propensity",
                 "churn_risk", "expected_expansion_mrr_cents", "recommended_lever", "reasons", "churn_reasons")
TARGETS = {"expansion": "label_expansion", "churn": "label_churn"}
_CARD = "model_card.json"
_MODELS = "models.json"


def _fired(frame: pa.Table, name: str) -> np.ndarray:
    """A yes/no signal as booleans (empty: no)."""
    return column_values(frame, name) == 1


def _positive(frame: pa.Table, name: str) -> np.ndarray:
    """A count above zero (empty: no)."""
    return np.nan_to_num(column_values(frame, name)) > 0


def _team_growing(frame: pa.Table) -> np.ndarray:
    """Users invited or activated in the last 14 days."""
    return _positive(frame, "invited_14d") | _positive(frame, "new_active_14d")


def levers_moved(labelled: pa.Table) -> list[tuple[str, ...]]:
    """The levers that moved in each snapshot's window: ``expansion_levers`` where the snapshots hold it, else the
    lever of the largest expansion alone."""
    if "expansion_levers" in labelled.column_names:
        return [tuple(v.split(",")) if v else () for v in labelled["expansion_levers"].to_pylist()]
    return [(v,) if v is not None else () for v in labelled["expansion_lever"].to_pylist()]


def _lever_from_signals(frame: pa.Table) -> list[str | None]:
    """The lever the signals point to, first that applies: usage near its limit, a full team still inviting,
    features previewed beyond the plan (a higher tier while there is one, else a premium add-on), deep core use
    with other products to sell, and an account behind on its outcome with narrow adoption (services)."""
    gap = _fired(frame, "flag_premium_gap")
    behind = (pc.equal(frame["outcome_status"], "behind").fill_null(False).to_numpy(zero_copy_only=False)
              if "outcome_status" in frame.column_names else np.zeros(frame.num_rows, dtype=bool))
    narrow = np.nan_to_num(column_values(frame, "adoption_breadth"), nan=1.0) < 0.4
    conditions = [
        _fired(frame, "flag_usage_limit"),
        _fired(frame, "flag_seat_saturation") & _team_growing(frame),
        gap & _positive(frame, "tier_headroom"),
        gap,
        _fired(frame, "flag_core_heavy_no_premium") & _positive(frame, "products_unowned"),
        behind & narrow,
    ]
    chosen = np.select(conditions, ["usage", "seat", "tier", "premium", "cross_sell", "services"], default="")
    return [str(v) or None for v in chosen]


def rule_scores(frame: pa.Table, rules: ColdStartRules) -> dict[str, Any]:
    """The cold-start score of each account: the field's rules, where no model can be trained yet.

    Formula
    -------
    ``score = 1 − Π(1 − w)`` over the rules that fire (weights in :class:`ColdStartRules`), for expansion and
    for churn. The scores rank accounts; they are not probabilities. The reasons list the rules that fired.

    Returns
    -------
    ``expansion`` and ``churn`` (arrays in [0, 1]), ``expansion_reasons`` and ``churn_reasons`` (texts),
    ``lever`` (see :func:`_lever_from_signals`).
    """
    n = frame.num_rows
    expansion_rules = [
        (_fired(frame, "flag_usage_limit"), rules.usage_limit, "usage reaches the plan limit within 30 days"),
        (_fired(frame, "flag_seat_saturation") & _team_growing(frame), rules.seat_saturation_with_invites,
         "seats ≥ 80% used and the team still growing"),
        (_fired(frame, "flag_premium_gap"), rules.premium_gap, "uses features its plan lacks"),
        (_fired(frame, "flag_core_heavy_no_premium"), rules.core_heavy, "deep in core, nothing adjacent"),
    ]
    nps = column_values(frame, "nps_latest")
    churn_rules = [
        (column_values(frame, "login_trend") <= rules.falling_logins_below, rules.falling_logins, "logins falling"),
        (column_values(frame, "health_score") < rules.poor_health_below, rules.poor_health, "poor health score"),
        (nps <= 6, rules.detractor, "NPS detractor"),
        (np.nan_to_num(column_values(frame, "tickets_30d")) >= 3, rules.many_tickets, "3+ tickets in 30 days"),
    ]
    out: dict[str, Any] = {"lever": _lever_from_signals(frame)}
    for name, fired_rules in (("expansion", expansion_rules), ("churn", churn_rules)):
        keep = np.ones(n)
        texts: list[list[str]] = [[] for _ in range(n)]
        for fired, weight, text in fired_rules:
            keep *= np.where(fired, 1 - weight, 1.0)
            for i in np.flatnonzero(fired):
                texts[i].append(text)
        out[name] = 1 - keep
        out[f"{name}_reasons"] = ["; ".join(t) for t in texts]
    return out


@dataclass(frozen=True)
class HistoryChoice:
    """Which past snapshots a model learns from, and how much each counts.

    Formula
    -------
    A snapshot ``k`` months before the latest one trained on counts ``0.5 ** (k / half_life_months)`` (1 without a
    half-life) and not at all when ``k ≥ window_months``. A company whose customers behave as they did years ago
    learns from all of it; one whose churn began last year learns from last year.
    """

    window_months: int | None = None
    half_life_months: int | None = None

    def weights(self, months: np.ndarray, latest: int) -> np.ndarray:
        age = (latest - months).astype(float)
        weight = np.ones(len(months)) if self.half_life_months is None else 0.5 ** (age / self.half_life_months)
        return weight if self.window_months is None else np.where(age < self.window_months, weight, 0.0)


#: The pasts a model may learn from, simplest first (a tie keeps the simpler).
HISTORY_CHOICES = (HistoryChoice(), HistoryChoice(half_life_months=6), HistoryChoice(window_months=12))
#: The labels of the latest training months and, per kind tried, its best past's scores of them.
Checked = tuple[np.ndarray, dict[str, np.ndarray]]
#: The model kinds ``model: auto`` chooses between for each outcome, in the order a tie keeps.
MODEL_KINDS = ("lightgbm", "logistic")


def model_kinds(model: str) -> tuple[str, ...]:
    """The kinds a setting of ``model`` may learn: both of :data:`MODEL_KINDS` for ``auto``, else that one."""
    return MODEL_KINDS if model == "auto" else (model,)


def scored_by_summary(by: Mapping[str, str]) -> str:
    """What scored both targets in one word when they agree (``lightgbm``, ``rules``), else
    ``expansion: rules; churn: lightgbm``."""
    kinds = list(by.values())
    return kinds[0] if len(set(kinds)) == 1 else "; ".join(f"{t}: {k}" for t, k in by.items())


def prefers_logistic(y: np.ndarray, lightgbm: np.ndarray, logistic: np.ndarray) -> bool:
    """Whether ``model: auto`` learns an outcome with the logistic regression: when, on the calibration months
    (which neither finished model saw), its ranking beats LightGBM's by more than two standard errors of the
    difference (DeLong's paired test, :func:`~upcurve.scoring.backtest.auc_difference`). Trees are the default; a
    rare outcome's few positives in those months cannot tell two close rankings apart, and a choice made on noise
    would cost the ranking."""
    difference, error = auc_difference(y, lightgbm, logistic)
    return bool(math.isfinite(difference) and difference > 2 * error)


def kind_from_check(checked: Checked) -> str:
    """The kind learned, from the calibration months' labels and each kind's scores of them (each kind trained in
    full on its chosen past, neither having seen those months): LightGBM unless both were tried and
    :func:`prefers_logistic`; the only kind tried otherwise."""
    y, scores = checked
    if set(scores) >= set(MODEL_KINDS):
        return "logistic" if prefers_logistic(y, scores["lightgbm"], scores["logistic"]) else "lightgbm"
    return next(iter(scores))


def chosen_kind(scorers: Mapping[str, AccountScorer], target: str) -> str:
    """The kind ``model: auto`` learns for ``target``, from scorers fitted with each fixed kind on the same
    snapshots (their checks joined and decided by :func:`kind_from_check`; LightGBM when either chose nothing).
    The backtest reports ``auto`` from the fixed kinds' scores without training a third time.
    """
    lightgbm = getattr(scorers["lightgbm"], "check_scores_", {}).get(target)
    logistic = getattr(scorers["logistic"], "check_scores_", {}).get(target)
    if lightgbm is None or logistic is None:
        return MODEL_KINDS[0]
    return kind_from_check((lightgbm[0], {**lightgbm[1], **logistic[1]}))


#: At most this many snapshots train each choice while choosing.
_CHOOSING_ROWS = 100_000
#: The order training rows are taken in: engines may return rows in any order, the sample and the trees' row
#: sampling must not depend on it.
TRAINING_ORDER = [("snapshot_idx", "ascending"), ("account_id", "ascending")]


def training_sample(rows: int, config: ScoringConfig) -> pa.Array | None:
    """The positions (ascending) of the labelled snapshots a scorer learns from, among ``rows`` taken in
    :data:`TRAINING_ORDER`; None when it learns from all of them.

    Beyond ``config.max_training_rows``, a random sample of that many, seeded by ``config.random_state``: the
    same rows whether the snapshots are sampled in memory (:meth:`AccountScorer.fit`) or in the engine before they
    are read (:func:`upcurve.scoring.fit_scorer`, so that a company of a million accounts is never read whole).
    """
    if rows <= config.max_training_rows:
        return None
    rng = np.random.default_rng(config.random_state)
    return pa.array(np.sort(rng.choice(rows, config.max_training_rows, replace=False)))


def _in_training_order(snapshots: pa.Table) -> pa.Table:
    """The snapshots with known labels, in :data:`TRAINING_ORDER`. Snapshots that are all labelled and already in
    order (as the engine returns a training sample, :func:`upcurve.scoring.fit_scorer`) are returned as they are:
    at 400,000 rows, copying them filtered and then taken in order cost seconds for no change."""
    labelled = snapshots
    if labelled["label_expansion"].null_count:
        labelled = labelled.filter(pc.is_valid(labelled["label_expansion"]))
    order = pc.sort_indices(labelled, sort_keys=TRAINING_ORDER).to_numpy()
    return labelled if np.array_equal(order, np.arange(len(order))) else labelled.take(order)


class AccountScorer:
    """Learns, from labelled snapshots, to score accounts: :data:`SCORE_COLUMNS`.

    Parameters
    ----------
    config
        :class:`ScoringConfig`: the model kind, the horizon, the calibration months, the least history to train on.

    Training (``fit``) takes the snapshots of :func:`upcurve.scoring.training_snapshots` with known labels, keeps
    the latest ``calibration_months`` out of training and calibrates the probabilities on them (a time split,
    never random rows). A target whose history is too short or too small is scored by the cold-start rules, and
    ``fallback_`` says why; each account's reasons then start with ``rules:``. Each target stands on its own: one
    falling back leaves the other's model learned, saved and scoring.
    """

    def __init__(self, config: ScoringConfig | None = None) -> None:
        self.config = config or ScoringConfig()

    # -- training -----------------------------------------------------------------------------------------------
    def fit(self, snapshots: pa.Table, *, sampled_from: int | None = None) -> AccountScorer:
        """Learn from ``snapshots`` (those with known labels). ``sampled_from``: how many labelled snapshots
        ``snapshots`` were already sampled from (:func:`training_sample`), for the model card."""
        cfg = self.config
        labelled = _in_training_order(snapshots)
        snapshot_rows = sampled_from if sampled_from is not None else labelled.num_rows
        keep = training_sample(labelled.num_rows, cfg)
        if keep is not None:
            # a random, seeded sample of rows: beyond a few hundred thousand rows the models gain little
            labelled = labelled.take(keep)
        months = np.asarray(labelled["snapshot_idx"].to_numpy(zero_copy_only=False), dtype=np.int64)
        unique = np.unique(months)
        # the signals, then what each account is (its attributes and product tiers, where the snapshots hold them)
        context = context_columns(labelled.column_names)
        self.categories_: dict[str, list[str]] = categories_of(labelled, context)
        self.features_: list[str] = [*FEATURES, *[c for c in context if c in self.categories_ or not pa.types.is_string(
            labelled.schema.field(c).type)]]
        self.models_: dict[str, PropensityModel] = {}
        self.calibration_: dict[str, PlattCalibration] = {}
        self.fallback_: dict[str, str] = {}
        self.check_scores_: dict[str, Checked] = {}
        self.lever_model_: Any = None
        self.lever_classes_: list[str] = []
        self.size_model_: Any = None
        self.size_ratio_ = 0.1
        # training rows must have their whole outcome window before the calibration months begin
        needed = cfg.min_training_months + cfg.horizon_months + cfg.calibration_months
        card: dict[str, Any] = {"features": list(self.features_), "categories": self.categories_,
                                "model": cfg.model, "horizon_months": cfg.horizon_months,
                                "labelled_months": len(unique), "snapshot_rows": snapshot_rows,
                                "rows": int(labelled.num_rows), "targets": {}}
        if len(unique) < needed:
            why = (f"history too short: {len(unique)} months of snapshots with known outcomes, a model needs "
                   f"{needed} ({cfg.min_training_months} to train, {cfg.horizon_months} for their outcomes to be "
                   f"seen, {cfg.calibration_months} to calibrate)")
            self.fallback_ = {"expansion": why, "churn": why, "lever": why}
            self.card_ = {**card, "fallback": self.fallback_, **self._versions()}
            return self
        calib_from = unique[-cfg.calibration_months]
        train, calib = months + cfg.horizon_months <= calib_from, months >= calib_from
        X = feature_matrix(labelled, self.features_, self.categories_)
        card["training_window"] = [month_label(unique[0]), month_label(months[train].max())]
        card["calibration_window"] = [month_label(calib_from), month_label(unique[-1])]
        for target, column in TARGETS.items():
            y = np.asarray(labelled[column].to_pylist(), dtype=int)
            positives = int(y[train].sum())
            if positives < cfg.min_positives or positives == int(train.sum()):
                self.fallback_[target] = (f"too few {target} outcomes to learn from: {positives} in training, "
                                          f"a model needs {cfg.min_positives}")
                continue
            pasts, tried, checked = self._choose_kind_and_history(X, y, months, train)
            models, raws = {}, {}
            for kind, past in pasts.items():
                weight = past.weights(months, int(months[train].max()))
                used = train & (weight > 0)
                models[kind] = PropensityModel(kind=kind, random_state=cfg.random_state).fit(
                    X[used], y[used], categorical=self._categorical, sample_weight=weight[used])
                raws[kind] = models[kind].log_odds(X[calib])
            # the kinds are compared as they will score: the final models, on the calibration months neither saw
            if checked is not None:
                self.check_scores_[target] = (y[calib], raws)
            kind = kind_from_check((y[calib], raws))
            model, raw, choice = models[kind], raws[kind], pasts[kind]
            calibration = PlattCalibration().fit(raw, y[calib])
            self.models_[target], self.calibration_[target] = model, calibration
            # the model never saw these months; its probabilities before calibration, so the calibration's own
            # fit does not flatter the log loss and Brier score (ranking metrics are the same either way)
            held_out = ranking_metrics(y[calib], 1 / (1 + np.exp(-raw)))
            card["targets"][target] = {
                "training_rows": int(train.sum()), "training_positives": positives,
                "calibration_rows": int(calib.sum()), "calibration_positives": int(y[calib].sum()),
                "calibration": {"a": calibration.a, "b": calibration.b},
                "held_out": {k: (round(v, 4) if math.isfinite(v) else None) for k, v in held_out.items()},
                "history": {"window_months": choice.window_months, "half_life_months": choice.half_life_months,
                            "tried": tried},
                "model": kind,
            }
        self._fit_lever_and_size(labelled, X)
        card["levers"] = self.lever_classes_
        card["fallback"] = self.fallback_
        self.card_ = {**card, **self._versions()}
        return self

    def _choose_kind_and_history(self, X: np.ndarray, y: np.ndarray, months: np.ndarray, train: np.ndarray
                        ) -> tuple[dict[str, HistoryChoice], list[dict[str, Any]], Checked | None]:
        """Which model kind and which past to learn from, chosen on the latest training months.

        Each pair of a kind (:data:`MODEL_KINDS` with ``model: auto``, else the configured one) and a past
        (:data:`HISTORY_CHOICES` with ``choose_history``, else every month alike, see :class:`HistoryChoice`) is
        trained on the training months whose outcomes were known before the last ``calibration_months`` of
        training, and ranks those last months; each kind's best AUC picks its past (ties: the earlier, simpler
        one); :meth:`fit` trains each kind on its past and :func:`kind_from_check` decides between them on the
        calibration months. With too few outcomes there, the first kind learns from every month alike. Each past
        is sampled the same way for every kind, so ``auto`` chooses exactly what the two fixed kinds would score.
        Returns each kind's past, what each pair scored, and the labels of those months with each kind's best
        scores of them (None when nothing was tried)."""
        cfg = self.config
        every = HistoryChoice()
        kinds = model_kinds(cfg.model)
        histories = HISTORY_CHOICES if cfg.choose_history else (every,)
        trained_months = np.unique(months[train])
        if (len(kinds) == 1 and len(histories) == 1) or \
                len(trained_months) < cfg.calibration_months + cfg.horizon_months + 2:
            return {kinds[0]: every}, [], None
        check_from = trained_months[-cfg.calibration_months]
        inner = train & (months + cfg.horizon_months <= check_from)
        check = train & (months >= check_from)
        if min(int(y[check].sum()), int(y[inner].sum())) < cfg.min_positives // 2 or y[check].all():
            return {kinds[0]: every}, [], None
        tried: list[dict[str, Any]] = []
        best: dict[str, tuple[float, HistoryChoice, np.ndarray]] = {}  # each kind's best past, and its check scores
        for kind in kinds:
            for i, choice in enumerate(histories):
                weight = choice.weights(months, int(months[inner].max()))
                rows = np.flatnonzero(inner & (weight > 0))
                if len(rows) > _CHOOSING_ROWS:  # a seeded sample: the choice needs a ranking, not the final model
                    rng = np.random.default_rng([cfg.random_state, i])
                    rows = np.sort(rng.choice(rows, _CHOOSING_ROWS, replace=False))
                if len(np.unique(y[rows])) < 2:
                    continue
                model = PropensityModel(kind=kind, random_state=cfg.random_state, n_estimators=100,
                                        learning_rate=0.09).fit(X[rows], y[rows], categorical=self._categorical,
                                                                sample_weight=weight[rows])
                scores = model.log_odds(X[check])
                auc = ranking_metrics(y[check], scores, probabilities=False)["auc"]
                if not math.isfinite(auc):
                    continue
                tried.append({"model": kind, "window_months": choice.window_months,
                              "half_life_months": choice.half_life_months, "auc": round(auc, 4)})
                if kind not in best or auc > best[kind][0] + 1e-9:
                    best[kind] = (auc, choice, scores)
        if not best:
            return {kinds[0]: every}, [], None
        checked = (y[check], {k: found[2] for k, found in best.items()})
        return {k: found[1] for k, found in best.items()}, tried, checked

    def _fit_lever_and_size(self, labelled: pa.Table, X: np.ndarray) -> None:
        import lightgbm

        cfg = self.config
        grew = np.asarray(labelled["label_expansion"].to_pylist(), dtype=bool)
        net = np.asarray(labelled["net_expansion_cents"].fill_null(0).to_numpy(zero_copy_only=False), dtype=float)
        mrr = np.nan_to_num(column_values(labelled, "mrr_cents"))
        moved = levers_moved(labelled)
        has = grew & np.asarray([bool(v) for v in moved], dtype=bool)
        classes = sorted({lever for i in np.flatnonzero(has) for lever in moved[i]}, key=LEVERS.index)
        if int(has.sum()) >= cfg.min_positives and len(classes) >= 2:
            # a snapshot counts once for every lever that moved in its window: the model's most likely class is
            # then the lever likeliest to move (argmax of P(lever moves | expands)), which is what a team pulling
            # one lever needs; the lever of the largest expansion alone would lose the quarters that mix levers
            rows = np.asarray([i for i in np.flatnonzero(has) for _ in moved[i]], dtype=np.int64)
            target = np.asarray([classes.index(lever) for i in np.flatnonzero(has) for lever in moved[i]])
            self.lever_model_ = lightgbm.LGBMClassifier(
                n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=20,
                random_state=cfg.random_state, verbose=-1, deterministic=True, force_col_wise=True,
                n_jobs=tree_threads(),
            ).fit(X[rows], target, categorical_feature=self._categorical or "auto").booster_
            self.lever_classes_ = classes
        else:
            self.fallback_["lever"] = f"too few expansions with a known lever: {int(has.sum())}"
        if int(grew.sum()) >= cfg.min_positives:
            self.size_model_ = lightgbm.LGBMRegressor(
                n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=20,
                random_state=cfg.random_state, verbose=-1, deterministic=True, force_col_wise=True,
                n_jobs=tree_threads(),
            ).fit(X[grew], np.log(net[grew]), categorical_feature=self._categorical or "auto").booster_
        positive = grew & (mrr > 0)
        if positive.any():
            self.size_ratio_ = float(np.median(net[positive] / mrr[positive]))

    @staticmethod
    def _versions() -> dict[str, Any]:
        import lightgbm
        import sklearn

        return {"trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "versions": {"upcurve": __version__, "lightgbm": lightgbm.__version__,
                             "scikit-learn": sklearn.__version__, "numpy": np.__version__,
                             "python": platform.python_version()}}

    @property
    def _categorical(self) -> list[int]:
        """The positions of the category features among :attr:`features_`."""
        return [i for i, name in enumerate(self.features_) if name in self.categories_]

    @property
    def learned(self) -> tuple[str, ...]:
        """The targets a model learned (the others are scored by the cold-start rules), in :data:`TARGETS` order."""
        return tuple(t for t in TARGETS if t in getattr(self, "models_", {}))

    def scored_by(self, target: str) -> str:
        """What scores ``target``: the model kind, or ``rules``."""
        model = self.models_.get(target)
        return model.kind if model is not None else "rules"

    # -- scoring ------------------------------------------------------------------------------------------------
    def score(self, frame: pa.Table, *, currency: str | None = None, explain: bool = True) -> pa.Table:
        """Score accounts: a table of ``account_id``, signal columns (and ``health_score`` for the rules).

        ``currency``: the reporting currency of the amounts in ``frame``, which the reasons show money in.
        ``explain=False`` leaves a model's reasons empty (null) and takes its probabilities from its log-odds, a
        plain prediction, instead of from each feature's contributions (TreeSHAP costs tens of times a prediction):
        for a backtest, which measures the ranking and not the reasons. The probabilities are the same (the
        contributions add up to the log-odds; summed in another order, equal to the last bits of a float)."""
        if not hasattr(self, "card_"):
            raise UpcurveError("this scorer is not fitted yet: call fit(snapshots) or AccountScorer.load(folder)")
        if frame.num_rows == 0:
            return pa.table({name: pa.array([], _TYPES[name]) for name in SCORE_COLUMNS})
        X = feature_matrix(frame, self.features_, self.categories_)
        rules = rule_scores(frame, self.config.rules)
        mrr = np.nan_to_num(column_values(frame, "mrr_cents"))
        cols: dict[str, Any] = {"account_id": frame["account_id"].combine_chunks()}
        by = {target: self.scored_by(target) for target in TARGETS}
        cols["scored_by"] = pa.array([scored_by_summary(by)] * frame.num_rows, pa.string())
        for target, kind in by.items():
            cols[f"{target}_scored_by"] = pa.array([kind] * frame.num_rows, pa.string())
        for target in TARGETS:
            model = self.models_.get(target)
            if model is None:
                cols[_OUT[target]] = rules[target]
                why = self.fallback_.get(target, "")
                cols[_REASONS[target]] = [f"rules ({why}): {r}" if r else f"rules ({why}): no rule fired"
                                          for r in rules[f"{target}_reasons"]]
                continue
            calibration = self.calibration_[target]
            if not explain:
                cols[_OUT[target]] = calibration(model.log_odds(X))
                cols[_REASONS[target]] = pa.nulls(frame.num_rows, pa.string())
                continue
            contrib = model.contributions(X)
            points, _ = probability_contributions(contrib, calibration.a, calibration.b)
            cols[_OUT[target]] = calibration(contrib.sum(axis=1))
            cols[_REASONS[target]] = top_reasons(self.features_, X, points, currency=currency,
                                                 categories=self.categories_)
        if "expansion" not in self.models_:
            # a rule score is a rank, not a probability: it gives no expected amount
            cols["expected_expansion_mrr_cents"] = pa.nulls(frame.num_rows, pa.int64())
        else:
            size = (np.exp(np.asarray(self.size_model_.predict(X, num_threads=tree_threads()), dtype=float))
                    if self.size_model_ is not None else mrr * self.size_ratio_)
            expected = np.rint(np.asarray(cols["expansion_propensity"]) * size).astype(np.int64)
            cols["expected_expansion_mrr_cents"] = np.where(mrr > 0, expected, 0)
        cols["recommended_lever"] = self._levers(X, rules["lever"])
        return pa.table({name: pa.array(cols[name], _TYPES[name]) if not isinstance(cols[name], pa.Array)
                         else cols[name] for name in SCORE_COLUMNS})

    def _levers(self, X: np.ndarray, from_signals: list[str | None]) -> list[str | None]:
        if self.lever_model_ is None:
            return from_signals
        probs = np.asarray(self.lever_model_.predict(X, num_threads=tree_threads()), dtype=float)
        if probs.ndim == 1:  # two levers only: the model gives the second one's probability
            probs = np.column_stack([1 - probs, probs])
        best = [self.lever_classes_[i] for i in probs.argmax(axis=1)]
        # services are not an MRR expansion the model can learn: the signals recommend them where they apply
        return ["services" if s == "services" else b for b, s in zip(best, from_signals, strict=True)]

    # -- saving -------------------------------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        """The fitted scorer as the two files a saved model holds: ``models.json`` and ``model_card.json``."""
        if not hasattr(self, "card_"):
            raise UpcurveError("this scorer is not fitted yet: call fit(snapshots) before saving it")
        models: dict[str, Any] = {
            "targets": {t: {"model": m.to_dict(), "calibration": [self.calibration_[t].a, self.calibration_[t].b]}
                        for t, m in self.models_.items()},
            "fallback": self.fallback_,
            "lever": None if self.lever_model_ is None else {"classes": self.lever_classes_,
                                                             "trees": self.lever_model_.model_to_string()},
            "size": None if self.size_model_ is None else self.size_model_.model_to_string(),
            "size_ratio": self.size_ratio_,
        }
        return {name: json.dumps(data, indent=1, default=str, allow_nan=False).encode("utf-8")
                for name, data in ((_MODELS, models), (_CARD, self.card_))}

    def save(self, folder: str | Path, *, inputs: Iterable[str | Path] = ()) -> Path:
        """Write the fitted scorer (``models.json``) and its card (``model_card.json``) into ``folder``, whole.

        The folder is replaced in one step with a manifest of both files' checksums
        (:func:`upcurve.folders.write_folder`), so two saves at once never mix one's card with the other's models,
        and a folder holding anything upcurve did not write is refused. ``inputs``: data folders it must not be.
        """
        files = self.to_files()

        def fill(stage: Path) -> None:
            for name, data in files.items():
                (stage / name).write_bytes(data)

        return write_folder(folder, fill, kind="model", inputs=inputs, what="model")

    @classmethod
    def load(cls, folder: str | Path, config: ScoringConfig | None = None) -> AccountScorer:
        """A scorer saved by :meth:`save`, after checking the folder is exactly as upcurve wrote it.

        Raises
        ------
        UpcurveError
            When the folder is missing, edited, truncated or mixed from two saves, or its files are refused by
            :meth:`from_files`; the message says what to do.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise UpcurveError(f"{folder}: no saved model here; train one with `upcurve train`")
        _, files = read_verified(folder, kind="model", what="saved model")
        return cls.from_files(files, config, where=str(folder))

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], config: ScoringConfig | None = None, *,
                   where: str = "the saved model") -> AccountScorer:
        """A scorer from the files of :meth:`to_files`, after validating every field of both.

        Raises
        ------
        UpcurveError
            When a field of either file is not what upcurve writes, the two describe different models, it was saved
            by an unknown or newer upcurve, or trained on other features.
        """
        import lightgbm

        try:
            card = json.loads(files[_CARD].decode("utf-8"))
            models = json.loads(files[_MODELS].decode("utf-8"))
        except (KeyError, UnicodeDecodeError, ValueError) as exc:
            raise UpcurveError(f"{where}: the saved model cannot be read ({exc}); train it again") from None
        saved, model_card = parse_saved(where, models, card)
        features = list(model_card.features)
        if features[:len(FEATURES)] != list(FEATURES) or context_columns(features[len(FEATURES):]) != features[
                len(FEATURES):] or not set(model_card.categories) <= set(features):
            raise UpcurveError(f"{where}: the saved model was trained on other features (upcurve "
                               f"{model_card.versions.get('upcurve')}); retrain it with `upcurve train`")
        scorer = cls(config)
        scorer.card_ = card
        scorer.features_ = features
        scorer.categories_ = {k: list(v) for k, v in model_card.categories.items()}
        scorer.fallback_ = dict(saved.fallback)
        scorer.models_ = {t: PropensityModel.from_dict(v.model.model_dump()) for t, v in saved.targets.items()}
        scorer.calibration_ = {t: PlattCalibration(*v.calibration) for t, v in saved.targets.items()}
        lever = saved.lever
        scorer.lever_model_ = None if lever is None else lightgbm.Booster(model_str=lever.trees)
        scorer.lever_classes_ = [] if lever is None else list(lever.classes)
        scorer.size_model_ = None if saved.size is None else lightgbm.Booster(model_str=saved.size)
        scorer.size_ratio_ = saved.size_ratio
        return scorer


_OUT = {"expansion": "expansion_propensity", "churn": "churn_risk"}
_TYPES = {"account_id": pa.string(), "scored_by": pa.string(), "expansion_scored_by": pa.string(),
          "churn_scored_by": pa.string(), "expansion_propensity": pa.float64(),
          "churn_risk": pa.float64(), "expected_expansion_mrr_cents": pa.int64(), "recommended_lever": pa.string(),
          "reasons": pa.string(), "churn_reasons": pa.string()}
_REASONS = {"expansion": "reasons", "churn": "churn_reasons"}
