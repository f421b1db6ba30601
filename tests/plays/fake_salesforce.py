"""A local HTTPS server that answers as Salesforce's REST API (v62.0) documents, for the push of scores to Account
fields: ``sobjects/Account/describe``, SOQL queries answered in pages (``done``, ``nextRecordsUrl``), updates of up
to 200 records through sObject Collections (``PATCH composite/sobjects``, each record's own ``success`` and
``errors``), a bearer session checked (401 ``INVALID_SESSION_ID``), failures answered once on request, and a log.

Its certificate is issued by a test authority (``trustme``) that the test's ``requests`` session trusts, as the
client only speaks HTTPS.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "00Dxx0000000001!upcurve"
BASE = "/services/data/v62.0"
PAGE = 2000  # records a query page holds, as Salesforce answers by default


@dataclass
class FakeSalesforce:
    """The org's Accounts, its Account fields (name → type), failures to answer next, and what was received."""

    accounts: list[dict[str, Any]] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=lambda: {"Id": "id", "Name": "string"})
    failures: list[tuple[str, int]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    others: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # User, Opportunity, Case records
    refuse: set[str] = field(default_factory=set)  # Account ids whose update fails (a validation rule)
    url: str = ""
    ca_file: str = ""  # the test authority's certificate, for a client outside the yielded session
    _cursors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def by_id(self, record_id: str) -> dict[str, Any]:
        return next(a for a in self.accounts if a["Id"] == record_id)


def _query(org: FakeSalesforce, soql: str) -> tuple[int, Any]:
    found = re.fullmatch(r"SELECT (.+) FROM (\w+)(?: WHERE (\w+) != null)?", soql)
    if found is None:
        return 400, [{"message": f"unexpected query {soql}", "errorCode": "MALFORMED_QUERY"}]
    obj = found.group(2)
    names = [n.strip() for n in found.group(1).split(",")]
    records = org.accounts if obj == "Account" else org.others.get(obj, [])
    fields = set(org.fields) if obj == "Account" else {k for r in records for k in r} | set(names)
    unknown = [n for n in [*names, *([found.group(3)] if found.group(3) else [])] if n not in fields]
    if unknown:
        return 400, [{"message": f"No such column '{unknown[0]}' on entity '{obj}'.", "errorCode": "INVALID_FIELD"}]
    where = found.group(3)
    rows = [{"attributes": {"type": obj, "url": f"{BASE}/sobjects/{obj}/{r.get('Id')}"}, **{n: r.get(n) for n in names}}
            for r in records if where is None or r.get(where) is not None]
    return 200, _page(org, rows)


def _page(org: FakeSalesforce, rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"totalSize": len(rows), "done": len(rows) <= PAGE, "records": rows[:PAGE]}
    if len(rows) > PAGE:
        cursor = f"01gxx{len(org._cursors):010d}-{PAGE}"
        org._cursors[cursor] = rows[PAGE:]
        out["nextRecordsUrl"] = f"{BASE}/query/{cursor}"
    return out


def _answer(org: FakeSalesforce, method: str, path: str, query: dict[str, list[str]], headers: Any,
            body: Any) -> tuple[int, Any]:
    if headers.get("Authorization") != f"Bearer {TOKEN}":
        return 401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    for i, (prefix, status) in enumerate(org.failures):
        if path.startswith(prefix):
            del org.failures[i]
            return status, [{"message": "Service unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
    if method == "GET" and path == f"{BASE}/sobjects/Account/describe":
        return 200, {"name": "Account", "fields": [{"name": n, "type": t} for n, t in org.fields.items()]}
    if method == "GET" and path == f"{BASE}/query/":
        return _query(org, query["q"][0])
    if method == "GET" and path.startswith(f"{BASE}/query/"):
        return 200, _page(org, org._cursors.pop(path.rsplit("/", 1)[1]))
    if method == "PATCH" and path == f"{BASE}/composite/sobjects":
        records = body["records"]
        if len(records) > 200:
            return 400, [{"message": "Maximum 200 records allowed", "errorCode": "EXCEEDED_ID_LIMIT"}]
        org.batches.append(records)
        results = []
        for r in records:
            changed = {k: v for k, v in r.items() if k not in ("attributes", "id")}
            unknown = [k for k in changed if k not in org.fields]
            if unknown or r["id"] in org.refuse:
                results.append({"id": r["id"], "success": False, "errors": [
                    {"statusCode": "INVALID_FIELD" if unknown else "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                     "message": f"No such column '{unknown[0]}'" if unknown else "Owner must approve", "fields": []}]})
                continue
            org.by_id(r["id"]).update(changed)
            results.append({"id": r["id"], "success": True, "errors": []})
        return 200, results
    return 404, [{"message": f"no route {method} {path}", "errorCode": "NOT_FOUND"}]


def _handler(org: FakeSalesforce) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            org.requests.append(f"{method} {url.path}")
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = _answer(org, method, url.path, parse_qs(url.query), self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def serve(org: FakeSalesforce) -> Iterator[tuple[FakeSalesforce, Any]]:
    """Serve ``org`` over HTTPS on a free loopback port while the generator is open; yields it and a ``requests``
    session that trusts the server's certificate (a pytest fixture's body)."""
    import requests
    import trustme

    authority = trustme.CA()
    certificate = authority.issue_cert("localhost", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(org))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    org.url = f"https://localhost:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    session = requests.Session()
    session.trust_env = False  # the environment's CA bundle would replace the test authority
    with authority.cert_pem.tempfile() as trusted:
        session.verify = org.ca_file = trusted
        try:
            yield org, session
        finally:
            server.shutdown()
            server.server_close()
