"""A simulated SaaS company whose customers land and expand the way the field describes it.

Each account has two latent traits: ``growth`` (how fast its team and usage grow) and ``health`` (a random walk
that drives engagement, tickets, NPS, goal outcomes and churn). Month by month, and vectorised over a block of
accounts, the simulator moves every account through the levers of expansion and contraction, and writes what a
company's systems would record: invoice lines, users, product events, metered usage, renewals, tickets, NPS, outcome
check-ins and the plays customer success ran (with the eligible accounts each play held out, so its uplift
can be measured).

Product behaviour leads revenue by weeks, so a model can learn it:
- **seats**: invites, then activations; when active users pass ~85% of purchased seats, seats are bought next month;
  a starter account outgrowing its 3 included seats upgrades to team;
- **tier**: an account that intends to upgrade previews higher-tier features the month before it does;
- **cross-sell and premium**: accounts deep in the core product trial an add-on module's features the month before
  buying it (the security add-on is the premium-features lever);
- **usage**: API calls grow with the account; above the plan's monthly volume the overage is billed;
- **churn** follows falling health: fewer logins, more tickets, low NPS and goals behind come first;
- **price**: list prices rise 10% halfway through the history for new periods; annual contracts keep their price
  until renewal; enterprise accounts get 15% off the core plan (the coupon "Enterprise 15%" on its lines);
- **services**: onboarding and training as one-time lines. Some churned accounts come back.

A profile can make the company work differently (:mod:`upcurve.simulate.mechanisms`): other price rises, annual
contracts that change only at renewal, seasons, API calls billed from the first, another mix of levers.

The ground truth (latent traits, the lever behind each expansion, the effect of each play) is written to ``truth/``
beside the data, where the pipeline never looks. Output is deterministic for a seed; accounts are simulated in
blocks of :data:`BLOCK` and streamed to disk, so memory stays bounded however many accounts are asked for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from upcurve.simulate.catalog import (
    ADDONS,
    CORE_TIERS,
    FEATURES,
    PLAN_BY_ID,
    PROFILES,
    CompanyProfile,
    company_plans,
    plan_features,
    price_model_json,
)
from upcurve.simulate.mechanisms import list_price_factor, seasonal_factor
from upcurve.simulate.oracle import (
    ORACLE_SCHEMA,
    TRUTH_LEVERS,
    OracleRequest,
    oracle_probabilities,
    oracle_seeds,
    snapshot_months,
)
from upcurve.simulate.sinks import TableSinks

__all__ = ["BILLING_TABLES", "BLOCK", "simulate_company", "simulate_tables", "write_folder"]

BILLING_TABLES = ("accounts", "plans", "invoice_lines", "fx_rates")

BLOCK = 5000
CURRENCIES = ("USD", "EUR", "GBP")
BASE_RATES = {"EUR": 1.08, "GBP": 1.27}
SEGMENTS = ("smb", "mid_market", "enterprise")
REGIONS = ("na", "emea", "apac")
INDUSTRIES = ("software", "retail", "finance", "health", "media")
OWNERS = tuple(f"csm_{i:02d}" for i in range(1, 13))
PLAYS = ("upgrade_prompt", "csm_call", "webinar_invite")
#: The upgrade prompts a prompted account sees: (prompt type, placement, share of viewers who click, weight).
PROMPTS = (("feature_gate", "editor", 0.55, 0.3), ("feature_gate", "reports", 0.45, 0.2),
           ("usage_banner", "dashboard", 0.30, 0.3), ("upgrade_email", "email", 0.20, 0.2))
#: Whether the eligible accounts each play held out are logged in ``activities`` (outcome ``holdout``). Off, the
#: tables are those of a simulator that logged only the treated accounts: a test compares the two.
_LOG_HOLDOUTS = True
#: Whether the upgrade funnel's events (prompt views, clicks, plan-page visits, checkouts, upgrades) are written.
#: They draw from a stream of their own: off, every other table is the same (a test compares the two).
_FUNNEL_EVENTS = True


def _month_start(start: dt.date, m: int | np.ndarray) -> np.ndarray:
    return (np.datetime64(start, "M") + np.asarray(m)).astype("datetime64[D]")


def _anniversary(start: dt.date, m: np.ndarray, day: np.ndarray, months_later: int | np.ndarray = 0) -> np.ndarray:
    """The billing anniversary ``months_later`` months after month ``m``, the day clamped to the month's length."""
    first = np.datetime64(start, "M") + np.asarray(m) + np.asarray(months_later)
    length = ((first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")).astype(np.int64)
    return first.astype("datetime64[D]") + (np.minimum(day, length) - 1).astype("timedelta64[D]")


@dataclass
class _Rows:
    """Columns of one output table, gathered as numpy chunks."""

    parts: list[dict[str, np.ndarray]] = field(default_factory=list)

    def add(self, **cols: Any) -> None:
        n = max(len(v) for v in cols.values() if np.ndim(v) > 0)
        if n:
            self.parts.append({k: (np.full(n, v, dtype=object) if np.ndim(v) == 0 else np.asarray(v))
                               for k, v in cols.items()})

    def table(self, schema: pa.Schema) -> pa.Table:
        if not self.parts:
            return schema.empty_table()
        cols = {}
        for f in schema:
            values = np.concatenate([p[f.name] for p in self.parts])
            cols[f.name] = pa.array(values, f.type, from_pandas=True) if values.dtype == object else pa.array(
                values).cast(f.type)
        return pa.table(cols, schema=schema)


#: The coupon of the enterprise discount (15% off the core plan), on the lines it reduced.
ENTERPRISE_COUPON = "Enterprise 15%"

SCHEMAS = {
    "accounts": pa.schema([("account_id", pa.string()), ("name", pa.string()), ("segment", pa.string()),
                           ("industry", pa.string()), ("region", pa.string()), ("owner", pa.string()),
                           ("created_at", pa.date32())]),
    "invoice_lines": pa.schema([("line_id", pa.string()), ("account_id", pa.string()), ("plan_id", pa.string()),
                                ("kind", pa.string()), ("quantity", pa.float64()), ("amount", pa.float64()),
                                ("currency", pa.string()), ("period_start", pa.date32()),
                                ("period_end", pa.date32()), ("coupon", pa.string()), ("discount", pa.float64())]),
    "users": pa.schema([("user_id", pa.string()), ("account_id", pa.string()), ("invited_at", pa.timestamp("s")),
                        ("activated_at", pa.timestamp("s")), ("deactivated_at", pa.timestamp("s")),
                        ("role", pa.string())]),
    "events": pa.schema([("ts", pa.timestamp("s")), ("account_id", pa.string()), ("user_id", pa.string()),
                         ("event", pa.string()), ("feature", pa.string()), ("category", pa.string())]),
    "usage": pa.schema([("ts", pa.timestamp("s")), ("account_id", pa.string()), ("metric", pa.string()),
                        ("quantity", pa.float64()), ("user_id", pa.string())]),
    "renewals": pa.schema([("account_id", pa.string()), ("renewal_date", pa.date32())]),
    "tickets": pa.schema([("account_id", pa.string()), ("opened_at", pa.timestamp("s")), ("severity", pa.string())]),
    "nps": pa.schema([("account_id", pa.string()), ("ts", pa.timestamp("s")), ("score", pa.int64())]),
    "outcomes": pa.schema([("account_id", pa.string()), ("as_of", pa.date32()), ("status", pa.string())]),
    "activities": pa.schema([("account_id", pa.string()), ("ts", pa.timestamp("s")), ("play", pa.string()),
                             ("outcome", pa.string())]),
    "truth_accounts": pa.schema([("account_id", pa.string()), ("growth", pa.float64()),
                                 ("health_mean", pa.float64()), ("health_final", pa.float64()),
                                 ("churned", pa.bool_())]),
    "truth_expansions": pa.schema([("account_id", pa.string()), ("month", pa.string()), ("lever", pa.string())]),
    "truth_plays": pa.schema([("account_id", pa.string()), ("month", pa.string()), ("play", pa.string()),
                              ("effect", pa.string())]),
}
TRUTH = {"truth_accounts": "accounts", "truth_expansions": "expansions", "truth_plays": "plays",
         "truth_oracle": "oracle"}


class _Block:
    """A block of accounts simulated together through every month."""

    def __init__(self, first: int, n: int, months: int, rng: np.random.Generator, p: CompanyProfile,
                 start: dt.date, events: bool) -> None:
        self.first, self.n, self.months, self.rng, self.p, self.start, self.with_events = (
            first, n, months, rng, p, start, events)
        self.ids = np.array([f"A{first + i + 1:07d}" for i in range(n)], dtype=object)
        self.rows = {name: _Rows() for name in SCHEMAS}
        # the oracle re-simulates stacked copies of a block (upcurve.simulate.oracle): a copy records no rows, and
        # the one draw a month shared by all accounts is drawn once per copy (``copy_index`` says whose copy)
        self.recording = True
        # a copy marks here, account by lever (TRUTH_LEVERS), the levers it moved in the oracle's window
        self.levers_moved: np.ndarray | None = None
        self.copies = 1
        self.copy_index = np.zeros(n, np.int64)
        # the upgrade funnel's events draw from a stream of their own (spawning it leaves ``rng``'s draws as they
        # were), so every other table is the same with or without them
        seeds = rng.bit_generator.seed_seq
        assert isinstance(seeds, np.random.SeedSequence)  # a generator made from a seed, as simulate_company makes it
        self.funnel_rng = np.random.default_rng(seeds.spawn(1)[0])
        r = rng
        self.seg = r.choice(3, n, p=list(p.segment_mix))
        self.currency = np.array(CURRENCIES, dtype=object)[r.choice(3, n, p=list(p.currency_mix))]
        self.signup = np.where(r.random(n) < 0.33, 0, r.integers(0, months, n))
        self.anchor = np.where(r.random(n) < 0.9, r.integers(1, 29, n), r.integers(29, 32, n))
        self.growth = r.lognormal(0.0, 0.35, n)
        self.health = np.clip(r.beta(5, 2.5, n), 0.02, 0.98)
        self.health_sum = np.zeros(n)
        self.health_n = np.zeros(n)
        users0 = np.maximum(1, np.round(r.lognormal(np.log([3, 12, 45])[self.seg], 0.5) * p.users_scale))
        self.team0 = users0.astype(np.int64)  # the team that arrives with the account
        self.users = np.zeros(n, np.int64)  # active users at the end of the month
        self.tier = np.where(self.seg == 0, r.choice([1, 2], n, p=[0.5, 0.5]), r.choice([2, 3], n, p=[0.7, 0.3]))
        self.seats = np.where(self.tier == 1, 3, np.ceil(self.team0 * 1.1)).astype(np.int64)
        self.annual = (r.random(n) < p.annual_share * np.array([0.5, 1.2, 1.6])[self.seg]) & (self.tier > 1)
        self.addon = np.zeros((n, 3), bool)
        self.api = np.where(r.random(n) < p.api_share, r.lognormal(np.log(p.api_calls), 0.8, n), 0.0)
        self.active = np.zeros(n, bool)
        self.ever = np.zeros(n, bool)
        self.churned_ever = np.zeros(n, bool)
        self.renew_in = np.zeros(n, np.int64)
        self.price_paid = np.zeros(n)
        self.intent_tier = np.zeros(n, bool)
        self.intent_addon = np.full(n, -1)
        self.prompted = np.zeros(n, bool)
        self.discount = np.where(self.seg == 2, 0.85, 1.0)
        self.prev_over = np.zeros(n)
        self.mid_upgrade = np.zeros(n, bool)
        self.old_tier = self.tier.copy()
        # users of the block: their account index, ids and dates, kept for events and written at the end
        self.u_acc = np.repeat(np.arange(n), 0)
        self.u_inv = np.array([], dtype="datetime64[s]")
        self.u_act = np.array([], dtype="datetime64[s]")
        self.u_deact = np.array([], dtype="datetime64[s]")
        self.next_line = 0
        self.next_user = 0

    # -- helpers ---------------------------------------------------------------------------------------------
    def _funnel_times(self, m: int, count: int) -> np.ndarray:
        first = _month_start(self.start, m)
        days = (_month_start(self.start, m + 1) - first).astype(np.int64)
        secs = self.funnel_rng.integers(0, int(days) * 86400, count)
        return first.astype("datetime64[s]") + secs.astype("timedelta64[s]")

    def _funnel_prompts(self, m: int, prompted: np.ndarray) -> None:
        """The upgrade prompts shown to the prompted accounts, and the clicks, plan-page visits and checkouts that
        follow, each a share of the stage before that depends on the prompt (see :data:`PROMPTS`)."""
        r, idx = self.funnel_rng, np.flatnonzero(prompted)
        if not len(idx):
            return
        kind = r.choice(len(PROMPTS), len(idx), p=[w for *_, w in PROMPTS])
        ts = self._funnel_times(m, len(idx))
        types = np.array([t for t, *_ in PROMPTS], dtype=object)[kind]
        places = np.array([pl for _, pl, *_ in PROMPTS], dtype=object)[kind]
        click_p = np.array([c for _, _, c, _ in PROMPTS])[kind]
        stages = [("upgrade_prompt_viewed", np.ones(len(idx), bool)),
                  ("upgrade_prompt_clicked", r.random(len(idx)) < click_p)]
        stages.append(("plan_page_viewed", stages[-1][1] & (r.random(len(idx)) < 0.7)))
        stages.append(("checkout_started", stages[-1][1] & (r.random(len(idx)) < 0.6)))
        for step, (event, reached) in enumerate(stages):
            who = np.flatnonzero(reached)
            later = (ts[who] + np.timedelta64(step * 600, "s"))  # each stage ten minutes after the one before
            self.rows["events"].add(ts=later, account_id=self.ids[idx[who]], user_id=None, event=event,
                                    feature=types[who], category=places[who])

    def _funnel_upgrades(self, m: int, upgrades: np.ndarray) -> None:
        idx = np.flatnonzero(upgrades)
        if len(idx):
            self.rows["events"].add(ts=self._funnel_times(m, len(idx)), account_id=self.ids[idx], user_id=None,
                                    event="upgrade_completed", feature=None, category=None)

    def _times(self, m: int, count: int) -> np.ndarray:
        first = _month_start(self.start, m)
        days = (_month_start(self.start, m + 1) - first).astype(np.int64)
        secs = self.rng.integers(0, int(days) * 86400, count)
        return first.astype("datetime64[s]") + secs.astype("timedelta64[s]")

    def _label(self, m: int) -> str:
        idx = self.start.year * 12 + self.start.month - 1 + m
        return f"{idx // 12:04d}-{idx % 12 + 1:02d}"

    def _truth(self, idx: np.ndarray, m: int, lever: str) -> None:
        if len(idx) and self.recording:
            self.rows["truth_expansions"].add(account_id=self.ids[idx], month=self._label(m), lever=lever)
        elif len(idx) and self.levers_moved is not None:
            self.levers_moved[idx, TRUTH_LEVERS.index(lever)] = True

    def _invite(self, acc: np.ndarray, m: int, activation: float) -> None:
        """New users for accounts ``acc`` (repeated per user), invited this month; most activate days later."""
        if not len(acc):
            return
        invited = self._times(m, len(acc))
        lag = (self.rng.exponential(4.0, len(acc)) * 86400).astype("timedelta64[s]")
        activated = np.where(self.rng.random(len(acc)) < activation, invited + lag, np.datetime64("NaT"))
        self.u_acc = np.concatenate([self.u_acc, acc])
        self.u_inv = np.concatenate([self.u_inv, invited])
        self.u_act = np.concatenate([self.u_act, activated.astype("datetime64[s]")])
        self.u_deact = np.concatenate([self.u_deact, np.full(len(acc), np.datetime64("NaT"), "datetime64[s]")])

    def _line(self, acc: np.ndarray, plan: Any, kind: str, qty: np.ndarray, amount: np.ndarray,
              start: np.ndarray, end: np.ndarray, discount: np.ndarray | None = None) -> None:
        """Invoice lines; ``discount``: what the enterprise discount took off each (``amount`` is net of it), the
        line then carrying the coupon :data:`ENTERPRISE_COUPON`."""
        if not len(acc):
            return
        ids = np.array([f"L{self.first:07d}-{self.next_line + i:07d}" for i in range(len(acc))], dtype=object)
        self.next_line += len(acc)
        off = np.zeros(len(acc)) if discount is None else np.round(np.asarray(discount, float), 2)
        coupon, taken = np.full(len(acc), None, dtype=object), np.full(len(acc), None, dtype=object)
        coupon[off > 0], taken[off > 0] = ENTERPRISE_COUPON, off[off > 0]
        self.rows["invoice_lines"].add(line_id=ids, account_id=self.ids[acc], plan_id=plan, kind=kind,
                                       quantity=np.asarray(qty, float), amount=np.round(np.asarray(amount, float), 2),
                                       currency=self.currency[acc], period_start=start, period_end=end,
                                       coupon=coupon, discount=taken)

    # -- one month -------------------------------------------------------------------------------------------
    def month(self, m: int) -> None:
        r, p, n = self.rng, self.p, self.n
        factor = list_price_factor(p, self.months, m)
        # the seasons of this month (team growth, churn) and of next month, when this month's intents land
        grow_now = seasonal_factor(p.expansion_seasonality, p.expansion_peak_month, self.start, m)
        grow_next = seasonal_factor(p.expansion_seasonality, p.expansion_peak_month, self.start, m + 1)
        leave_now = seasonal_factor(p.churn_seasonality, p.churn_peak_month, self.start, m)
        ms = _month_start(self.start, m)
        month_end = _month_start(self.start, m + 1).astype("datetime64[s]")

        # health drifts; falling health is what precedes churn
        self.health = np.clip(self.health + r.normal(-0.004, p.health_drift, n), 0.02, 0.98)

        arriving = (self.signup == m) & ~self.ever
        returning = ~self.active & self.ever & (r.random(n) < p.reactivation)
        starting = arriving | returning
        self.health[returning] = np.clip(self.health[returning] + 0.3, 0, 0.95)
        self.active |= starting
        self.ever |= starting
        self.renew_in[starting] = 0
        if arriving.any():
            acc = np.flatnonzero(arriving)
            self._invite(np.repeat(acc, self.team0[acc]), m, 1.0)

        at_renewal = self.active & self.annual & (self.renew_in == 0) & ~starting
        live = self.active & ~starting
        # small, unhealthy accounts churn most: starter plans and single-user teams leave first
        size = np.where(self.tier == 1, 1.8, 1.0) * np.where(self.users <= 2, p.small_churn, 1.0)
        size = size * np.where(self.users >= 10, p.large_churn, 1.0)
        young = (m - self.signup) < 6
        size = size * np.where(young, p.early_churn, 1 / np.sqrt(p.early_churn))
        churn_rate = p.churn * leave_now
        hazard = churn_rate * (0.35 + 4.0 * (1 - self.health) ** 3) * np.array([1.3, 0.8, 0.5])[self.seg] * size
        hazard = np.where(self.annual, 1 - (1 - hazard) ** 12, hazard)
        churning = live & (~self.annual | at_renewal) & (r.random(n) < hazard)
        self.active &= ~churning
        self.churned_ever |= churning
        live &= ~churning
        flexible = live & (~self.annual | at_renewal)
        # the accounts whose contract can change this month (seats, add-ons), and the annual ones that must wait
        changeable = flexible if p.renewal_changes_only else live
        waiting = live & ~changeable

        # users: invites, activations and deactivations; the team grows with the account's growth and health
        eng = self.health * self.growth
        invites = r.poisson(p.invites * grow_now * self.users * eng * live)
        acc = np.repeat(np.arange(n), invites)
        self._invite(acc, m, 0.8)
        leaving = r.binomial(self.users * live, p.deactivation * (1.6 - self.health))
        self._deactivate(leaving, m)
        self.users = self._active_users(month_end)

        # seats: saturation past 85% buys seats; starter accounts past 3 users upgrade to team
        per_seat = self.tier > 1
        saturated = live & per_seat & (self.users >= 0.85 * self.seats)
        buy = np.maximum(np.ceil(self.users * 1.15).astype(np.int64) - self.seats, 0)
        buy_now = saturated & (buy > 0) & changeable
        self.seats_added = np.where(buy_now, buy, 0)
        shrink = flexible & per_seat & (self.users < 0.7 * self.seats) & (r.random(n) < 0.3)
        new_seats = np.where(shrink, np.maximum(1, np.ceil(self.users * 1.1)), self.seats + np.where(buy_now, buy, 0))
        outgrown = live & (self.tier == 1) & (self.users > 3) & (r.random(n) < 0.2)

        # tier: last month's intent (previews) turns into an upgrade; plays nudge it
        upgrade_p = np.where(self.prompted, 0.75, 0.55)
        upgrades = flexible & self.intent_tier & (self.tier < 3) & (r.random(n) < upgrade_p)
        downgrade = flexible & (self.tier > 1) & (self.health < 0.3) & (r.random(n) < p.downgrade * 10)
        old_tier = self.tier.copy()
        self.tier = np.where(upgrades, self.tier + 1, np.where(downgrade, self.tier - 1, self.tier))
        new_seats = np.where(upgrades & (old_tier == 1), np.maximum(self.users, 3), new_seats)
        new_seats = np.where(downgrade & (self.tier == 1), 3, new_seats)
        self.seats = new_seats.astype(np.int64)
        self.annual &= self.tier > 1
        # intent shows as previews of the next tier this month; a starter team past its 3 seats looks too; an
        # annual account that must wait for its renewal keeps its intent (and previews) until then
        self.intent_tier = live & (self.tier < 3) & (
            (r.random(n) < p.upgrade * grow_next * eng * 1.5) | outgrown | (waiting & self.intent_tier))

        # add-ons: last month's trials become purchases; deep, tenured accounts start new trials
        buying = live & (self.intent_addon >= 0) & (r.random(n) < 0.6) & changeable
        for k in range(3):
            got = buying & (self.intent_addon == k) & ~self.addon[:, k]
            self.addon[got, k] = True
            self._truth(np.flatnonzero(got), m, "premium" if ADDONS[k] == "security" else "cross_sell")
        drop = live & (r.random(n) < p.addon_drop * (1.5 - self.health))
        dropping = drop & self.addon.any(axis=1) & changeable
        # one add-on a month is the one dropped, the same for the whole company (for each copy of it)
        dropped = r.integers(0, 3) if self.copies == 1 else r.integers(0, 3, self.copies)[self.copy_index[dropping]]
        self.addon[dropping, dropped] = False
        tenured = live & (m - self.signup >= 4) & (self.health > 0.5)
        trial = tenured & (r.random(n) < p.cross_sell * grow_next * eng)
        choice = np.where(self.tier == 3, r.integers(0, 3, n), r.integers(0, 2, n))
        intent = np.where(trial & ~self.addon[np.arange(n), choice], choice, -1)
        self.intent_addon = np.where(waiting & (self.intent_addon >= 0), self.intent_addon, intent)
        self.addon &= self.active[:, None]

        # usage grows with the account; overage above the plan's volume is billed
        drift = p.usage_growth * (eng - 0.3)
        if p.usage_ceiling:  # growth slows as usage nears the ceiling, and stops there
            drift = drift * np.clip(1 - self.api / p.usage_ceiling, 0.0, 1.0)
        self.api = np.where(live, self.api * r.lognormal(drift, 0.04, n), self.api)
        self.api = np.where(live & (self.api == 0) & (r.random(n) < p.api_adoption * self.growth), 30_000.0,
                            self.api)
        over = np.where(self.active, np.maximum(self.api - p.api_included, 0.0), 0.0)
        self._truth(np.flatnonzero(live & (over > self.prev_over * 1.1) & (over > 0)), m, "usage")
        self.prev_over = over

        self._truth(np.flatnonzero(buy_now & ~upgrades), m, "seat")
        self._truth(np.flatnonzero(upgrades), m, "tier")
        if self.with_events and _FUNNEL_EVENTS:
            self._funnel_upgrades(m, upgrades)
        # some monthly payers upgrade after this period's invoice: a proration line bills the difference
        self.mid_upgrade = upgrades & ~self.annual & ~starting & (old_tier > 1) & (r.random(n) < 0.3)
        self.old_tier = old_tier
        # billing and the CRM only write records (and draw for them): a copy that records nothing skips them
        if self.recording:
            self._bill(m, factor, starting, at_renewal, upgrades | downgrade, buy_now, over, ms)
        self._plays(m, live)
        if self.recording:
            self._crm(m, live)
        if self.with_events:
            self._events(m, month_end)
        self.health_sum += np.where(self.active, self.health, 0)
        self.health_n += self.active
        self.renew_in = np.where(self.active & self.annual,
                                 np.where(self.renew_in == 0, 11, self.renew_in - 1), 0)

    def _active_users(self, at: Any) -> np.ndarray:
        on = (self.u_act <= at) & ~(self.u_deact <= at)
        return np.bincount(self.u_acc[on], minlength=self.n).astype(np.int64)

    def _deactivate(self, leaving: np.ndarray, m: int) -> None:
        if not leaving.sum():
            return
        end = _month_start(self.start, m).astype("datetime64[s]")
        on = np.flatnonzero(~np.isnat(self.u_act) & (self.u_act <= end) & np.isnat(self.u_deact))
        order = on[self.rng.permutation(len(on))]
        # only the users of accounts that lose some are ranked (the order, hence the draws below, stays the same)
        order = order[leaving[self.u_acc[order]] > 0]
        accs = self.u_acc[order]
        rank = np.zeros(len(order), np.int64)
        # the k-th active user of an account in random order leaves when k < leaving[account]
        sort = np.argsort(accs, kind="stable")
        sorted_acc = accs[sort]
        starts = np.searchsorted(sorted_acc, sorted_acc, side="left")
        rank[sort] = np.arange(len(order)) - starts
        gone = order[rank < leaving[accs]]
        self.u_deact[gone] = self._times(m, len(gone))

    def _bill(self, m: int, factor: float, starting: np.ndarray, at_renewal: np.ndarray, plan_change: np.ndarray,
              seats_bought: np.ndarray, over: np.ndarray, ms: np.ndarray) -> None:
        a = np.flatnonzero(self.active)
        if not len(a):
            return
        ann = self.annual[a]
        ps = _anniversary(self.start, np.full(len(a), m), self.anchor[a])
        pe1 = _anniversary(self.start, np.full(len(a), m), self.anchor[a], 1)
        pe12 = _anniversary(self.start, np.full(len(a), m), self.anchor[a], 12)
        bill_core = ~ann | starting[a] | at_renewal[a] | plan_change[a]
        mid_up = self.mid_upgrade[a]
        tiers = np.where(mid_up, self.old_tier[a], self.tier[a])
        plan_ids = np.array([f"core_{CORE_TIERS[t]}_{'y' if y else 'm'}" for t, y in zip(tiers, ann, strict=True)],
                            dtype=object)
        list_price = np.array([PLAN_BY_ID[pid].unit_price for pid in plan_ids]) * factor
        price = np.where(bill_core, list_price, self.price_paid[a])
        self.price_paid[a] = price
        qty = np.where(tiers == 1, 1, self.seats[a]).astype(float)
        disc = self.discount[a]
        self._line(a[bill_core], plan_ids[bill_core], "subscription", qty[bill_core],
                   (price * qty * disc)[bill_core], ps[bill_core], np.where(ann, pe12, pe1)[bill_core],
                   discount=(price * qty * (1 - disc))[bill_core])
        if mid_up.any():
            new_plans = np.array([f"core_{CORE_TIERS[t]}_m" for t in self.tier[a][mid_up]], dtype=object)
            new_price = np.array([PLAN_BY_ID[pid].unit_price for pid in new_plans]) * factor
            period_days = (pe1[mid_up] - ps[mid_up]).astype(np.int64)
            # the upgrade day falls within this calendar month, so the history ends with the month it simulates
            last_day = _month_start(self.start, m + 1) - np.timedelta64(1, "D")
            days_left_in_month = (last_day - ps[mid_up]).astype(np.int64)
            offset = np.minimum(self.rng.integers(3, 20, mid_up.sum()), np.maximum(days_left_in_month, 0))
            share = (period_days - offset) / period_days
            self._line(a[mid_up], new_plans, "subscription", qty[mid_up],
                       (new_price - price[mid_up]) * qty[mid_up] * disc[mid_up] * share,
                       ps[mid_up] + offset.astype("timedelta64[D]"), pe1[mid_up],
                       discount=(new_price - price[mid_up]) * qty[mid_up] * (1 - disc[mid_up]) * share)
        # seats bought mid-term on an annual contract: a proration line to the end of the term
        mid = ann & ~bill_core & seats_bought[a]
        if mid.any():
            months_left = np.maximum(self.renew_in[a][mid], 1)
            added = self.seats_added[a][mid]
            term_end = _anniversary(self.start, np.full(mid.sum(), m), self.anchor[a][mid], months_left)
            self._line(a[mid], plan_ids[mid], "subscription", added,
                       price[mid] * added * disc[mid] * months_left / 12, ps[mid], term_end,
                       discount=price[mid] * added * (1 - disc[mid]) * months_left / 12)
        for k, name in enumerate(ADDONS):
            has = self.addon[a, k]
            plan = PLAN_BY_ID[f"{name}_m"]
            q = np.where(plan.pricing == "per_seat", self.seats[a], 1)[has] if has.any() else np.zeros(0)
            self._line(a[has], plan.plan_id, "subscription", q, plan.unit_price * factor * q, ps[has], pe1[has])
        billed = over[a] > 0
        calls = np.round(over[a][billed])
        self._line(a[billed], "api_m", "usage", calls, calls * PLAN_BY_ID["api_m"].unit_price, ps[billed], pe1[billed])
        services = (self.rng.random(len(a)) < self.p.services) | (starting[a] & (self.seg[a] > 0))
        fee = self.rng.choice([1500.0, 3000.0, 7500.0], services.sum())
        self._line(a[services], None, "one_time", np.ones(services.sum()), fee, ps[services],
                   ps[services] + np.timedelta64(1, "D"))
        self._truth(a[services & ~starting[a]], m, "services")
        renew = ann & bill_core
        if renew.any():
            self.rows["renewals"].add(account_id=self.ids[a[renew]], renewal_date=pe12[renew])

    def _plays(self, m: int, live: np.ndarray) -> None:
        """Run the month's plays on a random share of the eligible accounts and log the ones held out.

        One uniform draw per account and play decides: an eligible account is treated when its draw falls below
        the play's share, and held out when it falls in the band of the same width just above (upgrade prompt:
        ``< 0.5`` treated, ``≥ 0.5`` held out; CSM call: ``< 0.3`` / ``0.3–0.6``; webinar: ``< 0.04`` /
        ``0.04–0.08``). The holdout rows (outcome ``holdout``) draw no random number of their own: their time in
        the month is the draw itself, rescaled from its band, so every other table is the same as without them.
        """
        r, n = self.rng, self.n
        shares = {"upgrade_prompt": 0.5, "csm_call": 0.3, "webinar_invite": 0.04}
        draws = {"upgrade_prompt": r.random(n), "csm_call": r.random(n), "webinar_invite": r.random(n)}
        eligible = {"upgrade_prompt": live & self.intent_tier, "csm_call": live & (self.health < 0.4),
                    "webinar_invite": live}
        treated = {play: eligible[play] & (draws[play] < shares[play]) for play in PLAYS}
        self.prompted = treated["upgrade_prompt"]
        if self.with_events and _FUNNEL_EVENTS:
            self._funnel_prompts(m, self.prompted)
        self.health = np.where(treated["csm_call"], np.clip(self.health + 0.08, 0, 0.98), self.health)
        if not self.recording:
            return
        effects = {"upgrade_prompt": "upgrade probability 0.55 → 0.75 next month", "csm_call": "health +0.08",
                   "webinar_invite": "none"}
        first = _month_start(self.start, m).astype("datetime64[s]")
        seconds = int((_month_start(self.start, m + 1) - _month_start(self.start, m)).astype(np.int64)) * 86400
        for play in PLAYS:
            idx = np.flatnonzero(treated[play])
            if len(idx):
                self.rows["activities"].add(account_id=self.ids[idx], ts=self._times(m, len(idx)), play=play,
                                            outcome="completed")
                self.rows["truth_plays"].add(account_id=self.ids[idx], month=self._label(m), play=play,
                                             effect=effects[play])
            share = shares[play]
            held = np.flatnonzero(eligible[play] & (draws[play] >= share) & (draws[play] < min(2 * share, 1.0)))
            if len(held) and _LOG_HOLDOUTS:
                # the draw is uniform within its band: rescaled to [0, 1), it places the row in the month
                within = (draws[play][held] - share) / (min(2 * share, 1.0) - share)
                ts = first + np.floor(within * seconds).astype(np.int64).astype("timedelta64[s]")
                self.rows["activities"].add(account_id=self.ids[held], ts=ts, play=play, outcome="holdout")

    def _crm(self, m: int, live: np.ndarray) -> None:
        r, n, h = self.rng, self.n, self.health
        tickets = r.poisson((0.15 + 2.2 * (1 - h) ** 2) * np.array([0.6, 1.0, 1.8])[self.seg] * live)
        acc = np.repeat(np.arange(n), tickets)
        if len(acc):
            sev = np.where(r.random(len(acc)) < 0.15 + 0.4 * (1 - h[acc]), "high", np.where(
                r.random(len(acc)) < 0.5, "normal", "low"))
            self.rows["tickets"].add(account_id=self.ids[acc], opened_at=self._times(m, len(acc)), severity=sev)
        if m % 3 == 2:
            asked = np.flatnonzero(live & (r.random(n) < 0.5))
            score = np.clip(np.round(11 * h[asked] - 0.5 + r.normal(0, 1.2, len(asked))), 0, 10).astype(np.int64)
            self.rows["nps"].add(account_id=self.ids[asked], ts=self._times(m, len(asked)), score=score)
            check = np.flatnonzero(live & (self.seg > 0))
            level = h[check] * 0.7 + np.minimum(self.growth[check], 2) * 0.15 + r.normal(0, 0.08, len(check))
            status = np.where(level > 0.7, "exceeded", np.where(level > 0.45, "on_track", "behind"))
            day = _month_start(self.start, m + 1) - np.timedelta64(1, "D")
            self.rows["outcomes"].add(account_id=self.ids[check], as_of=np.full(len(check), day), status=status)

    def _events(self, m: int, month_end: Any) -> None:
        """Logins and feature use by active users; previews and trials by accounts about to buy."""
        r = self.rng
        on = np.flatnonzero((self.u_act <= month_end) & ~(self.u_deact <= month_end) & self.active[self.u_acc])
        if not len(on):
            return
        acc = self.u_acc[on]
        engagement = 0.2 + 1.6 * self.health[acc] ** 1.5
        logins = r.poisson(3.0 * engagement)
        uses = r.poisson(4.0 * engagement)
        user_ids = np.array([f"U{self.first:07d}-{u:06d}" for u in on], dtype=object)
        ev_user = np.repeat(np.arange(len(on)), logins)
        self.rows["events"].add(ts=self._times(m, len(ev_user)), account_id=self.ids[acc[ev_user]],
                                user_id=user_ids[ev_user], event="login", feature=None, category=None)
        ev_user = np.repeat(np.arange(len(on)), uses)
        ev_acc = acc[ev_user]
        feats, cats = self._available(ev_acc)
        self.rows["events"].add(ts=self._times(m, len(ev_user)), account_id=self.ids[ev_acc],
                                user_id=user_ids[ev_user], event="feature_used", feature=feats, category=cats)
        # previews of the next tier and trials of add-ons, by a few users of the accounts that intend to buy
        for kind, mask in (("tier", self.intent_tier), ("addon", self.intent_addon >= 0)):
            # one to three events for each account that intends to buy, by random active users of it
            shuffled = r.permutation(len(on))
            first_of_acc = np.unique(acc[shuffled], return_index=True)[1]
            users_idx = shuffled[first_of_acc]
            users_idx = users_idx[mask[acc[users_idx]]]
            who = np.repeat(users_idx, r.integers(1, 4, len(users_idx)))
            if not len(who):
                continue
            a = acc[who]
            if kind == "tier":
                pool = [FEATURES[CORE_TIERS[min(t + 1, 3)]] for t in self.tier[a]]
                event = "feature_previewed"
            else:
                pool = [FEATURES[ADDONS[k]] for k in self.intent_addon[a]]
                event = "feature_trial"
            pick = [opts[r.integers(len(opts))] for opts in pool]
            self.rows["events"].add(ts=self._times(m, len(who)), account_id=self.ids[a], user_id=user_ids[who],
                                    event=event, feature=np.array([f for f, _ in pick], dtype=object),
                                    category=np.array([c for _, c in pick], dtype=object))
        # metered usage, day by day
        api = np.flatnonzero(self.active & (self.api > 0))
        if len(api):
            days = int((_month_start(self.start, m + 1) - _month_start(self.start, m)).astype(np.int64))
            day0 = _month_start(self.start, m).astype("datetime64[s]")
            acc_day = np.repeat(api, days)
            day_idx = np.tile(np.arange(days), len(api))
            ramp = 1 + (day_idx - days / 2) / days * self.p.usage_growth * 2
            qty = np.round(self.api[acc_day] / days * ramp * r.lognormal(0, 0.2, len(acc_day)))
            # each day's use by one of the account's active users in turn (no random draw: the company's other
            # numbers stay as they were)
            order = np.argsort(acc, kind="stable")
            first_user = np.searchsorted(acc[order], acc_day, "left")
            count = np.searchsorted(acc[order], acc_day, "right") - first_user
            pick = order[np.minimum(first_user + day_idx % np.maximum(count, 1), len(order) - 1)]
            users = np.where(count > 0, user_ids[pick], None)
            self.rows["usage"].add(ts=day0 + (day_idx * 86400).astype("timedelta64[s]"),
                                   account_id=self.ids[acc_day], metric="api_calls", quantity=qty, user_id=users)

    def _available(self, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A feature each event's account has, weighted towards the core product."""
        r = self.rng
        tier = self.tier[acc]
        core = [f for t in (1, 2, 3) for f in FEATURES[CORE_TIERS[t]]]
        sizes = np.array([len(FEATURES["starter"]), len(FEATURES["starter"]) + len(FEATURES["team"]), len(core)])
        pick_core = (r.random(len(acc)) * sizes[tier - 1]).astype(int)
        feats = np.array([core[i][0] for i in pick_core], dtype=object)
        cats = np.array([core[i][1] for i in pick_core], dtype=object)
        for k, name in enumerate(ADDONS):
            use = self.addon[acc, k] & (r.random(len(acc)) < 0.25)
            opts = FEATURES[name]
            j = r.integers(0, len(opts), use.sum())
            feats[use] = [opts[i][0] for i in j]
            cats[use] = [opts[i][1] for i in j]
        return feats, cats

    def finish(self) -> dict[str, pa.Table]:
        n = self.n
        self.rows["accounts"].add(
            account_id=self.ids, name=np.array([f"Customer {self.first + i + 1}" for i in range(n)], dtype=object),
            segment=np.array(SEGMENTS, dtype=object)[self.seg],
            industry=np.array(INDUSTRIES, dtype=object)[self.rng.integers(0, 5, n)],
            region=np.array(REGIONS, dtype=object)[self.rng.integers(0, 3, n)],
            owner=np.array(OWNERS, dtype=object)[self.rng.integers(0, len(OWNERS), n)],
            created_at=_month_start(self.start, self.signup),
        )
        roles = np.where(self.rng.random(len(self.u_acc)) < 0.15, "admin", "member")
        self.rows["users"].add(
            user_id=np.array([f"U{self.first:07d}-{u:06d}" for u in range(len(self.u_acc))], dtype=object),
            account_id=self.ids[self.u_acc], invited_at=self.u_inv, activated_at=self.u_act,
            deactivated_at=self.u_deact, role=roles,
        )
        self.rows["truth_accounts"].add(
            account_id=self.ids, growth=self.growth,
            health_mean=np.where(self.health_n > 0, self.health_sum / np.maximum(self.health_n, 1), np.nan),
            health_final=self.health, churned=self.churned_ever,
        )
        return {name: rows.table(SCHEMAS[name]) for name, rows in self.rows.items()}


def _fixed_tables(months: int, start: dt.date, rng: np.random.Generator, p: CompanyProfile) -> dict[str, pa.Table]:
    plans = company_plans(p)
    plans_table = pa.table({
        "plan_id": [plan.plan_id for plan in plans], "product": [plan.product for plan in plans],
        "tier": [plan.tier for plan in plans], "tier_rank": [plan.tier_rank for plan in plans],
        "pricing": [plan.pricing for plan in plans], "interval_months": [plan.interval_months for plan in plans],
        "unit_price": [plan.unit_price for plan in plans],
        "included_seats": pa.array([plan.included_seats for plan in plans], pa.int64()),
        "usage_metric": pa.array([plan.usage_metric for plan in plans], pa.string()),
        "usage_limit": pa.array([plan.usage_limit for plan in plans], pa.float64()),
        "features": [plan_features(plan) for plan in plans],
        "price_model": pa.array([price_model_json(plan) for plan in plans], pa.string()),
    })
    fx: dict[str, list] = {"month": [], "currency": [], "rate": []}
    for code, base in BASE_RATES.items():
        walk = base * np.exp(np.cumsum(rng.normal(0, 0.015, months + 1)))
        for m in range(months + 1):
            idx = start.year * 12 + start.month - 1 + m
            fx["month"].append(f"{idx // 12:04d}-{idx % 12 + 1:02d}")
            fx["currency"].append(code)
            fx["rate"].append(round(float(walk[m]), 6))
    return {"plans": plans_table, "fx_rates": pa.table(fx)}


STREAMED = ("events", "usage")  # the event-scale tables, handed over month by month
_NO_ORACLE = OracleRequest()


def _blocks(accounts: int, months: int, seed: int, profile: str, start: dt.date, events: bool,
            emit: Callable[[str, pa.Table], None], oracle: OracleRequest = _NO_ORACLE):
    """Simulate block after block; event-scale tables go to ``emit`` every month, the rest at the block's end.

    With ``oracle.months``, each block's tables also hold ``truth_oracle``, computed at each snapshot month end from
    copies of the block (the block's own state and random stream are left untouched).
    """
    p = PROFILES[profile]
    snapshots = snapshot_months(months, oracle.months, horizon_months=oracle.horizon_months)
    for b, first in enumerate(range(0, accounts, BLOCK)):
        block = _Block(first, min(BLOCK, accounts - first), months, np.random.default_rng([seed, b]), p, start,
                       events)
        truths = []
        for m in range(months):
            block.month(m)
            if m in snapshots:
                truths.append(oracle_probabilities(block, m, runs=oracle.runs, horizon_months=oracle.horizon_months,
                                                   seeds=oracle_seeds(seed, b)))
            for name in STREAMED:
                if block.rows[name].parts:
                    emit(name, block.rows[name].table(SCHEMAS[name]))
                    block.rows[name] = _Rows()
        tables = block.finish()
        if oracle.months:
            tables["truth_oracle"] = pa.concat_tables([ORACLE_SCHEMA.empty_table(), *truths])
        yield tables


def simulate_company(
    out_dir: str | Path,
    *,
    accounts: int = 2000,
    months: int = 36,
    seed: int = 7,
    profile: str = "mid_market",
    fmt: str = "parquet",
    start: dt.date = dt.date(2023, 1, 1),
    progress: Callable[[int, int], None] | None = None,
    oracle_months: int = 0,
    oracle_runs: int = 200,
    oracle_horizon_months: int = 3,
) -> dict[str, int]:
    """Simulate a company into ``out_dir`` (every contract table, and ``truth/``); returns rows per table.

    Parameters
    ----------
    oracle_months
        With ``N > 0``, also write ``truth/oracle``: for each of the last ``N`` month ends whose whole window of
        ``oracle_horizon_months`` lies in the history, each paying account's true probability of expanding and of
        churning in that window (:mod:`upcurve.simulate.oracle`). Every other table is the same with or without it.
    oracle_runs
        The futures simulated from each account's hidden state at each of those month ends.
    oracle_horizon_months
        The window's length, in months (upcurve's ``horizon_months``).
    """
    oracle = OracleRequest(oracle_months, oracle_runs, oracle_horizon_months)
    oracle.check(months)
    out = Path(out_dir)
    data, truth = TableSinks(out, fmt), TableSinks(out / "truth", "parquet")
    fixed = _fixed_tables(months, start, np.random.default_rng([seed, 1_000_003]), PROFILES[profile])
    for name, table in fixed.items():
        data.write(name, table)
    done = 0
    for tables in _blocks(accounts, months, seed, profile, start, events=True, emit=data.write, oracle=oracle):
        for name, table in tables.items():
            if name in STREAMED and not table.num_rows and name in data.writers:
                continue
            (truth if name in TRUTH else data).write(TRUTH.get(name, name), table)
        done += tables["accounts"].num_rows
        if progress:
            progress(done, accounts)
    rows = data.close()
    rows.update({f"truth/{k}": v for k, v in truth.close().items()})
    return rows


def simulate_tables(
    accounts: int = 2000, months: int = 36, seed: int = 7, profile: str = "mid_market",
    start: dt.date = dt.date(2023, 1, 1), events: bool = False, *, oracle_months: int = 0, oracle_runs: int = 200,
    oracle_horizon_months: int = 3,
) -> dict[str, pa.Table]:
    """The simulated company in memory (for tests and benchmarks); product events only when ``events``.

    With ``oracle_months``, ``truth_oracle`` holds the oracle's probabilities, as :func:`simulate_company` writes
    them to ``truth/oracle``.
    """
    oracle = OracleRequest(oracle_months, oracle_runs, oracle_horizon_months)
    oracle.check(months)
    parts: dict[str, list[pa.Table]] = {}

    def keep(name: str, table: pa.Table) -> None:
        parts.setdefault(name, []).append(table)

    for tables in _blocks(accounts, months, seed, profile, start, events, keep, oracle):
        for name, table in tables.items():
            keep(name, table)
    out = {name: pa.concat_tables(ts) for name, ts in parts.items()}
    out.update(_fixed_tables(months, start, np.random.default_rng([seed, 1_000_003]), PROFILES[profile]))
    return out


def write_folder(tables: dict[str, pa.Table], out_dir: str | Path, fmt: str = "parquet",
                 names: tuple[str, ...] | None = None) -> Path:
    """Write in-memory simulated tables (all contract tables, or ``names``) as a data folder."""
    sinks = TableSinks(Path(out_dir), fmt)
    for name in names or tuple(n for n in tables if n not in TRUTH):
        sinks.write(name, tables[name])
    sinks.close()
    return Path(out_dir)
