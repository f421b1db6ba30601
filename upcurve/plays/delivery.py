"""Delivering one outbox message where teams work: an outbound webhook (JSON or Slack) or an email through SMTP.

The outbox calls :func:`deliver` once per attempt and keeps the message, its attempts and its last error;
:func:`next_attempt_at` says when to try again. A message is never sent twice *on purpose*: when an attempt fails
after the receiver may already have taken the message (a timeout while waiting for the answer), the retry carries
the same idempotency key, as the ``Idempotency-Key`` header of a webhook and as the ``Message-ID`` of an email, so
the receiving system can drop the duplicate.

Secrets stay out of the YAML: a webhook's URL and header values may hold ``${ENV_NAME}``, and the SMTP password is
named by ``password_env``; both are read from the environment at send time (``deliver(..., environ=...)`` lets the
caller pass the mapping instead). Error messages never show a header value, a password or a webhook's path (a Slack
webhook's path is its secret): only the scheme, host and port.

Values from customer data reach the message in ``subject``, ``text`` and ``payload``. The Slack format escapes
``&``, ``<`` and ``>`` in every one of them, so an account named ``<!channel>`` cannot ping a channel or forge a
link, and shows control, bidi and line-separator characters as visible escapes (``\\x1b``); an email does the same
for control characters (a header never receives a line break). The JSON format keeps the values as they are: it is
structured data, and its receiver escapes what it shows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import email.policy
import hashlib
import http.client
import json
import math
import os
import re
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, parseaddr, parsedate_to_datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

import upcurve
from upcurve.errors import UpcurveError

__all__ = ["DeliveryError", "DeliverySettings", "Message", "SmtpTarget", "WebhookTarget", "deliver", "email_message",
           "json_payload", "next_attempt_at", "slack_payload"]

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = {"content-type", "content-length", "idempotency-key", "user-agent", "host", "transfer-encoding"}
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"\\]+@[^@\s<>()\[\],;:\"\\.][^@\s<>()\[\],;:\"\\]*")
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
# C0 controls, DEL, C1 controls, direction marks, line and paragraph separators, bidi embeddings, overrides and
# isolates: the characters upcurve.present.safe shows as escapes in the terminal (that module is a layer above).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_UNSAFE_KEEPING_NEWLINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_RETRYABLE_STATUS = {408, 429}
_MAX_RETRY_AFTER_SECONDS = 7 * 24 * 3600.0
_SLACK_SECTION_CHARS = 3000
_SLACK_CONTEXT_CHARS = 2000


class DeliveryError(UpcurveError, RuntimeError):
    """A message could not be delivered.

    ``retryable`` says whether the same message may succeed later unchanged (a server error, a timeout, a refused
    connection, an SMTP 4xx reply); otherwise the settings or the message need a fix (a 4xx from a webhook, an SMTP
    5xx reply, a recipient without an address, a missing environment variable). ``retry_after_seconds`` is the
    server's ``Retry-After``, when it sent one.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_seconds = retry_after_seconds

    def __reduce__(self) -> tuple[Any, ...]:  # survives pickling between processes despite keyword-only arguments
        return (_rebuilt, (str(self), self.retryable, self.retry_after_seconds))


def _rebuilt(message: str, retryable: bool, retry_after_seconds: float | None) -> DeliveryError:
    return DeliveryError(message, retryable=retryable, retry_after_seconds=retry_after_seconds)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL without credentials, else a ValueError saying what is wrong."""
    if _UNSAFE.search(url) or " " in url:
        raise ValueError("a webhook url cannot hold spaces or control characters")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"a webhook url must start with http:// or https://, not {parts.scheme or 'nothing'}:")
    if not parts.hostname:
        raise ValueError("a webhook url needs a host (https://host/path)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a webhook url cannot hold credentials: send them as a header, e.g. "
                         "Authorization: 'Bearer ${WEBHOOK_TOKEN}'")
    _ = parts.port  # reading it raises ValueError on a port that is not a number in 0–65535
    return url


def _check_address(value: str, *, named: bool = False) -> str:
    """``value`` if it is one email address (``named``: or ``Name <address>``), else a ValueError."""
    if _UNSAFE.search(value):
        raise ValueError(f"{_visible(value)!r} holds control characters; an email address cannot")
    pairs = getaddresses([value])
    name, address = pairs[0] if len(pairs) == 1 else ("", "")
    if not _ADDRESS.fullmatch(address) or (not named and (name or address != value.strip())):
        example = "plays@example.com or 'Plays <plays@example.com>'" if named else "ann@example.com"
        raise ValueError(f"{value!r} is not an email address such as {example}")
    return value.strip()


class WebhookTarget(_Frozen):
    """An outbound webhook: where messages are POSTed, in which format, and with which extra headers.

    ``url`` and header values may hold ``${ENV_NAME}``, filled from the environment at send time (a URL that is
    a placeholder from its start is checked once filled). ``timeout_seconds`` bounds the connection and each read
    of the answer.
    """

    url: str
    format: Literal["json", "slack"] = "json"
    timeout_seconds: float = Field(10.0, gt=0, le=600)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # a placeholder is checked as a plain word now and filled at send time; a whole-URL one only then
        if not value.startswith("${"):
            _check_url(_PLACEHOLDER.sub("x", value))
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by upcurve and cannot be configured")
            if _UNSAFE.search(text.replace("\t", " ")):
                raise ValueError(f"header {name!r}: a value cannot hold line breaks or control characters")
        return value


class SmtpTarget(_Frozen):
    """The SMTP server email is sent through.

    ``ssl`` connects with TLS from the start (usually port 465); ``starttls`` upgrades a plain connection (usually
    port 587); both verify the server's certificate against the system's trusted roots. ``username`` logs in with
    the password held by the environment variable named by ``password_env``.
    """

    host: str = Field(min_length=1, pattern=r"^[^\s/]+$")
    port: int = Field(25, ge=1, le=65535)
    sender: str
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=600)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _check_address(value, named=True)

    @field_validator("password_env")
    @classmethod
    def _password_env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(f"password_env names an environment variable (such as SMTP_PASSWORD), not {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmtpTarget:
        if self.ssl and self.starttls:
            raise ValueError("choose one of ssl (TLS from the start, port 465) and starttls (port 587), not both")
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together: set both to log in, or neither")
        return self


class DeliverySettings(_Frozen):
    """Where messages go and how failed ones are retried (see :func:`next_attempt_at`).

    ``addresses`` maps a person or a role named as a message's target (``ann``, ``csm``) to an email address.
    """

    webhooks: dict[str, WebhookTarget] = Field(default_factory=dict)
    smtp: SmtpTarget | None = None
    addresses: dict[str, str] = Field(default_factory=dict)
    max_attempts: int = Field(8, ge=1)
    backoff_seconds: float = Field(60.0, ge=0)
    backoff_factor: float = Field(2.0, ge=1, le=100)
    max_backoff_seconds: float = Field(6 * 3600.0, ge=0, le=_MAX_RETRY_AFTER_SECONDS)

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: dict[str, str]) -> dict[str, str]:
        return {name: _check_address(address) for name, address in value.items()}

    @model_validator(mode="after")
    def _cap(self) -> DeliverySettings:
        if self.max_backoff_seconds < self.backoff_seconds:
            raise ValueError(f"max_backoff_seconds ({self.max_backoff_seconds:g}) is below backoff_seconds "
                             f"({self.backoff_seconds:g})")
        return self


@dataclass(frozen=True)
class Message:
    """One message of the outbox.

    ``target`` is a webhook's name (channel ``webhook``), or a person or role in ``addresses`` or an email address
    (channel ``email``). ``text`` is plain text; ``payload`` holds the structured facts (``account_id``,
    ``account_name``, ``play``, ``step``, ``action_id``, ``owner``, ``due_date``, ``reasons``…), JSON-serialisable
    (dates and times are sent in ISO format, decimals as exact strings). ``idempotency_key`` is 1–255 printable
    ASCII characters (it is sent as a header), the same on every attempt of the message.
    """

    idempotency_key: str
    channel: Literal["webhook", "email"]
    target: str
    subject: str
    text: str
    payload: Mapping[str, Any]


def _visible(value: object, *, multiline: bool = False) -> str:
    text = "" if value is None else str(value)

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return {9: "\\t", 10: "\\n", 13: "\\r"}.get(code) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")

    return (_UNSAFE_KEEPING_NEWLINES if multiline else _UNSAFE).sub(escape, text)


def _slack(value: object, *, multiline: bool = False) -> str:
    """A value from data as Slack mrkdwn shows it literally: control characters visible, ``& < >`` escaped."""
    text = _visible(value, multiline=multiline)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters with an ellipsis, never through an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", len(cut) - 5)
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def json_payload(message: Message) -> dict[str, Any]:
    """The body of a ``json`` webhook: the event, its idempotency key, the subject, the text and the facts.

    Values are kept as they are (the receiver escapes what it shows); ``version`` is the body's schema version.

    Examples
    --------
    >>> m = Message("a1:seat_expansion:1", "webhook", "sales", "Acme: 9 of 10 seats", "Offer the annual plan.",
    ...             {"account_id": "a1", "play": "seat_expansion"})
    >>> body = json_payload(m)
    >>> body["event"], body["idempotency_key"], body["payload"]["play"], body["sent_by"].startswith("upcurve/")
    ('upcurve.play_message', 'a1:seat_expansion:1', 'seat_expansion', True)
    """
    return {
        "event": "upcurve.play_message",
        "version": 1,
        "idempotency_key": message.idempotency_key,
        "subject": message.subject,
        "text": message.text,
        "payload": dict(message.payload),
        "sent_by": f"upcurve/{upcurve.__version__}",
    }


def slack_payload(message: Message) -> dict[str, Any]:
    """The body of a ``slack`` webhook: Slack's incoming-webhook format (``text`` and ``blocks``).

    A section holds the subject in bold and the text; a context line the account, play, step, owner, due date and
    reasons found in the payload. Every value from data is escaped as Slack asks (``&`` → ``&amp;``, ``<`` →
    ``&lt;``, ``>`` → ``&gt;``), so it can never become a mention (``<!channel>``, ``<@U123>``) or a link
    (``<https://…|click>``); control and bidi characters are shown as escapes. Link previews are turned off.

    Edge cases
    ----------
    Slack limits a section to 3,000 characters: a longer text is cut with an ellipsis. Payload keys that are absent
    are left out of the context line; ``reasons`` may be a string or a list.

    Examples
    --------
    >>> m = Message("k1", "webhook", "slack", "Renewal in 90 days: <!channel>", "AT&T <https://evil|click>",
    ...             {"account_name": "<@U123>", "account_id": "a1", "play": "renewal", "owner": "ann"})
    >>> body = slack_payload(m)
    >>> print(body["blocks"][0]["text"]["text"])
    *Renewal in 90 days: &lt;!channel&gt;*
    AT&amp;T &lt;https://evil|click&gt;
    >>> print(body["blocks"][1]["elements"][0]["text"])
    upcurve · &lt;@U123&gt; (a1) · play renewal · owner ann
    """
    p = message.payload
    section = _cut(f"*{_slack(message.subject)}*\n{_slack(message.text, multiline=True)}", _SLACK_SECTION_CHARS)
    context = ["upcurve"]
    name, account = p.get("account_name", p.get("name")), p.get("account_id")
    if name is not None:
        context.append(_slack(name) + (f" ({_slack(account)})" if account is not None else ""))
    elif account is not None:
        context.append(_slack(account))
    for key, label in (("play", "play"), ("step", "step"), ("owner", "owner"), ("due_date", "due")):
        if p.get(key) is not None:
            context.append(f"{label} {_slack(p[key])}")
    reasons = p.get("reasons")
    if reasons:
        listed = list(reasons) if isinstance(reasons, list | tuple) else [reasons]
        context.append("why: " + "; ".join(_slack(r) for r in listed))
    return {
        "text": _cut(_slack(message.subject), _SLACK_SECTION_CHARS),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {"type": "context",
             "elements": [{"type": "mrkdwn", "text": _cut(" · ".join(context), _SLACK_CONTEXT_CHARS)}]},
        ],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _fill(template: str, environ: Mapping[str, str], where: str) -> str:
    """``template`` with each ``${NAME}`` replaced by the environment variable; missing or empty is an error."""
    for name in _PLACEHOLDER.findall(template):
        if not environ.get(name):
            raise DeliveryError(f"{where} needs the environment variable {name}, which is not set (or empty): set "
                                f"it in the environment of the process that sends the plays' messages",
                                retryable=False)
    return _PLACEHOLDER.sub(lambda m: environ[m.group(1)], template)


def _suggest(name: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _json_default(value: object) -> object:
    """Dates and times in ISO format, decimals as exact strings, sets sorted, numpy scalars as Python numbers."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if type(value).__module__ == "numpy" and callable(item := getattr(value, "item", None)):
        return item()
    raise TypeError(f"a value of type {type(value).__name__} is not JSON")


def _retry_after_seconds(value: str | None, now: dt.datetime) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from ``now``, at most 7 days; else None."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):  # a number too long to read is beyond any cap anyway
        seconds = float(value) if len(value) <= 12 else _MAX_RETRY_AFTER_SECONDS
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = max(0.0, (when - now).total_seconds())
    return min(seconds, _MAX_RETRY_AFTER_SECONDS)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib turns a redirected POST into a GET without its body; refusing shows the redirect as an error instead
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _deliver_webhook(message: Message, settings: DeliverySettings, environ: Mapping[str, str]) -> str:
    name = message.target
    hook = settings.webhooks.get(name)
    if hook is None:
        known = ", ".join(sorted(settings.webhooks)) or "none"
        raise DeliveryError(f"no webhook named {name!r}{_suggest(name, settings.webhooks)}; add it under `webhooks` "
                            f"in the plays settings (configured: {known})", retryable=False)
    where = f"webhooks.{name}"
    url = _fill(hook.url, environ, f"{where}.url")
    try:
        _check_url(url)
    except ValueError as error:
        raise DeliveryError(f"{where}.url, once filled from the environment: {error}", retryable=False) from None
    headers = {key: _fill(value, environ, f"{where}.headers.{key}") for key, value in hook.headers.items()}
    for key, value in headers.items():
        if _UNSAFE.search(value.replace("\t", " ")) or not value.isascii():
            raise DeliveryError(f"{where}.headers.{key}: the value from the environment holds line breaks, control "
                                f"or non-ASCII characters", retryable=False)
    body = json_payload(message) if hook.format == "json" else slack_payload(message)
    try:
        data = json.dumps(body, ensure_ascii=False, allow_nan=False, default=_json_default).encode()
    except (TypeError, ValueError) as error:
        raise DeliveryError(f"the message {message.idempotency_key!r} cannot be written as JSON: {error}",
                            retryable=False) from None
    headers.update({"Content-Type": "application/json", "Idempotency-Key": message.idempotency_key,
                    "User-Agent": f"upcurve/{upcurve.__version__}"})
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    parts = urllib.parse.urlsplit(url)
    at = f"webhook {name!r} at {parts.scheme}://{parts.netloc}"  # never the path: a Slack webhook's is its secret
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        response = opener.open(request, timeout=hook.timeout_seconds)
    except urllib.error.HTTPError as error:
        raise _http_error(at, where, error) from None
    except (OSError, http.client.HTTPException) as error:  # URLError wraps what failed before an answer came
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        if isinstance(reason, TimeoutError):
            raise DeliveryError(f"{at} did not answer within {hook.timeout_seconds:g} s", retryable=True) from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise DeliveryError(f"{at}: its TLS certificate is not trusted ({reason})", retryable=False) from None
        raise DeliveryError(f"could not reach {at}: {reason!s}", retryable=True) from None
    with response:
        with contextlib.suppress(OSError, http.client.HTTPException):  # a broken body does not undo a 2xx
            response.read(65536)
        return f"HTTP {response.status}"


def _http_error(at: str, where: str, error: urllib.error.HTTPError) -> DeliveryError:
    status = error.code
    try:
        excerpt = _visible(error.read(2048).decode("utf-8", "replace"))[:200]
    except (OSError, http.client.HTTPException):
        excerpt = ""
    finally:
        error.close()
    said = f"{at} answered HTTP {status} {_visible(error.reason)}" + (f": {excerpt}" if excerpt else "")
    if status in _RETRYABLE_STATUS or 500 <= status <= 599:
        after = _retry_after_seconds(error.headers.get("Retry-After"), dt.datetime.now(dt.UTC))
        return DeliveryError(said + (f" (retry after {after:g} s)" if after is not None else ""), retryable=True,
                             retry_after_seconds=after)
    if 300 <= status <= 399:
        return DeliveryError(f"{said}; upcurve does not follow redirects of a POST: put the final address in "
                             f"`{where}.url`", retryable=False)
    return DeliveryError(f"{said}; this will fail again until `{where}` (url or headers) is fixed", retryable=False)


def _recipient(target: str, addresses: Mapping[str, str]) -> str:
    if target in addresses:
        return addresses[target]
    with contextlib.suppress(ValueError):
        return _check_address(target)
    raise DeliveryError(f"no email address for {_visible(target)!r}{_suggest(target, addresses)}: add it under "
                        f"`addresses` in the plays settings ({_visible(target)}: name@example.com)", retryable=False)


def _message_id(key: str, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2]
    domain = domain if domain.isascii() and domain else "upcurve.invalid"
    return f"<upcurve.{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def email_message(message: Message, settings: DeliverySettings) -> EmailMessage:
    """The email :func:`deliver` sends for ``message``: From, To, Subject, a plain-text body and its identifiers.

    ``Message-ID`` is derived from the idempotency key and the sender's domain, so every attempt of a message
    carries the same one and a receiving system can drop a duplicate; ``X-Upcurve-Idempotency-Key`` holds the key
    and ``Auto-Submitted: auto-generated`` asks receivers not to answer automatically.

    Raises
    ------
    DeliveryError
        Not retryable: no ``smtp`` settings, or a target that is neither in ``addresses`` nor an email address.

    Examples
    --------
    >>> s = DeliverySettings(smtp={"host": "mail.example.com", "sender": "Plays <plays@example.com>"},
    ...                      addresses={"csm": "ann@example.com"})
    >>> m = Message("a1:renewal:1", "email", "csm", "Renewal in 90 days", "Prepare the value report.", {})
    >>> e = email_message(m, s)
    >>> e["To"], e["Subject"], e["Message-ID"] == email_message(m, s)["Message-ID"], e.get_content()
    ('ann@example.com', 'Renewal in 90 days', True, 'Prepare the value report.\\n')
    """
    smtp = settings.smtp
    if smtp is None:
        raise DeliveryError("email needs an SMTP server: add `smtp` (host, port, sender) to the plays settings",
                            retryable=False)
    _check_key(message.idempotency_key)
    mail = EmailMessage()
    mail["From"] = smtp.sender
    mail["To"] = _recipient(message.target, settings.addresses)
    mail["Subject"] = _visible(message.subject)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = _message_id(message.idempotency_key, smtp.sender)
    mail["X-Upcurve-Idempotency-Key"] = message.idempotency_key
    mail["Auto-Submitted"] = "auto-generated"
    body = _visible(message.text, multiline=True) + "\n"
    mail.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
    return mail


def _smtp_error(at: str, stage: str, code: int, reply: bytes | str) -> DeliveryError:
    text = _visible(reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply)[:200]
    temporary = 400 <= code <= 499  # SMTP's own split: 4xx is transient, 5xx permanent
    hint = "temporary: it will be retried" if temporary else "permanent: fix the settings or the address first"
    return DeliveryError(f"{at} refused {stage} with {code} {text} ({hint})", retryable=temporary)


def _deliver_email(message: Message, settings: DeliverySettings, environ: Mapping[str, str]) -> str:
    mail = email_message(message, settings)
    smtp = settings.smtp
    assert smtp is not None  # email_message checked it
    password = _fill(f"${{{smtp.password_env}}}", environ, "smtp.password_env") if smtp.password_env else None
    sender, recipient = parseaddr(smtp.sender)[1], str(mail["To"])
    data = mail.as_bytes(policy=email.policy.SMTP if (sender + recipient).isascii() else email.policy.SMTPUTF8)
    context = ssl.create_default_context()  # smtplib's own default does not verify the certificate
    at = f"SMTP server {smtp.host}:{smtp.port}"
    client: smtplib.SMTP | None = None
    try:
        if smtp.ssl:
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        if smtp.starttls:
            client.starttls(context=context)
        if smtp.username and password is not None:
            client.login(smtp.username, password)
        client.ehlo_or_helo_if_needed()
        options: list[str] = []
        if not (sender + recipient).isascii():
            if not client.has_extn("smtputf8"):
                raise DeliveryError(f"{at} does not accept non-ASCII addresses (no SMTPUTF8): {recipient!r}",
                                    retryable=False)
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        code, reply = client.mail(sender, options)
        if code != 250:
            raise _smtp_error(at, "the sender", code, reply)
        code, reply = client.rcpt(recipient)
        if code not in (250, 251):
            raise _smtp_error(at, f"the recipient {recipient}", code, reply)
        code, reply = client.data(data)
        if code != 250:
            raise _smtp_error(at, "the message", code, reply)
        return f"{code} {_visible(reply.decode('utf-8', 'replace'))[:200]}"
    except smtplib.SMTPResponseException as error:  # the replies to connecting, HELO, STARTTLS, AUTH and DATA
        stage = {smtplib.SMTPConnectError: "the connection", smtplib.SMTPHeloError: "HELO",
                 smtplib.SMTPAuthenticationError: "the login", smtplib.SMTPDataError: "the message"}
        raise _smtp_error(at, stage.get(type(error), "a command"), error.smtp_code, error.smtp_error) from None
    except smtplib.SMTPServerDisconnected as error:
        raise DeliveryError(f"{at} closed the connection: {error}", retryable=True) from None
    except smtplib.SMTPException as error:  # STARTTLS or AUTH not offered, no common AUTH mechanism
        raise DeliveryError(f"{at}: {error}; check starttls, ssl and username", retryable=False) from None
    except ssl.SSLCertVerificationError as error:
        raise DeliveryError(f"{at}: its TLS certificate is not trusted ({error})", retryable=False) from None
    except ssl.SSLError as error:  # may pass (a dropped handshake); if it lasts, ssl or starttls does not fit the port
        raise DeliveryError(f"{at}: TLS failed ({error}); check ssl, starttls and the port", retryable=True) from None
    except TimeoutError:
        raise DeliveryError(f"{at} did not answer within {smtp.timeout_seconds:g} s", retryable=True) from None
    except OSError as error:
        raise DeliveryError(f"could not reach {at}: {error}", retryable=True) from None
    finally:
        if client is not None:
            try:  # after a 250 to DATA the message is delivered, whatever QUIT answers
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()


def _check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise DeliveryError(f"idempotency key {_visible(key)[:60]!r} must be 1–255 printable ASCII characters (it is "
                            f"sent as a header)", retryable=False)


def deliver(message: Message, settings: DeliverySettings, *, environ: Mapping[str, str] | None = None) -> str:
    """Send one message once; return a short receipt (``"HTTP 200"``, ``"250 OK queued as …"``).

    Parameters
    ----------
    message
        The message; ``channel`` says whether ``target`` names a webhook or an email recipient.
    settings
        The webhooks, the SMTP server and the address book.
    environ
        Where ``${ENV_NAME}`` placeholders and ``password_env`` are read; default :data:`os.environ`.

    Returns
    -------
    str
        ``HTTP <status>`` for a webhook; for an email, the SMTP server's reply to the message.

    Raises
    ------
    DeliveryError
        ``retryable`` for a webhook's 408, 429 or 5xx (with the ``Retry-After`` it sent), an SMTP 4xx reply, a
        refused or broken connection, a failed TLS handshake and a timeout; not retryable for any other 4xx or a 3xx
        from a webhook (the message quotes the status and the first 200 characters of the body), an SMTP 5xx reply,
        an untrusted certificate, an unknown webhook or recipient, a missing environment variable, or an
        idempotency key that cannot be a header.

    Edge cases
    ----------
    A webhook's redirect is not followed (urllib would resend the POST as a GET without its body); proxies set in
    the environment (``https_proxy``, ``no_proxy``) are used. A timeout may come after the receiver took the
    message: the retry carries the same idempotency key (and, for email, the same ``Message-ID``).
    """
    _check_key(message.idempotency_key)
    env = os.environ if environ is None else environ
    if message.channel == "webhook":
        return _deliver_webhook(message, settings, env)
    if message.channel == "email":
        return _deliver_email(message, settings, env)
    raise DeliveryError(f"unknown channel {message.channel!r}: use 'webhook' or 'email'", retryable=False)


def next_attempt_at(attempts: int, now: dt.datetime, settings: DeliverySettings, *,
                    retry_after_seconds: float | None = None) -> dt.datetime | None:
    """When to try a message again after ``attempts`` failed attempts, or None once they are used up.

    Formula
    -------
    ``delay = min(backoff_seconds × backoff_factor ** (attempts − 1), max_backoff_seconds)``, then at least
    ``retry_after_seconds`` (the server's ``Retry-After``, itself at most 7 days). With the defaults (60 s, ×2,
    8 attempts) the waits are 1, 2, 4, 8, 16, 32 and 64 minutes: about two hours from the first failure to the
    last try. Deterministic, without jitter: the outbox sends one message at a time, so there is no herd to spread,
    and a person can be told exactly when the next try is.

    Edge cases
    ----------
    ``attempts >= max_attempts`` gives None: the message stays failed, with its last error, until a person asks
    for it again. ``attempts`` below 1 and a negative or non-finite ``retry_after_seconds`` are errors.

    Examples
    --------
    >>> s = DeliverySettings()
    >>> now = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    >>> [(next_attempt_at(n, now, s) - now).total_seconds() for n in (1, 2, 3, 7)]
    [60.0, 120.0, 240.0, 3840.0]
    >>> next_attempt_at(8, now, s) is None
    True
    >>> next_attempt_at(1, now, s, retry_after_seconds=300).time()
    datetime.time(9, 5)
    >>> capped = DeliverySettings(max_backoff_seconds=600)
    >>> (next_attempt_at(7, now, capped) - now).total_seconds()
    600.0
    """
    if attempts < 1:
        raise ValueError(f"attempts counts failed attempts and starts at 1, not {attempts}")
    if retry_after_seconds is not None and not (math.isfinite(retry_after_seconds) and retry_after_seconds >= 0):
        raise ValueError(f"retry_after_seconds must be a finite number of seconds ≥ 0, not {retry_after_seconds}")
    if attempts >= settings.max_attempts:
        return None
    cap = settings.max_backoff_seconds
    try:
        delay = min(settings.backoff_seconds * settings.backoff_factor ** (attempts - 1), cap)
    except OverflowError:
        delay = cap
    if retry_after_seconds is not None:
        delay = max(delay, min(retry_after_seconds, _MAX_RETRY_AFTER_SECONDS))
    return now + dt.timedelta(seconds=delay)
