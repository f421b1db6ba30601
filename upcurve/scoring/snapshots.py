"""Point-in-time training snapshots: each account's signals as known at a date, beside what happened next.

A model of expansion and churn is only honest if every feature it learns from was known at the snapshot date. Here
each snapshot's features are the signals computed on the tables cut at that date (:func:`upcurve.contract.known_at`);
only the labels look ahead, at the revenue movements of the following months.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import ibis
import ibis.expr.types as ir

from upcurve.revenue import month_index
from upcurve.signals import account_signals_at

__all__ = ["labels_after", "snapshot_dates", "training_snapshots"]


def snapshot_dates(first: dt.date, last: dt.date, *, warmup_months: int = 3) -> list[dt.date]:
    """Month ends from ``warmup_months`` after ``first``'s month up to ``last`` (inclusive)."""
    dates: list[dt.date] = []
    idx = month_index(first) + warmup_months
    while True:
        year, month = divmod(idx, 12)
        end = dt.date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1) - dt.timedelta(days=1)
        if end > last:
            return dates
        dates.append(end)
        idx += 1


def labels_after(snapshots: ir.Table, movements: ir.Table, calendar: ir.Table, *, horizon_months: int = 3) -> ir.Table:
    """What happened to each account in the ``horizon_months`` after each snapshot (three months ≈ 90 days).

    Formula
    -------
    For the months ``(s, s + horizon]`` after snapshot month ``s``: ``net_expansion_cents`` = Σ expansion and
    contraction movements; ``label_expansion`` = ``net_expansion_cents > 0``; ``label_churn`` = a churn movement;
    ``expansion_source`` = the source with the largest expansion in the window.

    Edge cases
    ----------
    Labels are null where the window reaches past the calendar's last month: that future is not known yet.
    """
    s = snapshots.select("account_id", "snapshot_idx")
    mv = movements.filter(movements.type.isin(["expansion", "contraction", "churn"]))
    j = s.join(mv, [s.account_id == mv.account_id, mv.month_idx > s.snapshot_idx,
                    mv.month_idx <= s.snapshot_idx + horizon_months])
    zero = ibis.literal(0, "int64")
    sums = j.group_by([j.account_id, j.snapshot_idx]).aggregate(
        net_expansion_cents=ibis.ifelse(j.type == "churn", zero, j.amount_cents).sum(),
        churned=(j.type == "churn").cast("int64").max(),
    )
    grown = j.filter((j.type == "expansion") & (j.amount_cents > 0))
    by_source = grown.group_by([grown.account_id, grown.snapshot_idx, grown.source]).aggregate(
        cents=grown.amount_cents.sum()
    )
    best = ibis.window(group_by=[by_source.account_id, by_source.snapshot_idx], order_by=ibis.desc(by_source.cents))
    top = by_source.mutate(_n=ibis.row_number().over(best))
    top = top.filter(top._n == 0).select("account_id", "snapshot_idx", expansion_source="source")
    out = s.left_join(sums, ["account_id", "snapshot_idx"]).select(s, sums.net_expansion_cents, sums.churned)
    out = out.left_join(top, ["account_id", "snapshot_idx"]).select(out, top.expansion_source)
    known = (out.snapshot_idx + horizon_months) <= calendar.month_idx.max().as_scalar()
    net = out.net_expansion_cents.fill_null(0)
    return out.select(
        "account_id",
        "snapshot_idx",
        net_expansion_cents=ibis.ifelse(known, net, ibis.null("int64")),
        label_expansion=ibis.ifelse(known, net > 0, ibis.null("boolean")),
        label_churn=ibis.ifelse(known, out.churned.fill_null(0) > 0, ibis.null("boolean")),
        expansion_source=ibis.ifelse(known, out.expansion_source, ibis.null("string")),
    )


def training_snapshots(
    tables: Mapping[str, ir.Table],
    account_months: ir.Table,
    movements: ir.Table,
    calendar: ir.Table,
    plan_features: ir.Table,
    dates: Sequence[dt.date],
    *,
    horizon_months: int = 3,
) -> ir.Table:
    """Features of every paying account at every snapshot date, with its labels (see :func:`labels_after`).

    Features at date ``d`` are the signals of :func:`upcurve.signals.account_signals_at`, which read nothing dated
    after ``d``: adding data after ``d`` changes no feature (a test holds it). All dates are one query.

    Returns
    -------
    ``snapshot`` (date), ``snapshot_idx``, ``account_id``, the signal columns, then the label columns.
    """
    feats = account_signals_at(tables, account_months, plan_features, dates)
    feats = feats.filter(feats.mrr_cents > 0)
    features = feats.mutate(
        snapshot_idx=(feats.as_of.year() * 12 + feats.as_of.month() - 1).cast("int64")
    ).rename(snapshot="as_of")
    labels = labels_after(features, movements, calendar, horizon_months=horizon_months)
    out = features.left_join(labels, ["account_id", "snapshot_idx"]).select(
        features, *[c for c in labels.columns if c not in ("account_id", "snapshot_idx")]
    )
    first = ["snapshot", "snapshot_idx", "account_id"]
    return out.select(*first, *[c for c in out.columns if c not in first])
