"""Pricing many usage quantities at once, where the data lives: a price model as an Ibis expression over a quantity
column, the same arithmetic as :func:`upcurve.pricing.quote` in exact decimals, so a book of business is priced by
the engine (DuckDB, PostgreSQL, Spark) rather than row by row in Python.

Quantities are read at 6 decimal places and amounts at 12 (Stripe's finest unit amount); each usage record's
charge is rounded once to the currency's minor unit, half away from zero, as :func:`~upcurve.pricing.quote` does.
"""

from __future__ import annotations

from decimal import Decimal

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from upcurve.errors import ConfigError
from upcurve.pricing.models import (
    Commitment,
    Flat,
    Graduated,
    Package,
    Percentage,
    PerUnit,
    PriceModel,
    TieredOverage,
    Volume,
)
from upcurve.pricing.quote import minor_unit_digits

__all__ = ["AMOUNT_SCALE", "QUANTITY_SCALE", "charge_expression"]

#: Digits after the point of quantities and of amounts in the engine's decimals.
QUANTITY_SCALE, AMOUNT_SCALE = 6, 12
_QUANTITY = dt.Decimal(38, QUANTITY_SCALE)
_AMOUNT = dt.Decimal(38, AMOUNT_SCALE)


def _exact(value: Decimal, field: str, places: int) -> Decimal:
    if value != value.quantize(Decimal(1).scaleb(-places)):
        raise ConfigError(f"{field}: {value:f} has more than {places} decimal places, more than the engine's decimals "
                          "keep exactly")
    return value


def _money(value: Decimal, field: str) -> ir.DecimalScalar:
    return ibis.literal(_exact(value, field, AMOUNT_SCALE), type=_AMOUNT)


def _units(value: Decimal, field: str) -> ir.DecimalScalar:
    return ibis.literal(_exact(value, field, QUANTITY_SCALE), type=_QUANTITY)


def charge_expression(model: PriceModel, quantity: ir.NumericValue) -> ir.DecimalValue:
    """Each row's charge for ``quantity`` units under ``model``, rounded to the currency's minor unit: the total
    :func:`~upcurve.pricing.quote` gives for that usage (a test holds the two equal).

    Raises
    ------
    ConfigError
        For a ``percentage`` model (priced per event, with an allowance that runs across events: use
        :func:`~upcurve.pricing.quote`), or an amount with more decimal places than the engine keeps.
    """
    q = quantity.cast(_QUANTITY)
    zero = ibis.literal(Decimal(0), type=_AMOUNT)
    charge: ir.DecimalValue
    if isinstance(model, Flat):
        charge = _money(model.flat_amount, "flat_amount")
    elif isinstance(model, PerUnit):
        charge = q * _money(model.unit_amount, "unit_amount")
    elif isinstance(model, Graduated):
        charge = zero
        start = Decimal(0)
        for i, tier in enumerate(model.tiers):
            over = ibis.greatest(q - _units(start, f"tiers[{i + 1}]"), 0)
            units = over if tier.up_to is None else ibis.least(over, _units(tier.up_to - start, f"tiers[{i + 1}]"))
            reached = ibis.literal(True) if i == 0 else q > _units(start, f"tiers[{i + 1}].up_to")
            part = units * _money(tier.unit_amount, f"tiers[{i + 1}].unit_amount") + \
                _money(tier.flat_amount, f"tiers[{i + 1}].flat_amount")
            charge = charge + reached.ifelse(part, zero)
            start = tier.up_to if tier.up_to is not None else start
    elif isinstance(model, Volume):
        charge = ibis.cases(*[
            (q <= _units(tier.up_to, f"tiers[{i + 1}].up_to") if tier.up_to is not None else ibis.literal(True),
             q * _money(tier.unit_amount, f"tiers[{i + 1}].unit_amount") +
             _money(tier.flat_amount, f"tiers[{i + 1}].flat_amount"))
            for i, tier in enumerate(model.tiers)])
    elif isinstance(model, Package):
        # packages counted in whole millionths, so an exact multiple never rounds up to one package more
        scale = 10 ** QUANTITY_SCALE
        billable = (ibis.greatest(q - _units(model.free_units, "free_units"), 0) * scale).cast("int64")
        size = int(_exact(model.package_size, "package_size", QUANTITY_SCALE) * scale)
        packages = (billable + (size - 1)) // size
        charge = packages.cast(_QUANTITY) * _money(model.package_amount, "package_amount")
    elif isinstance(model, TieredOverage):
        over = ibis.greatest(q - _units(model.included_units, "included_units"), 0)
        charge = _money(model.base_amount, "base_amount") + over * _money(model.overage_unit_amount,
                                                                           "overage_unit_amount")
    elif isinstance(model, Commitment):
        value = q * _money(model.unit_amount, "unit_amount")
        commitment = _money(model.commitment_amount, "commitment_amount")
        below = ibis.greatest(value, commitment) if model.true_up else value
        charge = (value <= commitment).ifelse(
            below, commitment + (value - commitment) * _money(model.overage_factor, "overage_factor"))
    elif isinstance(model, Percentage):
        raise ConfigError("a percentage price is charged per event, with an allowance across events: price it with "
                          "upcurve.pricing.quote (events=…)")
    else:  # pragma: no cover - every model is listed above
        raise ConfigError(f"{model.model}: no bulk pricing")
    if model.minimum_spend is not None:
        charge = ibis.greatest(charge, _money(model.minimum_spend, "minimum_spend"))
    if model.maximum_spend is not None:
        charge = ibis.least(charge, _money(model.maximum_spend, "maximum_spend"))
    digits = minor_unit_digits(model.currency)
    return charge.round(digits).cast(dt.Decimal(38, digits))

