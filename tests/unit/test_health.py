"""The health score: published worked examples, band edges, missing inputs, overrides, settings errors."""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path

import ibis
import pytest

from upcurve.errors import ConfigError
from upcurve.settings_file import load_config
from upcurve.signals.health import Band, Component, HealthConfig, Override, health_scores

AS_OF = dt.date(2025, 6, 30)


def _score(rows: dict[str, list], config: HealthConfig, **kw) -> list[dict]:
    signals = ibis.memtable(rows)
    return ibis.duckdb.connect().to_pyarrow(health_scores(signals, config, as_of=AS_OF, **kw)).to_pylist()


def _fixed(name: str, weight: float, score: float) -> Component:
    """A component that scores ``score`` for the category 'x' of signal ``name``."""
    return Component(name=name, weight=weight, signal=name, categories={"x": score})


def test_published_weighted_example_is_40_12() -> None:
    """Weights 20, 15 and 22 with component scores 47, 59 and 21: (940 + 885 + 462) / 57 = 40.12."""
    config = HealthConfig(components=(_fixed("a", 20, 47), _fixed("b", 15, 59), _fixed("c", 22, 21)))
    rows = _score({"account_id": ["A"], "a": ["x"], "b": ["x"], "c": ["x"]}, config)
    assert rows[0]["health_score"] == pytest.approx(40.12)
    assert rows[0]["health_tier"] == "At Risk"  # 40.12 reaches the At Risk cut-off of 40
    assert rows[0]["health_weakest"] == "c"  # 22 × (100 − 21) = 1738 points lost, the most


def test_published_portfolio_example_is_76() -> None:
    """5 good accounts at 100, 3 average at 60 and 2 poor at 40: a portfolio health of 76."""
    config = HealthConfig(components=(Component(name="s", weight=1, signal="s",
                                                categories={"good": 100, "average": 60, "poor": 40}),))
    kinds = ["good"] * 5 + ["average"] * 3 + ["poor"] * 2
    rows = _score({"account_id": [f"A{i}" for i in range(10)], "s": kinds}, config)
    assert statistics.mean(r["health_score"] for r in rows) == pytest.approx(76)
    tiers = {r["health_tier"] for r in rows}
    assert tiers == {"Expansion Ready", "Nurture", "At Risk"}


def test_default_bands_and_their_inclusive_ends() -> None:
    config = HealthConfig()
    rows = _score({
        "account_id": ["A", "B", "C", "D"],
        "dau_per_seat": [0.8, 0.4, 0.39, None],
        "adoption_breadth": [0.6, 0.3, 0.1, None],
        "activity_trend": [10.01, 10.0, -10.0, -10.01],
        "tickets_30d": [2, 3, 5, 6],
        "outcome_status": ["exceeded", "on_track", "behind", None],
        "nps_12m": [50.01, 50.0, 0.0, -1.0],
    }, config)
    by = {r["account_id"]: r for r in rows}
    assert by["A"]["health_product_usage"] == 100  # 0.8 and 0.6 are the green bands' inclusive lower ends
    assert by["B"]["health_product_usage"] == 60
    assert by["C"]["health_product_usage"] == 20
    assert [by[a]["health_engagement_trend"] for a in "ABCD"] == [100, 60, 60, 20]
    assert [by[a]["health_support"] for a in "ABCD"] == [90, 70, 70, 40]
    assert [by[a]["health_sentiment"] for a in "ABCD"] == [100, 60, 60, 20]
    # A: 0.3·100 + 0.2·100 + 0.15·90 + 0.2·100 + 0.15·100 = 98.5
    assert by["A"]["health_score"] == pytest.approx(98.5)
    assert by["D"]["health_missing"] == "product_usage;business_outcomes"


def test_missing_components_redistribute_or_count_zero() -> None:
    components = (_fixed("a", 50, 80), _fixed("b", 50, 40))
    rows = {"account_id": ["A"], "a": ["x"], "b": [None]}
    spread = _score(rows, HealthConfig(components=components))[0]
    zero = _score(rows, HealthConfig(components=components, missing="zero"))[0]
    assert spread["health_score"] == pytest.approx(80)
    assert zero["health_score"] == pytest.approx(40)
    assert spread["health_missing"] == zero["health_missing"] == "b"
    nothing = _score({"account_id": ["A"], "a": [None], "b": [None]}, HealthConfig(components=components))[0]
    assert nothing["health_score"] is None and nothing["health_tier"] is None


def test_overrides_apply_until_they_expire() -> None:
    components = (_fixed("a", 1, 30),)
    live = Override(account_id="A", score=85, until=AS_OF, reason="exec sponsor renewed verbally")
    gone = Override(account_id="B", score=85, until=AS_OF - dt.timedelta(days=1), reason="old")
    rows = _score({"account_id": ["A", "B"], "a": ["x", "x"]},
                  HealthConfig(components=components, overrides=(live, gone)))
    by = {r["account_id"]: r for r in rows}
    assert by["A"]["health_score"] == 85 and "until 2025-06-30" in by["A"]["health_override"]
    assert by["A"]["health_tier"] == "Expansion Ready"
    assert by["B"]["health_score"] == 30 and by["B"]["health_override"] is None


def test_signals_at_two_dates_take_the_override_in_force_at_each() -> None:
    """Scored in one pass (the accounts table's now and 30 days before), each row keeps its date and the override
    in force then: one that ended between the two dates counts only at the earlier one."""
    earlier = AS_OF - dt.timedelta(days=30)
    ended = Override(account_id="A", score=85, until=AS_OF - dt.timedelta(days=1), reason="sponsor left")
    rows = _score({"as_of": [earlier, AS_OF], "account_id": ["A", "A"], "a": ["x", "x"]},
                  HealthConfig(components=(_fixed("a", 1, 30),), overrides=(ended,)))
    by = {r["as_of"]: r for r in rows}
    assert by[earlier]["health_score"] == 85 and by[earlier]["health_override"] is not None
    assert by[AS_OF]["health_score"] == 30 and by[AS_OF]["health_override"] is None


def test_segment_weights_replace_the_defaults_for_that_segment() -> None:
    config = HealthConfig(components=(_fixed("a", 50, 100), _fixed("b", 50, 0)),
                          segment_weights={"enterprise": {"a": 90, "b": 10}})
    segments = ibis.memtable({"account_id": ["A", "B"], "segment": ["enterprise", "smb"]})
    rows = _score({"account_id": ["A", "B"], "a": ["x", "x"], "b": ["x", "x"]}, config, segments=segments)
    by = {r["account_id"]: r["health_score"] for r in rows}
    assert by == {"A": pytest.approx(90), "B": pytest.approx(50)}


def test_yaml_overrides_and_typos_name_the_key(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "health:\n  missing: zero\n  tiers:\n    - {name: Great, min_score: 70, stance: grow}\n"
        "    - {name: Other, min_score: 0, stance: help}\n"
    )
    config = load_config(good)
    assert config.health.missing == "zero" and config.health.tiers[0].name == "Great"
    bad = tmp_path / "bad.yaml"
    bad.write_text("health:\n  misssing: zero\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*health.misssing"):
        load_config(bad)
    with pytest.raises(ValueError, match="needs a signal"):
        Component(name="x", weight=1, signal="s")
    with pytest.raises(ValueError):
        Band(score=120)


def test_the_documented_settings_example_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "signals.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "upcurve.yaml"
    path.write_text(example)
    config = load_config(path)
    assert config.health.segment_weights == {"enterprise": {"business_outcomes": 80}}
    assert config.health.overrides[0].until == dt.date(2026, 1, 31)


def test_a_component_named_like_a_billing_one_is_named_in_the_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"share the name\(s\) \['tenure'\].*now: mrr_trend, contractions, "
                                              r"renewal, tenure"):
        HealthConfig(components=(_fixed("tenure", 20, 47), _fixed("b", 15, 59)))
