"""What the simulated company sells, and the profiles that shape its customers."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FEATURES", "PLANS", "PROFILES", "CompanyProfile", "Plan"]


@dataclass(frozen=True)
class Plan:
    plan_id: str
    product: str
    tier: str
    tier_rank: int
    pricing: str
    interval_months: int
    unit_price: float
    included_seats: int | None = None
    usage_metric: str | None = None
    usage_limit: float | None = None


# Feature keys by the plan that first includes them, with their category. Higher core tiers include the lower ones.
FEATURES: dict[str, tuple[tuple[str, str], ...]] = {
    "starter": (("projects", "core"), ("comments", "core"), ("search", "core")),
    "team": (("dashboards", "collaboration"), ("integrations", "collaboration"), ("guests", "collaboration")),
    "business": (("sso", "premium"), ("audit_log", "premium"), ("advanced_permissions", "premium")),
    "analytics": (("reports", "analytics"), ("forecasts", "analytics")),
    "automation": (("workflows", "automation"), ("webhooks", "automation")),
    "security": (("dlp", "security"), ("siem_export", "security")),
    "api": (("api_access", "api"),),
}
CORE_TIERS = {1: "starter", 2: "team", 3: "business"}

PLANS: tuple[Plan, ...] = (
    Plan("core_starter_m", "core", "starter", 1, "flat", 1, 49.0, included_seats=3),
    Plan("core_team_m", "core", "team", 2, "per_seat", 1, 15.0),
    Plan("core_team_y", "core", "team", 2, "per_seat", 12, 150.0),
    Plan("core_business_m", "core", "business", 3, "per_seat", 1, 32.0),
    Plan("core_business_y", "core", "business", 3, "per_seat", 12, 320.0),
    Plan("analytics_m", "analytics", "standard", 1, "per_seat", 1, 8.0),
    Plan("automation_m", "automation", "standard", 1, "flat", 1, 99.0),
    Plan("security_m", "security", "premium", 1, "flat", 1, 199.0),
    Plan("api_m", "api", "metered", 1, "usage", 1, 0.002, usage_metric="api_calls", usage_limit=100_000.0),
)
PLAN_BY_ID = {p.plan_id: p for p in PLANS}


def plan_features(plan: Plan) -> str:
    """The ``;``-separated features of a plan (core tiers include every lower tier's)."""
    if plan.product == "core":
        keys = [f for rank in range(1, plan.tier_rank + 1) for f, _ in FEATURES[CORE_TIERS[rank]]]
    else:
        keys = [f for f, _ in FEATURES[plan.product]]
    return ";".join(keys)


@dataclass(frozen=True)
class CompanyProfile:
    """Monthly rates that shape the company. Each is scaled per account by its latent health and growth."""

    segment_mix: tuple[float, float, float] = (0.55, 0.35, 0.10)  # smb, mid_market, enterprise
    churn: float = 0.013  # monthly, for a monthly payer of average health
    annual_share: float = 0.45
    invites: float = 0.024  # new users invited per active user per month, at average growth and health
    deactivation: float = 0.012
    upgrade: float = 0.010
    downgrade: float = 0.004
    cross_sell: float = 0.020
    addon_drop: float = 0.010
    usage_growth: float = 0.025
    reactivation: float = 0.015
    services: float = 0.01
    health_drift: float = 0.06
    users_scale: float = 1.0
    small_churn: float = 1.5  # churn multiplier for teams of 2 users or fewer
    large_churn: float = 1.0  # churn multiplier for teams of 10 users or more
    early_churn: float = 1.5  # churn multiplier in the first 6 months of tenure (later: its inverse square root)


PROFILES: dict[str, CompanyProfile] = {
    "plg": CompanyProfile(segment_mix=(0.9, 0.09, 0.01), churn=0.017, annual_share=0.15, invites=0.012,
                          small_churn=1.5, large_churn=0.5, early_churn=6.0,
                          upgrade=0.012, cross_sell=0.010, reactivation=0.02, usage_growth=0.015, users_scale=0.6),
    "mid_market": CompanyProfile(),
    "enterprise": CompanyProfile(segment_mix=(0.1, 0.4, 0.5), churn=0.004, annual_share=0.8, invites=0.03,
                                 upgrade=0.012, cross_sell=0.025, deactivation=0.012, services=0.03,
                                 usage_growth=0.03, users_scale=1.5),
}
