"""The feature catalogue of the plans."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pyarrow as pa

__all__ = ["plan_features"]


def plan_features(plans: ir.Table) -> ir.Table:
    """One row per plan and feature key, from the plans' ``;``-separated ``features`` (a small table)."""
    rows = plans.select("plan_id", "features").to_pyarrow().to_pylist()
    pairs = [(r["plan_id"], f.strip()) for r in rows for f in (r["features"] or "").split(";") if f.strip()]
    return ibis.memtable(pa.table({"plan_id": pa.array([p for p, _ in pairs], pa.string()),
                                   "feature": pa.array([f for _, f in pairs], pa.string())}))
