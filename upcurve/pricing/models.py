"""Price models: small validated documents in the conventions of the leading billing engines (Stripe, Lago,
OpenMeter), read from YAML or JSON.

Every model is a frozen pydantic model that forbids unknown keys, so a key another model uses (``tiers`` on a
``per_unit`` price) or a typo is an error naming the field. Amounts are decimals in the currency's major unit
(``0.0015`` is a tenth of a cent and a half); quantities are decimals too (5.001 units is not 5).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from upcurve.config import UniqueKeyLoader, read_text_file
from upcurve.errors import ConfigError

__all__ = [
    "MODELS", "Commitment", "Flat", "Graduated", "Package", "PerUnit", "Percentage", "PriceModel", "Tier",
    "TieredOverage", "Volume", "load_price_model", "parse_price_model", "tier_order_problems",
]

#: An amount of money or a quantity that cannot be negative.
NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _not_above(model: BaseModel, low: str, high: str) -> None:
    """Refuse a lower bound set above its upper bound (either may be unset)."""
    least, most = getattr(model, low), getattr(model, high)
    if least is not None and most is not None and least > most:
        raise ValueError(f"{low} {least} is above {high} {most}")


class _Spend(_Strict):
    """What every model may add: ``minimum_spend`` raises the period's charge to it (a separate true-up line),
    ``maximum_spend`` caps it (a discount line). ``currency``: the ISO code the amounts are in (default USD), which
    says the minor unit the total is rounded to."""

    minimum_spend: NonNegative | None = None
    maximum_spend: NonNegative | None = None
    currency: str = Field("USD", pattern=r"^[A-Za-z]{3}$")

    @model_validator(mode="after")
    def _spend_in_order(self) -> _Spend:
        _not_above(self, "minimum_spend", "maximum_spend")
        return self


class Flat(_Spend):
    """The same amount each period, whatever the usage."""

    model: Literal["flat"]
    flat_amount: NonNegative


class PerUnit(_Spend):
    """Each unit at ``unit_amount``."""

    model: Literal["per_unit"]
    unit_amount: NonNegative


class Tier(_Strict):
    """One tier: its units run up to ``up_to`` inclusive (``null``: no bound, the last tier only); the next tier
    starts right after it, so 5.001 units above ``up_to: 5`` belong to the next tier."""

    up_to: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] | None
    unit_amount: NonNegative = Decimal(0)
    flat_amount: NonNegative = Decimal(0)


class _Tiered(_Spend):
    tiers: list[Tier] = Field(min_length=1)

    @field_validator("tiers")
    @classmethod
    def _in_order(cls, tiers: list[Tier]) -> list[Tier]:
        problems = tier_order_problems([t.up_to for t in tiers])
        if problems:
            raise ValueError("; ".join(problems))
        return tiers


def tier_order_problems(bounds: list[Decimal | None]) -> list[str]:
    """What is wrong with tiers' ``up_to`` bounds, every problem: the last must be null (no bound), only the last
    may be, and they must rise."""
    problems = []
    if bounds and bounds[-1] is not None:
        problems.append(f"the last tier must have up_to: null (no bound), not {bounds[-1]}")
    problems += [f"only the last tier may have up_to: null; tier {i + 1} of {len(bounds)} has it"
                 for i, b in enumerate(bounds[:-1]) if b is None]
    previous: tuple[int, Decimal] | None = None
    for i, bound in enumerate(bounds):
        if bound is None:
            continue
        if previous is not None and bound <= previous[1]:
            problems.append(f"tiers must rise: tier {i + 1} ends at up_to {bound}, not above tier {previous[0] + 1}'s "
                            f"{previous[1]}")
        previous = (i, bound)
    return problems


def _raw_bounds(tiers: Any) -> list[Decimal | None] | None:
    """The ``up_to`` of raw tiers, where every one reads as a number or null (else None: nothing to check)."""
    if not isinstance(tiers, list) or not all(isinstance(t, dict) for t in tiers):
        return None
    bounds: list[Decimal | None] = []
    for tier in tiers:
        value = tier.get("up_to")
        try:
            bounds.append(None if value is None else Decimal(str(value)))
        except ArithmeticError:
            return None
    return bounds


class Graduated(_Tiered):
    """Each tier prices its own units; a tier's ``flat_amount`` is charged once the tier is reached (the first
    tier's even at zero usage)."""

    model: Literal["graduated"]


class Volume(_Tiered):
    """Every unit at the price of the tier the total falls in, plus that tier's ``flat_amount``."""

    model: Literal["volume"]


class Package(_Spend):
    """Units sold in packages: ``free_units`` are taken off first, then packages of ``package_size`` are counted
    rounding up, each at ``package_amount``."""

    model: Literal["package"]
    package_size: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    package_amount: NonNegative
    free_units: NonNegative = Decimal(0)


class Percentage(_Spend):
    """A share of each event's amount (a payment, a transaction): ``rate`` (0.013 is 1.3%) plus ``fixed_amount``
    per event. The free allowance (``free_events`` events, ``free_amount`` of event amounts) ends at whichever of
    its limits is reached first; ``per_event_min`` and ``per_event_max`` bound each event's rate plus fixed fee, and
    do not apply to a fully free event."""

    model: Literal["percentage"]
    rate: Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]
    fixed_amount: NonNegative = Decimal(0)
    free_events: Annotated[int, Field(ge=0)] | None = None
    free_amount: NonNegative | None = None
    per_event_min: NonNegative | None = None
    per_event_max: NonNegative | None = None

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Percentage:
        _not_above(self, "per_event_min", "per_event_max")
        return self


class TieredOverage(_Spend):
    """A base amount that includes ``included_units``; each unit beyond at ``overage_unit_amount``."""

    model: Literal["tiered_overage"]
    base_amount: NonNegative
    included_units: NonNegative
    overage_unit_amount: NonNegative


class Commitment(_Spend):
    """A committed spend: usage is valued at ``unit_amount``; below the commitment the period is billed at the
    commitment when ``true_up`` is on (else at the usage value); above it, the excess is billed at
    ``overage_factor`` times its value."""

    model: Literal["commitment"]
    commitment_amount: NonNegative
    unit_amount: NonNegative
    overage_factor: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = Decimal(1)
    true_up: bool = True


#: Any price model.
PriceModel = Flat | PerUnit | Graduated | Volume | Package | Percentage | TieredOverage | Commitment
_ADAPTER: TypeAdapter[PriceModel] = TypeAdapter(Annotated[PriceModel, Field(discriminator="model")])
MODELS = ("flat", "per_unit", "graduated", "volume", "package", "percentage", "tiered_overage", "commitment")


def field_location(loc: tuple[Any, ...]) -> str:
    """A validation error's location as a user writes it: ``('graduated', 'tiers', 1, 'up_to')`` →
    ``tiers[2].up_to`` (a price model union's tag left out; list items counted from 1)."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if i == 0 and part in MODELS:
            continue
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part + 1}]"]
        else:
            parts.append(str(part))
    return ".".join(parts)


def parse_price_model(data: Any, where: str = "price model") -> PriceModel:
    """A price model from plain data (a parsed YAML or JSON document).

    Raises
    ------
    ConfigError
        Naming ``where`` and every wrong field: an unknown key, a key the model does not use, tiers out of order, a
        bounded last tier, a negative amount, an unknown ``model``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a price model is a mapping with a `model` key, not a {type(data).__name__}")
    if "model" not in data:
        raise ConfigError(f"{where}: model: missing; one of {', '.join(MODELS)}")
    if data["model"] not in MODELS:
        raise ConfigError(f"{where}: model: {data['model']!r} is not a price model; one of {', '.join(MODELS)}")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        details = []
        # the tiers' order is checked only once every tier parses: check it on the raw tiers too, so a file shows
        # every problem at once
        bounds = _raw_bounds(data.get("tiers")) if data["model"] in ("graduated", "volume") else None
        if bounds is not None and not any(e["loc"][1:2] == ("tiers",) and len(e["loc"]) == 2 for e in exc.errors()):
            details += [f"tiers: {problem}" for problem in tier_order_problems(bounds)]
        for e in exc.errors():
            field = field_location(e["loc"])
            message = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                message = f"not a field of a {data['model']} price"
            details.append(f"{field}: {message}" if field else message)
        raise ConfigError(f"{where}: " + "; ".join(details)) from None


def price_model_from_json(text: str, where: str = "price model") -> PriceModel:
    """A price model from a JSON document (a plan's ``price_model`` value), its numbers read as exact decimals.

    Raises
    ------
    ConfigError
        The text is not JSON, or the model is invalid (:func:`parse_price_model`).
    """
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid JSON: {exc}") from None
    return parse_price_model(data, where)


def load_price_model(path: str | Path) -> PriceModel:
    """Read a price model from a YAML or JSON file (JSON is YAML too; ``.json`` files are read as strict JSON).

    Raises
    ------
    ConfigError
        The file is missing or unreadable, not YAML/JSON, or the model is invalid (:func:`parse_price_model`).
    """
    path = Path(path)
    return parse_price_model(read_exact_document(path, "price model file"), str(path))


def read_exact_document(path: Path, what: str) -> Any:
    """A YAML or JSON file's data (``.json`` files as strict JSON), its decimal numbers read exactly (``0.1`` stays
    one tenth) and a key written twice an error.

    Raises
    ------
    ConfigError
        The file is missing or unreadable (naming it as ``what``), or not valid YAML/JSON.
    """
    text = read_text_file(path, what)
    try:
        return json.loads(text, parse_float=Decimal) if path.suffix.lower() == ".json" else _yaml_exact(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") \
            from None


class _ExactLoader(UniqueKeyLoader):
    """The settings file's YAML loader (a key written twice is an error), reading floats as exact decimals (``0.1``
    stays one tenth)."""


def _exact_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | float:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text.lower().lstrip("+-") in (".inf", ".nan"):
        return float(text.replace(".", ""))  # refused by the model, with the field's name
    return Decimal(text)


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _exact_float)


def _yaml_exact(text: str) -> Any:
    return yaml.load(text, Loader=_ExactLoader)
