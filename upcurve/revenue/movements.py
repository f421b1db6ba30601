"""MRR movements: how each account's MRR got from one month to the next, and which lever moved it.

Every movement table here bridges: for every account and month, ``mrr(m) = mrr(m−1) + Σ movements(m)`` exactly,
in cents.
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from upcurve.config import RevenuePolicy
from upcurve.engine import as_int, round_half_away

__all__ = ["MOVEMENT_TYPES", "SOURCES", "account_months", "movements", "paired_months"]

MOVEMENT_TYPES = ("new", "expansion", "contraction", "churn", "reactivation", "fx")
#: The order in which a mixed change is attributed (see :func:`movements`).
SOURCES = ("cross_sell", "usage", "seat", "tier", "price")


def paired_months(positions: ir.Table, calendar: ir.Table, keys: Sequence[str]) -> ir.Table:
    """Each entity's position this month beside its position last month.

    ``positions`` has one row per ``keys`` and ``month_idx``. The result has a row for every month in which the
    entity had a position, and for the month after each (where a churn shows), within the calendar; each value
    column ``c`` becomes ``cur_c`` and ``prev_c``, nulls filled with 0 (``tier_rank`` stays null when absent).
    """
    keys = list(keys)
    values = [c for c in positions.columns if c not in (*keys, "month_idx")]
    # One full outer join of each month's positions with the month before's: a month with no position now and
    # one last month is where a churn shows. (Measured faster than pairing by a union and a group-by.)
    cur = positions.select(*keys, "month_idx", **{f"cur_{c}": positions[c] for c in values})
    before = positions.view()
    prev = before.select(
        **{f"_prev_{k}": before[k] for k in keys},
        _prev_month_idx=before.month_idx + 1,
        **{f"prev_{c}": before[c] for c in values},
    )
    joined = cur.outer_join(
        prev,
        [cur[k] == prev[f"_prev_{k}"] for k in keys] + [cur.month_idx == prev._prev_month_idx],
    )
    out: dict[str, ir.Value] = {
        k: ibis.coalesce(joined[k], joined[f"_prev_{k}"]) for k in [*keys, "month_idx"]
    }
    for c in values:
        for side in ("cur", "prev"):
            col = joined[f"{side}_{c}"]
            out[f"{side}_{c}"] = col if c == "tier_rank" else col.fill_null(0)
    pairs = joined.select(**out)
    return pairs.filter(pairs.month_idx <= calendar.month_idx.max().as_scalar())


def account_months(product_months: ir.Table, calendar: ir.Table, keys: Sequence[str] = ("account_id",)) -> ir.Table:
    """Each entity's MRR this month and last, the base of every movement and retention metric.

    Returns
    -------
    ``keys``, ``month_idx``, ``cur_mrr_cents`` (at this month's rates), ``cur_cc_mrr_cents`` (this month's lines at
    last month's rates), ``prev_mrr_cents``, ``cur_products`` (products with MRR) and ``prev_products``.
    ``keys`` is ``("account_id",)`` for accounts, ``("account_id", "product")`` for account × product.
    """
    pm = product_months
    positions = pm.group_by([*keys, "month_idx"]).aggregate(
        mrr_cents=pm.mrr_cents.sum(),
        cc_mrr_cents=pm.cc_mrr_cents.sum(),
        products=(pm.mrr_cents > 0).cast("int64").sum(),  # one row per product: a count, not a distinct count
    )
    pairs = paired_months(positions, calendar, keys)
    return pairs.drop("prev_cc_mrr_cents")


_account_months = account_months  # the name the parameters of movements() shadow


def _classified(am: ir.Table, keys: Sequence[str], policy: RevenuePolicy) -> ir.Table:
    """Attach ``type`` (or null: no movement), ``amount_cents`` and ``fx_cents`` to every entity-month."""
    cur, cc, prev = am.cur_mrr_cents, am.cur_cc_mrr_cents, am.prev_mrr_cents
    earlier = ibis.window(group_by=list(keys), order_by=am.month_idx, rows=(None, -1))
    last_paid = ibis.ifelse(cur > 0, am.month_idx, ibis.null("int64")).max().over(earlier)
    am = am.mutate(_last_paid=last_paid)
    cur, cc, prev = am.cur_mrr_cents, am.cur_cc_mrr_cents, am.prev_mrr_cents
    months_away = am.month_idx - am._last_paid - 1
    returning = am._last_paid.notnull()
    if policy.reactivation_window_months is not None:
        returning = returning & (months_away <= policy.reactivation_window_months)
    starts = (prev <= 0) & (cur > 0)
    stays = (prev > 0) & (cur > 0)
    kind = (
        ibis.cases(
            (starts & returning, "reactivation"),
            (starts, "new"),
            ((prev > 0) & (cur <= 0), "churn"),
            (stays & (cc > prev), "expansion"),
            (stays & (cc < prev), "contraction"),
            else_=ibis.null("string"),
        )
    )
    amount = ibis.cases((starts, cur), (stays, cc - prev), else_=-prev)
    fx = ibis.ifelse(stays, cur - cc, 0)
    return am.mutate(type=kind, amount_cents=amount, fx_cents=fx).drop("_last_paid")


_PAIRED = (
    "mrr_cents", "cc_mrr_cents", "sub_cents", "sub_cc_cents", "usage_cents", "usage_cc_cents", "seats",
    "sub_lines", "seat_lines", "tier_rank",
)


#: The sides of :data:`_PAIRED` no reader of :func:`product_pairs` takes: what a change is measured in is this
#: month's lines at last month's rates against last month's value (``cur_*_cc``, ``prev_*``).
_UNREAD_SIDES = ("cur_sub_cents", "cur_usage_cents", "prev_cc_mrr_cents", "prev_sub_cc_cents", "prev_usage_cc_cents")


def product_pairs(product_months: ir.Table, calendar: ir.Table) -> ir.Table:
    """Each account's position in each product this month beside last month's (see :func:`paired_months`).

    The one pairing that both the sources of movements and the product-level views read. It keeps the sides they
    read: each value's ``cur_`` and ``prev_`` side, except ``cur_sub_cents`` and ``cur_usage_cents`` (this month's
    at this month's rates: a change is measured at last month's, ``cur_sub_cc_cents`` and ``cur_usage_cc_cents``)
    and the ``prev_`` side of those three ``_cc`` values (``prev_mrr_cents``, ``prev_sub_cents`` and
    ``prev_usage_cents`` are last month's). Eighteen columns rather than twenty-three: a run holds this table, the
    largest of its ledger, and at a million accounts spills it.
    """
    pm = product_months.select("account_id", "product", "month_idx", *_PAIRED)
    return paired_months(pm, calendar, ["account_id", "product"]).drop(*_UNREAD_SIDES)


_product_pairs = product_pairs  # the name the parameters of movements() shadow


def account_months_from_pairs(product_pairs: ir.Table) -> ir.Table:
    """:func:`account_months` for accounts, summed from :func:`product_pairs` (one group-by instead of a pairing).

    The months an account has a row in are the same: the months any of its products had a position, and the
    month after each.
    """
    p = product_pairs
    return p.group_by(["account_id", "month_idx"]).aggregate(
        cur_mrr_cents=p.cur_mrr_cents.sum(),
        cur_cc_mrr_cents=p.cur_cc_mrr_cents.sum(),
        prev_mrr_cents=p.prev_mrr_cents.sum(),
        cur_products=as_int(p.cur_mrr_cents > 0).sum(),
        prev_products=as_int(p.prev_mrr_cents > 0).sum(),
    )


def product_account_months(product_pairs: ir.Table) -> ir.Table:
    """:func:`account_months` keyed by ``("account_id", "product")``, read from :func:`product_pairs`."""
    p = product_pairs
    return p.select(
        "account_id", "product", "month_idx", "cur_mrr_cents", "cur_cc_mrr_cents", "prev_mrr_cents",
        cur_products=as_int(p.cur_mrr_cents > 0), prev_products=as_int(p.prev_mrr_cents > 0),
    )


def _product_parts(p: ir.Table) -> ir.Table:
    """Split each account-month's constant-currency change into its sources, product by product.

    Per account, product and month, with ``p0`` last month's value and ``p1`` this month's at last month's rates:
    - ``cross_sell`` = the whole ``p1`` of a product the account did not pay for last month, or ``−p0`` of one it
      stopped paying for;
    - otherwise ``usage`` = change of its usage lines; ``seat`` = seats added or removed × last month's MRR per seat
      (when the product is per-seat in both months); the rest of the subscription change is ``tier`` when the
      product's highest ``tier_rank`` changed, else ``price`` (list-price changes, discounts, a plan change of the
      same rank such as monthly to annual, and the price of seats bought at another unit price).
    """
    p0 = p.prev_mrr_cents
    p1 = p.cur_cc_mrr_cents
    both = (p0 > 0) & (p1 > 0)
    per_seat = (
        (p.prev_seat_lines > 0) & (p.prev_seat_lines == p.prev_sub_lines)
        & (p.cur_seat_lines > 0) & (p.cur_seat_lines == p.cur_sub_lines)
        & (p.prev_seats > 0)
    )
    seat_change = round_half_away((p.cur_seats - p.prev_seats) * p.prev_sub_cents / p.prev_seats)
    seat = ibis.ifelse(both & per_seat, seat_change, 0)
    sub_rest = p.cur_sub_cc_cents - p.prev_sub_cents - seat
    same_rank = (p.cur_tier_rank == p.prev_tier_rank).fill_null(False) | (
        p.cur_tier_rank.isnull() & p.prev_tier_rank.isnull()
    )
    zero = ibis.literal(0, "int64")
    return p.select(
        "account_id",
        "month_idx",
        cross_sell=ibis.cases(((p0 <= 0) & (p1 > 0), p1), ((p0 > 0) & (p1 <= 0), -p0), else_=zero),
        usage=ibis.ifelse(both, p.cur_usage_cc_cents - p.prev_usage_cents, zero),
        seat=seat,
        tier=ibis.ifelse(both & ~same_rank, sub_rest, zero),
        price=ibis.ifelse(both & same_rank, sub_rest, zero),
    )


def movements(
    product_months: ir.Table,
    calendar: ir.Table,
    *,
    policy: RevenuePolicy,
    account_months: ir.Table | None = None,
    product_pairs: ir.Table | None = None,
) -> ir.Table:
    """Every account's MRR movements, by type and source, in cents.

    Formula
    -------
    From the account's MRR last month (``prev``) to this month (``cur``), and ``cc``, this month's lines at last
    month's exchange rates:

    - ``new``: ``prev = 0``, never paid before (amount ``cur``);
    - ``reactivation``: ``prev = 0``, paid before (within ``policy.reactivation_window_months`` if set);
    - ``churn``: ``cur = 0`` (amount ``−prev``);
    - ``expansion`` / ``contraction``: ``cc > prev`` / ``cc < prev`` (amount ``cc − prev``), split by ``source``
      into signed parts that sum to it exactly: ``cross_sell``, then ``usage``, then ``seat``, then ``tier`` or
      ``price`` (see :func:`_product_parts`);
    - ``fx``: ``cur − cc`` for accounts paying in both months: exchange rates never create expansion or contraction.

    Edge cases
    ----------
    The calendar's first month is the opening balance: every paying account is ``new`` in it. Net-zero months
    have no row. New and reactivated MRR is valued at the month's own rate, so those months have no ``fx`` row.

    Parameters
    ----------
    account_months, product_pairs
        The accounts' :func:`account_months` and :func:`product_pairs`, when already computed (else computed here).

    Returns
    -------
    ``month_idx``, ``account_id``, ``type``, ``source`` (null for new, churn, reactivation and fx),
    ``amount_cents`` (signed).
    """
    am = account_months if account_months is not None else _account_months(product_months, calendar)
    classified = _classified(am, ["account_id"], policy)
    pairs = product_pairs if product_pairs is not None else _product_pairs(product_months, calendar)
    parts = _product_parts(pairs)
    parts = parts.group_by(["account_id", "month_idx"]).aggregate(**{s: parts[s].sum() for s in SOURCES})
    wide = classified.filter(classified.type.notnull() | (classified.fx_cents != 0))
    wide = wide.left_join(parts, ["account_id", "month_idx"]).select(
        "account_id", "month_idx", "type", "amount_cents", "fx_cents", *SOURCES
    )
    return _long(wide, ["account_id"], SOURCES)


def _long(wide: ir.Table, keys: Sequence[str], sources: Sequence[str]) -> ir.Table:
    """One row per movement from one row per entity-month: the type's amount, the fx amount and each source part.

    A cross join with a small table of part names reads ``wide`` once, where a union of selects would make the
    engine compute it once per part.
    """
    parts = ibis.memtable({"part": ["total", "fx", *sources]})
    long = wide.cross_join(parts)
    # With sources, expansion and contraction are told by their parts; without, by their total.
    sourced = long.type.isin(["expansion", "contraction"]) if sources else ibis.literal(False)
    zero = ibis.literal(0, "int64")
    amount = ibis.cases(
        (long.part == "total", ibis.ifelse(sourced, zero, long.amount_cents.fill_null(0))),
        (long.part == "fx", long.fx_cents),
        *[(long.part == s, ibis.ifelse(sourced, long[s].fill_null(0), zero)) for s in sources],
        else_=zero,
    )
    long = long.select(
        *keys,
        "month_idx",
        type=ibis.ifelse(long.part == "fx", ibis.literal("fx"), long.type),
        source=ibis.ifelse(long.part.isin(list(sources)), long.part, ibis.null("string")),
        amount_cents=amount,
    )
    return long.filter(long.amount_cents != 0)


def entity_movements(entity_months: ir.Table, keys: Sequence[str], *, policy: RevenuePolicy) -> ir.Table:
    """Movements without sources for any entity, from its :func:`account_months` keyed by ``keys``.

    With ``keys = ("account_id", "product")``, for product-level views, an account starting to pay for a product is
    ``new`` to that product even when, for the account as a whole, it is a cross-sell expansion.
    """
    classified = _classified(entity_months, keys, policy)
    wide = classified.filter(classified.type.notnull() | (classified.fx_cents != 0))
    wide = wide.select(*keys, "month_idx", "type", "amount_cents", "fx_cents")
    return _long(wide, keys, ()).drop("source")
