"""Product analytics exports (Segment, Amplitude, Mixpanel) as the contract's events and users: samples written
from each format's documentation, a mapping file, malformed lines named, and an import into a data folder."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from upcurve.cli import app
from upcurve.cli_support import err
from upcurve.errors import ConfigError, ContractError
from upcurve.sources.analytics import AnalyticsMapping, analytics_tables, load_mapping

MAPPING = AnalyticsMapping.model_validate({
    "logins": ["Signed In"], "ignore": ["Page Viewed"],
    "features": {"Report Created": {"feature": "reports", "category": "analytics"}}})


def _jsonl(path: Path, records: list[Any], *, gz: bool = False) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


SEGMENT = [
    # the Segment Spec's identify, group, track and page calls
    {"type": "identify", "userId": "u1", "traits": {"email": "ann@acme.example", "role": "admin",
                                                    "account_id": "A"}, "timestamp": "2024-03-01T09:00:00.000Z"},
    {"type": "group", "userId": "u2", "groupId": "A", "traits": {"name": "Acme"},
     "timestamp": "2024-03-01T09:05:00Z"},
    {"type": "track", "userId": "u1", "event": "Signed In", "properties": {}, "timestamp": "2024-03-02T10:00:00Z"},
    {"type": "track", "userId": "u2", "event": "Report Created", "properties": {"report_id": "r1"},
     "timestamp": "2024-03-02T10:30:00+02:00"},
    {"type": "page", "userId": "u2", "name": "Pricing", "properties": {}, "timestamp": "2024-03-03T10:00:00Z"},
    {"type": "track", "anonymousId": "anon-9", "event": "Signed In", "timestamp": "2024-03-04T10:00:00Z"},
    {"type": "track", "userId": "u3", "event": "Page Viewed", "properties": {"account_id": "B"},
     "timestamp": "2024-03-04T11:00:00Z"},
    {"type": "track", "userId": "u3", "event": "Signed In", "properties": {"account_id": "B"},
     "timestamp": "2024-03-05T11:00:00Z"},
]


def _rows(table: Any) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r.get("ts") or r.get("invited_at"), r["user_id"]))


def test_segment_calls_become_events_and_users(tmp_path: Path) -> None:
    tables, notes = analytics_tables("segment", [_jsonl(tmp_path / "segment.jsonl", SEGMENT)], MAPPING)
    events = _rows(tables["events"])
    assert [(e["ts"], e["account_id"], e["user_id"], e["event"], e["feature"], e["category"]) for e in events] == [
        (dt.datetime(2024, 3, 2, 8, 30), "A", "u2", "Report Created", "reports", "analytics"),  # +02:00 in UTC
        (dt.datetime(2024, 3, 2, 10, 0), "A", "u1", "login", None, None),
        (dt.datetime(2024, 3, 3, 10, 0), "A", "u2", "Pricing", None, None),
        (dt.datetime(2024, 3, 5, 11, 0), "B", "u3", "login", None, None),
    ]
    users = {u["user_id"]: u for u in tables["users"].to_pylist()}
    assert (users["u1"]["account_id"], users["u1"]["role"]) == ("A", "admin")
    assert (users["u2"]["account_id"], users["u2"]["activated_at"]) == ("A", dt.datetime(2024, 3, 2, 8, 30))
    assert users["u3"]["account_id"] == "B" and "anon-9" not in users
    assert any("1 event(s) of users with no account" in n for n in notes)
    assert any("1 event(s) left out as the mapping's ignore asks" in n for n in notes)


def test_amplitude_export_gzipped_with_groups(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "amplitude.json.gz", [
        {"event_type": "Signed In", "user_id": "u1", "event_time": "2024-03-02 10:00:00.123000",
         "event_properties": {}, "user_properties": {"role": "admin"}, "groups": {"company": ["A"]}},
        {"event_type": "Report Created", "user_id": "u2", "device_id": "d2", "event_time": "2024-03-02 11:00:00",
         "event_properties": {"account_id": "B"}, "user_properties": {}, "groups": {}},
    ], gz=True)
    tables, _ = analytics_tables("amplitude", [path], MAPPING)
    events = _rows(tables["events"])
    assert [(e["ts"], e["account_id"], e["event"], e["feature"]) for e in events] == [
        (dt.datetime(2024, 3, 2, 10, 0, 0, 123000), "A", "login", None),
        (dt.datetime(2024, 3, 2, 11, 0), "B", "Report Created", "reports")]
    assert {u["user_id"]: u["role"] for u in tables["users"].to_pylist()} == {"u1": "admin", "u2": None}


def test_mixpanel_export_in_seconds_and_milliseconds_read_once(tmp_path: Path) -> None:
    """The raw export is not deduplicated: a record sent twice ($insert_id) is read once. A group key is a
    list-valued event property too."""
    signed_in = {"event": "Signed In", "properties": {"time": 1709373600, "distinct_id": "u1", "$insert_id": "e1",
                                                      "$groups": {"company": "A"}}}
    path = _jsonl(tmp_path / "mixpanel.jsonl", [
        signed_in, signed_in,
        {"event": "Report Created", "properties": {"time": 1709377200000, "distinct_id": "u1", "$insert_id": "e2"}},
        {"event": "Signed In", "properties": {"time": 1709380800, "distinct_id": "u2", "$insert_id": "e3",
                                              "company": ["B"]}},
    ])
    tables, notes = analytics_tables("mixpanel", [path], MAPPING)
    assert [(e["ts"], e["account_id"], e["event"]) for e in _rows(tables["events"])] == [
        (dt.datetime(2024, 3, 2, 10, 0), "A", "login"), (dt.datetime(2024, 3, 2, 11, 0), "A", "Report Created"),
        (dt.datetime(2024, 3, 2, 12, 0), "B", "login")]
    assert any("1 record(s) sent twice" in n for n in notes)


def test_every_malformed_line_is_named_and_nothing_is_read(tmp_path: Path) -> None:
    bad = _jsonl(tmp_path / "bad.jsonl", [
        SEGMENT[2], "{not json", {"type": "track", "userId": "u1", "timestamp": "2024-03-02T10:00:00Z"},
        {"type": "track", "userId": "u1", "event": "Signed In"}, {"type": "merge", "userId": "u1"},
        {"type": "alias", "userId": "u1", "previousId": "anon-1", "timestamp": "2024-03-02T10:00:00Z"}])
    with pytest.raises(ContractError) as caught:
        analytics_tables("segment", [bad], MAPPING)
    found = {(p.file, p.rule, p.rows) for p in caught.value.problems}
    assert found == {("bad.jsonl", "not a JSON object", (2,)), ("bad.jsonl", "event: missing on a track call", (3,)),
                     ("bad.jsonl", "timestamp: missing or not a date and time", (4,)),
                     ("bad.jsonl", "type: 'merge' is not a Segment call", (5,))}  # an alias is skipped


def test_a_mapping_file_is_checked_like_a_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("logins: [Signed In]\nfeature:\n  Report Created: {feature: reports}\n")
    with pytest.raises(ConfigError, match=r"mapping.yaml: feature: not a key of a mapping file"):
        load_mapping(path)
    path.write_text("features:\n  Report Created: {category: analytics}\n")
    with pytest.raises(ConfigError, match=r"features.Report Created.feature: Field required"):
        load_mapping(path)
    with pytest.raises(ConfigError, match="unknown analytics format 'heap'"):
        analytics_tables("heap", [path], MAPPING)


def test_import_into_a_data_folder_replaces_only_its_events_and_users(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(err, "width", 200)
    runner = CliRunner()
    data = tmp_path / "data"
    assert runner.invoke(app, ["simulate", "--out", str(data), "--accounts", "20", "--months", "6",
                               "--format", "csv"]).exit_code == 0
    lines_before = (data / "invoice_lines.csv").read_text()
    export = _jsonl(tmp_path / "segment.jsonl", [
        {"type": "group", "userId": "u1", "groupId": "A0000001", "timestamp": "2023-06-01T09:00:00Z"},
        {"type": "track", "userId": "u1", "event": "Signed In", "timestamp": "2023-06-02T09:00:00Z"}])
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("logins: [Signed In]\n")
    result = runner.invoke(app, ["import", "segment", str(export), "--mapping", str(mapping), "--into", str(data)])
    assert result.exit_code == 0, result.output
    assert (data / "invoice_lines.csv").read_text() == lines_before
    assert (data / "events.csv").read_text().count("\n") == 2  # the header and the one event
    assert "login" in (data / "events.csv").read_text()
    checked = runner.invoke(app, ["validate", str(data)])
    assert checked.exit_code == 0, checked.output
    # a folder upcurve did not write is never changed
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "accounts.csv").write_text("account_id\nA\n")
    refused = runner.invoke(app, ["import", "segment", str(export), "--into", str(theirs)])
    assert refused.exit_code != 0 and sorted(p.name for p in theirs.iterdir()) == ["accounts.csv"]


def test_into_a_folder_that_does_not_exist_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    export = _jsonl(tmp_path / "segment.jsonl", SEGMENT[:3])
    result = CliRunner().invoke(app, ["import", "segment", str(export), "--into", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no such data folder" in " ".join(result.output.split())
    assert not (tmp_path / "nowhere").exists()
    out = CliRunner().invoke(app, ["import", "segment", str(export), "--out", str(tmp_path / "events")])
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "events").glob("*.csv")) == ["events.csv", "users.csv"]
