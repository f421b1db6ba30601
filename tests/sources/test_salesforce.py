"""A Salesforce data export (CSV files named after the objects, columns the fields' API names) added to a data
folder: owners, segments, industries, regions, renewals and tickets, matched on the billing account id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from tests.plays.fake_salesforce import BASE as SF_BASE
from tests.plays.fake_salesforce import TOKEN as SF_TOKEN
from tests.plays.fake_salesforce import FakeSalesforce
from tests.plays.fake_salesforce import serve as serve_salesforce
from upcurve.cli import app
from upcurve.cli_support import err
from upcurve.errors import ConfigError, ContractError
from upcurve.sources.crm import (
    CrmError,
    SalesforceMapping,
    load_salesforce_mapping,
    salesforce_api_facts,
    salesforce_facts,
)

MAPPING = SalesforceMapping(account_key="Stripe_Customer_ID__c")


def _export(folder: Path, *, case_date: str = "2024-05-02T14:30:00.000Z") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Account.csv").write_text(
        '"Id","Name","OwnerId","Type","Industry","BillingCountry","Stripe_Customer_ID__c"\n'
        '"001A","Acme","005X","Enterprise","Software","Germany","A0000001"\n'
        '"001B","Beta","005Y","SMB","Retail","France","A0000002"\n'
        '"001C","Prospect","005Y","SMB","Retail","France",""\n')
    (folder / "User.csv").write_text('"Id","Name","Email"\n"005X","Ann Lee","ann@x"\n"005Y","Bob Ray","bob@x"\n')
    (folder / "Opportunity.csv").write_text(
        '"Id","AccountId","Type","StageName","CloseDate","IsWon"\n'
        '"006A","001A","Renewal","Negotiation","2024-09-30","false"\n'
        '"006B","001A","New Business","Closed Won","2023-09-30","true"\n'
        '"006C","001B","Renewal","Closed Won","2024-03-31","true"\n'
        '"006D","001C","Renewal","Prospecting","2024-12-31","false"\n')
    (folder / "Case.csv").write_text(
        '"Id","AccountId","CreatedDate","Priority","Status"\n'
        f'"500A","001A","{case_date}","High","Closed"\n'
        '"500B","001B","2024-05-03T08:00:00.000Z","Low","New"\n')
    (folder / "Task.csv").write_text(
        '"Id","AccountId","Subject","Type","ActivityDate","CreatedDate","Status"\n'
        '"00TA","001A","QBR prep","QBR","2024-04-10","2024-04-01T09:00:00.000Z","Completed"\n'
        '"00TB","001B","Follow up","Call","","2024-04-12T10:00:00.000Z","Not Started"\n'
        '"00TC","001C","Prospect call","Call","2024-04-12","2024-04-01T09:00:00.000Z","Completed"\n')
    (folder / "Event.csv").write_text(
        '"Id","AccountId","Subject","Type","StartDateTime"\n'
        '"00UA","001A","Executive review","Executive Business Review","2024-04-20T15:00:00.000Z"\n')
    return folder


def test_the_export_s_facts_by_billing_account(tmp_path: Path) -> None:
    facts = salesforce_facts(_export(tmp_path / "sf"), MAPPING)
    assert facts.accounts == {
        "A0000001": {"owner": "Ann Lee", "segment": "Enterprise", "industry": "Software", "region": "Germany"},
        "A0000002": {"owner": "Bob Ray", "segment": "SMB", "industry": "Retail", "region": "France"}}
    assert sorted(zip(facts.renewals["account_id"].to_pylist(), facts.renewals["renewal_date"].to_pylist(),
                      strict=True)) == [("A0000001", dt.date(2024, 9, 30)), ("A0000002", dt.date(2024, 3, 31))]
    assert facts.tickets.to_pylist() == [
        {"account_id": "A0000001", "opened_at": dt.datetime(2024, 5, 2, 14, 30), "severity": "High"},
        {"account_id": "A0000002", "opened_at": dt.datetime(2024, 5, 3, 8, 0), "severity": "Low"}]
    assert any("1 Salesforce account(s) have no Stripe_Customer_ID__c" in n for n in facts.notes)
    # tasks and events as the plays logged, named after their type; a task without a date is dated when created;
    # the prospect's call has no billing account
    assert facts.activities is not None and facts.activities.to_pylist() == [
        {"account_id": "A0000001", "ts": dt.datetime(2024, 4, 10), "play": "qbr", "outcome": "Completed"},
        {"account_id": "A0000002", "ts": dt.datetime(2024, 4, 12, 10), "play": "call", "outcome": "Not Started"},
        {"account_id": "A0000001", "ts": dt.datetime(2024, 4, 20, 15), "play": "executive_business_review",
         "outcome": None}]


def test_missing_columns_and_bad_dates_are_named(tmp_path: Path) -> None:
    folder = _export(tmp_path / "sf", case_date="yesterday")
    with pytest.raises(ContractError) as caught:
        salesforce_facts(folder, MAPPING)
    [problem] = caught.value.problems
    assert (problem.file, problem.column, problem.rows, problem.values) == ("Case.csv", "CreatedDate", (2,),
                                                                             ("yesterday",))
    with pytest.raises(ContractError) as caught:
        salesforce_facts(folder, SalesforceMapping(account_key="Billing_Id__c"))
    [missing] = caught.value.problems
    assert missing.column == "Billing_Id__c" and "Stripe_Customer_ID__c" in missing.hint
    with pytest.raises(ConfigError, match=r"no Account\.csv"):
        salesforce_facts(tmp_path, MAPPING)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("account_key: Stripe_Customer_ID__c\nrenewal_type: [Renewal]\n")
    with pytest.raises(ConfigError, match="renewal_type: not a key of a mapping file"):
        load_salesforce_mapping(mapping)


def test_import_into_a_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(err, "width", 200)
    runner = CliRunner()
    data = tmp_path / "data"
    assert runner.invoke(app, ["simulate", "--out", str(data), "--accounts", "20", "--months", "6",
                               "--format", "csv"]).exit_code == 0
    lines_before = (data / "invoice_lines.csv").read_text()
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("account_key: Stripe_Customer_ID__c\n")
    result = runner.invoke(app, ["import", "salesforce", str(_export(tmp_path / "sf")), "--into", str(data),
                                 "--mapping", str(mapping)])
    assert result.exit_code == 0, result.output
    accounts = {r["account_id"]: r for r in pacsv.read_csv(data / "accounts.csv").to_pylist()}
    assert (accounts["A0000001"]["owner"], accounts["A0000001"]["region"]) == ("Ann Lee", "Germany")
    assert len(accounts) == 20  # every billing account kept, those without a CRM match as they were
    assert (data / "invoice_lines.csv").read_text() == lines_before
    assert pacsv.read_csv(data / "renewals.csv").num_rows == 2
    assert runner.invoke(app, ["validate", str(data)]).exit_code == 0


@pytest.fixture()
def org() -> Iterator[tuple[FakeSalesforce, object]]:
    """The export's org through the API: 2,001 Accounts (two query pages), users, opportunities and cases."""
    fake = FakeSalesforce(fields={"Id": "id", "Name": "string", "OwnerId": "reference", "Type": "picklist",
                                  "Industry": "picklist", "BillingCountry": "string",
                                  "Stripe_Customer_ID__c": "string"})
    fake.accounts = [
        {"Id": "001A", "Name": "Acme", "OwnerId": "005X", "Type": "Enterprise", "Industry": "Software",
         "BillingCountry": "Germany", "Stripe_Customer_ID__c": "A0000001"},
        {"Id": "001B", "Name": "Beta", "OwnerId": "005Y", "Type": "SMB", "Industry": "Retail",
         "BillingCountry": "France", "Stripe_Customer_ID__c": "A0000002"},
        *[{"Id": f"001P{i:04d}", "Name": f"Prospect {i}", "OwnerId": "005Y", "Type": "SMB"} for i in range(1999)]]
    fake.others = {
        "User": [{"Id": "005X", "Name": "Ann Lee"}, {"Id": "005Y", "Name": "Bob Ray"}],
        "Opportunity": [{"Id": "006A", "AccountId": "001A", "Type": "Renewal", "CloseDate": "2024-09-30"},
                        {"Id": "006B", "AccountId": "001A", "Type": "New Business", "CloseDate": "2023-09-30"},
                        {"Id": "006C", "AccountId": "001B", "Type": "Renewal", "CloseDate": "2024-03-31"}],
        "Case": [{"Id": "500A", "AccountId": "001A", "CreatedDate": "2024-05-02T14:30:00.000+0000",
                  "Priority": "High"},
                 {"Id": "500B", "AccountId": "001B", "CreatedDate": "2024-05-03T08:00:00.000+0000",
                  "Priority": "Low"}],
        "Task": [{"Id": "00TA", "AccountId": "001A", "Type": "QBR", "ActivityDate": "2024-04-10",
                  "CreatedDate": "2024-04-01T09:00:00.000+0000", "Status": "Completed"},
                 {"Id": "00TB", "AccountId": "001B", "Type": "Call", "ActivityDate": None,
                  "CreatedDate": "2024-04-12T10:00:00.000+0000", "Status": "Not Started"},
                 {"Id": "00TD", "AccountId": None, "Type": "Call", "ActivityDate": "2024-04-12",
                  "CreatedDate": "2024-04-01T09:00:00.000+0000", "Status": "Completed"}],
        "Event": [{"Id": "00UA", "AccountId": "001A", "Type": "Executive Business Review",
                   "StartDateTime": "2024-04-20T15:00:00.000+0000"}]}
    yield from serve_salesforce(fake)


def test_the_api_gives_the_facts_the_export_gives(org: tuple[FakeSalesforce, object], tmp_path: Path) -> None:
    fake, session = org
    from_api = salesforce_api_facts(SF_TOKEN, fake.url, MAPPING, session=session)
    from_export = salesforce_facts(_export(tmp_path / "sf"), MAPPING)
    assert from_api.accounts == from_export.accounts
    assert from_api.renewals.equals(from_export.renewals) and from_api.tickets.equals(from_export.tickets)
    assert from_api.activities is not None and from_export.activities is not None
    assert from_api.activities.equals(from_export.activities)
    assert any("1,999 Salesforce account(s) have no Stripe_Customer_ID__c" in n for n in from_api.notes)
    assert fake.requests.count(f"GET {SF_BASE}/query/") == 6  # one a query …
    assert any(r.startswith(f"GET {SF_BASE}/query/01g") for r in fake.requests)  # … and the Accounts' second page
    with pytest.raises(CrmError, match=r"Salesforce answered 400 \(read Account\): .*No such column 'Billing__c'"):
        salesforce_api_facts(SF_TOKEN, fake.url, SalesforceMapping(account_key="Billing__c"), session=session)
    with pytest.raises(CrmError, match="Salesforce refused the access token"):
        salesforce_api_facts("00D!expired", fake.url, MAPPING, session=session)


def test_import_from_the_api_into_a_data_folder(org: tuple[FakeSalesforce, object], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(err, "width", 200)
    fake, _ = org
    runner = CliRunner()
    data = tmp_path / "data"
    assert runner.invoke(app, ["simulate", "--out", str(data), "--accounts", "20", "--months", "6",
                               "--format", "csv"]).exit_code == 0
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("account_key: Stripe_Customer_ID__c\n")
    env = {"SALESFORCE_ACCESS_TOKEN": SF_TOKEN, "SALESFORCE_INSTANCE_URL": fake.url,
           "REQUESTS_CA_BUNDLE": fake.ca_file}
    result = runner.invoke(app, ["import", "salesforce", "--into", str(data), "--mapping", str(mapping)], env=env)
    assert result.exit_code == 0, result.output
    accounts = {r["account_id"]: r for r in pacsv.read_csv(data / "accounts.csv").to_pylist()}
    assert (accounts["A0000001"]["owner"], accounts["A0000001"]["region"]) == ("Ann Lee", "Germany")
    assert pacsv.read_csv(data / "tickets.csv").num_rows == 2


def test_an_activity_s_bad_date_is_named(tmp_path: Path) -> None:
    folder = _export(tmp_path / "sf")
    (folder / "Event.csv").write_text('"Id","AccountId","Type","StartDateTime"\n"00UA","001A","QBR","soon"\n')
    with pytest.raises(ContractError) as caught:
        salesforce_facts(folder, MAPPING)
    [problem] = caught.value.problems
    assert (problem.file, problem.column, problem.rows, problem.values) == ("Event.csv", "StartDateTime", (2,),
                                                                             ("soon",))
