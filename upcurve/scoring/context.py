"""What an account is, beside what it does: its attributes and the tier it holds of each product, as features.

The signals say what an account does (seats, usage, adoption, tickets…). Two things they reduce to counts matter on
their own: who the account is (its segment, industry, region, payment method or any other column of the
``accounts`` table) and which products and tiers it holds (``products_paid`` counts them; a starter account and an
enterprise one with one product each are not alike). :func:`account_context` gives both at each date, as columns
the models learn from: ``attribute_<column>`` (text, learned as categories where the model supports it, or numbers)
and ``product_tier_<product>`` (the highest ``tier_rank`` of the product's plans the account pays for on that day,
0 when it pays for none).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

import ibis
import ibis.expr.types as ir
import pyarrow as pa

__all__ = ["ATTRIBUTE_PREFIX", "TIER_PREFIX", "account_context", "context_columns", "context_label"]

ATTRIBUTE_PREFIX = "attribute_"
TIER_PREFIX = "product_tier_"
#: Columns of ``accounts`` that are not attributes: identifiers, names and people (an owner is who works the
#: account, not what it is), and dates (the tenure signal says how old an account is).
_NOT_ATTRIBUTES = frozenset({"account_id", "name", "owner", "created_at"})


def _safe(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "x"


def context_columns(column_names: Sequence[str]) -> list[str]:
    """The context feature columns among ``column_names``, in their order."""
    return [c for c in column_names if c.startswith((ATTRIBUTE_PREFIX, TIER_PREFIX))]


def context_label(name: str) -> str:
    """How a context feature is named in a reason: ``attribute_payment_method`` → ``payment method``,
    ``product_tier_core`` → ``core tier``.

    >>> context_label("attribute_payment_method"), context_label("product_tier_core")
    ('payment method', 'core tier')
    """
    if name.startswith(ATTRIBUTE_PREFIX):
        return name.removeprefix(ATTRIBUTE_PREFIX).replace("_", " ")
    return name.removeprefix(TIER_PREFIX).replace("_", " ") + " tier"


def account_context(tables: Mapping[str, ir.Table], dates: Sequence[dt.date], *, at: ir.Table | None = None
                    ) -> ir.Table:
    """Each account's attributes and product tiers at each of ``dates``; with ``at`` (``as_of``, ``account_id``,
    each pair once), at those dates and accounts instead (``dates`` is not read): the snapshots a scorer learns
    from, a sample of a large company's month ends, are described without describing every account at every one
    of them.

    Formula
    -------
    ``attribute_<c>`` = the ``accounts`` table's column ``c`` (text, number or yes/no; not the id, name, owner or
    dates). ``product_tier_<p>`` = the highest ``tier_rank`` among the plans of product ``p`` on the account's
    subscription lines whose service period covers the date (``period_start ≤ date < period_end``), 0 when none.

    Edge cases
    ----------
    Attributes are the ``accounts`` table as given: a segment changed later is read as it is now (the contract
    keeps no history of attributes). A pair of ``at`` whose account is not in ``accounts`` is left out. Product
    names become column names in lower case with ``_`` for anything else; two products that would share a name
    keep their order's number (``product_tier_core_2``).

    Returns
    -------
    ``as_of``, ``account_id``, then the ``attribute_*`` and ``product_tier_*`` columns.
    """
    accounts = tables["accounts"]
    kinds = accounts.schema()
    attributes = {f"{ATTRIBUTE_PREFIX}{_safe(c)}": accounts[c] for c in accounts.columns
                  if c not in _NOT_ATTRIBUTES and (kinds[c].is_string() or kinds[c].is_numeric()
                                                   or kinds[c].is_boolean())}
    described = accounts.select("account_id", **{k: (v.cast("float64") if v.type().is_boolean() else v)
                                                for k, v in attributes.items()})
    if at is None:  # every account at every date
        when = ibis.memtable(pa.table({"as_of": pa.array(sorted(set(dates)), pa.date32())}))
        out = described.cross_join(when)
    else:
        pairs = at.select("as_of", "account_id")
        out = pairs.join(described, "account_id")
    plans = tables["plans"]
    products = sorted(plans.select("product").distinct().to_pyarrow()["product"].to_pylist())
    names: dict[str, str] = {}
    for product in products:
        name, n = f"{TIER_PREFIX}{_safe(product)}", 2
        while name in names.values():
            name, n = f"{TIER_PREFIX}{_safe(product)}_{n}", n + 1
        names[product] = name
    lines = tables["invoice_lines"]
    # the columns read, and no other: a column of the user's own (a ``product`` beside the plan, say) must not
    # stand in for the plans' when they are joined
    lines = lines.filter(lines.kind == "subscription").select("account_id", "plan_id", "period_start", "period_end")
    if at is None:
        held = lines.join(when, (lines.period_start <= when.as_of) & (lines.period_end > when.as_of))
    else:  # only the lines of those accounts, at those dates
        held = lines.join(pairs, [lines.account_id == pairs.account_id, lines.period_start <= pairs.as_of,
                                  lines.period_end > pairs.as_of]).select(lines.account_id, lines.plan_id, pairs.as_of)
    held = held.join(plans.select("plan_id", "product", "tier_rank"), "plan_id")
    tiers = held.group_by(["as_of", "account_id"]).aggregate(**{
        name: ibis.ifelse(held.product == product, held.tier_rank, 0).max().cast("float64")
        for product, name in names.items()
    })
    o, t = out.view(), tiers.view()
    joined = o.left_join(t, [o.as_of == t.as_of, o.account_id == t.account_id])
    joined = joined.select(o, *[t[name].fill_null(0.0).name(name) for name in names.values()])
    return joined.select("as_of", "account_id", *attributes, *names.values())
