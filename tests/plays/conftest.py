"""A small workspace for the plays tests: one run of three accounts (one at risk, one growing, one quiet)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from upcurve.workspace import Store

AS_OF = dt.date(2025, 3, 31)


def _accounts() -> pa.Table:
    base = {"name": None, "owner": "ann", "churn_risk": 0.1, "new_active_30d": 0, "active_users": 4,
            "purchased_seats": 10, "health_score": 60.0, "health_tier": "Nurture", "usage_share_used": 0.2,
            "days_to_renewal": 200, "features_first_used_7d": 0, "outcome_status": None}
    rows = [{**base, "account_id": "RISK", "name": "Risky Co", "churn_risk": 0.6},
            {**base, "account_id": "GROW", "name": "Growing Co", "owner": "bob", "new_active_30d": 8},
            {**base, "account_id": "QUIET", "name": "Quiet Co"}]
    return pa.Table.from_pylist(rows)


def movements() -> pa.Table:
    return pa.table({"month": ["2025-03"], "account_id": ["GROW"], "type": ["new"],
                     "source": pa.array([None], pa.string()),
                     "amount": pa.array([Decimal("100.00")], pa.decimal128(20, 2))})


def plays_workspace(location: str) -> Store:
    """A workspace at ``location`` holding one run as of :data:`AS_OF`."""
    store = Store.open(location)
    store.save_run(as_of=AS_OF, source="test", fingerprint="f", settings={}, notes=[],
                   tables={"accounts": _accounts(), "movements": movements()},
                   started_at=dt.datetime(2025, 4, 1, 8, 0))
    return store
