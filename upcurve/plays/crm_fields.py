"""Scores back where account teams work: each account's health, tier, expansion propensity, churn risk, lever and
top reason written to fields of its CRM record (HubSpot company properties, Salesforce Account fields).

The plan is computed before anything is sent: the values a run gives each account (:func:`desired_values`), read
against what the CRM holds now (:func:`planned_changes`), so only a value that differs is written; a second push of
the same run changes nothing (idempotent), and ``--dry-run`` shows the plan and sends nothing. Changes go in batches
(HubSpot: 100 records a request, its limit; Salesforce: 200, its sObject Collections' limit). HubSpot properties
that do not exist yet are created first (in their own group); Salesforce fields are custom fields an administrator
creates, and a missing one is an error naming it. A rate limit (429) or a server error is retried with backoff.

Values as they are written (HubSpot stores text, its number properties read them as numbers; Salesforce gets
numbers for its number fields):

- ``health_score``: 0–100, one decimal; ``health_tier``: the tier's name;
- ``expansion_propensity`` and ``churn_risk``: in percent, one decimal (``83.2`` for 0.832);
- ``recommended_lever``: ``seat``, ``tier``…; ``top_reason``: the first of the account's reasons;
- an empty value clears the field (a score the run could not give).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from upcurve.config import load_yaml_model
from upcurve.errors import ConfigError
from upcurve.sources.crm import CrmError, crm_error, hubspot_client, salesforce_client

__all__ = ["CRM_DEFAULTS", "PUSHABLE", "CrmError", "CrmPushMapping", "FieldChange", "HubSpotCompanies",
           "SalesforceAccounts", "desired_values", "load_push_mapping", "planned_changes"]

#: The run's values that can be pushed, each with its label and whether it is a number.
PUSHABLE: dict[str, tuple[str, bool]] = {
    "health_score": ("upcurve health score", True),
    "health_tier": ("upcurve health tier", False),
    "expansion_propensity": ("upcurve expansion propensity (%)", True),
    "churn_risk": ("upcurve churn risk (%)", True),
    "recommended_lever": ("upcurve recommended lever", False),
    "top_reason": ("upcurve top reason", False),
}
#: Each CRM's default field for each value, the field holding the record's own id, and most records a request.
CRM_DEFAULTS: dict[str, tuple[dict[str, str], str, int]] = {
    "hubspot": ({"health_score": "upcurve_health_score", "health_tier": "upcurve_health_tier",
                 "expansion_propensity": "upcurve_expansion_propensity", "churn_risk": "upcurve_churn_risk",
                 "recommended_lever": "upcurve_lever", "top_reason": "upcurve_top_reason"}, "hs_object_id", 100),
    "salesforce": ({"health_score": "upcurve_Health_Score__c", "health_tier": "upcurve_Health_Tier__c",
                    "expansion_propensity": "upcurve_Expansion_Propensity__c",
                    "churn_risk": "upcurve_Churn_Risk__c", "recommended_lever": "upcurve_Lever__c",
                    "top_reason": "upcurve_Top_Reason__c"}, "Id", 200),
}
_PERCENT = ("expansion_propensity", "churn_risk")


class CrmPushMapping(BaseModel):
    """Which CRM field holds the billing account id (``account_key``; default: the record's own id), which field
    each value goes to (``properties``; default: the CRM's defaults in :data:`CRM_DEFAULTS`; a value left out is not
    pushed), how many records a request writes (default: the CRM's most), and whether missing HubSpot properties
    are created (in ``group``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_key: str | None = None
    properties: dict[str, str] | None = None
    batch_size: int | None = Field(None, ge=1, le=200)
    create_properties: bool = True
    group: str = "companyinformation"

    @field_validator("properties")
    @classmethod
    def _known_values(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        unknown = sorted(set(value) - set(PUSHABLE))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a value upcurve pushes (one of {', '.join(PUSHABLE)})")
        if not value:
            raise ValueError("name at least one value to push")
        twice = sorted({p for p in value.values() if list(value.values()).count(p) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)}: one property receives two values")
        return value

    def fields(self, crm: str) -> dict[str, str]:
        """Each value pushed and the field it goes to in ``crm``."""
        return dict(self.properties) if self.properties is not None else dict(CRM_DEFAULTS[crm][0])

    def key(self, crm: str) -> str:
        """The ``crm`` field holding the billing account id."""
        return self.account_key or CRM_DEFAULTS[crm][1]

    def batch(self, crm: str) -> int:
        """Records a request writes in ``crm``.

        Raises
        ------
        ConfigError
            ``batch_size`` above the CRM's limit.
        """
        most = CRM_DEFAULTS[crm][2]
        if self.batch_size is not None and self.batch_size > most:
            raise ConfigError(f"batch_size {self.batch_size}: {crm} writes at most {most} records a request")
        return self.batch_size or most


def load_push_mapping(path: str | Path | None) -> CrmPushMapping:
    """The push mapping file (the defaults without one).

    Raises
    ------
    ConfigError
        Naming the file and every wrong key or value.
    """
    return load_yaml_model(path, CrmPushMapping, "mapping file")


@dataclass(frozen=True)
class FieldChange:
    """One field of one CRM record that the push writes: from ``old`` (None: empty) to ``new`` (``""``: clear)."""

    account_id: str
    record_id: str
    property: str
    old: str | None
    new: str


def _text(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column in _PERCENT:
        return f"{float(value) * 100:.1f}"
    if column == "health_score":
        return f"{float(value):.1f}"
    if column == "top_reason":
        return str(value).split("; ")[0]
    return str(value)


def desired_values(accounts: pa.Table, fields: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each account's values as the CRM's ``fields`` (value → field) should hold them (see the module for the
    formats), by billing account id. ``top_reason`` is the first of the ``reasons``."""
    columns = {name: ("reasons" if name == "top_reason" else name) for name in fields}
    missing = sorted({c for c in columns.values() if c not in accounts.column_names})
    if missing:
        raise ConfigError(f"the run's accounts have no {', '.join(missing)}: push a run that scored its accounts")
    values = {name: accounts[column].to_pylist() for name, column in columns.items()}
    out: dict[str, dict[str, str]] = {}
    for i, account_id in enumerate(accounts["account_id"].to_pylist()):
        out[str(account_id)] = {fields[name]: _text(name, values[name][i]) for name in columns}
    return out


def _same(old: str | None, new: str) -> bool:
    """Whether the CRM's value already is ``new``: the same text, both empty, or the same number (a CRM writes
    ``83.2`` back as ``83.2`` or ``83.20``)."""
    old = old or ""
    if old == new:
        return True
    try:
        return math.isclose(float(old), float(new), rel_tol=0, abs_tol=1e-9)
    except ValueError:
        return False


def planned_changes(desired: Mapping[str, Mapping[str, str]],
                    records: Iterable[tuple[str, str, Mapping[str, str | None]]]) -> list[FieldChange]:
    """The fields to write: for each CRM record (``record_id``, billing account id, current values) whose account
    the run scored, each property whose value differs. Two records holding one billing id both get the values."""
    changes = []
    for record_id, account_id, current in records:
        wanted = desired.get(account_id)
        if wanted is None:
            continue
        for prop, new in wanted.items():
            if not _same(current.get(prop), new):
                changes.append(FieldChange(account_id, record_id, prop, current.get(prop), new))
    return changes


class HubSpotCompanies:
    """HubSpot's companies through its official client (``hubspot-api-client``): read every company's key and
    pushed properties, create missing properties, write changes in batches. ``api_base`` points it elsewhere (a
    proxy, a test server); 429 and 5xx answers are retried with backoff, honouring ``Retry-After``."""

    #: HubSpot lets an app create the properties it writes (with the ``crm.schemas.companies.write`` scope).
    creates_properties = True

    def __init__(self, access_token: str, *, api_base: str | None = None, backoff_seconds: float = 0.5) -> None:
        if not access_token:
            raise ConfigError("no HubSpot access token: set HUBSPOT_ACCESS_TOKEN (a private app's token with the "
                              "crm.objects.companies.read and .write and crm.schemas.companies.write scopes)")
        self.client = hubspot_client(access_token, api_base, backoff_seconds=backoff_seconds)
        self.requests = 0

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        self.requests += 1
        try:
            return call()
        except Exception as exc:  # every sub-API of the client raises its own ApiException
            raise crm_error("HubSpot", what, exc) from exc

    def records(self, account_key: str, properties: list[str]) -> list[tuple[str, str, dict[str, str | None]]]:
        """Every company holding a billing id: (record id, billing id, the pushed properties' current values)."""
        out = []
        after = None
        while True:
            page = self._call("read companies", partial(self.client.crm.companies.basic_api.get_page, limit=100,
                                                        after=after, properties=[account_key, *properties],
                                                        archived=False))
            for company in page.results:
                values = company.properties or {}
                key = company.id if account_key == "hs_object_id" else values.get(account_key)
                if key:
                    out.append((str(company.id), str(key), {p: values.get(p) for p in properties}))
            following = page.paging.next if page.paging is not None else None
            if following is None or not following.after:
                return out
            after = following.after

    def missing_properties(self, names: list[str]) -> list[str]:
        """The company properties among ``names`` that do not exist."""
        missing = []
        for name in names:
            self.requests += 1
            try:
                self.client.crm.properties.core_api.get_by_name("companies", name)
            except Exception as exc:  # the properties API's ApiException
                if getattr(exc, "status", None) != 404:
                    raise crm_error("HubSpot", f"read the property {name}", exc) from exc
                missing.append(name)
        return missing

    @staticmethod
    def missing_message(names: list[str]) -> str:
        """What to do about properties that are missing and are not to be created."""
        return (f"HubSpot has no company properties {', '.join(names)}: create them, or let upcurve "
                "(create_properties: true in the mapping file)")

    def create_properties(self, names: list[str], mapping: CrmPushMapping) -> None:
        from hubspot.crm.properties import PropertyCreate

        by_property = {prop: value for value, prop in mapping.fields("hubspot").items()}
        for name in names:
            label, number = PUSHABLE[by_property[name]]
            spec = PropertyCreate(name=name, label=label, type="number" if number else "string",
                                  field_type="number" if number else "text", group_name=mapping.group)
            self._call(f"create the property {name}",
                       partial(self.client.crm.properties.core_api.create, "companies", spec))

    def write(self, changes: list[FieldChange], batch_size: int,
              progress: Callable[[int, int], None] | None = None) -> int:
        """Write the changes, one record's fields together, ``batch_size`` records a request; the requests made."""
        from hubspot.crm.companies import BatchInputSimplePublicObjectBatchInput, SimplePublicObjectBatchInput

        by_record: dict[str, dict[str, str]] = {}
        for change in changes:
            by_record.setdefault(change.record_id, {})[change.property] = change.new
        ids = list(by_record)
        batches = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
        for done, batch in enumerate(batches, start=1):
            body = BatchInputSimplePublicObjectBatchInput(
                inputs=[SimplePublicObjectBatchInput(id=i, properties=by_record[i]) for i in batch])
            self._call("update companies", partial(self.client.crm.companies.batch_api.update, body))
            if progress is not None:
                progress(done, len(batches))
        return len(batches)


class SalesforceAccounts:
    """Salesforce Accounts through ``simple-salesforce``: read every Account's key and pushed fields (SOQL, paged),
    check the fields exist (describe), write changes in batches of up to 200 (sObject Collections, each record on
    its own: one refused does not stop the others, and is reported). ``instance_url`` is the org's address
    (``https://acme.my.salesforce.com``); ``session`` a ``requests`` session (a proxy's, or a test's trust)."""

    #: Account fields are an administrator's to create (Setup), never an integration's.
    creates_properties = False

    def __init__(self, access_token: str, instance_url: str, *, session: Any = None,
                 backoff_seconds: float = 0.5) -> None:
        if not access_token or not instance_url:
            raise ConfigError("no Salesforce access token or instance URL: set SALESFORCE_ACCESS_TOKEN and "
                              "SALESFORCE_INSTANCE_URL (https://yourorg.my.salesforce.com)")
        self.client = salesforce_client(access_token, instance_url, session=session,
                                        backoff_seconds=backoff_seconds)
        self.requests = 0
        self.numbers: set[str] = set()

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        self.requests += 1
        try:
            return call()
        except Exception as exc:  # simple-salesforce's SalesforceError and its kinds, or the network's
            raise crm_error("Salesforce", what, exc) from exc

    def missing_properties(self, names: list[str]) -> list[str]:
        """The Account fields among ``names`` that do not exist (and which of the others are numbers)."""
        described = self._call("describe Account", partial(self.client.restful, "sobjects/Account/describe"))
        kinds = {f["name"]: f.get("type") for f in described.get("fields", [])}
        self.numbers = {n for n in names if kinds.get(n) in ("double", "percent", "currency", "int")}
        return [n for n in names if n not in kinds]

    def records(self, account_key: str, properties: list[str]) -> list[tuple[str, str, dict[str, str | None]]]:
        """Every Account holding a billing id: (record id, billing id, the pushed fields' current values, as text)."""
        fields = list(dict.fromkeys(["Id", account_key, *properties]))
        soql = f"SELECT {', '.join(fields)} FROM Account WHERE {account_key} != null"
        rows = self._call("read Accounts", partial(lambda q: list(self.client.query_all_iter(q)), soql))
        out = []
        for row in rows:
            values = {p: (None if row.get(p) is None else _number_text(row[p])) for p in properties}
            out.append((str(row["Id"]), str(row[account_key]), values))
        return out

    @staticmethod
    def missing_message(names: list[str]) -> str:
        """What to do about fields that are missing: an administrator creates them."""
        return (f"Salesforce has no Account fields {', '.join(names)}: create them in Setup → Object Manager → "
                "Account → Fields & Relationships (numbers for the scores, text for the rest), or name others in "
                "the mapping file")

    def write(self, changes: list[FieldChange], batch_size: int,
              progress: Callable[[int, int], None] | None = None) -> int:
        """Write the changes, one record's fields together, ``batch_size`` records a request; the requests made.

        Raises
        ------
        CrmError
            Naming each record Salesforce refused and why (the others are written).
        """
        by_record: dict[str, dict[str, Any]] = {}
        for change in changes:
            value: Any = change.new or None
            if value is not None and change.property in self.numbers:
                value = float(value)
            by_record.setdefault(change.record_id, {})[change.property] = value
        ids = list(by_record)
        batches = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
        refused: list[str] = []
        for done, batch in enumerate(batches, start=1):
            body = {"allOrNone": False, "records": [{"attributes": {"type": "Account"}, "id": i, **by_record[i]}
                                                   for i in batch]}
            results = self._call("update Accounts", partial(self.client.restful, "composite/sobjects",
                                                            method="PATCH", json=body))
            for record_id, result in zip(batch, results or [], strict=False):
                if not result.get("success"):
                    said = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in result.get("errors", []))
                    refused.append(f"{record_id} ({said})")
            if progress is not None:
                progress(done, len(batches))
        if refused:
            raise CrmError(f"Salesforce refused {len(refused)} Account(s), the others were written: "
                           + ", ".join(refused[:5]) + (" …" if len(refused) > 5 else ""))
        return len(batches)


def _number_text(value: Any) -> str:
    """A field's value as :func:`planned_changes` compares it: numbers as their shortest text."""
    if isinstance(value, float):
        return repr(value)
    return str(value)
