"""Expansion propensity and churn risk: point-in-time training data (models follow)."""

from upcurve.scoring.snapshots import labels_after, snapshot_dates, training_snapshots

__all__ = ["labels_after", "snapshot_dates", "training_snapshots"]
