"""The workspace keeps every run whole, answers from what it kept, and decides when to retrain."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from upcurve.cli import app
from upcurve.scoring import ScoringConfig, model_decision
from upcurve.simulate import simulate_company
from upcurve.usecases import run_in_workspace
from upcurve.workspace import Store, WorkspaceError, diff_runs


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("company") / "data"
    simulate_company(folder, accounts=40, months=14, seed=5)
    return folder


@pytest.fixture(scope="module")
def workspace(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store.open(tmp_path_factory.mktemp("ws") / "workspace")
    run_in_workspace(store, data, as_of=dt.date(2023, 11, 30))
    run_in_workspace(store, data, as_of=dt.date(2024, 2, 29))
    return store


def test_every_run_is_kept_with_its_tables(workspace: Store) -> None:
    runs = workspace.runs()
    assert [r.as_of for r in runs] == [dt.date(2023, 11, 30), dt.date(2024, 2, 29)]
    for record in runs:
        assert record.status == "complete" and record.fingerprint and record.upcurve
        for name, rows in record.rows.items():
            assert workspace.table(name, record.run_id).num_rows == rows
    # history stays queryable: the earlier run's worklist is that week's, not today's
    first = workspace.table("worklist", runs[0].run_id)
    assert set(first["week"].to_pylist()) == {dt.date(2023, 11, 27)}


def test_the_diff_bridges_mrr_between_the_two_dates_to_the_cent(workspace: Store) -> None:
    a, b = workspace.runs()
    diff = diff_runs(workspace, a, b)
    lines = {r["line"]: r["amount"] for r in diff.bridge.to_pylist()}
    moves = sum((v for k, v in lines.items() if k not in ("start", "end")), Decimal(0))
    assert lines["start"] + moves == lines["end"]
    metrics = {r["month"]: r["mrr"] for r in workspace.table("metrics", b.run_id).to_pylist()}
    assert lines["start"] == metrics["2023-11"] and lines["end"] == metrics["2024-02"]
    worklist_a = set(workspace.table("worklist", a.run_id)["account_id"].to_pylist())
    worklist_b = set(workspace.table("worklist", b.run_id)["account_id"].to_pylist())
    assert set(diff.entered["account_id"].to_pylist()) == worklist_b - worklist_a
    assert set(diff.left["account_id"].to_pylist()) == worklist_a - worklist_b


def test_reading_commands_answer_from_the_workspace(workspace: Store, tmp_path: Path) -> None:
    runner = CliRunner()
    ws = str(workspace.folder)
    for args in (["runs"], ["worklist"], ["accounts", "--sort", "churn"], ["diff"],
                 ["worklist", "--as-of", "2023-11-30"]):
        result = runner.invoke(app, [*args, "--workspace", ws], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (args, result.output)
    assert "2 run(s) in the workspace" in runner.invoke(app, ["runs", "--workspace", ws]).output
    missing = runner.invoke(app, ["worklist", "--workspace", ws, "--as-of", "2020-01-31"])
    assert missing.exit_code == 1 and "no run as of 2020-01-31" in " ".join(missing.output.split())
    out = tmp_path / "export"
    assert runner.invoke(app, ["export", "--workspace", ws, "--out", str(out), "--format", "csv"]).exit_code == 0
    assert {p.stem for p in out.glob("*.csv")} == set(workspace.runs()[-1].rows)


def test_no_workspace_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["runs", "--workspace", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no workspace at" in " ".join(result.output.split())
    with pytest.raises(WorkspaceError, match="holds other files"):
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("mine")
        Store.open(tmp_path / "mine")


def test_the_retraining_policy() -> None:
    cfg = ScoringConfig()
    card = {"as_of": "2024-06-30", "horizon_months": 3, "model": "lightgbm"}
    use = model_decision(card, cfg, dt.date(2024, 8, 31))
    assert use.use_active and "2024-06-30" in use.reason
    assert not model_decision(None, cfg, dt.date(2024, 8, 31)).use_active
    assert not model_decision(card, cfg, dt.date(2024, 8, 31), retrain=True).use_active
    stale = model_decision(card, cfg, dt.date(2024, 10, 31))
    assert not stale.use_active and "4 months before" in stale.reason
    backfill = model_decision(card, cfg, dt.date(2024, 3, 31))
    assert not backfill.use_active and not backfill.activate_new
    other = model_decision({**card, "model": "logistic"}, cfg, dt.date(2024, 7, 31))
    assert not other.use_active and "model" in other.reason
    broken = model_decision(card, cfg, dt.date(2024, 7, 31), unusable="edited")
    assert not broken.use_active and "edited" in broken.reason


def test_a_run_killed_at_any_moment_leaves_every_earlier_run(data: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    store = Store.open(ws)
    first = run_in_workspace(store, data, as_of=dt.date(2023, 12, 31)).run
    assert first is not None
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for delay in (1.0, 4.0, 8.0):
        proc = subprocess.Popen([sys.executable, "-m", "upcurve", "run", str(data), "--workspace", str(ws)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        runs = Store.open(ws).runs()
        assert runs[0].run_id == first.run_id
        for record in runs:
            for name, rows in record.rows.items():
                assert store.table(name, record.run_id).num_rows == rows


def test_two_runs_at_once_both_land(data: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    Store.open(ws)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "upcurve", "run", str(data), "--workspace", str(ws),
                               "--as-of", day], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for day in ("2023-12-31", "2024-01-31")]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    assert sorted(str(r.as_of) for r in Store.open(ws).runs()) == ["2023-12-31", "2024-01-31"]
