"""The simulated company's upgrade funnel: its events follow each prompt in order, and writing them changes no
other table (they draw from a random stream of their own)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from upcurve.simulate import company, simulate_tables

FUNNEL = ("upgrade_prompt_viewed", "upgrade_prompt_clicked", "plan_page_viewed", "checkout_started",
          "upgrade_completed")


def test_funnel_events_change_no_other_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(company, "BLOCK", 70)  # several blocks, several random streams
    with_funnel = simulate_tables(200, 15, seed=5, events=True)
    monkeypatch.setattr(company, "_FUNNEL_EVENTS", False)
    without = simulate_tables(200, 15, seed=5, events=True)
    for name in with_funnel:
        if name != "events":
            assert with_funnel[name].equals(without[name]), name
    events = with_funnel["events"]
    funnel = pc.is_in(events["event"], value_set=pa.array(FUNNEL))
    assert events.filter(pc.invert(funnel)).equals(without["events"])
    assert pc.sum(pc.is_in(without["events"]["event"], value_set=pa.array(FUNNEL))).as_py() in (0, None)


def test_every_click_follows_a_view_of_the_same_prompt_and_upgrades_match_the_tier_expansions() -> None:
    tables = simulate_tables(300, 18, seed=3, events=True)
    events = tables["events"].filter(pc.is_in(tables["events"]["event"], value_set=pa.array(FUNNEL))).to_pylist()
    views = {(e["account_id"], e["ts"].strftime("%Y-%m"), e["feature"], e["category"]): e["ts"]
             for e in events if e["event"] == "upgrade_prompt_viewed"}
    assert views
    for e in events:
        if e["event"] in FUNNEL[1:4]:
            seen = views[(e["account_id"], e["ts"].strftime("%Y-%m"), e["feature"], e["category"])]
            assert seen < e["ts"]
    counts = {name: sum(e["event"] == name for e in events) for name in FUNNEL}
    assert counts["upgrade_prompt_viewed"] > counts["upgrade_prompt_clicked"] > counts["plan_page_viewed"] \
        > counts["checkout_started"] > 0
    upgrades = {(e["account_id"], e["ts"].strftime("%Y-%m")) for e in events if e["event"] == "upgrade_completed"}
    truth = tables["truth_expansions"]
    tier = {(a, m) for a, m, lever in zip(truth["account_id"].to_pylist(), truth["month"].to_pylist(),
                                          truth["lever"].to_pylist(), strict=True) if lever == "tier"}
    assert upgrades == tier
