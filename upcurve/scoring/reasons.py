"""Reasons in words: a feature, its value as a person would say it, and how much it moved the score."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["FEATURE_LABELS", "describe", "probability_contributions", "top_reasons"]

#: How each feature is named in a reason, and how its value is shown (see :func:`describe`).
FEATURE_LABELS: dict[str, tuple[str, str]] = {
    "products_paid": ("products paid for", "count"),
    "products_unowned": ("products not yet owned", "count"),
    "tier_headroom": ("tiers above the current one", "count"),
    "purchased_seats": ("purchased seats", "count"),
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
    "tickets_30d": ("tickets in 30 days", "count"),
    "nps_latest": ("latest NPS answer", "count"),
    "nps_12m": ("NPS over 12 months", "number"),
    "outcome_level": ("outcome", "outcome"),
    "mrr_cents": ("MRR", "money"),
    "mrr_trend_3m": ("MRR trend over 3 months", "trend"),
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


def describe(name: str, value: float, *, currency: str | None = None) -> str:
    """A feature and its value in words, e.g. ``describe("seat_saturation", 0.96)`` → ``"seat saturation 96%"``.

    Money (a value in cents) is shown in whole units followed by ``currency``, the run's reporting currency, as
    every amount upcurve prints is (``MRR 1,235 EUR``); without a currency, the amount alone.

    >>> describe("login_trend", -42.0), describe("flag_premium_gap", 1.0), describe("mrr_cents", 123456, currency="EUR")
    ('login trend -42%', 'premium gap: yes', 'MRR 1,235 EUR')
    >>> describe("nps_latest", float("nan"))
    'latest NPS answer: none'
    """
    label, kind = FEATURE_LABELS.get(name, (name.replace("_", " "), "number"))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{label}: none"
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
    safe = np.where(np.abs(total) > 1e-12, total, 1.0)
    share = np.where((np.abs(total) > 1e-12)[:, None], feats / safe[:, None], 0.0)
    slope = (p * (1 - p) * scale)[:, None] * feats
    out = np.where((np.abs(total) > 1e-12)[:, None], share * (p - p0)[:, None], slope)
    return out, p0


def top_reasons(features: Sequence[str], values: np.ndarray, contributions: np.ndarray, k: int = 3, *,
                currency: str | None = None) -> list[str]:
    """For each row, its ``k`` largest contributions (by size, either sign) in words, joined by ``"; "``; money in
    ``currency`` (see :func:`describe`).

    >>> top_reasons(["seat_saturation", "login_trend"], np.array([[0.96, -40.0]]), np.array([[0.21, -0.05]]))
    ['seat saturation 96% (+0.21); login trend -40% (-0.05)']
    """
    out = []
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :k]
    for row, idx in enumerate(order):
        parts = [f"{describe(features[j], values[row, j], currency=currency)} ({contributions[row, j]:+.2f})"
                 for j in idx if abs(contributions[row, j]) >= 0.005]
        out.append("; ".join(parts))
    return out
