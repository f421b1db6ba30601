"""The month calendar every revenue table is keyed on."""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
import pyarrow as pa

# the month arithmetic lives below every package (upcurve.months); revenue re-exports it, as it always has
from upcurve.months import month_end, month_index, month_label

__all__ = ["month_calendar", "month_end", "month_index", "month_label"]


def month_calendar(first: dt.date, as_of: dt.date) -> ir.Table:
    """One row per month from ``first``'s month to ``as_of``'s month.

    Columns: ``month_idx`` (see :func:`month_index`), ``month`` (``YYYY-MM``) and ``measured_on``: the day on
    which the month's MRR is taken, the month's last day, except in the as-of month, which is measured on the as-of
    date itself (a run at a past date sees only what was known then).
    """
    if as_of < first:
        raise ValueError(f"as-of date {as_of} is before the first billed day {first}")
    rows: dict[str, list] = {"month_idx": [], "month": [], "measured_on": []}
    for idx in range(month_index(first), month_index(as_of) + 1):
        rows["month_idx"].append(idx)
        rows["month"].append(month_label(idx))
        rows["measured_on"].append(min(month_end(idx), as_of))
    schema = pa.schema([("month_idx", pa.int64()), ("month", pa.string()), ("measured_on", pa.date32())])
    return ibis.memtable(pa.table(rows, schema=schema))
