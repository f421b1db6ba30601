"""The four ways upcurve lost users' files, through the real command line, and a run killed at random moments."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from upcurve.cli import app
from upcurve.folders import read_verified
from upcurve.simulate import simulate_company

UPCURVE = [sys.executable, "-m", "upcurve"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("company") / "data"
    simulate_company(folder, accounts=40, months=14, seed=3, fmt="csv")
    return folder


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with its checksum."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_a_project_folder_holding_a_run_json_is_never_replaced(data: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('mine')")
    (project / "thesis.txt").write_text("years of work")
    (project / "run.json").write_text("{}")
    before = _snapshot(project)
    result = _invoke("run", str(data), "--out", str(project))
    assert result.exit_code == 1
    assert "cannot be replaced" in " ".join(result.output.split())
    assert _snapshot(project) == before


def test_run_never_writes_into_its_input(data: Path) -> None:
    before = _snapshot(data)
    for out in (data, data / "results", data.parent):
        result = _invoke("run", str(data), "--out", str(out))
        assert result.exit_code == 1, result.output
        assert "never writes into its input" in " ".join(result.output.split())
    assert _snapshot(data) == before


def test_a_file_added_to_an_earlier_result_is_kept(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _invoke("run", str(data), "--out", str(out)).exit_code == 0
    (out / "my_analysis.xlsx").write_bytes(b"mine")
    result = _invoke("run", str(data), "--out", str(out))
    assert result.exit_code == 1 and "my_analysis.xlsx" in result.output
    assert (out / "my_analysis.xlsx").read_bytes() == b"mine"
    (out / "my_analysis.xlsx").unlink()
    assert _invoke("run", str(data), "--out", str(out), "--format", "csv").exit_code == 0
    assert (out / "mrr.csv").exists() and not (out / "mrr.parquet").exists()


def test_demo_never_deletes_a_users_data_folder(tmp_path: Path) -> None:
    mine = tmp_path / "x" / "data"
    mine.mkdir(parents=True)
    (mine / "invoice_lines.csv").write_text("line_id\nmine\n")
    (mine / "accounts.parquet").write_bytes(b"mine")
    before = _snapshot(tmp_path / "x")
    result = _invoke("demo", "--out", str(tmp_path / "x"), "--accounts", "20", "--months", "6")
    assert result.exit_code == 1
    assert "invoice_lines.csv" in result.output
    assert _snapshot(tmp_path / "x") == before


def test_simulate_replaces_only_its_own_folder(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    assert _invoke("simulate", "--out", str(out), "--accounts", "10", "--months", "4").exit_code == 0
    assert _invoke("simulate", "--out", str(out), "--accounts", "12", "--months", "4", "--format", "csv").exit_code == 0
    assert (out / "accounts.csv").exists() and not (out / "accounts.parquet").exists()
    (out / "notes.txt").write_text("mine")
    assert _invoke("simulate", "--out", str(out), "--accounts", "10", "--months", "4").exit_code == 1
    assert (out / "notes.txt").read_text() == "mine"


def _run(data: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*UPCURVE, "run", str(data), "--out", str(out), *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _staging(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}.upcurve-*"))


def test_a_run_killed_at_any_moment_keeps_the_previous_result_and_every_input(data: Path, tmp_path: Path) -> None:
    """kill -9 at a random moment, and again just as the result is being written: the output folder is always
    one whole result (the old one or the new one), the input is untouched, and the next run cleans up."""
    out = tmp_path / "out"
    neighbour = tmp_path / "notes.txt"
    neighbour.write_text("a user's file beside the output")
    first = _run(data, out)
    assert first.wait(timeout=300) == 0, first.stderr.read() if first.stderr else ""
    inputs = _snapshot(data)
    rng = random.Random(os.getpid())
    for moment in ("random", "writing"):
        proc = _run(data, out, "--format", "csv")
        if moment == "random":
            time.sleep(rng.uniform(0.5, 6.0))
        else:
            deadline = time.monotonic() + 300
            while not _staging(out) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        _, files = read_verified(out, kind="results", what="results")  # whole: every file as listed
        assert {"mrr.parquet", "run.json"} <= set(files) or {"mrr.csv", "run.json"} <= set(files)
        assert _snapshot(data) == inputs
        assert neighbour.read_text() == "a user's file beside the output"
    last = _run(data, out)
    assert last.wait(timeout=300) == 0, last.stderr.read() if last.stderr else ""
    read_verified(out, kind="results", what="results")
    assert _staging(out) == []  # what the killed runs left was removed


def test_two_runs_at_once_both_finish_and_leave_one_whole_result(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    runs = [_run(data, out), _run(data, out, "--format", "csv")]
    for proc in runs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    _, files = read_verified(out, kind="results", what="results")
    suffixes = {Path(name).suffix for name in files if name != "run.json"}
    assert suffixes in ({".csv"}, {".parquet"})
    assert _staging(out) == []
