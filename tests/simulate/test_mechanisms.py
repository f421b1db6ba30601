"""The mechanisms that make simulated companies work differently, each visible in the data the way a company's
systems would record it; and the first profiles still simulate exactly the companies they did before these existed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from upcurve.errors import ConfigError
from upcurve.simulate import PROFILES, CompanyProfile, company, simulate_tables
from upcurve.simulate.catalog import API_LIMIT, PLAN_BY_ID
from upcurve.simulate.mechanisms import list_price_factor, price_rise_months, seasonal_factor

START = dt.date(2023, 1, 1)
#: Digests of every table of a small company (150 accounts, 14 months, seed 3, blocks of 70, events and the oracle)
#: made by the simulator before the mechanisms existed: their defaults must leave these profiles as they were. A
#: deliberate change to these companies updates them (print ``company_digest(...)``) and says why in the commit.
DIGESTS = {
    "mid_market": "d2643acfa4234dd9f0c90419aee060a4",
    "enterprise": "873b06dbbdab0ad5c42b18e022a62bee",
}


def table_digest(table: pa.Table) -> str:
    """A digest of a table's column names, types and values (independent of its chunks and file format)."""
    digest = hashlib.sha256()
    for name, column in zip(table.column_names, table.columns, strict=True):
        digest.update(f"{name}:{column.type}:{column.to_pylist()!r};".encode())
    return digest.hexdigest()[:16]


#: Columns the simulator writes since the digests were made, beside the unchanged others: who used the metered
#: usage (no random draw), the plans' price models, and the enterprise discount's coupon on the lines it reduced
#: (their amounts unchanged).
ADDED_SINCE = {"usage": ("user_id",), "plans": ("price_model",), "truth_oracle": ("lever",),
               "invoice_lines": ("coupon", "discount")}


def company_digest(tables: dict[str, pa.Table]) -> str:
    kept = {n: t.drop_columns([c for c in ADDED_SINCE.get(n, ()) if c in t.column_names]) for n, t in tables.items()}
    return hashlib.sha256("".join(f"{n}={table_digest(kept[n])}" for n in sorted(kept)).encode()).hexdigest()[:32]


@pytest.mark.parametrize("profile", list(DIGESTS))
def test_the_first_profiles_are_the_companies_they_were(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(company, "BLOCK", 70)  # several blocks, several random streams
    tables = simulate_tables(150, 14, seed=3, profile=profile, events=True, oracle_months=2, oracle_runs=10)
    assert company_digest(tables) == DIGESTS[profile]


def month_index(dates: np.ndarray) -> np.ndarray:
    """Each date's month, counted from the start of the history."""
    return (dates.astype("datetime64[M]") - np.datetime64(START, "M")).astype(np.int64)


def lines_of(tables: dict[str, pa.Table], plans: list[str]) -> dict[str, np.ndarray]:
    """The invoice lines of some plans, as numpy columns (``month``: the month their period starts in)."""
    lines = tables["invoice_lines"]
    keep = np.isin(np.array(lines["plan_id"].to_pylist(), dtype=object), plans)
    out = {name: np.array(lines[name].to_pylist(), dtype=object)[keep]
           for name in ("account_id", "plan_id", "kind")}
    for name in ("quantity", "amount"):
        out[name] = lines[name].to_numpy()[keep]
    for name in ("period_start", "period_end"):
        out[name] = lines[name].to_numpy()[keep].astype("datetime64[D]")
    out["month"] = month_index(out["period_start"])
    return out


ANNUAL = ["core_team_y", "core_business_y"]
ADDON_PLANS = ["analytics_m", "automation_m", "security_m"]


@pytest.mark.parametrize("profile", ["annual_contracts", "mid_market_renewal_only"])
def test_annual_contracts_change_only_at_renewal(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where annual contracts change only at renewal (``annual_contracts``, and ``mid_market`` made so), an annual
    contract's seats and add-ons change only in its renewal month: every annual line is a whole year (no proration
    for seats bought mid-term), and an annual account's add-ons start and stop only in a month its contract renews.
    Seats that were needed during the term are bought at renewal."""
    monkeypatch.setitem(PROFILES, "mid_market_renewal_only", replace(PROFILES["mid_market"],
                                                                       renewal_changes_only=True))
    assert PROFILES[profile].renewal_changes_only
    months = 30
    tables = simulate_tables(600, months, seed=4, profile=profile)
    annual = lines_of(tables, ANNUAL)
    assert len(annual["account_id"]) > 300
    days = (annual["period_end"] - annual["period_start"]).astype(np.int64)
    assert days.min() >= 365  # whole years only
    renewals = {(a, m) for a, m in zip(annual["account_id"], annual["month"], strict=True)}
    # the months each annual contract covers (its renewal months excepted): nothing may change then
    covered = {(a, m) for a, m0 in renewals for m in range(m0 + 1, min(m0 + 12, months))}
    addons = lines_of(tables, ADDON_PLANS)
    held: dict[tuple[str, int], set[str]] = {}
    for a, plan, m in zip(addons["account_id"], addons["plan_id"], addons["month"], strict=True):
        held.setdefault((a, m), set()).add(plan)
    changes = mid_term = 0
    for a, m in covered | renewals:
        if (a, m - 1) in covered | renewals and held.get((a, m), set()) != held.get((a, m - 1), set()):
            changes += 1
            mid_term += (a, m) in covered and (a, m) not in renewals
    assert changes > 5  # add-ons do change, at renewal
    assert mid_term == 0
    # seats bought at renewal: a renewal line with more seats than the contract's year before
    by_account: dict[str, list[tuple[int, float, str]]] = {}
    for a, m, q, plan in zip(annual["account_id"], annual["month"], annual["quantity"], annual["plan_id"],
                             strict=True):
        by_account.setdefault(a, []).append((m, q, plan))
    grew = sum(later[1] > before[1] for years in by_account.values()
               for before, later in zip(sorted(years), sorted(years)[1:], strict=False) if before[2] == later[2])
    assert grew > 20


def month_label(m: int) -> str:
    return f"{START.year + m // 12:04d}-{m % 12 + 1:02d}"


def test_intents_that_wait_for_renewal_show_until_then() -> None:
    """Product behaviour still leads revenue when changes wait for renewal: every tier upgrade and add-on purchase
    follows previews or trials in the month before, and an annual account's previews (trials) go on, month after
    month, until the renewal that brings the upgrade (the add-on)."""
    tables = simulate_tables(500, 24, seed=2, profile="annual_contracts", events=True)
    events = tables["events"]
    months = month_index(events["ts"].to_numpy().astype("datetime64[D]"))
    seen = {(a, e, month_label(m)) for a, e, m in zip(events["account_id"].to_pylist(), events["event"].to_pylist(),
                                                      months, strict=True)
            if e in ("feature_previewed", "feature_trial")}
    truth = tables["truth_expansions"].to_pylist()
    annual = set(lines_of(tables, ANNUAL)["account_id"])
    led, streaks = [], []
    leads = {"tier": "feature_previewed", "cross_sell": "feature_trial", "premium": "feature_trial"}
    for row in truth:
        event = leads.get(row["lever"])
        if event is None:
            continue
        m = (int(row["month"][:4]) - START.year) * 12 + int(row["month"][5:]) - 1
        led.append((row["account_id"], event, month_label(m - 1)) in seen)
        if row["account_id"] in annual:
            streak = 0
            while (row["account_id"], event, month_label(m - 1 - streak)) in seen:
                streak += 1
            streaks.append(streak)
    assert len(led) > 20 and all(led)
    assert len(streaks) > 5 and np.mean(streaks) > 1.5


def test_seats_bought_mid_term_elsewhere() -> None:
    """Where annual contracts may change mid-term (``mid_market``), seats bought mid-term are prorated lines."""
    assert not PROFILES["mid_market"].renewal_changes_only
    annual = lines_of(simulate_tables(400, 30, seed=4, profile="mid_market"), ANNUAL)
    days = (annual["period_end"] - annual["period_start"]).astype(np.int64)
    assert (days < 360).sum() > 5


def test_list_prices_rise_when_the_profile_says() -> None:
    """``annual_contracts`` raises list prices 6% at 40% and again at 80% of the history: add-ons are billed at the
    list price × the rises so far from the month each period starts; an annual contract keeps the price of the
    month it started (or renewed) in; the catalogue (``plans``) keeps the base list price."""
    profile, months = PROFILES["annual_contracts"], 30
    assert price_rise_months(profile, months) == [12, 24]
    assert [list_price_factor(profile, months, m) for m in (11, 12, 23, 24)] == [1.0, 1.06, 1.06, 1.06 * 1.06]
    tables = simulate_tables(300, months, seed=2, profile="annual_contracts")
    addons = lines_of(tables, ADDON_PLANS)
    factor = np.array([list_price_factor(profile, months, m) for m in addons["month"]])
    list_price = np.array([PLAN_BY_ID[p].unit_price for p in addons["plan_id"]])
    assert np.allclose(addons["amount"], np.round(list_price * factor * addons["quantity"], 2), atol=0.005)
    assert {round(f, 4) for f in factor} == {1.0, 1.06, 1.1236}
    annual = lines_of(tables, ANNUAL)
    segment = dict(zip(tables["accounts"]["account_id"].to_pylist(), tables["accounts"]["segment"].to_pylist(),
                       strict=True))
    discount = np.array([0.85 if segment[a] == "enterprise" else 1.0 for a in annual["account_id"]])
    unit = annual["amount"] / annual["quantity"] / discount
    expected = np.array([PLAN_BY_ID[p].unit_price * list_price_factor(profile, months, m)
                         for p, m in zip(annual["plan_id"], annual["month"], strict=True)])
    assert np.allclose(unit, expected, rtol=1e-3)
    # a contract signed before a rise runs its whole year at the old price
    assert ((annual["month"] < 12) & (month_index(annual["period_end"] - 1) >= 12)).sum() > 10
    assert tables["plans"]["unit_price"].to_pylist() == [p.unit_price for p in PLAN_BY_ID.values()]


def test_a_profile_without_price_rises_bills_list_prices() -> None:
    assert PROFILES["plg"].price_rises == ()
    addons = lines_of(simulate_tables(300, 24, seed=2, profile="plg"), ADDON_PLANS)
    list_price = np.array([PLAN_BY_ID[p].unit_price for p in addons["plan_id"]])
    assert len(list_price) > 50
    assert np.allclose(addons["amount"], np.round(list_price * addons["quantity"], 2), atol=0.005)


def paying_by_month(tables: dict[str, pa.Table], months: int, accounts: set[str] | None = None) -> np.ndarray:
    """Accounts × months: whether a subscription line holds the month's last day."""
    ids = {a: i for i, a in enumerate(tables["accounts"]["account_id"].to_pylist())}
    subs = lines_of(tables, [p.plan_id for p in PLAN_BY_ID.values() if p.pricing != "usage"])
    ends = (np.datetime64(START, "M") + np.arange(1, months + 1)).astype("datetime64[D]") - np.timedelta64(1, "D")
    first = np.searchsorted(ends, subs["period_start"])
    after = np.searchsorted(ends, subs["period_end"])
    paying = np.zeros((len(ids), months), bool)
    for a, f, t in zip(subs["account_id"], first, after, strict=True):
        if accounts is None or a in accounts:
            paying[ids[a], f:t] = True
    return paying


def season_ratio(rate: np.ndarray, peak: list[int], trough: list[int]) -> float:
    """The mean monthly rate in the peak calendar months over the mean in the trough months (from month 6 on, once
    the accounts that arrive with the history have settled)."""
    calendar = np.arange(len(rate)) % 12 + 1
    settled = np.arange(len(rate)) >= 6
    return float(rate[settled & np.isin(calendar, peak)].mean() / rate[settled & np.isin(calendar, trough)].mean())


def expansions_by_month(tables: dict[str, pa.Table], months: int) -> np.ndarray:
    truth = tables["truth_expansions"]
    levers = np.array(truth["lever"].to_pylist(), dtype=object)
    labels = np.array(truth["month"].to_pylist(), dtype=object)[np.isin(levers, ["seat", "tier", "cross_sell",
                                                                                 "premium"])]
    index = np.array([(int(s[:4]) - START.year) * 12 + int(s[5:]) - 1 for s in labels])
    return np.bincount(index, minlength=months)


def test_seasons_show_in_expansions_and_churn() -> None:
    """``seasonal_smb``'s budget cycle: per paying account, upgrades, add-ons and seats bought in December–February
    run well above June–August; monthly payers cancel more in November–January than in May–July. A company
    without seasons shows no such cycle."""
    months = 36
    tables = simulate_tables(1000, months, seed=1, profile="seasonal_smb")
    paying = paying_by_month(tables, months)
    rate = expansions_by_month(tables, months) / np.maximum(paying.sum(axis=0), 1)
    assert season_ratio(rate, [12, 1, 2], [6, 7, 8]) > 1.4
    annual = set(lines_of(tables, ANNUAL)["account_id"])
    monthly = paying_by_month(tables, months, set(tables["accounts"]["account_id"].to_pylist()) - annual)
    cancelled = (monthly[:, :-1] & ~monthly[:, 1:]).sum(axis=0) / np.maximum(monthly[:, :-1].sum(axis=0), 1)
    assert season_ratio(np.r_[0.0, cancelled], [11, 12, 1], [5, 6, 7]) > 1.5
    steady = simulate_tables(1000, months, seed=1, profile="mid_market")
    rate = expansions_by_month(steady, months) / np.maximum(paying_by_month(steady, months).sum(axis=0), 1)
    assert 0.75 < season_ratio(rate, [12, 1, 2], [6, 7, 8]) < 1.33


def test_the_seasonal_factor() -> None:
    assert seasonal_factor(0.0, 1, START, 5) == 1.0
    factors = [seasonal_factor(0.6, 1, START, m) for m in range(12)]
    assert factors[0] == pytest.approx(1.6) and factors[6] == pytest.approx(0.4)
    assert sum(factors) == pytest.approx(12.0)  # the same yearly total as without seasons
    assert seasonal_factor(0.6, 1, dt.date(2023, 7, 1), 6) == pytest.approx(1.6)  # month 6 of a July start: January


def test_api_calls_billed_from_the_first_call() -> None:
    """``usage_led``'s API plan has no included volume: its ``usage_limit`` is empty and every call is billed, so an
    account using a few thousand calls pays for them, and the bill is the calls its ``usage`` rows show."""
    tables = simulate_tables(200, 8, seed=3, profile="usage_led", events=True)
    plans = {r["plan_id"]: r for r in tables["plans"].to_pylist()}
    assert plans["api_m"]["usage_limit"] is None
    assert simulate_tables(20, 2, seed=3)["plans"].to_pylist()[-1]["usage_limit"] == API_LIMIT
    usage = lines_of(tables, ["api_m"])
    assert len(usage["quantity"]) > 500
    assert (usage["quantity"] < API_LIMIT).mean() > 0.5  # calls a plan with the default limit would not bill
    assert np.allclose(usage["amount"], np.round(usage["quantity"] * PLAN_BY_ID["api_m"].unit_price, 2), atol=0.005)
    rows = tables["usage"]
    day_month = month_index(rows["ts"].to_numpy().astype("datetime64[D]"))
    used: dict[tuple[str, int], float] = {}
    for a, m, q in zip(rows["account_id"].to_pylist(), day_month, rows["quantity"].to_numpy(), strict=True):
        used[(a, m)] = used.get((a, m), 0.0) + q
    ratio = np.array([used[(a, m)] / q for a, m, q in zip(usage["account_id"], usage["month"], usage["quantity"],
                                                          strict=True)])
    assert 0.95 < np.median(ratio) < 1.1  # the month's daily rows add up to about the calls billed
    assert ((ratio > 0.7) & (ratio < 1.4)).all()
    # and every account-month with usage rows is billed, from its first month on the API
    assert set(used) == set(zip(usage["account_id"], usage["month"], strict=True))


def test_companies_expand_through_different_levers() -> None:
    """The lever mix: usage_led expands mostly through usage; the seat-led companies mostly through seats."""
    def shares(profile: str) -> dict[str, float]:
        levers = simulate_tables(600, 24, seed=1, profile=profile)["truth_expansions"]["lever"].to_pylist()
        return {lever: levers.count(lever) / len(levers) for lever in set(levers)}

    usage_led, annual = shares("usage_led"), shares("annual_contracts")
    assert usage_led["usage"] > 0.5 > usage_led["seat"]
    assert annual["seat"] > 0.5 > annual["usage"]


def test_a_profile_out_of_range_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="expansion_seasonality") as error:
        replace(CompanyProfile(), expansion_seasonality=1.2, churn_peak_month=13, price_rises=((1.5, 1.1),))
    assert "churn_peak_month" in str(error.value) and "price rise" in str(error.value)
    with pytest.raises(ConfigError, match="api_included"):
        CompanyProfile(api_included=-1.0)
