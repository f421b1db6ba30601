"""Expansion propensity and churn risk: point-in-time training data, models and their backtest metrics."""

from upcurve.scoring.backtest import ranking_metrics
from upcurve.scoring.models import FEATURES, PropensityModel, feature_matrix
from upcurve.scoring.snapshots import labels_after, snapshot_dates, training_snapshots

__all__ = [
    "FEATURES",
    "PropensityModel",
    "feature_matrix",
    "labels_after",
    "ranking_metrics",
    "snapshot_dates",
    "training_snapshots",
]
