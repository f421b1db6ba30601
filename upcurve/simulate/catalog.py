"""What the simulated company sells, and the profiles that shape its customers."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from upcurve.errors import ConfigError

__all__ = ["ADDONS", "API_LIMIT", "FEATURES", "PLANS", "PROFILES", "CompanyProfile", "Plan", "company_plans",
           "price_model_json"]


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
#: The add-on products, in the order of an account's add-on columns in the simulator.
ADDONS = ("analytics", "automation", "security")
#: API calls a month included before the overage is billed.
API_LIMIT = 100_000.0

PLANS: tuple[Plan, ...] = (
    Plan("core_starter_m", "core", "starter", 1, "flat", 1, 49.0, included_seats=3),
    Plan("core_team_m", "core", "team", 2, "per_seat", 1, 15.0),
    Plan("core_team_y", "core", "team", 2, "per_seat", 12, 150.0),
    Plan("core_business_m", "core", "business", 3, "per_seat", 1, 32.0),
    Plan("core_business_y", "core", "business", 3, "per_seat", 12, 320.0),
    Plan("analytics_m", "analytics", "standard", 1, "per_seat", 1, 8.0),
    Plan("automation_m", "automation", "standard", 1, "flat", 1, 99.0),
    Plan("security_m", "security", "premium", 1, "flat", 1, 199.0),
    Plan("api_m", "api", "metered", 1, "usage", 1, 0.002, usage_metric="api_calls", usage_limit=API_LIMIT),
)
PLAN_BY_ID = {p.plan_id: p for p in PLANS}


def price_model_json(plan: Plan) -> str | None:
    """The plan's usage price as the contract's ``price_model`` (JSON): the included calls free, then the unit
    price a call (every call from the first when nothing is included); none for a plan without a usage metric."""
    if plan.usage_metric is None:
        return None
    if plan.usage_limit:
        model = {"model": "tiered_overage", "included_units": repr(plan.usage_limit),
                 "overage_unit_amount": repr(plan.unit_price), "base_amount": "0"}
    else:
        model = {"model": "per_unit", "unit_amount": repr(plan.unit_price)}
    return json.dumps(model)


def company_plans(profile: CompanyProfile) -> tuple[Plan, ...]:
    """The plans a company with ``profile`` sells: :data:`PLANS`, the API plan with the profile's included calls
    (``usage_limit`` empty when every call is billed)."""
    limit = profile.api_included or None
    return tuple(replace(p, usage_limit=limit) if p.usage_metric == "api_calls" else p for p in PLANS)


def plan_features(plan: Plan) -> str:
    """The ``;``-separated features of a plan (core tiers include every lower tier's)."""
    if plan.product == "core":
        keys = [f for rank in range(1, plan.tier_rank + 1) for f, _ in FEATURES[CORE_TIERS[rank]]]
    else:
        keys = [f for f, _ in FEATURES[plan.product]]
    return ";".join(keys)


@dataclass(frozen=True)
class CompanyProfile:
    """Monthly rates that shape the company, and the mechanisms it works by.

    The rates are scaled per account by its latent health and growth. ``invites`` (team growth, hence seats),
    ``upgrade`` (tiers), ``cross_sell`` (add-ons, the premium one among them) and ``usage_growth`` with the ``api_*``
    fields (metered usage) set the mix of levers a company expands through. Every mechanism defaults to the way
    ``mid_market`` and ``enterprise`` work (see :mod:`upcurve.simulate.mechanisms`).
    """

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
    currency_mix: tuple[float, float, float] = (0.7, 0.2, 0.1)  # accounts billed in USD, EUR, GBP
    #: List-price rises, each ``(share of the history elapsed, price multiplier)``: from month
    #: ``int(months × share)`` on, new periods are billed at list price × multiplier (rises compound).
    price_rises: tuple[tuple[float, float], ...] = ((0.5, 1.10),)
    #: Annual contracts change only at renewal: no seats bought, add-ons bought or dropped mid-term. An account
    #: that needs seats or intends to buy waits for its renewal month (and keeps previewing or trialling until then).
    renewal_changes_only: bool = False
    api_share: float = 0.4  # accounts using the API from sign-up
    api_calls: float = 35_000.0  # their median monthly API calls at sign-up
    api_adoption: float = 0.01  # monthly chance (× growth) that an account without API usage starts using it
    #: API calls a month at which an account's usage stops growing (its growth slows on the way); 0: no ceiling.
    usage_ceiling: float = 0.0
    #: API calls a month included before each call is billed; 0: no limit, every call billed from the first.
    api_included: float = API_LIMIT
    #: Seasonality of expansions: tier upgrades, add-on purchases and team growth (hence seats) are scaled by
    #: ``1 + amplitude × cos(2π (calendar month − peak) / 12)``, by the calendar month the expansion lands in.
    expansion_seasonality: float = 0.0
    expansion_peak_month: int = 1
    churn_seasonality: float = 0.0  # the same for the churn hazard, by the calendar month of the churn
    churn_peak_month: int = 12

    def __post_init__(self) -> None:
        wrong = []
        for name in ("expansion_seasonality", "churn_seasonality"):
            if not 0.0 <= getattr(self, name) < 1.0:
                wrong.append(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("expansion_peak_month", "churn_peak_month"):
            if getattr(self, name) not in range(1, 13):
                wrong.append(f"{name} must be a calendar month 1–12, got {getattr(self, name)}")
        for at, multiplier in self.price_rises:
            if not 0.0 < at < 1.0 or multiplier <= 0:
                wrong.append(f"a price rise is (share of the history in (0, 1), multiplier > 0), got {at, multiplier}")
        if self.usage_ceiling < 0:
            wrong.append(f"usage_ceiling must be 0 (none) or more, got {self.usage_ceiling}")
        if self.api_included < 0:
            wrong.append(f"api_included must be 0 (no limit) or more, got {self.api_included}")
        if wrong:
            raise ConfigError("a company profile: " + "; ".join(wrong))


PROFILES: dict[str, CompanyProfile] = {
    # self-serve SMB, mostly monthly, billed mostly in USD, list prices held: expands through seats, tiers and usage
    "plg": CompanyProfile(segment_mix=(0.9, 0.09, 0.01), churn=0.0165, annual_share=0.15, invites=0.0175,
                          small_churn=1.5, large_churn=0.5, early_churn=6.0, upgrade=0.016, cross_sell=0.010,
                          reactivation=0.02, usage_growth=0.022, users_scale=0.6, currency_mix=(0.85, 0.10, 0.05),
                          price_rises=()),
    "mid_market": CompanyProfile(),
    "enterprise": CompanyProfile(segment_mix=(0.1, 0.4, 0.5), churn=0.004, annual_share=0.8, invites=0.03,
                                 upgrade=0.012, cross_sell=0.025, deactivation=0.012, services=0.03,
                                 usage_growth=0.03, users_scale=1.5),
    # mid-market and enterprise buyers on annual contracts that change only at renewal; expands mostly through
    # seats; list prices rise 6% twice
    "annual_contracts": CompanyProfile(segment_mix=(0.2, 0.5, 0.3), churn=0.006, annual_share=0.7,
                                       renewal_changes_only=True, price_rises=((0.4, 1.06), (0.8, 1.06)),
                                       invites=0.028, upgrade=0.006, cross_sell=0.010, usage_growth=0.015,
                                       api_share=0.25, users_scale=1.2),
    # an API product billed per call from the first call, used by most accounts: expands mostly through usage,
    # which grows towards a ceiling; list prices held
    "usage_led": CompanyProfile(segment_mix=(0.5, 0.4, 0.1), churn=0.012, annual_share=0.2, api_share=0.9,
                                api_calls=50_000.0, api_included=0.0, usage_growth=0.10, usage_ceiling=2_500_000.0,
                                invites=0.010, upgrade=0.004, cross_sell=0.006, price_rises=()),
    # SMB on budget cycles: upgrades, add-ons and team growth peak in January (Q4 and Q1), cancellations in
    # December; expands mostly through tiers; list prices rise 5% twice
    "seasonal_smb": CompanyProfile(segment_mix=(0.75, 0.22, 0.03), churn=0.018, annual_share=0.25, invites=0.008,
                                   upgrade=0.045, cross_sell=0.01, early_churn=3.0, expansion_seasonality=0.6,
                                   expansion_peak_month=1, churn_seasonality=0.4, churn_peak_month=12,
                                   price_rises=((0.4, 1.05), (0.8, 1.05))),
}
