"""Expansion propensity and churn risk: point-in-time training data, models, when they learn, and the backtest."""

from upcurve.scoring.backtest import backtest_sentence, calibration_table, model_in_words, ranking_metrics
from upcurve.scoring.config import LEVERS, ColdStartRules, ScoringConfig
from upcurve.scoring.context import account_context
from upcurve.scoring.models import FEATURES, PlattCalibration, PropensityModel, feature_matrix
from upcurve.scoring.replay import (
    BACKTEST_METRICS,
    BacktestDraw,
    Replay,
    SnapshotsAt,
    draw_backtest,
    read_oracle,
    replay,
    snapshot_health,
)
from upcurve.scoring.scorer import SCORE_COLUMNS, TARGETS, AccountScorer, rule_scores
from upcurve.scoring.snapshots import labels_after, premium_add_ons, snapshot_dates, training_snapshots
from upcurve.scoring.training import (
    ModelDecision,
    TrainingSample,
    check_saved_scorer,
    draw_training_sample,
    fit_scorer,
    history_size,
    labelled_snapshots,
    model_decision,
    saved_scorer_problem,
    score_accounts,
    training_dates,
)

__all__ = [
    "BACKTEST_METRICS",
    "FEATURES",
    "LEVERS",
    "SCORE_COLUMNS",
    "TARGETS",
    "AccountScorer",
    "BacktestDraw",
    "ColdStartRules",
    "ModelDecision",
    "PlattCalibration",
    "PropensityModel",
    "Replay",
    "ScoringConfig",
    "SnapshotsAt",
    "TrainingSample",
    "account_context",
    "backtest_sentence",
    "calibration_table",
    "check_saved_scorer",
    "draw_backtest",
    "draw_training_sample",
    "feature_matrix",
    "fit_scorer",
    "history_size",
    "labelled_snapshots",
    "labels_after",
    "model_decision",
    "model_in_words",
    "premium_add_ons",
    "ranking_metrics",
    "read_oracle",
    "replay",
    "rule_scores",
    "saved_scorer_problem",
    "score_accounts",
    "snapshot_dates",
    "snapshot_health",
    "training_dates",
    "training_snapshots",
]
