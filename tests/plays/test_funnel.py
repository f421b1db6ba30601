"""The expansion funnel: a hand-built company of a dozen accounts counted by hand, realised expansion at the edges
of its window, events after the as-of date, the settings' checks, and the funnel's invariants on random events."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import ibis
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.plays.conftest import movements
from upcurve.errors import ContractError
from upcurve.plays.funnel import FUNNEL_COLUMNS, STAGES, FunnelConfig, expansion_funnel, funnel_schema

MONEY = pa.decimal128(20, 2)
AS_OF = dt.date(2024, 6, 30)  # with months=3, the period is 2024-04-01 … 2024-06-30
T = dt.datetime
VIEW, CLICK, PLAN, CHECKOUT, UPGRADE = ("upgrade_prompt_viewed", "upgrade_prompt_clicked", "plan_page_viewed",
                                        "checkout_started", "upgrade_completed")
EVENT_TYPES = {"ts": pa.timestamp("us"), "account_id": pa.string(), "user_id": pa.string(), "event": pa.string(),
               "feature": pa.string(), "category": pa.string()}
_names = (f"events_{i}" for i in itertools.count())
_con: list[Any] = []


def con() -> Any:
    """One DuckDB connection for the module (hypothesis runs many examples on it)."""
    if not _con:
        _con.append(ibis.duckdb.connect())
    return _con[0]


def events(*rows: tuple) -> Any:
    """(ts, account_id, event, feature, category) rows as an events table in DuckDB."""
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 5
    ts, account, event, feature, category = cols
    table = pa.table({"ts": pa.array(list(ts), EVENT_TYPES["ts"]), "account_id": pa.array(list(account), pa.string()),
                      "user_id": pa.array([None] * len(ts), pa.string()), "event": pa.array(list(event), pa.string()),
                      "feature": pa.array(list(feature), pa.string()),
                      "category": pa.array(list(category), pa.string())})
    return con().create_table(next(_names), table, overwrite=True)


def by_group(table: pa.Table) -> dict[tuple[str | None, str | None, bool], dict[str, Any]]:
    return {(r["prompt_type"], r["placement"], r["is_total"]): r for r in table.to_pylist()}


# -- a dozen accounts, counted by hand -----------------------------------------------------------------------------
SB, TM, APP, MAIL = "seats_banner", "tier_modal", "in_app", "email"


def _journey(account: str, start: T, prompt: str, placement: str, *steps: str) -> list[tuple]:
    """A prompt seen at ``start``, then each step an hour after the one before (without prompt or placement)."""
    rows = [(start, account, VIEW, prompt, placement)]
    rows += [(start + dt.timedelta(hours=i + 1), account, step, None, None) for i, step in enumerate(steps)]
    return rows


COMPANY = [
    # seats_banner / in_app
    *_journey("A1", T(2024, 4, 5, 9), SB, APP, CLICK, PLAN, UPGRADE),            # converted 2024-04-05
    *_journey("A2", T(2024, 5, 10, 9), SB, APP, CLICK, CHECKOUT, UPGRADE),       # converted 2024-05-10
    *_journey("A3", T(2024, 4, 20, 9), SB, APP, CLICK, PLAN),                    # stops at intent
    *_journey("A4", T(2024, 6, 2, 9), SB, APP),                                  # stops at awareness
    (T(2024, 6, 3, 9), "A4", VIEW, SB, APP),                                     # a second view counts once
    # seats_banner / email
    *_journey("A5", T(2024, 6, 15, 9), SB, MAIL, CLICK, PLAN, UPGRADE),          # converted 2024-06-15
    *_journey("A6", T(2024, 5, 1, 9), SB, MAIL, CLICK),                          # stops at consideration
    (T(2024, 4, 15, 9), "A13", UPGRADE, None, None),                             # upgraded before any prompt …
    (T(2024, 5, 1, 9), "A13", VIEW, SB, MAIL),                                   # … then saw one
    # tier_modal / in_app
    *_journey("A7", T(2024, 4, 30, 9), TM, APP, CLICK, PLAN, CHECKOUT, UPGRADE),  # converted 2024-04-30
    (T(2024, 3, 31, 9), "A8", VIEW, SB, MAIL),                                   # before the period: ignored
    *_journey("A8", T(2024, 5, 31, 9), TM, APP, CLICK, PLAN, UPGRADE),           # converted 2024-05-31
    # tier_modal / email
    *_journey("A9", T(2024, 5, 2, 9), TM, MAIL, PLAN, UPGRADE),                  # upgraded without clicking
    *_journey("A10", T(2024, 6, 20, 9), TM, MAIL, CLICK),                        # stops at consideration …
    (T(2024, 7, 1, 0), "A10", PLAN, None, None),                                 # … as these are after as_of
    (T(2024, 7, 2, 9), "A10", UPGRADE, None, None),
    *_journey("A12", T(2024, 4, 1, 0), TM, MAIL),                                # first of several prompts …
    *_journey("A12", T(2024, 4, 2, 9), SB, APP, CLICK, PLAN, UPGRADE),           # … converted 2024-04-02
    # no prompt at all
    (T(2024, 5, 5, 9), "A11", UPGRADE, None, None),
    (T(2024, 5, 5, 8), "A11", "login", None, None),                              # not a funnel event
    (T(2024, 4, 7, 8), "A1", "login", "reports", "core"),
]

COMPANY_MOVES = movements(
    ("2024-05", "A1", "expansion", "tier", "50.00"),        # A1 (0405, 0505]: May starts 0501 ≤ 0505: realised
    ("2024-05", "A1", "contraction", "seat", "-5.00"),      # not an expansion: ignored
    ("2024-06", "A2", "expansion", "tier", "30.00"),        # A2 (0510, 0609]: June starts 0601 ≤ 0609: realised
    ("2024-05", "A5", "expansion", "seat", "15.00"),        # A5 (0615, 0715]: May ends 0531, before: not realised;
    #                                                         its window ends after as_of: pending
    ("2024-04", "A7", "expansion", "tier", "12.00"),        # A7 (0430, 0530]: April ends 0430, not after it;
    ("2024-06", "A7", "expansion", "tier", "13.00"),        # June starts 0601, after 0530: neither counts
    ("2024-06", "A8", "expansion", "tier", "20.00"),        # A8 (0531, 0630]: June overlaps: realised
    ("2024-07", "A8", "expansion", "tier", "99.00"),        # a month after as_of: ignored
    ("2024-04", "A12", "expansion", "seat", "4.00"),        # A12 (0402, 0502]: April ends 0430 > 0402 and
    ("2024-05", "A12", "expansion", "tier", "6.00"),        # May starts 0501 ≤ 0502: both count, 10.00
    ("2024-05", "A11", "expansion", "tier", "70.00"),       # converted without a prompt: in no stage
    ("2024-04", "A9", "expansion", "tier", "8.00"),         # converted outside the funnel: in no realised count
)

# By hand, grouping each account by its first awareness event in the period:
#   seats_banner/email: A5 (→ conversion, pending), A6 (→ consideration), A13 (awareness: its upgrade came first)
#       awareness 3, consideration 2, intent 1, conversion 1, realised 0, pending 1
#   seats_banner/in_app: A1 (→ realised 50), A2 (→ realised 30), A3 (→ intent), A4 (awareness)
#       awareness 4, consideration 3, intent 3, conversion 2, realised 2 (80.00)
#   tier_modal/email: A9 (awareness; upgraded without a click: skipping stages), A10 (→ consideration),
#       A12 (→ realised 10: first seen the tier modal by email, then the seats banner)
#       awareness 3, consideration 2, intent 1, conversion 1, realised 1 (10.00), skipping 1
#   tier_modal/in_app: A7 (→ conversion, window complete, not realised), A8 (→ realised 20; its March view ignored)
#       awareness 2, consideration 2, intent 2, conversion 2, realised 1 (20.00)
#   total: 12, 9, 7, 6, 4 (110.00), pending 1, skipping 1; without a prompt: A11 (no prompt), A13 (upgrade first)
EXPECTED = {
    (SB, MAIL): dict(awareness=3, consideration=2, intent=1, conversion=1, realised=0, realised_mrr="0.00",
                     realised_pending=1, converted_skipping_stages=0),
    (SB, APP): dict(awareness=4, consideration=3, intent=3, conversion=2, realised=2, realised_mrr="80.00",
                    realised_pending=0, converted_skipping_stages=0),
    (TM, MAIL): dict(awareness=3, consideration=2, intent=1, conversion=1, realised=1, realised_mrr="10.00",
                     realised_pending=0, converted_skipping_stages=1),
    (TM, APP): dict(awareness=2, consideration=2, intent=2, conversion=2, realised=1, realised_mrr="20.00",
                    realised_pending=0, converted_skipping_stages=0),
    (None, None): dict(awareness=12, consideration=9, intent=7, conversion=6, realised=4, realised_mrr="110.00",
                       realised_pending=1, converted_skipping_stages=1),
}


def test_a_dozen_accounts_counted_by_hand() -> None:
    f = expansion_funnel(events(*COMPANY), COMPANY_MOVES, FunnelConfig(), as_of=AS_OF)
    assert f.schema == funnel_schema(MONEY)
    assert tuple(f.column_names) == FUNNEL_COLUMNS
    # sorted by prompt type then placement, the total last
    assert [(r["prompt_type"], r["placement"], r["is_total"]) for r in f.to_pylist()] == [
        (SB, MAIL, False), (SB, APP, False), (TM, MAIL, False), (TM, APP, False), (None, None, True)]
    rows = by_group(f)
    for (prompt, placement), want in EXPECTED.items():
        row = rows[(prompt, placement, prompt is None)]
        got = {k: row[k] for k in want}
        assert got == {**want, "realised_mrr": Decimal(want["realised_mrr"])}, (prompt, placement)
    assert [r["converted_without_prompt"] for r in f.to_pylist()] == [None, None, None, None, 2]


def test_rates_by_hand() -> None:
    rows = by_group(expansion_funnel(events(*COMPANY), COMPANY_MOVES, FunnelConfig(), as_of=AS_OF))
    banner = rows[(SB, APP, False)]
    # step rates: 3/4 clicked, 3/3 of them showed intent, 2/3 of those upgraded, 2/2 of the upgrades realised
    assert (banner["consideration_step_rate"], banner["intent_step_rate"], banner["conversion_step_rate"],
            banner["realised_step_rate"]) == (0.75, 1.0, pytest.approx(2 / 3), 1.0)
    # from awareness: 3/4, 3/4, 2/4, 2/4
    assert (banner["consideration_from_awareness"], banner["intent_from_awareness"],
            banner["conversion_from_awareness"], banner["realised_from_awareness"]) == (0.75, 0.75, 0.5, 0.5)
    total = rows[(None, None, True)]
    # 9/12, 7/9, 6/7, 4/6; and 6/12 converted, 4/12 realised
    assert total["consideration_step_rate"] == 0.75
    assert total["intent_step_rate"] == pytest.approx(7 / 9)
    assert total["conversion_step_rate"] == pytest.approx(6 / 7)
    assert total["realised_step_rate"] == pytest.approx(4 / 6)
    assert total["conversion_from_awareness"] == 0.5
    assert total["realised_from_awareness"] == pytest.approx(1 / 3)
    # a stage of 0 accounts: the next step's rate has nothing to divide by
    email = rows[(SB, MAIL, False)]
    assert email["realised"] == 0 and email["realised_step_rate"] == 0.0
    assert rows[(TM, MAIL, False)]["realised_step_rate"] == 1.0


# -- realised expansion at the edges of its window -----------------------------------------------------------------
@pytest.mark.parametrize(("within", "month", "realised"), [
    (30, "2024-03", True),   # converted 03-01, window (03-01, 03-31]: March's last day is in it
    (30, "2024-04", False),  # (03-01, 03-31]: April starts 04-01, after the window's end
    (31, "2024-04", True),   # (03-01, 04-01]: April starts on the window's last day
    (30, "2024-02", False),  # February ends before the conversion
])
def test_realised_at_the_window_edges(within: int, month: str, realised: bool) -> None:
    ev = events(*_journey("a", T(2024, 3, 1, 10), SB, APP, CLICK, PLAN, UPGRADE))
    moves = movements((month, "a", "expansion", "seat", "25.00"))
    config = FunnelConfig(realised_within_days=within, months=2)
    total = by_group(expansion_funnel(ev, moves, config, as_of=dt.date(2024, 4, 30)))[(None, None, True)]
    assert total["conversion"] == 1
    assert total["realised"] == int(realised)
    assert total["realised_mrr"] == (Decimal("25.00") if realised else Decimal("0.00"))


def test_the_conversion_day_itself_is_not_in_the_window() -> None:
    # converted on the last day of March: March's movement ends on the conversion day, (03-31, 04-30] starts after
    ev = events(*_journey("a", T(2024, 3, 31, 10), SB, APP, CLICK, PLAN, UPGRADE))
    moves = movements(("2024-03", "a", "expansion", "seat", "25.00"), ("2024-04", "a", "expansion", "tier", "5.00"))
    total = expansion_funnel(ev, moves, FunnelConfig(), as_of=dt.date(2024, 5, 31)).to_pylist()[-1]
    assert (total["realised"], total["realised_mrr"], total["realised_pending"]) == (1, Decimal("5.00"), 0)


def test_a_window_running_past_as_of_is_pending_until_it_is_realised() -> None:
    ev = events(*_journey("a", T(2024, 6, 20, 10), SB, APP, CLICK, PLAN, UPGRADE))
    total = expansion_funnel(ev, movements(), FunnelConfig(), as_of=AS_OF).to_pylist()[-1]
    assert (total["conversion"], total["realised"], total["realised_pending"]) == (1, 0, 1)
    moves = movements(("2024-06", "a", "expansion", "seat", "25.00"))
    total = expansion_funnel(ev, moves, FunnelConfig(), as_of=AS_OF).to_pylist()[-1]
    assert (total["realised"], total["realised_pending"]) == (1, 0)


# -- the period and as_of ------------------------------------------------------------------------------------------
def test_events_after_as_of_are_ignored() -> None:
    rows = [*_journey("a", T(2024, 6, 30, 20), SB, APP, CLICK, PLAN),   # the plan page at 22:00 on as_of: in
            (T(2024, 7, 1, 0), "a", UPGRADE, None, None),                # midnight after as_of: out
            (T(2024, 7, 1, 0), "b", VIEW, SB, APP)]                      # a prompt seen after as_of: out
    total = expansion_funnel(events(*rows), movements(), FunnelConfig(), as_of=AS_OF).to_pylist()[-1]
    assert (total["awareness"], total["consideration"], total["intent"], total["conversion"]) == (1, 1, 1, 0)
    # a day later, both count
    later = expansion_funnel(events(*rows), movements(), FunnelConfig(), as_of=dt.date(2024, 7, 1)).to_pylist()[-1]
    assert (later["awareness"], later["conversion"]) == (2, 1)


def test_the_period_is_calendar_months_to_as_of() -> None:
    assert FunnelConfig(months=3).period(AS_OF) == (dt.date(2024, 4, 1), AS_OF)
    assert FunnelConfig(months=1).period(dt.date(2024, 1, 15)) == (dt.date(2024, 1, 1), dt.date(2024, 1, 15))
    assert FunnelConfig(months=13).period(dt.date(2024, 1, 15)) == (dt.date(2023, 1, 1), dt.date(2024, 1, 15))
    rows = [(T(2024, 3, 31, 23, 59), "a", VIEW, SB, APP), (T(2024, 4, 1, 0), "b", VIEW, SB, APP)]
    total = expansion_funnel(events(*rows), movements(), FunnelConfig(), as_of=AS_OF).to_pylist()[-1]
    assert total["awareness"] == 1


def test_no_funnel_events_gives_an_empty_table_with_the_schema() -> None:
    ev = events((T(2024, 5, 1), "a", "login", None, None), (T(2024, 1, 1), "a", VIEW, SB, APP))
    f = expansion_funnel(ev, movements(), FunnelConfig(), as_of=AS_OF)
    assert f.num_rows == 0 and f.schema == funnel_schema(MONEY)
    assert expansion_funnel(events(), movements(), FunnelConfig(), as_of=AS_OF).num_rows == 0


def test_only_unprompted_conversions_give_a_total_row_of_them() -> None:
    ev = events((T(2024, 5, 1), "a", UPGRADE, None, None), (T(2024, 5, 2), "b", UPGRADE, None, None))
    f = expansion_funnel(ev, movements(), FunnelConfig(), as_of=AS_OF).to_pylist()
    assert len(f) == 1 and f[0]["is_total"]
    assert (f[0]["awareness"], f[0]["conversion"], f[0]["converted_without_prompt"]) == (0, 0, 2)
    assert f[0]["consideration_step_rate"] is None and f[0]["conversion_from_awareness"] is None


def test_a_prompt_or_placement_missing_stays_null_beside_the_total() -> None:
    ev = events((T(2024, 5, 1), "a", VIEW, None, None), (T(2024, 5, 1), "b", VIEW, SB, None))
    rows = [(r["prompt_type"], r["placement"], r["is_total"], r["awareness"])
            for r in expansion_funnel(ev, movements(), FunnelConfig(), as_of=AS_OF).to_pylist()]
    assert rows == [(SB, None, False, 1), (None, None, False, 1), (None, None, True, 2)]


def test_two_prompts_at_one_instant_go_to_the_lowest_prompt_type() -> None:
    ev = events((T(2024, 5, 1), "a", VIEW, TM, APP), (T(2024, 5, 1), "a", VIEW, SB, MAIL))
    rows = expansion_funnel(ev, movements(), FunnelConfig(), as_of=AS_OF).to_pylist()
    assert [(r["prompt_type"], r["placement"]) for r in rows] == [(SB, MAIL), (None, None)]


def test_configured_events_and_columns() -> None:
    config = FunnelConfig(awareness=("paywall_shown", "banner_shown"), consideration="paywall_clicked",
                          intent="pricing_viewed", conversion="plan_changed", prompt_column="event",
                          placement_column="feature", realised_within_days=10, months=1)
    rows = [(T(2024, 6, 1), "a", "banner_shown", "billing", None), (T(2024, 6, 2), "a", "paywall_clicked", None, None),
            (T(2024, 6, 3), "a", "pricing_viewed", None, None), (T(2024, 6, 4), "a", "plan_changed", None, None),
            (T(2024, 6, 5), "b", "paywall_shown", "reports", None), (T(2024, 6, 6), "b", VIEW, None, None)]
    f = expansion_funnel(events(*rows), movements(), config, as_of=AS_OF).to_pylist()
    assert [(r["prompt_type"], r["placement"], r["awareness"], r["conversion"]) for r in f] == [
        ("banner_shown", "billing", 1, 1), ("paywall_shown", "reports", 1, 0), (None, None, 2, 1)]


# -- input problems ------------------------------------------------------------------------------------------------
def test_a_missing_column_names_the_table_the_column_and_the_setting() -> None:
    ev = ibis.memtable({"ts": [T(2024, 5, 1)], "account_id": ["a"], "event": [VIEW], "feature": [SB]})
    with pytest.raises(ContractError, match=r"events \[category\]: required column 'category' is missing.*"
                                            r"placement_column"):
        expansion_funnel(ev, movements(), FunnelConfig(), as_of=AS_OF)


def test_ts_as_text_is_refused_with_the_fix() -> None:
    ev = ibis.memtable({"ts": ["2024-05-01"], "account_id": ["a"], "user_id": [None], "event": [VIEW],
                        "feature": [SB], "category": [APP]})
    with pytest.raises(ContractError, match=r"events \[ts\]: has type string, not a timestamp.*cast"):
        expansion_funnel(ev, movements(), FunnelConfig(), as_of=AS_OF)


def test_movements_are_checked_even_without_conversions() -> None:
    bad = pa.table({"month": ["2024-05"], "account_id": ["a"], "type": ["expansion"], "source": ["seat"],
                    "amount": [25.0]})
    with pytest.raises(ContractError, match=r"amount.*not an exact decimal"):
        expansion_funnel(events((T(2024, 5, 1), "a", VIEW, SB, APP)), bad, FunnelConfig(), as_of=AS_OF)


# -- the settings --------------------------------------------------------------------------------------------------
def test_an_event_under_two_stages_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"'checkout_started' is under both intent and conversion"):
        FunnelConfig(conversion=("checkout_started", "upgrade_completed"))


def test_an_unknown_column_suggests_the_closest() -> None:
    with pytest.raises(ValidationError, match=r"prompt_column\n.*unknown events column 'featur' \(did you mean "
                                              r"'feature'\?\).*user_id, event, feature, category"):
        FunnelConfig(prompt_column="featur")
    with pytest.raises(ValidationError, match=r"unknown events column 'ts'"):
        FunnelConfig(placement_column="ts")


@pytest.mark.parametrize("bad", [
    {"intent": ()}, {"awareness": ("",)}, {"realised_within_days": 0}, {"months": 0}, {"stages": {}},
])
def test_other_settings_problems_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FunnelConfig.model_validate(bad)


def test_the_defaults_and_one_name_alone() -> None:
    config = FunnelConfig.model_validate({"conversion": "plan_upgraded"})
    assert config.conversion == ("plan_upgraded",)
    assert FunnelConfig().intent == (PLAN, CHECKOUT)
    assert (FunnelConfig().prompt_column, FunnelConfig().placement_column) == ("feature", "category")
    assert (FunnelConfig().realised_within_days, FunnelConfig().months) == (30, 3)


# -- invariants on random events -----------------------------------------------------------------------------------
_STAGE_EVENTS = (VIEW, CLICK, PLAN, CHECKOUT, UPGRADE, "login")
_ORDER = (VIEW, CLICK, PLAN, UPGRADE)
_event_rows = st.lists(st.tuples(                       # events in any order
    st.integers(0, 5),                                  # account
    st.sampled_from(_STAGE_EVENTS),
    st.integers(-20, 110),                              # day after 2024-04-01 (the period is days 0 … 90)
    st.sampled_from([SB, TM, None]), st.sampled_from([APP, MAIL, None])), max_size=25)
_journeys = st.lists(st.tuples(                         # journeys in the funnel's order, a day a step
    st.integers(0, 5), st.integers(1, 4), st.integers(-10, 100),
    st.sampled_from([SB, TM, None]), st.sampled_from([APP, MAIL])), max_size=8)
_move_rows = st.lists(st.tuples(
    st.integers(0, 5), st.sampled_from(["2024-03", "2024-04", "2024-05", "2024-06", "2024-07"]),
    st.sampled_from(["expansion", "expansion", "contraction"]), st.integers(1, 10_000)), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_event_rows, _journeys, _move_rows, st.integers(1, 60))
def test_invariants(rows: list[tuple], journeys: list[tuple], moves: list[tuple], within: int) -> None:
    rows = rows + [(acc, name, day + step, prompt if step == 0 else None, place if step == 0 else None)
                   for acc, depth, day, prompt, place in journeys for step, name in enumerate(_ORDER[:depth])]
    ev = events(*[(T(2024, 4, 1) + dt.timedelta(days=day, hours=i % 24), f"a{acc}", name, prompt, place)
                  for i, (acc, name, day, prompt, place) in enumerate(rows)])
    mv = movements(*[(month, f"a{acc}", kind, "seat", f"{(1 if kind == 'expansion' else -1) * cents / 100:.2f}")
                     for acc, month, kind, cents in moves])
    f = expansion_funnel(ev, mv, FunnelConfig(realised_within_days=within), as_of=AS_OF)
    assert f.schema == funnel_schema(MONEY)
    out = f.to_pylist()
    if not out:
        return
    *groups, total = out
    assert total["is_total"] and not any(r["is_total"] for r in groups)
    for row in out:
        counts = [row[s] for s in STAGES]
        assert all(later <= earlier for earlier, later in itertools.pairwise(counts)), row
        assert row["realised_pending"] + row["realised"] <= row["conversion"]
        assert row["realised_mrr"] >= 0 and (row["realised_mrr"] > 0) == (row["realised"] > 0)
        for name in FUNNEL_COLUMNS:
            if name.endswith(("_rate", "_from_awareness")) and row[name] is not None:
                assert 0.0 <= row[name] <= 1.0, (name, row)
    for name in (*STAGES, "realised_mrr", "realised_pending", "converted_skipping_stages"):
        assert total[name] == sum((r[name] for r in groups), 0 * total[name]), name
    assert total["converted_without_prompt"] >= 0
