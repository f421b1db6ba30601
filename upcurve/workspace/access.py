"""Who may read a workspace over the web: users with passwords, their login sessions, and API tokens with scopes.

Nothing secret is stored as it is. A password is kept as its scrypt hash with a salt of its own
(``scrypt$n$r$p$salt$hash``); a session id and an API token are long random secrets (256 bits) kept as their
SHA-256, which needs no salt because nobody chooses them. A check compares digests with
:func:`hmac.compare_digest`, so its time does not tell how much of a guess was right.

An API token reads ``upc_<token_id>_<secret>``: the id finds its row, the secret proves it. Its scopes are
``read`` (every ``GET`` of the API) and ``write`` (what changes something); ``write`` does not imply ``read``
unless both are given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from upcurve.errors import UpcurveError
from upcurve.workspace._database import WorkspaceError
from upcurve.workspace.store import Store

__all__ = ["ACTION_STATUSES", "SCOPES", "AccessError", "Action", "ApiToken", "Session", "User", "authenticate",
           "check_token", "create_session", "create_token", "end_session", "find_session", "hash_password",
           "list_actions", "list_tokens", "list_users", "record_action", "revoke_token", "set_user",
           "verify_password"]

#: The scopes a token can carry.
SCOPES = ("read", "write")

#: scrypt's cost: 2**14 iterations of 8 blocks (about 16 MiB and 50 ms a check), OWASP's floor for scrypt.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SESSION_HOURS = 12


class AccessError(UpcurveError, ValueError):
    """A user, password or token request that cannot be met (an unknown user, a bad scope, a short password)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The stored form of a password: ``scrypt$n$r$p$salt$hash`` (hex), with a fresh 16-byte salt.

    >>> stored = hash_password("correct horse")
    >>> verify_password("correct horse", stored), verify_password("wrong", stored)
    (True, False)
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P,
                            maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (False for a malformed stored value)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        found = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                               maxmem=64 * 1024 * 1024, dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found.hex(), digest)


@dataclass(frozen=True)
class User:
    username: str
    created_at: dt.datetime
    disabled: bool


@dataclass(frozen=True)
class Session:
    """A login session: who, its CSRF token (every form that changes something must send it back), its end."""

    username: str
    csrf_token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class ApiToken:
    token_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


# -- users ---------------------------------------------------------------------------------------------------------
def set_user(store: Store, username: str, password: str) -> User:
    """Add a user, or set the password of an existing one (and end that user's sessions)."""
    username = username.strip()
    if not username or len(username) > 100 or any(ch.isspace() or not ch.isprintable() for ch in username):
        raise AccessError(f"{username!r} is not a user name: use 1 to 100 visible characters without spaces")
    if len(password) < 8:
        raise AccessError("a password needs at least 8 characters")
    stored = hash_password(password)
    with store._writing() as con, con.transaction():
        con.execute("DELETE FROM sessions WHERE username = ?", [username])
        con.execute("DELETE FROM users WHERE username = ?", [username])
        con.execute("INSERT INTO users VALUES (?, ?, ?, false)", [username, stored, _now()])
    return User(username, _now(), False)


def list_users(store: Store) -> list[User]:
    with store._reading() as con:
        _, rows = con.rows("SELECT username, created_at, disabled FROM users ORDER BY username")
    return [User(r[0], r[1], bool(r[2])) for r in rows]


def authenticate(store: Store, username: str, password: str) -> bool:
    """Whether the user exists, is enabled and ``password`` is theirs (hashing a dummy when the user is unknown,
    so the answer takes as long either way)."""
    with store._reading() as con:
        stored = con.scalar("SELECT password_hash FROM users WHERE username = ? AND NOT disabled", [username])
    if stored is None:
        verify_password(password, hash_password("not a user"))
        return False
    return verify_password(password, stored)


# -- sessions ------------------------------------------------------------------------------------------------------
def create_session(store: Store, username: str, *, hours: float = _SESSION_HOURS) -> tuple[str, Session]:
    """Start a session: returns the session id to put in the cookie (kept only as its hash) and the session."""
    session_id = secrets.token_urlsafe(32)
    session = Session(username, secrets.token_urlsafe(32), _now() + dt.timedelta(hours=hours))
    with store._writing() as con, con.transaction():
        con.execute("DELETE FROM sessions WHERE expires_at < ?", [_now()])
        con.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                    [_sha256(session_id), username, session.csrf_token, _now(), session.expires_at])
    return session_id, session


def find_session(store: Store, session_id: str) -> Session | None:
    """The live session a cookie names (None when unknown, ended or expired)."""
    if not session_id or len(session_id) > 200:
        return None
    with store._reading() as con:
        _, rows = con.rows("SELECT s.username, s.csrf_token, s.expires_at FROM sessions s JOIN users u "
                           "ON u.username = s.username AND NOT u.disabled WHERE s.session_hash = ?",
                           [_sha256(session_id)])
    if not rows or rows[0][2] < _now():
        return None
    return Session(rows[0][0], rows[0][1], rows[0][2])


def end_session(store: Store, session_id: str) -> None:
    with store._writing() as con, con.transaction():
        con.execute("DELETE FROM sessions WHERE session_hash = ?", [_sha256(session_id)])


# -- API tokens ----------------------------------------------------------------------------------------------------
def create_token(store: Store, name: str, scopes: list[str] | tuple[str, ...]) -> tuple[str, ApiToken]:
    """Create a token: returns the token itself (shown once, never stored) and its record."""
    wanted = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown or not wanted:
        raise AccessError(f"unknown scope(s) {', '.join(map(repr, unknown)) or 'none given'}; the scopes are "
                          f"{', '.join(SCOPES)}")
    if not name.strip():
        raise AccessError("a token needs a name saying who or what uses it")
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    record = ApiToken(token_id, name.strip(), wanted, _now(), None)
    with store._writing() as con, con.transaction():
        con.execute("INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, NULL)",
                    [token_id, record.name, _sha256(secret), " ".join(wanted), record.created_at])
    return f"upc_{token_id}_{secret}", record


def list_tokens(store: Store) -> list[ApiToken]:
    with store._reading() as con:
        _, rows = con.rows("SELECT token_id, name, scopes, created_at, revoked_at FROM api_tokens "
                           "ORDER BY created_at, token_id")
    return [ApiToken(r[0], r[1], tuple(r[2].split()), r[3], r[4]) for r in rows]


def revoke_token(store: Store, token_id: str) -> ApiToken:
    """Revoke a token by its id (the part after ``upc_``); it stops working at once."""
    with store._writing() as con, con.transaction():
        found = con.scalar("SELECT count(*) FROM api_tokens WHERE token_id = ?", [token_id])
        if not found:
            raise WorkspaceError(f"no token {token_id!r} in the workspace {store.where}; "
                                 "`upcurve tokens list` lists them")
        con.execute("UPDATE api_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                    [_now(), token_id])
    return next(t for t in list_tokens(store) if t.token_id == token_id)


def check_token(store: Store, token: str) -> ApiToken | None:
    """The live token ``token`` is (None when malformed, unknown, revoked or not matching its secret)."""
    kind, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if kind != "upc" or not token_id or not secret or len(token) > 200:
        return None
    with store._reading() as con:
        _, rows = con.rows("SELECT token_id, name, scopes, created_at, revoked_at, token_hash FROM api_tokens "
                           "WHERE token_id = ?", [token_id])
    if not rows or rows[0][4] is not None or not hmac.compare_digest(rows[0][5], _sha256(secret)):
        return None
    r = rows[0]
    return ApiToken(r[0], r[1], tuple(r[2].split()), r[3], r[4])


# -- what the team did with worklist accounts ----------------------------------------------------------------------
#: The statuses a worklist account can be given.
ACTION_STATUSES = ("contacted", "won", "lost", "dismissed")


@dataclass(frozen=True)
class Action:
    action_id: str
    run_id: str
    account_id: str
    status: str
    note: str | None
    actor: str
    created_at: dt.datetime


def record_action(store: Store, run_id: str, account_id: str, status: str, note: str | None, actor: str) -> Action:
    """Record what someone did with an account of a run's worklist."""
    if status not in ACTION_STATUSES:
        raise AccessError(f"unknown status {status!r}; the statuses are {', '.join(ACTION_STATUSES)}")
    action = Action(secrets.token_hex(8), run_id, account_id, status, (note or None), actor, _now())
    with store._writing() as con, con.transaction():
        con.execute("INSERT INTO worklist_actions VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [action.action_id, run_id, account_id, status, action.note, actor, action.created_at])
    return action


def list_actions(store: Store, run_id: str, account_id: str | None = None) -> list[Action]:
    """A run's actions (of one account), newest first."""
    sql = "SELECT * FROM worklist_actions WHERE run_id = ?"
    params: list[str] = [run_id]
    if account_id is not None:
        sql += " AND account_id = ?"
        params.append(account_id)
    with store._reading() as con:
        names, rows = con.rows(sql + " ORDER BY created_at DESC, action_id", params)
    return [Action(**dict(zip(names, row, strict=True))) for row in rows]
