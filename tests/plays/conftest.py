"""The plays tests' fixtures: a small workspace (one run of three accounts: one at risk, one growing, one quiet),
and a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from upcurve.workspace import Store

AS_OF = dt.date(2025, 3, 31)


def _accounts() -> pa.Table:
    base = {"name": None, "owner": "ann", "churn_risk": 0.1, "new_active_30d": 0, "active_users": 4,
            "purchased_seats": 10, "health_score": 60.0, "health_tier": "Nurture", "usage_share_used": 0.2,
            "days_to_renewal": 200, "features_first_used_7d": 0, "outcome_status": None}
    rows = [{**base, "account_id": "RISK", "name": "Risky Co", "churn_risk": 0.6},
            {**base, "account_id": "GROW", "name": "Growing Co", "owner": "bob", "new_active_30d": 8},
            {**base, "account_id": "QUIET", "name": "Quiet Co"}]
    return pa.Table.from_pylist(rows)


def movements(*rows: tuple[str, str, str, str | None, str]) -> pa.Table:
    """(month, account_id, type, source, amount) rows as a run's stored movements table (amounts exact)."""
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 5
    month, account, kind, source, amount = cols
    return pa.table({"month": pa.array(list(month), pa.string()), "account_id": pa.array(list(account), pa.string()),
                     "type": pa.array(list(kind), pa.string()), "source": pa.array(list(source), pa.string()),
                     "amount": pa.array([Decimal(a) for a in amount], pa.decimal128(20, 2))})


def plays_workspace(location: str) -> Store:
    """A workspace at ``location`` holding one run as of :data:`AS_OF`."""
    store = Store.open(location)
    store.save_run(as_of=AS_OF, source="test", fingerprint="f", settings={}, notes=[],
                   tables={"accounts": _accounts(), "movements": movements(("2025-03", "GROW", "new", None, "100.00"))},
                   started_at=dt.datetime(2025, 4, 1, 8, 0))
    return store


# -- a real SMTP server on loopback ------------------------------------------------------------------------------
class Inbox:
    """An aiosmtpd handler that keeps every message in memory, or answers RCPT or DATA with a set reply."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK queued as 42"

    def parsed(self, i: int = -1) -> email.message.EmailMessage:
        # as a mail store keeps it: the wire's CRLF line ends become newlines
        parsed = email.message_from_bytes(self.received[i][2].replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


class LoopbackController(Controller):
    """aiosmtpd's controller bound to port 0: the real port is read back before the start-up probe connects."""

    running = False

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()

    def start(self) -> None:
        super().start()
        self.running = True

    def stop(self, no_assert: bool = False) -> None:
        self.running = False
        super().stop(no_assert)


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"plays", b"right")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, LoopbackController]]:
    inbox = Inbox()
    controller = LoopbackController(inbox, hostname="127.0.0.1", port=0, authenticator=_authenticate,
                                    auth_require_tls=False)
    controller.start()
    yield inbox, controller
    if controller.running:
        controller.stop()
