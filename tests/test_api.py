"""The Python API and the demo: a workspace opened by path, its runs and their tables as Ibis tables; the demo keeps
its run in a workspace that a second demo adds to."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import upcurve
from upcurve.cli import app

#: Settings that let a model learn from a small company's short history, so the tests see a model registered.
SMALL = "scoring:\n  min_training_months: 2\n  calibration_months: 2\n  min_positives: 5\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("api")
    upcurve.simulate_company(folder / "data", accounts=80, months=14, seed=11)
    (folder / "small.yaml").write_text(SMALL)
    return folder


def test_import_upcurve_is_light_and_its_surface_is_curated() -> None:
    # a reading command or a notebook pays only for what it uses: nothing heavy at import
    code = ("import sys, upcurve; heavy = [m for m in ('ibis', 'duckdb', 'lightgbm', 'sklearn', 'pyarrow') "
            "if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert set(upcurve.__all__) >= {"Workspace", "Run", "RunDiff", "__version__"}
    for name in upcurve.__all__:
        assert getattr(upcurve, name) is not None
    missing = "no_such_name"  # not a public name: asked for by a variable, as a user's typo would be
    with pytest.raises(AttributeError):
        getattr(upcurve, missing)


def test_the_command_line_starts_without_the_engine_or_the_models() -> None:
    # a reading command (runs, worklist, accounts, diff) answers in well under a second: it never pays for these
    code = ("import sys, upcurve.cli; print([m for m in ('ibis', 'lightgbm', 'sklearn', 'fastapi', 'plotly') "
            "if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_workspace_keeps_runs_and_serves_their_tables_as_ibis(home: Path) -> None:
    with upcurve.Workspace.open(home / "ws", config=home / "small.yaml") as ws:
        first = ws.run(home / "data", as_of=dt.date(2024, 1, 31))
        second = ws.run(home / "data")  # the default as-of date: the start of the latest invoice line
        assert second.as_of > first.as_of
        assert [r.id for r in ws.runs()] == [first.id, second.id]
        assert ws.latest().id == second.id and ws.find(as_of="2024-01-31").id == first.id
        assert ws.find(first.id[:-2]).id == first.id  # a unique start of an id will do
        # the second run scored with the model the first one trained, and says so
        assert second.model_id == first.model_id is not None
        metrics = second.table("metrics")
        assert "run_id" not in metrics.columns
        frame = metrics.to_pyarrow()
        assert frame.num_rows == len(set(frame["month"].to_pylist()))
        assert frame["month"].to_pylist()[-1] == f"{second.as_of:%Y-%m}"
        # an expression runs in the workspace's database; its answer is the stored rows' answer
        may = metrics.filter(metrics.month == "2023-05").mrr.to_pyarrow().to_pylist()
        earlier = first.table("metrics")
        assert may == earlier.filter(earlier.month == "2023-05").mrr.to_pyarrow().to_pylist()
        assert isinstance(may[0], Decimal)
        pandas_rows = second.table("worklist").to_pandas()
        assert len(pandas_rows) == second.record.rows["worklist"]
        bridge = {r["line"]: r["amount"] for r in ws.diff().bridge.to_pylist()}
        assert bridge["start"] + sum(v for k, v in bridge.items() if k not in ("start", "end")) == bridge["end"]
        with pytest.raises(upcurve.UpcurveError, match="has no table"):
            second.table("nope")
        assert [m.active for m in ws.models()] == [True]


def test_a_bad_date_or_a_missing_workspace_is_an_upcurve_error(home: Path, tmp_path: Path) -> None:
    with pytest.raises(upcurve.UpcurveError, match="no workspace"):
        upcurve.Workspace.open(tmp_path / "none", create=False)
    with upcurve.Workspace.open(tmp_path / "new") as ws, pytest.raises(upcurve.UpcurveError, match="not a date"):
        ws.run(home / "data", as_of="31/08/2023")


def test_the_demo_keeps_its_run_in_a_workspace_and_a_second_demo_reuses_its_model(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    (tmp_path / "small.yaml").write_text(SMALL)
    args = ["demo", "--out", str(out), "--accounts", "80", "--months", "14", "--config", str(tmp_path / "small.yaml")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert (out / "results" / "worklist.parquet").exists() and (out / "data" / "invoice_lines.parquet").exists()
    report = (out / "report" / "report.html").read_text(encoding="utf-8")
    assert report.startswith("<!doctype html") or report.lower().startswith("<!doctype html")
    assert "Plotly" in report  # the charts' code is inside the file: it opens offline
    hinted = re.search(r"`upcurve usage (\S+) --workspace", " ".join(first.output.split()))
    assert hinted, "the demo points at the account nearest its usage limit"
    shown = CliRunner().invoke(app, ["usage", hinted[1], "--workspace", str(out / "workspace")])
    assert shown.exit_code == 0 and "projected at the current trajectory" in shown.output, shown.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    runs = upcurve.Workspace.open(out / "workspace", create=False).runs()
    assert len(runs) == 2
    assert runs[1].model_id == runs[0].model_id and "scored by the active model" in (runs[1].model_reason or "")


def test_the_demo_never_replaces_a_report_folder_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "demo" / "report"
    mine.mkdir(parents=True)
    (mine / "board-notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--accounts", "20", "--months", "6"])
    assert result.exit_code == 1
    assert "board-notes.txt" in " ".join(result.output.split())
    assert (mine / "board-notes.txt").read_text() == "mine"
    assert not (tmp_path / "demo" / "data").exists()  # refused before anything was simulated
