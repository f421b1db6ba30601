"""What one period's usage costs under a price model, line by line, exactly.

Every amount is a :class:`~decimal.Decimal`; the lines carry exact amounts (a tenth of a cent stays a tenth of a
cent) and the period's total is rounded once, at the end, to the currency's minor unit, half away from zero (as
billing engines round an invoice line). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

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

__all__ = ["Quote", "QuoteLine", "minor_unit_digits", "quote"]

#: ISO 4217 currencies whose minor unit is not the cent: none (JPY, KRW…) or a thousandth (KWD, BHD…).
_MINOR_DIGITS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}
_ZERO = Decimal(0)


def minor_unit_digits(currency: str) -> int:
    """The digits after the point of a currency's minor unit (ISO 4217): 2 but for the listed exceptions.

    >>> minor_unit_digits("usd"), minor_unit_digits("JPY"), minor_unit_digits("KWD")
    (2, 0, 3)
    """
    return _MINOR_DIGITS.get(currency.upper(), 2)


@dataclass(frozen=True)
class QuoteLine:
    """One line of a quote: what it is, the quantity and unit amount where it has them, and its exact amount."""

    description: str
    amount: Decimal
    quantity: Decimal | None = None
    unit_amount: Decimal | None = None

    def as_json(self) -> dict[str, str | None]:
        """Decimals as strings, never floats: a JSON reader keeps every digit."""
        return {"description": self.description, "quantity": _text(self.quantity),
                "unit_amount": _text(self.unit_amount), "amount": _text(self.amount)}


@dataclass(frozen=True)
class Quote:
    """A period's charge: ``amount`` (rounded to the currency's minor unit), ``unrounded_amount`` (the lines' exact
    sum) and the ``lines`` that make it up."""

    model: str
    currency: str
    amount: Decimal
    unrounded_amount: Decimal
    lines: tuple[QuoteLine, ...] = field(default_factory=tuple)
    usage: Decimal | None = None
    events: int | None = None

    def as_json(self) -> dict[str, object]:
        return {"model": self.model, "currency": self.currency, "amount": _text(self.amount),
                "unrounded_amount": _text(self.unrounded_amount), "usage": _text(self.usage), "events": self.events,
                "lines": [line.as_json() for line in self.lines]}


def _text(value: Decimal | None) -> str | None:
    """A decimal as plain text (``1E+1`` → ``10``; trailing zeros of a computed value kept as computed)."""
    if value is None:
        return None
    return format(value, "f")


def quote(model: PriceModel, *, usage: Decimal | int | str | None = None,
          events: Sequence[Decimal | int | str] | None = None) -> Quote:
    """Price one period: ``usage`` units (every model but ``percentage``) or the ``events``' amounts
    (``percentage``).

    Formula
    -------
    The model's lines (see each model in :mod:`upcurve.pricing.models`), then ``minimum_spend`` (a true-up line of
    ``minimum_spend − subtotal`` when the subtotal is below it) or ``maximum_spend`` (a discount line of
    ``maximum_spend − subtotal`` when above); ``amount`` = the lines' sum rounded half away from zero to the
    currency's minor unit.

    Edge cases
    ----------
    Zero usage is priced (a graduated model's first flat fee, a volume model's first tier, a flat fee, a commitment
    with true-up); fractional usage is priced as given (packages round up). A negative usage or event amount, or
    the wrong kind of input for the model, is a :class:`~upcurve.errors.ConfigError` naming it.
    """
    if isinstance(model, Percentage):
        if events is None or usage is not None:
            raise ConfigError("a percentage price is quoted on the events' amounts, not on a usage quantity")
        amounts, wrong = [], []
        for i, event in enumerate(events, start=1):  # every bad event named at once
            try:
                amounts.append(_amount(event, f"event {i}"))
            except ConfigError as exc:
                wrong.append(str(exc))
        if wrong:
            raise ConfigError("; ".join(wrong))
        lines = _percentage(model, amounts)
        count: int | None = len(amounts)
        quantity = None
    else:
        if usage is None or events is not None:
            raise ConfigError(f"a {model.model} price is quoted on a usage quantity, not on events' amounts")
        quantity = _amount(usage, "usage")
        lines = _lines(model, quantity)
        count = None
    subtotal = sum((line.amount for line in lines), _ZERO)
    if model.minimum_spend is not None and subtotal < model.minimum_spend:
        lines.append(QuoteLine("minimum spend true-up", model.minimum_spend - subtotal))
    elif model.maximum_spend is not None and subtotal > model.maximum_spend:
        lines.append(QuoteLine("maximum spend discount", model.maximum_spend - subtotal))
    exact = sum((line.amount for line in lines), _ZERO)
    digits = minor_unit_digits(model.currency)
    rounded = exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return Quote(model=model.model, currency=model.currency.upper(), amount=rounded, unrounded_amount=exact,
                 lines=tuple(lines), usage=quantity, events=count)


def _amount(value: Decimal | int | str, what: str) -> Decimal:
    try:
        found = Decimal(str(value).strip())
    except ArithmeticError:
        raise ConfigError(f"{what}: {value!r} is not a number") from None
    if not found.is_finite() or found < 0:
        raise ConfigError(f"{what}: {value!r} must be a finite number at or above zero")
    return found


def _lines(model: PriceModel, q: Decimal) -> list[QuoteLine]:
    if isinstance(model, Flat):
        return [QuoteLine("flat fee", model.flat_amount)]
    if isinstance(model, PerUnit):
        return [QuoteLine("units", q * model.unit_amount, q, model.unit_amount)]
    if isinstance(model, Graduated):
        return _graduated(model, q)
    if isinstance(model, Volume):
        return _volume(model, q)
    if isinstance(model, Package):
        billable = max(q - model.free_units, _ZERO)
        packages = (billable / model.package_size).to_integral_value(rounding=ROUND_CEILING)
        lines = [QuoteLine(f"packages of {_text(model.package_size)}", packages * model.package_amount, packages,
                           model.package_amount)]
        if model.free_units:
            lines.insert(0, QuoteLine("free units", _ZERO, min(q, model.free_units), _ZERO))
        return lines
    if isinstance(model, TieredOverage):
        over = max(q - model.included_units, _ZERO)
        return [QuoteLine(f"base, {_text(model.included_units)} units included", model.base_amount),
                QuoteLine("overage units", over * model.overage_unit_amount, over, model.overage_unit_amount)]
    if isinstance(model, Commitment):
        return _commitment(model, q)
    raise ConfigError(f"{model.model}: not priced on a usage quantity")


def _graduated(model: Graduated, q: Decimal) -> list[QuoteLine]:
    lines, start = [], _ZERO
    for i, tier in enumerate(model.tiers, start=1):
        if i > 1 and q <= start:  # a tier is reached only by usage above the previous tier's bound
            break
        top = q if tier.up_to is None else min(q, tier.up_to)
        units = max(top - start, _ZERO)
        label = f"tier {i} ({_text(start)}–{'∞' if tier.up_to is None else _text(tier.up_to)})"
        lines.append(QuoteLine(f"{label} units", units * tier.unit_amount, units, tier.unit_amount))
        if tier.flat_amount:
            lines.append(QuoteLine(f"{label} flat fee", tier.flat_amount))
        if tier.up_to is None:
            break
        start = tier.up_to
    return lines


def _volume(model: Volume, q: Decimal) -> list[QuoteLine]:
    at = next(i for i, t in enumerate(model.tiers) if t.up_to is None or q <= t.up_to)
    tier = model.tiers[at]
    lines = [QuoteLine(f"all units at tier {at + 1}", q * tier.unit_amount, q, tier.unit_amount)]
    if tier.flat_amount:
        lines.append(QuoteLine(f"tier {at + 1} flat fee", tier.flat_amount))
    return lines


def _commitment(model: Commitment, q: Decimal) -> list[QuoteLine]:
    value = q * model.unit_amount
    if value <= model.commitment_amount:
        lines = [QuoteLine("usage", value, q, model.unit_amount)]
        if model.true_up and value < model.commitment_amount:
            lines.append(QuoteLine("commitment true-up", model.commitment_amount - value))
        return lines
    excess = value - model.commitment_amount
    return [QuoteLine("usage within the commitment", model.commitment_amount),
            QuoteLine(f"overage at {_text(model.overage_factor)}× the usage value", excess * model.overage_factor,
                      excess, model.overage_factor)]


def _percentage(model: Percentage, amounts: list[Decimal]) -> list[QuoteLine]:
    events_left = model.free_events
    amount_left = model.free_amount
    has_allowance = events_left is not None or amount_left is not None
    free_total, charged_base, fixed, raised, lowered = _ZERO, _ZERO, _ZERO, _ZERO, _ZERO
    free_events = paid_events = 0
    for amount in amounts:
        paid = amount
        if has_allowance and (events_left is None or events_left > 0) and (amount_left is None or amount_left > 0):
            free = amount if amount_left is None else min(amount, amount_left)
            paid = amount - free
            free_total += free
            if events_left is not None:
                events_left -= 1
            if amount_left is not None:
                amount_left -= free
            if paid == 0:
                free_events += 1
                continue  # a fully free event pays no fee and no minimum
        paid_events += 1
        fee = paid * model.rate + model.fixed_amount
        charged_base += paid
        fixed += model.fixed_amount
        if model.per_event_min is not None and fee < model.per_event_min:
            raised += model.per_event_min - fee
        elif model.per_event_max is not None and fee > model.per_event_max:
            lowered += model.per_event_max - fee
    lines = [QuoteLine(f"{_text(model.rate * 100)}% of {_text(charged_base)} over {paid_events} event(s)",
                       charged_base * model.rate, charged_base, model.rate)]
    if has_allowance:
        lines.insert(0, QuoteLine(f"free allowance: {_text(free_total)} of event amounts, {free_events} event(s) "
                                  "fully free", _ZERO, free_total, _ZERO))
    if model.fixed_amount:
        lines.append(QuoteLine("fixed fee per event", fixed, Decimal(paid_events), model.fixed_amount))
    if raised:
        lines.append(QuoteLine("per-event minimum", raised))
    if lowered:
        lines.append(QuoteLine("per-event maximum", lowered))
    return lines
