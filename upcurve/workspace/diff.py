"""What changed between two runs of a workspace, read from their stored tables (nothing is recomputed)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from upcurve.workspace.store import RunRecord, Store

__all__ = ["RunDiff", "diff_runs"]


@dataclass(frozen=True)
class RunDiff:
    """What changed from run ``a`` to run ``b``.

    ``bridge``: the MRR bridge from ``a``'s as-of month to ``b``'s, read from ``b``'s metrics and movements (one row
    per movement type, signed amounts, and ``start``/``end`` rows), so it adds up: start + movements = end. When
    ``b`` is dated before ``a``, the bridge runs backwards and holds only its start and end.
    ``entered`` and ``left``: accounts that entered or left the worklist. ``tier_moves``: accounts whose health tier
    changed. ``new_churn_risks``: accounts whose churn risk reached ``threshold`` in ``b`` but not in ``a``.
    """

    a: RunRecord
    b: RunRecord
    bridge: pa.Table
    entered: pa.Table
    left: pa.Table
    tier_moves: pa.Table
    new_churn_risks: pa.Table
    threshold: float


# The queries read the same on DuckDB and PostgreSQL: ``?`` placeholders, no dialect's own functions (months come
# in as their 'YYYY-MM' labels), and names neither reserves (start, position and type are keywords, not reserved).
_BRIDGE = """
WITH months AS (
    SELECT CAST(? AS VARCHAR) AS a_month, CAST(? AS VARCHAR) AS b_month
), moved AS (
    SELECT m.type, sum(m.amount) AS amount
    FROM movements m, months
    WHERE m.run_id = ? AND m.month > months.a_month AND m.month <= months.b_month
    GROUP BY m.type
), ends AS (
    SELECT
        coalesce((SELECT x.mrr FROM metrics x, months WHERE x.run_id = ? AND x.month = months.a_month), 0) AS start,
        coalesce((SELECT x.mrr FROM metrics x, months WHERE x.run_id = ? AND x.month = months.b_month), 0) AS finish
)
SELECT 'start' AS line, 0 AS position, start AS amount FROM ends
UNION ALL
SELECT type, CASE type WHEN 'new' THEN 1 WHEN 'reactivation' THEN 2 WHEN 'expansion' THEN 3
    WHEN 'contraction' THEN 4 WHEN 'churn' THEN 5 ELSE 6 END, amount FROM moved
UNION ALL
SELECT 'end', 7, finish FROM ends
ORDER BY position, line
"""

_WORKLIST_CHANGE = """
SELECT w.account_id, w.name, w.owner, w.motion, w.value_at_stake, w.recommended_lever
FROM worklist w
WHERE w.run_id = ? AND w.account_id NOT IN (SELECT account_id FROM worklist WHERE run_id = ?)
ORDER BY w.value_at_stake DESC NULLS LAST, w.account_id
"""

_TIER_MOVES = """
SELECT b.account_id, b.name, a.health_tier AS tier_before, b.health_tier AS tier_now,
       a.health_score AS health_before, b.health_score AS health_now
FROM accounts b JOIN accounts a ON a.account_id = b.account_id AND a.run_id = ?
WHERE b.run_id = ? AND a.health_tier IS DISTINCT FROM b.health_tier
  AND (a.health_tier IS NOT NULL OR b.health_tier IS NOT NULL)
ORDER BY b.health_score NULLS FIRST, b.account_id
"""

_NEW_RISKS = """
SELECT b.account_id, b.name, b.owner, b.mrr, a.churn_risk AS churn_risk_before, b.churn_risk AS churn_risk_now,
       b.churn_reasons
FROM accounts b LEFT JOIN accounts a ON a.account_id = b.account_id AND a.run_id = ?
WHERE b.run_id = ? AND b.churn_risk >= ? AND (a.churn_risk IS NULL OR a.churn_risk < ?)
ORDER BY b.churn_risk * b.mrr DESC, b.account_id
"""


def diff_runs(store: Store, a: RunRecord, b: RunRecord, *, threshold: float = 0.3) -> RunDiff:
    """What changed from run ``a`` to run ``b`` (see :class:`RunDiff`).

    Edge cases
    ----------
    Two runs in the same month give a bridge of start and end only (their MRR at that month end may still differ
    when their data differ). A run scored by the rules has churn risks on another scale than a model's: compare
    runs scored the same way.
    """
    # both ends from b's own history, so the bridge adds up to the cent whatever a's data were
    months = [f"{a.as_of:%Y-%m}", f"{b.as_of:%Y-%m}"]
    bridge = store.query(_BRIDGE, [*months, b.run_id, b.run_id, b.run_id])
    entered = store.query(_WORKLIST_CHANGE, [b.run_id, a.run_id])
    left = store.query(_WORKLIST_CHANGE, [a.run_id, b.run_id])
    tiers = store.query(_TIER_MOVES, [a.run_id, b.run_id])
    risks = store.query(_NEW_RISKS, [a.run_id, b.run_id, threshold, threshold])
    return RunDiff(a, b, bridge, entered, left, tiers, risks, threshold)
