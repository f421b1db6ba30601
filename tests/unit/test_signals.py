"""Account signals, hand-computed on a small company; null (never an error) when a source table is absent."""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path

import ibis.expr.types as ir
import pytest

from tests.conftest import run_folder, write_folder
from upcurve.config import RevenuePolicy
from upcurve.contract import plan_features
from upcurve.engine import cached, connect
from upcurve.revenue import revenue_tables
from upcurve.signals import TREND_DAYS, account_signals_at, accounts_table
from upcurve.signals.health import HealthConfig
from upcurve.simulate import simulate_tables
from upcurve.simulate import write_folder as write_tables
from upcurve.sources import LoadedData, load_folder

PLANS = """\
plan_id,product,tier,tier_rank,pricing,interval_months,unit_price,included_seats,usage_metric,usage_limit,features
team_m,core,team,2,per_seat,1,10,,,,projects;dashboards
business_m,core,business,3,per_seat,1,20,,,,projects;dashboards;sso
api_m,api,metered,1,usage,1,0.001,,api_calls,100000,api_access
"""
LINES = "line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end\n" + "".join(
    f"a{m},A,team_m,subscription,10,100,USD,2025-{m:02d}-01,2025-{m + 1:02d}-01\n" for m in range(1, 7)
) + "b1,B,team_m,subscription,2,20,USD,2025-06-01,2025-07-01\n"
USERS = """\
user_id,account_id,invited_at,activated_at,deactivated_at,role
u1,A,2025-01-01 09:00:00,2025-01-01 10:00:00,,admin
u2,A,2025-01-01 09:00:00,2025-01-02 10:00:00,,member
u3,A,2025-01-01 09:00:00,2025-01-02 10:00:00,,member
u4,A,2025-01-01 09:00:00,2025-01-03 10:00:00,,member
u5,A,2025-01-01 09:00:00,2025-01-03 10:00:00,,member
u6,A,2025-06-19 09:00:00,2025-06-20 10:00:00,,member
u7,A,2025-06-19 09:00:00,2025-06-20 10:00:00,,member
u8,A,2025-06-19 09:00:00,2025-06-21 10:00:00,,member
u9,A,2025-01-01 09:00:00,2025-01-03 10:00:00,2025-03-01 00:00:00,member
"""
TICKETS = (
    "account_id,opened_at,severity\n"
    "A,2025-06-10 08:00:00,high\nA,2025-06-25 08:00:00,low\nA,2025-04-01 08:00:00,low\n"
)
NPS = "account_id,ts,score\nA,2025-03-15 10:00:00,9\nA,2025-06-15 10:00:00,6\n"
OUTCOMES = "account_id,as_of,status\nA,2025-03-31,on_track\nA,2025-06-30,behind\n"
RENEWALS = "account_id,renewal_date\nA,2024-09-30\nA,2025-09-30\n"


def _events(extra: str = "") -> str:
    rows = ["ts,account_id,user_id,event,feature,category"]
    rows += [f"2025-06-{d:02d} 10:00:00,A,u1,login,," for d in range(1, 11)]  # 10 logins in the last 30 days
    rows += [f"2025-05-{d:02d} 10:00:00,A,u1,login,," for d in range(10, 15)]  # 5 in the 30 before
    rows += ["2025-01-05 10:00:00,A,u1,feature_used,projects,core",
             "2025-06-10 10:00:00,A,u2,feature_used,projects,core",
             "2025-06-28 10:00:00,A,u3,feature_used,dashboards,collaboration",
             "2025-06-29 10:00:00,A,u3,feature_previewed,sso,premium"]
    return "\n".join(rows) + "\n" + extra


def _usage() -> str:
    return "ts,account_id,metric,quantity\n" + "".join(
        f"2025-06-{d:02d} 00:00:00,A,api_calls,2000\n" for d in range(1, 31)
    ) + "2025-05-31 00:00:00,A,api_calls,99999\n"


def _company(folder: Path, events: str) -> Path:
    return write_folder(folder, {
        "plans": PLANS, "invoice_lines": LINES, "users": USERS, "events": events, "usage": _usage(),
        "tickets": TICKETS, "nps": NPS, "outcomes": OUTCOMES, "renewals": RENEWALS,
        "accounts": "account_id,name,segment,owner\nA,Acme,mid_market,ann\nB,Beta,smb,bob\n",
    })


@pytest.fixture(scope="module")
def signals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    folder = _company(tmp_path_factory.mktemp("signals") / "d", _events())
    rows = run_folder(folder, "2025-06-30").tables["accounts"].to_pylist()
    return {r["account_id"]: r for r in rows}


def test_seats_and_invites(signals) -> None:
    a = signals["A"]
    assert a["purchased_seats"] == 10 and a["active_users"] == 8
    # on core's team tier (business is one above), without the api product
    assert (a["products_paid"], a["products_unowned"], a["tier_headroom"]) == (1, 1, 1)
    assert a["seat_saturation"] == pytest.approx(0.8) and a["flag_seat_saturation"] is True
    assert (a["invited_14d"], a["new_active_14d"], a["new_active_prev_14d"], a["new_active_30d"]) == (3, 3, 0, 3)
    assert a["flag_invite_surge"] is True and a["flag_team_growth"] is False


def test_usage_toward_the_plan_limit(signals) -> None:
    a = signals["A"]
    assert a["usage_metric"] == "api_calls" and a["usage_limit"] == 100_000
    assert a["usage_this_month"] == 60_000 and a["usage_share_used"] == pytest.approx(0.6)
    assert a["usage_daily_rate"] == pytest.approx(2000)
    assert a["usage_projected_month"] == pytest.approx(60_000)  # the whole month has elapsed at June 30
    assert a["days_until_limit"] == pytest.approx(20) and a["flag_usage_limit"] is True
    # the windows end with June 30: 30 days hold June's 30 × 2,000; 60 and 90 days reach May 31's 99,999 too
    assert (a["usage_30d"], a["usage_60d"], a["usage_90d"]) == (60_000, 159_999, 159_999)
    assert signals["B"]["usage_30d"] is None  # no usage at all: unknown, not 0


def test_adoption_engagement_and_premium_gap(signals) -> None:
    a = signals["A"]
    assert a["categories_available"] == 2 and a["categories_used_30d"] == 2 and a["adoption_breadth"] == 1.0
    assert a["features_first_used_7d"] == 1  # dashboards; projects was first used in January
    assert a["premium_gap_features"] == 1 and a["flag_premium_gap"] is True  # previewed sso, a business feature
    assert a["login_trend"] == pytest.approx(100.0)  # 10 logins against 5
    assert a["stickiness"] is not None and 0 < a["stickiness"] <= 1


def test_each_users_categories_are_counted_as_pairs_whatever_their_text(tmp_path: Path) -> None:
    # user "a|b" in category "c" and user "a" in category "b|c": two (user, category) pairs, though the same text
    # once joined with "|" (user ids such as "auth0|5f7c…" are common)
    events = ("ts,account_id,user_id,event,feature,category\n"
              "2025-06-10 10:00:00,A,a|b,feature_used,projects,c\n"
              "2025-06-11 10:00:00,A,a,feature_used,dashboards,b|c\n")
    a = {r["account_id"]: r for r in run_folder(_company(tmp_path / "d", events), "2025-06-30")
         .tables["accounts"].to_pylist()}["A"]
    assert a["categories_used_30d"] == 2 and a["active_users"] == 8
    assert a["categories_per_active_user"] == pytest.approx(2 / 8)


def test_lifecycle(signals) -> None:
    a = signals["A"]
    assert a["tenure_days"] == 180  # 2025-01-01 to 2025-06-30
    assert a["days_to_renewal"] == 92  # 2025-09-30
    assert a["tickets_30d"] == 2
    assert a["nps_latest"] == 6 and a["nps_12m"] == pytest.approx(0.0)  # one promoter, one detractor
    assert a["outcome_status"] == "behind"
    assert float(a["mrr"]) == 100.0 and a["mrr_trend_3m"] == pytest.approx(0.0)
    assert a["health_score"] is not None and a["health_tier"]
    b = signals["B"]
    assert b["active_users"] == 0 and b["tickets_30d"] == 0 and b["nps_latest"] is None


def test_nothing_after_the_as_of_date_changes_a_signal(tmp_path: Path, signals) -> None:
    later = "2025-07-02 10:00:00,A,u1,feature_used,sso,premium\n2025-07-03 10:00:00,A,u1,login,,\n"
    folder = _company(tmp_path / "d", _events(later))
    again = {r["account_id"]: r for r in run_folder(folder, "2025-06-30").tables["accounts"].to_pylist()}
    assert again["A"] == signals["A"]


def test_absent_tables_leave_signals_null(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", {"plans": PLANS, "invoice_lines": LINES})
    rows = {r["account_id"]: r for r in run_folder(folder, "2025-06-30").tables["accounts"].to_pylist()}
    a = rows["A"]
    assert a["purchased_seats"] == 10
    for signal in ("active_users", "seat_saturation", "usage_share_used", "adoption_breadth", "dau_per_seat",
                   "tickets_30d", "nps_latest", "outcome_status"):
        assert a[signal] is None, signal
    # with billing data only, health comes from billing: MRR flat (70), no contraction (100), tenure 180 days
    # (70), no renewal date (missing): (35·70 + 25·100 + 20·70) ÷ (35 + 25 + 20) = 79.375
    assert a["health_basis"] == "billing" and a["health_missing"] == "renewal"
    assert a["health_score"] == pytest.approx(79.38) and a["health_tier"] == "Nurture"
    assert a["health_mrr_trend"] == 70 and a["health_contractions"] == 100 and a["health_tenure"] == 70
    assert a["seats_priced"] is True and a["mrr_contractions_3m"] == 0


def test_billing_health_sees_contractions_and_flat_plans_have_no_seat_saturation(tmp_path: Path) -> None:
    plans = PLANS + "starter_m,core,starter,1,flat,1,49,3,,,projects\n"
    lines = LINES + "".join(  # C: 10 seats, then 8 in May, 6 in June; D: a flat starter plan with 3 seats
        f"c{m},C,team_m,subscription,{q},{q * 10},USD,2025-{m:02d}-01,2025-{m + 1:02d}-01\n"
        for m, q in ((3, 10), (4, 10), (5, 8), (6, 6))
    ) + "d6,D,starter_m,subscription,1,49,USD,2025-06-01,2025-07-01\n" + "".join(  # E: 100 EUR a month, the euro
        f"e{m},E,team_m,subscription,10,100,EUR,2025-{m:02d}-01,2025-{m + 1:02d}-01\n" for m in (3, 4, 5, 6))
    users = "user_id,account_id,invited_at,activated_at,deactivated_at,role\n" + "".join(
        f"d{i},D,2025-06-01 09:00:00,2025-06-01 10:00:00,,member\n" for i in range(9))
    falling = "month,currency,rate\n" + "".join(  # … falling against the dollar every month
        f"2025-{m:02d},EUR,{rate}\n" for m, rate in ((3, "1.10"), (4, "1.05"), (5, "1.00"), (6, "0.95")))
    folder = write_folder(tmp_path / "d", {"plans": plans, "invoice_lines": lines, "users": users,
                                           "fx_rates": falling})
    rows = {r["account_id"]: r for r in run_folder(folder, "2025-06-30").tables["accounts"].to_pylist()}
    c = rows["C"]
    # MRR 60 against 100 three months before: −40% (25); two months of contraction (20); tenure 121 days (50)
    assert c["mrr_contractions_3m"] == 2 and c["mrr_trend_3m"] == pytest.approx(-40.0)
    assert c["health_score"] == pytest.approx((35 * 25 + 25 * 20 + 20 * 50) / 80, abs=0.01)
    assert c["health_tier"] == "Churn Risk" and c["health_weakest"] == "mrr_trend"
    e = rows["E"]  # its MRR in dollars fell three months running, by the exchange rate alone: no contraction
    assert e["mrr_trend_3m"] < 0 and e["mrr_contractions_3m"] == 0 and e["health_contractions"] == 100
    d = rows["D"]  # 9 users on a flat plan's 3 included seats: a tier to sell, not 300% of its seats
    assert d["active_users"] == 9 and d["purchased_seats"] == 3 and d["seats_priced"] is False
    assert d["seat_saturation"] is None and d["flag_seat_saturation"] is False


def test_a_year_of_mrr_shows_the_habit_of_growing(tmp_path: Path) -> None:
    """G pays for 5 seats from May 2024, 6 from January 2025 and 8 from April: as of 30 June 2025 its MRR (80)
    against June 2024's (50) is +60%, and two months of the last twelve rose. A began in January 2025: no MRR a
    year before, so no 12-month trend, and no rise."""
    def seats(month: str) -> int:
        return 8 if month >= "2025-04" else 6 if month >= "2025-01" else 5

    months = [f"{y}-{m:02d}" for y in (2024, 2025) for m in range(1, 13)
              if "2024-05" <= f"{y}-{m:02d}" <= "2025-06"]
    follows = {a: b for a, b in zip(months, [*months[1:], "2025-07"], strict=True)}
    lines = LINES + "".join(f"g{m},G,team_m,subscription,{seats(m)},{seats(m) * 10},USD,{m}-01,{follows[m]}-01\n"
                            for m in months)
    folder = write_folder(tmp_path / "d", {"plans": PLANS, "invoice_lines": lines})
    rows = {r["account_id"]: r for r in run_folder(folder, "2025-06-30").tables["accounts"].to_pylist()}
    assert rows["G"]["mrr_trend_12m"] == pytest.approx(60.0) and rows["G"]["mrr_rises_12m"] == 2
    assert rows["A"]["mrr_trend_12m"] is None and rows["A"]["mrr_rises_12m"] == 0


def test_a_scheduled_cancellation_counts_from_the_day_it_was_asked_for(tmp_path: Path) -> None:
    """A asked on 10 June to end on 1 July: 15 days to go on 16 June. B asked on 20 June (after the as-of date): not
    known yet. C's cancellation took effect on 1 June: nothing left to cancel."""
    lines = ("line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end\n"
             + "".join(f"{a}{m},{a},team_m,subscription,2,20,USD,2024-{m:02d}-01,2024-{m + 1:02d}-01\n"
                       for a in "ABC" for m in range(1, 7)))
    subscriptions = ("subscription_id,account_id,status,started_on,trial_end,cancel_at,canceled_at,cancel_reason\n"
                     "sa,A,active,2024-01-01,,2024-07-01,2024-06-10,too_expensive\n"
                     "sb,B,active,2024-01-01,,2024-07-01,2024-06-20,\n"
                     "sc,C,canceled,2024-01-01,,2024-06-01,2024-05-02,\n")
    folder = write_folder(tmp_path / "d", {"invoice_lines": lines, "subscriptions": subscriptions})
    accounts = {r["account_id"]: r for r in run_folder(folder, "2024-06-16").tables["accounts"].to_pylist()}
    assert (accounts["A"]["days_to_cancellation"], accounts["A"]["flag_cancellation_scheduled"]) == (15, True)
    for other in "BC":
        assert (accounts[other]["days_to_cancellation"], accounts[other]["flag_cancellation_scheduled"]) == (
            None, False)


def _signals_holding(loaded: LoadedData, dates: list[dt.date], hold_from: int,
                     monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict], int]:
    """The signals at ``dates``, and how many tables the engine held to compute them (each read from events, so
    each held uncompressed: read soon and little, compressing them costs more time than it saves memory)."""
    # the module, not the function of the same name that the package exports
    module = importlib.import_module("upcurve.signals.account_signals")
    held: list[ir.Table] = []

    def hold(table: ir.Table, *, compress: bool = True) -> ir.Table:
        assert not compress, "a table read from events is held uncompressed"
        held.append(table)
        return cached(table, compress=compress)

    monkeypatch.setattr(module, "cached", hold)
    tables = loaded.tables
    revenue = revenue_tables(tables, as_of=loaded.as_of, first=loaded.first, policy=RevenuePolicy())
    expr = account_signals_at(tables, revenue.account_months, plan_features(tables["plans"]), dates,
                              hold_event_parts_from=hold_from)
    rows = sorted(expr.to_pyarrow().to_pylist(), key=lambda row: (row["as_of"], row["account_id"]))
    return rows, len(held)


@pytest.mark.parametrize("url", ["duckdb://", "sqlite://"])
def test_event_parts_held_apart_give_the_same_signals(tmp_path: Path, url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """From ``hold_event_parts_from`` user-days on, each part read from events is computed and held on its own
    before the one query of the signals (a large company's events): the same rows as computing them inside it."""
    simulated = write_tables(simulate_tables(40, 14, seed=3, events=True), tmp_path / "simulated", "parquet")
    for folder, dates in ((simulated, [dt.date(2023, 6, 30), dt.date(2023, 12, 31), dt.date(2024, 2, 29)]),
                          (_company(tmp_path / "hand", _events()), [dt.date(2025, 5, 31), dt.date(2025, 6, 30)])):
        loaded = load_folder(folder, connect(url), as_of=max(dates), policy=RevenuePolicy())
        inline, held_inline = _signals_holding(loaded, dates, 10**12, monkeypatch)
        held, held_apart = _signals_holding(loaded, dates, 0, monkeypatch)
        assert held == inline
        assert held_apart == held_inline + 7  # the five parts of adoption and the two of engagement
        # the company's events reach the signals the held parts compute
        assert any(r["categories_used_30d"] for r in held) and any(r["login_trend"] is not None for r in held)


@pytest.mark.parametrize("url", ["duckdb://", "sqlite://"])
def test_the_signals_of_some_accounts_at_some_dates_are_theirs_among_every_accounts(tmp_path: Path, url: str) -> None:
    """Given pairs of dates and accounts (``only``: a training sample's snapshots), the signals are computed for
    those pairs alone, each the same as computing every account at every date gives it; every source table,
    events and a scheduled cancellation included."""
    import ibis
    import pyarrow as pa

    simulated = write_tables(simulate_tables(40, 14, seed=3, events=True), tmp_path / "simulated", "parquet")
    subscriptions = ("subscription_id,account_id,status,started_on,trial_end,cancel_at,canceled_at,cancel_reason\n"
                     "sa,A,active,2025-01-01,,2025-07-01,2025-06-10,too_expensive\n")
    # A's 16 June window (60 days) begins on 18 April, two months back: a login that day counts, the day before not
    hand = _company(tmp_path / "hand", _events("2025-04-17 10:00:00,A,u1,login,,\n2025-04-18 10:00:00,A,u1,login,,\n"))
    (hand / "subscriptions.csv").write_text(subscriptions)
    by_pair = [("as_of", "ascending"), ("account_id", "ascending")]
    hand_pairs = {(dt.date(2025, 6, 16), "A"), (dt.date(2025, 6, 30), "A"), (dt.date(2025, 5, 31), "B")}
    for folder, dates in ((simulated, [dt.date(2023, 6, 30), dt.date(2023, 12, 31), dt.date(2024, 2, 29)]),
                          (hand, [dt.date(2025, 5, 31), dt.date(2025, 6, 16), dt.date(2025, 6, 30)])):
        loaded = load_folder(folder, connect(url), as_of=max(dates), policy=RevenuePolicy())
        tables = loaded.tables
        revenue = revenue_tables(tables, as_of=loaded.as_of, first=loaded.first, policy=RevenuePolicy())
        every = account_signals_at(tables, revenue.account_months, plan_features(tables["plans"]), dates)
        every = every.to_pyarrow().sort_by(by_pair)
        keys = zip(every["as_of"].to_pylist(), every["account_id"].to_pylist(), strict=True)
        # the simulated company: every third account and date; the hand-written one: A twice, B once
        wanted = pa.array([key in hand_pairs if folder == hand else i % 3 == 0 for i, key in enumerate(keys)])
        some = account_signals_at(tables, revenue.account_months, plan_features(tables["plans"]), dates,
                                  only=ibis.memtable(every.filter(wanted).select(["as_of", "account_id"])))
        some = some.to_pyarrow().sort_by(by_pair)
        assert 0 < some.num_rows < every.num_rows and some.equals(every.filter(wanted))
        # what the pairs hold reaches them: the events' parts; A's cancellation asked for on the 10th of June
        rows = some.to_pylist()
        assert any(r["categories_used_30d"] for r in rows) and any(r["login_trend"] is not None for r in rows)
        if folder == hand:
            assert [r["days_to_cancellation"] for r in rows] == [None, 15, 1]
            # 16 June: 10 logins in June's first ten days in its last 30 days; 5 in May and the one of 18 April in the
            # 30 before
            assert rows[1]["login_trend"] == pytest.approx((10 - 6) / 6 * 100)


def test_the_accounts_table_computes_the_signals_it_is_not_given(tmp_path: Path) -> None:
    """``accounts_table`` without ``signals`` computes them itself at the as-of date and ``TREND_DAYS`` before: the
    same rows as reading them from the signals a run holds for every date (as ``compute_run`` gives them)."""
    folder = write_tables(simulate_tables(40, 14, seed=3, events=True), tmp_path / "simulated", "parquet")
    as_of = dt.date(2024, 2, 29)
    loaded = load_folder(folder, connect("duckdb://"), as_of=as_of, policy=RevenuePolicy())
    revenue = revenue_tables(loaded.tables, as_of=as_of, first=loaded.first, policy=RevenuePolicy())
    dates = [dt.date(2023, 6, 30), as_of - dt.timedelta(days=TREND_DAYS), as_of]
    held = cached(account_signals_at(loaded.tables, revenue.account_months,
                                     plan_features(loaded.tables["plans"]), dates))
    given = accounts_table(loaded.tables, revenue.account_months, HealthConfig(), as_of=as_of, signals=held)
    computed = accounts_table(loaded.tables, revenue.account_months, HealthConfig(), as_of=as_of)
    rows = [sorted(t.to_pyarrow().to_pylist(), key=lambda r: r["account_id"]) for t in (given, computed)]
    assert rows[0] == rows[1]
    # the trend compares two scores, so both dates reached the health scores
    assert any(r["health_score_30d_ago"] is not None for r in rows[1])
    assert any(r["health_trend"] is not None for r in rows[1])
