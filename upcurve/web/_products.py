"""The accounts behind a product's expansion: what a click on a bar of the overview's expansion by product lists.

A bar comes from the ``segments`` table (dimension ``product``), and the movements carry no product, so the accounts
behind it are found in the run's ``mrr`` table (month × account × product), which the reader keeps in memory: an
account is behind product P's expansion in a month when its P MRR rose from the month before while it paid for P in
both (starting to pay for a product is ``new`` to that product, as the bar counts it). Each account's rises in P are
found once per run and product and kept; a request then keeps the months it asks for and adds them up per account.

The rise is read from the stored MRR, in the reporting currency: for an account billed in another currency it also
holds the month's exchange-rate move, which the bar counts apart (``fx``), so the two can differ by that.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from upcurve.web.data import NotFound

if TYPE_CHECKING:
    from upcurve.web.data import Reader
    from upcurve.workspace import RunRecord

__all__ = ["product_expansion", "product_rises", "products"]


def products(reader: Reader, run: RunRecord) -> list[str]:
    """The products of a run's MRR table."""
    return reader.distinct(run, "mrr", "product")


def _month_index(months: pa.Array) -> np.ndarray:
    """``YYYY-MM`` as a count of months (year × 12 + month − 1)."""
    year = pc.cast(pc.utf8_slice_codeunits(months, 0, 4), pa.int64()).to_numpy(zero_copy_only=False)
    month = pc.cast(pc.utf8_slice_codeunits(months, 5, 7), pa.int64()).to_numpy(zero_copy_only=False)
    return np.asarray(year * 12 + month - 1, dtype=np.int64)


def product_rises(reader: Reader, run: RunRecord, product: str) -> pa.Table:
    """Every month an account's MRR in ``product`` rose while it paid for it the month before too: ``month``,
    ``account_id``, ``rise`` (this month's MRR less last month's), ``mrr`` (this month's). Made once per run and
    product and kept."""
    if product not in products(reader, run):
        raise NotFound(f"no product {product!r} in run {run.run_id}; the products are "
                       f"{', '.join(products(reader, run)) or 'none'}")
    return reader.memo(run, ("product rises", product), lambda: _rises(reader.table(run, "mrr"), product))


def _rises(mrr: pa.Table, product: str) -> pa.Table:
    rows = mrr.filter(pc.equal(mrr["product"], pa.scalar(product, pa.string())))
    rows = rows.take(pc.sort_indices(rows, [("account_id", "ascending"), ("month", "ascending")])).combine_chunks()
    empty = pa.table({"month": pa.array([], pa.string()), "account_id": pa.array([], pa.string()),
                      "rise": pa.array([], mrr.schema.field("mrr").type), "mrr": pa.array([], mrr.schema.field(
                          "mrr").type)})
    if rows.num_rows < 2:
        return empty
    index = _month_index(rows["month"].combine_chunks())
    accounts = rows["account_id"].combine_chunks()
    now, before = rows.slice(1), rows.slice(0, rows.num_rows - 1)
    same = pc.and_(pc.equal(accounts.slice(1), accounts.slice(0, len(accounts) - 1)),
                   pa.array(index[1:] - index[:-1] == 1))
    rise = pc.subtract(now["mrr"], before["mrr"])
    keep = pc.and_(pc.and_(same, pc.greater(before["mrr"], 0)), pc.greater(rise, 0))
    found = pa.table({"month": now["month"], "account_id": now["account_id"], "rise": rise,
                      "mrr": now["mrr"]}).filter(pc.fill_null(keep, False))
    return found.cast(empty.schema) if found.num_rows else empty


def product_expansion(reader: Reader, run: RunRecord, product: str, month_from: str | None,
                      month_to: str | None, limit: int | None = None, offset: int = 0
                      ) -> tuple[int, Any, list[dict[str, Any]]]:
    """The accounts whose MRR in ``product`` rose from one month to the next within ``month_from`` to
    ``month_to`` (each inclusive; open when None): how many, their rises added up, and ``limit`` of them from
    ``offset`` (all when None), largest total rise first (then by account id). Each: ``account_id``, ``name``,
    ``rise`` (its rises added up), ``months`` (how many months it rose), ``last_month`` (the last of them) and
    ``mrr`` (the product's MRR that month).

    The accounts summed and ordered are kept per run, product and months (the few asked last): a request then
    only takes its page of them."""
    count, total, summed = _summed(reader, run, product, month_from, month_to)
    if count == 0:
        return 0, total, []
    page = summed.slice(offset, limit) if limit is not None else summed.slice(offset)
    top = page.to_pylist()
    names = reader.names(run, [r["account_id"] for r in top])
    return count, total, [
        {"account_id": r["account_id"], "name": names.get(r["account_id"]), "rise": r["rise_sum"],
         "months": r["month_count"], "last_month": r["month_max"], "mrr": r["mrr"]}
        for r in top]


#: How many (product, months) summaries are kept per run: a bar is a product and a month or a range of them.
_KEEP_SUMMED = 64


def _summed(reader: Reader, run: RunRecord, product: str, month_from: str | None,
            month_to: str | None) -> tuple[int, Any, pa.Table]:
    """How many accounts, their rises added up, and each account's (``account_id``, ``rise_sum``,
    ``month_count``, ``month_max``, ``mrr``) largest first: made once per run, product and months, and kept."""
    rises = product_rises(reader, run, product)  # checks the product, and is kept per run
    kept: OrderedDict[tuple[Any, ...], tuple[int, Any, pa.Table]] = reader.memo(
        run, ("product expansion",), OrderedDict)
    key = (product, month_from, month_to)
    with _summing:
        hit = kept.get(key)
        if hit is not None:
            kept.move_to_end(key)
            return hit
    found = _sum(rises, month_from, month_to)
    with _summing:
        kept[key] = found
        while len(kept) > _KEEP_SUMMED:
            kept.popitem(last=False)
    return found


_summing = threading.Lock()


def _sum(rises: pa.Table, month_from: str | None, month_to: str | None) -> tuple[int, Any, pa.Table]:
    if month_from is not None:
        rises = rises.filter(pc.greater_equal(rises["month"], month_from))
    if month_to is not None:
        rises = rises.filter(pc.less_equal(rises["month"], month_to))
    if rises.num_rows == 0:
        return 0, Decimal("0.00"), pa.table({})
    summed = rises.group_by("account_id").aggregate([("rise", "sum"), ("month", "count"), ("month", "max")])
    count, total = summed.num_rows, pc.sum(summed["rise_sum"]).as_py()
    last = rises.select(["account_id", "month", "mrr"]).rename_columns(["account_id", "month_max", "mrr"])
    summed = summed.join(last, keys=["account_id", "month_max"], join_type="left outer")
    summed = summed.take(pc.sort_indices(summed, [("rise_sum", "descending"), ("account_id", "ascending")]))
    return count, total, summed.select(["account_id", "rise_sum", "month_count", "month_max", "mrr"]
                                       ).combine_chunks()
