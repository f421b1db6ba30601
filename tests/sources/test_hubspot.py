"""HubSpot's CSV exports (columns the properties' labels, associations as record ids) added to a data folder:
owners, segments, industries, regions, renewals and tickets, matched on the billing account id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from tests.plays.fake_hubspot import TOKEN, FakeHubSpot, company, deal_or_ticket, owner, serve
from upcurve.cli import app
from upcurve.cli_support import err
from upcurve.errors import ConfigError, ContractError
from upcurve.sources.crm import (
    CrmError,
    HubSpotApiMapping,
    HubSpotMapping,
    hubspot_api_facts,
    hubspot_facts,
    load_hubspot_mapping,
)

MAPPING = HubSpotMapping(account_key="Stripe Customer ID", segment="Customer segment",
                         contract_end="Contract end date", renewal_types=("Renewal", "Existing Business"))


def _export(folder: Path, *, ticket_date: str = "2024-05-02 14:30") -> Path:
    """The three exports as HubSpot names and writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hubspot-crm-exports-all-companies-2024-06-30.csv").write_text(
        "Record ID,Company name,Company owner,Customer segment,Industry,Country/Region,Stripe Customer ID,"
        "Contract end date\n"
        "9001,Acme,Ann Lee,Enterprise,COMPUTER_SOFTWARE,Germany,A0000001,2025-01-31\n"
        "9002,Beta,Bob Ray,SMB,RETAIL,France,A0000002,\n"
        "9003,Prospect Co,Bob Ray,SMB,RETAIL,France,,\n")
    (folder / "hubspot-crm-exports-all-deals-2024-06-30.csv").write_text(
        "Record ID,Deal Name,Deal Stage,Deal Type,Close Date,Amount,Associated Company IDs\n"
        "7001,Acme renewal,Contract sent,Renewal,2024-09-30 00:00,12000,9001\n"
        "7002,Acme new,Closed won,New Business,2023-09-30 10:00,10000,9001\n"
        "7003,Beta + Acme renewal,Closed won,Existing Business,2024-03-31,3000,9002;9001\n"
        "7004,Prospect renewal,Appointment scheduled,Renewal,2024-12-31,500,9003\n")
    (folder / "hubspot-crm-exports-all-tickets-2024-06-30.csv").write_text(
        "Ticket ID,Ticket name,Pipeline,Ticket status,Create date,Priority,Associated Company IDs\n"
        f"8001,Login broken,Support Pipeline,Closed,{ticket_date},HIGH,9001\n"
        "8002,Invoice question,Support Pipeline,New,2024-05-03 08:00,LOW,9002\n"
        "8003,Demo request,Support Pipeline,New,2024-05-04 08:00,LOW,9003\n")
    (folder / "hubspot-crm-exports-all-meetings-2024-06-30.csv").write_text(
        "Record ID,Meeting name,Activity date,Call and meeting type,Meeting outcome,Associated Company IDs\n"
        "6001,Acme QBR,2024-04-10 15:00,QBR,Completed,9001\n"
        "6002,Beta onboarding,2024-04-11 09:30,Onboarding,Scheduled,9002\n"
        "6003,Prospect demo,2024-04-12 09:30,Demo,Completed,9003\n")
    (folder / "hubspot-crm-exports-all-calls-2024-06-30.csv").write_text(
        "Record ID,Call Title,Activity date,Call and meeting type,Call outcome,Associated Company IDs\n"
        "5001,Check-in,2024-04-15 11:00,,Connected,9001;9002\n")
    return folder


def test_the_exports_facts_by_billing_account(tmp_path: Path) -> None:
    facts = hubspot_facts(_export(tmp_path / "hs"), MAPPING)
    assert facts.accounts == {
        "A0000001": {"owner": "Ann Lee", "segment": "Enterprise", "industry": "COMPUTER_SOFTWARE", "region": "Germany"},
        "A0000002": {"owner": "Bob Ray", "segment": "SMB", "industry": "RETAIL", "region": "France"}}
    # the contract's end, a renewal deal, and a deal of a renewal type shared by two companies (both get it);
    # a new-business deal and a company without a billing id are not renewals of a billing account
    assert sorted(zip(facts.renewals["account_id"].to_pylist(), facts.renewals["renewal_date"].to_pylist(),
                      strict=True)) == [("A0000001", dt.date(2024, 3, 31)), ("A0000001", dt.date(2024, 9, 30)),
                                        ("A0000001", dt.date(2025, 1, 31)), ("A0000002", dt.date(2024, 3, 31))]
    assert facts.tickets.to_pylist() == [
        {"account_id": "A0000001", "opened_at": dt.datetime(2024, 5, 2, 14, 30), "severity": "HIGH"},
        {"account_id": "A0000002", "opened_at": dt.datetime(2024, 5, 3, 8, 0), "severity": "LOW"}]
    assert any("1 HubSpot company has no Stripe Customer ID" in n for n in facts.notes)
    # meetings and calls as the plays logged: the type named (QBR → qbr), else the kind of record; a call
    # associated with two companies counts for each; the prospect's demo has no billing account
    assert facts.activities is not None and sorted(facts.activities.to_pylist(), key=str) == sorted([
        {"account_id": "A0000001", "ts": dt.datetime(2024, 4, 10, 15), "play": "qbr", "outcome": "Completed"},
        {"account_id": "A0000002", "ts": dt.datetime(2024, 4, 11, 9, 30), "play": "onboarding",
         "outcome": "Scheduled"},
        {"account_id": "A0000001", "ts": dt.datetime(2024, 4, 15, 11), "play": "call", "outcome": "Connected"},
        {"account_id": "A0000002", "ts": dt.datetime(2024, 4, 15, 11), "play": "call", "outcome": "Connected"},
    ], key=str)
    only_qbrs = hubspot_facts(tmp_path / "hs", MAPPING.model_copy(update={"plays": {"QBR": "quarterly_review"}}))
    assert only_qbrs.activities is not None and only_qbrs.activities["play"].to_pylist() == ["quarterly_review"]


def test_missing_columns_bad_dates_and_two_exports_of_one_object_are_named(tmp_path: Path) -> None:
    folder = _export(tmp_path / "hs", ticket_date="last Tuesday")
    with pytest.raises(ContractError) as caught:
        hubspot_facts(folder, MAPPING)
    [problem] = caught.value.problems
    assert (problem.file, problem.column, problem.rows, problem.values) == (
        "hubspot-crm-exports-all-tickets-2024-06-30.csv", "Create date", (2,), ("last Tuesday",))
    with pytest.raises(ContractError) as caught:
        hubspot_facts(folder, HubSpotMapping(account_key="Billing ID", deal_company="Associated Company"))
    missing = {(p.file.split("-")[4], p.column) for p in caught.value.problems}
    assert missing == {("companies", "Billing ID"), ("deals", "Associated Company")}
    assert all("Columns found: Record ID" in p.hint for p in caught.value.problems)
    (folder / "companies-old.csv").write_text("Record ID\n1\n")
    with pytest.raises(ConfigError, match="more than one export of companies"):
        hubspot_facts(folder, MAPPING)
    with pytest.raises(ConfigError, match="no export of companies"):
        hubspot_facts(tmp_path, MAPPING)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("account_key: Stripe Customer ID\nrenewal_type: [Renewal]\n")
    with pytest.raises(ConfigError, match="renewal_type: not a key of a mapping file"):
        load_hubspot_mapping(mapping)


def test_import_into_a_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(err, "width", 200)
    runner = CliRunner()
    data = tmp_path / "data"
    assert runner.invoke(app, ["simulate", "--out", str(data), "--accounts", "20", "--months", "6",
                               "--format", "csv"]).exit_code == 0
    lines_before = (data / "invoice_lines.csv").read_text()
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("account_key: Stripe Customer ID\nsegment: Customer segment\n")
    result = runner.invoke(app, ["import", "hubspot", str(_export(tmp_path / "hs")), "--into", str(data),
                                 "--mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    accounts = {r["account_id"]: r for r in pacsv.read_csv(data / "accounts.csv").to_pylist()}
    assert (accounts["A0000001"]["owner"], accounts["A0000001"]["segment"]) == ("Ann Lee", "Enterprise")
    assert len(accounts) == 20  # every billing account kept, those without a CRM match as they were
    assert (data / "invoice_lines.csv").read_text() == lines_before
    assert pacsv.read_csv(data / "renewals.csv").num_rows == 1  # the renewal deal: no contract end mapped
    assert pacsv.read_csv(data / "tickets.csv").num_rows == 2
    assert runner.invoke(app, ["validate", str(data)]).exit_code == 0
    listed = runner.invoke(app, ["sources"])
    assert "hubspot" in listed.output


@pytest.fixture()
def hub() -> Iterator[FakeHubSpot]:
    """The exports' portal through the API: 150 companies (two pages), owners, deals and tickets associated."""
    fake = FakeHubSpot()
    fake.owners = [owner("31", "Ann", "Lee"), owner("32", "Bob", "Ray")]
    fake.companies = [company("9001", stripe_customer_id="A0000001", hubspot_owner_id="31",
                              industry="COMPUTER_SOFTWARE", country="Germany", contract_end_date="2025-01-31"),
                      company("9002", stripe_customer_id="A0000002", hubspot_owner_id="32", industry="RETAIL",
                              country="France"),
                      *[company(str(9100 + i), hubspot_owner_id="32") for i in range(148)]]
    fake.deals = [deal_or_ticket("7001", ["9001"], dealtype="renewal", closedate="2024-09-30T00:00:00Z"),
                  deal_or_ticket("7002", ["9001"], dealtype="newbusiness", closedate="2023-09-30T10:00:00Z"),
                  deal_or_ticket("7003", ["9002", "9001"], dealtype="renewal", closedate="2024-03-31T00:00:00Z"),
                  deal_or_ticket("7004", ["9100"], dealtype="renewal", closedate="2024-12-31T00:00:00Z")]
    fake.tickets = [deal_or_ticket("8001", ["9001"], createdate="2024-05-02T14:30:00.000Z", hs_ticket_priority="HIGH"),
                    deal_or_ticket("8002", ["9002"], createdate="2024-05-03T08:00:00.000Z", hs_ticket_priority="LOW")]
    fake.meetings = [deal_or_ticket("6001", ["9001"], hs_timestamp="2024-04-10T15:00:00.000Z", hs_activity_type="QBR",
                                    hs_meeting_outcome="COMPLETED"),
                     deal_or_ticket("6002", ["9002"], hs_timestamp="2024-04-11T09:30:00.000Z",
                                    hs_activity_type="Onboarding", hs_meeting_outcome="SCHEDULED"),
                     deal_or_ticket("6003", ["9100"], hs_timestamp="2024-04-12T09:30:00.000Z",
                                    hs_activity_type="Demo", hs_meeting_outcome="COMPLETED")]
    fake.calls = [deal_or_ticket("5001", ["9001", "9002"], hs_timestamp="2024-04-15T11:00:00.000Z",
                                 hs_activity_type=None, hs_call_status="COMPLETED")]
    yield from serve(fake)


def test_the_api_gives_the_facts_the_exports_give(hub: FakeHubSpot) -> None:
    mapping = HubSpotApiMapping(account_key="stripe_customer_id", contract_end="contract_end_date")
    hub.fail_once("/crm/v3/objects/deals", 429)
    facts = hubspot_api_facts(TOKEN, mapping, api_base=hub.url)
    assert facts.accounts == {
        "A0000001": {"owner": "Ann Lee", "industry": "COMPUTER_SOFTWARE", "region": "Germany"},
        "A0000002": {"owner": "Bob Ray", "industry": "RETAIL", "region": "France"}}
    assert sorted(zip(facts.renewals["account_id"].to_pylist(), facts.renewals["renewal_date"].to_pylist(),
                      strict=True)) == [("A0000001", dt.date(2024, 3, 31)), ("A0000001", dt.date(2024, 9, 30)),
                                        ("A0000001", dt.date(2025, 1, 31)), ("A0000002", dt.date(2024, 3, 31))]
    assert facts.tickets.to_pylist() == [
        {"account_id": "A0000001", "opened_at": dt.datetime(2024, 5, 2, 14, 30), "severity": "HIGH"},
        {"account_id": "A0000002", "opened_at": dt.datetime(2024, 5, 3, 8, 0), "severity": "LOW"}]
    assert sorted((r["account_id"], r["play"], r["outcome"]) for r in facts.activities.to_pylist()) == [
        ("A0000001", "call", "COMPLETED"), ("A0000001", "qbr", "COMPLETED"), ("A0000002", "call", "COMPLETED"),
        ("A0000002", "onboarding", "SCHEDULED")]
    assert hub.requests.count("GET /crm/v3/objects/companies") == 2 and not hub.failures  # two pages; the 429
    assert any("148 HubSpot companies have no stripe_customer_id" in n for n in facts.notes)
    with pytest.raises(CrmError, match="HubSpot refused the access token"):
        hubspot_api_facts("pat-wrong", mapping, api_base=hub.url)


def test_import_from_the_api_into_a_data_folder(hub: FakeHubSpot, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(err, "width", 200)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    runner = CliRunner()
    data = tmp_path / "data"
    assert runner.invoke(app, ["simulate", "--out", str(data), "--accounts", "20", "--months", "6",
                               "--format", "csv"]).exit_code == 0
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("account_key: stripe_customer_id\n")
    result = runner.invoke(app, ["import", "hubspot", "--into", str(data), "--mapping", str(mapping),
                                 "--api-base", hub.url])
    assert result.exit_code == 0, result.output
    accounts = {r["account_id"]: r for r in pacsv.read_csv(data / "accounts.csv").to_pylist()}
    assert accounts["A0000002"]["owner"] == "Bob Ray"
    assert pacsv.read_csv(data / "renewals.csv").num_rows == 3  # 7001 and 7003 (twice): no contract end mapped
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN")
    missing = runner.invoke(app, ["import", "hubspot", "--into", str(data), "--api-base", hub.url])
    assert missing.exit_code == 2 and "HUBSPOT_ACCESS_TOKEN" in missing.output
