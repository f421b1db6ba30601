"""What the reader keeps in memory answers exactly what reading the workspace answers: lists sorted once per run and
filtered by codes, movements, an account's history across runs, the diff of two runs, rows made plain for JSON by
Arrow; and what others record in the workspace shows up (at once when recorded through the app, within
``runs_ttl`` from elsewhere)."""

from __future__ import annotations

import shutil
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upcurve.web import _lists
from upcurve.web.data import Reader, plain_rows, plain_table
from upcurve.workspace import RunRecord, Store, diff_runs
from upcurve.workspace import access as acc


@pytest.fixture(scope="module")
def reader(store: Store) -> Reader:
    return Reader(store)


@pytest.fixture(scope="module")
def run(reader: Reader) -> RunRecord:
    return reader.run()


def naive_accounts(table: pa.Table, growth: pa.Table, *, filters: dict[str, str | None], sort: str,
                   descending: bool, cohort: str | None, search: str | None) -> list[str]:
    """Filter the whole table, then sort it: the obvious way, to hold the kept orders and codes to."""
    mask = pa.array([True] * table.num_rows)
    for column, value in filters.items():
        if value is not None and column in table.column_names:
            mask = pc.and_(mask, pc.fill_null(pc.equal(table[column], value), False))
    if cohort is not None:
        ids = growth.filter(pc.equal(growth["first_paid_month"], cohort))["account_id"]
        mask = pc.and_(mask, pc.is_in(table["account_id"], value_set=ids.combine_chunks()))
    if search:
        found = pc.or_(pc.match_substring(pc.utf8_lower(table["account_id"]), search.lower()),
                       pc.match_substring(pc.utf8_lower(pc.fill_null(table["name"], "")), search.lower()))
        mask = pc.and_(mask, found)
    kept = table.filter(mask)
    order = "descending" if descending else "ascending"
    return kept.take(pc.sort_indices(kept, [(sort, order, "at_end"), ("account_id", "ascending", "at_end")])
                     )["account_id"].to_pylist()


@pytest.mark.parametrize("sort", ["mrr", "churn_risk", "expansion_propensity", "health_score", "name",
                                  "days_to_renewal", "usage_share_used"])
@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("few", [20_000, 2], ids=["search-by-finding", "search-by-arrow"])
def test_accounts_lists_match_filtering_then_sorting(reader: Reader, run: RunRecord, sort: str,
                                                     descending: bool, few: int, monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    monkeypatch.setattr(_lists, "_FEW", few)  # past it a search scans with Arrow
    table, growth = reader.table(run, "accounts"), reader.table(run, "account_growth")
    segment = table["segment"][0].as_py()
    owner = table["owner"][3].as_py()
    cohort = growth["first_paid_month"][5].as_py()
    cases: list[dict[str, Any]] = [
        {"filters": {}}, {"filters": {"segment": segment}}, {"filters": {"segment": segment, "owner": owner}},
        {"filters": {"health_tier": "At Risk", "recommended_lever": None}}, {"filters": {"segment": "no such"}},
        {"filters": {}, "cohort": cohort}, {"filters": {"segment": segment}, "cohort": "1999-01"},
        {"filters": {}, "search": "1"}, {"filters": {"owner": owner}, "search": "A00"},
        {"filters": {}, "search": "customer 1"},
        # across the end of an id and the start of its name: matches neither alone, so nothing
        {"filters": {}, "search": table["account_id"][0].as_py()[-2:] + (table["name"][0].as_py() or "")[:3]},
    ]
    for case in cases:
        args = {"filters": case["filters"], "sort": sort, "descending": descending,
                "cohort": case.get("cohort"), "search": case.get("search")}
        picked = reader.accounts(run, **args)
        expected = naive_accounts(table, growth, **args)
        assert picked.num_rows == len(expected), case
        assert picked.to_pylist() == table.take(
            pc.index_in(pa.array(expected, pa.string()), value_set=table["account_id"].combine_chunks())
        ).to_pylist(), case
        middle = len(expected) // 3
        assert [r["account_id"] for r in picked.slice(middle, 7, ["account_id", "mrr"]).to_pylist()] == \
            expected[middle:middle + 7]


def test_the_worklist_filters_by_its_accounts_segment(reader: Reader, run: RunRecord) -> None:
    worklist, accounts = reader.table(run, "worklist"), reader.table(run, "accounts")
    segment_of = dict(zip(accounts["account_id"].to_pylist(), accounts["segment"].to_pylist(), strict=True))
    segment = segment_of[worklist["account_id"][0].as_py()]
    picked = reader.accounts(run, filters={"segment": segment}, sort="value_at_stake", descending=True,
                             table_name="worklist+segment").to_pylist()
    expected = [r for r in worklist.to_pylist() if segment_of[r["account_id"]] == segment]
    assert picked and {r["account_id"] for r in picked} == {r["account_id"] for r in expected}
    assert all(r["segment"] == segment for r in picked)
    values = [r["value_at_stake"] for r in picked]
    assert values == sorted(values, reverse=True)


def test_movements_match_filtering_then_sorting_largest_first(reader: Reader, run: RunRecord) -> None:
    table = reader.table(run, "movements")
    months = sorted(set(table["month"].to_pylist()))
    account = table["account_id"][0].as_py()
    cases: list[dict[str, Any]] = [
        {}, {"kind": "expansion"}, {"kind": "churn", "month_from": months[3]},
        {"month_from": months[5], "month_to": months[5]}, {"month_to": months[20], "source": "seat"},
        {"month_from": "1999-01", "month_to": "1999-12"}, {"kind": "new", "source": "no such"},
        {"account_id": account}, {"account_id": account, "kind": "expansion"}, {"account_id": "nobody"},
    ]
    for case in cases:
        mask = pa.array([True] * table.num_rows)
        for column, op, value in (("month", pc.greater_equal, case.get("month_from")),
                                  ("month", pc.less_equal, case.get("month_to")), ("type", pc.equal, case.get("kind")),
                                  ("source", pc.equal, case.get("source")),
                                  ("account_id", pc.equal, case.get("account_id"))):
            if value is not None:
                mask = pc.and_(mask, pc.fill_null(op(table[column], value), False))
        kept = table.filter(mask)
        expected = kept.take(pc.array_sort_indices(pc.abs(kept["amount"]), order="descending")).to_pylist()
        picked = reader.movements(run, **case)
        assert picked.num_rows == len(expected), case
        assert picked.to_pylist() == expected, case


@settings(max_examples=200, deadline=None)
@given(data=st.data(), rows=st.integers(0, 300), block=st.sampled_from([1, 7, 64, 65_536]))
def test_a_page_of_picked_rows_is_that_slice_of_every_match(data: st.DataObject, rows: int, block: int) -> None:
    # small blocks: a page is found across their edges
    order = np.array(data.draw(st.permutations(range(rows))), np.int64)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=rows, max_size=rows)), np.bool_)
    table = pa.table({"n": pa.array(range(rows), pa.int64())})
    picked = _lists.Picked(table, order, data.draw(st.sampled_from([mask, None])), block=block)
    every = order[mask] if picked.mask is not None else order
    offset, length = data.draw(st.integers(0, rows + 2)), data.draw(st.none() | st.integers(0, rows + 2))
    assert picked.num_rows == len(every)
    end = None if length is None else offset + length
    assert picked.slice(offset, length)["n"].to_pylist() == every[offset:end].tolist()


def test_an_accounts_history_is_what_every_run_stored(reader: Reader, store: Store) -> None:
    runs = store.runs()
    ids = store.query("SELECT account_id FROM accounts WHERE run_id = ? LIMIT 5", [runs[-1].run_id]).column(0)
    for account in [*ids.to_pylist(), "nobody"]:
        expected = store.query(
            "SELECT r.run_id, r.as_of, a.mrr, a.health_score, a.health_tier, a.expansion_propensity, "
            "a.churn_risk, a.recommended_lever FROM accounts a JOIN runs r ON r.run_id = a.run_id "
            "WHERE a.account_id = ? AND r.status = 'complete' ORDER BY r.started_at, r.run_id", [account])
        assert reader.account_history(account) == expected.to_pylist()
    assert len(reader.account_history(ids[0].as_py())) == len(runs) == 2


def test_the_diff_of_two_runs_is_kept_and_the_same(reader: Reader, store: Store) -> None:
    a, b = store.runs()
    expected = diff_runs(store, a, b)
    first, again = reader.diff(a, b), reader.diff(a, b)
    assert first is again  # kept
    for part in ("bridge", "entered", "left", "tier_moves", "new_churn_risks"):
        assert getattr(first, part).to_pylist() == getattr(expected, part).to_pylist(), part
    other = reader.diff(a, b, threshold=0.05)
    assert other is not first
    assert other.new_churn_risks.to_pylist() == diff_runs(store, a, b, threshold=0.05).new_churn_risks.to_pylist()


def test_actions_show_at_once_from_the_app_and_within_runs_ttl_from_elsewhere(store: Store) -> None:
    reader = Reader(store, runs_ttl=3600)
    run = reader.run()
    account = reader.table(run, "worklist")["account_id"][0].as_py()
    before = reader.actions(run)
    acc.record_action(store, run.run_id, account, "contacted", "from the command line", "cli")
    assert reader.actions(run) == before  # trusted for runs_ttl
    reader.record_action(run, account, "won", "from the app", "ann")
    now = reader.actions(run)
    assert len(now) == len(before) + 2 and {a.note for a in now[:2]} == {"from the command line", "from the app"}
    assert all(a.account_id == account for a in reader.actions(run, account))
    assert reader.actions(run, "nobody") == []
    fresh = Reader(store, runs_ttl=0)
    acc.record_action(store, run.run_id, account, "lost", None, "cli")
    assert len(fresh.actions(run)) == len(now) + 1


def test_a_run_stored_meanwhile_shows_up_after_runs_ttl(store: Store) -> None:
    reader = Reader(store, runs_ttl=0)
    assert [r.run_id for r in reader.runs()] == [r.run_id for r in store.runs()]
    assert reader.models() and {m.model_id for m in reader.models()} == {m.model_id for m in store.models()}


@settings(max_examples=200, deadline=None)
@given(scale=st.integers(0, 12), data=st.data())
def test_rows_converted_by_arrow_are_what_plain_gives(scale: int, data: st.DataObject) -> None:
    size = data.draw(st.integers(0, 8))
    decimals = data.draw(st.lists(st.none() | st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"),
                                                          places=scale, allow_nan=False), min_size=size, max_size=size))
    floats = data.draw(st.lists(st.none() | st.floats(allow_nan=True, allow_infinity=True), min_size=size,
                                max_size=size))
    days = data.draw(st.lists(st.none() | st.dates(), min_size=size, max_size=size))
    times = data.draw(st.lists(st.none() | st.datetimes(), min_size=size, max_size=size))
    table = pa.table({"money": pa.array(decimals, pa.decimal128(26, scale)), "share": pa.array(floats, pa.float64()),
                      "day": pa.array(days, pa.date32()), "at": pa.array(times, pa.timestamp("us")),
                      "n": pa.array(list(range(size)), pa.int64()), "text": pa.array([str(d) for d in days])})
    assert plain_table(table) == plain_rows(table.to_pylist())


class _Closed:
    """A workspace that must not be asked anything."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the workspace was asked for {name}")


def test_a_warmed_run_answers_accounts_and_lists_from_memory(store: Store) -> None:
    reader = Reader(store, runs_ttl=3600)
    run = reader.run()
    reader.warm(run)
    account = reader.table(run, "worklist")["account_id"][0].as_py()
    segment = reader.table(run, "accounts")["segment"][0].as_py()
    reader.store = cast(Store, _Closed())
    row = reader.account(run, account)["account"]
    assert row["account_id"] == account
    assert reader.names(run, [account, "nobody"]) == {account: row["name"], "nobody": None}
    assert len(reader.account_history(account)) == 2
    assert reader.accounts(run, filters={"segment": segment}, sort="mrr", descending=True).num_rows > 0
    assert reader.movements(run, kind="churn", account_id=account).num_rows >= 0
    assert reader.movements(run, kind="expansion").num_rows > 0


def test_the_app_warms_the_latest_run_it_sees_in_the_background(built_workspace: Path, tmp_path: Path) -> None:
    shutil.copytree(built_workspace, tmp_path / "workspace")
    (tmp_path / "workspace" / "workspace.lock").unlink(missing_ok=True)
    reader = Reader(Store.open(tmp_path / "workspace", create=False), runs_ttl=3600, warm=True)
    run = reader.runs()[-1]
    for thread in [t for t in threading.enumerate() if t.name == "upcurve-warm"]:
        thread.join(60)
    reader.store = cast(Store, _Closed())
    account = reader.table(run, "worklist")["account_id"][0].as_py()  # kept by the warm-up
    assert reader.account(run, account)["account"]["account_id"] == account
    assert reader.account_history(account)


def test_the_served_app_warms_the_latest_run_before_its_first_request(built_workspace: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from upcurve.web.app import create_app

    shutil.copytree(built_workspace, tmp_path / "workspace")
    (tmp_path / "workspace" / "workspace.lock").unlink(missing_ok=True)
    app = create_app(tmp_path / "workspace", warm=True)
    with TestClient(app):  # the lifespan's startup has run: the app would now accept requests
        reader: Reader = app.state.reader
        reader.runs_ttl = 3600  # the runs read at startup stay trusted while the workspace is away
        reader.store = cast(Store, _Closed())
        earlier, run = reader.runs()[-2:]
        assert reader.accounts(run, filters={}, sort="churn_risk", descending=True, search="a").num_rows > 0
        assert reader.movements(run, kind="expansion").num_rows > 0
        assert reader.segments(run, "owner") and reader.cohorts(run) and reader.bridge(run)
        assert reader.diff(earlier, run).bridge.num_rows > 0
