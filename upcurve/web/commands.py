"""The web's commands: ``upcurve serve``, ``upcurve report``, ``upcurve users …`` and ``upcurve tokens …``.

Thin: parse, call, print. ``upcurve.cli`` registers them.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from upcurve.config import Settings
from upcurve.errors import UpcurveError
from upcurve.present.safe import safe_text
from upcurve.workspace import Store
from upcurve.workspace import access as acc

__all__ = ["report", "serve", "tokens_app", "users_app"]

_console = Console()
_err = Console(stderr=True)

WorkspaceOpt = Annotated[str | None, typer.Option("--workspace", "-w", help="the workspace folder or postgresql:// "
                                                                             "URL (default: UPCURVE_WORKSPACE)")]


def _store(workspace: str | None) -> Store:
    settings = Settings()
    try:
        return Store.open(workspace or settings.workspace, create=False, wait_seconds=settings.workspace_wait)
    except UpcurveError as exc:
        _err.print(safe_text(f"error: {exc}", "red"))
        raise typer.Exit(1) from None


def _fail(exc: UpcurveError) -> typer.Exit:
    _err.print(safe_text(f"error: {exc}", "red"))
    return typer.Exit(2 if isinstance(exc, ValueError) else 1)


def serve(workspace: WorkspaceOpt = None,
          host: Annotated[str, typer.Option(help="the address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="the port to listen on")] = 8000,
          secure_cookies: Annotated[bool, typer.Option(help="mark cookies Secure (behind HTTPS)")] = False) -> None:
    """Serve the workspace's pages and its HTTP API (log in with `upcurve users add`, call the API with a token
    from `upcurve tokens create`)."""
    import uvicorn

    from upcurve.web.app import create_app

    store = _store(workspace)
    if not acc.list_users(store):
        _err.print(safe_text(f"note: no user can log in yet: upcurve users add NAME --workspace {store.where}",
                             "yellow"))
    _console.print(safe_text(f"reading the latest run of {store.where} into memory (some 11 s at 100,000 accounts)"))

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)  # the app warmed, then the port bound: say so only now
            if self.started:
                _console.print(safe_text(f"serving {store.where} on http://{host}:{port} (Ctrl-C stops)"))

    app = create_app(store, secure_cookies=secure_cookies, warm=True)
    Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()


def report(workspace: WorkspaceOpt = None,
           out: Annotated[Path, typer.Option("--out", "-o", help="the HTML file to write")] = Path("report.html"),
           run: Annotated[str | None, typer.Option(help="a run id (default: the latest run)")] = None,
           pdf: Annotated[bool, typer.Option("--pdf", help="also print it to a PDF beside it (headless chromium)")]
           = False) -> None:
    """Write the board report: one self-contained HTML file (charts inline, opens offline), and a PDF with --pdf."""
    from upcurve.web.report import print_pdf, write_report

    store = _store(workspace)
    try:
        written = write_report(store, out, run_id=run)
        _console.print(safe_text(f"wrote {written}"))
        if pdf:
            _console.print(safe_text(f"wrote {print_pdf(written, written.with_suffix('.pdf'))}"))
    except UpcurveError as exc:
        raise _fail(exc) from None


users_app = typer.Typer(help="People who may log in to the pages.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (stored hashed) with read and write scopes.", no_args_is_help=True)


@users_app.command("add")
def users_add(username: Annotated[str, typer.Argument(help="the user name")], workspace: WorkspaceOpt = None,
              password: Annotated[str | None, typer.Option(help="the password (default: asked for; or set "
                                                                "UPCURVE_PASSWORD)", envvar="UPCURVE_PASSWORD")]
              = None) -> None:
    """Add a user, or set an existing user's password (which ends their sessions)."""
    store = _store(workspace)
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        acc.set_user(store, username, password)
    except UpcurveError as exc:
        raise _fail(exc) from None
    _console.print(safe_text(f"user {username} can log in"))


@users_app.command("list")
def users_list(workspace: WorkspaceOpt = None) -> None:
    """List the users."""
    table = Table("user", "since", "disabled")
    for user in acc.list_users(_store(workspace)):
        table.add_row(safe_text(user.username), f"{user.created_at:%Y-%m-%d %H:%M}", "yes" if user.disabled else "")
    _console.print(table)


@tokens_app.command("create")
def tokens_create(name: Annotated[str, typer.Argument(help="who or what uses it (a note)")],
                  workspace: WorkspaceOpt = None,
                  scope: Annotated[list[str] | None, typer.Option("--scope", "-s", help="read or write; repeat "
                                                                                        "for both")] = None) -> None:
    """Create an API token; it is shown once (only its hash is kept)."""
    store = _store(workspace)
    try:
        token, record = acc.create_token(store, name, scope or ["read"])
    except UpcurveError as exc:
        raise _fail(exc) from None
    _err.print(safe_text(f"token {record.token_id} ({' '.join(record.scopes)}) for {record.name}; keep it "
                         "now, it cannot be shown again:"))
    typer.echo(token)


@tokens_app.command("list")
def tokens_list(workspace: WorkspaceOpt = None) -> None:
    """List the tokens (never the tokens themselves)."""
    table = Table("id", "name", "scopes", "created", "revoked")
    for t in acc.list_tokens(_store(workspace)):
        table.add_row(safe_text(t.token_id), safe_text(t.name), " ".join(t.scopes), f"{t.created_at:%Y-%m-%d %H:%M}",
                      "" if t.revoked_at is None else f"{t.revoked_at:%Y-%m-%d %H:%M}")
    _console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="the token's id (see `upcurve tokens list`)")],
                  workspace: WorkspaceOpt = None) -> None:
    """Revoke a token: it stops working at once."""
    try:
        record = acc.revoke_token(_store(workspace), token_id)
    except UpcurveError as exc:
        raise _fail(exc) from None
    _console.print(safe_text(f"token {record.token_id} ({record.name}) revoked"))
