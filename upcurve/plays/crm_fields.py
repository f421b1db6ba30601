"""Scores back where account teams work: each account's health, tier, expansion propensity, churn risk, lever and
top reason written to fields of its CRM record (HubSpot company properties).

The plan is computed before anything is sent: the values a run gives each account (:func:`desired_values`), read
against what the CRM holds now (:func:`planned_changes`), so only a value that differs is written; a second push of
the same run changes nothing (idempotent), and ``--dry-run`` shows the plan and sends nothing. Changes go in batches
(100 records a request, HubSpot's limit), properties that do not exist yet are created first (in their own group),
and a rate limit (429) or a server error is retried with backoff.

Values as they are written (text; the CRM's number properties read them as numbers):

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
from upcurve.errors import ConfigError, UpcurveError

__all__ = ["PUSHABLE", "CrmError", "CrmPushMapping", "FieldChange", "HubSpotCompanies", "desired_values",
           "load_push_mapping", "planned_changes"]

#: The run's values that can be pushed, each with its default HubSpot property and the property's label and type.
PUSHABLE: dict[str, tuple[str, str, str]] = {
    "health_score": ("upcurve_health_score", "upcurve health score", "number"),
    "health_tier": ("upcurve_health_tier", "upcurve health tier", "string"),
    "expansion_propensity": ("upcurve_expansion_propensity", "upcurve expansion propensity (%)", "number"),
    "churn_risk": ("upcurve_churn_risk", "upcurve churn risk (%)", "number"),
    "recommended_lever": ("upcurve_lever", "upcurve recommended lever", "string"),
    "top_reason": ("upcurve_top_reason", "upcurve top reason", "string"),
}
_PERCENT = ("expansion_propensity", "churn_risk")


class CrmError(UpcurveError):
    """The CRM refused the token or answered with an error."""


class CrmPushMapping(BaseModel):
    """Which CRM property holds the billing account id (``account_key``), which property each value goes to
    (``properties``: a value left out is not pushed), how many records a request writes, and whether missing
    properties are created (in ``group``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_key: str = "hs_object_id"
    properties: dict[str, str] = Field(default_factory=lambda: {k: v[0] for k, v in PUSHABLE.items()})
    batch_size: int = Field(100, ge=1, le=100)
    create_properties: bool = True
    group: str = "companyinformation"

    @field_validator("properties")
    @classmethod
    def _known_values(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(PUSHABLE))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a value upcurve pushes (one of {', '.join(PUSHABLE)})")
        if not value:
            raise ValueError("name at least one value to push")
        twice = sorted({p for p in value.values() if list(value.values()).count(p) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)}: one property receives two values")
        return value


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


def desired_values(accounts: pa.Table, mapping: CrmPushMapping) -> dict[str, dict[str, str]]:
    """Each account's values as the CRM's properties should hold them (see the module for the formats), by
    billing account id. ``top_reason`` is the first of the ``reasons``."""
    columns = {name: ("reasons" if name == "top_reason" else name) for name in mapping.properties}
    missing = sorted({c for c in columns.values() if c not in accounts.column_names})
    if missing:
        raise ConfigError(f"the run's accounts have no {', '.join(missing)}: push a run that scored its accounts")
    values = {name: accounts[column].to_pylist() for name, column in columns.items()}
    out: dict[str, dict[str, str]] = {}
    for i, account_id in enumerate(accounts["account_id"].to_pylist()):
        out[str(account_id)] = {mapping.properties[name]: _text(name, values[name][i]) for name in columns}
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


def _crm_error(what: str, exc: Exception) -> CrmError:
    """HubSpot's answer to a failed request, in words."""
    status = getattr(exc, "status", None)
    if status is None:
        return CrmError(f"HubSpot could not be reached ({what}): {exc}")
    body = str(getattr(exc, "body", "") or "")[:300]
    if status == 401:
        return CrmError(f"HubSpot refused the access token ({what}): {body}")
    if status == 403:
        return CrmError(f"the access token may not {what}: give the private app that scope ({body})")
    return CrmError(f"HubSpot answered {status} ({what}): {body}")


class HubSpotCompanies:
    """HubSpot's companies through its official client (``hubspot-api-client``): read every company's key and
    pushed properties, create missing properties, write changes in batches. ``api_base`` points it elsewhere (a
    proxy, a test server); 429 and 5xx answers are retried with backoff, honouring ``Retry-After``."""

    def __init__(self, access_token: str, *, api_base: str | None = None, backoff_seconds: float = 0.5) -> None:
        if not access_token:
            raise ConfigError("no HubSpot access token: set HUBSPOT_ACCESS_TOKEN (a private app's token with the "
                              "crm.objects.companies.read and .write and crm.schemas.companies.write scopes)")
        try:
            import hubspot
            from urllib3.util.retry import Retry
        except ImportError as exc:  # the optional dependency
            raise ConfigError("pushing to HubSpot needs its client: pip install 'upcurve[hubspot]'") from exc
        retry = Retry(total=5, backoff_factor=backoff_seconds, status_forcelist=(429, 500, 502, 503, 504),
                      allowed_methods=None, respect_retry_after_header=True, raise_on_status=False)
        options: dict[str, Any] = {"access_token": access_token, "retry": retry}
        if api_base:
            options["host"] = api_base.rstrip("/")
        self.client = hubspot.Client.create(**options)
        self.requests = 0

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        self.requests += 1
        try:
            return call()
        except Exception as exc:  # every sub-API of the client raises its own ApiException
            raise _crm_error(what, exc) from exc

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
                    raise _crm_error(f"read the property {name}", exc) from exc
                missing.append(name)
        return missing

    def create_properties(self, names: list[str], mapping: CrmPushMapping) -> None:
        from hubspot.crm.properties import PropertyCreate

        by_property = {prop: value for value, prop in mapping.properties.items()}
        for name in names:
            _, label, kind = PUSHABLE[by_property[name]]
            spec = PropertyCreate(name=name, label=label, type=kind,
                                  field_type="number" if kind == "number" else "text", group_name=mapping.group)
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
