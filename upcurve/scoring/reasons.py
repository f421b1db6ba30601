"""Reasons in words: a feature, its value as a person would say it, and how much it moved the score."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from upcurve.scoring.context import ATTRIBUTE_PREFIX, TIER_PREFIX, context_label

__all__ = ["FEATURE_HINTS", "FEATURE_LABELS", "WHEN_EMPTY", "describe", "probability_contributions", "top_reasons"]

#: How each feature is named in a reason, and how its value is shown (see :func:`describe`).
FEATURE_LABELS: dict[str, tuple[str, str]] = {
    "products_paid": ("products paid for", "count"),
    "products_unowned": ("products not yet owned", "count"),
    "tier_headroom": ("tiers above the current one", "count"),
    "purchased_seats": ("purchased seats", "count"),
    "seats_priced": ("seats priced on its plans", "flag"),
    "active_users": ("active users", "count"),
    "seat_saturation": ("seat saturation", "share"),
    "flag_seat_saturation": ("seats ≥ 80% used", "flag"),
    "invited_14d": ("users invited in 14 days", "count"),
    "invited_prev_14d": ("users invited in the 14 days before", "count"),
    "new_active_14d": ("new active users in 14 days", "count"),
    "new_active_prev_14d": ("new active users in the 14 days before", "count"),
    "new_active_30d": ("new active users in 30 days", "count"),
    "flag_invite_surge": ("invite surge", "flag"),
    "flag_team_growth": ("team growing", "flag"),
    "usage_limit": ("usage limit", "count"),
    "usage_this_month": ("usage this month", "count"),
    "usage_share_used": ("usage of the plan limit", "share"),
    "usage_daily_rate": ("daily usage", "count"),
    "usage_projected_month": ("projected monthly usage", "count"),
    "days_until_limit": ("days until the usage limit", "days"),
    "flag_usage_limit": ("usage limit within 30 days", "flag"),
    "categories_used_30d": ("feature categories used", "count"),
    "categories_available": ("feature categories on its plans", "count"),
    "adoption_breadth": ("adoption breadth", "share"),
    "categories_per_active_user": ("categories per active user", "number"),
    "features_first_used_7d": ("features adopted in 7 days", "count"),
    "flag_advanced_adoption": ("adopting new features", "flag"),
    "premium_gap_features": ("features used beyond its plan", "count"),
    "flag_premium_gap": ("premium gap", "flag"),
    "flag_core_heavy_no_premium": ("deep in core, nothing adjacent", "flag"),
    "dau_per_seat": ("daily active users per seat", "share"),
    "stickiness": ("stickiness (DAU/MAU)", "share"),
    "activity_trend": ("activity trend", "trend"),
    "login_trend": ("login trend", "trend"),
    "tenure_days": ("tenure", "days"),
    "days_to_renewal": ("days to renewal", "days"),
    "days_to_cancellation": ("days to its scheduled cancellation", "days"),
    "flag_cancellation_scheduled": ("cancellation scheduled", "flag"),
    "tickets_30d": ("tickets in 30 days", "count"),
    "nps_latest": ("latest NPS answer", "count"),
    "nps_12m": ("NPS over 12 months", "number"),
    "outcome_level": ("outcome", "outcome"),
    "mrr_cents": ("MRR", "money"),
    "mrr_trend_3m": ("MRR trend over 3 months", "trend"),
    "mrr_contractions_3m": ("months of falling MRR in the last 3", "count"),
    "mrr_trend_12m": ("MRR trend over 12 months", "trend"),
    "mrr_rises_12m": ("months of rising MRR in the last 12", "count"),
}
#: What an empty value of a feature means, said instead of ``label: none``.
WHEN_EMPTY: dict[str, str] = {
    "days_to_renewal": "no renewal date",
    "days_to_cancellation": "no cancellation scheduled",
    "seat_saturation": "seats not priced on its plans",
    "nps_latest": "no NPS answer",
    "nps_12m": "no NPS answer in 12 months",
    "outcome_level": "no outcome check-in",
    "days_until_limit": "no usage limit",
    "usage_share_used": "no usage limit",
    "tenure_days": "not billed yet",
    "mrr_trend_12m": "not paying 12 months before",
}
#: What a value is measured against, said after it in a reason, where the label alone leaves it open.
FEATURE_HINTS: dict[str, str] = {
    "seat_saturation": "active users of the seats it pays for",
    "usage_share_used": "of its plan's monthly limit",
    "days_until_limit": "at its current daily rate",
    "premium_gap_features": "used or previewed in 30 days, sold on another plan",
    "dau_per_seat": "average over 30 days",
    "activity_trend": "last 30 days against the 30 before",
    "login_trend": "last 30 days against the 30 before",
    "mrr_trend_3m": "against 3 months before",
    "mrr_trend_12m": "against 12 months before",
}
_OUTCOMES = {0.0: "behind", 1.0: "on track", 2.0: "exceeded"}
_FORMATS = {
    "flag": lambda v: f": {'yes' if v else 'no'}",
    "share": lambda v: f" {v:.0%}",
    "trend": lambda v: f" {v:+.0f}%",
    "days": lambda v: f" {v:,.0f} {'day' if round(v) in (1, -1) else 'days'}",
    "outcome": lambda v: f" {_OUTCOMES.get(float(v), v)}",
    "count": lambda v: f" {v:,.0f}",
    "number": lambda v: f" {v:,.1f}",
}


def describe(name: str, value: float, *, currency: str | None = None,
             categories: Mapping[str, Sequence[str]] | None = None) -> str:
    """A feature and its value in words, e.g. ``describe("seat_saturation", 0.96)`` → ``"seat saturation 96%"``.

    Money (a value in cents) is shown in whole units followed by ``currency``, the run's reporting currency, as
    every amount upcurve prints is (``MRR 1,235 EUR``); without a currency, the amount alone.

    >>> describe("login_trend", -42.0), describe("flag_premium_gap", 1.0), describe("mrr_cents", 123456, currency="EUR")
    ('login trend -42%', 'premium gap: yes', 'MRR 1,235 EUR')

    An empty value says what it means (:data:`WHEN_EMPTY`), else ``label: none``.

    >>> describe("days_to_renewal", float("nan")), describe("tickets_30d", float("nan"))
    ('no renewal date', 'tickets in 30 days: none')
    """
    if name.startswith((ATTRIBUTE_PREFIX, TIER_PREFIX)):
        label, kind = context_label(name), "count"
    else:
        label, kind = FEATURE_LABELS.get(name, (name.replace("_", " "), "number"))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return WHEN_EMPTY.get(name, f"{label}: none")
    if categories and name in categories:  # a category's code: its value
        return f"{label}: {categories[name][int(value)]}"
    if name.startswith(TIER_PREFIX):
        return f"{label} {value:,.0f}" if value else f"{label}: not held"
    if kind == "money":
        return f"{label} {value / 100:,.0f}" + (f" {currency}" if currency else "")
    return label + _FORMATS[kind](value)


def probability_contributions(contrib: np.ndarray, scale: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Log-odds contributions (base value last) carried to probability points.

    Formula
    -------
    With calibrated log-odds ``L = scale · (Σc + base) + offset`` and base ``L0 = scale · base + offset``, the
    probability moves by ``p(L) − p(L0)``; each feature gets the share ``c_i / Σc`` of that move. So the base
    probability ``p(L0)`` plus every feature's contribution is exactly the account's probability, and each sign
    is the sign of the feature's effect on the log-odds.

    Edge cases
    ----------
    When the contributions cancel out (``Σc = 0``), each gets its first-order effect ``p(1 − p) · scale · c_i``.

    Returns
    -------
    The contributions in probability points (rows × features) and the base probability of each row.
    """
    feats, base = contrib[:, :-1], contrib[:, -1]
    total = feats.sum(axis=1)
    L0 = scale * base + offset
    L = scale * (total + base) + offset
    p0, p = 1 / (1 + np.exp(-L0)), 1 / (1 + np.exp(-L))
    moved = np.abs(total) > 1e-12
    # each row's features are all scaled by one factor: (p − p0) / Σc, or the slope where they cancel out; one
    # product over the matrix (at 100,000 accounts the share, the slope and the choice between them took seconds)
    factor = np.where(moved, (p - p0) / np.where(moved, total, 1.0), p * (1 - p) * scale)
    return feats * factor[:, None], p0


def top_reasons(features: Sequence[str], values: np.ndarray, contributions: np.ndarray, k: int = 3, *,
                currency: str | None = None, categories: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """For each row, its ``k`` largest contributions (by size, either sign) in words, joined by ``"; "``: how many
    percentage points of probability the feature moved the score, the feature and its value (money in
    ``currency``, see :func:`describe`), and what the value is measured against (:data:`FEATURE_HINTS`).

    Edge cases
    ----------
    Contributions of the same size are taken in the order of ``features``. A contribution under half a point is
    left out (it would read ``+0 points``); a row with none reads ``""``.

    >>> top_reasons(["seat_saturation", "login_trend"], np.array([[0.96, -40.0]]), np.array([[0.21, -0.05]]))
    ['+21 points of probability: seat saturation 96% (active users of the seats it pays for); -5 points of \
probability: login trend -40% (last 30 days against the 30 before)']
    """
    rows, width = contributions.shape
    k = min(k, width)
    if rows == 0 or k == 0:
        return [""] * rows
    at = np.arange(rows)[:, None]
    # the k largest of each row, the first of equal ones first (a stable sort's order, without sorting each row)
    size = np.abs(contributions, order="C")  # row by row in memory: each row's largest is found along it
    size[np.isnan(size)] = -0.5
    picked = np.empty((rows, k), dtype=np.intp)
    for slot in range(k):
        picked[:, slot] = size.argmax(axis=1)
        size[at[:, 0], picked[:, slot]] = -1.0
    points = np.rint(np.nan_to_num(contributions[at, picked]) * 100).astype(np.int64)
    picked_values = values[at, picked].astype(float)
    # accounts share many values (a flag, a seat count, an empty signal) and sizes: each part is put in words once;
    # a value is told apart by its bits (−0 is not 0; every empty value alike)
    bits = np.where(np.isnan(picked_values), np.nan, picked_values).view(np.int64)
    said = points.ravel() != 0
    columns = [picked.ravel()[said], bits.ravel()[said], points.ravel()[said]]
    one, part_of = _first_of_each(columns)
    texts = []
    for j, value_bits, moved in zip(*(c[one].tolist() for c in columns), strict=True):
        value = float(np.int64(value_bits).view(np.float64))
        hint = None if math.isnan(value) else FEATURE_HINTS.get(features[j])
        texts.append(f"{moved:+d} {'point' if abs(moved) == 1 else 'points'} of probability: "
                     + describe(features[j], value, currency=currency, categories=categories)
                     + (f" ({hint})" if hint else ""))
    parts = np.full(rows * k, -1, dtype=np.int64)
    parts[said] = part_of.ravel()
    parts = parts.reshape(rows, k)
    return ["; ".join([texts[i] for i in row if i >= 0]) for row in parts.tolist()]


def _first_of_each(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The rows of distinct combinations of ``columns`` (whole numbers): one row of each, and each row's
    combination as a position among them. Numbered one column at a time, so the key never outgrows the rows."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        _, code = np.unique(column, return_inverse=True)
        _, key = np.unique(key * (int(code.max(initial=0)) + 1) + code.ravel(), return_inverse=True)
        key = key.ravel()
    _, one, position = np.unique(key, return_index=True, return_inverse=True)
    return one, position.ravel()
