"""Stripe as a source: customers, products and prices, subscriptions, invoices with every line, and credit notes,
read through Stripe's official Python library and mapped to the contract's tables as ChartMogul documents its
Stripe import.

Reading (:func:`read_stripe`) pins the API version whose shapes it reads (:data:`STRIPE_API_VERSION`: an invoice
line's price under ``pricing.price_details``, its proration under ``parent.subscription_item_details``, the
subscription's current period on its items). Every list is paged with ``starting_after`` until ``has_more`` is
false, and an invoice's lines beyond the ten it embeds are paged from ``/v1/invoices/{id}/lines``. A rate limit
(429) is retried with exponential backoff; the library retries connection failures and 5xx answers. A refused key
(invalid or expired) stops the import with Stripe's message.

Invoices are read with their discounts expanded (the invoice's, and each line's own), so that a discount names
its coupon; the account's coupons are listed for their names. Balance transactions are read with their source
charge expanded (its currency); a sync lists those created since its cursor (a balance transaction never changes).

Syncing (:func:`sync_stripe`): a read remembers its cursor, the creation time of the account's newest event when
it began. The next sync lists the events created since then (Stripe keeps them for 30 days), collects the objects
they name, and reads each of those again at the pinned version (an event's own copy is rendered at the version of
the moment it happened, so it is used only to know *what* changed). A customer deleted, an invoice voided or a
draft deleted leaves the account as a full read would leave it. Re-reading an object is idempotent, so events of
the cursor's own second are read again rather than risk missing one.

Mapping (:func:`stripe_tables`, pure):

- ``accounts``: each customer (``name``, else ``email``); ``segment``, ``industry``, ``region`` and ``owner`` from
  its ``metadata`` where set.
- ``plans``: each recurring price: ``product`` the product's name, ``tier`` the price's nickname (else lookup key,
  else the product's name), ``tier_rank`` from ``metadata.tier_rank``, else the price's rank by monthly unit amount
  among its product's prices in its currency; ``pricing`` ``usage`` for metered prices, else ``per_seat``
  (``metadata.pricing`` may say ``flat``); ``unit_price`` in the price's currency's major unit.
- ``invoice_lines``: every line of every open, paid or uncollectible invoice (drafts and void invoices are not
  revenue). ``amount`` is the line's amount **net of its discounts and excluding tax** (a tax-inclusive price's
  tax taken out), in major units: 1000 is 10.00 USD but 1000 JPY (zero-decimal currencies are read as Stripe
  lists them). ``kind``: ``usage`` for a metered price, ``subscription`` for another recurring price, else
  ``one_time``. ``proration`` as Stripe marks it; a prorated line's MRR is then read against its full period, and
  ``proration_share`` is the share of that period Stripe charged it for, to the second (the period being the one
  the subscription's regular line ending the same second billed; empty when that line was not read). A
  discount larger than a recurring line is booked, not floored: the line at 0 and the excess as a ``one_time``
  credit (``<line id>:excess_discount``). A one-time line whose period is a single moment covers its day.
  ``coupon``: the names of the coupons whose discounts the line got (the coupon's ``name``, else its id; several
  joined by ``", "`` in the line's order), and ``discount``: the amount they took off, in major units (both empty
  on a line without a discount; the excess line of a larger discount carries them too).
- Credit notes: each a ``one_time`` line of minus its total excluding tax, on the day it was issued (refunds and
  credits are counted as negative services revenue, never silently dropped); a voided one is left out.
- A customer deleted in Stripe is no longer listed, but its invoices, credit notes and (cancelled) subscriptions
  remain: it is an account all the same, named as its invoices name it (``customer_name``, else
  ``customer_email``).
- ``subscriptions``: status, start, trial end, the scheduled or actual end (``cancel_at``; for
  ``cancel_at_period_end``, the end of its items' current period), when the cancellation was asked for
  (``canceled_at``) and why (``cancellation_details.reason``).
- ``fx_rates`` (:func:`stripe_rates`; the import writes them unless the user gives rates): the rates Stripe
  converted charges at. A balance transaction of a charge in another currency than the account's settlement
  currency carries its ``exchange_rate`` (units of the settlement currency per unit of the charge's): each day's
  rate of a currency is the one of its last conversion that day, quoted in the settlement currency (the one most
  of the account's balance transactions are in). Days without a conversion take the latest rate before them, as
  any daily ``fx_rates`` do.

Anything missing that a table needs (a line without a customer, a price that names no product) is an error naming
the object and the field; nothing is written then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gzip
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import pyarrow as pa

from upcurve.errors import ConfigError, UpcurveError

__all__ = ["STRIPE_API_VERSION", "SYNC_DAYS", "StripeAccount", "StripeError", "read_stripe", "stripe_rates",
           "stripe_tables", "sync_stripe"]

#: The API version whose objects this source reads (sent with every request).
STRIPE_API_VERSION = "2025-03-31.basil"
#: Stripe's zero-decimal and three-decimal currencies (docs.stripe.com/currencies): amounts are in these units.
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
                          "XAF", "XOF", "XPF"})
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
#: Invoices that are revenue: finalized and not voided.
REVENUE_STATUSES = ("open", "paid", "uncollectible")
#: Stripe keeps events for 30 days: a cursor older than this (a day's margin) is read from scratch instead.
SYNC_DAYS = 29
#: The objects an event can name (its ``data.object.object``), and the account's list of each.
_SYNCED = {"customer": "customers", "product": "products", "price": "prices", "subscription": "subscriptions",
           "invoice": "invoices", "credit_note": "credit_notes", "coupon": "coupons"}
#: An invoice's discounts expanded: the invoice's own (a subscription's or customer's coupon lands there) and each
#: line's (a coupon on one subscription item); two and four levels deep, within Stripe's limit of four.
_INVOICE_EXPAND = ["discounts", "lines.data.discounts"]
_RATE_LIMIT_TRIES = 6


class StripeError(UpcurveError):
    """Stripe refused the import (a key it does not accept, an answer upcurve cannot read)."""


@dataclass
class StripeAccount:
    """Every object read from one Stripe account, as plain dicts (invoices with every line under
    ``lines.data``), and what the reading noticed."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    prices: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    credit_notes: list[dict[str, Any]] = field(default_factory=list)
    coupons: list[dict[str, Any]] = field(default_factory=list)
    #: Currency conversions from the balance transactions: ``{"id", "created", "from", "to", "rate"}`` each.
    conversions: list[dict[str, Any]] = field(default_factory=list)
    #: The cursor: the creation time (Unix seconds) of the newest event when the read began; None when unknown.
    synced_to: int | None = None
    #: How many requests the last read or sync made, and how many objects a sync read again.
    requests: int = 0
    changed: int = 0

    def dumps(self) -> bytes:
        """The objects and the cursor, as gzipped JSON (kept beside the imported tables for the next sync)."""
        data = {"api_version": STRIPE_API_VERSION,
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                   if f.name not in ("requests", "changed")}}
        return gzip.compress(json.dumps(data, separators=(",", ":"), default=_decimal_text).encode(), mtime=0)

    @classmethod
    def loads(cls, blob: bytes) -> StripeAccount | None:
        """An account :meth:`dumps` wrote, or None when it is unreadable or read at another API version."""
        try:
            data = json.loads(gzip.decompress(blob))
        except (OSError, EOFError, ValueError):
            return None
        if not isinstance(data, dict) or data.pop("api_version", None) != STRIPE_API_VERSION:
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError:
            return None

    def can_sync(self, now: float) -> bool:
        """Whether Stripe still holds every event since the cursor."""
        return self.synced_to is not None and now - self.synced_to < SYNC_DAYS * 86400


def _decimal_text(value: Any) -> str:
    """A ``*_decimal`` amount (the library reads them as Decimal) as its exact text; mapping reads either."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _plain(obj: Any) -> Any:
    """A Stripe object as plain dicts and lists."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return obj


def _client(api_key: str, api_base: str | None) -> Any:
    """Stripe's client at the pinned API version.

    Raises
    ------
    ConfigError
        No API key.
    """
    import stripe

    if not api_key:
        raise ConfigError("no Stripe API key: set STRIPE_API_KEY (a restricted key that can read is enough)")
    addresses: Any = {"api": api_base.rstrip("/")} if api_base else None
    return stripe.StripeClient(api_key, stripe_version=STRIPE_API_VERSION, base_addresses=addresses,
                               max_network_retries=3)


def _with_backoff(call: Callable[[], Any], sleep: Callable[[float], None]) -> Any:
    """``call()``, retried after 0.5, 1, 2, 4, 8 s while Stripe answers 429 (a rate limit)."""
    import stripe

    for attempt in range(_RATE_LIMIT_TRIES):
        try:
            return call()
        except stripe.RateLimitError:
            if attempt == _RATE_LIMIT_TRIES - 1:
                raise
            sleep(0.5 * 2 ** attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _pages(list_page: Callable[[dict[str, Any]], Any], params: dict[str, Any], account: StripeAccount,
           sleep: Callable[[float], None]) -> Iterator[dict[str, Any]]:
    """Every object of a list endpoint, page by page (``starting_after`` the last id until ``has_more`` is
    false)."""
    after: str | None = None
    while True:
        page_params = {**params, "limit": 100, **({"starting_after": after} if after else {})}
        page = _plain(_with_backoff(partial(list_page, page_params), sleep))
        account.requests += 1
        data = page.get("data") or []
        yield from data
        if not page.get("has_more") or not data:
            return
        after = data[-1]["id"]


def _lister(service: Any) -> Callable[[dict[str, Any]], Any]:
    def page(params: dict[str, Any]) -> Any:
        return service.list(params=params)
    return page


def _line_lister(service: Any, invoice_id: str) -> Callable[[dict[str, Any]], Any]:
    def page(params: dict[str, Any]) -> Any:
        return service.list(invoice_id, params=params)
    return page


@contextlib.contextmanager
def _stripe_errors() -> Iterator[None]:
    """Stripe's errors as :class:`StripeError` with Stripe's message."""
    import stripe

    try:
        yield
    except stripe.AuthenticationError as exc:
        raise StripeError(f"Stripe refused the API key: {exc.user_message or exc}") from None
    except stripe.PermissionError as exc:
        raise StripeError(f"the API key may not read everything upcurve imports: {exc.user_message or exc}") \
            from None
    except stripe.StripeError as exc:
        raise StripeError(f"Stripe answered with an error: {exc.user_message or exc}") from None


def _with_every_line(v1: Any, invoice: dict[str, Any], account: StripeAccount,
                     sleep: Callable[[float], None]) -> dict[str, Any]:
    """The invoice with every line under ``lines.data``: it embeds at most ten, the rest are paged from its lines
    endpoint."""
    lines = invoice.get("lines") or {}
    data = list(lines.get("data") or [])
    if lines.get("has_more") and data:
        data.extend(_pages(_line_lister(v1.invoices.line_items, invoice["id"]),
                           {"starting_after": data[-1]["id"], "expand": ["data.discounts"]}, account, sleep))
    return {**invoice, "lines": {"object": "list", "data": data, "has_more": False}}


def _newest_event(v1: Any, account: StripeAccount, sleep: Callable[[float], None], now: float) -> int:
    """The creation time of the account's newest event (a few minutes ago when it has none): the cursor."""
    page = _plain(_with_backoff(partial(v1.events.list, params={"limit": 1}), sleep))
    account.requests += 1
    data = page.get("data") or []
    return int(data[0]["created"]) if data else int(now) - 300


def _conversions(v1: Any, params: dict[str, Any], account: StripeAccount,
                 sleep: Callable[[float], None]) -> Iterator[dict[str, Any]]:
    """The account's currency conversions: each balance transaction with an ``exchange_rate``, its source charge
    expanded for the currency it was paid in."""
    listed = _pages(_lister(v1.balance_transactions), {**params, "expand": ["data.source"]}, account, sleep)
    for txn in listed:
        source = txn.get("source")
        if txn.get("exchange_rate") is None or not isinstance(source, dict) or not source.get("currency"):
            continue
        yield {"id": txn["id"], "created": int(txn["created"]), "from": str(source["currency"]).upper(),
               "to": str(txn.get("currency") or "").upper(), "rate": _decimal_text(Decimal(str(txn["exchange_rate"])))}


def read_stripe(api_key: str, *, api_base: str | None = None, say: Callable[[str], None] = lambda _m: None,
                sleep: Callable[[float], None] = time.sleep, now: float | None = None) -> StripeAccount:
    """Read every customer, product, price, subscription, revenue invoice (with every line) and credit note, and
    the cursor a later :func:`sync_stripe` starts from.

    Raises
    ------
    StripeError
        Stripe refused the key (invalid, expired, without the permission to read), or answered with an error.
    """
    v1 = _client(api_key, api_base).v1
    account = StripeAccount()
    with _stripe_errors():
        account.synced_to = _newest_event(v1, account, sleep, time.time() if now is None else now)
        for name, service, params in (
            ("customers", v1.customers, {}),
            ("products", v1.products, {}),
            ("prices", v1.prices, {}),
            ("subscriptions", v1.subscriptions, {"status": "all"}),
            ("credit_notes", v1.credit_notes, {}),
            ("coupons", v1.coupons, {}),
        ):
            say(f"reading Stripe {name.replace('_', ' ')}")
            getattr(account, name).extend(_pages(_lister(service), params, account, sleep))
        say("reading Stripe invoices")
        listed = _pages(_lister(v1.invoices), {"expand": [f"data.{path}" for path in _INVOICE_EXPAND]}, account,
                        sleep)
        for invoice in listed:
            if invoice.get("status") in REVENUE_STATUSES:
                account.invoices.append(_with_every_line(v1, invoice, account, sleep))
        say("reading Stripe's currency conversions (balance transactions)")
        account.conversions.extend(_conversions(v1, {}, account, sleep))
    return account


def _read_again(v1: Any, kind: str, object_id: str, account: StripeAccount,
                sleep: Callable[[float], None]) -> dict[str, Any] | None:
    """One object as it is now, or None when a full read would not hold it (deleted, or an invoice that is not
    revenue)."""
    import stripe

    try:
        params = {"expand": _INVOICE_EXPAND} if kind == "invoices" else {}
        obj = _plain(_with_backoff(partial(getattr(v1, kind).retrieve, object_id, params=params), sleep))
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise
    finally:
        account.requests += 1
    if obj.get("deleted"):
        return None
    if kind == "invoices":
        return _with_every_line(v1, obj, account, sleep) if obj.get("status") in REVENUE_STATUSES else None
    return obj


def sync_stripe(api_key: str, previous: StripeAccount, *, api_base: str | None = None,
                say: Callable[[str], None] = lambda _m: None, sleep: Callable[[float], None] = time.sleep,
                now: float | None = None) -> StripeAccount:
    """``previous`` brought up to date: the objects named by the events since its cursor, read again.

    Raises
    ------
    ConfigError
        No API key, or ``previous`` has no cursor Stripe still holds the events of (see
        :meth:`StripeAccount.can_sync`): read the whole account instead.
    StripeError
        As :func:`read_stripe`.
    """
    now = time.time() if now is None else now
    if previous.synced_to is None or not previous.can_sync(now):
        raise ConfigError(f"the last sync is more than {SYNC_DAYS} days old and Stripe keeps events for 30: "
                          "read the whole account")
    v1 = _client(api_key, api_base).v1
    account = StripeAccount()  # counts the requests
    by_id = {kind: {str(o.get("id")): o for o in getattr(previous, kind)} for kind in _SYNCED.values()}
    cursor = previous.synced_to
    touched: dict[tuple[str, str], None] = {}
    with _stripe_errors():
        say(f"reading Stripe's events since {dt.datetime.fromtimestamp(cursor, dt.UTC):%Y-%m-%d %H:%M} UTC")
        for event in _pages(_lister(v1.events), {"created": {"gte": previous.synced_to}}, account, sleep):
            obj = (event.get("data") or {}).get("object") or {}
            kind = _SYNCED.get(str(obj.get("object")))
            if kind and obj.get("id"):
                touched[(kind, str(obj["id"]))] = None
            cursor = max(cursor, int(event.get("created") or cursor))
        say("reading Stripe's currency conversions since then")
        known = {c["id"] for c in previous.conversions}
        fresh_conversions = [c for c in _conversions(v1, {"created": {"gte": previous.synced_to}}, account, sleep)
                             if c["id"] not in known]
        for done, (kind, object_id) in enumerate(touched, start=1):
            say(f"reading again the objects that changed: {done:,} of {len(touched):,}")
            fresh = _read_again(v1, kind, object_id, account, sleep)
            if fresh is None:
                by_id[kind].pop(object_id, None)
            else:
                by_id[kind][object_id] = fresh  # in its place, or last when new
    for kind, objects in by_id.items():
        setattr(account, kind, list(objects.values()))
    account.conversions = [*previous.conversions, *fresh_conversions]
    account.synced_to = cursor
    account.changed = len(touched)
    return account


# -- mapping -----------------------------------------------------------------------------------------------------

def _major(amount: int | str | Decimal, currency: str) -> Decimal:
    """An amount in Stripe's smallest unit as the currency's major unit (JPY as it is; KWD in thousandths)."""
    code = currency.upper()
    digits = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    return Decimal(str(amount)).scaleb(-digits)


def _day(seconds: int | None) -> dt.date | None:
    return None if seconds is None else dt.datetime.fromtimestamp(int(seconds), dt.UTC).date()


class _Problems:
    """Every missing field found while mapping, reported at once."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def need(self, obj: dict[str, Any], path: str, kind: str) -> Any:
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value in (None, ""):
            self.found.append(f"{kind} {obj.get('id', '?')}: {path} is missing")
        return value

    def check(self) -> None:
        if self.found:
            shown = "; ".join(self.found[:20]) + (f"; and {len(self.found) - 20} more" if len(self.found) > 20 else "")
            raise StripeError(f"{len(self.found)} problem(s) in the Stripe data, nothing written: {shown}")


def _interval_months(recurring: dict[str, Any]) -> int:
    count = int(recurring.get("interval_count") or 1)
    return {"year": 12 * count, "month": count}.get(str(recurring.get("interval")), 1)


def _line_price(line: dict[str, Any]) -> str | None:
    """The price of a line: ``pricing.price_details.price`` (2025-03-31 and later), else ``price.id``."""
    details = ((line.get("pricing") or {}).get("price_details") or {})
    price = details.get("price") or line.get("price")
    return price.get("id") if isinstance(price, dict) else price


def _line_subscription(line: dict[str, Any]) -> str | None:
    """The subscription a line bills (``parent.subscription_item_details.subscription``; ``subscription`` before
    2025-03-31)."""
    parent = line.get("parent") or {}
    found = (parent.get("subscription_item_details") or {}).get("subscription") or line.get("subscription")
    return str(found["id"] if isinstance(found, dict) else found) if found else None


def _billed_periods(invoices: list[dict[str, Any]]) -> dict[tuple[str, str, int], int]:
    """The start (Unix seconds) of each billing period a subscription's regular lines billed, by customer,
    subscription and the period's end: the full period a proration line ending the same second belongs to."""
    starts: dict[tuple[str, str, int], int] = {}
    for invoice in invoices:
        for line in (invoice.get("lines") or {}).get("data") or []:
            period = line.get("period") or {}
            subscription = _line_subscription(line)
            if _line_proration(line) or subscription is None or period.get("start") is None \
                    or period.get("end") is None:
                continue
            key = (str(invoice.get("customer")), subscription, int(period["end"]))
            starts[key] = min(int(period["start"]), starts.get(key, int(period["start"])))
    return starts


def _proration_share(line: dict[str, Any], customer: Any, periods: dict[tuple[str, str, int], int]) -> float | None:
    """The share of its billing period a proration line was charged for, to the second as Stripe prorates
    (``(end − start) ÷ (end − the period's start)``); None when the period's regular line was not read."""
    period, subscription = line.get("period") or {}, _line_subscription(line)
    if subscription is None or period.get("start") is None or period.get("end") is None:
        return None
    end = int(period["end"])
    begun = periods.get((str(customer), subscription, end))
    if begun is None or end <= begun:
        return None
    share = (end - int(period["start"])) / (end - begun)
    return share if 0 < share <= 1 else None


def _line_proration(line: dict[str, Any]) -> bool:
    parent = line.get("parent") or {}
    for key in ("subscription_item_details", "invoice_item_details"):
        if (parent.get(key) or {}).get("proration"):
            return True
    return bool(line.get("proration"))


def _inclusive_tax(line: dict[str, Any]) -> int:
    """The tax included in a line's amount (a tax-inclusive price): ``taxes[].tax_behavior`` (2025-03-31), else
    ``tax_amounts[].inclusive``."""
    taxes = sum(int(t.get("amount") or 0) for t in line.get("taxes") or [] if t.get("tax_behavior") == "inclusive")
    return taxes + sum(int(t.get("amount") or 0) for t in line.get("tax_amounts") or [] if t.get("inclusive"))


def stripe_tables(account: StripeAccount) -> dict[str, pa.Table]:
    """The contract's tables from a Stripe account (see the module for each rule).

    Raises
    ------
    StripeError
        Naming every object that lacks a field a table needs.
    """
    problems = _Problems()
    products = {p["id"]: p for p in account.products}
    names: dict[str, str] = {}
    for p in sorted(account.products, key=lambda p: p["id"]):
        name = str(p.get("name") or p["id"])
        names[p["id"]] = name if name not in names.values() else f"{name} ({p['id']})"
    prices = {p["id"]: p for p in account.prices}

    accounts = [{"account_id": c["id"], "name": c.get("name") or c.get("email"),
                 **{k: (c.get("metadata") or {}).get(k) for k in ("segment", "industry", "region", "owner")},
                 "created_at": _day(c.get("created"))} for c in account.customers]

    recurring = [p for p in account.prices if p.get("recurring")]
    by_product: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in recurring:
        product = problems.need(p, "product", "price")
        if isinstance(product, dict):
            product = product.get("id")
        by_product.setdefault((str(product), str(p.get("currency") or "")), []).append(p)
    plans = []
    for (product, _currency), group in sorted(by_product.items()):
        def monthly(p: dict[str, Any]) -> Decimal:
            amount = p.get("unit_amount_decimal") or p.get("unit_amount") or 0
            return Decimal(str(amount)) / _interval_months(p["recurring"])
        ranked = {p["id"]: rank for rank, p in enumerate(sorted(group, key=lambda p: (monthly(p), p["id"])),
                                                         start=1)}
        for p in group:
            meta = p.get("metadata") or {}
            metered = (p["recurring"].get("usage_type") == "metered")
            unit = p.get("unit_amount_decimal") or p.get("unit_amount")
            plans.append({
                "plan_id": p["id"], "product": names.get(product, product),
                "tier": p.get("nickname") or p.get("lookup_key") or names.get(product, product),
                "tier_rank": int(meta["tier_rank"]) if str(meta.get("tier_rank", "")).lstrip("-").isdigit()
                else ranked[p["id"]],
                "pricing": "usage" if metered else (meta.get("pricing") if meta.get("pricing") in ("flat",
                                                                                              "per_seat")
                                                    else "per_seat"),
                "interval_months": _interval_months(p["recurring"]),
                "unit_price": None if unit is None else _major(unit, p.get("currency") or "usd"),
                "usage_metric": (products.get(product) or {}).get("unit_label") or ("units" if metered else None),
            })

    coupon_names = {c["id"]: c.get("name") or c["id"] for c in account.coupons}
    periods = _billed_periods(account.invoices)
    lines: list[dict[str, Any]] = []
    for invoice in account.invoices:
        customer = problems.need(invoice, "customer", "invoice")
        currency = str(invoice.get("currency") or "").upper()
        invoice_lines = (invoice.get("lines") or {}).get("data") or []
        discounts = {d["id"]: _coupon_name(d, coupon_names)
                     for d in [*(invoice.get("discounts") or []),
                               *(d for line in invoice_lines for d in line.get("discounts") or [])]
                     if isinstance(d, dict) and d.get("id")}
        for line in invoice_lines:
            lines.extend(_invoice_line(line, invoice, customer, currency, prices, problems, discounts, periods))
    for note in account.credit_notes:
        if note.get("status") == "void":
            continue  # a voided credit note gave nothing back
        customer = problems.need(note, "customer", "credit note")
        currency = str(problems.need(note, "currency", "credit note") or "")
        total = note.get("total_excluding_tax")
        total = note.get("subtotal") if total is None else total
        day = _day(note.get("created"))
        if day is None or total is None:
            problems.need(note, "created" if day is None else "total_excluding_tax", "credit note")
            continue
        lines.append({"line_id": note["id"], "account_id": customer, "plan_id": None, "kind": "one_time",
                      "quantity": None, "amount": -_major(total, currency), "currency": currency.upper(),
                      "period_start": day, "period_end": day + dt.timedelta(days=1), "proration": None})

    # a deleted customer is gone from the customer list, but its invoices and credit notes remain: it is still an
    # account, named as its invoices name it
    known = {a["account_id"] for a in accounts}
    for invoice in account.invoices:
        customer = invoice.get("customer")
        if customer and customer not in known:
            known.add(customer)
            accounts.append({"account_id": customer, "name": invoice.get("customer_name") or
                             invoice.get("customer_email"), "segment": None, "industry": None, "region": None,
                             "owner": None, "created_at": None})
    for other in (*account.credit_notes, *account.subscriptions):
        if other.get("customer") and other["customer"] not in known:
            known.add(other["customer"])
            accounts.append({"account_id": other["customer"], "name": None, "segment": None, "industry": None,
                             "region": None, "owner": None, "created_at": None})
    subscriptions = []
    for s in account.subscriptions:
        customer = problems.need(s, "customer", "subscription")
        items = (s.get("items") or {}).get("data") or []
        period_end = max((i.get("current_period_end") or 0 for i in items), default=None) or s.get(
            "current_period_end")
        ends = s.get("cancel_at") or (period_end if s.get("cancel_at_period_end") else None) or s.get("ended_at")
        subscriptions.append({
            "subscription_id": s["id"], "account_id": customer, "status": s.get("status"),
            "started_on": _day(s.get("start_date") or s.get("created")), "trial_end": _day(s.get("trial_end")),
            "cancel_at": _day(ends), "canceled_at": _day(s.get("canceled_at")),
            "cancel_reason": (s.get("cancellation_details") or {}).get("reason"),
        })
    problems.check()
    return {
        "accounts": pa.Table.from_pylist(accounts, schema=_ACCOUNTS),
        "plans": pa.Table.from_pylist(plans, schema=_PLANS),
        "invoice_lines": pa.Table.from_pylist(lines, schema=_LINES),
        "subscriptions": pa.Table.from_pylist(subscriptions, schema=_SUBSCRIPTIONS),
    }


def stripe_rates(conversions: list[dict[str, Any]]) -> tuple[pa.Table, str] | None:
    """The daily ``fx_rates`` of Stripe's conversions, and the settlement currency they are quoted in; None when
    there are none.

    Formula
    -------
    The settlement currency is the one most conversions were made into (ties: the first in alphabetical order);
    conversions into another are left out. For each day (UTC) and charge currency, the rate of the day's last
    conversion (by creation time; ties: the larger id), the rate as Stripe gives it. A day without a conversion
    takes the latest earlier day's rate, as any daily ``fx_rates`` do.
    """
    if not conversions:
        return None
    counts: dict[str, int] = {}
    for c in conversions:
        counts[c["to"]] = counts.get(c["to"], 0) + 1
    settled = min(counts, key=lambda currency: (-counts[currency], currency))
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for c in sorted(conversions, key=lambda c: (c["created"], c["id"])):
        if c["to"] == settled and c["from"] != settled:
            last[(dt.datetime.fromtimestamp(c["created"], dt.UTC).strftime("%Y-%m-%d"), c["from"])] = c
    rows = [{"day": day, "currency": currency, "rate": float(c["rate"])}
            for (day, currency), c in sorted(last.items())]
    return pa.Table.from_pylist(rows, schema=_RATES), settled


def _coupon_name(discount: dict[str, Any], coupon_names: dict[str, str]) -> str:
    """The name of a discount's coupon: as the account's coupons name it now (a renamed coupon shows its new name
    on every line), else as the discount embeds it (a deleted coupon), else the coupon's id; the discount's id when
    it names no coupon. A promotion code's discount names its coupon too.

    Stripe's Discount carries its coupon as ``coupon`` (an object, in the pinned version) or, in later versions,
    as ``source.coupon`` (an id, or the object when expanded): both are read."""
    coupon = discount.get("coupon") or (discount.get("source") or {}).get("coupon")
    embedded = coupon if isinstance(coupon, dict) else {"id": coupon}
    if not embedded.get("id"):
        return str(discount["id"])
    return str(coupon_names.get(str(embedded["id"])) or embedded.get("name") or embedded["id"])


def _invoice_line(line: dict[str, Any], invoice: dict[str, Any], customer: Any, currency: str,
                  prices: dict[str, dict[str, Any]], problems: _Problems,
                  coupons: dict[str, str], periods: dict[tuple[str, str, int], int]) -> list[dict[str, Any]]:
    """One invoice line as contract lines: itself, and a discount's excess beyond a recurring line.

    ``coupons``: the coupon's name of each discount of the invoice, by the discount's id; ``periods``: the billing
    periods regular lines billed (:func:`_billed_periods`), for a proration line's share."""
    price_id = _line_price(line)
    price = prices.get(price_id or "")
    if price_id and price is None:
        problems.found.append(f"invoice line {line.get('id')}: its price {price_id} is not among the prices read")
        return []
    period = line.get("period") or {}
    start, end = _day(period.get("start")), _day(period.get("end"))
    if start is None or end is None:
        problems.need(line, "period.start" if start is None else "period.end", "invoice line")
        return []
    line_currency = str(line.get("currency") or currency).upper()
    taken = [d for d in line.get("discount_amounts") or [] if int(d.get("amount") or 0)]
    discounts = sum(int(d["amount"]) for d in taken)
    # a discount amount names its discount by id (or as the object, when expanded); one the invoice did not
    # expand is named by its id
    ids = [d["discount"].get("id") if isinstance(d.get("discount"), dict) else d.get("discount") for d in taken]
    named = [coupons.get(str(i), str(i)) for i in ids if i]
    net = int(line.get("amount") or 0) - discounts - _inclusive_tax(line)
    recurring = bool(price and price.get("recurring"))
    kind = ("usage" if price["recurring"].get("usage_type") == "metered" else "subscription") if price and recurring \
        else "one_time"
    proration = _line_proration(line)
    row = {"line_id": line["id"], "account_id": customer, "plan_id": price_id if recurring else None, "kind": kind,
           "quantity": None if line.get("quantity") is None else float(line["quantity"]),
           "amount": _major(net, line_currency), "currency": line_currency, "period_start": start,
           "period_end": end if end > start else start + dt.timedelta(days=1),
           "proration": ("true" if proration else "false") if recurring else None,
           "proration_share": _proration_share(line, customer, periods) if recurring and proration else None,
           "coupon": ", ".join(dict.fromkeys(n for n in named if n)) or None,
           "discount": _major(discounts, line_currency) if discounts else None}
    if kind == "one_time" or net >= 0 or proration:
        return [row]
    # a discount larger than its recurring line: the line at zero, the excess booked as a one-time credit
    excess = {**row, "line_id": f"{line['id']}:excess_discount", "plan_id": None, "kind": "one_time",
              "quantity": None, "period_end": start + dt.timedelta(days=1), "proration": None,
              "proration_share": None}
    return [{**row, "amount": Decimal(0)}, excess]


_MONEY = pa.decimal128(20, 3)
#: Stripe's unit amounts have up to 12 decimal places of the minor unit: 15 of the major unit (three-decimal
#: currencies).
_ACCOUNTS = pa.schema([("account_id", pa.string()), ("name", pa.string()), ("segment", pa.string()),
                       ("industry", pa.string()), ("region", pa.string()), ("owner", pa.string()),
                       ("created_at", pa.date32())])
_PLANS = pa.schema([("plan_id", pa.string()), ("product", pa.string()), ("tier", pa.string()),
                    ("tier_rank", pa.int64()), ("pricing", pa.string()), ("interval_months", pa.int64()),
                    ("unit_price", pa.decimal128(30, 15)), ("usage_metric", pa.string())])
_LINES = pa.schema([("line_id", pa.string()), ("account_id", pa.string()), ("plan_id", pa.string()),
                    ("kind", pa.string()), ("quantity", pa.float64()), ("amount", _MONEY),
                    ("currency", pa.string()), ("period_start", pa.date32()), ("period_end", pa.date32()),
                    ("proration", pa.string()), ("proration_share", pa.float64()), ("coupon", pa.string()),
                    ("discount", _MONEY)])
_RATES = pa.schema([("day", pa.string()), ("currency", pa.string()), ("rate", pa.float64())])
_SUBSCRIPTIONS = pa.schema([("subscription_id", pa.string()), ("account_id", pa.string()), ("status", pa.string()),
                            ("started_on", pa.date32()), ("trial_end", pa.date32()), ("cancel_at", pa.date32()),
                            ("canceled_at", pa.date32()), ("cancel_reason", pa.string())])
