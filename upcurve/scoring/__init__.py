"""Expansion propensity and churn risk: point-in-time training data, models and their backtest metrics."""

from upcurve.scoring.backtest import calibration_table, ranking_metrics
from upcurve.scoring.config import LEVERS, ColdStartRules, ScoringConfig
from upcurve.scoring.models import FEATURES, PlattCalibration, PropensityModel, feature_matrix
from upcurve.scoring.scorer import SCORE_COLUMNS, AccountScorer, rule_scores
from upcurve.scoring.snapshots import labels_after, premium_add_ons, snapshot_dates, training_snapshots
from upcurve.scoring.worklist import WORKLIST_COLUMNS, weekly_worklist

__all__ = [
    "FEATURES",
    "LEVERS",
    "SCORE_COLUMNS",
    "WORKLIST_COLUMNS",
    "AccountScorer",
    "ColdStartRules",
    "PlattCalibration",
    "PropensityModel",
    "ScoringConfig",
    "calibration_table",
    "feature_matrix",
    "labels_after",
    "premium_add_ons",
    "ranking_metrics",
    "rule_scores",
    "snapshot_dates",
    "training_snapshots",
    "weekly_worklist",
]
