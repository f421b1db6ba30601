"""Files that cannot be read, are empty or too wide are refused as problems naming the file (and the line where the
reader gives one), through the command line: exit code 2, no traceback, nothing written, the other files still
checked. The corpus is :data:`tests.hardening.corpus.FILE_CASES`."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.hardening.corpus import (
    BASE,
    FILE_CASES,
    Case,
    assert_refused,
    base_folder,
    content,
    invoke,
    parquet,
    raw_line,
    wide,
)
from upcurve.usecases import check_folder


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_bad_file_is_refused(case: Case, tmp_path: Path) -> None:
    folder = base_folder(tmp_path / "data")
    case.defect(folder)
    assert_refused(case, folder, tmp_path / "out")


def test_150000_columns_are_refused_from_the_header_alone(tmp_path: Path) -> None:
    folder = base_folder(tmp_path / "data")
    wide("accounts", 150_000)(folder)
    # a body row that breaks other rules (no such timestamp, no such account): read, it would be a third problem
    content("events", b"ts,account_id,event" + b"," * 150_000 + b"\nnot a time,nobody,x\n")(folder)
    result = invoke(["validate", str(folder)])
    assert result.exit_code == 2 and "2 problem(s) in the input" in result.output, result.output
    assert result.output.count("columns: more than the 200 a table may have") == 2
    assert "accounts.csv" in result.output and "events.csv" in result.output


def test_an_unreadable_file_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = base_folder(tmp_path / "data")
    path = folder / "plans.csv"
    path.chmod(0)
    case = Case("unreadable", lambda _: None, "plans.csv", "the file cannot be read: Permission denied")
    if os.geteuid() != 0:
        assert_refused(case, folder, tmp_path / "out")
    # root reads any file whatever its mode: make opening it fail as it does for everyone else
    real_open = Path.open

    def refuse(self: Path, *args, **kwargs):
        if self == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    assert_refused(case, folder, tmp_path / "out2")


def test_the_other_files_are_still_checked(tmp_path: Path) -> None:
    folder = base_folder(tmp_path / "data")
    raw_line("accounts", 3, b"B,B\xe9ta,smb,bob")(folder)
    content("plans", b"PAR1 not really", ".parquet")(folder)
    raw_line("fx_rates", 3, b"2024-02,EUR,1.08,extra")(folder)
    content("events", b"")(folder)
    raw_line("invoice_lines", 3, b"2,A,team_m,subscription,2,nan,USD,2024-02-01,2024-03-01")(folder)
    problems = check_folder(folder).problems
    said = {(p.file, p.rule) for p in problems if p.severity == "error"}
    assert ("accounts.csv", "the file is not UTF-8 text") in said
    assert ("plans.parquet", "not a readable Parquet file") in said
    assert ("fx_rates.csv", "a line has 4 fields where the header has 3") in said
    assert ("invoice_lines.csv", "not a finite number") in said
    notes = {p.file for p in problems if p.severity == "note"}
    assert "events.csv" in notes, "an empty optional table is a note"


@pytest.mark.parametrize(
    "defect",
    [content("nps", b"account_id,ts,score\n"), parquet("nps", rows=0), content("events", b" \n")],
    ids=["csv-header-only", "parquet-no-rows", "whitespace-only"],
)
def test_an_optional_table_without_rows_is_a_note(defect, tmp_path: Path) -> None:
    folder = base_folder(tmp_path / "data")
    defect(folder)
    result = invoke(["validate", str(folder)])
    assert result.exit_code == 0, result.output
    assert "nps" in result.output or "events" in result.output


def test_a_header_only_required_table_is_an_error_even_with_others(tmp_path: Path) -> None:
    folder = base_folder(tmp_path / "data")
    content("accounts", BASE["accounts"].splitlines()[0].encode() + b"\n")(folder)
    problems = [p for p in check_folder(folder).problems if p.severity == "error"]
    assert any(p.file == "accounts.csv" and "no rows" in p.rule for p in problems)
