"""A local server that answers as HubSpot's CRM API v3 documents, for reading companies, owners, deals, tickets, calls
and meetings and for the push of scores to company properties: objects and owners listed in pages (``limit``,
``after``, ``paging.next.after``; the others with their associated companies when ``associations`` asks), company
properties read by name (404 when absent) and created, companies updated in batches of at most 100
(``/batch/update``), a bearer token checked (401
with HubSpot's error body), failures answered once on request (429 with ``Retry-After``, 500), and a log of every
request and of every batch's inputs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "pat-na1-upcurve"
STAMP = "2024-06-30T12:00:00.000Z"


def company(record_id: str, **properties: str | None) -> dict[str, Any]:
    """A company as HubSpot returns it."""
    return {"id": record_id, "properties": {"hs_object_id": record_id, "createdate": STAMP,
                                            "hs_lastmodifieddate": STAMP, **properties},
            "createdAt": STAMP, "updatedAt": STAMP, "archived": False}


def prop(name: str, label: str = "", kind: str = "string", field_type: str = "text",
         group: str = "companyinformation") -> dict[str, Any]:
    """A company property as HubSpot returns it."""
    return {"name": name, "label": label or name, "type": kind, "fieldType": field_type, "description": "",
            "groupName": group, "options": [], "displayOrder": -1, "calculated": False, "externalOptions": False,
            "hasUniqueValue": False, "hidden": False, "formField": False, "createdAt": STAMP, "updatedAt": STAMP}


def deal_or_ticket(record_id: str, companies: list[str], **properties: str | None) -> dict[str, Any]:
    """A deal or a ticket as HubSpot returns it with its associated companies."""
    return {**company(record_id, **properties), "associations": {"companies": {"results": [
        {"id": c, "type": "deal_to_company"} for c in companies]}}}


def owner(owner_id: str, first: str, last: str) -> dict[str, Any]:
    """An owner as HubSpot's owners API returns it."""
    return {"id": owner_id, "email": f"{first.lower()}@example.com", "firstName": first, "lastName": last,
            "userId": int(owner_id), "createdAt": STAMP, "updatedAt": STAMP, "archived": False}


@dataclass
class FakeHubSpot:
    """The portal's companies, deals, tickets, calls, meetings, owners and company properties, failures to answer
    next, and what was received."""

    companies: list[dict[str, Any]] = field(default_factory=list)
    deals: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    meetings: list[dict[str, Any]] = field(default_factory=list)
    owners: list[dict[str, Any]] = field(default_factory=list)
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[tuple[str, int]] = field(default_factory=list)  # (path prefix, status), answered once each
    requests: list[str] = field(default_factory=list)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    def fail_once(self, path: str, status: int) -> None:
        self.failures.append((path, status))

    def by_id(self, record_id: str) -> dict[str, Any]:
        return next(c for c in self.companies if c["id"] == record_id)


def _error(status: int, category: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"status": "error", "message": message, "correlationId": "0000", "category": category}


def _answer(hub: FakeHubSpot, method: str, path: str, query: dict[str, list[str]], headers: Any,
            body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
    if headers.get("Authorization") != f"Bearer {TOKEN}":
        return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
    for i, (prefix, status) in enumerate(hub.failures):
        if path.startswith(prefix):
            del hub.failures[i]
            if status == 429:
                return 429, {"status": "error", "message": "You have reached your secondly limit.",
                             "errorType": "RATE_LIMIT", "policyName": "SECONDLY"}
            return _error(status, "INTERNAL_ERROR", "internal error")
    lists = {"/crm/v3/objects/companies": hub.companies, "/crm/v3/objects/deals": hub.deals,
             "/crm/v3/objects/tickets": hub.tickets, "/crm/v3/objects/calls": hub.calls,
             "/crm/v3/objects/meetings": hub.meetings, "/crm/v3/owners/": hub.owners}
    if method == "GET" and path in lists:
        items = lists[path]
        limit = min(int(query.get("limit", ["10"])[0]), 100)
        start = int(query.get("after", ["0"])[0])
        wanted = {p for value in query.get("properties", []) for p in value.split(",")}
        associations = {a for value in query.get("associations", []) for a in value.split(",")}
        page = items[start:start + limit]
        results = [o if "properties" not in o else
                   {**{k: v for k, v in o.items() if k != "associations" or associations},
                    "properties": {k: v for k, v in o["properties"].items()
                                   if k in wanted | {"hs_object_id", "createdate", "hs_lastmodifieddate"}}}
                   for o in page]
        out: dict[str, Any] = {"results": results}
        if start + limit < len(items):
            after = str(start + limit)
            out["paging"] = {"next": {"after": after, "link": f"{hub.url}{path}?after={after}"}}
        return 200, out
    if method == "GET" and path.startswith("/crm/v3/properties/companies/"):
        name = path.rsplit("/", 1)[1]
        if name not in hub.properties:
            return _error(404, "OBJECT_NOT_FOUND", f"Unable to find property {name} for object type companies")
        return 200, hub.properties[name]
    if method == "POST" and path == "/crm/v3/properties/companies":
        assert body is not None
        created = prop(body["name"], body["label"], body["type"], body["fieldType"], body["groupName"])
        hub.properties[body["name"]] = created
        return 201, created
    if method == "POST" and path == "/crm/v3/objects/companies/batch/update":
        assert body is not None
        inputs = body["inputs"]
        if len(inputs) > 100:
            return _error(400, "VALIDATION_ERROR", "Batch input cannot contain more than 100 inputs.")
        unknown = sorted({p for i in inputs for p in i["properties"] if p not in hub.properties})
        if unknown:
            return _error(400, "VALIDATION_ERROR", f"Property values were not valid: {unknown}")
        hub.batches.append(inputs)
        for i in inputs:
            hub.by_id(i["id"])["properties"].update(i["properties"])
        return 200, {"status": "COMPLETE", "results": [hub.by_id(i["id"]) for i in inputs],
                     "startedAt": STAMP, "completedAt": STAMP}
    return _error(404, "OBJECT_NOT_FOUND", f"no route {method} {path}")


def _handler(hub: FakeHubSpot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            hub.requests.append(f"{method} {url.path}")
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = _answer(hub, method, url.path, parse_qs(url.query), self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def serve(hub: FakeHubSpot) -> Iterator[FakeHubSpot]:
    """Serve ``hub`` on a free loopback port while the generator is open (a pytest fixture's body)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
