"""CRM facts from a Salesforce data export or HubSpot's CSV exports: each account's owner, segment, industry and
region, its renewal dates and its support cases, as the contract's ``accounts`` columns, ``renewals`` and
``tickets``.

A Salesforce data export (Setup → Data Export, or Data Loader) writes one CSV file per object, named after it, its
columns the fields' API names: ``Account.csv`` (``Id``, ``Name``, ``OwnerId``, ``Type``, ``Industry``,
``BillingCountry``, custom fields such as ``Stripe_Customer_ID__c``), ``User.csv`` (``Id``, ``Name``),
``Opportunity.csv`` (``Id``, ``AccountId``, ``Type``, ``CloseDate``) and ``Case.csv`` (``Id``, ``AccountId``,
``CreatedDate``, ``Priority``), ``Task.csv`` (``AccountId``, ``Type``, ``ActivityDate``, ``Status``) and
``Event.csv`` (``AccountId``, ``Type``, ``StartDateTime``). Only ``Account.csv`` is required.

The mapping (YAML; an unknown key is an error naming it) says which Account field holds the billing system's
account id (``account_key``: ``Id`` by default, or a custom field holding the Stripe customer id) and which fields
are the segment, industry and region; which opportunity types are renewals (``Renewal``). A renewal date is the
``CloseDate`` of each renewal opportunity; a ticket is a case, opened at its ``CreatedDate``, its severity its
``Priority``; the owner is the account owner's name (``User.csv``), else the owner's id.

Activities (tasks and events in Salesforce, calls and meetings in HubSpot) become the contract's ``activities``:
the plays a team logged, for [the plays' uplift](plays.md). An activity's ``play`` is its type (``Type``; HubSpot's
``Call and meeting type``), lowercased with ``_`` for spaces (``QBR`` → ``qbr``), else the kind of record
(``task``, ``event``, ``call``, ``meeting``); the mapping's ``plays`` names the types that are plays and what each is
called (``{QBR: qbr, "Executive Business Review": ebr}``), and the others are left out. ``ts``: a task's
``ActivityDate`` (its ``CreatedDate`` when it has none), an event's ``StartDateTime``, a call's or meeting's
``Activity date``; ``outcome``: a task's ``Status``, a meeting's ``Meeting outcome``, a call's ``Call outcome``.

HubSpot exports a view of companies, deals or tickets as a CSV file whose columns are the properties' labels
(``Record ID``, ``Company name``, ``Company owner``, ``Industry``, ``Country/Region``; ``Deal Type``, ``Close
Date``, ``Associated Company IDs``; ``Ticket ID``, ``Create date``, ``Priority``; ``Activity date``, ``Call and
meeting type``, ``Meeting outcome``, ``Call outcome``). A folder holds one export of each: the file whose name
holds ``compan`` is the companies (required), ``deal`` the deals, ``ticket`` the tickets, ``call`` the calls,
``meeting`` the meetings (HubSpot's own names, ``hubspot-crm-exports-all-companies-2024-06-30.csv``, match).
Its mapping names the company property holding the billing id (``Record ID`` by default), the others, the deal
types that are renewals, and a company date property holding the contract's end (a renewal date too).

A file's missing column is an error naming the file, the column and the columns it has; a row's date that does not
parse names the file, the line, the column and the value; all at once, and nothing is written.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from pydantic import BaseModel, ConfigDict

from upcurve.config import load_yaml_model
from upcurve.errors import ConfigError, ContractError, Problem, UpcurveError

__all__ = [
    "SALESFORCE_API_VERSION",
    "CrmError",
    "CrmFacts",
    "HubSpotApiMapping",
    "HubSpotMapping",
    "SalesforceMapping",
    "crm_error",
    "hubspot_api_facts",
    "hubspot_client",
    "hubspot_facts",
    "load_hubspot_api_mapping",
    "load_hubspot_mapping",
    "load_salesforce_mapping",
    "salesforce_api_facts",
    "salesforce_client",
    "salesforce_facts",
]


class SalesforceMapping(BaseModel):
    """Which Salesforce fields are which contract columns (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_key: str = "Id"
    segment: str | None = "Type"
    industry: str | None = "Industry"
    region: str | None = "BillingCountry"
    renewal_types: tuple[str, ...] = ("Renewal",)
    activity_type: str = "Type"
    plays: dict[str, str] | None = None


def load_salesforce_mapping(path: str | Path | None) -> SalesforceMapping:
    """The mapping file's fields (the defaults without one).

    Raises
    ------
    ConfigError
        Naming the file and every wrong key or value.
    """
    return load_yaml_model(path, SalesforceMapping, "mapping file")


class CrmFacts(BaseModel):
    """What the CRM says: per billing account id its ``owner``, ``segment``, ``industry`` and ``region`` (absent
    fields left out), its renewal dates, its tickets and its activities (None when the source held no activity
    records: an export without them); and notes."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    accounts: dict[str, dict[str, str | None]]
    renewals: pa.Table
    tickets: pa.Table
    notes: list[str]
    activities: pa.Table | None = None


def _field(record: dict[str, Any], names: tuple[str | None, ...]) -> str | None:
    """The first of the fields ``names`` (None: not mapped) that ``record`` fills."""
    return next((record[n] for n in names if n and record.get(n)), None)


class _Activities:
    """Activity records gathered as the contract's ``activities`` rows (see the module)."""

    def __init__(self, plays: dict[str, str] | None) -> None:
        self.plays = plays
        self.rows: dict[str, list[Any]] = {"account_id": [], "ts": [], "play": [], "outcome": []}
        self.undated = 0

    def play(self, kind: str | None, record: str) -> str | None:
        """The play an activity of type ``kind`` stands for: the mapping's name for it (None, left out, when the
        mapping names others); without one, the type itself, else the kind of record."""
        if self.plays is not None:
            return self.plays.get(kind or "")
        return "_".join(kind.lower().split()) if kind and kind.strip() else record

    def take(self, records: list[dict[str, Any]], *, record: str, keys: Callable[[dict[str, Any]], list[str]],
             kind: Callable[[dict[str, Any]], str | None], when: Callable[[dict[str, Any]], str | None],
             outcome: Callable[[dict[str, Any]], str | None]) -> list[tuple[int, str]]:
        """Add every record (``record``: what the CRM calls it) of a billing account (``keys``) that is a play; an
        undated one is counted; returns the lines and values of the dates that do not parse."""
        bad: list[tuple[int, str]] = []
        for line, r in enumerate(records, start=2):
            accounts, play = keys(r), self.play(kind(r), record)
            if not accounts or play is None:
                continue
            value = when(r)
            if not value:
                self.undated += 1
                continue
            ts = _timestamp(value)
            if ts is None:
                bad.append((line, str(value)))
                continue
            for key in accounts:
                self.rows["account_id"].append(key)
                self.rows["ts"].append(ts)
                self.rows["play"].append(play)
                self.rows["outcome"].append(outcome(r))
        return bad

    def table(self) -> pa.Table:
        return pa.table({"account_id": pa.array(self.rows["account_id"], pa.string()),
                         "ts": pa.array(self.rows["ts"], pa.timestamp("us")),
                         "play": pa.array(self.rows["play"], pa.string()),
                         "outcome": pa.array(self.rows["outcome"], pa.string())})


def _read(path: Path, needed: list[str], problems: list[Problem]) -> list[dict[str, Any]] | None:
    """A Salesforce CSV file's rows (every value as text, blanks as None), after checking its columns."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
        options = pacsv.ConvertOptions(strings_can_be_null=True,
                                       column_types={name: pa.string() for name in header})
        table = pacsv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path.name, f"the file cannot be read as CSV: {exc}"))
        return None
    missing = [c for c in needed if c not in table.column_names]
    for column in missing:
        problems.append(Problem(path.name, f"required column {column!r} is missing", column,
                                hint="Columns found: " + ", ".join(table.column_names)))
    return None if missing else table.to_pylist()


def _date(value: str | None) -> dt.date | None:
    """``2024-06-30`` (a date field), ``2024-06-30T10:00:00.000Z`` or ``2024-06-30 10:00`` (a date-time field)."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date() if ("T" in value or " " in value) \
            else dt.date.fromisoformat(value)
    except ValueError:
        return None


def _timestamp(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _bad_values(file: str, column: str, bad: list[tuple[int, str]], rule: str, problems: list[Problem],
                crm: str = "Salesforce") -> None:
    if bad:
        problems.append(Problem(file, rule, column, len(bad), tuple(r for r, _ in bad[:5]),
                                tuple(v for _, v in bad[:5]), "line", f"Export dates as {crm} writes them"))


def _facts(renewals: dict[str, list[Any]], tickets: dict[str, list[Any]], accounts: dict[str, dict[str, str | None]],
           notes: list[str], activities: _Activities | None = None) -> CrmFacts:
    if activities is not None and activities.undated:
        notes.append(f"{activities.undated:,} activit{'y has' if activities.undated == 1 else 'ies have'} no date: "
                     "left out")
    return CrmFacts(
        activities=None if activities is None else activities.table(),
        accounts=accounts,
        renewals=pa.table({"account_id": pa.array(renewals["account_id"], pa.string()),
                           "renewal_date": pa.array(renewals["renewal_date"], pa.date32())}),
        tickets=pa.table({"account_id": pa.array(tickets["account_id"], pa.string()),
                          "opened_at": pa.array(tickets["opened_at"], pa.timestamp("us")),
                          "severity": pa.array(tickets["severity"], pa.string())}),
        notes=notes,
    )


def salesforce_facts(folder: str | Path, mapping: SalesforceMapping) -> CrmFacts:
    """Read a Salesforce data export folder (see the module).

    Raises
    ------
    ConfigError
        The folder does not exist or holds no ``Account.csv``.
    ContractError
        Every missing column and unreadable date, at once.
    """
    folder = Path(folder)
    if not (folder / "Account.csv").is_file():
        raise ConfigError(f"{folder}: no Account.csv: give the folder of a Salesforce data export")
    problems: list[Problem] = []
    account_fields = ["Id", mapping.account_key, "OwnerId",
                      *[f for f in (mapping.segment, mapping.industry, mapping.region) if f]]
    accounts = _read(folder / "Account.csv", list(dict.fromkeys(account_fields)), problems)
    users = _read(folder / "User.csv", ["Id", "Name"], problems) if (folder / "User.csv").is_file() else []
    opportunities = _read(folder / "Opportunity.csv", ["AccountId", "Type", "CloseDate"], problems) \
        if (folder / "Opportunity.csv").is_file() else []
    cases = _read(folder / "Case.csv", ["AccountId", "CreatedDate", "Priority"], problems) \
        if (folder / "Case.csv").is_file() else []
    activities: dict[str, list[dict[str, Any]] | None] = {}
    for obj, when in _SALESFORCE_ACTIVITIES.items():
        if (folder / f"{obj}.csv").is_file():
            activities[obj] = _read(folder / f"{obj}.csv", ["AccountId", mapping.activity_type, when], problems)
    if problems or accounts is None:
        raise ContractError(problems)
    return _salesforce_rows(accounts, users or [], opportunities or [], cases or [], mapping,
                            {obj: f"{obj}.csv" for obj in ("Opportunity", "Case", *_SALESFORCE_ACTIVITIES)},
                            {obj: rows or [] for obj, rows in activities.items()} if activities else None)


#: Salesforce's activity objects and the field dating each.
_SALESFORCE_ACTIVITIES = {"Task": "ActivityDate", "Event": "StartDateTime"}


def _salesforce_rows(accounts: list[dict[str, Any]], users: list[dict[str, Any]],
                     opportunities: list[dict[str, Any]], cases: list[dict[str, Any]], mapping: SalesforceMapping,
                     names_of: dict[str, str], activity_records: dict[str, list[dict[str, Any]]] | None = None
                     ) -> CrmFacts:
    """The facts of Salesforce's records as rows keyed by the fields' API names, whether they came from a data
    export or the API; ``names_of``: how problems name each object's source; ``activity_records``: the Task and
    Event records read (None: none were)."""
    problems: list[Problem] = []
    names = {u["Id"]: u["Name"] for u in users}
    billing_id = {a["Id"]: a[mapping.account_key] for a in accounts if a.get(mapping.account_key)}
    facts: dict[str, dict[str, str | None]] = {}
    for a in accounts:
        key = a.get(mapping.account_key)
        if not key:
            continue
        facts[key] = {"owner": names.get(a.get("OwnerId") or "", a.get("OwnerId")),
                      **{col: a.get(field) for col, field in (("segment", mapping.segment),
                                                               ("industry", mapping.industry),
                                                               ("region", mapping.region)) if field}}
    notes = []
    without = sum(1 for a in accounts if not a.get(mapping.account_key))
    if without:
        notes.append(f"{without:,} Salesforce account(s) have no {mapping.account_key}: their facts are left out")
    renewals: dict[str, list[Any]] = {"account_id": [], "renewal_date": []}
    bad: list[tuple[int, str]] = []
    for line, o in enumerate(opportunities, start=2):
        if o.get("Type") not in mapping.renewal_types or o.get("AccountId") not in billing_id:
            continue
        day = _date(o.get("CloseDate"))
        if day is None:
            bad.append((line, str(o.get("CloseDate"))))
            continue
        renewals["account_id"].append(billing_id[o["AccountId"]])
        renewals["renewal_date"].append(day)
    _bad_values(names_of["Opportunity"], "CloseDate", bad, "not a date YYYY-MM-DD", problems)
    tickets: dict[str, list[Any]] = {"account_id": [], "opened_at": [], "severity": []}
    bad = []
    for line, c in enumerate(cases, start=2):
        if c.get("AccountId") not in billing_id:
            continue
        opened = _timestamp(c.get("CreatedDate"))
        if opened is None:
            bad.append((line, str(c.get("CreatedDate"))))
            continue
        tickets["account_id"].append(billing_id[c["AccountId"]])
        tickets["opened_at"].append(opened)
        tickets["severity"].append(c.get("Priority"))
    _bad_values(names_of["Case"], "CreatedDate", bad, "not a date and time such as 2024-06-30T10:00:00.000Z",
                problems)
    activities = None if activity_records is None else _Activities(mapping.plays)
    for obj, records in (activity_records or {}).items():
        assert activities is not None
        when = _SALESFORCE_ACTIVITIES[obj]
        fallback = "CreatedDate" if obj == "Task" else when  # a task without a due date is dated when created
        bad = activities.take(
            records, record=obj.lower(),
            keys=lambda r: [billing_id[r["AccountId"]]] if r.get("AccountId") in billing_id else [],
            kind=partial(_field, names=(mapping.activity_type,)), when=partial(_field, names=(when, fallback)),
            outcome=partial(_field, names=("Status",)))
        _bad_values(names_of[obj], when, bad, "not a date or date and time such as 2024-06-30T10:00:00.000Z",
                    problems)
    if problems:
        raise ContractError(problems)
    return _facts(renewals, tickets, facts, notes, activities)


class HubSpotMapping(BaseModel):
    """Which HubSpot properties (by the labels its exports use as column names) are which contract columns (see
    the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_key: str = "Record ID"
    owner: str | None = "Company owner"
    segment: str | None = None
    industry: str | None = "Industry"
    region: str | None = "Country/Region"
    contract_end: str | None = None
    deal_company: str = "Associated Company IDs"
    deal_type: str = "Deal Type"
    renewal_types: tuple[str, ...] = ("Renewal",)
    close_date: str = "Close Date"
    ticket_company: str = "Associated Company IDs"
    ticket_opened: str = "Create date"
    ticket_priority: str | None = "Priority"
    activity_company: str = "Associated Company IDs"
    activity_date: str = "Activity date"
    activity_type: str | None = "Call and meeting type"
    call_outcome: str | None = "Call outcome"
    meeting_outcome: str | None = "Meeting outcome"
    plays: dict[str, str] | None = None


def load_hubspot_mapping(path: str | Path | None) -> HubSpotMapping:
    """The mapping file's fields (the defaults without one).

    Raises
    ------
    ConfigError
        Naming the file and every wrong key or value.
    """
    return load_yaml_model(path, HubSpotMapping, "mapping file")


def _hubspot_files(folder: Path) -> dict[str, Path]:
    """The folder's export of each object, by the word its file name holds (see the module)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() == ".csv":
            name = path.name.lower()
            for obj, word in (("companies", "compan"), ("deals", "deal"), ("tickets", "ticket"),
                              ("calls", "call"), ("meetings", "meeting")):
                if word in name:
                    found.setdefault(obj, []).append(path)
    twice = {obj: paths for obj, paths in found.items() if len(paths) > 1}
    if twice:
        raise ConfigError(f"{folder}: " + "; ".join(
            f"more than one export of {obj}: {', '.join(p.name for p in paths)}" for obj, paths in twice.items())
            + ": keep one file of each object")
    if "companies" not in found:
        raise ConfigError(f"{folder}: no export of companies (a CSV file whose name holds 'compan'): give the "
                          "folder of HubSpot's CSV exports")
    return {obj: paths[0] for obj, paths in found.items()}


def _ids(value: str | None) -> list[str]:
    """HubSpot's associated record ids: ``123;456`` (a record may be associated with several)."""
    return [part.strip() for part in (value or "").split(";") if part.strip()]


def hubspot_facts(folder: str | Path, mapping: HubSpotMapping) -> CrmFacts:
    """Read a folder of HubSpot CSV exports (see the module).

    A deal or ticket associated with several companies counts for each that has a billing id.

    Raises
    ------
    ConfigError
        The folder does not exist, holds no export of companies, or two of one object.
    ContractError
        Every missing column and unreadable date, at once.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder: give the folder of HubSpot's CSV exports")
    files = _hubspot_files(folder)
    problems: list[Problem] = []
    company_fields = ["Record ID", mapping.account_key, *[f for f in (mapping.owner, mapping.segment,
                                                                        mapping.industry, mapping.region,
                                                                        mapping.contract_end) if f]]
    companies = _read(files["companies"], list(dict.fromkeys(company_fields)), problems)
    deals = _read(files["deals"], [mapping.deal_company, mapping.deal_type, mapping.close_date], problems) \
        if "deals" in files else []
    ticket_fields = [mapping.ticket_company, mapping.ticket_opened, *([mapping.ticket_priority]
                                                                     if mapping.ticket_priority else [])]
    tickets_in = _read(files["tickets"], ticket_fields, problems) if "tickets" in files else []
    activity_fields = [mapping.activity_company, mapping.activity_date]
    activities: dict[str, list[dict[str, Any]]] = {
        obj: _read(files[obj], activity_fields, problems) or [] for obj in ("calls", "meetings") if obj in files}
    if problems or companies is None:
        raise ContractError(problems)
    names = {obj: path.name for obj, path in files.items()}
    return _hubspot_rows(companies, deals if "deals" in files else None,
                         tickets_in if "tickets" in files else None, mapping, names, activities or None)


def _hubspot_rows(companies: list[dict[str, Any]], deals: list[dict[str, Any]] | None,
                  tickets_in: list[dict[str, Any]] | None, mapping: HubSpotMapping,
                  names: dict[str, str], activity_records: dict[str, list[dict[str, Any]]] | None = None
                  ) -> CrmFacts:
    """The facts of HubSpot's companies, deals, tickets, calls and meetings as rows keyed by the mapping's names (a
    company's own id under ``Record ID``; a deal's, ticket's or activity's companies under its ``*_company`` name,
    ``;`` between them), whether they came from CSV exports or the API; ``names``: how problems name each object's
    source; ``activity_records``: the calls and meetings read (None: none were)."""
    problems: list[Problem] = []
    billing_id = {c["Record ID"]: c[mapping.account_key] for c in companies
                  if c.get("Record ID") and c.get(mapping.account_key)}
    facts: dict[str, dict[str, str | None]] = {}
    renewals: dict[str, list[Any]] = {"account_id": [], "renewal_date": []}
    bad: list[tuple[int, str]] = []
    for line, c in enumerate(companies, start=2):
        key = c.get(mapping.account_key)
        if not key:
            continue
        facts[key] = {col: c.get(field) for col, field in (("owner", mapping.owner), ("segment", mapping.segment),
                                                            ("industry", mapping.industry),
                                                            ("region", mapping.region)) if field}
        if mapping.contract_end and c.get(mapping.contract_end):
            day = _date(c[mapping.contract_end])
            if day is None:
                bad.append((line, str(c[mapping.contract_end])))
            else:
                renewals["account_id"].append(key)
                renewals["renewal_date"].append(day)
    if mapping.contract_end:
        _bad_values(names["companies"], mapping.contract_end, bad, "not a date YYYY-MM-DD", problems, "HubSpot")
    notes = []
    without = sum(1 for c in companies if not c.get(mapping.account_key))
    if without:
        notes.append(f"{without:,} HubSpot compan{'y has' if without == 1 else 'ies have'} no {mapping.account_key}: "
                     "their facts are left out")
    bad = []
    for line, d in enumerate(deals or [], start=2):
        keys = [billing_id[i] for i in _ids(d.get(mapping.deal_company)) if i in billing_id]
        if d.get(mapping.deal_type) not in mapping.renewal_types or not keys:
            continue
        day = _date(d.get(mapping.close_date))
        if day is None:
            bad.append((line, str(d.get(mapping.close_date))))
            continue
        for key in keys:
            renewals["account_id"].append(key)
            renewals["renewal_date"].append(day)
    if deals is not None:
        _bad_values(names["deals"], mapping.close_date, bad, "not a date YYYY-MM-DD", problems, "HubSpot")
    tickets: dict[str, list[Any]] = {"account_id": [], "opened_at": [], "severity": []}
    bad = []
    for line, t in enumerate(tickets_in or [], start=2):
        keys = [billing_id[i] for i in _ids(t.get(mapping.ticket_company)) if i in billing_id]
        if not keys:
            continue
        opened = _timestamp(t.get(mapping.ticket_opened))
        if opened is None:
            bad.append((line, str(t.get(mapping.ticket_opened))))
            continue
        for key in keys:
            tickets["account_id"].append(key)
            tickets["opened_at"].append(opened)
            tickets["severity"].append(t.get(mapping.ticket_priority) if mapping.ticket_priority else None)
    if tickets_in is not None:
        _bad_values(names["tickets"], mapping.ticket_opened, bad,
                    "not a date and time such as 2024-06-30 14:05", problems, "HubSpot")
    activities = None if activity_records is None else _Activities(mapping.plays)
    for obj, records in (activity_records or {}).items():
        assert activities is not None
        outcome = mapping.call_outcome if obj == "calls" else mapping.meeting_outcome
        bad = activities.take(
            records, record=obj[:-1],
            keys=lambda r: [billing_id[i] for i in _ids(r.get(mapping.activity_company)) if i in billing_id],
            kind=partial(_field, names=(mapping.activity_type,)), when=partial(_field, names=(mapping.activity_date,)),
            outcome=partial(_field, names=(outcome,)))
        _bad_values(names[obj], mapping.activity_date, bad, "not a date and time such as 2024-06-30 14:05",
                    problems, "HubSpot")
    if problems:
        raise ContractError(problems)
    return _facts(renewals, tickets, facts, notes, activities)


class HubSpotApiMapping(HubSpotMapping):
    """:class:`HubSpotMapping` for HubSpot's API, which names properties by their internal names (``industry``,
    ``country``, ``dealtype``, ``closedate``, ``createdate``, ``hs_ticket_priority``); the owner is the company's
    ``hubspot_owner_id``, read as the owner's name; deals and tickets reach their companies by association."""

    account_key: str = "hs_object_id"
    owner: str | None = "hubspot_owner_id"
    industry: str | None = "industry"
    region: str | None = "country"
    deal_type: str = "dealtype"
    renewal_types: tuple[str, ...] = ("renewal",)
    close_date: str = "closedate"
    ticket_opened: str = "createdate"
    ticket_priority: str | None = "hs_ticket_priority"
    activity_date: str = "hs_timestamp"
    activity_type: str | None = "hs_activity_type"
    call_outcome: str | None = "hs_call_status"
    meeting_outcome: str | None = "hs_meeting_outcome"


def load_hubspot_api_mapping(path: str | Path | None) -> HubSpotApiMapping:
    """The mapping file for HubSpot's API (the defaults without one); see :func:`load_hubspot_mapping`."""
    return load_yaml_model(path, HubSpotApiMapping, "mapping file")


class CrmError(UpcurveError):
    """The CRM refused the token or answered with an error."""


#: The Salesforce REST API version read and written.
SALESFORCE_API_VERSION = "62.0"


def _retry(backoff_seconds: float) -> Any:
    """429 and 5xx answers retried five times with exponential backoff, honouring ``Retry-After``, for every
    method (a batch update sends the same values again: idempotent)."""
    from urllib3.util.retry import Retry

    return Retry(total=5, backoff_factor=backoff_seconds, status_forcelist=(429, 500, 502, 503, 504),
                 allowed_methods=None, respect_retry_after_header=True, raise_on_status=False)


def hubspot_client(access_token: str, api_base: str | None = None, *, backoff_seconds: float = 0.5) -> Any:
    """HubSpot's official client (``hubspot-api-client``), retrying as :func:`_retry`; ``api_base`` points it
    elsewhere (a proxy, a test server).

    Raises
    ------
    ConfigError
        The client is not installed.
    """
    try:
        import hubspot
    except ImportError as exc:  # the optional dependency
        raise ConfigError("HubSpot needs its client: pip install 'upcurve[hubspot]'") from exc
    options: dict[str, Any] = {"access_token": access_token, "retry": _retry(backoff_seconds)}
    if api_base:
        options["host"] = api_base.rstrip("/")
    return hubspot.Client.create(**options)


def salesforce_client(access_token: str, instance_url: str, *, session: Any = None,
                      backoff_seconds: float = 0.5) -> Any:
    """A ``simple-salesforce`` client of the org at ``instance_url``, retrying as :func:`_retry`; ``session``: a
    ``requests`` session (a proxy's, or a test's trust).

    Raises
    ------
    ConfigError
        The client is not installed.
    """
    try:
        import requests
        from requests.adapters import HTTPAdapter
        from simple_salesforce import Salesforce
    except ImportError as exc:  # the optional dependency
        raise ConfigError("Salesforce needs its client: pip install 'upcurve[salesforce]'") from exc
    session = session or requests.Session()
    session.mount("https://", HTTPAdapter(max_retries=_retry(backoff_seconds)))
    return Salesforce(instance_url=instance_url, session_id=access_token, session=session,
                      version=SALESFORCE_API_VERSION)


def crm_error(crm: str, what: str, exc: Exception) -> CrmError:
    """A failed request's answer in words: the CRM's client exceptions carry the HTTP ``status`` and the body
    (HubSpot's ``body``, simple-salesforce's ``content``); none means the CRM could not be reached."""
    status = getattr(exc, "status", None)
    if status is None:
        return CrmError(f"{crm} could not be reached ({what}): {exc}")
    body = str(getattr(exc, "body", None) or getattr(exc, "content", None) or exc)[:300]
    if status == 401:
        return CrmError(f"{crm} refused the access token ({what}): {body}")
    if status == 403:
        return CrmError(f"the access token may not {what} in {crm}: give it that permission ({body})")
    return CrmError(f"{crm} answered {status} ({what}): {body}")


def _pages(call: Callable[[str | None], Any], what: str) -> list[Any]:
    """Every result of a paged HubSpot list (``paging.next.after``), HubSpot's errors in words."""
    out: list[Any] = []
    after = None
    while True:
        try:
            page = call(after)
        except Exception as exc:  # every sub-API of the client raises its own ApiException
            raise crm_error("HubSpot", what, exc) from exc
        out.extend(page.results)
        following = page.paging.next if page.paging is not None else None
        if following is None or not following.after:
            return out
        after = following.after


def _associated(obj: Any) -> str:
    found = (getattr(obj, "associations", None) or {}).get("companies")
    return ";".join(str(a.id) for a in (found.results if found is not None else []))


def hubspot_api_facts(access_token: str, mapping: HubSpotApiMapping, *, api_base: str | None = None,
                      say: Callable[[str], None] = lambda _msg: None) -> CrmFacts:
    """Read companies, owners, deals and tickets through HubSpot's official client (``hubspot-api-client``), 100
    a page, with their associations; the facts as :func:`hubspot_facts` makes them. 429 and 5xx answers are
    retried with backoff.

    Raises
    ------
    ConfigError
        No token, or the client not installed.
    CrmError
        HubSpot refused the token or answered with an error.
    ContractError
        Every unreadable date.
    """
    if not access_token:
        raise ConfigError("no HubSpot access token: set HUBSPOT_ACCESS_TOKEN (a private app's token with the "
                          "crm.objects.companies.read, crm.objects.deals.read, tickets, crm.objects.owners.read "
                          "and crm.objects.contacts.read (calls and meetings) scopes)")
    crm = hubspot_client(access_token, api_base).crm
    company_props = [p for p in (mapping.account_key, mapping.owner, mapping.segment, mapping.industry,
                                 mapping.region, mapping.contract_end) if p]
    say("reading HubSpot's companies")
    companies = _pages(lambda after: crm.companies.basic_api.get_page(
        limit=100, after=after, properties=company_props, archived=False), "read companies")
    owners: dict[str, str] = {}
    if mapping.owner == "hubspot_owner_id":
        say("reading HubSpot's owners")
        for owner in _pages(lambda after: crm.owners.owners_api.get_page(limit=100, after=after), "read owners"):
            owners[str(owner.id)] = " ".join(n for n in (owner.first_name, owner.last_name) if n) or owner.email
    say("reading HubSpot's deals")
    deals = _pages(lambda after: crm.deals.basic_api.get_page(
        limit=100, after=after, properties=[mapping.deal_type, mapping.close_date], associations=["companies"],
        archived=False), "read deals")
    say("reading HubSpot's tickets")
    ticket_props = [p for p in (mapping.ticket_opened, mapping.ticket_priority) if p]
    tickets = _pages(lambda after: crm.tickets.basic_api.get_page(
        limit=100, after=after, properties=ticket_props, associations=["companies"], archived=False),
        "read tickets")
    company_rows = []
    for c in companies:
        row = {**(c.properties or {}), "Record ID": str(c.id)}
        if mapping.account_key == "hs_object_id":
            row["hs_object_id"] = str(c.id)
        if mapping.owner == "hubspot_owner_id" and row.get("hubspot_owner_id"):
            row["hubspot_owner_id"] = owners.get(str(row["hubspot_owner_id"]), row["hubspot_owner_id"])
        company_rows.append(row)
    deal_rows = [{**(d.properties or {}), mapping.deal_company: _associated(d)} for d in deals]
    ticket_rows = [{**(t.properties or {}), mapping.ticket_company: _associated(t)} for t in tickets]
    activities: dict[str, list[dict[str, Any]]] = {}
    for obj, outcome in (("calls", mapping.call_outcome), ("meetings", mapping.meeting_outcome)):
        say(f"reading HubSpot's {obj}")
        props = [p for p in (mapping.activity_date, mapping.activity_type, outcome) if p]
        api = getattr(crm.objects, obj).basic_api
        records = _pages(partial(_activity_page, api, props), f"read {obj}")
        activities[obj] = [{**(r.properties or {}), mapping.activity_company: _associated(r)} for r in records]
    return _hubspot_rows(company_rows, deal_rows, ticket_rows, mapping,
                         {obj: f"HubSpot {obj}" for obj in ("companies", "deals", "tickets", "calls", "meetings")},
                         activities)


def _activity_page(api: Any, properties: list[str], after: str | None) -> Any:
    return api.get_page(limit=100, after=after, properties=properties, associations=["companies"], archived=False)


def salesforce_api_facts(access_token: str, instance_url: str, mapping: SalesforceMapping, *, session: Any = None,
                         say: Callable[[str], None] = lambda _msg: None) -> CrmFacts:
    """Read Accounts, Users, Opportunities and Cases through ``simple-salesforce`` (SOQL, every page) from the org
    at ``instance_url``; the facts as :func:`salesforce_facts` makes them from an export. ``session``: a
    ``requests`` session (a proxy's, or a test's trust).

    Raises
    ------
    ConfigError
        No token or instance URL, or the client not installed.
    CrmError
        Salesforce refused the token or answered with an error (a field the mapping names that Account lacks).
    ContractError
        Every unreadable date.
    """
    if not access_token or not instance_url:
        raise ConfigError("no Salesforce access token or instance URL: set SALESFORCE_ACCESS_TOKEN and "
                          "SALESFORCE_INSTANCE_URL (https://yourorg.my.salesforce.com)")
    client = salesforce_client(access_token, instance_url, session=session)

    def query(obj: str, fields: list[str], where: str = "") -> list[dict[str, Any]]:
        say(f"reading Salesforce's {obj} records")
        soql = f"SELECT {', '.join(dict.fromkeys(fields))} FROM {obj}{where}"
        try:
            rows = list(client.query_all_iter(soql))
        except Exception as exc:  # simple-salesforce's SalesforceError and its kinds, or the network's
            raise crm_error("Salesforce", f"read {obj}", exc) from exc
        return [{k: (None if v is None else str(v)) for k, v in r.items() if k != "attributes"} for r in rows]

    accounts = query("Account", ["Id", mapping.account_key, "OwnerId",
                                 *[f for f in (mapping.segment, mapping.industry, mapping.region) if f]])
    users = query("User", ["Id", "Name"])
    opportunities = query("Opportunity", ["AccountId", "Type", "CloseDate"])
    cases = query("Case", ["AccountId", "CreatedDate", "Priority"])
    activities = {
        "Task": query("Task", ["AccountId", mapping.activity_type, "ActivityDate", "CreatedDate", "Status"],
                      " WHERE AccountId != null"),
        "Event": query("Event", ["AccountId", mapping.activity_type, "StartDateTime"], " WHERE AccountId != null")}
    return _salesforce_rows(accounts, users, opportunities, cases, mapping,
                            {obj: f"Salesforce {obj}s" for obj in ("Opportunity", "Case", "Task", "Event")}
                            | {"Opportunity": "Salesforce Opportunities"}, activities)
