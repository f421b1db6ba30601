"""Per-account signals and the health score, as Ibis expressions; the ``accounts`` table of a run."""

from upcurve.signals.account_signals import SIGNAL_COLUMNS, account_signals, account_signals_at
from upcurve.signals.accounts import TREND_DAYS, accounts_table

__all__ = ["SIGNAL_COLUMNS", "TREND_DAYS", "account_signals", "account_signals_at", "accounts_table"]
