"""Parquet columns whose type cannot hold their contract type, and implausible dates, are refused through the
command line (exit code 2, a problem naming file, column, row and rule, no traceback, nothing written); the edge of
each value rule is accepted. The corpus is :data:`tests.hardening.corpus.TYPE_AND_DATE_CASES`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tests.hardening.corpus import TYPE_AND_DATE_CASES, Case, assert_refused, base_folder, cell, invoke, parquet


@pytest.mark.parametrize("case", TYPE_AND_DATE_CASES, ids=[c.id for c in TYPE_AND_DATE_CASES])
def test_bad_type_or_date_is_refused(case: Case, tmp_path: Path) -> None:
    folder = base_folder(tmp_path / "data")
    case.defect(folder)
    assert_refused(case, folder, tmp_path / "out")


@pytest.mark.parametrize(
    ("defect", "why"),
    [
        (cell("invoice_lines", 2, "amount", "1000000000000"), "10^12 is a large but plausible amount"),
        (cell("invoice_lines", 2, "amount", "9999999999999.99"), "just below the limit"),
        (cell("plans", 2, "tier_rank", "2.0"), "a whole number written with a decimal point"),
        (cell("invoice_lines", 2, "period_end", "2034-01-01"), "exactly 10 years"),
        (cell("plans", 3, "interval_months", "120"), "the longest interval"),
        (parquet("invoice_lines", period_start=pa.array(["2024-01-01", "2024-02-01", "2024-01-01", "2024-02-01"])),
         "a date written as text in Parquet is parsed"),
        (parquet("plans", tier_rank=pa.array([2, 2, 3, 1, 1, 1], pa.float64())), "whole floats"),
    ],
    ids=["amount-10-to-the-12", "amount-below-limit", "tier-rank-2.0", "period-10-years", "interval-120",
         "parquet-text-date", "parquet-whole-float-rank"],
)
def test_edge_of_each_rule_is_accepted(defect, why: str, tmp_path: Path) -> None:
    folder = base_folder(tmp_path / "data")
    defect(folder)
    result = invoke(["validate", str(folder)])
    assert result.exit_code == 0, f"{why}:\n{result.output}"


