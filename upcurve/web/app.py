"""The web app: FastAPI serving the pages (a login session) and the JSON API under ``/api`` (API tokens).

One :class:`~upcurve.web.data.Reader` holds the workspace for every request; the routes parse, call it, render.
Errors a person can act on (an unknown run, a bad parameter) come back as 4xx with upcurve's message; a 500 means
a bug in upcurve.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

import plotly
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from upcurve import __version__
from upcurve.errors import UpcurveError
from upcurve.web.data import NOT_REMEMBERED, NotFound, Reader
from upcurve.workspace import Store
from upcurve.workspace import access as acc

__all__ = ["SESSION_COOKIE", "CurrentUser", "LoginRequired", "create_app", "reader", "templates", "token_scope"]

HERE = Path(__file__).parent
SESSION_COOKIE = "upcurve_session"
LOGIN_CSRF_COOKIE = "upcurve_login_csrf"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescape on for .html


def money(value: Any) -> str:
    """``1,234.50`` (the currency is shown beside it); ``–`` for none."""
    return "–" if value is None else f"{value:,.2f}"


def pct(value: Any) -> str:
    """A fraction as a percentage: ``0.123`` → ``12.3%``."""
    return "–" if value is None or value != value else f"{value * 100:.1f}%"


templates.env.filters["money"] = money
templates.env.filters["pct"] = pct


class LoginRequired(Exception):
    """A page asked for without a live session: the handler sends the browser to the login page."""


async def reader(request: Request) -> Reader:
    """The app's workspace reader (a dependency; on the event loop: it waits on nothing)."""
    found: Reader = request.app.state.reader
    return found


ReaderDep = Annotated[Reader, Depends(reader)]


# -- pages: a login session ----------------------------------------------------------------------------------------
class CurrentUser:
    """Who is logged in, and the CSRF token every state-changing form of the session must send back."""

    def __init__(self, username: str, csrf_token: str) -> None:
        self.username = username
        self.csrf_token = csrf_token


async def _live(data: Reader, check: Callable[[Store, str], Any], secret: str) -> Any:
    """``data.live(check, secret)``: on the event loop when the answer is remembered (nearly every request), else in
    a worker thread (asking the workspace blocks), so a request hops to a thread once, not once per dependency."""
    found = data.remembered(check, secret)
    if found is NOT_REMEMBERED:
        found = await run_in_threadpool(data.live, check, secret)
    return found


async def current_user(request: Request, data: ReaderDep) -> CurrentUser:
    """The session's user (a dependency of every page); without a live session, the login page."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    session = await _live(data, acc.find_session, session_id) if session_id else None
    if session is None:
        raise LoginRequired
    return CurrentUser(session.username, session.csrf_token)


def check_csrf(user: CurrentUser, sent: str | None) -> None:
    """Refuse a form that does not carry the session's CSRF token (403; nothing changes)."""
    if not sent or not secrets.compare_digest(sent.encode(), user.csrf_token.encode()):
        raise HTTPException(403, "the form's CSRF token is missing or stale: reload the page and try again")


# -- API: bearer tokens with scopes -----------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, description="An API token from `upcurve tokens create NAME --scope read`")


def token_scope(scope: str) -> Any:
    """A dependency that admits a request with a live token carrying ``scope``: 401 without one, 403 without it."""

    async def check(data: ReaderDep,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> acc.ApiToken:
        token = await _live(data, acc.check_token, credentials.credentials) if credentials else None
        if token is None:
            raise HTTPException(401, "a valid API token is required: send `Authorization: Bearer <token>` "
                                     "(`upcurve tokens create NAME` makes one)",
                                headers={"WWW-Authenticate": "Bearer"})
        if scope not in token.scopes:
            raise HTTPException(403, f"the token {token.token_id} lacks the {scope!r} scope")
        return token

    return check


def create_app(store: Store | str | Path, *, secure_cookies: bool = False, warm: bool = False) -> FastAPI:
    """The web app over a workspace (a :class:`Store`, a folder or a ``postgresql://`` URL).

    ``secure_cookies`` marks the session cookie ``Secure`` (serve behind HTTPS). ``warm`` (``upcurve serve`` sets
    it) reads and indexes the latest run before the app accepts its first request (in its lifespan's startup:
    about 11 s at 100,000 accounts with two runs, docs/web.md; served beside the requests, that work held a core
    and made every answer of the first seconds wait), then each later run in a background thread as soon as the
    app sees it, so the first person to open an account page does not wait for it; the app must then be the only
    one in its process to open the workspace (an embedded DuckDB file opens one way at a time in a process)."""
    from upcurve.web import api, api_plays, pages

    if not isinstance(store, Store):
        store = Store.open(store, create=False)
    data = Reader(store, warm=warm)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if warm:
            await run_in_threadpool(data.warm_latest_now)
        yield

    app = FastAPI(title="upcurve", version=__version__, lifespan=lifespan,
                  description="Revenue analytics of an upcurve workspace: MRR, movements, retention, accounts, "
                              "the worklist, runs and their diff, the plays' actions and what they caused. Money is a "
                              "decimal string in the run's "
                              "reporting currency (`currency`). Every call needs an API token "
                              "(`Authorization: Bearer …`) with the `read` scope (`write` to record actions).")
    app.state.reader = data
    app.state.secure_cookies = secure_cookies
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/static-plotly/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, _exc: LoginRequired) -> Response:
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, str(exc))

    @app.exception_handler(UpcurveError)
    def upcurve_error(request: Request, exc: UpcurveError) -> Response:
        return _error(request, 422, str(exc))

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": "; ".join(problems),
                                 "errors": [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]}
                                            for e in exc.errors()]}, status_code=422)
        return _error(request, 422, "; ".join(problems))

    app.include_router(api.router)
    app.include_router(api_plays.router)
    app.include_router(pages.router)
    return app


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api"):
        return JSONResponse({"detail": message}, status_code=status)
    return templates.TemplateResponse(request, "error.html", {"status": status, "message": message, "user": None},
                                      status_code=status)
