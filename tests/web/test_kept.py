"""What the reader keeps to answer fast answers what reading the workspace answers: the plays' histories from one
index read per change of the actions, the accounts behind a product's expansion paged from a kept summary, the
actions of several statuses merged once; and a request finds its login remembered while the workspace is busy."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from upcurve.web import _products
from upcurve.web.data import Reader
from upcurve.workspace import Store
from upcurve.workspace import access as acc
from upcurve.workspace import actions as wa


def _grouped(events: list[wa.ActionEvent], ids: list[str]) -> dict[str, list[wa.ActionEvent]]:
    found: dict[str, list[wa.ActionEvent]] = {i: [] for i in ids}
    for e in events:
        found[e.action_id].append(e)
    return found


def test_plays_histories_are_what_the_workspace_lists_and_follow_a_change(built_workspace: Path,
                                                                          tmp_path: Path) -> None:
    mine = tmp_path / "workspace"
    shutil.copytree(built_workspace, mine)
    (mine / "workspace.lock").unlink(missing_ok=True)
    store = Store.open(mine, create=False)
    reader = Reader(store, runs_ttl=3600)
    state = reader.plays.state()
    assert state.by_account
    for account in sorted(state.by_account)[:40]:
        actions = state.by_account[account]
        ids = [a.action_id for a in actions]
        assert reader.plays.history(actions, account) == _grouped(wa.list_events(store, ids), ids)
    live = next(a for a in state.actions if a.status == "open" and not a.held_out)
    reader.plays.set_status(live.action_id, "done", actor="ann", note="<b>won</b>")
    history = reader.plays.history([live])[live.action_id]
    assert history == _grouped(wa.list_events(store, [live.action_id]), [live.action_id])[live.action_id]
    assert history[-1].actor == "ann" and history[-1].detail == "<b>won</b>"
    assert reader.plays.history([], "nobody") == {}


def test_actions_of_several_statuses_are_merged_oldest_first(store: Store) -> None:
    reader = Reader(store, runs_ttl=3600)
    every = reader.plays.actions()
    for statuses in (["open", "snoozed"], ["snoozed", "open", "open"], ["done", "holdout", "open"]):
        found = reader.plays.actions(status=statuses)
        assert found == [a for a in every if a.status in statuses]
        assert reader.plays.actions(status=statuses) == found  # kept, and a copy each time
        found.clear()
        assert reader.plays.actions(status=statuses) != [] or not any(a.status in statuses for a in every)


def test_a_products_accounts_are_paged_from_one_kept_summary(store: Store) -> None:
    reader = Reader(store, runs_ttl=3600)
    run = reader.run()
    product = _products.products(reader, run)[0]
    months = sorted(set(_products.product_rises(reader, run, product)["month"].to_pylist()))
    for month_from, month_to in ((None, None), (months[len(months) // 2], None), (months[-1], months[-1])):
        count, total, every = _products.product_expansion(reader, run, product, month_from, month_to)
        assert len(every) == count and sum(r["rise"] for r in every) == total
        assert [r["rise"] for r in every] == sorted((r["rise"] for r in every), reverse=True)
        for offset, limit in ((0, 3), (2, 5), (count, 10)):
            paged = _products.product_expansion(reader, run, product, month_from, month_to, limit, offset)
            assert paged == (count, total, every[offset:offset + limit])
    rises = _products.product_rises(reader, run, product).to_pylist()
    for row in _products.product_expansion(reader, run, product, None, None, 10)[2]:
        mine = [r for r in rises if r["account_id"] == row["account_id"]]
        assert row["months"] == len(mine) and row["last_month"] == max(r["month"] for r in mine)
        assert row["mrr"] == next(r["mrr"] for r in mine if r["month"] == row["last_month"])


def test_a_login_found_live_is_used_while_the_workspace_is_busy(store: Store) -> None:
    secret = acc.create_token(store, "busy", ["read"])[0]
    reader = Reader(store, auth_ttl=0)
    calls: list[str] = []

    def check(s: Store, token: str) -> Any:
        calls.append(token)
        return acc.check_token(s, token)

    found = reader.live(check, secret)
    assert found is not None and calls == [secret]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with reader.lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(10)
        assert reader.live(check, secret) is found and calls == [secret]  # busy: answered as found last
    finally:
        release.set()
        holder.join()
    assert reader.live(check, secret).token_id == found.token_id and calls == [secret, secret]  # free: asked again
