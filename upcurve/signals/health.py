"""The health score: signals scored by ranges, weighted into one 0–100 number, a tier and a stance.

The defaults follow the practice customer-success teams document: product usage 30% (DAU per seat 60%, feature
adoption 40%), engagement trend 20%, support 15%, business outcomes 20%, stakeholder sentiment (NPS) 15%. Everything
is data (:class:`HealthConfig`), overridable from YAML: components, weights (normalised), range tables with explicit
inclusive or exclusive ends, tier cut-offs, per-segment weights, and manual overrides with an expiry date.
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Literal

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, ConfigDict, Field, model_validator

from upcurve.signals.account_signals import SIGNAL_COLUMNS

__all__ = ["Band", "Component", "HealthConfig", "Override", "Tier", "health_scores"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Band(_Frozen):
    """A range of a signal and the score it earns. Ends are open when omitted; ``min`` is inclusive and ``max``
    exclusive unless said otherwise."""

    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = False
    score: float = Field(ge=0, le=100)


class Component(_Frozen):
    """A scored part of health: a signal with ``bands`` (numbers) or ``categories`` (text), or weighted ``parts``."""

    name: str
    weight: float = Field(gt=0)
    signal: str | None = None
    bands: tuple[Band, ...] = ()
    categories: dict[str, float] = {}
    parts: tuple[Component, ...] = ()

    @model_validator(mode="after")
    def _one_kind(self) -> Component:
        kinds = sum(bool(x) for x in (self.bands, self.categories, self.parts))
        if kinds != 1 or (self.parts and self.signal) or (not self.parts and not self.signal):
            raise ValueError(f"component {self.name!r} needs a signal with bands or categories, or parts")
        for band in self.bands:
            if band.min is not None and band.max is not None and band.min > band.max:
                raise ValueError(f"component {self.name!r}: a band's min {band.min:g} is above its max {band.max:g}")
        bad = {k: v for k, v in self.categories.items() if not 0 <= v <= 100}
        if bad:
            raise ValueError(f"component {self.name!r}: category scores must lie in 0–100, not {bad}")
        return self


class Tier(_Frozen):
    name: str
    min_score: float
    stance: str


class Override(_Frozen):
    """A manual score for an account, in force until ``until`` (inclusive)."""

    account_id: str
    score: float = Field(ge=0, le=100)
    until: dt.date
    reason: str


def _b(lo: float | None, hi: float | None, score: float, *, hi_inclusive: bool = False) -> Band:
    return Band(min=lo, max=hi, score=score, max_inclusive=hi_inclusive)


DEFAULT_COMPONENTS = (
    Component(name="product_usage", weight=30, parts=(
        Component(name="dau_per_seat", weight=60, signal="dau_per_seat",
                  bands=(_b(0.8, None, 100), _b(0.4, 0.8, 60), _b(None, 0.4, 20))),
        Component(name="feature_adoption", weight=40, signal="adoption_breadth",
                  bands=(_b(0.6, None, 100), _b(0.3, 0.6, 60), _b(None, 0.3, 20))),
    )),
    Component(name="engagement_trend", weight=20, signal="activity_trend",
              bands=(Band(min=10, min_inclusive=False, score=100), _b(-10, 10, 60, hi_inclusive=True),
                     _b(None, -10, 20))),
    Component(name="support", weight=15, signal="tickets_30d",
              bands=(_b(None, 2, 90, hi_inclusive=True), Band(min=2, max=5, min_inclusive=False, max_inclusive=True,
                                                              score=70), Band(min=5, min_inclusive=False, score=40))),
    Component(name="business_outcomes", weight=20, signal="outcome_status",
              categories={"exceeded": 100, "on_track": 70, "behind": 30}),
    Component(name="sentiment", weight=15, signal="nps_12m",
              bands=(Band(min=50, min_inclusive=False, score=100), _b(0, 50, 60, hi_inclusive=True),
                     _b(None, 0, 20))),
)
#: The health of an account whose product, support, outcome and NPS signals are all absent (billing data only):
#: its MRR trend, months of contraction, renewal proximity and tenure.
DEFAULT_BILLING_COMPONENTS = (
    Component(name="mrr_trend", weight=35, signal="mrr_trend_3m",
              bands=(Band(min=5, min_inclusive=False, score=100), _b(-5, 5, 70, hi_inclusive=True),
                     _b(None, -5, 25))),
    Component(name="contractions", weight=25, signal="mrr_contractions_3m",
              bands=(_b(None, 0, 100, hi_inclusive=True), _b(1, 1, 60, hi_inclusive=True),
                     Band(min=1, min_inclusive=False, score=20))),
    Component(name="renewal", weight=20, signal="days_to_renewal",
              bands=(_b(90, None, 90), _b(30, 90, 70), _b(None, 30, 50))),
    Component(name="tenure", weight=20, signal="tenure_days",
              bands=(_b(365, None, 90), _b(180, 365, 70), _b(None, 180, 50))),
)
DEFAULT_TIERS = (
    Tier(name="Expansion Ready", min_score=80, stance="Pursue expansion: seats, tier upgrade, cross-sell."),
    Tier(name="Nurture", min_score=60, stance="Deepen adoption of what they pay for; set up the next lever."),
    Tier(name="At Risk", min_score=40, stance="Intervene: CSM call, success plan, fix open issues."),
    Tier(name="Churn Risk", min_score=0, stance="Escalate: executive sponsor and a save plan now."),
)


class HealthConfig(_Frozen):
    """The health score's definition.

    ``missing``: when a component's signal is absent, ``redistribute`` its weight over the present components
    (default) or count it as ``zero``. ``billing_components``: the score of an account none of whose
    ``components`` is present (a company that brings billing data only); empty, such an account gets no score.
    ``segment_weights``: per account ``segment``, weights that replace the components' (by name; either group).
    ``overrides``: manual scores with an expiry date.
    """

    components: tuple[Component, ...] = DEFAULT_COMPONENTS
    billing_components: tuple[Component, ...] = DEFAULT_BILLING_COMPONENTS
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    missing: Literal["redistribute", "zero"] = "redistribute"
    segment_weights: dict[str, dict[str, float]] = {}
    overrides: tuple[Override, ...] = ()

    def unknown_signals(self, known: tuple[str, ...] = SIGNAL_COLUMNS) -> list[str]:
        """Messages for every component whose signal is not among ``known`` (a typo scores every account as
        missing that component)."""
        found = []

        def walk(components: tuple[Component, ...]) -> None:
            for c in components:
                if c.signal is not None and c.signal not in known:
                    close = difflib.get_close_matches(c.signal, known, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    found.append(f"component {c.name!r}: unknown signal {c.signal!r}{hint}")
                walk(c.parts)

        walk(self.components)
        walk(self.billing_components)
        return found

    @model_validator(mode="after")
    def _tiers_descend(self) -> HealthConfig:
        cuts = [t.min_score for t in self.tiers]
        if cuts != sorted(cuts, reverse=True):
            raise ValueError("tiers must be listed from the highest min_score to the lowest")
        every = (*self.components, *self.billing_components)
        names = {c.name for c in every}
        if len(names) != len(every):
            listed = [c.name for c in every]
            twice = sorted({n for n in listed if listed.count(n) > 1})
            raise ValueError(f"components share the name(s) {twice}: a name is used once across components and "
                             f"billing_components (now: {', '.join(c.name for c in self.billing_components)}); "
                             "rename one")
        for segment, weights in self.segment_weights.items():
            unknown = set(weights) - names
            if unknown:
                raise ValueError(f"segment_weights[{segment!r}] names unknown components: {sorted(unknown)}")
            negative = {k: v for k, v in weights.items() if not v >= 0}
            if negative:
                raise ValueError(f"segment_weights[{segment!r}]: weights must be 0 or more, not {negative}")
            # the segment's weights replace the components' own: at least one must stay above zero
            if not any(weights.get(c.name, c.weight) > 0 for c in self.components):
                raise ValueError(f"segment_weights[{segment!r}]: every weight is 0, so no account of the segment "
                                 "would get a score")
        return self


def _band_score(value: ir.Value, bands: tuple[Band, ...]) -> ir.FloatingValue:
    cases = []
    for band in bands:
        cond = ibis.literal(True)
        if band.min is not None:
            cond &= (value >= band.min) if band.min_inclusive else (value > band.min)
        if band.max is not None:
            cond &= (value <= band.max) if band.max_inclusive else (value < band.max)
        cases.append((cond, ibis.literal(band.score, "float64")))
    return ibis.ifelse(value.isnull(), ibis.null("float64"), ibis.cases(*cases, else_=ibis.null("float64")))


def _weighted(scores: list[tuple[ir.FloatingValue, ir.FloatingValue]], missing: str) -> ir.FloatingValue:
    """Σ wᵢ·sᵢ ÷ Σ wᵢ over present scores (``redistribute``) or over all (``zero``); null when none is present."""
    num = sum((ibis.ifelse(s.isnull(), 0.0, s * w) for s, w in scores), ibis.literal(0.0))
    present = sum((ibis.ifelse(s.isnull(), 0.0, w) for s, w in scores), ibis.literal(0.0))
    total = sum((w for _, w in scores), ibis.literal(0.0))
    den = present if missing == "redistribute" else total
    return ibis.ifelse(present == 0, ibis.null("float64"), num / den)


def _signals_read(c: Component) -> set[str]:
    """The signals a component scores from: its own, or its parts'."""
    if c.parts:
        return set().union(*map(_signals_read, c.parts))
    return {c.signal} if c.signal else set()


def _component_score(signals: ir.Table, c: Component, missing: str) -> ir.FloatingValue:
    if c.parts:
        return _weighted([(_component_score(signals, p, missing), ibis.literal(p.weight)) for p in c.parts],
                         missing)
    assert c.signal is not None
    value = signals[c.signal] if c.signal in signals.columns else ibis.null("float64")
    if c.categories:
        text = value.cast("string")
        return ibis.cases(*[(text == k, ibis.literal(float(v))) for k, v in c.categories.items()],
                          else_=ibis.null("float64"))
    return _band_score(value.cast("float64"), c.bands)


def health_scores(signals: ir.Table, config: HealthConfig, *, as_of: dt.date,
                  segments: ir.Table | None = None) -> ir.Table:
    """Score every account's health from its signals.

    Formula
    -------
    Each component scores 0–100 from its signal's range (or category, or its weighted parts); the health score
    is ``Σ wᵢ·sᵢ ÷ Σ wᵢ`` with weights normalised over the components present (``missing: redistribute``) or over
    all of them (``missing: zero``, an absent component counting 0). Weights 20, 15 and 22 with scores 47, 59 and
    21 give 40.12. The tier is the first whose ``min_score`` the score reaches.

    Edge cases
    ----------
    A component whose signal is null is missing: ``health_missing`` lists them (``;``-separated). An account none
    of whose ``components`` is present (billing data only) is scored the same way by the ``billing_components``
    (MRR trend, contractions, renewal proximity, tenure), and ``health_basis`` says ``billing`` (else ``product``);
    ``health_missing`` and ``health_weakest`` then speak of those. With no component of either present the score is
    null and the tier empty. A manual override in force replaces the score and says why in ``health_override``.
    ``health_weakest`` is the component costing the most points: weight × (100 − score).

    Signals at several dates (an ``as_of`` column) are scored in one pass, each row with the overrides in force at
    its own date (``as_of`` the argument is then not used), and keep their ``as_of``.

    Returns
    -------
    (``as_of``), ``account_id``, ``health_score``, ``health_tier``, ``health_stance``, ``health_basis``,
    ``health_missing``, ``health_weakest``, ``health_override``, and ``health_<component>`` for each component of
    both groups.
    """
    every = (*config.components, *config.billing_components)
    # only the signals the components read: each step below is a select of its own, and the other signals carried
    # through every one of them were most of the query's SQL (the accounts table's 40 KB) and of its planning
    read = {name for c in every for name in _signals_read(c)}
    t = signals.select(*[c for c in signals.columns if c in read or c in ("as_of", "account_id")])
    if segments is not None:
        t = t.left_join(segments.select("account_id", _segment="segment"), "account_id").select(t, "_segment")
    t = t.mutate(**{f"health_{c.name}": _component_score(t, c, config.missing) for c in every})
    weights = {}
    for c in every:
        w: ir.Value = ibis.literal(float(c.weight))
        if segments is not None:
            for seg, table in config.segment_weights.items():
                if c.name in table:
                    w = ibis.ifelse(t._segment == seg, float(table[c.name]), w)
        weights[c.name] = w
    # each group's score, missing and weakest as columns first: the choice between the groups below reads each of
    # them several times, and as expressions they were written out again at every read (19 KB of one select)
    parts = ("score", "missing", "weakest")
    columns = dict(zip([f"_product_{p}" for p in parts], _group(t, config.components, weights, config.missing),
                       strict=True))
    if config.billing_components:
        columns.update(zip([f"_billing_{p}" for p in parts],
                           _group(t, config.billing_components, weights, config.missing), strict=True))
    t = t.mutate(**columns)
    score, missing, weakest = (t[f"_product_{p}"] for p in parts)
    basis = ibis.ifelse(score.isnull(), ibis.null("string"), ibis.literal("product"))
    if config.billing_components:
        by_billing = score.isnull() & t._billing_score.notnull()
        score, missing, weakest = (ibis.ifelse(by_billing, t[f"_billing_{p}"], value)
                                   for p, value in zip(parts, (score, missing, weakest), strict=True))
        basis = ibis.ifelse(by_billing, ibis.literal("billing"), basis)
    t = t.mutate(health_score=score.round(2), health_basis=basis, health_missing=missing, health_weakest=weakest,
                 health_override=ibis.null("string"))
    dated = "as_of" in t.columns  # signals at several dates: each row's override is the one in force at its date
    live = [o for o in config.overrides if dated or o.until >= as_of]
    for o in live:
        hit = t.account_id == o.account_id
        if dated:
            hit = hit & (t.as_of <= o.until)
        t = t.mutate(health_score=ibis.ifelse(hit, o.score, t.health_score),
                     health_override=ibis.ifelse(hit, f"{o.reason} (until {o.until})", t.health_override))
    tier, stance = ibis.null("string"), ibis.null("string")
    for tr in reversed(config.tiers):
        reached = t.health_score >= tr.min_score
        tier = ibis.ifelse(reached.fill_null(False), ibis.literal(tr.name), tier)
        stance = ibis.ifelse(reached.fill_null(False), ibis.literal(tr.stance), stance)
    t = t.mutate(health_tier=tier, health_stance=stance)
    components = [f"health_{c.name}" for c in every]
    return t.select(*(["as_of"] if dated else []), "account_id", "health_score", "health_tier", "health_stance",
                    "health_basis", "health_missing", "health_weakest", "health_override", *components)


def _group(t: ir.Table, components: tuple[Component, ...], weights: dict[str, ir.Value], missing_rule: str
           ) -> tuple[ir.Value, ir.Value, ir.Value]:
    """A group of components' score (their weighted mean), the missing ones (``;``-separated, in the components'
    order) and the weakest (the first costing the most points; none when no component is present).

    Each is one flat expression over the components (a chain of ``ifelse`` that refers to the step before twice
    would double the query with every component)."""
    score = _weighted([(t[f"health_{c.name}"], weights[c.name]) for c in components], missing_rule)
    listed: ir.StringValue = ibis.literal("")
    for c in components:
        listed = listed + ibis.ifelse(t[f"health_{c.name}"].isnull(), ibis.literal(f";{c.name}"), ibis.literal(""))
    missing = listed.substr(1)  # without the leading ";"
    costs = {c.name: (weights[c.name] * (100 - t[f"health_{c.name}"])).fill_null(-1.0) for c in components}
    worst = ibis.greatest(*costs.values()) if len(costs) > 1 else next(iter(costs.values()))
    present = ibis.literal(False)
    for c in components:
        present = present | t[f"health_{c.name}"].notnull()
    weakest = ibis.cases(*[(cost == worst, ibis.literal(name)) for name, cost in costs.items()],
                         else_=ibis.null("string"))
    return score, missing, ibis.ifelse(present, weakest, ibis.null("string"))
