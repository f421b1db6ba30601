"""A simulated SaaS company's billing: accounts that land and expand through every lever.

The company sells one core product in three tiers (starter, flat; team and business, per seat; monthly or annual),
two add-on modules (analytics, per seat; automation, flat) and a metered API (usage lines above the plan's
included volume). Customers pay in USD, EUR or GBP, on their own billing anniversary day. Each month, customers
add and remove seats, upgrade or downgrade, adopt add-ons, grow their API usage, buy services, and churn (and some
come back). A list-price increase applies to new periods while annual contracts keep their price until renewal.

Everything is vectorised over accounts, month by month, so a hundred thousand accounts over three years take
seconds. The generator is deterministic for a seed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["PLANS", "CompanyProfile", "simulate_billing", "write_company"]

# plan_id, product, tier, tier_rank, pricing, interval_months, unit_price, included_seats, usage_metric, usage_limit
PLANS = [
    ("core_starter_m", "core", "starter", 1, "flat", 1, 49.0, 3, None, None),
    ("core_team_m", "core", "team", 2, "per_seat", 1, 15.0, None, None, None),
    ("core_team_y", "core", "team", 2, "per_seat", 12, 150.0, None, None, None),
    ("core_business_m", "core", "business", 3, "per_seat", 1, 32.0, None, None, None),
    ("core_business_y", "core", "business", 3, "per_seat", 12, 320.0, None, None, None),
    ("analytics_m", "analytics", "standard", 1, "per_seat", 1, 8.0, None, None, None),
    ("automation_m", "automation", "standard", 1, "flat", 1, 99.0, None, None, None),
    ("api_m", "api", "metered", 1, "usage", 1, 0.002, None, "api_calls", 100_000.0),
]
FEATURES = {
    "core": "dashboards;projects;comments",
    "analytics": "reports;forecasts",
    "automation": "workflows;webhooks",
    "api": "api_access",
}
TIER_PLANS = {1: ("core_starter_m", "core_starter_m"), 2: ("core_team_m", "core_team_y"),
              3: ("core_business_m", "core_business_y")}
CURRENCIES = ("USD", "EUR", "GBP")
BASE_RATES = {"EUR": 1.08, "GBP": 1.27}
SEGMENTS = ("smb", "mid_market", "enterprise")
REGIONS = ("na", "emea", "apac")
INDUSTRIES = ("software", "retail", "finance", "health", "media")
OWNERS = tuple(f"csm_{i:02d}" for i in range(1, 13))
PRICE_INCREASE = 1.10  # list prices rise 10% from the price-increase month on (new periods only)


@dataclass(frozen=True)
class CompanyProfile:
    """Monthly probabilities that shape the company (defaults: a mid-market B2B SaaS)."""

    churn: float = 0.012
    annual_share: float = 0.35
    seat_add: float = 0.05
    seat_remove: float = 0.03
    upgrade: float = 0.02
    downgrade: float = 0.004
    cross_sell: float = 0.025
    addon_drop: float = 0.01
    usage_growth: float = 0.03
    reactivation: float = 0.02
    services: float = 0.01


PROFILES = {
    "plg": CompanyProfile(churn=0.03, annual_share=0.15, seat_add=0.08, upgrade=0.015, cross_sell=0.015,
                          reactivation=0.03),
    "mid_market": CompanyProfile(),
    "enterprise": CompanyProfile(churn=0.005, annual_share=0.7, seat_add=0.12, upgrade=0.025, cross_sell=0.035,
                                 seat_remove=0.02, services=0.03),
}


def _add_months(year: np.ndarray, month0: np.ndarray, day: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """Dates ``n`` months after (year, month0 + 1, day), clamping the day to the month's length (as billing does)."""
    idx = (year - 1970) * 12 + month0 + n
    first = idx.astype("datetime64[M]")
    length = ((first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")).astype(np.int64)
    return first.astype("datetime64[D]") + (np.minimum(day, length) - 1).astype("timedelta64[D]")


class _Lines:
    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, **cols: Any) -> None:
        n = len(cols["account"])
        if n:
            self.parts.append({k: np.broadcast_to(v, (n,)) if np.ndim(v) == 0 else v for k, v in cols.items()})

    def table(self, account_ids: np.ndarray, currencies: np.ndarray) -> pa.Table:
        cols = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}
        acc = cols["account"]
        n = len(acc)
        return pa.table({
            "line_id": pa.array([f"L{i:09d}" for i in range(1, n + 1)]),
            "account_id": pa.array(account_ids[acc]),
            "plan_id": pa.array(cols["plan"], pa.string()),
            "kind": pa.array(cols["kind"], pa.string()),
            "quantity": pa.array(cols["quantity"], pa.float64()),
            "amount": pa.array(np.round(cols["amount"], 2), pa.float64()),
            "currency": pa.array(currencies[acc]),
            "period_start": pa.array(cols["start"].astype("datetime64[D]")),
            "period_end": pa.array(cols["end"].astype("datetime64[D]")),
        })


def simulate_billing(
    accounts: int = 2000, months: int = 36, seed: int = 7, profile: str = "mid_market",
    start: dt.date = dt.date(2023, 1, 1),
) -> dict[str, pa.Table]:
    """Simulate a company's ``accounts``, ``plans``, ``invoice_lines`` and ``fx_rates``.

    Deterministic for ``seed``. Accounts sign up over the whole window (a third in the first month, the opening
    base); ``months`` months of billing from ``start`` are produced.
    """
    p = PROFILES[profile]
    rng = np.random.default_rng(seed)
    n = accounts
    ids = np.array([f"A{i:07d}" for i in range(1, n + 1)])
    seg = rng.choice(len(SEGMENTS), n, p=[0.6, 0.3, 0.1])
    cur_idx = rng.choice(len(CURRENCIES), n, p=[0.7, 0.2, 0.1])
    currencies = np.array(CURRENCIES)[cur_idx]
    signup = np.where(rng.random(n) < 0.33, 0, rng.integers(0, months, n))
    anchor = np.where(rng.random(n) < 0.9, rng.integers(1, 29, n), rng.integers(29, 32, n))
    annual = rng.random(n) < np.where(seg == 0, p.annual_share * 0.5, p.annual_share * 1.5)
    seats = np.maximum(1, np.round(rng.lognormal(np.log([3, 12, 60])[seg], 0.6))).astype(np.int64)
    tier = np.where(seg == 0, rng.choice([1, 2], n, p=[0.6, 0.4]), rng.choice([2, 3], n, p=[0.7, 0.3]))
    annual &= tier > 1
    analytics = np.zeros(n, bool)
    automation = np.zeros(n, bool)
    api_calls = np.where(rng.random(n) < 0.4, rng.lognormal(np.log(40_000), 0.8, n), 0.0)
    active = np.zeros(n, bool)
    ever = np.zeros(n, bool)
    price_paid = np.zeros(n)  # per-seat (or flat) core price locked for the current annual term
    renew_in = np.zeros(n, np.int64)  # months until an annual account's renewal
    increase_month = months // 2
    lines = _Lines()
    plan_price = {pl[0]: pl[6] for pl in PLANS}
    y0, m00 = start.year, start.month - 1

    for m in range(months):
        factor = PRICE_INCREASE if m >= increase_month else 1.0
        year = np.full(n, y0)
        month0 = np.full(n, m00 + m)
        # -- arrivals and returns
        arriving = (signup == m) & ~active & ~ever
        returning = ~active & ever & (rng.random(n) < p.reactivation)
        starting = arriving | returning
        active |= starting
        ever |= starting
        renew_in[starting & annual] = 0
        # -- churn: monthly payers any month, annual payers at renewal
        at_renewal = active & annual & (renew_in == 0) & ~starting
        may_churn = active & ~starting & (~annual | at_renewal)
        churn_p = p.churn * np.where(seg == 2, 0.6, 1.0) * np.where(annual, 6.0, 1.0)
        churning = may_churn & (rng.random(n) < churn_p)
        active &= ~churning
        # -- expansion and contraction levers (annual accounts change plan at renewal; seats any time)
        live = active & ~starting
        flexible = live & (~annual | at_renewal)
        add = live & (rng.random(n) < p.seat_add)
        seats = np.where(add, seats + np.maximum(1, np.round(seats * rng.uniform(0.05, 0.3, n))), seats)
        remove = flexible & (rng.random(n) < p.seat_remove) & (seats > 1)
        seats = np.where(remove, np.maximum(1, seats - np.maximum(1, np.round(seats * 0.15))), seats).astype(np.int64)
        up = flexible & (tier < 3) & (rng.random(n) < p.upgrade * (1 + (seats > 10)))
        down = flexible & (tier > 1) & ~up & (rng.random(n) < p.downgrade)
        tier = tier + up - down
        annual &= tier > 1
        to_annual = flexible & ~annual & (tier > 1) & (rng.random(n) < 0.01)
        annual |= to_annual
        tenure_ok = live & (m - signup >= 3)
        analytics |= tenure_ok & (rng.random(n) < p.cross_sell) & (tier > 1)
        automation |= tenure_ok & (rng.random(n) < p.cross_sell * 0.6)
        analytics &= ~(live & (rng.random(n) < p.addon_drop))
        automation &= ~(live & (rng.random(n) < p.addon_drop))
        api_calls = np.where(live, api_calls * rng.lognormal(p.usage_growth - 0.02, 0.15, n), api_calls)
        api_calls = np.where(live & (api_calls == 0) & (rng.random(n) < 0.01), 50_000.0, api_calls)
        analytics &= active
        automation &= active

        a = np.flatnonzero(active)
        if len(a):
            ps = _add_months(year[a], month0[a], anchor[a], 0)
            pe1 = _add_months(year[a], month0[a], anchor[a], 1)
            pe12 = _add_months(year[a], month0[a], anchor[a], 12)
            is_annual = annual[a]
            bill_core = ~is_annual | (renew_in[a] == 0) | starting[a] | up[a] | down[a] | to_annual[a]
            plan_ids = np.array([TIER_PLANS[t][1 if ann else 0] for t, ann in zip(tier[a], is_annual, strict=True)])
            base_price = np.array([plan_price[pid] for pid in plan_ids]) * factor
            locked = np.where(is_annual & ~bill_core, price_paid[a], base_price)
            price_paid[a] = np.where(bill_core, base_price, price_paid[a])
            qty = np.where(tier[a] == 1, 1, seats[a]).astype(float)
            discount = np.where(seg[a] == 2, 0.85, 1.0)
            sel = bill_core
            lines.add(account=a[sel], plan=plan_ids[sel], kind="subscription", quantity=qty[sel],
                      amount=(locked * qty * discount)[sel], start=ps[sel], end=np.where(is_annual, pe12, pe1)[sel])
            # seats added mid-term on an annual contract: a proration line to the end of the term
            mid = is_annual & ~bill_core & add[a]
            if mid.any():
                added = np.maximum(1, np.round(seats[a][mid] * 0.1))
                remaining = renew_in[a][mid] / 12
                term_end = _add_months(year[a][mid], month0[a][mid], anchor[a][mid], renew_in[a][mid])
                lines.add(account=a[mid], plan=plan_ids[mid], kind="subscription", quantity=added,
                          amount=locked[mid] * added * remaining * discount[mid], start=ps[mid], end=term_end)
            renew_in[a] = np.where(bill_core & is_annual, 11, np.maximum(renew_in[a] - 1, 0))
            an = analytics[a]
            lines.add(account=a[an], plan="analytics_m", kind="subscription", quantity=seats[a][an].astype(float),
                      amount=plan_price["analytics_m"] * factor * seats[a][an], start=ps[an], end=pe1[an])
            au = automation[a]
            lines.add(account=a[au], plan="automation_m", kind="subscription", quantity=np.ones(au.sum()),
                      amount=np.full(au.sum(), plan_price["automation_m"] * factor), start=ps[au], end=pe1[au])
            over = np.maximum(api_calls[a] - 100_000.0, 0)
            us = over > 0
            lines.add(account=a[us], plan="api_m", kind="usage", quantity=np.round(over[us]),
                      amount=np.round(over[us]) * plan_price["api_m"], start=ps[us], end=pe1[us])
            sv = (rng.random(len(a)) < p.services) | (starting[a] & (seg[a] > 0))
            lines.add(account=a[sv], plan=np.full(sv.sum(), None, object), kind="one_time", quantity=np.ones(sv.sum()),
                      amount=rng.choice([1500.0, 3000.0, 7500.0], sv.sum()), start=ps[sv],
                      end=ps[sv] + np.timedelta64(1, "D"))

    invoice_lines = lines.table(ids, currencies)
    accounts_t = pa.table({
        "account_id": ids,
        "name": [f"Customer {i}" for i in range(1, n + 1)],
        "segment": np.array(SEGMENTS)[seg],
        "industry": rng.choice(INDUSTRIES, n),
        "region": rng.choice(REGIONS, n),
        "owner": rng.choice(OWNERS, n),
        "created_at": pa.array(_add_months(np.full(n, y0), np.full(n, m00) + signup, np.ones(n, int), 0)),
    })
    plans = pa.table({
        "plan_id": [pl[0] for pl in PLANS], "product": [pl[1] for pl in PLANS], "tier": [pl[2] for pl in PLANS],
        "tier_rank": [pl[3] for pl in PLANS], "pricing": [pl[4] for pl in PLANS],
        "interval_months": [pl[5] for pl in PLANS], "unit_price": [pl[6] for pl in PLANS],
        "included_seats": pa.array([pl[7] for pl in PLANS], pa.int64()),
        "usage_metric": pa.array([pl[8] for pl in PLANS], pa.string()),
        "usage_limit": pa.array([pl[9] for pl in PLANS], pa.float64()),
        "features": [FEATURES[pl[1]] for pl in PLANS],
    })
    fx_rows: dict[str, list] = {"month": [], "currency": [], "rate": []}
    for code, base in BASE_RATES.items():
        walk = base * np.exp(np.cumsum(rng.normal(0, 0.015, months + 1)))
        for m in range(months + 1):
            idx = y0 * 12 + m00 + m
            fx_rows["month"].append(f"{idx // 12:04d}-{idx % 12 + 1:02d}")
            fx_rows["currency"].append(code)
            fx_rows["rate"].append(round(float(walk[m]), 6))
    return {"accounts": accounts_t, "plans": plans, "invoice_lines": invoice_lines, "fx_rates": pa.table(fx_rows)}


def write_company(tables: dict[str, pa.Table], out_dir: str | Path, fmt: str = "parquet") -> Path:
    """Write simulated tables as a data folder in the input contract."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        if fmt == "parquet":
            pq.write_table(table, out / f"{name}.parquet")
        else:
            pacsv.write_csv(table, out / f"{name}.csv")
    return out
