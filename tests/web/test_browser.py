"""The pages in a real browser (Debian's chromium driven by Playwright): charts drawn, a click on a waterfall bar,
a cohort cell, an owner's or a product's bar lists its accounts, the worklist filters and sorts, the account page
shows progress bars and the usage trend, an action is snoozed from the account page, the Plays page draws its
charts, and the board report opens with the network off and draws every chart. Screenshots go to
``test-artifacts/web/``."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import PASSWORD
from upcurve.web.report import CHROMIUM, CHROMIUM_ARGS, write_report
from upcurve.workspace import Store

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
if not Path(CHROMIUM).exists():  # `make test` installs it (system-packages)
    pytest.fail(f"the browser tests need chromium at {CHROMIUM}: make system-packages", pytrace=False)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


@pytest.fixture(scope="module")
def server(app: Any) -> Iterator[str]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as pw:
        found = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield found
        found.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    # bypass_csp lets the test's own probes (wait_for_function) run; the pages' scripts are all files of the app
    context = browser.new_context(base_url=server, viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    # offline: anything beyond the app itself is refused, so a page that needs the internet fails here
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server)
                  else route.abort())
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    tab.goto("/login")
    tab.fill("input[name=username]", "ann")
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{server}/")
    yield tab
    context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def all_drawn(page: Any) -> int:
    page.wait_for_function("document.querySelectorAll('div.chart').length > 0 && "
                           "document.querySelectorAll('div.chart').length === "
                           "document.querySelectorAll('div.chart.drawn').length")
    return int(page.locator("div.chart.drawn").count())


def test_overview_draws_its_charts_and_a_bar_lists_its_accounts(page: Any) -> None:
    assert all_drawn(page) >= 6
    for chart in ("bridge", "trend", "retention", "by_source", "cohorts", "coupons"):
        assert page.locator(f"#chart-{chart} .main-svg").count() > 0, chart
    assert page.locator("#headline").inner_text().startswith("In ")
    bars = page.locator("#chart-bridge g.trace.bars g.point path")
    assert bars.count() >= 5
    box = bars.nth(1).bounding_box()  # "new"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    result = page.locator("#drill-result")
    result.wait_for()
    assert "new" in result.locator("h3").inner_text()
    assert result.locator("tbody tr a").count() > 0
    shot(page, "overview")


def test_a_cohort_cell_and_an_owner_bar_list_their_accounts(page: Any) -> None:
    all_drawn(page)
    assert page.locator("#chart-by_owner .main-svg").count() > 0
    heatmap = page.locator("#chart-cohorts .nsewdrag").first
    heatmap.scroll_into_view_if_needed()
    box = heatmap.bounding_box()
    page.mouse.move(box["x"] + 4, box["y"] + 4)  # the first cohort (top row), its first month (left column)
    page.mouse.click(box["x"] + 4, box["y"] + 4)
    result = page.locator("#drill-result h3")
    result.wait_for()
    assert result.inner_text().startswith("cohort ")
    assert page.locator("#drill-result tbody tr a").count() > 0
    bars = page.locator("#chart-by_owner g.trace.bars g.point path")
    bars.first.scroll_into_view_if_needed()
    box = bars.first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("document.querySelector('#drill-result h3').textContent.startsWith('owner ')")
    assert page.locator("#drill-result tbody tr a").count() > 0
    shot(page, "overview-drill")


def test_worklist_filters_and_sorts(page: Any) -> None:
    page.goto("/worklist")
    rows = page.locator("#worklist-table tbody tr[data-account]")
    everyone = rows.count()
    owner = page.locator("#filter-owner option").nth(1).get_attribute("value")
    page.select_option("#filter-owner", owner)
    page.wait_for_function(f"Array.from(document.querySelectorAll('#worklist-table tbody tr[data-account]'))"
                           f".every(r => r.dataset.owner === {owner!r})")
    assert 0 < rows.count() < everyone
    page.click("a.sort[data-col=value_at_stake]")  # ascending first
    page.wait_for_url("**sort=value_at_stake**")
    page.click("a.sort[data-col=value_at_stake]")  # then descending
    page.wait_for_url("**order=desc**")
    values = [Decimal(v) for v in page.locator("#worklist-table td[data-value]").evaluate_all(
        "cells => cells.map(c => c.dataset.value)")]
    assert values == sorted(values, reverse=True) and len(values) == rows.count()
    assert "owner=" in (page.locator("#csv").get_attribute("href") or "")
    shot(page, "worklist")


def test_account_page_shows_usage_as_progress_bars(page: Any, store: Store) -> None:
    account = store.query("SELECT account_id FROM accounts WHERE usage_limit IS NOT NULL LIMIT 1"
                          ).column(0).to_pylist()[0]
    page.goto(f"/accounts/{account}")
    assert page.locator("progress.limit").count() >= 1
    assert page.locator("#usage-trend").inner_text()
    assert page.locator("progress.health").count() == 5
    assert all_drawn(page) == 1
    assert page.locator("#movements tbody tr").count() > 0
    shot(page, "account")


def test_snooze_an_action_from_the_account_page(page: Any, store: Store) -> None:
    from upcurve.workspace import actions as wa

    action = next(a for a in wa.list_actions(store, status=["open"], play="usage_alert") if not a.held_out)
    page.goto(f"/accounts/{action.account_id}")
    row = page.locator(f'#play-actions tr[data-action="{action.action_id}"]')
    assert row.get_attribute("data-status") == "open"
    row.locator("details.snooze summary").click()
    until = (dt.date.today() + dt.timedelta(days=14)).isoformat()
    row.locator("input[name=until]").fill(until)
    row.locator("input[name=note]").fill("waiting for their budget")
    row.locator("form.snooze-form button").click()
    page.wait_for_url(f"**/accounts/{action.account_id}")
    row = page.locator(f'#play-actions tr[data-action="{action.action_id}"]')
    assert row.get_attribute("data-status") == "snoozed"
    assert f"until {until}: waiting for their budget" in row.locator("td.status").inner_text()
    assert wa.find_action(store, action.action_id).status == "snoozed"
    shot(page, "account-plays")


def test_the_plays_page_draws_the_levers_and_the_funnel(page: Any) -> None:
    page.click("header nav a[href^='/plays']")
    page.wait_for_url("**/plays")
    assert all_drawn(page) == 2
    assert page.locator("#chart-levers g.trace.bars g.point path").count() > 0
    assert page.locator("#chart-funnel .main-svg").count() > 0
    assert page.locator("#uplift-table tbody tr").count() > 0
    shot(page, "plays")


@pytest.mark.parametrize("path", ["/segments", "/runs", "/model"])
def test_other_pages_render(page: Any, path: str) -> None:
    page.goto(path)
    assert page.locator("h1").inner_text()
    shot(page, path.strip("/"))


def test_the_report_opens_offline_and_draws_every_chart(browser: Any, store: Store, tmp_path: Path) -> None:
    report = write_report(store, tmp_path / "report.html")
    context = browser.new_context(offline=True)
    requested: list[str] = []
    context.route("**/*", lambda route: (requested.append(route.request.url), route.continue_()
                                         if route.request.url.startswith("file:") else route.abort()))
    tab = context.new_page()
    tab.goto(report.as_uri())
    assert all_drawn(tab) == 7  # the coupon chart too: the simulated company's enterprise coupon
    assert tab.locator(".main-svg").count() >= 7 and tab.locator("#chart-coupons .main-svg").count() > 0
    assert all(url.startswith("file:") for url in requested)
    tab.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    context.close()


def test_a_product_bar_lists_the_accounts_behind_it(page: Any) -> None:
    all_drawn(page)
    bars = page.locator("#chart-by_product g.trace.bars").first.locator("g.point path")  # expansion, largest first
    assert bars.count() > 0
    bars.first.scroll_into_view_if_needed()
    box = bars.first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("document.querySelector('#drill-result h3') && "
                           "document.querySelector('#drill-result h3').textContent.startsWith('product ')")
    assert "expansion" in page.locator("#drill-result h3").inner_text()
    assert page.locator("#drill-result tbody tr[data-account] a").count() > 0
    shot(page, "overview-product-drill")
