"""Delivery against real servers on loopback: an HTTP server that fails on purpose and an aiosmtpd SMTP server.

Nothing is mocked: every test sends real bytes through urllib or smtplib to a server on 127.0.0.1 bound to port 0.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message as ParsedMessage
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import upcurve
from tests.plays.conftest import Inbox, LoopbackController
from upcurve.errors import UpcurveError
from upcurve.plays.delivery import (
    DeliveryError,
    DeliverySettings,
    Message,
    SmtpTarget,
    WebhookTarget,
    deliver,
    email_message,
    json_payload,
    next_attempt_at,
    slack_payload,
)

NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
PAYLOAD = {"account_id": "a1", "account_name": "Acme", "play": "seat_expansion", "step": 1, "action_id": 7,
           "owner": "ann", "due_date": dt.date(2026, 1, 8), "reasons": ["9 of 10 seats used", "5 new users"]}


def webhook_message(key: str = "a1:seat_expansion:1", target: str = "crm", **payload: Any) -> Message:
    return Message(key, "webhook", target, "Acme: 9 of 10 seats used", "Offer the annual plan.",
                   {**PAYLOAD, **payload})


# A self-signed certificate for 127.0.0.1 (P-256, valid 2000–2100), made with `openssl ca -selfsign`: a server
# using it is untrusted until the test points SSL_CERT_FILE at it, which Python's default TLS context honours.
TEST_KEY = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4H3VX4uHr1vdDetq
ySoxIUP+A00vcG3zzVH6nDR4LiqhRANCAATURAVODDsnXzqEWpCXyy4bvy1+bsm6
6NsNTR4K13fMXgUfyBzvxHVhUqtyjvCv+M9XzFoiXJGRRMCeXutzzA8d
-----END PRIVATE KEY-----
"""
TEST_CERT = """\
-----BEGIN CERTIFICATE-----
MIIBhDCCASqgAwIBAgIBATAKBggqhkjOPQQDAjAXMRUwEwYDVQQDDAx1cGN1cnZl
IHRlc3QwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBcxFTATBgNV
BAMMDHVwY3VydmUgdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNREBU4M
OydfOoRakJfLLhu/LX5uybro2w1NHgrXd8xeBR/IHO/EdWFSq3KO8K/4z1fMWiJc
kZFEwJ5e63PMDx2jZTBjMA8GA1UdEQQIMAaHBH8AAAEwDAYDVR0TAQH/BAIwADAO
BgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwHQYDVR0OBBYEFLI4
fmoP+WAmjnWVkQcAdeS0nsmjMAoGCCqGSM49BAMCA0gAMEUCIBt3eHX/9SgPkC7e
0O1KQbiHkQTZ0OPz+aGCVDF7T5e6AiEAxoUAS0dEEQdyRKTmn6mcyVCrJLXymM1s
xfQMsC+DNdQ=
-----END CERTIFICATE-----
"""


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server-side TLS context with the test certificate, and the certificate's file (to trust it)."""
    (tmp_path / "key.pem").write_text(TEST_KEY)
    (tmp_path / "cert.pem").write_text(TEST_CERT)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context, tmp_path / "cert.pem"


# --- a webhook server that records every request and answers as told -------------------------------------------

@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False


@dataclass
class Request:
    path: str
    headers: ParsedMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Request] = []
        self.replies: deque[Reply] = deque()
        self.release = threading.Event()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def fail(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order; then 200."""
        self.replies.extend(replies)


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(Request(self.path, self.headers, body))
        reply = self.server.replies.popleft() if self.server.replies else Reply()
        if reply.hang:
            self.server.release.wait(5)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # the client gave up (the timeout test)
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[WebhookServer]:
    srv = WebhookServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def https_server(tls: tuple[ssl.SSLContext, Path]) -> Iterator[WebhookServer]:
    srv = WebhookServer()
    srv.socket = tls[0].wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def hooks(server: WebhookServer, **target: Any) -> DeliverySettings:
    return DeliverySettings(webhooks={"crm": WebhookTarget(url=server.url(), **target)})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def failure(message: Message, settings: DeliverySettings, **kwargs: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        deliver(message, settings, **kwargs)
    return caught.value


# --- webhooks ----------------------------------------------------------------------------------------------------

def test_json_webhook_sends_the_headers_and_the_body(server: WebhookServer) -> None:
    message = webhook_message()
    assert deliver(message, hooks(server)) == "HTTP 200"
    [request] = server.requests
    assert request.path == "/hook"
    assert request.headers["Idempotency-Key"] == "a1:seat_expansion:1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"upcurve/{upcurve.__version__}"
    body = request.json()
    assert body == {**json_payload(message), "payload": {**PAYLOAD, "due_date": "2026-01-08"}}
    assert body["event"] == "upcurve.play_message" and body["subject"] == "Acme: 9 of 10 seats used"


def test_slack_webhook_sends_the_slack_body(server: WebhookServer) -> None:
    message = webhook_message()
    assert deliver(message, hooks(server, format="slack")) == "HTTP 200"
    body = server.requests[0].json()
    assert body == json.loads(json.dumps(slack_payload(message)))
    assert body["text"] == "Acme: 9 of 10 seats used"
    assert body["blocks"][0] == {"type": "section", "text": {
        "type": "mrkdwn", "text": "*Acme: 9 of 10 seats used*\nOffer the annual plan."}}
    assert body["blocks"][1]["elements"][0]["text"] == (
        "upcurve · Acme (a1) · play seat_expansion · step 1 · owner ann · due 2026-01-08 · "
        "why: 9 of 10 seats used; 5 new users")


def test_a_failing_webhook_is_retried_with_backoff_and_delivered_once(server: WebhookServer) -> None:
    server.fail(Reply(500, body=b"boom"), Reply(502))
    settings = hooks(server)
    message = webhook_message()
    attempts, now, receipt = 0, NOW, None
    while receipt is None:
        try:
            receipt = deliver(message, settings)
        except DeliveryError as error:
            assert error.retryable
            attempts += 1
            when = next_attempt_at(attempts, now, settings, retry_after_seconds=error.retry_after_seconds)
            assert when is not None
            now = when
    assert receipt == "HTTP 200" and attempts == 2 and now == NOW + dt.timedelta(seconds=60 + 120)
    assert [r.headers["Idempotency-Key"] for r in server.requests] == ["a1:seat_expansion:1"] * 3
    assert len({r.body for r in server.requests}) == 1


@pytest.mark.parametrize(("status", "retryable"), [
    (500, True), (502, True), (503, True), (504, True), (408, True), (429, True),
    (400, False), (401, False), (403, False), (404, False), (410, False), (422, False),
])
def test_which_statuses_are_retried(server: WebhookServer, status: int, retryable: bool) -> None:
    server.fail(Reply(status, body=b"nope"))
    error = failure(webhook_message(), hooks(server))
    assert error.retryable is retryable
    assert f"HTTP {status}" in str(error) and "nope" in str(error)
    assert isinstance(error, UpcurveError) and isinstance(error, RuntimeError)


def test_a_config_error_quotes_the_status_and_the_first_200_characters_of_the_body(server: WebhookServer) -> None:
    server.fail(Reply(400, body=b"invalid_payload " + b"y" * 500))
    error = failure(webhook_message(), hooks(server))
    assert not error.retryable and error.retry_after_seconds is None
    text = str(error)
    assert "HTTP 400" in text and "invalid_payload" in text and "webhooks.crm" in text
    assert "y" * 184 in text and "y" * 185 not in text


def test_retry_after_in_seconds_is_honoured_by_the_schedule(server: WebhookServer) -> None:
    server.fail(Reply(429, headers={"Retry-After": "120"}))
    settings = hooks(server)
    error = failure(webhook_message(), settings)
    assert error.retryable and error.retry_after_seconds == 120
    assert next_attempt_at(1, NOW, settings, retry_after_seconds=error.retry_after_seconds) == NOW + dt.timedelta(
        seconds=120)


def test_retry_after_as_an_http_date_is_honoured(server: WebhookServer) -> None:
    in_an_hour = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    server.fail(Reply(503, headers={"Retry-After": format_datetime(in_an_hour, usegmt=True)}))
    error = failure(webhook_message(), hooks(server))
    assert error.retryable and error.retry_after_seconds is not None
    assert 3590 <= error.retry_after_seconds <= 3600


@pytest.mark.parametrize("value", ["soon", "-5", "1.5"])
def test_a_retry_after_that_cannot_be_read_is_ignored(server: WebhookServer, value: str) -> None:
    server.fail(Reply(503, headers={"Retry-After": value}))
    error = failure(webhook_message(), hooks(server))
    assert error.retryable and error.retry_after_seconds is None


def test_a_retry_after_years_away_is_held_to_a_week(server: WebhookServer) -> None:
    server.fail(Reply(429, headers={"Retry-After": "9" * 30}))
    assert failure(webhook_message(), hooks(server)).retry_after_seconds == 7 * 24 * 3600


def test_a_webhook_that_hangs_past_the_timeout_is_retryable(server: WebhookServer) -> None:
    server.fail(Reply(hang=True))
    started = time.monotonic()
    error = failure(webhook_message(), hooks(server, timeout_seconds=0.2))
    assert time.monotonic() - started < 2
    assert error.retryable and "did not answer within 0.2 s" in str(error)


def test_a_refused_connection_is_retryable() -> None:
    settings = DeliverySettings(webhooks={"crm": WebhookTarget(url=f"http://127.0.0.1:{closed_port()}/hook")})
    error = failure(webhook_message(), settings)
    assert error.retryable and "could not reach webhook 'crm'" in str(error)


def test_an_untrusted_certificate_is_not_retryable_and_a_trusted_one_works(
        https_server: WebhookServer, tls: tuple[ssl.SSLContext, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = DeliverySettings(webhooks={"crm": WebhookTarget(url=https_server.url().replace("http:", "https:"))})
    error = failure(webhook_message(), settings)
    assert not error.retryable and "certificate is not trusted" in str(error)
    assert https_server.requests == []
    monkeypatch.setenv("SSL_CERT_FILE", str(tls[1]))
    assert deliver(webhook_message(), settings) == "HTTP 200"
    assert len(https_server.requests) == 1


def test_tls_to_a_plain_http_server_is_retryable(server: WebhookServer) -> None:
    settings = DeliverySettings(webhooks={"crm": WebhookTarget(url=server.url().replace("http:", "https:"),
                                                               timeout_seconds=2)})
    error = failure(webhook_message(), settings)
    assert error.retryable and "could not reach webhook 'crm'" in str(error)


def test_a_redirect_is_not_followed(server: WebhookServer) -> None:
    server.fail(Reply(302, headers={"Location": server.url("/elsewhere")}))
    error = failure(webhook_message(), hooks(server))
    assert not error.retryable and "HTTP 302" in str(error) and "redirect" in str(error)
    assert [r.path for r in server.requests] == ["/hook"]


def test_header_values_are_filled_from_the_environment(server: WebhookServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = hooks(server, headers={"Authorization": "Bearer ${CRM_TOKEN}", "X-Team": "sales"})
    deliver(webhook_message(), settings, environ={"CRM_TOKEN": "s3cret"})
    monkeypatch.setenv("CRM_TOKEN", "from-os-environ")
    deliver(webhook_message(), settings)
    assert [r.headers["Authorization"] for r in server.requests] == ["Bearer s3cret", "Bearer from-os-environ"]
    assert server.requests[0].headers["X-Team"] == "sales"


def test_a_missing_environment_variable_is_a_clear_error(server: WebhookServer) -> None:
    settings = hooks(server, headers={"Authorization": "Bearer ${CRM_TOKEN}"})
    error = failure(webhook_message(), settings, environ={})
    assert not error.retryable
    assert "webhooks.crm.headers.Authorization needs the environment variable CRM_TOKEN" in str(error)
    assert server.requests == []


def test_the_url_may_come_from_the_environment_and_never_shows_in_an_error(server: WebhookServer) -> None:
    settings = DeliverySettings(webhooks={"slack": WebhookTarget(url="${SLACK_WEBHOOK_URL}", format="slack")})
    secret_url = server.url("/services/T000/B000/SECRETPATH")
    assert deliver(webhook_message(target="slack"), settings, environ={"SLACK_WEBHOOK_URL": secret_url}) == "HTTP 200"
    server.fail(Reply(500))
    error = failure(webhook_message(target="slack"), settings, environ={"SLACK_WEBHOOK_URL": secret_url})
    assert "SECRETPATH" not in str(error) and "127.0.0.1" in str(error)
    bad = failure(webhook_message(target="slack"), settings, environ={"SLACK_WEBHOOK_URL": "ftp://x/y"})
    assert not bad.retryable and "http://" in str(bad)


def test_an_unknown_webhook_names_the_configured_ones(server: WebhookServer) -> None:
    error = failure(webhook_message(target="crn"), hooks(server))
    assert not error.retryable and "'crn'" in str(error) and "did you mean 'crm'" in str(error)


def test_an_idempotency_key_that_cannot_be_a_header_is_refused(server: WebhookServer) -> None:
    error = failure(webhook_message(key="a1\r\nX-Evil: 1"), hooks(server))
    assert not error.retryable and "idempotency key" in str(error)
    assert server.requests == []


def test_a_payload_that_is_not_json_is_not_retryable(server: WebhookServer) -> None:
    error = failure(webhook_message(mrr=float("nan")), hooks(server))
    assert not error.retryable and "JSON" in str(error)


@pytest.mark.parametrize(("target", "problem"), [
    ({"url": "ftp://example.com/x"}, "http:// or https://"),
    ({"url": "ftp://example.com/${HOOK_PATH}"}, "http:// or https://"),
    ({"url": "https://"}, "needs a host"),
    ({"url": "https://user:pw@example.com/x"}, "credentials"),
    ({"url": "https://example.com/x", "timeout": 3}, "Extra inputs"),
    ({"url": "https://example.com/x", "format": "xml"}, "format"),
    ({"url": "https://example.com/x", "timeout_seconds": 0}, "greater than 0"),
    ({"url": "https://example.com/x", "headers": {"Content-Type": "text/plain"}}, "set by upcurve"),
    ({"url": "https://example.com/x", "headers": {"X-A": "a\r\nX-B: b"}}, "line breaks"),
    ({"url": "https://example.com/x", "headers": {"Bad Name": "a"}}, "header name"),
])
def test_webhook_settings_are_validated(target: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        WebhookTarget.model_validate(target)


@pytest.mark.parametrize(("smtp", "problem"), [
    ({"host": "mail", "sender": "not an address"}, "is not an email address"),
    ({"host": "mail", "sender": "a@b.example", "ssl": True, "starttls": True}, "not both"),
    ({"host": "mail", "sender": "a@b.example", "username": "u"}, "go together"),
    ({"host": "mail", "sender": "a@b.example", "username": "u", "password_env": "not-a-name"}, "environment"),
    ({"host": "mail", "sender": "a@b.example", "user": "u"}, "Extra inputs"),
])
def test_smtp_settings_are_validated(smtp: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        SmtpTarget.model_validate(smtp)


def test_delivery_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="is not an email address"):
        DeliverySettings(addresses={"ann": "ann at example.com"})
    with pytest.raises(ValidationError, match="below backoff_seconds"):
        DeliverySettings(backoff_seconds=600, max_backoff_seconds=60)
    with pytest.raises(ValidationError, match="Extra inputs"):
        DeliverySettings.model_validate({"max_attempt": 3})
    assert SmtpTarget(host="mail", sender="Plays <plays@example.com>").sender == "Plays <plays@example.com>"


def test_a_delivery_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(DeliveryError("x", retryable=True, retry_after_seconds=3.0)))
    assert (str(error), error.retryable, error.retry_after_seconds) == ("x", True, 3.0)


# --- Slack escaping ----------------------------------------------------------------------------------------------

HOSTILE = ["<!channel>", "<!here>", "<!everyone>", "<@U0123ABC>", "<#C0123|general>", "<!subteam^S012|@team>",
           "<https://evil.example|click here>", "<mailto:a@evil.example|mail>", "&lt;!channel&gt;", "a > b & c < d",
           "\x1b[31mred\x1b[0m", "\u202eevil", "two\nlines"]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def assert_slack_safe(body: dict[str, Any]) -> None:
    for text in strings(body):
        assert "<" not in text and ">" not in text, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text), text


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_never_ping_or_link_in_slack(hostile: str) -> None:
    message = Message("k", "webhook", "slack", f"Renewal for {hostile}", f"Call {hostile} today",
                      {"account_name": hostile, "account_id": hostile, "play": hostile, "step": hostile,
                       "owner": hostile, "due_date": hostile, "reasons": [hostile, hostile]})
    body = slack_payload(message)
    assert_slack_safe(body)
    dumped = json.dumps(body)
    for mention in ("<!channel>", "<!here>", "<!everyone>", "<@U", "<#C", "<http", "<mailto"):
        assert mention not in dumped


def test_slack_shows_the_escaped_value_as_written() -> None:
    body = slack_payload(Message("k", "webhook", "slack", "AT&T <!channel>", "line 1\nline 2\x1b", {}))
    assert body["blocks"][0]["text"]["text"] == "*AT&amp;T &lt;!channel&gt;*\nline 1\nline 2\\x1b"
    assert body["blocks"][1]["elements"][0]["text"] == "upcurve"


def test_a_long_slack_text_is_cut_within_the_limit_and_never_through_an_entity() -> None:
    body = slack_payload(Message("k", "webhook", "slack", "s", "&" * 10_000, {}))
    section = body["blocks"][0]["text"]["text"]
    assert len(section) <= 3000 and section.endswith("…")
    assert_slack_safe(body)


@given(st.text(), st.text())
def test_slack_bodies_are_safe_for_any_text(subject: str, name: str) -> None:
    assert_slack_safe(slack_payload(Message("k", "webhook", "slack", subject, name, {"account_name": name})))


# --- email through a real SMTP server ----------------------------------------------------------------------------

def mail_settings(controller: LoopbackController, **smtp: Any) -> DeliverySettings:
    return DeliverySettings(
        smtp=SmtpTarget(host="127.0.0.1", port=controller.port, sender="Upcurve plays <plays@example.com>",
                        timeout_seconds=2, **smtp),
        addresses={"ann": "ann@example.com", "csm": "zoe@example.com"})


def mail(key: str = "a1:renewal:1", target: str = "ann", subject: str = "Renewal in 90 days: Acme",
         text: str = "Prepare the value report for Acme.\nDue 2026-01-08.") -> Message:
    return Message(key, "email", target, subject, text, PAYLOAD)


def test_an_email_arrives_with_its_headers_and_body(smtp: tuple[Inbox, LoopbackController]) -> None:
    inbox, controller = smtp
    settings = mail_settings(controller)
    assert deliver(mail(), settings) == "250 OK queued as 42"
    [(mail_from, rcpt_tos, _)] = inbox.received
    assert (mail_from, rcpt_tos) == ("plays@example.com", ["ann@example.com"])
    got = inbox.parsed()
    assert got["From"] == "Upcurve plays <plays@example.com>" and got["To"] == "ann@example.com"
    assert got["Subject"] == "Renewal in 90 days: Acme"
    assert got.get_content() == "Prepare the value report for Acme.\nDue 2026-01-08.\n"
    assert got["X-Upcurve-Idempotency-Key"] == "a1:renewal:1" and got["Auto-Submitted"] == "auto-generated"
    assert re.fullmatch(r"<upcurve\.[0-9a-f]{40}@example\.com>", got["Message-ID"])


def test_the_same_key_gives_the_same_message_id(smtp: tuple[Inbox, LoopbackController]) -> None:
    inbox, controller = smtp
    settings = mail_settings(controller)
    deliver(mail(), settings)
    deliver(mail(text="a retry"), settings)
    deliver(mail(key="a1:renewal:2"), settings)
    ids = [inbox.parsed(i)["Message-ID"] for i in range(3)]
    assert ids[0] == ids[1] == email_message(mail(), settings)["Message-ID"] != ids[2]


def test_a_role_or_an_address_is_a_recipient(smtp: tuple[Inbox, LoopbackController]) -> None:
    inbox, controller = smtp
    deliver(mail(target="csm"), mail_settings(controller))
    deliver(mail(target="bob@example.org"), mail_settings(controller))
    assert [r[1] for r in inbox.received] == [["zoe@example.com"], ["bob@example.org"]]


def test_customer_text_cannot_add_headers_or_control_codes(smtp: tuple[Inbox, LoopbackController]) -> None:
    inbox, controller = smtp
    deliver(mail(subject="Zoë Café 株式会社\r\nBcc: evil@example.org", text="Hi\x1b[31m Zoë\r\n株式会社"),
            mail_settings(controller))
    [(_, rcpt_tos, _)] = inbox.received
    got = inbox.parsed()
    assert rcpt_tos == ["ann@example.com"] and got["Bcc"] is None
    assert got["Subject"] == "Zoë Café 株式会社\\r\\nBcc: evil@example.org"
    assert got.get_content() == "Hi\\x1b[31m Zoë\\r\n株式会社\n"


def test_an_unknown_recipient_is_not_retryable(smtp: tuple[Inbox, LoopbackController]) -> None:
    inbox, controller = smtp
    error = failure(mail(target="ane"), mail_settings(controller))
    assert not error.retryable
    assert "no email address for 'ane'" in str(error) and "`addresses`" in str(error)
    assert "did you mean 'ann'" in str(error)
    assert inbox.received == []


@pytest.mark.parametrize(("stage", "reply", "retryable"), [
    ("rcpt", "451 4.3.0 Try again later", True),
    ("rcpt", "550 5.1.1 No such user", False),
    ("data", "451 4.7.1 Greylisted", True),
    ("data", "554 5.7.1 Rejected as spam", False),
])
def test_smtp_temporary_failures_are_retryable_and_permanent_ones_not(
        smtp: tuple[Inbox, LoopbackController], stage: str, reply: str, retryable: bool) -> None:
    inbox, controller = smtp
    setattr(inbox, f"{stage}_reply", reply)
    error = failure(mail(), mail_settings(controller))
    assert error.retryable is retryable
    assert reply[:3] in str(error) and reply[4:] in str(error)


def test_a_stopped_smtp_server_is_retryable(smtp: tuple[Inbox, LoopbackController]) -> None:
    _, controller = smtp
    settings = mail_settings(controller)
    controller.stop()
    error = failure(mail(), settings)
    assert error.retryable and "could not reach SMTP server 127.0.0.1" in str(error)


def test_login_reads_the_password_from_the_environment(smtp: tuple[Inbox, LoopbackController]) -> None:
    inbox, controller = smtp
    settings = mail_settings(controller, username="plays", password_env="SMTP_PASSWORD")
    assert deliver(mail(), settings, environ={"SMTP_PASSWORD": "right"}).startswith("250")
    wrong = failure(mail(), settings, environ={"SMTP_PASSWORD": "wrong"})
    assert not wrong.retryable and "535" in str(wrong) and "wrong" not in str(wrong)
    missing = failure(mail(), settings, environ={})
    assert not missing.retryable and "SMTP_PASSWORD" in str(missing)
    assert len(inbox.received) == 1


@pytest.mark.parametrize("mode", ["ssl", "starttls"])
def test_smtp_over_tls_checks_the_certificate(tls: tuple[ssl.SSLContext, Path], monkeypatch: pytest.MonkeyPatch,
                                              mode: str) -> None:
    inbox = Inbox()
    server_tls = {"ssl_context": tls[0]} if mode == "ssl" else {"tls_context": tls[0]}
    controller = LoopbackController(inbox, hostname="127.0.0.1", port=0, **server_tls)
    controller.start()
    try:
        settings = mail_settings(controller, **{mode: True})
        error = failure(mail(), settings)
        assert not error.retryable and "certificate is not trusted" in str(error)
        monkeypatch.setenv("SSL_CERT_FILE", str(tls[1]))
        assert deliver(mail(), settings) == "250 OK queued as 42"
    finally:
        controller.stop()
    assert len(inbox.received) == 1


def test_ssl_to_a_plain_smtp_server_is_retryable_and_says_what_to_check(
        smtp: tuple[Inbox, LoopbackController]) -> None:
    _, controller = smtp
    error = failure(mail(), mail_settings(controller, ssl=True))
    assert error.retryable and "check ssl, starttls and the port" in str(error)


def test_email_without_smtp_settings_is_not_retryable() -> None:
    error = failure(mail(), DeliverySettings(addresses={"ann": "ann@example.com"}))
    assert not error.retryable and "`smtp`" in str(error)


# --- the retry schedule ------------------------------------------------------------------------------------------

def delays(settings: DeliverySettings, attempts: range, **kwargs: Any) -> list[float | None]:
    out: list[float | None] = []
    for n in attempts:
        when = next_attempt_at(n, NOW, settings, **kwargs)
        out.append(None if when is None else (when - NOW).total_seconds())
    return out


def test_the_default_schedule_doubles_from_a_minute_for_eight_attempts() -> None:
    # 60 s × 2^(n−1): 1, 2, 4, 8, 16, 32, 64 minutes, then the message stays failed
    assert delays(DeliverySettings(), range(1, 10)) == [60, 120, 240, 480, 960, 1920, 3840, None, None]


def test_the_delay_is_capped() -> None:
    settings = DeliverySettings(backoff_seconds=60, backoff_factor=10, max_backoff_seconds=1000, max_attempts=6)
    assert delays(settings, range(1, 7)) == [60, 600, 1000, 1000, 1000, None]
    huge = DeliverySettings(max_attempts=100_000)
    assert delays(huge, range(99_999, 100_001)) == [6 * 3600, None]


def test_retry_after_is_a_floor() -> None:
    settings = DeliverySettings()
    assert delays(settings, range(1, 3), retry_after_seconds=1000) == [1000, 1000]
    assert delays(settings, range(1, 3), retry_after_seconds=10) == [60, 120]
    assert delays(settings, range(8, 9), retry_after_seconds=10) == [None]


def test_bad_arguments_to_the_schedule() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        next_attempt_at(0, NOW, DeliverySettings())
    with pytest.raises(ValueError, match="finite"):
        next_attempt_at(1, NOW, DeliverySettings(), retry_after_seconds=-1)


@given(backoff=st.floats(0, 3600), factor=st.floats(1, 10), extra=st.floats(0, 5 * 86400),
       a=st.integers(1, 2000), b=st.integers(1, 2000), retry_after=st.none() | st.floats(0, 30 * 86400))
def test_the_delay_never_decreases_and_never_passes_the_cap(backoff: float, factor: float, extra: float, a: int,
                                                           b: int, retry_after: float | None) -> None:
    settings = DeliverySettings(backoff_seconds=backoff, backoff_factor=factor,
                                max_backoff_seconds=backoff + extra, max_attempts=10_000)
    first, second = sorted((a, b))
    d1, d2 = delays(settings, range(first, first + 1)) + delays(settings, range(second, second + 1))
    assert d1 is not None and d2 is not None
    assert d1 <= d2 <= settings.max_backoff_seconds + 1e-6
    [honoured] = delays(settings, range(second, second + 1), retry_after_seconds=retry_after)
    assert honoured is not None
    if retry_after is not None:
        assert honoured >= min(retry_after, 7 * 86400) - 1e-6
        assert honoured <= max(settings.max_backoff_seconds, retry_after) + 1e-6


def test_a_non_ascii_address_needs_smtputf8(smtp: tuple[Inbox, LoopbackController]) -> None:
    inbox, controller = smtp
    assert deliver(mail(target="zoë@example.com"), mail_settings(controller)).startswith("250")
    [(_, rcpt_tos, _)] = inbox.received
    assert rcpt_tos == ["zoë@example.com"] and inbox.parsed()["To"] == "zoë@example.com"
    ascii_only = LoopbackController(inbox, hostname="127.0.0.1", port=0, enable_SMTPUTF8=False)
    ascii_only.start()
    try:
        error = failure(mail(target="zoë@example.com"), mail_settings(ascii_only))
    finally:
        ascii_only.stop()
    assert not error.retryable and "SMTPUTF8" in str(error) and len(inbox.received) == 1
