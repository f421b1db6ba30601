"""Point-in-time training snapshots: each account's signals as known at a date, beside what happened next.

A model of expansion and churn is only honest if every feature it learns from was known at the snapshot date. Here
each snapshot's features are the signals at that date (:func:`upcurve.signals.account_signals_at`, which reads
nothing dated later); only the labels look ahead, at the revenue movements of the following months.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import ibis
import ibis.expr.types as ir

from upcurve.engine import as_int, month_idx_of
from upcurve.months import month_end, month_index
from upcurve.scoring.config import LEVERS
from upcurve.signals import account_signals_at

__all__ = ["labels_after", "outcome_known", "premium_add_ons", "snapshot_dates", "snapshot_features",
           "training_snapshots"]


def snapshot_dates(first: dt.date, last: dt.date, *, warmup_months: int = 3) -> list[dt.date]:
    """Month ends from ``warmup_months`` after ``first``'s month up to ``last`` (inclusive)."""
    dates: list[dt.date] = []
    idx = month_index(first) + warmup_months
    while True:
        end = month_end(idx)
        if end > last:
            return dates
        dates.append(end)
        idx += 1


def labels_after(snapshots: ir.Table, movements: ir.Table, calendar: ir.Table, *, horizon_months: int = 3,
                 product_months: ir.Table | None = None, premium: ir.Table | None = None) -> ir.Table:
    """What happened to each account in the ``horizon_months`` after each snapshot (three months ≈ 90 days).

    Formula
    -------
    For the months ``(s, s + horizon]`` after snapshot month ``s``: ``net_expansion_cents`` = Σ expansion and
    contraction movements except those of source ``price`` (a price change is the company's doing, and a price
    increase for every customer would teach a model nothing about accounts); ``label_expansion`` =
    ``net_expansion_cents > 0``; ``label_churn`` = a churn movement; ``expansion_source`` = the source with the
    largest expansion in the window; ``expansion_lever`` = that source as a lever, where a cross-sell into one of
    (a product of the one-column table ``premium``, see :func:`premium_add_ons`, that the account did not pay for
    at ``s`` and pays for in the window, per ``product_months``) is ``premium``; ``expansion_levers`` = every
    lever with an expansion in the window, comma-separated in :data:`~upcurve.scoring.config.LEVERS` order (an
    account's quarter often mixes levers: seats and a tier, usage and a tier).

    Edge cases
    ----------
    Labels are null where the window reaches past the calendar's last month: that future is not known yet. An
    account whose MRR grew only by a price increase did not expand.
    """
    s = snapshots.select("account_id", "snapshot_idx")
    # a price change is the company's doing, not the account's: it is left out of what the models learn
    mv = movements.filter(movements.type.isin(["expansion", "contraction", "churn"])
                          & (movements.source.isnull() | (movements.source != "price")))
    j = s.join(mv, [s.account_id == mv.account_id, mv.month_idx > s.snapshot_idx,
                    mv.month_idx <= s.snapshot_idx + horizon_months])
    zero = ibis.literal(0, "int64")
    sums = j.group_by([j.account_id, j.snapshot_idx]).aggregate(
        net_expansion_cents=ibis.ifelse(j.type == "churn", zero, j.amount_cents).sum(),
        churned=as_int(j.type == "churn").max(),
    )
    grown = j.filter((j.type == "expansion") & (j.amount_cents > 0))
    by_source = grown.group_by([grown.account_id, grown.snapshot_idx, grown.source]).aggregate(
        cents=grown.amount_cents.sum()
    )

    def largest(table: ir.Table, name: str) -> ir.Table:
        best = ibis.window(group_by=[table.account_id, table.snapshot_idx],
                           order_by=[ibis.desc(table.cents), table.source])
        top = table.mutate(_n=ibis.row_number().over(best))
        return top.filter(top._n == 0).select("account_id", "snapshot_idx", **{name: top.source})

    top = largest(by_source, "expansion_source")
    lever = largest(by_source.view(), "expansion_lever")
    moved = by_source.view()
    moved = moved.select("account_id", "snapshot_idx", lever_name=moved.source)
    if product_months is not None and premium is not None:
        pm = product_months.filter(product_months.mrr_cents > 0).semi_join(premium, "product")
        s1, s2, pm2 = s.view(), s.view(), pm.view()
        before = s1.join(pm, [s1.account_id == pm.account_id, pm.month_idx == s1.snapshot_idx])
        before = before.select(s1.account_id, s1.snapshot_idx, pm.product)
        after = s2.join(pm2, [s2.account_id == pm2.account_id, pm2.month_idx > s2.snapshot_idx,
                              pm2.month_idx <= s2.snapshot_idx + horizon_months])
        after = after.select(s2.account_id, s2.snapshot_idx, pm2.product).distinct()
        started = after.anti_join(before, ["account_id", "snapshot_idx", "product"])
        started = started.select("account_id", "snapshot_idx").distinct().mutate(_premium=ibis.literal(True))
        lever = lever.left_join(started, ["account_id", "snapshot_idx"]).select(lever, started._premium)
        lever = lever.mutate(expansion_lever=ibis.ifelse(
            (lever.expansion_lever == "cross_sell") & lever._premium.fill_null(False), "premium",
            lever.expansion_lever)).drop("_premium")
        started2 = started.view()
        moved = moved.left_join(started2, ["account_id", "snapshot_idx"]).select(moved, started2._premium)
        moved = moved.select("account_id", "snapshot_idx", lever_name=ibis.ifelse(
            (moved.lever_name == "cross_sell") & moved._premium.fill_null(False), "premium", moved.lever_name))
    # one row per account and snapshot, the levers in a fixed order written out lever by lever: not every engine
    # can order the values of a string aggregate
    flags = moved.group_by(["account_id", "snapshot_idx"]).aggregate(
        **{f"_{name}": as_int(moved.lever_name == name).max() for name in LEVERS})
    text = ibis.literal("")
    for name in LEVERS:
        text = text + ibis.ifelse(flags[f"_{name}"] == 1, f",{name}", "")
    every = flags.select("account_id", "snapshot_idx", expansion_levers=text.substr(1))
    out = s.left_join(sums, ["account_id", "snapshot_idx"]).select(s, sums.net_expansion_cents, sums.churned)
    out = out.left_join(top, ["account_id", "snapshot_idx"]).select(out, top.expansion_source)
    out = out.left_join(lever, ["account_id", "snapshot_idx"]).select(out, lever.expansion_lever)
    out = out.left_join(every, ["account_id", "snapshot_idx"]).select(out, every.expansion_levers)
    known = outcome_known(out.snapshot_idx, calendar, horizon_months)
    net = out.net_expansion_cents.fill_null(0)
    grew = net > 0
    return out.select(
        "account_id",
        "snapshot_idx",
        net_expansion_cents=ibis.ifelse(known, net, ibis.null("int64")),
        label_expansion=ibis.ifelse(known, grew, ibis.null("boolean")),
        label_churn=ibis.ifelse(known, out.churned.fill_null(0) > 0, ibis.null("boolean")),
        expansion_source=ibis.ifelse(known & grew, out.expansion_source, ibis.null("string")),
        expansion_lever=ibis.ifelse(known & grew, out.expansion_lever, ibis.null("string")),
        expansion_levers=ibis.ifelse(known & grew, out.expansion_levers, ibis.null("string")),
    )


def premium_add_ons(plans: ir.Table) -> ir.Table:
    """Products sold only as a premium add-on (every plan of the product has the tier name ``premium``), as a
    one-column table ``product``."""
    t = plans.group_by("product").aggregate(premium=as_int(plans.tier.lower() == "premium").min())
    return t.filter(t.premium == 1).select("product")


def outcome_known(snapshot_idx: ir.IntegerValue, calendar: ir.Table, horizon_months: int) -> ir.BooleanValue:
    """Whether a snapshot's whole outcome window has passed: its last month is within the calendar. A snapshot
    has labels exactly where this holds (:func:`labels_after`)."""
    return (snapshot_idx + horizon_months) <= calendar.month_idx.max().as_scalar()


def snapshot_features(signals: ir.Table, dates: Sequence[dt.date]) -> ir.Table:
    """The snapshots' features: the signals of every paying account at each of ``dates`` (``signals`` may hold
    other dates too), the date as ``snapshot`` and its month as ``snapshot_idx``."""
    feats = signals.filter(signals.as_of.isin(list(dates)) & (signals.mrr_cents > 0))
    return feats.mutate(snapshot_idx=month_idx_of(feats.as_of)).rename(snapshot="as_of")


def training_snapshots(
    tables: Mapping[str, ir.Table],
    account_months: ir.Table,
    movements: ir.Table,
    calendar: ir.Table,
    plan_features: ir.Table,
    dates: Sequence[dt.date],
    *,
    horizon_months: int = 3,
    product_months: ir.Table | None = None,
    premium: ir.Table | None = None,
    signals: ir.Table | None = None,
) -> ir.Table:
    """Features of every paying account at every snapshot date, with its labels (see :func:`labels_after`).

    Features at date ``d`` are the signals of :func:`upcurve.signals.account_signals_at`, which read nothing dated
    after ``d``: adding data after ``d`` changes no feature (a test holds it). All dates are one query; ``signals``
    (the result of ``account_signals_at`` at these dates, and maybe others) saves computing it again.

    Returns
    -------
    ``snapshot`` (date), ``snapshot_idx``, ``account_id``, the signal columns, then the label columns.
    """
    if signals is None:
        signals = account_signals_at(tables, account_months, plan_features, dates)
    features = snapshot_features(signals, dates)
    labels = labels_after(features, movements, calendar, horizon_months=horizon_months,
                          product_months=product_months, premium=premium)
    out = features.left_join(labels, ["account_id", "snapshot_idx"]).select(
        features, *[c for c in labels.columns if c not in ("account_id", "snapshot_idx")]
    )
    first = ["snapshot", "snapshot_idx", "account_id"]
    return out.select(*first, *[c for c in out.columns if c not in first])
