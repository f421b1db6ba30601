"""Scores pushed to HubSpot company properties: only what changed, in batches of at most 100, missing properties
created first, a dry run that writes nothing, idempotent, against a local server that answers as HubSpot's API
documents."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.plays.fake_hubspot import TOKEN, FakeHubSpot, company, prop, serve
from tests.plays.fake_salesforce import BASE as SF_BASE
from tests.plays.fake_salesforce import TOKEN as SF_TOKEN
from tests.plays.fake_salesforce import FakeSalesforce
from tests.plays.fake_salesforce import serve as serve_salesforce
from upcurve.cli import app
from upcurve.cli_support import console, err
from upcurve.errors import ConfigError
from upcurve.plays.crm_fields import (
    CRM_DEFAULTS,
    PUSHABLE,
    CrmError,
    CrmPushMapping,
    desired_values,
    load_push_mapping,
    planned_changes,
)
from upcurve.scoring import SCORE_COLUMNS
from upcurve.usecases import PushResult, push_scores
from upcurve.workspace import Store

ACCOUNTS = 230


def _accounts() -> pa.Table:
    """A run's accounts: A0000 … A0229, their scores made up from their number."""
    ids = [f"A{i:04d}" for i in range(ACCOUNTS)]
    return pa.table({
        "account_id": ids,
        "health_score": [40.0 + i % 50 for i in range(ACCOUNTS)],
        "health_tier": ["Churn Risk" if i % 50 < 10 else "Nurture" for i in range(ACCOUNTS)],
        "expansion_propensity": [0.001 * i for i in range(ACCOUNTS)],
        "churn_risk": [None if i == 7 else 0.05 for i in range(ACCOUNTS)],
        "recommended_lever": ["seat" if i % 2 else "tier" for i in range(ACCOUNTS)],
        "reasons": [f"+{i % 20} points of probability: seat saturation 96%; tenure 2 years" for i in range(ACCOUNTS)],
    })


@pytest.fixture()
def workspace(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "ws")
    store.save_run(as_of=dt.date(2025, 3, 31), source="test", fingerprint="f", settings={}, notes=[],
                   tables={"accounts": _accounts()}, started_at=dt.datetime(2025, 4, 1, 8, 0))
    return store


@pytest.fixture()
def hub() -> Iterator[FakeHubSpot]:
    """A portal of 240 companies: 229 hold a billing id of the run (one of them twice), 10 hold another, 1 none;
    one of the pushed properties exists and one company already holds the run's values."""
    fake = FakeHubSpot()
    for i in range(ACCOUNTS - 1):  # A0229 has no company
        fake.companies.append(company(str(1000 + i), stripe_customer_id=f"A{i:04d}"))
    fake.companies.append(company("5000", stripe_customer_id="A0003"))  # a duplicate company of A0003
    for i in range(10):
        fake.companies.append(company(str(6000 + i), stripe_customer_id=f"B{i:04d}"))
    fake.companies.append(company("7000", name="no billing id"))
    fake.properties["stripe_customer_id"] = prop("stripe_customer_id")
    fake.properties["upcurve_health_score"] = prop("upcurve_health_score", kind="number", field_type="number")
    fake.by_id("1001")["properties"].update(upcurve_health_score="41.00")  # A0001's health, written as HubSpot may
    yield from serve(fake)


MAPPING = "account_key: stripe_customer_id\n"


def test_values_as_the_crm_holds_them() -> None:
    desired = desired_values(_accounts().slice(7, 1), CrmPushMapping().fields("hubspot"))
    assert desired == {"A0007": {"upcurve_health_score": "47.0", "upcurve_health_tier": "Churn Risk",
                                 "upcurve_expansion_propensity": "0.7", "upcurve_churn_risk": "",
                                 "upcurve_lever": "seat",
                                 "upcurve_top_reason": "+7 points of probability: seat saturation 96%"}}
    # a value already there (a number written another way, an empty one as None) is no change
    current = {"upcurve_health_score": "47.00", "upcurve_churn_risk": None, "upcurve_lever": "tier"}
    changes = planned_changes(desired, [("9", "A0007", current), ("10", "Z", {})])
    assert {(c.property, c.old, c.new) for c in changes} == {
        ("upcurve_health_tier", None, "Churn Risk"), ("upcurve_expansion_propensity", None, "0.7"),
        ("upcurve_lever", "tier", "seat"),
        ("upcurve_top_reason", None, "+7 points of probability: seat saturation 96%")}
    # every value pushed is a column a run writes: the scores, and the health score and tier
    assert {"reasons" if v == "top_reason" else v for v in PUSHABLE} <= {*SCORE_COLUMNS, "health_score", "health_tier"}


def test_a_wrong_mapping_is_named(tmp_path: Path) -> None:
    path = tmp_path / "push.yaml"
    path.write_text("properties:\n  health: upcurve_health\n  churn_risk: x\n  health_score: x\nbatch_size: 500\n")
    with pytest.raises(ConfigError) as caught:
        load_push_mapping(path)
    said = str(caught.value)
    assert "push.yaml" in said and "health: not a value upcurve pushes" in said and "batch_size" in said
    path.write_text("properties:\n  churn_risk: x\n  health_score: x\n")
    with pytest.raises(ConfigError, match="x: one property receives two values"):
        load_push_mapping(path)


def test_push_plans_then_writes_only_what_changed_in_batches(workspace: Store, hub: FakeHubSpot,
                                                             tmp_path: Path) -> None:
    mapping = tmp_path / "push.yaml"
    mapping.write_text(MAPPING)
    hub.fail_once("/crm/v3/objects/companies/batch/update", 429)
    hub.fail_once("/crm/v3/objects/companies", 500)
    dry = push_scores(workspace, "hubspot", access_token=TOKEN, mapping=mapping, api_base=hub.url, dry_run=True)
    # 229 accounts' companies and A0003's duplicate: 230 companies × 6 values, less A0001's health already there
    # and A0007's churn risk (none, and none there)
    assert len(dry.changes) == 230 * 6 - 2 and dry.records == 240 and dry.matched == 230 and dry.accounts == 230
    assert sorted(dry.created) == sorted(v for k, v in CRM_DEFAULTS["hubspot"][0].items() if k != "health_score")
    assert not hub.batches and set(hub.properties) == {"stripe_customer_id", "upcurve_health_score"}
    assert hub.requests.count("GET /crm/v3/objects/companies") == 4  # 3 pages, the first answered 500 then read
    assert {c.record_id for c in dry.changes if c.account_id == "A0003"} == {"1003", "5000"}

    done = push_scores(workspace, "hubspot", access_token=TOKEN, mapping=mapping, api_base=hub.url)
    assert done.changes == dry.changes
    assert [len(b) for b in hub.batches] == [100, 100, 30]  # 230 companies, at most 100 a request
    assert hub.requests.count("POST /crm/v3/objects/companies/batch/update") == 4 and not hub.failures  # a 429
    assert hub.by_id("1007")["properties"]["upcurve_top_reason"] == "+7 points of probability: seat saturation 96%"
    assert hub.by_id("1007")["properties"].get("upcurve_churn_risk") is None  # nothing to write: none either way
    assert hub.by_id("5000")["properties"]["upcurve_lever"] == "seat"
    assert hub.properties["upcurve_churn_risk"]["type"] == "number"
    assert "upcurve_health_score" not in {p for b in hub.batches for i in b if i["id"] == "1001"
                                          for p in i["properties"]}
    assert hub.by_id("6000")["properties"].get("upcurve_lever") is None  # not an account of the run

    again = push_scores(workspace, "hubspot", access_token=TOKEN, mapping=mapping, api_base=hub.url)
    assert again.changes == [] and again.created == [] and len(hub.batches) == 3  # idempotent


def test_a_refused_token_and_missing_properties_without_creating_them(workspace: Store, hub: FakeHubSpot,
                                                                       tmp_path: Path) -> None:
    with pytest.raises(CrmError, match="HubSpot refused the access token"):
        push_scores(workspace, "hubspot", access_token="pat-wrong", api_base=hub.url)
    with pytest.raises(ConfigError, match="no HubSpot access token"):
        push_scores(workspace, "hubspot", access_token="", api_base=hub.url)
    mapping = tmp_path / "push.yaml"
    mapping.write_text(MAPPING + "create_properties: false\n")
    with pytest.raises(ConfigError, match="HubSpot has no company properties upcurve_health_tier"):
        push_scores(workspace, "hubspot", access_token=TOKEN, mapping=mapping, api_base=hub.url)
    with pytest.raises(ConfigError, match="unknown CRM 'pipedrive'"):
        push_scores(workspace, "pipedrive", access_token=TOKEN)
    assert not hub.batches


def test_the_command_shows_the_dry_run_then_pushes(workspace: Store, hub: FakeHubSpot, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)
    monkeypatch.setattr(err, "width", 200)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    mapping = tmp_path / "push.yaml"
    mapping.write_text(MAPPING + "properties:\n  churn_risk: upcurve_churn_risk\n")
    runner = CliRunner()
    args = ["push", "hubspot", "--workspace", str(tmp_path / "ws"), "--mapping", str(mapping), "--api-base", hub.url]
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Would change in HubSpot" in dry.output and "229 field(s) of 229 record(s) to change" in dry.output
    assert "A dry run: nothing was written." in dry.output and "Properties to create: upcurve_churn_risk" in dry.output
    assert not hub.batches
    pushed = runner.invoke(app, args)
    assert pushed.exit_code == 0, pushed.output
    assert "229 field(s) of 229 record(s) changed" in pushed.output and len(hub.batches) == 3
    refused = runner.invoke(app, args, env={"HUBSPOT_ACCESS_TOKEN": "pat-wrong"})
    assert refused.exit_code == 1 and "HubSpot refused the access token" in refused.output
    assert "Traceback" not in refused.output


# -- Salesforce ---------------------------------------------------------------------------------------------------
SF_FIELDS = {"Billing_Id__c": "string", "upcurve_Health_Score__c": "double", "upcurve_Health_Tier__c": "string",
             "upcurve_Expansion_Propensity__c": "percent", "upcurve_Churn_Risk__c": "percent",
             "upcurve_Lever__c": "picklist", "upcurve_Top_Reason__c": "string"}


@pytest.fixture()
def org() -> Iterator[tuple[FakeSalesforce, object]]:
    """An org of 2,101 Accounts (more than a query page): 229 hold a billing id of the run, the others none."""
    fake = FakeSalesforce(fields={"Id": "id", "Name": "string", **SF_FIELDS})
    for i in range(2101):
        fake.accounts.append({"Id": f"001{i:012d}", "Name": f"Account {i}",
                              "Billing_Id__c": f"A{i:04d}" if i < ACCOUNTS - 1 else None})
    fake.by_id("001000000000001")["upcurve_Health_Score__c"] = 41.0  # A0001's health, already there
    yield from serve_salesforce(fake)


def test_push_to_salesforce_writes_numbers_in_batches_of_200(workspace: Store, org: tuple[FakeSalesforce, object],
                                                              tmp_path: Path) -> None:
    fake, session = org
    mapping = tmp_path / "push.yaml"
    mapping.write_text("account_key: Billing_Id__c\n")
    fake.failures.append((f"{SF_BASE}/composite/sobjects", 503))

    def push(dry_run: bool = False) -> PushResult:
        return push_scores(workspace, "salesforce", access_token=SF_TOKEN, mapping=mapping, api_base=fake.url,
                           session=session, dry_run=dry_run)

    dry = push(dry_run=True)
    assert len(dry.changes) == 229 * 6 - 2 and dry.records == 229 and not fake.batches
    assert fake.requests.count(f"GET {SF_BASE}/query/") == 1
    done = push()
    assert [len(b) for b in fake.batches] == [200, 29] and not fake.failures  # the 503 retried
    account = fake.by_id("001000000000007")
    assert account["upcurve_Expansion_Propensity__c"] == 0.7 and account["upcurve_Health_Score__c"] == 47.0
    assert account["upcurve_Lever__c"] == "seat" and "upcurve_Churn_Risk__c" not in account
    assert done.changes == dry.changes
    assert push().changes == []  # idempotent: the numbers read back equal what was written


def test_salesforce_names_missing_fields_refused_records_and_a_refused_token(
        workspace: Store, org: tuple[FakeSalesforce, object], tmp_path: Path) -> None:
    fake, session = org
    mapping = tmp_path / "push.yaml"
    mapping.write_text("account_key: Billing_Id__c\nbatch_size: 300\n")
    with pytest.raises(ConfigError, match="batch_size"):
        load_push_mapping(mapping)
    mapping.write_text("account_key: Billing_Id__c\nproperties:\n  churn_risk: Churn__c\n  health_score: "
                       "upcurve_Health_Score__c\n")
    with pytest.raises(ConfigError, match="Salesforce has no Account fields Churn__c: create them in Setup"):
        push_scores(workspace, "salesforce", access_token=SF_TOKEN, mapping=mapping, api_base=fake.url,
                    session=session, dry_run=True)
    mapping.write_text("account_key: Billing_Id__c\nproperties:\n  health_score: upcurve_Health_Score__c\n")
    fake.refuse = {"001000000000002", "001000000000005"}
    with pytest.raises(CrmError, match="Salesforce refused 2 Account"):
        push_scores(workspace, "salesforce", access_token=SF_TOKEN, mapping=mapping, api_base=fake.url,
                    session=session)
    assert fake.by_id("001000000000003")["upcurve_Health_Score__c"] == 43.0  # the others were written
    with pytest.raises(CrmError, match="Salesforce refused the access token"):
        push_scores(workspace, "salesforce", access_token="00Dxx!expired", mapping=mapping, api_base=fake.url,
                    session=session)
    with pytest.raises(ConfigError, match="SALESFORCE_INSTANCE_URL"):
        push_scores(workspace, "salesforce", access_token=SF_TOKEN, mapping=mapping)
    hubspot = tmp_path / "hubspot.yaml"
    hubspot.write_text("batch_size: 150\n")
    with pytest.raises(ConfigError, match="batch_size 150: hubspot writes at most 100"):
        push_scores(workspace, "hubspot", access_token=TOKEN, mapping=hubspot)


def test_the_salesforce_command(workspace: Store, org: tuple[FakeSalesforce, object], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)
    fake, _ = org
    mapping = tmp_path / "push.yaml"
    mapping.write_text("account_key: Billing_Id__c\nproperties:\n  health_tier: upcurve_Health_Tier__c\n")
    env = {"SALESFORCE_ACCESS_TOKEN": SF_TOKEN, "SALESFORCE_INSTANCE_URL": fake.url,
           "REQUESTS_CA_BUNDLE": fake.ca_file}
    args = ["push", "salesforce", "--workspace", str(tmp_path / "ws"), "--mapping", str(mapping)]
    dry = CliRunner().invoke(app, [*args, "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "Would change in Salesforce" in dry.output and "229 field(s) of 229 record(s) to change" in dry.output
    assert "229 of 229 Salesforce records with a billing id matched the 230 accounts" in dry.output
    pushed = CliRunner().invoke(app, args, env=env)
    assert pushed.exit_code == 0, pushed.output
    assert fake.by_id("001000000000012")["upcurve_Health_Tier__c"] == "Nurture" and len(fake.batches) == 2
