"""``upcurve plays …`` and ``upcurve levers`` as a person uses them: exit codes, what they print, what they keep."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.plays.conftest import plays_workspace
from upcurve import cli
from upcurve.cli import app
from upcurve.workspace import actions as ws


def invoke(*args: str) -> Result:
    with pytest.MonkeyPatch.context() as patch:
        for console in (cli.console, cli.err):  # wide enough that no row wraps
            patch.setattr(console, "width", 200)
        return CliRunner().invoke(app, list(args))


@pytest.fixture
def workspace(tmp_path: Path) -> str:
    where = str(tmp_path / "ws")
    plays_workspace(where)
    return where


def test_dry_run_shows_who_would_get_what_and_keeps_nothing(workspace: str) -> None:
    result = invoke("plays", "run", "--workspace", workspace, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Risky Co" in result.output and "save_play" in result.output and "nothing was kept" in result.output
    listed = invoke("plays", "list", "--workspace", workspace, "--format", "json")
    assert json.loads(listed.output) == []


def test_run_list_show_done_and_the_history(workspace: str) -> None:
    assert invoke("plays", "run", "--workspace", workspace).exit_code == 0
    rows = json.loads(invoke("plays", "list", "--workspace", workspace, "--format", "json").output)
    assert sorted((r["account_id"], r["play"]) for r in rows) == [("GROW", "seat_expansion"), ("RISK", "save_play")]
    risk = next(r for r in rows if r["account_id"] == "RISK")
    shown = invoke("plays", "show", risk["action_id"][:12], "--workspace", workspace)
    assert shown.exit_code == 0 and "Risky Co is at risk" in shown.output
    done = invoke("plays", "done", risk["action_id"], "--workspace", workspace, "--note", "called", "--by", "ann")
    assert done.exit_code == 0 and ": done" in done.output
    mine = json.loads(invoke("plays", "list", "--workspace", workspace, "--owner", "ann", "--format", "json").output)
    assert mine == []  # done: no longer open
    assert [e.kind for e in ws.list_events(cli._store(workspace, cli.Settings()), risk["action_id"])][-1] == "done"


def test_mistakes_are_one_line_with_the_right_exit_code(workspace: str, tmp_path: Path) -> None:
    unknown = invoke("plays", "done", "act-nope", "--workspace", workspace)
    assert unknown.exit_code == 1 and "no action matches 'act-nope'" in unknown.output
    settings = tmp_path / "upcurve.yaml"
    settings.write_text("plays:\n  triggers:\n    mine: {description: d, play: save_play, when: ['risk > 1']}\n")
    bad = invoke("plays", "run", "--workspace", workspace, "--config", str(settings))
    assert bad.exit_code == 2 and "unknown column 'risk'" in bad.output and "Traceback" not in bad.output
    no_trigger = invoke("plays", "preview", "nope", "--workspace", workspace)
    assert no_trigger.exit_code == 2 and "no trigger 'nope'" in no_trigger.output
    snooze = invoke("plays", "run", "--workspace", workspace)
    assert snooze.exit_code == 0
    [risk] = json.loads(invoke("plays", "list", "--workspace", workspace, "--account", "RISK",
                               "--format", "json").output)
    past = invoke("plays", "snooze", risk["action_id"], "--until", "2001-01-01", "--reason", "r",
                  "--workspace", workspace)
    assert past.exit_code == 1 and "snooze until a date after today" in past.output


def test_preview_lists_the_audience_with_the_values_it_reads(workspace: str) -> None:
    result = invoke("plays", "preview", "team_growth", "--workspace", workspace)
    assert result.exit_code == 0 and "1 account(s) match" in result.output
    assert "Growing Co" in result.output and "new_active_30d" in result.output


def test_export_writes_crm_tasks_whole_and_never_over_a_file_without_replace(workspace: str, tmp_path: Path) -> None:
    invoke("plays", "run", "--workspace", workspace)
    out = tmp_path / "tasks.csv"
    assert invoke("plays", "export", "--out", str(out), "--workspace", workspace).exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["account_id"] for r in rows) == ["GROW", "RISK"]
    assert {r["owner"] for r in rows} == {"ann", "bob"} and all(r["due_date"] for r in rows)
    out.write_text("mine")
    again = invoke("plays", "export", "--out", str(out), "--workspace", workspace)
    assert again.exit_code == 1 and "pass --replace" in again.output and out.read_text() == "mine"
    assert invoke("plays", "export", "--out", str(out), "--workspace", workspace, "--replace",
                  "--format", "json").exit_code == 0
    assert len(json.loads(out.read_text())) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tasks")] == []  # no temporary file left


def test_triggers_outbox_uplift_and_levers_print(workspace: str) -> None:
    invoke("plays", "run", "--workspace", workspace)
    for args in (("plays", "triggers"), ("plays", "outbox", "--workspace", workspace),
                 ("plays", "uplift", "--workspace", workspace), ("levers", "--workspace", workspace)):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
    assert "usage_upgrade" in invoke("plays", "triggers").output


def test_funnel_says_how_to_name_the_events_when_a_run_has_none(workspace: str) -> None:
    result = invoke("plays", "funnel", "--workspace", workspace)
    assert result.exit_code == 0 and "No funnel events" in result.output and "plays.funnel" in result.output
