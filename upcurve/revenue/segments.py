"""The monthly metrics broken down by account attributes and by product."""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from upcurve.config import RevenuePolicy
from upcurve.errors import ConfigError
from upcurve.revenue.metrics import FACT_COLUMNS, fact_sums, metrics_from_sums

__all__ = ["DEFAULT_SEGMENT_LIMIT", "segment_columns", "segment_metrics"]

_NOT_SEGMENTS = {"account_id", "name", "created_at"}
#: The contract's own account attributes, broken down first.
_CONTRACT_SEGMENTS = ("segment", "industry", "region", "owner")
#: At most this many text columns are broken down by default: every one multiplies the work, and a wide accounts
#: file (hundreds of free-text columns) would otherwise make a run take minutes. ``revenue.segment_by`` lifts it.
DEFAULT_SEGMENT_LIMIT = 12


def segment_columns(accounts: ir.Table, policy: RevenuePolicy) -> list[str]:
    """The account columns to break metrics down by.

    ``policy.segment_by`` when set (each must exist); otherwise the text columns but the id and the name, the
    contract's attributes (segment, industry, region, owner) first, at most :data:`DEFAULT_SEGMENT_LIMIT` of them.
    """
    if policy.segment_by is not None:
        unknown = [c for c in policy.segment_by if c not in accounts.columns]
        if unknown:
            have = ", ".join(c for c in accounts.columns if c not in _NOT_SEGMENTS)
            raise ConfigError(f"revenue.segment_by names {', '.join(map(repr, unknown))}, which the accounts table "
                              f"does not have; its columns are: {have}")
        return list(policy.segment_by)
    schema = accounts.schema()
    text = [c for c in accounts.columns if c not in _NOT_SEGMENTS and schema[c].is_string()]
    ordered = [c for c in _CONTRACT_SEGMENTS if c in text] + [c for c in text if c not in _CONTRACT_SEGMENTS]
    return ordered[:DEFAULT_SEGMENT_LIMIT]


def segment_metrics(
    accounts: ir.Table,
    facts: ir.Table,
    product_facts: ir.Table,
    calendar: ir.Table,
    *,
    policy: RevenuePolicy,
    dimensions: Sequence[str] | None = None,
) -> ir.Table:
    """Monthly metrics per value of each segment dimension, and per product.

    Formula
    -------
    The metrics of :func:`upcurve.revenue.metrics.monthly_metrics`, computed over the accounts whose column has
    that value (dimension ``product``: over each account's MRR in that product, where starting to pay for a product
    is ``new`` for it and stopping is ``churn``; see :func:`upcurve.revenue.movements.entity_movements`).

    Edge cases
    ----------
    An empty value is the segment ``(none)``. Services revenue is not broken down (0). Segments are the accounts'
    current attributes: an account that moved segment counts in its current one for its whole history.

    Parameters
    ----------
    facts
        The accounts' :func:`~upcurve.revenue.metrics.account_month_facts` (the same facts the company's metrics
        are summed from, so a caller computes them once).
    product_facts
        The same keyed by ``("account_id", "product")``, from the product-level account months and movements.

    Returns
    -------
    ``dimension``, ``value``, then the metrics columns.
    """
    dims = list(dimensions) if dimensions is not None else segment_columns(accounts, policy)
    sums = []
    if dims:
        labels = accounts.select(
            "account_id",
            **{f"_d{i}": ibis.coalesce(accounts[d].cast("string"), ibis.literal("(none)")) for i, d in enumerate(dims)},
        )
        facts = facts.join(labels, "account_id")
        # Sum once at the grain of every dimension together (a few thousand rows), then roll up per dimension.
        cube = fact_sums(facts, [f"_d{i}" for i in range(len(dims))])
        for i, dim in enumerate(dims):
            rolled = cube.group_by(["month_idx", cube[f"_d{i}"].name("value")]).aggregate(
                **{c: cube[c].sum() for c in FACT_COLUMNS}
            )
            sums.append(rolled.mutate(dimension=ibis.literal(dim)))
    by_product = fact_sums(product_facts.mutate(value=product_facts.product), ["value"])
    sums.append(by_product.mutate(dimension=ibis.literal("product")))
    # every dimension's sums in one table, and the metrics taken once from it: one metrics expression in the query
    # whatever the number of dimensions
    order = ["month_idx", "value", "dimension", *FACT_COLUMNS]
    stacked = ibis.union(*[part.select(*order) for part in sums], distinct=False)
    out = metrics_from_sums(stacked, calendar, group_keys=["dimension", "value"])
    first = ["dimension", "value", "month_idx", "month"]
    return out.select(*first, *[c for c in out.columns if c not in first]).order_by(["dimension", "value", "month_idx"])
