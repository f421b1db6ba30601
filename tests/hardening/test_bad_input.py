"""Bad values that pass a naive check and then corrupt a result or stop a run are refused, through the command
line: exit code 2, a problem naming file, column, row and rule, no traceback, nothing written.

The corpus of defects is in :mod:`tests.hardening.corpus` (``VALUE_CASES`` here: keys and numbers); Parquet types
and dates are in ``test_bad_input_types.py``; files that cannot be read, empty or too wide in
``test_bad_input_files.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hardening.corpus import VALUE_CASES, Case, assert_refused, base_folder, cell, invoke, parquet
from upcurve.errors import ContractError
from upcurve.usecases import run


def test_the_base_folder_is_valid(tmp_path: Path) -> None:
    result = invoke(["validate", str(base_folder(tmp_path / "data"))])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("case", VALUE_CASES, ids=[c.id for c in VALUE_CASES])
def test_bad_value_is_refused(case: Case, tmp_path: Path) -> None:
    folder = base_folder(tmp_path / "data")
    case.defect(folder)
    assert_refused(case, folder, tmp_path / "out")


def test_collision_shows_the_raw_values(tmp_path: Path) -> None:
    folder = base_folder(tmp_path / "data")
    VALUE_CASES[0].defect(folder)
    output = invoke(["validate", str(folder)]).output
    assert "'team_m' (line 2) and 'team_m ' (line 8) are the same plan_id" in output


def test_only_a_table_whose_keys_may_repeat_is_searched_row_by_row(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The one pass over a table counts its one-column key's values and distinct values as they are joined: a table
    where they agree is not searched for repeats (blank keys are left out of both counts), one where two values are
    one key once read ('team_m' and 'team_m ') is."""
    import upcurve.contract.load as load

    searched: list[str] = []

    def search(raw: Any, schema: Any, key: tuple[str, ...]) -> Any:
        searched.append(raw.name)
        return duplicate_keys(raw, schema, key)

    duplicate_keys = load._duplicate_keys
    monkeypatch.setattr(load, "_duplicate_keys", search)
    folder = base_folder(tmp_path / "data")
    assert invoke(["validate", str(folder)]).exit_code == 0
    assert searched == ["fx_rates"]  # its key has two columns: always searched
    searched.clear()
    (folder / "accounts.csv").write_text((folder / "accounts.csv").read_text() + " ,no id,smb,ann\n,none,smb,ann\n")
    invoke(["validate", str(folder)])
    assert "accounts" not in searched, "two blank account_ids are not a repeated key"
    searched.clear()
    VALUE_CASES[0].defect(folder)
    assert invoke(["validate", str(folder)]).exit_code == 2
    assert "plans" in searched


def test_wide_amounts_reach_the_ledger_exactly(tmp_path: Path) -> None:
    """Amounts are parsed as decimal(38,6): 10^12 and cents survive to the result tables."""
    folder = base_folder(tmp_path / "data")
    cell("invoice_lines", 3, "amount", "1000000000000.01")(folder)
    result = run(folder, None)
    mrr = result.tables["mrr"].to_pylist()
    assert any(row["mrr"] == pa.scalar(1000000000000.01).cast(pa.decimal128(20, 2)).as_py() for row in mrr), mrr


def test_every_problem_of_every_file_at_once(tmp_path: Path) -> None:
    folder = base_folder(tmp_path / "data")
    cell("invoice_lines", 2, "quantity", "nan")(folder)
    cell("fx_rates", 3, "rate", "0")(folder)
    parquet("plans", unit_price=pa.array([True] * 6))(folder)
    (folder / "accounts.csv").write_bytes(b"account_id,name\nA,Acme\nB,B\xe9ta\n")
    with pytest.raises(ContractError) as info:
        run(folder, tmp_path / "out")
    said = {(p.file, p.rule.split(":")[0]) for p in info.value.problems}
    assert {("invoice_lines.csv", "not a finite number"), ("fx_rates.csv", "not above 0"),
            ("accounts.csv", "the file is not UTF-8 text")} <= said, said
    assert any(p.file == "plans.parquet" and p.column == "unit_price" for p in info.value.problems)
    assert not (tmp_path / "out").exists()
    assert pq.read_schema(folder / "plans.parquet").field("unit_price").type == pa.bool_()
