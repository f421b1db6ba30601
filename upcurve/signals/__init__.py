"""Per-account signals and the health score, as Ibis expressions."""

from upcurve.signals.account_signals import SIGNAL_COLUMNS, account_signals, account_signals_at

__all__ = ["SIGNAL_COLUMNS", "account_signals", "account_signals_at"]
