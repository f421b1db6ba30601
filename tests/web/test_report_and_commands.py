"""The board report's file and PDF, and the users/tokens commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from upcurve.web.commands import report, tokens_app, users_app
from upcurve.web.report import CHROMIUM, print_pdf, render_report, write_report
from upcurve.workspace import Store
from upcurve.workspace import access as acc


def test_report_is_one_self_contained_file(store: Store, tmp_path: Path) -> None:
    html = render_report(store)
    assert "<script src=" not in html and "<link" not in html and "http://" not in html.split("<script>")[0]
    assert html.count('class="chart"') == 7 and "Top churn risks" in html and "by coupon" in html
    out = write_report(store, tmp_path / "board.html")
    assert out.read_text(encoding="utf-8") == html.replace(html[html.index("made "):html.index(" by upcurve")],
                                                           out.read_text(encoding="utf-8")[
                                                               html.index("made "):html.index(" by upcurve")])


def test_report_prints_to_pdf(store: Store, tmp_path: Path) -> None:
    # `make test` installs chromium (system-packages): without it this fails, it is never skipped
    assert Path(CHROMIUM).exists(), f"the PDF test needs chromium at {CHROMIUM}: make system-packages"
    out = print_pdf(write_report(store, tmp_path / "board.html"), tmp_path / "board.pdf")
    assert out.read_bytes().startswith(b"%PDF") and out.stat().st_size > 10_000


def test_report_refuses_a_folder(store: Store, tmp_path: Path) -> None:
    from upcurve.errors import UpcurveError

    with pytest.raises(UpcurveError, match="is a folder"):
        write_report(store, tmp_path)


def test_users_and_tokens_commands(store: Store, tmp_path: Path) -> None:
    import typer

    runner = CliRunner()
    where = str(store.location)
    made = runner.invoke(users_app, ["add", "bob", "--workspace", where, "--password", "s3cret-pass"])
    assert made.exit_code == 0, made.output
    assert acc.authenticate(store, "bob", "s3cret-pass")
    short = runner.invoke(users_app, ["add", "eve", "--workspace", where, "--password", "short"])
    assert short.exit_code == 2 and "8 characters" in short.output
    created = runner.invoke(tokens_app, ["create", "ci job", "--workspace", where, "--scope", "read"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    found = acc.check_token(store, token)
    assert found is not None and found.scopes == ("read",)
    listed = runner.invoke(tokens_app, ["list", "--workspace", where])
    assert found.token_id in listed.output and token not in listed.output
    bad = runner.invoke(tokens_app, ["create", "x", "--workspace", where, "--scope", "admin"])
    assert bad.exit_code == 2 and "unknown scope" in bad.output
    revoked = runner.invoke(tokens_app, ["revoke", found.token_id, "--workspace", where])
    assert revoked.exit_code == 0 and acc.check_token(store, token) is None
    cli = typer.Typer()
    cli.command()(report)
    cli.command("other")(lambda: None)
    written = runner.invoke(cli, ["report", "--workspace", where, "--out", str(tmp_path / "r.html")])
    assert written.exit_code == 0, written.output
    assert (tmp_path / "r.html").exists()


def test_serve_answers_once_it_says_it_serves(built_workspace: Path, tmp_path: Path) -> None:
    import http.client
    import os
    import shutil
    import socket
    import subprocess
    import sys

    shutil.copytree(built_workspace, tmp_path / "workspace")
    (tmp_path / "workspace" / "workspace.lock").unlink(missing_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "upcurve", "serve", "--workspace", str(tmp_path / "workspace"),
                               "--port", str(port)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "COLUMNS": "400"})  # one line each, unwrapped
    try:
        assert server.stdout is not None
        said = [server.stdout.readline(), server.stdout.readline()]
        assert said[0].startswith("reading the latest run") and said[1].startswith("serving "), said
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # accepting by now: no retry needed
        conn.request("GET", "/api/runs")
        response = conn.getresponse()
        assert response.status == 401 and b"API token" in response.read()
    finally:
        server.terminate()
        server.wait(30)
