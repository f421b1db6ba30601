"""Levers ranked by yield, measured on the company's own data instead of guessed.

For each lever a team can pull, what it produced over the last months (expansion MRR and the accounts that
expanded through it, from the revenue engine's movements) and what pulling it cost in human effort (the plays'
actions for that lever, how many succeeded, how much expansion each action brought).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from upcurve.months import month_index, month_label
from upcurve.plays.engine import PlayAction
from upcurve.plays.uplift import outcomes

__all__ = ["LEVER_OF_SOURCE", "lever_yield"]

#: The lever behind each expansion source of the revenue engine (a premium add-on is counted as cross-sell here:
#: the movements do not tell the two apart).
LEVER_OF_SOURCE = {"usage": "usage", "seat": "seat", "tier": "tier", "cross_sell": "cross_sell", "price": "price"}


def lever_yield(movements: pa.Table, actions: Sequence[PlayAction], *, as_of: dt.date, months: int = 12) -> pa.Table:
    """Each lever's expansion and effort over the ``months`` months up to ``as_of``, highest yield first.

    Formula
    -------
    Per lever ``L`` (the expansion sources: usage, seat, tier, cross-sell, price):

    - ``expansion_mrr`` = Σ expansion movements of source ``L`` in the months; ``accounts`` = accounts with one;
      ``share`` = ``expansion_mrr`` ÷ all expansion MRR (the shares sum to 1 when there was any expansion);
    - ``actions`` = the plays' actions for ``L`` with a success criterion, started in the period (held-out
      accounts not counted: nobody worked them; alerts without a success criterion neither); ``successes`` =
      those whose success was seen in their window; ``actions_per_success`` = actions ÷ successes (the human
      effort one success took); ``revenue_per_action`` = the expansion MRR of ``L`` in the actions' windows ÷
      actions.

    Read: "seat: 41% of expansion MRR, 120 accounts; 35 actions, 1 success in 3.5, 212.00 of expansion MRR per
    action".

    Edge cases
    ----------
    A lever with no action has no effort figures (null), not zero; with actions and no success,
    ``actions_per_success`` is null (no success to divide by) and ``revenue_per_action`` is 0. Retain plays (lever
    ``retain``) and actions without a lever are not levers of expansion and are left out. ``price`` grows MRR
    without anyone pulling it account by account; it is listed so the shares add up. Money is exact.

    Examples
    --------
    >>> from decimal import Decimal
    >>> m = pa.table({"month": ["2024-05", "2024-06", "2024-06"], "account_id": ["a", "b", "b"],
    ...               "type": ["expansion"] * 3, "source": ["seat", "seat", "tier"],
    ...               "amount": pa.array([Decimal("30.00"), Decimal("10.00"), Decimal("60.00")],
    ...                                  pa.decimal128(20, 2))})
    >>> t = lever_yield(m, [], as_of=dt.date(2024, 6, 30))
    >>> [(r["lever"], str(r["expansion_mrr"]), r["accounts"], r["share"]) for r in t.to_pylist()]
    [('tier', '60.00', 1, 0.6), ('seat', '40.00', 2, 0.4)]
    """
    since = month_label(month_index(as_of) - (months - 1))
    until = f"{as_of:%Y-%m}"
    money = movements["amount"].type if "amount" in movements.column_names else pa.decimal128(20, 2)
    produced: dict[str, _Produced] = {}
    if movements.num_rows:
        window = movements.filter(pc.and_(pc.and_(pc.equal(movements["type"], "expansion"),
                                                  pc.greater_equal(movements["month"], since)),
                                          pc.less_equal(movements["month"], until)))
        for record in window.to_pylist():
            lever = LEVER_OF_SOURCE.get(record["source"])
            if lever is not None:
                produced.setdefault(lever, _Produced()).add(record["account_id"], record["amount"])
    total = sum((p.expansion_mrr for p in produced.values()), Decimal(0))
    # the plays people (or automation) worked toward a success: not the held-out accounts, not alerts without a
    # success criterion, not the bookkeeping of thresholds covered by a higher one or of a period that ended
    worked = [a for a in actions if a.lever in LEVER_OF_SOURCE and not a.held_out and a.measurable
              and since <= f"{a.started_on:%Y-%m}" <= until]
    effort: dict[str, _Effort] = {}
    if worked and movements.num_rows:
        exposures = pa.table({
            "play": [a.play for a in worked], "account_id": [a.account_id for a in worked],
            "group": ["treated"] * len(worked), "started_on": pa.array([a.started_on for a in worked], pa.date32()),
            "window_days": pa.array([a.success_window_days or 30 for a in worked], pa.int64()),
            "success_source": [a.lever for a in worked]})
        measured = outcomes(exposures, movements, as_of=as_of).to_pylist()
        for action, found in zip(worked, measured, strict=True):
            effort.setdefault(str(action.lever), _Effort()).add(found["converted"], found["expansion_mrr"])
    out = []
    ranked = sorted(set(produced) | set(effort), key=lambda k: (-produced.get(k, _Produced()).expansion_mrr, k))
    for lever in ranked:
        p, e = produced.get(lever, _Produced()), effort.get(lever)
        out.append({
            "lever": lever, "expansion_mrr": p.expansion_mrr, "accounts": len(p.accounts),
            "share": float(p.expansion_mrr / total) if total else None,
            "actions": e.actions if e else None, "successes": e.successes if e else None,
            "actions_per_success": e.actions / e.successes if e and e.successes else None,
            "revenue_per_action": (e.revenue / e.actions).quantize(Decimal("0.01")) if e else None,
        })
    return pa.Table.from_pylist(out, schema=pa.schema([
        ("lever", pa.string()), ("expansion_mrr", money), ("accounts", pa.int64()), ("share", pa.float64()),
        ("actions", pa.int64()), ("successes", pa.int64()), ("actions_per_success", pa.float64()),
        ("revenue_per_action", money)]))


@dataclass
class _Produced:
    """What a lever produced: expansion MRR and the accounts that expanded through it."""

    expansion_mrr: Decimal = Decimal(0)
    accounts: set[str] = field(default_factory=set)

    def add(self, account_id: str, amount: Decimal) -> None:
        self.expansion_mrr += amount
        self.accounts.add(account_id)


@dataclass
class _Effort:
    """What pulling a lever took: actions, successes, and the expansion MRR in their windows."""

    actions: int = 0
    successes: int = 0
    revenue: Decimal = Decimal(0)

    def add(self, converted: bool, expansion_mrr: Decimal) -> None:
        self.actions += 1
        self.successes += int(converted)
        self.revenue += expansion_mrr
