"""Price models and the calculator: hand-computed amounts for every model and edge, the published worked examples
of billing engines' documentation as golden cases, invariants under hypothesis, and invalid models named."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upcurve.errors import ConfigError
from upcurve.pricing import load_price_model, parse_price_model, quote
from upcurve.pricing.models import PerUnit

D = Decimal


def price(model: dict, usage: str | int | None = None, events: list[str] | None = None) -> Decimal:
    return quote(parse_price_model(model), usage=usage, events=events).amount


GRADUATED = {"model": "graduated", "tiers": [
    {"up_to": 5, "unit_amount": "7", "flat_amount": "2"},
    {"up_to": 10, "unit_amount": "6.5", "flat_amount": "1"},
    {"up_to": None, "unit_amount": "6"},
]}
VOLUME = {**GRADUATED, "model": "volume"}


@pytest.mark.parametrize(("usage", "expected"), [
    ("0", "2"),  # the first tier's flat fee even at zero
    ("1", "9"),
    ("5", "37"),  # the tier's edge: 5 × 7 + 2
    ("5.001", "38.0065"),  # just past it: the next tier is reached, its flat fee charged
    ("10", "70.5"),  # 35 + 2 + 32.5 + 1
    ("11", "76.5"),
    ("2.5", "19.5"),
])
def test_graduated_by_hand(usage: str, expected: str) -> None:
    q = quote(parse_price_model(GRADUATED), usage=usage)
    assert q.unrounded_amount == D(expected)
    assert q.amount == D(expected).quantize(D("0.01"))
    assert sum(line.amount for line in q.lines) == q.unrounded_amount


@pytest.mark.parametrize(("usage", "expected"), [
    ("0", "2"), ("5", "37"), ("5.001", "33.5065"), ("10", "66"), ("10.5", "63"), ("11", "66"),
])
def test_volume_by_hand(usage: str, expected: str) -> None:
    assert quote(parse_price_model(VOLUME), usage=usage).unrounded_amount == D(expected)


@pytest.mark.parametrize(("model", "usage", "expected"), [
    ({"model": "flat", "flat_amount": "49"}, "0", "49.00"),
    ({"model": "flat", "flat_amount": "49"}, "1000", "49.00"),
    ({"model": "per_unit", "unit_amount": "0.0015"}, "3333", "5.00"),  # 4.9995 rounded half up once, at the end
    ({"model": "per_unit", "unit_amount": "0.0015"}, "0", "0.00"),
    ({"model": "package", "package_size": 100, "package_amount": "5", "free_units": 100}, "100", "0.00"),
    ({"model": "package", "package_size": 100, "package_amount": "5", "free_units": 100}, "100.5", "5.00"),
    ({"model": "package", "package_size": 100, "package_amount": "5"}, "0", "0.00"),
    ({"model": "package", "package_size": 100, "package_amount": "5"}, "200", "10.00"),
    ({"model": "tiered_overage", "base_amount": "99", "included_units": 1000, "overage_unit_amount": "0.05"},
     "1000", "99.00"),
    ({"model": "tiered_overage", "base_amount": "99", "included_units": 1000, "overage_unit_amount": "0.05"},
     "1250.5", "111.53"),  # 99 + 250.5 × 0.05 = 111.525, half up
    ({"model": "commitment", "commitment_amount": "1000", "unit_amount": "2"}, "100", "1000.00"),  # true-up
    ({"model": "commitment", "commitment_amount": "1000", "unit_amount": "2", "true_up": False}, "100", "200.00"),
    ({"model": "commitment", "commitment_amount": "1000", "unit_amount": "2"}, "500", "1000.00"),
    ({"model": "commitment", "commitment_amount": "1000", "unit_amount": "2", "overage_factor": "1.2"},
     "600", "1240.00"),  # 1000 + (1200 − 1000) × 1.2
    ({"model": "per_unit", "unit_amount": "10", "minimum_spend": "100", "maximum_spend": "200"}, "8", "100.00"),
    ({"model": "per_unit", "unit_amount": "10", "minimum_spend": "100", "maximum_spend": "200"}, "25", "200.00"),
    ({"model": "per_unit", "unit_amount": "10", "minimum_spend": "100", "maximum_spend": "200"}, "12", "120.00"),
    ({"model": "per_unit", "unit_amount": "1.5", "currency": "JPY"}, "3", "5"),  # 4.5 yen: no minor unit
    ({"model": "per_unit", "unit_amount": "0.0015", "currency": "KWD"}, "3", "0.005"),  # a thousandth of a dinar
])
def test_every_model_by_hand(model: dict, usage: str, expected: str) -> None:
    q = quote(parse_price_model(model), usage=usage)
    assert str(q.amount) == expected


def test_minimum_and_maximum_spend_are_lines_of_their_own() -> None:
    model = parse_price_model({"model": "per_unit", "unit_amount": "10", "minimum_spend": "100",
                               "maximum_spend": "200"})
    low = quote(model, usage=8)
    assert [(line.description, line.amount) for line in low.lines][-1] == ("minimum spend true-up", D("20"))
    high = quote(model, usage=25)
    assert [(line.description, line.amount) for line in high.lines][-1] == ("maximum spend discount", D("-50"))


PERCENTAGE = {"model": "percentage", "rate": "0.02", "fixed_amount": "0.10", "free_events": 3, "free_amount": "500",
              "per_event_min": "1", "per_event_max": "10"}


def test_percentage_by_hand() -> None:
    # events 100, 100, 100: three fully free (the allowance's count ends first); 1000: 2% + 0.10 = 20.10, capped
    # at 10; 20: 0.40 + 0.10 = 0.50, raised to 1; 300: 6.10
    q = quote(parse_price_model(PERCENTAGE), events=["100", "100", "100", "1000", "20", "300"])
    assert q.unrounded_amount == D("10") + D("1") + D("6.10")
    # the amount limit ends the allowance first: 400 free, then 100 of the 450; the other 350 pay 7 + 0.10
    partly = quote(parse_price_model(PERCENTAGE), events=["400", "450"])
    assert partly.unrounded_amount == D("7.10")
    assert quote(parse_price_model(PERCENTAGE), events=[]).amount == D("0.00")
    plain = {"model": "percentage", "rate": "0.013", "fixed_amount": "0.30"}
    # (1.3 + 0.30) + (3.2565 + 0.30) = 5.1565, rounded once: 5.16
    assert quote(parse_price_model(plain), events=["100", "250.50"]).unrounded_amount == D("5.1565")
    assert price(plain, events=["100", "250.50"]) == D("5.16")


# The published worked examples of billing engines' documentation (amounts as the pages state them).
GOLDEN = [
    # https://docs.stripe.com/subscriptions/pricing-models/tiered-pricing: 1-5 fonts at 7 USD, 6-10 at 6.5, 11+ at
    # 6; volume-based: 5 fonts cost 35 USD, 6 fonts 39 USD (all at the 6-10 rate)
    ("stripe volume, 5", {"model": "volume", "tiers": [{"up_to": 5, "unit_amount": 7}, {"up_to": 10,
                                                                                           "unit_amount": "6.5"},
                                                       {"up_to": None, "unit_amount": 6}]}, "5", None, "35.00"),
    ("stripe volume, 6", {"model": "volume", "tiers": [{"up_to": 5, "unit_amount": 7}, {"up_to": 10,
                                                                                           "unit_amount": "6.5"},
                                                       {"up_to": None, "unit_amount": 6}]}, "6", None, "39.00"),
    # https://getlago.com/docs/guide/plans/charges/charge-models/volume: 65,000 API calls cost
    # 65,000 × $0.0006 + $10 = $49
    ("lago volume", {"model": "volume", "tiers": [
        {"up_to": 10000, "unit_amount": "0.0010", "flat_amount": 10},
        {"up_to": 50000, "unit_amount": "0.0008", "flat_amount": 10},
        {"up_to": 100000, "unit_amount": "0.0006", "flat_amount": 10},
        {"up_to": None, "unit_amount": "0.0004", "flat_amount": 10}]}, "65000", None, "49.00"),
    # https://getlago.com/docs/guide/plans/charges/charge-models/graduated ($1 for the first 100 calls, $0.50 the
    # next 100, $0.10 beyond) and its v2 page: 250 API calls cost 155 USD
    ("lago graduated", {"model": "graduated", "tiers": [
        {"up_to": 100, "unit_amount": 1}, {"up_to": 200, "unit_amount": "0.50"},
        {"up_to": None, "unit_amount": "0.10"}]}, "250", None, "155.00"),
    # https://getlago.com/docs/guide/plans/charges/charge-models/package: $5 per 100 units, the first 100 free;
    # 201 units cost $10
    ("lago package", {"model": "package", "package_size": 100, "package_amount": 5, "free_units": 100}, "201", None,
     "10.00"),
    # https://getlago.com/docs/v2/guide/rate-cards/pricing-models/percentage: 1,000 USD of transactions at 2% is
    # 20 USD
    ("lago percentage", {"model": "percentage", "rate": "0.02"}, None, ["1000"], "20.00"),
    # https://zuplo.com/docs/articles/monetization/pricing-models: 15,000 units graduated over 0-1,000 at $0.10,
    # 1,001-10,000 at $0.05, 10,001+ at $0.01 cost $600; volume over the same tiers, $150
    ("zuplo graduated", {"model": "graduated", "tiers": [
        {"up_to": 1000, "unit_amount": "0.10"}, {"up_to": 10000, "unit_amount": "0.05"},
        {"up_to": None, "unit_amount": "0.01"}]}, "15000", None, "600.00"),
    ("zuplo volume", {"model": "volume", "tiers": [
        {"up_to": 1000, "unit_amount": "0.10"}, {"up_to": 10000, "unit_amount": "0.05"},
        {"up_to": None, "unit_amount": "0.01"}]}, "15000", None, "150.00"),
    # https://openmeter.io/docs/billing/product-catalog/pricing-models (OpenMeter's pricing models; the same
    # examples in Kong's Metering & Billing guide): tiers 0-1,000 at $0.3, 1,001-5,000 at $0.2, 5,001+ at $0.1:
    # 6,000 units cost $1,200 graduated, $600 volume; a $500 flat first tier (0-1,000) then $0.1: 2,000 units cost
    # $600, and 0 units $500; the first unit at $500, 2-1,000 free, then $0.1: 2,000 units $600, 0 units $0;
    # packages of 20 units at $10: 0 → $0, 20 → $10, 20.1 → $20, 98 → $50; 900 units free, then $0.1: 1,000 units
    # cost $10
    *[(f"openmeter {kind}", {"model": kind, "tiers": [
        {"up_to": 1000, "unit_amount": "0.3"}, {"up_to": 5000, "unit_amount": "0.2"},
        {"up_to": None, "unit_amount": "0.1"}]}, "6000", None, total)
      for kind, total in (("graduated", "1200.00"), ("volume", "600.00"))],
    *[(f"openmeter flat first tier, {units}", {"model": "graduated", "tiers": [
        {"up_to": 1000, "unit_amount": 0, "flat_amount": 500}, {"up_to": None, "unit_amount": "0.1"}]}, units, None,
       total) for units, total in (("2000", "600.00"), ("0", "500.00"))],
    *[(f"openmeter first unit, {units}", {"model": "graduated", "tiers": [
        {"up_to": 1, "unit_amount": 500}, {"up_to": 1000, "unit_amount": 0}, {"up_to": None, "unit_amount": "0.1"}]},
       units, None, total) for units, total in (("2000", "600.00"), ("0", "0.00"))],
    *[(f"openmeter package, {units}", {"model": "package", "package_size": 20, "package_amount": 10}, units, None,
       total) for units, total in (("0", "0.00"), ("20", "10.00"), ("20.1", "20.00"), ("98", "50.00"))],
    ("openmeter overage", {"model": "tiered_overage", "included_units": 900, "overage_unit_amount": "0.1",
                           "base_amount": 0}, "1000", None, "10.00"),
    # https://docs.zuora.com (charge-level min/max for per unit pricing): $10 a unit, minimum $100, maximum $200:
    # 8 units → $100; at $12, min $120, max $240: 25 units → $240, 10 units → $120
    ("zuora minimum", {"model": "per_unit", "unit_amount": 10, "minimum_spend": 100, "maximum_spend": 200}, "8", None,
     "100.00"),
    ("zuora maximum", {"model": "per_unit", "unit_amount": 12, "minimum_spend": 120, "maximum_spend": 240}, "25",
     None, "240.00"),
    ("zuora within", {"model": "per_unit", "unit_amount": 12, "minimum_spend": 120, "maximum_spend": 240}, "10",
     None, "120.00"),
]


@pytest.mark.parametrize(("name", "model", "usage", "events", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_published_worked_examples(name: str, model: dict, usage: str | None, events: list[str] | None,
                                   expected: str) -> None:
    assert str(price(model, usage=usage, events=events)) == expected


@pytest.mark.parametrize(("model", "says"), [
    ({"model": "graduated", "tiers": [{"up_to": 10, "unit_amount": 1}, {"up_to": 5, "unit_amount": 1},
                                      {"up_to": None, "unit_amount": 1}]}, "tiers: Value error, tiers must rise"),
    ({"model": "graduated", "tiers": [{"up_to": 10, "unit_amount": 1}]}, "the last tier must have up_to: null"),
    ({"model": "volume", "tiers": [{"up_to": None, "unit_amount": 1}, {"up_to": None, "unit_amount": 1}]},
     "only the last tier may have up_to: null"),
    ({"model": "per_unit", "unit_amount": "-1"}, "unit_amount: Input should be greater than or equal to 0"),
    ({"model": "graduated", "tiers": [{"up_to": 5, "unit_amount": "-0.5"}, {"up_to": None}]},
     "tiers[1].unit_amount: Input should be greater than or equal to 0"),
    ({"model": "per_unit", "unit_amount": 1, "unit_amuont": 2}, "unit_amuont: not a field of a per_unit price"),
    ({"model": "per_unit", "unit_amount": 1, "tiers": []}, "tiers: not a field of a per_unit price"),
    ({"model": "tiered", "unit_amount": 1}, "model: 'tiered' is not a price model"),
    ({"unit_amount": 1}, "model: missing"),
    ({"model": "per_unit"}, "unit_amount: Field required"),
    ({"model": "per_unit", "unit_amount": 1, "minimum_spend": 10, "maximum_spend": 5},
     "minimum_spend 10 is above maximum_spend 5"),
    ({"model": "per_unit", "unit_amount": "NaN"}, "unit_amount"),
])
def test_invalid_models_name_the_field(model: dict, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_price_model(model, "plans.yaml")
    assert str(caught.value).startswith("plans.yaml: ")
    assert says.replace("Value error, ", "") in str(caught.value), str(caught.value)


def test_every_problem_at_once_and_the_wrong_input_for_the_model() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_price_model({"model": "package", "package_size": 0, "package_amount": -5, "colour": "red"})
    said = str(caught.value)
    assert "package_size" in said and "package_amount" in said and "colour: not a field of a package price" in said
    with pytest.raises(ConfigError, match="quoted on the events' amounts"):
        quote(parse_price_model({"model": "percentage", "rate": "0.01"}), usage=5)
    with pytest.raises(ConfigError, match="quoted on a usage quantity"):
        quote(parse_price_model({"model": "per_unit", "unit_amount": 1}), events=["5"])
    with pytest.raises(ConfigError, match=r"usage: '-1' must be a finite number at or above zero"):
        quote(parse_price_model({"model": "per_unit", "unit_amount": 1}), usage="-1")
    with pytest.raises(ConfigError, match=r"event 2: 'abc' is not a number"):
        quote(parse_price_model({"model": "percentage", "rate": "0.01"}), events=["1", "abc"])


def test_files_keep_every_digit(tmp_path: Path) -> None:
    (tmp_path / "api.yaml").write_text("model: per_unit\nunit_amount: 0.1\nminimum_spend: 0.3\n")
    model = load_price_model(tmp_path / "api.yaml")
    assert isinstance(model, PerUnit) and model.unit_amount == D("0.1")
    assert quote(model, usage=3).unrounded_amount == D("0.3")  # not 0.30000000000000004
    (tmp_path / "api.json").write_text(json.dumps({"model": "per_unit", "unit_amount": 0.1}))
    assert quote(load_price_model(tmp_path / "api.json"), usage=3).unrounded_amount == D("0.3")
    (tmp_path / "bad.yaml").write_text("model: per_unit\nunit_amount: .inf\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unit_amount"):
        load_price_model(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="price model file not found"):
        load_price_model(tmp_path / "none.yaml")
    (tmp_path / "twice.yaml").write_text("model: per_unit\nunit_amount: 1\nunit_amount: 2\n")
    with pytest.raises(ConfigError, match=r"(?s)twice.yaml: not valid YAML: .*'unit_amount' appears twice \(lines 2"):
        load_price_model(tmp_path / "twice.yaml")  # as in the settings file: never the last one silently
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="a price model is a mapping"):
        load_price_model(tmp_path / "list.yaml")


amounts = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)
quantities = st.decimals(min_value=0, max_value=100000, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def tier_lists(draw: st.DrawFn) -> list[dict]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=50000), min_size=0, max_size=4)))
    return [{"up_to": b, "unit_amount": draw(amounts), "flat_amount": draw(amounts)} for b in [*bounds, None]]


@settings(max_examples=200, deadline=None)
@given(tiers=tier_lists(), a=quantities, b=quantities)
def test_graduated_invariants(tiers: list[dict], a: Decimal, b: Decimal) -> None:
    graduated = parse_price_model({"model": "graduated", "tiers": tiers})
    low, high = sorted((a, b))
    # more usage never costs less; the lines add up to the exact total, rounded once
    assert quote(graduated, usage=low).unrounded_amount <= quote(graduated, usage=high).unrounded_amount
    q = quote(graduated, usage=high)
    assert sum(line.amount for line in q.lines) == q.unrounded_amount
    assert abs(q.amount - q.unrounded_amount) <= D("0.005")
    # the units priced across the tiers are the usage
    assert sum(line.quantity or 0 for line in q.lines if line.description.endswith("units")) == high
    # a single tier: graduated and volume agree with per unit plus the flat fee
    one = [{"up_to": None, "unit_amount": tiers[0]["unit_amount"], "flat_amount": tiers[0]["flat_amount"]}]
    for kind in ("graduated", "volume"):
        assert quote(parse_price_model({"model": kind, "tiers": one}), usage=high).unrounded_amount == \
            high * tiers[0]["unit_amount"] + tiers[0]["flat_amount"]


@settings(max_examples=200, deadline=None)
@given(unit=amounts, q=quantities, low=st.one_of(st.none(), amounts), span=st.one_of(st.none(), amounts))
def test_spend_limits_bound_every_charge(unit: Decimal, q: Decimal, low: Decimal | None, span: Decimal | None) -> None:
    high = None if span is None else (low or D(0)) + span
    model = parse_price_model({"model": "per_unit", "unit_amount": unit, "minimum_spend": low, "maximum_spend": high})
    expected = q * unit
    if low is not None and expected < low:
        expected = low
    elif high is not None and expected > high:
        expected = high
    assert quote(model, usage=q).unrounded_amount == expected


@settings(max_examples=200, deadline=None)
@given(events=st.lists(amounts, max_size=12), free_events=st.one_of(st.none(), st.integers(0, 5)),
       free_amount=st.one_of(st.none(), amounts))
def test_percentage_free_allowance_never_adds(events: list[Decimal], free_events: int | None,
                                              free_amount: Decimal | None) -> None:
    base = {"model": "percentage", "rate": "0.029", "fixed_amount": "0.30"}
    with_allowance = quote(parse_price_model({**base, "free_events": free_events, "free_amount": free_amount}),
                           events=events).unrounded_amount
    without = quote(parse_price_model(base), events=events).unrounded_amount
    assert 0 <= with_allowance <= without == sum((e * D("0.029") + D("0.30") for e in events), D(0))
