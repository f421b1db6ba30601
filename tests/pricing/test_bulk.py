"""Bulk pricing in the engine gives, for every usage record, the amount the one-at-a-time calculator gives."""

from __future__ import annotations

from decimal import Decimal

import ibis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upcurve.errors import ConfigError
from upcurve.pricing import parse_price_model, quote
from upcurve.pricing.bulk import charge_expression

amounts = st.decimals(min_value=0, max_value=500, places=4, allow_nan=False, allow_infinity=False)
quantities = st.lists(st.decimals(min_value=0, max_value=20000, places=3, allow_nan=False, allow_infinity=False),
                      min_size=1, max_size=20)


@st.composite
def price_models(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["flat", "per_unit", "graduated", "volume", "package", "tiered_overage",
                                 "commitment"]))
    spend = {}
    if draw(st.booleans()):
        low = draw(amounts)
        spend = {"minimum_spend": low, "maximum_spend": low + draw(amounts) * 10}
    if kind in ("graduated", "volume"):
        bounds = sorted(draw(st.sets(st.integers(1, 15000), max_size=3)))
        return {"model": kind, **spend, "tiers": [{"up_to": b, "unit_amount": draw(amounts),
                                                   "flat_amount": draw(amounts)} for b in [*bounds, None]]}
    fields = {"flat": {"flat_amount": draw(amounts)}, "per_unit": {"unit_amount": draw(amounts)},
              "package": {"package_size": draw(st.integers(1, 500)), "package_amount": draw(amounts),
                          "free_units": draw(st.integers(0, 300))},
              "tiered_overage": {"base_amount": draw(amounts), "included_units": draw(st.integers(0, 5000)),
                                 "overage_unit_amount": draw(amounts)},
              "commitment": {"commitment_amount": draw(amounts) * 20, "unit_amount": draw(amounts),
                             "overage_factor": draw(st.sampled_from(["1", "1.25", "0.8"])),
                             "true_up": draw(st.booleans())}}[kind]
    return {"model": kind, **spend, **fields, "currency": draw(st.sampled_from(["USD", "JPY", "KWD"]))}


@settings(max_examples=60, deadline=None)
@given(data=price_models(), usage=quantities)
def test_the_engine_prices_every_record_as_the_calculator_does(data: dict, usage: list[Decimal]) -> None:
    model = parse_price_model(data)
    table = ibis.memtable({"row": list(range(len(usage))), "quantity": [str(q) for q in usage]}).mutate(
        quantity=ibis._.quantity.cast("decimal(38, 6)"))
    priced = table.mutate(charge=charge_expression(model, table.quantity)).order_by("row")
    charged = ibis.duckdb.connect().to_pyarrow(priced)["charge"].to_pylist()
    assert charged == [quote(model, usage=q).amount for q in usage]


def test_what_the_engine_cannot_price_exactly_is_refused() -> None:
    q = ibis.memtable({"quantity": [1.0]}).quantity
    with pytest.raises(ConfigError, match="charged per event"):
        charge_expression(parse_price_model({"model": "percentage", "rate": "0.01"}), q)
    with pytest.raises(ConfigError, match=r"unit_amount: 0.0000000000001 has more than 12 decimal places"):
        charge_expression(parse_price_model({"model": "per_unit", "unit_amount": "0.0000000000001"}), q)
