"""The Stripe source against a local server that answers as Stripe's API documents: paging, an invoice's lines
beyond the ten it embeds, rate limits and server errors retried, a refused key; and, end to end, a Stripe account
imported, run and its movements checked against a hand calculation."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from tests.conftest import run_folder
from tests.sources import fake_stripe as fs
from upcurve.cli import app
from upcurve.cli_support import console, err
from upcurve.folders import MANIFEST, OutputError
from upcurve.sources.stripe import StripeError, read_stripe, stripe_tables
from upcurve.usecases import import_stripe

D = Decimal
MONTHS = ("2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01", "2024-06-01", "2024-07-01")


def _company() -> fs.FakeStripe:
    """Five customers over the first half of 2024 (see test_a_stripe_account_end_to_end for the hand calculation)."""
    f = fs.FakeStripe()
    f.add("products", fs.product("prod_core", "Core"))
    f.add("products", fs.product("prod_api", "API", unit_label="calls"))
    f.add("prices", fs.price("price_team", "prod_core", 2000, nickname="Team"))
    f.add("prices", fs.price("price_biz", "prod_core", 4000, nickname="Business"))
    f.add("prices", fs.price("price_team_jpy", "prod_core", 3000, currency="jpy", nickname="Team"))
    f.add("prices", fs.price("price_api", "prod_api", None, metered=True, unit_amount_decimal="0.2"))
    f.add("prices", fs.price("price_setup", "prod_core", 50000, interval=None, nickname="Onboarding"))
    # Stripe allows 12 decimal places of the minor unit
    f.add("prices", fs.price("price_fine", "prod_api", None, metered=True, unit_amount_decimal="0.123456789012"))
    for cid, name, cur in (("cus_A", "Acme", "usd"), ("cus_B", "Beta", "usd"), ("cus_C", "Cato", "usd"),
                           ("cus_D", "Dyna KK", "jpy"), ("cus_E", "Echo", "usd")):
        f.add("customers", fs.customer(cid, name, currency=cur, metadata={"segment": "smb"}))
    n = iter(range(1000))

    def invoice(cid: str, day: str, lines: list[dict], currency: str = "usd", status: str = "paid",
                discounts: list[str] | None = None) -> None:
        f.add("invoices", fs.invoice(f"in_{next(n)}", cid, lines, created=day, currency=currency, status=status,
                                     discounts=discounts))

    # A: Team, 5 seats, then 8 from March; API calls from February ($20 a month)
    for i, (start, end) in enumerate(itertools.pairwise(MONTHS)):
        seats = 5 if start < "2024-03-01" else 8
        lines = [fs.line(f"il_a{i}", "price_team", 2000 * seats, start, end, quantity=seats)]
        if start >= "2024-02-01":
            lines.append(fs.line(f"il_a{i}u", "price_api", 2000, start, end, quantity=10000))
        invoice("cus_A", start, lines)
    # B: Team, 10 seats; on 16 April to Business: a credit and a charge for the 15 days left of April's 30
    for i, (start, end) in enumerate(list(itertools.pairwise(MONTHS))[:4]):
        invoice("cus_B", start, [fs.line(f"il_b{i}", "price_team", 20000, start, end, quantity=10)])
    invoice("cus_B", "2024-05-01", [
        fs.line("il_b_credit", "price_team", -10000, "2024-04-16", "2024-05-01", quantity=10, proration=True),
        fs.line("il_b_charge", "price_biz", 20000, "2024-04-16", "2024-05-01", quantity=10, proration=True),
        fs.line("il_b4", "price_biz", 40000, "2024-05-01", "2024-06-01", quantity=10)])
    invoice("cus_B", "2024-06-01", [fs.line("il_b5", "price_biz", 40000, "2024-06-01", "2024-07-01", quantity=10)])
    # C: Business, 2 seats at 25% off ($80 − $20) plus 10% tax on top; from June, Team at $40 without the coupon
    launch = f.add("coupons", fs.coupon("co_launch", "Launch 25%", percent_off=25))
    f.discounts["di_c"] = fs.discount("di_c", launch, "cus_C", subscription="sub_c")
    for i, (start, end) in enumerate(list(itertools.pairwise(MONTHS))[:5]):
        invoice("cus_C", start, [fs.line(f"il_c{i}", "price_biz", 8000, start, end, quantity=2, discounts=2000,
                                         tax=600, discount="di_c")], discounts=["di_c"])
    invoice("cus_C", "2024-06-01", [fs.line("il_c5", "price_team", 4000, "2024-06-01", "2024-07-01", quantity=2)])
    # C's first invoice also carries the one-time onboarding fee
    f.objects["invoices"][-6]["lines"]["data"].append(
        fs.line("il_c_setup", "price_setup", 50000, "2024-01-01", "2024-01-01", quantity=1, subscription=None))
    # D: yen, 3 seats at ¥3,000 with tax included (¥818 of ¥9,000); a free trial from 20 December, paid from 3 Jan
    invoice("cus_D", "2023-12-20", [fs.line("il_d_trial", "price_team_jpy", 0, "2023-12-20", "2024-01-03",
                                            quantity=3, currency="jpy")], currency="jpy")
    for i, month in enumerate(range(1, 7)):
        start, end = f"2024-{month:02d}-03", f"2024-{month + 1:02d}-03"
        invoice("cus_D", start, [fs.line(f"il_d{i}", "price_team_jpy", 9000, start, end, quantity=3,
                                         currency="jpy", tax=818, tax_inclusive=True)], currency="jpy")
    # E: Team, 3 seats, cancelled on 10 May at the end of its period (1 June); $30 refunded in March
    for i, (start, end) in enumerate(list(itertools.pairwise(MONTHS))[:5]):
        invoice("cus_E", start, [fs.line(f"il_e{i}", "price_team", 6000, start, end, quantity=3)])
    f.add("credit_notes", fs.credit_note("cn_e1", "cus_E", "in_x", 3000, created="2024-03-05"))
    f.add("credit_notes", {**fs.credit_note("cn_void", "cus_E", "in_x", 9900, created="2024-03-06"),
                           "status": "void"})  # a voided credit note gave nothing back
    # a customer since deleted: gone from the customer list, its invoice remains (a $10 one-time charge)
    f.add("invoices", {**fs.invoice("in_gone", "cus_GONE", [
        fs.line("il_gone", None, 1000, "2024-01-10", "2024-01-10", subscription=None)], created="2024-01-10"),
        "customer_name": "Gone Ltd"})
    # a draft and a void invoice are not revenue
    invoice("cus_E", "2024-06-01", [fs.line("il_e_draft", "price_team", 6000, "2024-06-01", "2024-07-01")],
            status="draft")
    invoice("cus_A", "2024-06-02", [fs.line("il_a_void", "price_team", 999900, "2024-06-01", "2024-07-01")],
            status="void")
    f.add("subscriptions", fs.subscription("sub_e", "cus_E", "price_team", start="2024-01-01",
                                           period_end="2024-06-01", cancel_at_period_end=True,
                                           canceled_at="2024-05-10", reason="cancellation_requested"))
    f.add("subscriptions", fs.subscription("sub_d", "cus_D", "price_team_jpy", start="2023-12-20",
                                           period_end="2024-07-03", trial_end="2024-01-03"))
    return f


@pytest.fixture
def stripe_api() -> Iterator[fs.FakeStripe]:
    yield from fs.serve(_company())


def _no_sleep(_seconds: float) -> None:
    return


def test_every_list_is_paged_and_an_invoice_s_lines_beyond_ten_are_read() -> None:
    fake = fs.FakeStripe()
    for i in range(230):
        fake.add("customers", fs.customer(f"cus_{i:03d}", f"Customer {i}"))
    fake.add("products", fs.product("prod_core", "Core"))
    fake.add("prices", fs.price("price_team", "prod_core", 1000))
    lines = [fs.line(f"il_{i:02d}", "price_team", 100 * (i + 1), "2024-01-01", "2024-02-01") for i in range(25)]
    fake.add("invoices", fs.invoice("in_big", "cus_000", lines, created="2024-01-01"))
    for served in fs.serve(fake):
        account = read_stripe(fs.KEY, api_base=served.url, sleep=_no_sleep)
        assert len(account.customers) == 230
        assert [c["id"] for c in account.customers] == [f"cus_{i:03d}" for i in range(230)]
        customer_pages = [r for r in served.requests if r.startswith("GET /v1/customers")]
        assert len(customer_pages) == 3 and "starting_after=cus_099" in customer_pages[1]
        [big] = account.invoices
        assert [line["id"] for line in big["lines"]["data"]] == [f"il_{i:02d}" for i in range(25)]
        assert any(r.startswith("GET /v1/invoices/in_big/lines?") and "starting_after=il_09" in r
                   for r in served.requests)
        tables = stripe_tables(account)
        assert tables["invoice_lines"].num_rows == 25
        assert sum(tables["invoice_lines"]["amount"].to_pylist()) == D("325.00")  # 1 + 2 + … + 25 dollars


def test_a_rate_limit_and_a_server_error_are_retried() -> None:
    fake = _company()
    fake.fail_once("/v1/invoices", 429)
    fake.fail_once("/v1/customers", 500)
    slept: list[float] = []
    for served in fs.serve(fake):
        account = read_stripe(fs.KEY, api_base=served.url, sleep=slept.append)
        assert len(account.customers) == 5 and len(account.invoices) == 31
        assert slept == [0.5]  # the 429, backed off once; the 500 retried by Stripe's library
        assert sum(r.startswith("GET /v1/customers") for r in served.requests) == 2


def test_a_refused_key_stops_with_stripe_s_message(stripe_api: fs.FakeStripe, tmp_path: Path) -> None:
    with pytest.raises(StripeError, match="Stripe refused the API key: Expired API Key"):
        read_stripe(fs.EXPIRED, api_base=stripe_api.url, sleep=_no_sleep)
    with pytest.raises(StripeError, match="Invalid API Key"):
        import_stripe(tmp_path / "out", api_key="sk_test_wrong", api_base=stripe_api.url)
    assert not (tmp_path / "out").exists()


def test_missing_fields_are_named_and_nothing_is_written(stripe_api: fs.FakeStripe, tmp_path: Path) -> None:
    del stripe_api.objects["invoices"][0]["customer"]
    stripe_api.objects["invoices"][1]["lines"]["data"][0]["pricing"]["price_details"]["price"] = "price_gone"
    with pytest.raises(StripeError) as caught:
        import_stripe(tmp_path / "out", api_key=fs.KEY, api_base=stripe_api.url)
    message = str(caught.value)
    assert "invoice in_0: customer is missing" in message
    assert "invoice line il_a1: its price price_gone is not among the prices read" in message
    assert "nothing written" in message and not (tmp_path / "out").exists()


def test_a_stripe_account_end_to_end(stripe_api: fs.FakeStripe, tmp_path: Path) -> None:
    """By hand, in USD (¥ at 0.0067). January: new A 100, B 200, C 60 (80 less the 25% coupon; the 10% tax on top
    is not revenue), D ¥8,182 (9,000 less the ¥818 tax included) = 54.82, E 60; the trial's ¥0 in December is no
    MRR, so D is new in January. February: A starts paying for API calls, another product: +20 (cross-sell).
    March: A 5 → 8 seats, +60 (seat). April: B moves to Business on the 16th: 200 − 200 (the credit, 15 of 30
    days) + 400 (the charge) = 400, +200 (tier). June: C from Business at 60 to Team at 40, −20 (tier); E's
    cancellation at the end of May: churn −60. The $30 refund is services revenue in March, −30; the $500
    onboarding fee and a deleted customer's $10 +510 in January; drafts, void invoices and a void credit note are
    left out."""
    result = import_stripe(tmp_path / "data", api_key=fs.KEY, api_base=stripe_api.url)
    # lines: A 6 + 5 API, B 4 + 3 + 1, C 6 + the fee, D the trial + 6, E 5 + the refund (not the void one), the
    # deleted customer's charge; plans: the 5 recurring prices; accounts: 5 listed and the deleted one
    assert result.rows == {"accounts": 6, "plans": 5, "invoice_lines": 40, "subscriptions": 2}
    errors = [p for p in result.validation.errors]
    assert [(p.file, p.column) for p in errors] == [("invoice_lines.csv", "currency")]  # JPY needs its rates
    lines = {r["line_id"]: r for r in pacsv.read_csv(result.out_dir / "invoice_lines.csv").to_pylist()}
    assert D(str(lines["il_c0"]["amount"])) == D("60") and D(str(lines["il_d0"]["amount"])) == D("8182")
    # the coupon by name, and what it took off
    assert (lines["il_c0"]["coupon"], D(str(lines["il_c0"]["discount"]))) == ("Launch 25%", D("20"))
    assert (lines["il_c5"]["coupon"] or None, lines["il_c5"]["discount"]) == (None, None)  # empty in the CSV
    assert lines["il_b_credit"]["proration"] is True and lines["il_c_setup"]["kind"] == "one_time"
    assert str(lines["il_c_setup"]["period_end"]) == "2024-01-02"
    assert "il_e_draft" not in lines and "il_a_void" not in lines
    plans = {r["plan_id"]: r for r in pacsv.read_csv(result.out_dir / "plans.csv").to_pylist()}
    assert (plans["price_team"]["tier_rank"], plans["price_biz"]["tier_rank"]) == (1, 2)
    assert plans["price_api"]["pricing"] == "usage" and plans["price_api"]["usage_metric"] == "calls"
    assert D(str(plans["price_api"]["unit_price"])) == D("0.002") and plans["price_team_jpy"]["unit_price"] == 3000
    assert D(str(plans["price_fine"]["unit_price"])) == D("0.00123456789012")
    accounts = {r["account_id"]: r for r in pacsv.read_csv(result.out_dir / "accounts.csv").to_pylist()}
    assert accounts["cus_GONE"]["name"] == "Gone Ltd"
    assert "cn_void" not in lines
    subs = {r["subscription_id"]: r for r in pacsv.read_csv(result.out_dir / "subscriptions.csv").to_pylist()}
    assert (str(subs["sub_e"]["cancel_at"]), str(subs["sub_e"]["canceled_at"])) == ("2024-06-01", "2024-05-10")
    assert subs["sub_e"]["cancel_reason"] == "cancellation_requested" and str(subs["sub_d"]["trial_end"]) == \
        "2024-01-03"

    data = tmp_path / "with_rates"  # the user adds the rates of the yen, as validate asks
    shutil.copytree(result.out_dir, data)
    (data / "fx_rates.csv").write_text("month,currency,rate\n" + "".join(
        f"2023-{m:02d},JPY,0.0067\n" for m in (12,)) + "".join(f"2024-{m:02d},JPY,0.0067\n" for m in range(1, 7)))
    run = run_folder(data, "2024-06-30")
    movements = sorted((r["month"], r["account_id"], r["type"], r["source"], r["amount"])
                       for r in run.tables["movements"].to_pylist())
    assert movements == sorted([
        ("2024-01", "cus_A", "new", None, D("100.00")), ("2024-01", "cus_B", "new", None, D("200.00")),
        ("2024-01", "cus_C", "new", None, D("60.00")), ("2024-01", "cus_D", "new", None, D("54.82")),
        ("2024-01", "cus_E", "new", None, D("60.00")),
        ("2024-02", "cus_A", "expansion", "cross_sell", D("20.00")),
        ("2024-03", "cus_A", "expansion", "seat", D("60.00")),
        ("2024-04", "cus_B", "expansion", "tier", D("200.00")),
        ("2024-06", "cus_C", "contraction", "tier", D("-20.00")),
        ("2024-06", "cus_E", "churn", None, D("-60.00")),
    ])
    metrics = {r["month"]: r for r in run.tables["metrics"].to_pylist()}
    assert [metrics[f"2024-{m:02d}"]["mrr"] for m in range(1, 7)] == [
        D("474.82"), D("494.82"), D("554.82"), D("754.82"), D("754.82"), D("674.82")]
    assert metrics["2024-03"]["services_revenue"] == D("-30.00")
    assert metrics["2024-01"]["services_revenue"] == D("510.00")  # the onboarding fee and the deleted customer's


def test_the_command_imports_reports_the_rows_and_the_problems(stripe_api: fs.FakeStripe, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", fs.KEY)
    monkeypatch.setattr(console, "width", 200)
    monkeypatch.setattr(err, "width", 200)
    out = tmp_path / "data"
    result = CliRunner().invoke(app, ["import", "stripe", "--out", str(out), "--api-base", stripe_api.url])
    assert result.exit_code == 0, result.output
    assert "Imported from Stripe" in result.output and "invoice_lines" in result.output
    assert "unknown currency" in result.output  # the yen needs its rates: said, with the fix
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["kind"] == "import" and manifest["source"] == "stripe"
    # a folder upcurve did not write is never replaced
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    refused = CliRunner().invoke(app, ["import", "stripe", "--out", str(theirs), "--api-base", stripe_api.url])
    assert refused.exit_code != 0 and (theirs / "notes.txt").read_text() == "mine"
    with pytest.raises(OutputError):
        import_stripe(theirs, api_key=fs.KEY, api_base=stripe_api.url)
    monkeypatch.delenv("STRIPE_API_KEY")
    missing = CliRunner().invoke(app, ["import", "stripe", "--out", str(tmp_path / "x"), "--api-base",
                                       stripe_api.url])
    assert missing.exit_code == 2 and "STRIPE_API_KEY" in missing.output


def test_run_reads_the_stripe_account_directly(stripe_api: fs.FakeStripe, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``upcurve run stripe://`` imports into a folder it keeps, checks it, and runs on it; the yen's missing rates
    stop it, named, before a run."""
    monkeypatch.setenv("STRIPE_API_KEY", fs.KEY)
    monkeypatch.setenv("STRIPE_API_BASE", stripe_api.url)
    monkeypatch.setattr(console, "width", 200)
    monkeypatch.setattr(err, "width", 200)
    monkeypatch.chdir(tmp_path)
    args = ["run", "stripe://", "--workspace", str(tmp_path / "ws"), "--as-of", "2024-06-30"]
    stopped = CliRunner().invoke(app, args)
    assert stopped.exit_code == 2 and "unknown currency" in stopped.output
    assert (tmp_path / "upcurve-imports" / "stripe" / "invoice_lines.csv").is_file()
    assert not (tmp_path / "ws").exists()
    # without the yen customer (its invoices voided, the customer deleted), the account runs: the next run reads
    # only those changes
    for invoice in [i for i in stripe_api.objects["invoices"] if i["customer"] == "cus_D"]:
        stripe_api.change("invoices", {**invoice, "status": "void"}, "invoice.voided")
    stripe_api.delete_customer("cus_D")
    ran = CliRunner().invoke(app, args)
    assert ran.exit_code == 0, ran.output
    assert f"Imported the Stripe account into {tmp_path / 'upcurve-imports' / 'stripe'}" in ran.output
    manifest = json.loads((tmp_path / "upcurve-imports" / "stripe" / MANIFEST).read_text())
    assert manifest["read"] == "sync" and manifest["changed"] == 8  # 7 invoices and the customer
    assert "kept in the workspace" in ran.output


def _sorted_rows(folder: Path, name: str) -> list[dict]:
    table = pacsv.read_csv(folder / f"{name}.csv", convert_options=pacsv.ConvertOptions(
        column_types={"account_id": "string"}))
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


def test_a_second_import_reads_only_what_changed_and_equals_a_full_read(stripe_api: fs.FakeStripe,
                                                                        tmp_path: Path) -> None:
    """Between two imports: a new invoice, an invoice voided, a customer renamed, another deleted, a price added,
    an invoice of 25 lines. The sync reads the events and those objects again, not the account; its tables are a
    full read's, row for row."""
    data = tmp_path / "data"
    first = import_stripe(data, api_key=fs.KEY, api_base=stripe_api.url)
    assert first.mode == "full" and first.synced_to is not None
    shutil.copytree(data, tmp_path / "reread")
    stripe_api.requests.clear()

    stripe_api.change("prices", fs.price("price_ent", "prod_core", 9000, nickname="Enterprise"), "price.created")
    stripe_api.change("invoices", fs.invoice("in_new", "cus_A", [fs.line(
        f"il_new{i:02d}", "price_ent", 100, "2024-07-01", "2024-08-01") for i in range(25)], created="2024-07-01"),
        "invoice.finalized")
    voided = next(i for i in stripe_api.objects["invoices"] if i["id"] == "in_0")
    stripe_api.change("invoices", {**voided, "status": "void"}, "invoice.voided")
    renamed = next(c for c in stripe_api.objects["customers"] if c["id"] == "cus_B")
    stripe_api.change("customers", {**renamed, "name": "Beta Group"}, "customer.updated")
    stripe_api.delete_customer("cus_C")
    # an event's own copy is rendered at the account's version: the sync must read the object again
    stripe_api.objects["events"][0]["data"]["object"]["name"] = "stale copy"

    synced = import_stripe(data, api_key=fs.KEY, api_base=stripe_api.url)
    assert synced.mode == "sync" and synced.changed == 5
    listed = [r.split("?")[0] for r in stripe_api.requests]
    assert "GET /v1/customers" not in listed and "GET /v1/invoices" not in listed  # no list read again
    assert {"GET /v1/events", "GET /v1/invoices/in_new", "GET /v1/invoices/in_new/lines", "GET /v1/invoices/in_0",
            "GET /v1/customers/cus_B", "GET /v1/customers/cus_C", "GET /v1/prices/price_ent"} <= set(listed)
    lines = {r["line_id"] for r in _sorted_rows(data, "invoice_lines")}
    assert {f"il_new{i:02d}" for i in range(25)} <= lines and "il_a0" not in lines  # in_0 voided

    reread = import_stripe(tmp_path / "reread", api_key=fs.KEY, api_base=stripe_api.url, full=True)
    assert reread.mode == "full"
    for name in ("accounts", "plans", "invoice_lines", "subscriptions"):
        assert _sorted_rows(data, name) == _sorted_rows(reread.out_dir, name), name
    names = {r["account_id"]: r["name"] for r in _sorted_rows(data, "accounts")}
    # deleted, cus_C is still an account through its invoices; the name it had is kept where Stripe has none now
    assert names["cus_B"] == "Beta Group" and names["cus_C"] == "Cato"
    new_folder = import_stripe(tmp_path / "new", api_key=fs.KEY, api_base=stripe_api.url)
    for name in ("plans", "invoice_lines", "subscriptions"):
        assert _sorted_rows(data, name) == _sorted_rows(new_folder.out_dir, name), name

    stripe_api.requests.clear()
    again = import_stripe(data, api_key=fs.KEY, api_base=stripe_api.url)
    # the events of the cursor's own second are read again (never one missed), and the conversions since the
    # cursor; nothing else
    reread_objects = (("customers", "cus_B"), ("customers", "cus_C"), ("invoices", "in_0"), ("invoices", "in_new"),
                      ("invoices", "in_new/lines"), ("prices", "price_ent"))
    assert again.mode == "sync" and {r.split("?")[0] for r in stripe_api.requests} <= {
        "GET /v1/events", "GET /v1/balance_transactions", *(f"GET /v1/{k}/{i}" for k, i in reread_objects)}


def test_an_old_cursor_or_full_reads_the_whole_account(stripe_api: fs.FakeStripe, tmp_path: Path) -> None:
    import time

    data = tmp_path / "data"
    import_stripe(data, api_key=fs.KEY, api_base=stripe_api.url)
    said: list[str] = []
    month_later = time.time() + 31 * 86400  # Stripe keeps events for 30 days
    stale = import_stripe(data, api_key=fs.KEY, api_base=stripe_api.url, now=month_later, say=said.append)
    assert stale.mode == "full" and any("too old to sync" in s for s in said)
    assert import_stripe(data, api_key=fs.KEY, api_base=stripe_api.url, full=True).mode == "full"


def test_a_billing_import_keeps_the_folder_s_other_tables_and_crm_facts(stripe_api: fs.FakeStripe,
                                                                        tmp_path: Path) -> None:
    """Events and the CRM's tables written into an import survive the next Stripe import, full or synced, and an
    owner the CRM gave an account stays when Stripe has none."""
    from upcurve.usecases import _replace_tables

    data = tmp_path / "data"
    import_stripe(data, api_key=fs.KEY, api_base=stripe_api.url)
    accounts = pacsv.read_csv(data / "accounts.csv").to_pylist()
    for row in accounts:
        row["owner"] = "Dana" if row["account_id"] == "cus_A" else row["owner"]
        row["health_tier"] = "gold"  # a column Stripe never writes
    import pyarrow as pa
    renewals = pa.table({"account_id": ["cus_A"], "renewal_date": ["2024-12-31"]})
    _replace_tables(data, {"accounts": pa.Table.from_pylist(accounts), "renewals": renewals}, inputs=[],
                    info={"crm": {"source": "hubspot"}})
    for full in (False, True):
        import_stripe(data, api_key=fs.KEY, api_base=stripe_api.url, full=full)
        assert (data / "renewals.csv").is_file()
        kept = {r["account_id"]: r for r in pacsv.read_csv(data / "accounts.csv").to_pylist()}
        assert kept["cus_A"]["owner"] == "Dana" and kept["cus_B"]["health_tier"] == "gold"
        assert json.loads((data / MANIFEST).read_text())["crm"] == {"source": "hubspot"}


def test_exchange_rates_given_once_are_kept_by_every_later_import(stripe_api: fs.FakeStripe, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rates = tmp_path / "rates.csv"
    months = ["2023-12", *(f"2024-{m:02d}" for m in range(1, 7))]
    rates.write_text("month,currency,rate\n" + "".join(f"{month},JPY,0.0067\n" for month in months))
    data = tmp_path / "data"
    first = import_stripe(data, api_key=fs.KEY, api_base=stripe_api.url, fx_rates=rates)
    assert not first.validation.errors and (data / "fx_rates.csv").read_bytes() == rates.read_bytes()
    synced = import_stripe(data, api_key=fs.KEY, api_base=stripe_api.url)
    assert synced.mode == "sync" and not synced.validation.errors and (data / "fx_rates.csv").is_file()
    monkeypatch.setenv("STRIPE_API_KEY", fs.KEY)
    missing = CliRunner().invoke(app, ["import", "stripe", "--out", str(data), "--api-base", stripe_api.url,
                                       "--fx-rates", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "nope.csv" in "".join(missing.output.split())


def test_daily_rates_are_kept_day_by_day(tmp_path: Path) -> None:
    from upcurve.errors import ContractError
    from upcurve.sources.fx import daily_rates

    daily = tmp_path / "ecb.csv"
    daily.write_text("date,currency,rate\n2024-01-15,JPY,0.0069\n2024-01-31T16:00:00,JPY,0.0068\n"
                     "2024-01-31T09:00:00,JPY,0.0066\n2024-01-02,JPY,0.0070\n2024-02-09,jpy,0.0067\n"
                     "2024-02-09,EUR,1.08\n2024-02-09,EUR,1.09\n")
    rates = daily_rates(daily)
    assert rates is not None and rates.to_pylist() == [
        {"day": "2024-01-02", "currency": "JPY", "rate": "0.0070"},
        {"day": "2024-01-15", "currency": "JPY", "rate": "0.0069"},
        {"day": "2024-01-31", "currency": "JPY", "rate": "0.0068"},  # the day's later time, not the later line
        {"day": "2024-02-09", "currency": "EUR", "rate": "1.09"},  # the same day twice: the later line
        {"day": "2024-02-09", "currency": "JPY", "rate": "0.0067"}]
    monthly = tmp_path / "monthly.csv"
    monthly.write_text("month,currency,rate\n2024-01,JPY,0.0068\n")
    assert daily_rates(monthly) is None  # the contract's own table, taken as it is
    broken = tmp_path / "broken.csv"
    broken.write_text("day,currency,rate\n2024-13-01,JPY,0.0068\n2024-01-02,,0.1\n2024-01-03,JPY,-1\n"
                      "2024-01-04,JPY,abc\n")
    with pytest.raises(ContractError) as caught:
        daily_rates(broken)
    found = {(p.column, p.rows, p.values) for p in caught.value.problems}
    assert found == {("day", (2,), ("2024-13-01",)), ("currency", (3,), ("",)),
                     ("rate", (4, 5), ("-1", "abc"))}


def test_an_import_with_daily_rates_meets_the_contract(stripe_api: fs.FakeStripe, tmp_path: Path) -> None:
    daily = tmp_path / "daily.csv"
    days = ["2023-12-29", *(f"2024-{m:02d}-28" for m in range(1, 7))]
    daily.write_text("day,currency,rate\n" + "".join(f"{d},JPY,0.0067\n" for d in days))
    result = import_stripe(tmp_path / "data", api_key=fs.KEY, api_base=stripe_api.url, fx_rates=daily)
    assert not result.validation.errors
    written = pacsv.read_csv(result.out_dir / "fx_rates.csv").to_pylist()
    assert [r["day"].isoformat() for r in written] == days
    manifest = json.loads((result.out_dir / MANIFEST).read_text())
    assert "daily" in manifest["fx_rates"]


def _euro_company() -> fs.FakeStripe:
    """One customer billed €100 a month, January to March 2024, its invoices paid by charges Stripe converted to
    US dollars (the settlement currency): at 1.10 in January, 1.08 and then 1.09 in February (two charges), 1.12 in
    March; and a US customer's $50 charge, settled as it was (no rate)."""
    f = fs.FakeStripe()
    f.add("products", fs.product("prod_core", "Core"))
    f.add("prices", fs.price("price_eur", "prod_core", 10000, currency="eur", nickname="Team"))
    f.add("prices", fs.price("price_usd", "prod_core", 5000, nickname="Team"))
    f.add("customers", fs.customer("cus_F", "Fjord GmbH", currency="eur"))
    f.add("customers", fs.customer("cus_U", "Union Inc"))
    months = [("2024-01-01", "2024-02-01", [1.10]), ("2024-02-01", "2024-03-01", [1.08, 1.09]),
              ("2024-03-01", "2024-04-01", [1.12])]
    for i, (start, end, rates) in enumerate(months):
        f.add("invoices", fs.invoice(f"in_f{i}", "cus_F", [fs.line(f"il_f{i}", "price_eur", 10000, start, end,
                                                                    currency="eur")], created=start, currency="eur"))
        f.add("invoices", fs.invoice(f"in_u{i}", "cus_U", [fs.line(f"il_u{i}", "price_usd", 5000, start, end)],
                                     created=start))
        for k, rate in enumerate(rates):
            paid = f.add("charges", fs.charge(f"ch_f{i}{k}", "cus_F", 5000 if len(rates) > 1 else 10000,
                                              created=f"{start[:8]}{1 + 14 * k:02d}", currency="eur"))
            f.add("balance_transactions", fs.balance_transaction(paid, exchange_rate=rate))
        usd = f.add("charges", fs.charge(f"ch_u{i}", "cus_U", 5000, created=start))
        f.add("balance_transactions", fs.balance_transaction(usd, exchange_rate=None))
    return f


def test_stripe_s_own_exchange_rates_become_the_folder_s_daily_rates(tmp_path: Path) -> None:
    """Each day's rate is the one Stripe converted the day's last charge at, quoted in the settlement currency; a
    month's MRR is measured on its last day, at the latest rate by then: €100 × 1.10, × 1.09 (February 15th's, not
    February 1st's 1.08) and × 1.12, plus the US customer's $50."""
    for api in fs.serve(_euro_company()):
        result = import_stripe(tmp_path / "data", api_key=fs.KEY, api_base=api.url)
        assert any("balance_transactions" in r and "expand" in r for r in api.requests)
    assert result.validation.errors == []
    rates = pacsv.read_csv(result.out_dir / "fx_rates.csv").to_pylist()
    assert [(r["day"].isoformat(), r["currency"], D(str(r["rate"]))) for r in rates] == [
        ("2024-01-01", "EUR", D("1.1")), ("2024-02-01", "EUR", D("1.08")), ("2024-02-15", "EUR", D("1.09")),
        ("2024-03-01", "EUR", D("1.12"))]
    manifest = json.loads((result.out_dir / MANIFEST).read_text())
    assert "Stripe" in manifest["fx_rates"] and "USD" in manifest["fx_rates"]
    metrics = {r["month"]: r["mrr"] for r in run_folder(result.out_dir, "2024-03-31").tables["metrics"].to_pylist()}
    assert [metrics[m] for m in ("2024-01", "2024-02", "2024-03")] == [D("160.00"), D("159.00"), D("162.00")]


def test_rates_the_user_gives_win_over_stripe_s_and_are_kept(tmp_path: Path) -> None:
    rates = tmp_path / "ecb.csv"
    rates.write_text("month,currency,rate\n2024-01,EUR,1.09\n2024-02,EUR,1.08\n2024-03,EUR,1.08\n")
    company = _euro_company()
    for api in fs.serve(company):
        first = import_stripe(tmp_path / "data", api_key=fs.KEY, api_base=api.url, fx_rates=rates)
        assert (first.out_dir / "fx_rates.csv").read_bytes() == rates.read_bytes()
        paid = company.add("charges", fs.charge("ch_late", "cus_F", 10000, created="2024-03-20", currency="eur"))
        company.add("balance_transactions", fs.balance_transaction(paid, exchange_rate=1.2))
        company.emit("charge.succeeded", paid)
        again = import_stripe(tmp_path / "data", api_key=fs.KEY, api_base=api.url)
    assert again.mode == "sync" and (again.out_dir / "fx_rates.csv").read_bytes() == rates.read_bytes()
    assert json.loads((again.out_dir / MANIFEST).read_text())["fx_rates"] == str(rates)


def test_a_sync_adds_the_conversions_since_its_cursor(tmp_path: Path) -> None:
    company = _euro_company()
    for api in fs.serve(company):
        import_stripe(tmp_path / "data", api_key=fs.KEY, api_base=api.url)
        paid = company.add("charges", fs.charge("ch_late", "cus_F", 10000, created="2024-03-20", currency="eur"))
        company.add("balance_transactions", fs.balance_transaction(paid, exchange_rate=1.2,
                                                                   created=None))
        company.objects["balance_transactions"][-1]["created"] = int(time.time())  # made after the first import
        company.emit("charge.succeeded", paid)
        again = import_stripe(tmp_path / "data", api_key=fs.KEY, api_base=api.url)
    assert again.mode == "sync"
    rates = {(r["day"].isoformat(), r["currency"]): D(str(r["rate"]))
             for r in pacsv.read_csv(again.out_dir / "fx_rates.csv").to_pylist()}
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert rates[(today, "EUR")] == D("1.2") and rates[("2024-03-01", "EUR")] == D("1.12")


def test_each_discounted_line_names_its_coupons_as_they_are_named_now(tmp_path: Path) -> None:
    """An invoice-level coupon (a subscription's), a line's own coupon, a line with both, a coupon without a name
    (its id), a coupon since deleted (the name the discount embeds) and, after a sync, a renamed coupon: its new
    name on every line, the old invoices' included. The amounts are net of every discount."""
    fake = fs.FakeStripe()
    fake.add("customers", fs.customer("cus_A", "Acme"))
    fake.add("products", fs.product("prod_core", "Core"))
    fake.add("prices", fs.price("price_team", "prod_core", 1000))
    fake.add("prices", fs.price("price_addon", "prod_core", 500, nickname="Add-on"))
    spring = fake.add("coupons", fs.coupon("co_spring", "Spring 10%", percent_off=10))
    plain = fake.add("coupons", fs.coupon("co_plain", None, amount_off=100))
    gone = fs.coupon("co_gone", "Pilot 50%", percent_off=50)  # deleted since: no longer listed
    fake.discounts.update({
        "di_sub": fs.discount("di_sub", spring, "cus_A", subscription="sub_1"),
        "di_item": fs.discount("di_item", plain, "cus_A"),
        "di_gone": fs.discount("di_gone", gone, "cus_A"),
    })
    both = fs.line("il_both", "price_team", 10000, "2024-01-01", "2024-02-01", quantity=10, line_discounts=["di_item"])
    both["discount_amounts"] = [{"amount": 1000, "discount": "di_sub"}, {"amount": 100, "discount": "di_item"}]
    fake.add("invoices", fs.invoice("in_1", "cus_A", [
        both,
        fs.line("il_sub", "price_addon", 500, "2024-01-01", "2024-02-01", discounts=50, discount="di_sub"),
        fs.line("il_plain", "price_addon", 500, "2024-01-01", "2024-02-01"),
    ], created="2024-01-01", discounts=["di_sub"]))
    # an invoice of 12 lines: the two beyond the ten it embeds are paged, their discounts expanded too
    paged = [fs.line(f"il_p{i:02d}", "price_addon", 500, "2024-02-01", "2024-03-01", discounts=250,
                     discount="di_gone", line_discounts=["di_gone"]) for i in range(12)]
    fake.add("invoices", fs.invoice("in_2", "cus_A", paged, created="2024-02-01"))
    for served in fs.serve(fake):
        result = import_stripe(tmp_path / "data", api_key=fs.KEY, api_base=served.url)
        lines = {r["line_id"]: r for r in pacsv.read_csv(result.out_dir / "invoice_lines.csv").to_pylist()}
        assert (lines["il_both"]["coupon"], D(str(lines["il_both"]["discount"])),
                D(str(lines["il_both"]["amount"]))) == ("Spring 10%, co_plain", D("11"), D("89"))
        assert (lines["il_sub"]["coupon"], D(str(lines["il_sub"]["discount"]))) == ("Spring 10%", D("0.5"))
        assert (lines["il_plain"]["coupon"] or None, lines["il_plain"]["discount"]) == (None, None)
        assert {lines[f"il_p{i:02d}"]["coupon"] for i in range(12)} == {"Pilot 50%"}
        assert any(r.startswith("GET /v1/invoices/in_2/lines?") and "expand" in r for r in served.requests)

        fake.change("coupons", {**spring, "name": "Spring sale"}, "coupon.updated")
        synced = import_stripe(tmp_path / "data", api_key=fs.KEY, api_base=served.url)
        again = {r["line_id"]: r for r in pacsv.read_csv(synced.out_dir / "invoice_lines.csv").to_pylist()}
        assert (again["il_both"]["coupon"], again["il_sub"]["coupon"]) == ("Spring sale, co_plain", "Spring sale")


def test_a_discount_in_later_api_versions_names_its_coupon_by_source() -> None:
    """Later API versions carry a discount's coupon under ``source.coupon`` (an id): read the same."""
    from upcurve.sources.stripe import _coupon_name

    names = {"co_x": "Partner 20%"}
    assert _coupon_name({"id": "di_1", "source": {"type": "coupon", "coupon": "co_x"}}, names) == "Partner 20%"
    assert _coupon_name({"id": "di_2", "source": {"type": "coupon", "coupon": "co_unknown"}}, names) == "co_unknown"
    assert _coupon_name({"id": "di_3", "coupon": {"id": "co_y", "name": "Old name"}}, {"co_y": "New name"}) == \
        "New name"
    assert _coupon_name({"id": "di_4"}, names) == "di_4"


def test_a_change_mid_day_is_measured_by_the_share_stripe_charged(tmp_path: Path) -> None:
    """S: Team, 10 seats at $200 a month, moved to Business ($400) at noon UTC on 14 April. Stripe prorates to the
    second: 16.5 of April's 30 days, a share of 0.55: a credit of −$110.00 and a charge of $220.00. Measured by that
    share they are −$200 and +$400 a month: April's MRR $400, $200 of tier expansion, nothing in May (read as 17
    whole days they would be −$194.12 and +$388.24, April $394.12 and a false $5.88 of expansion in May).
    Q: a quarterly plan ($30 a seat) anchored on the 31st, billed 31 January → 30 April (90 days), a seat added on
    10 March for the 51 days left ($17.00): its share is 51/90, from the period its regular line billed (counted
    back three months from 30 April the period would be 91 days: $10.11 a month, and a false −$0.11 in April)."""
    f = fs.FakeStripe()
    f.add("products", fs.product("prod_core", "Core"))
    f.add("prices", fs.price("price_team", "prod_core", 2000, nickname="Team"))
    f.add("prices", fs.price("price_biz", "prod_core", 4000, nickname="Business"))
    quarterly = fs.price("price_q", "prod_core", 3000, nickname="Team quarterly")
    quarterly["recurring"]["interval_count"] = 3
    f.add("prices", quarterly)
    f.add("customers", fs.customer("cus_S", "Sable"))
    f.add("customers", fs.customer("cus_Q", "Quill"))
    for i, (start, end) in enumerate(itertools.pairwise(["2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01"])):
        f.add("invoices", fs.invoice(f"in_s{i}", "cus_S", [
            fs.line(f"il_s{i}", "price_team", 20000, start, end, quantity=10, subscription="sub_s")], created=start))
    f.add("invoices", fs.invoice("in_s_change", "cus_S", [
        fs.line("il_s_credit", "price_team", -11000, "2024-04-14T12:00:00", "2024-05-01", quantity=10,
                proration=True, subscription="sub_s"),
        fs.line("il_s_charge", "price_biz", 22000, "2024-04-14T12:00:00", "2024-05-01", quantity=10,
                proration=True, subscription="sub_s")], created="2024-04-14T12:00:00"))
    f.add("invoices", fs.invoice("in_s3", "cus_S", [
        fs.line("il_s3", "price_biz", 40000, "2024-05-01", "2024-06-01", quantity=10, subscription="sub_s")],
        created="2024-05-01"))
    f.add("invoices", fs.invoice("in_q0", "cus_Q", [
        fs.line("il_q0", "price_q", 15000, "2024-01-31", "2024-04-30", quantity=5, subscription="sub_q")],
        created="2024-01-31"))
    f.add("invoices", fs.invoice("in_q_seat", "cus_Q", [
        fs.line("il_q_seat", "price_q", 1700, "2024-03-10", "2024-04-30", quantity=1, proration=True,
                subscription="sub_q")], created="2024-03-10"))
    f.add("invoices", fs.invoice("in_q1", "cus_Q", [
        fs.line("il_q1", "price_q", 18000, "2024-04-30", "2024-07-31", quantity=6, subscription="sub_q")],
        created="2024-04-30"))
    for api in fs.serve(f):
        result = import_stripe(tmp_path / "data", api_key=fs.KEY, api_base=api.url)
    assert result.validation.errors == []
    lines = {r["line_id"]: r for r in pacsv.read_csv(result.out_dir / "invoice_lines.csv").to_pylist()}
    assert lines["il_s_credit"]["proration_share"] == pytest.approx(0.55, abs=1e-12)
    assert lines["il_s_charge"]["proration_share"] == pytest.approx(0.55, abs=1e-12)
    assert lines["il_q_seat"]["proration_share"] == pytest.approx(51 / 90, abs=1e-12)
    assert lines["il_s0"]["proration_share"] is None  # a regular line has no share
    run = run_folder(result.out_dir, "2024-05-31")
    moves = sorted((r["month"], r["account_id"], r["type"], r["source"], r["amount"])
                   for r in run.tables["movements"].to_pylist())
    assert moves == [("2024-01", "cus_Q", "new", None, D("50.00")), ("2024-02", "cus_S", "new", None, D("200.00")),
                     ("2024-03", "cus_Q", "expansion", "seat", D("10.00")),
                     ("2024-04", "cus_S", "expansion", "tier", D("200.00"))]
