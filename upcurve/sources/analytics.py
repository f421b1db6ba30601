"""Product analytics exports as the contract's ``events`` and ``users``: Segment (track, identify and group calls
as JSON lines), Amplitude (its export's JSON lines, gzipped or not) and Mixpanel (its raw event export's JSON
lines), with a mapping file that says which events are logins, which event is which feature and category, and how a
user belongs to an account.

The mapping (YAML, validated like every settings file; an unknown key is an error naming it)::

    account:
      group: company          # Segment group calls / Amplitude `groups` / Mixpanel `$groups` of this type
      property: account_id    # else this property of the event (or of the user's traits)
    logins: [Signed In]       # events recorded as `login`
    features:                 # event → feature (and its category)
      Report Created: {feature: reports, category: analytics}
    role: role                # the user trait (identify call / user property) holding the user's role
    ignore: [Page Viewed]     # events left out

A record sent twice (Segment's ``messageId``, Amplitude's and Mixpanel's ``$insert_id``) is read once; Segment's
``alias`` calls are skipped. A user belongs to the account its latest group call (Segment), group (Amplitude,
Mixpanel) or account property named; an event names its own account first, else its user's. Events of users
with no account are left out and counted. ``users`` holds each user's account, first event (``invited_at`` and
``activated_at``: an export knows no invitations) and role.

A line that is not JSON, or lacks what its format requires (a timestamp, an event name, a user), is a problem
naming the file, the line and the field; every problem of every file is reported at once and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from upcurve.config import load_yaml_model
from upcurve.errors import ConfigError, ContractError, Problem

__all__ = ["ANALYTICS_FORMATS", "AnalyticsMapping", "analytics_tables", "load_mapping"]

ANALYTICS_FORMATS = ("segment", "amplitude", "mixpanel")
#: The most problems listed per file (every one is counted).
_SHOWN = 20


class AccountRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str | None = "company"
    property: str | None = "account_id"


class FeatureRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str
    category: str | None = None


class AnalyticsMapping(BaseModel):
    """How an analytics export maps to ``events`` and ``users`` (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: AccountRule = AccountRule()
    logins: tuple[str, ...] = ()
    features: dict[str, FeatureRule] = {}
    role: str | None = "role"
    ignore: tuple[str, ...] = ()


def load_mapping(path: str | Path | None) -> AnalyticsMapping:
    """The mapping file's rules (the defaults without one).

    Raises
    ------
    ConfigError
        Naming the file and every wrong key or value.
    """
    return load_yaml_model(path, AnalyticsMapping, "mapping file")


@dataclass
class _Record:
    """One call of an export, in a common shape."""

    kind: Literal["track", "identify", "group"]
    ts: dt.datetime
    user: str
    event: str | None = None
    account: str | None = None
    role: str | None = None
    uid: str | None = None  # the export's own id of the record: a record sent twice is counted once


@dataclass
class _Read:
    records: list[_Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's non-blank lines, numbered from 1 (a ``.gz`` file read through gzip, as Amplitude exports)."""
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")) as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line


def _timestamp(value: Any) -> dt.datetime | None:
    """ISO 8601 text (Segment), ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (Amplitude) or Unix seconds or milliseconds
    (Mixpanel), as naive UTC."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _group_of(groups: Any, group: str | None) -> str | None:
    if not group or not isinstance(groups, dict):
        return None
    value = groups.get(group)
    if isinstance(value, list):
        value = value[0] if value else None
    return _text(value)


def _segment(obj: dict[str, Any], mapping: AnalyticsMapping) -> tuple[_Record | None, str | None]:
    kind = obj.get("type")
    if kind == "alias":
        return None, None  # merges two user ids in Segment's own identity graph: nothing for events or users
    if kind not in ("track", "identify", "group", "page", "screen"):
        return None, f"type: {kind!r} is not a Segment call"
    if kind in ("page", "screen"):
        obj = {**obj, "type": "track", "event": obj.get("name") or kind}
        kind = "track"
    ts = _timestamp(obj.get("timestamp") or obj.get("sentAt") or obj.get("receivedAt"))
    user = _text(obj.get("userId")) or _text(obj.get("anonymousId"))
    if ts is None:
        return None, "timestamp: missing or not a date and time"
    if user is None:
        return None, "userId: missing (and no anonymousId)"
    traits = obj.get("traits") or (obj.get("context") or {}).get("traits") or {}
    properties = obj.get("properties") or {}
    if kind == "group":
        account = _text(obj.get("groupId"))
        if account is None:
            return None, "groupId: missing on a group call"
        return _Record("group", ts, user, account=account), None
    if kind == "identify":
        account = _text(traits.get(mapping.account.property)) if mapping.account.property else None
        return _Record("identify", ts, user, account=account,
                       role=_text(traits.get(mapping.role)) if mapping.role else None), None
    event = _text(obj.get("event"))
    if event is None:
        return None, "event: missing on a track call"
    account = _text((obj.get("context") or {}).get("groupId"))
    if account is None and mapping.account.property:
        account = _text(properties.get(mapping.account.property))
    return _Record("track", ts, user, event=event, account=account, uid=_text(obj.get("messageId"))), None


def _amplitude(obj: dict[str, Any], mapping: AnalyticsMapping) -> tuple[_Record | None, str | None]:
    ts = _timestamp(obj.get("event_time") or obj.get("client_event_time"))
    user = _text(obj.get("user_id")) or _text(obj.get("device_id"))
    event = _text(obj.get("event_type"))
    if ts is None:
        return None, "event_time: missing or not a date and time"
    if user is None:
        return None, "user_id: missing (and no device_id)"
    if event is None:
        return None, "event_type: missing"
    props = obj.get("event_properties") or {}
    user_props = obj.get("user_properties") or {}
    account = _group_of(obj.get("groups"), mapping.account.group)
    if account is None and mapping.account.property:
        account = _text(props.get(mapping.account.property)) or _text(user_props.get(mapping.account.property))
    if event == "$identify":
        return _Record("identify", ts, user, account=account,
                       role=_text(user_props.get(mapping.role)) if mapping.role else None), None
    role = _text(user_props.get(mapping.role)) if mapping.role else None
    uid = _text(obj.get("$insert_id")) or _text(obj.get("uuid"))
    return _Record("track", ts, user, event=event, account=account, role=role, uid=uid), None


def _mixpanel(obj: dict[str, Any], mapping: AnalyticsMapping) -> tuple[_Record | None, str | None]:
    event = _text(obj.get("event"))
    props = obj.get("properties")
    if not isinstance(props, dict):
        return None, "properties: missing"
    ts = _timestamp(props.get("time"))
    user = _text(props.get("distinct_id")) or _text(props.get("$user_id"))
    if event is None:
        return None, "event: missing"
    if ts is None:
        return None, "properties.time: missing or not a time"
    if user is None:
        return None, "properties.distinct_id: missing"
    account = _group_of(props.get("$groups"), mapping.account.group)
    if account is None and mapping.account.group:
        # Mixpanel's group keys are event properties too, list-valued
        account = _group_of(props, mapping.account.group)
    if account is None and mapping.account.property:
        account = _group_of(props, mapping.account.property)
    return _Record("track", ts, user, event=event, account=account,
                   role=_text(props.get(mapping.role)) if mapping.role else None,
                   uid=_text(props.get("$insert_id"))), None


_READERS = {"segment": _segment, "amplitude": _amplitude, "mixpanel": _mixpanel}


def _read(fmt: str, files: list[Path], mapping: AnalyticsMapping) -> _Read:
    read = _Read()
    reader = _READERS[fmt]
    for path in files:
        found: dict[str, list[tuple[int, str]]] = {}
        try:
            for number, line in _lines(path):
                try:
                    obj = json.loads(line)
                except ValueError:
                    found.setdefault("not a JSON object", []).append((number, line.strip()[:60]))
                    continue
                if not isinstance(obj, dict):
                    found.setdefault("not a JSON object", []).append((number, line.strip()[:60]))
                    continue
                record, problem = reader(obj, mapping)
                if problem is not None:
                    found.setdefault(problem, []).append((number, line.strip()[:60]))
                elif record is not None:
                    read.records.append(record)
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            read.problems.append(Problem(path.name, f"the file cannot be read: {exc}"))
            continue
        for rule, rows in found.items():
            read.problems.append(Problem(path.name, rule, None, len(rows), tuple(r for r, _ in rows[:5]),
                                         tuple(v for _, v in rows[:5]), "line",
                                         f"Each line is one {fmt} export record (docs/sources.md)"))
    return read


def analytics_tables(fmt: str, files: list[str | Path], mapping: AnalyticsMapping
                     ) -> tuple[dict[str, pa.Table], list[str]]:
    """``events`` and ``users`` from a product analytics export, and notes (events left out, and why).

    Raises
    ------
    ConfigError
        An unknown format, or no file.
    ContractError
        Every malformed line of every file (nothing is written).
    """
    if fmt not in _READERS:
        raise ConfigError(f"unknown analytics format {fmt!r}: use one of {', '.join(ANALYTICS_FORMATS)}")
    paths = [Path(f) for f in files]
    if not paths:
        raise ConfigError(f"give the {fmt} export's files")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError("no such file: " + ", ".join(missing))
    read = _read(fmt, paths, mapping)
    if read.problems:
        raise ContractError(read.problems)
    # exports deliver at least once (Mixpanel's raw export is not deduplicated): one record per id, as each
    # format's documentation advises (Segment's messageId; Amplitude's and Mixpanel's $insert_id)
    seen: set[tuple[str, str, str | None]] = set()
    unique = []
    for r in read.records:
        key = (r.uid, r.user, r.event) if r.uid else None
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        unique.append(r)
    duplicates = len(read.records) - len(unique)
    records = sorted(unique, key=lambda r: r.ts)
    account_of: dict[str, str] = {}
    role_of: dict[str, str] = {}
    first: dict[str, dt.datetime] = {}
    for r in records:
        # a group or identify call says where the user belongs (the latest wins); else its first event's account
        said = r.kind in ("group", "identify") or r.user not in account_of
        if r.account and said:
            account_of[r.user] = r.account
        if r.role:
            role_of[r.user] = r.role
    logins, ignored = set(mapping.logins), set(mapping.ignore)
    events: dict[str, list[Any]] = {"ts": [], "account_id": [], "user_id": [], "event": [], "feature": [],
                                    "category": []}
    orphans = skipped = 0
    for r in records:
        if r.kind != "track":
            continue
        if r.event in ignored:
            skipped += 1
            continue
        account = r.account or account_of.get(r.user)
        if account is None:
            orphans += 1
            continue
        account_of.setdefault(r.user, account)
        first.setdefault(r.user, r.ts)
        rule = mapping.features.get(r.event or "")
        events["ts"].append(r.ts)
        events["account_id"].append(account)
        events["user_id"].append(r.user)
        events["event"].append("login" if r.event in logins else r.event)
        events["feature"].append(rule.feature if rule else None)
        events["category"].append(rule.category if rule else None)
    users: dict[str, list[Any]] = {"user_id": [], "account_id": [], "invited_at": [], "activated_at": [],
                                   "role": []}
    for user, when in sorted(first.items()):
        users["user_id"].append(user)
        users["account_id"].append(account_of[user])
        users["invited_at"].append(when)
        users["activated_at"].append(when)
        users["role"].append(role_of.get(user))
    notes = []
    if orphans:
        notes.append(f"{orphans:,} event(s) of users with no account were left out: map the account with "
                     "account.group or account.property")
    if skipped:
        notes.append(f"{skipped:,} event(s) left out as the mapping's ignore asks")
    if duplicates:
        notes.append(f"{duplicates:,} record(s) sent twice (the same id) counted once")
    stamp = pa.timestamp("us")
    return {
        "events": pa.table({k: pa.array(v, stamp if k == "ts" else pa.string()) for k, v in events.items()}),
        "users": pa.table({k: pa.array(v, stamp if k.endswith("_at") else pa.string()) for k, v in users.items()}),
    }, notes
