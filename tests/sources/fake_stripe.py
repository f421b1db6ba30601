"""A local server that answers as Stripe's API documents (API version 2025-03-31.basil), for the Stripe source's
tests: list objects paged with ``limit``/``starting_after``/``has_more``, invoices that embed at most ten lines and
page the rest from ``/v1/invoices/{id}/lines``, each object by its id (``/v1/customers/{id}``; a deleted customer
as its ``deleted`` stub, anything else gone a 404), the account's events newest first with the ``created[gte]``
filter, balance transactions with their ``source`` charge expanded on ``expand[]=data.source``, an invoice's
discounts and its lines' expanded on ``expand[]=(data.)discounts`` and ``(data.)lines.data.discounts`` (a discount
cannot be read on its own, as in Stripe's API), errors as Stripe
returns them (401 for an invalid or expired key, 429 and 500 with Stripe's error body), and a log of every request.

Objects are built with the helpers below in the documented shapes: amounts in the currency's smallest unit,
timestamps in Unix seconds, an invoice line's price under ``pricing.price_details`` and its proration under
``parent.subscription_item_details``, a subscription's current period on its items.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

KEY = "sk_test_upcurve"
EXPIRED = "sk_test_expired"
LISTS = ("customers", "products", "prices", "subscriptions", "invoices", "credit_notes", "coupons", "events",
         "charges", "balance_transactions")


def ts(day: str) -> int:
    """Unix seconds at midnight UTC of a ``YYYY-MM-DD`` day."""
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp())


@dataclass
class FakeStripe:
    """The account's objects by list, the failures to answer next, and every request received."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {name: [] for name in LISTS})
    failures: list[tuple[str, int]] = field(default_factory=list)  # (path prefix, status) answered once each
    requests: list[str] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)  # ids of deleted customers
    discounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id: only ever seen expanded
    url: str = ""

    def add(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[kind].append(obj)
        return obj

    def emit(self, event_type: str, obj: dict[str, Any], *, created: int | None = None) -> None:
        """An event about ``obj`` (newest first, as the API lists them), created now unless said."""
        self.objects["events"].insert(0, {
            "id": f"evt_{len(self.objects['events']) + 1:05d}", "object": "event", "type": event_type,
            "api_version": "2020-08-27",  # the account's default version: an event's copy is rendered in it
            "created": int(time.time()) if created is None else created, "data": {"object": obj}})

    def change(self, kind: str, obj: dict[str, Any], event_type: str) -> dict[str, Any]:
        """Put ``obj`` in place of the object of its id (or add it), and emit the event saying so."""
        objects = self.objects[kind]
        at = next((i for i, o in enumerate(objects) if o["id"] == obj["id"]), None)
        if at is None:
            objects.append(obj)
        else:
            objects[at] = obj
        self.emit(event_type, obj)
        return obj

    def delete_customer(self, customer_id: str) -> None:
        """Delete a customer as Stripe does: gone from the list, its id answering a ``deleted`` stub."""
        self.objects["customers"] = [c for c in self.objects["customers"] if c["id"] != customer_id]
        self.deleted.add(customer_id)
        self.emit("customer.deleted", {"id": customer_id, "object": "customer"})

    def fail_once(self, path: str, status: int) -> None:
        self.failures.append((path, status))


def _error(status: int, kind: str, message: str, code: str | None = None) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": kind, "message": message, **({"code": code} if code else {})}}


def _page(items: list[dict[str, Any]], query: dict[str, list[str]], url: str) -> dict[str, Any]:
    limit = min(int(query.get("limit", ["10"])[0]), 100)
    after = query.get("starting_after", [None])[0]
    start = 0
    if after is not None:
        ids = [o["id"] for o in items]
        start = ids.index(after) + 1
    chunk = items[start:start + limit]
    return {"object": "list", "data": chunk, "has_more": start + limit < len(items), "url": url}


def _expanded(fake: FakeStripe, obj: dict[str, Any], expand: bool) -> dict[str, Any]:
    """``obj`` with its ``discounts`` (ids) as the discount objects, when asked to expand them."""
    if not expand or not obj.get("discounts"):
        return obj
    return {**obj, "discounts": [fake.discounts.get(d, d) for d in obj["discounts"]]}


def _invoice_view(fake: FakeStripe, invoice: dict[str, Any], expand: set[str], prefix: str = "") -> dict[str, Any]:
    """An invoice as the API returns it: its first ten lines embedded, the rest behind ``has_more``; its discounts
    and its lines' expanded as ``expand`` asks (paths under ``prefix``, ``data.`` in a list)."""
    lines = [_expanded(fake, line, f"{prefix}lines.data.discounts" in expand) for line in invoice["lines"]["data"]]
    return {**_expanded(fake, invoice, f"{prefix}discounts" in expand),
            "lines": {"object": "list", "data": lines[:10], "has_more": len(lines) > 10,
                      "total_count": len(lines), "url": f"/v1/invoices/{invoice['id']}/lines"}}


def _answer(fake: FakeStripe, method: str, path: str, query: dict[str, list[str]], auth: str
            ) -> tuple[int, dict[str, Any]]:
    fake.requests.append(f"{method} {path}?{'&'.join(f'{k}={v[0]}' for k, v in sorted(query.items()))}")
    key = auth.removeprefix("Bearer ").strip()
    if key == EXPIRED:
        return _error(401, "invalid_request_error", f"Expired API Key provided: {key[:8]}***", "api_key_expired")
    if key != KEY:
        return _error(401, "invalid_request_error", f"Invalid API Key provided: {key[:8]}***")
    for i, (prefix, status) in enumerate(fake.failures):
        if path.startswith(prefix):
            del fake.failures[i]
            if status == 429:
                return _error(429, "invalid_request_error", "Too many requests hit the API too quickly.",
                              "rate_limit")
            return _error(status, "api_error", "Something went wrong on Stripe's end.")
    if method != "GET":
        return _error(405, "invalid_request_error", "upcurve only reads")
    expand = {v for k, values in query.items() if k.startswith("expand") for v in values}
    lines = re.fullmatch(r"/v1/invoices/([^/]+)/lines", path)
    if lines:
        found = [i for i in fake.objects["invoices"] if i["id"] == lines[1]]
        if not found:
            return _error(404, "invalid_request_error", f"No such invoice: '{lines[1]}'", "resource_missing")
        page = _page(found[0]["lines"]["data"], query, path)
        page["data"] = [_expanded(fake, line, "data.discounts" in expand) for line in page["data"]]
        return 200, page
    name, _, object_id = path.removeprefix("/v1/").partition("/")
    if name not in LISTS:
        return _error(404, "invalid_request_error", f"Unrecognized request URL (GET: {path}).")
    if object_id:
        if name == "customers" and object_id in fake.deleted:
            return 200, {"id": object_id, "object": "customer", "deleted": True}
        found = [o for o in fake.objects[name] if o["id"] == object_id]
        if not found:
            return _error(404, "invalid_request_error", f"No such {name[:-1]}: '{object_id}'", "resource_missing")
        return 200, _invoice_view(fake, found[0], expand) if name == "invoices" else found[0]
    items = fake.objects[name]
    if "created[gte]" in query:
        items = [o for o in items if o["created"] >= int(query["created[gte]"][0])]
    if name == "subscriptions" and query.get("status", ["active"])[0] != "all":
        items = [s for s in items if s["status"] not in ("canceled", "incomplete_expired")]
    page = _page(items, query, path)
    if name == "invoices":
        page["data"] = [_invoice_view(fake, i, expand, "data.") for i in page["data"]]
    if name == "balance_transactions" and "data.source" in expand:
        charges = {c["id"]: c for c in fake.objects["charges"]}
        page["data"] = [{**b, "source": charges.get(b["source"], b["source"])} for b in page["data"]]
    return 200, page


def serve(fake: FakeStripe) -> Iterator[FakeStripe]:
    """Run the server on a free loopback port while the generator is suspended (a fixture's body)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            status, body = _answer(fake, "GET", parsed.path, parse_qs(parsed.query),
                                   self.headers.get("Authorization", ""))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_{len(fake.requests)}")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


# -- objects in Stripe's documented shapes ----------------------------------------------------------------------

def customer(cid: str, name: str, *, created: str = "2024-01-01", currency: str = "usd",
             metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "customer", "name": name, "email": f"billing@{cid}.example", "created": ts(created),
            "currency": currency, "metadata": metadata or {}}


def product(pid: str, name: str, unit_label: str | None = None) -> dict[str, Any]:
    return {"id": pid, "object": "product", "name": name, "active": True, "unit_label": unit_label, "metadata": {}}


def price(pid: str, product_id: str, unit_amount: int | None, *, interval: str | None = "month", currency: str = "usd",
          nickname: str | None = None, metered: bool = False, metadata: dict[str, str] | None = None,
          unit_amount_decimal: str | None = None) -> dict[str, Any]:
    recurring = None if interval is None else {"interval": interval, "interval_count": 1,
                                               "usage_type": "metered" if metered else "licensed"}
    return {"id": pid, "object": "price", "product": product_id, "currency": currency, "unit_amount": unit_amount,
            "unit_amount_decimal": unit_amount_decimal or (None if unit_amount is None else str(unit_amount)),
            "recurring": recurring, "type": "recurring" if recurring else "one_time", "nickname": nickname,
            "lookup_key": None, "billing_scheme": "per_unit", "metadata": metadata or {}}


def line(lid: str, price_id: str | None, amount: int, start: str, end: str, *, quantity: int | None = 1,
         currency: str = "usd", proration: bool = False, discounts: int = 0, tax: int = 0,
         tax_inclusive: bool = False, subscription: str | None = "sub_1", discount: str = "di_1",
         line_discounts: list[str] | None = None) -> dict[str, Any]:
    """An invoice line; ``discounts`` the amount discount ``discount`` took off, ``line_discounts`` the ids of the
    line's own discounts (a coupon on one subscription item)."""
    parent = ({"type": "subscription_item_details",
               "subscription_item_details": {"subscription": subscription, "subscription_item": f"si_{lid}",
                                             "proration": proration, "proration_details": None,
                                             "invoice_item": None}}
              if subscription else
              {"type": "invoice_item_details",
               "invoice_item_details": {"invoice_item": f"ii_{lid}", "proration": proration, "subscription": None}})
    return {"id": lid, "object": "line_item", "amount": amount, "currency": currency, "description": lid,
            "discount_amounts": [{"amount": discounts, "discount": discount}] if discounts else [],
            "discounts": line_discounts or [],
            "discountable": True, "period": {"start": ts(start), "end": ts(end)}, "quantity": quantity,
            "pricing": {"type": "price_details", "price_details": {"price": price_id, "product": None},
                        "unit_amount_decimal": None} if price_id else None,
            "parent": parent,
            "taxes": [{"amount": tax, "tax_behavior": "inclusive" if tax_inclusive else "exclusive",
                       "taxability_reason": "standard_rated", "type": "tax_rate_details"}] if tax else []}


def invoice(iid: str, customer_id: str, lines: list[dict[str, Any]], *, created: str, status: str = "paid",
            currency: str = "usd", discounts: list[str] | None = None) -> dict[str, Any]:
    return {"id": iid, "object": "invoice", "customer": customer_id, "status": status, "currency": currency,
            "created": ts(created), "discounts": discounts or [],
            "lines": {"object": "list", "data": lines, "has_more": False}}


def coupon(cid: str, name: str | None, *, percent_off: float | None = None, amount_off: int | None = None
           ) -> dict[str, Any]:
    return {"id": cid, "object": "coupon", "name": name, "percent_off": percent_off, "amount_off": amount_off,
            "duration": "forever", "valid": True}


def discount(did: str, coupon_: dict[str, Any], customer_id: str, *, subscription: str | None = None
             ) -> dict[str, Any]:
    """A discount as the pinned version renders it: its coupon embedded whole."""
    return {"id": did, "object": "discount", "coupon": coupon_, "customer": customer_id, "end": None,
            "invoice": None, "invoice_item": None, "promotion_code": None, "start": ts("2024-01-01"),
            "subscription": subscription}


def subscription(sid: str, customer_id: str, price_id: str, *, start: str, period_end: str,
                 status: str = "active", trial_end: str | None = None, cancel_at_period_end: bool = False,
                 canceled_at: str | None = None, reason: str | None = None) -> dict[str, Any]:
    return {"id": sid, "object": "subscription", "customer": customer_id, "status": status,
            "start_date": ts(start), "created": ts(start), "trial_start": None,
            "trial_end": None if trial_end is None else ts(trial_end),
            "cancel_at_period_end": cancel_at_period_end, "cancel_at": None,
            "canceled_at": None if canceled_at is None else ts(canceled_at), "ended_at": None,
            "cancellation_details": {"reason": reason, "feedback": None, "comment": None},
            "items": {"object": "list", "data": [{"id": f"si_{sid}", "price": {"id": price_id}, "quantity": 1,
                                                  "current_period_start": ts(start),
                                                  "current_period_end": ts(period_end)}], "has_more": False}}


def credit_note(cid: str, customer_id: str, invoice_id: str, total_excluding_tax: int, *, created: str,
                currency: str = "usd", reason: str = "product_unsatisfactory") -> dict[str, Any]:
    return {"id": cid, "object": "credit_note", "customer": customer_id, "invoice": invoice_id,
            "currency": currency, "created": ts(created), "total_excluding_tax": total_excluding_tax,
            "subtotal": total_excluding_tax, "total": total_excluding_tax, "reason": reason}


def charge(cid: str, customer_id: str, amount: int, *, created: str, currency: str = "usd") -> dict[str, Any]:
    return {"id": cid, "object": "charge", "customer": customer_id, "amount": amount, "currency": currency,
            "created": ts(created), "paid": True, "status": "succeeded",
            "balance_transaction": f"txn_{cid.removeprefix('ch_')}"}


def balance_transaction(charge_: dict[str, Any], *, exchange_rate: float | None, settled_in: str = "usd",
                        created: str | None = None) -> dict[str, Any]:
    """The balance transaction of a charge: its amount in the settlement currency, and the rate it was converted
    at (null when the charge was in the settlement currency)."""
    rate = exchange_rate or 1.0
    return {"id": charge_["balance_transaction"], "object": "balance_transaction", "type": "charge",
            "amount": round(charge_["amount"] * rate), "currency": settled_in, "exchange_rate": exchange_rate,
            "created": ts(created) if created else charge_["created"], "source": charge_["id"],
            "status": "available", "fee": 0, "net": round(charge_["amount"] * rate)}
