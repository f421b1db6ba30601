"""Pricing: price models (flat, per unit, graduated, volume, package, percentage, overage, commitment), what a usage
quantity costs under each, and what-if pricing on the book of business.

Pure functions from quantities and price models to charges, below every package that prices usage, so the
simulator and the revenue tables can share one calculator.
"""

from upcurve.pricing.models import (
    MODELS,
    PriceModel,
    Tier,
    load_price_model,
    parse_price_model,
    price_model_from_json,
)
from upcurve.pricing.quote import Quote, QuoteLine, minor_unit_digits, quote

__all__ = ["MODELS", "PriceModel", "Quote", "QuoteLine", "Tier", "load_price_model", "minor_unit_digits",
           "parse_price_model", "price_model_from_json", "quote"]
