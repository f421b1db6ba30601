"""A corpus of bad input: a small valid data folder, and defects that each break it in one way.

Every :class:`Case` names the defect (a function editing a valid folder in place) and what the refusal must say:
the file, the rule (a substring of its text), and the column and the row where the problem has them. New probes
are one line each in :data:`VALUE_CASES`, :data:`TYPE_AND_DATE_CASES` or :data:`FILE_CASES`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.conftest import PLANS
from upcurve import cli
from upcurve.cli import app

BASE: dict[str, str] = {
    "accounts": "account_id,name,segment,owner\nA,Acme,smb,ann\nB,Beta,smb,bob\n",
    "plans": PLANS,
    "invoice_lines": (
        "line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end\n"
        "1,A,team_m,subscription,2,20,USD,2024-01-01,2024-02-01\n"
        "2,A,team_m,subscription,2,20,USD,2024-02-01,2024-03-01\n"
        "3,B,starter_m,subscription,1,49,EUR,2024-01-01,2024-02-01\n"
        "4,B,starter_m,subscription,1,49,EUR,2024-02-01,2024-03-01\n"
    ),
    "fx_rates": "month,currency,rate\n2024-01,EUR,1.1\n2024-02,EUR,1.08\n",
    "nps": "account_id,ts,score\nA,2024-01-15 10:00:00,9\nB,2024-02-15 10:00:00,7\n",
}


def base_folder(folder: Path) -> Path:
    """Write the valid folder: every required table and a few optional ones, all CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in BASE.items():
        (folder / f"{name}.csv").write_text(text)
    return folder


# --- defects ------------------------------------------------------------------------------------------------

Defect = Callable[[Path], None]


def _rows(folder: Path, table: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO((folder / f"{table}.csv").read_text())))


def _write_rows(folder: Path, table: str, rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    (folder / f"{table}.csv").write_text(out.getvalue())


def cell(table: str, line: int, column: str, value: str) -> Defect:
    """Set the cell of ``column`` on file line ``line`` (the header is line 1); adds the column when missing."""

    def edit(folder: Path) -> None:
        rows = _rows(folder, table)
        if column not in rows[0]:
            for row in rows:
                row.append(column if row is rows[0] else "")
        rows[line - 1][rows[0].index(column)] = value
        _write_rows(folder, table, rows)

    return edit


def append(table: str, text: str) -> Defect:
    """Append raw lines to a table's CSV file."""

    def edit(folder: Path) -> None:
        with (folder / f"{table}.csv").open("a") as fh:
            fh.write(text)

    return edit


def raw_line(table: str, line: int, data: bytes) -> Defect:
    """Replace file line ``line`` of a table's CSV with raw bytes."""

    def edit(folder: Path) -> None:
        path = folder / f"{table}.csv"
        lines = path.read_bytes().split(b"\n")
        lines[line - 1] = data
        path.write_bytes(b"\n".join(lines))

    return edit


def content(table: str, data: bytes, suffix: str = ".csv") -> Defect:
    """Replace a table's file by one holding ``data``."""

    def edit(folder: Path) -> None:
        (folder / f"{table}.csv").unlink(missing_ok=True)
        (folder / f"{table}{suffix}").write_bytes(data)

    return edit


def parquet(table: str, rows: int | None = None, **columns: pa.Array) -> Defect:
    """Replace a table's CSV by a Parquet file: its text columns, with ``columns`` overridden (or added), and only
    its first ``rows`` rows when given."""

    def edit(folder: Path) -> None:
        path = folder / f"{table}.csv"
        header, *body = _rows(folder, table)
        data = {name: pa.array([r[i] for r in body], pa.string()) for i, name in enumerate(header)}
        data.update(columns)
        arrow = pa.table(data)
        pq.write_table(arrow if rows is None else arrow.slice(0, rows), folder / f"{table}.parquet")
        path.unlink()

    return edit


def symlink(table: str, target: str) -> Defect:
    def edit(folder: Path) -> None:
        (folder / f"{table}.csv").unlink(missing_ok=True)
        os.symlink(target, folder / f"{table}.csv")

    return edit


def fifo(table: str) -> Defect:
    def edit(folder: Path) -> None:
        (folder / f"{table}.csv").unlink(missing_ok=True)
        os.mkfifo(folder / f"{table}.csv")

    return edit


def corrupt_parquet(table: str) -> Defect:
    """A Parquet file cut in half."""

    def edit(folder: Path) -> None:
        parquet(table)(folder)
        path = folder / f"{table}.parquet"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return edit


def wide(table: str, columns: int, names: bool = False) -> Defect:
    """Add empty columns to a table's CSV, up to ``columns`` in all (unnamed unless ``names``)."""

    def edit(folder: Path) -> None:
        header, *body = _rows(folder, table)
        more = columns - len(header)
        extra = [f"x{i}" if names else "" for i in range(more)]
        lines = [",".join(header + extra)] + [",".join(r) + "," * more for r in body]
        (folder / f"{table}.csv").write_text("\n".join(lines) + "\n")

    return edit


def many_accounts(n: int, last: bytes) -> Defect:
    """``n`` more accounts, then a last line of raw bytes: a defect the reader meets deep in the file."""

    def edit(folder: Path) -> None:
        body = "".join(f"X{i},X {i},smb,ann\n" for i in range(n)).encode()
        with (folder / "accounts.csv").open("ab") as fh:
            fh.write(body + last + b"\n")

    return edit


# --- the corpus ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A defect and what its refusal must name."""

    id: str
    defect: Defect
    file: str
    rule: str
    column: str | None = None
    row: int | None = None


F = pa.float64()

#: Defects in values: keys and numbers.
VALUE_CASES = [
    # keys are compared as they are joined
    Case("plan-id-trailing-space", append("plans", "team_m ,core,team,2,per_seat,1,10\n"), "plans.csv",
         "duplicate plan_id", "plan_id", 8),
    Case("account-id-trailing-space", append("accounts", "A ,Acme again,smb,ann\n"), "accounts.csv",
         "duplicate account_id", "account_id", 4),
    Case("fx-month-written-two-ways", append("fx_rates", "2024-01-01,EUR,1.2\n"), "fx_rates.csv",
         "duplicate (month, currency)", "month, currency", 4),
    Case("fx-currency-in-lower-case", append("fx_rates", "2024-02, eur ,1.0\n"), "fx_rates.csv",
         "duplicate (month, currency)", "month, currency", 4),
    # daily rates: a day is a key like a month
    Case("fx-day-twice", content("fx_rates", b"day,currency,rate\n2024-01-05,EUR,1.1\n2024-01-06,EUR,1.2\n"
                                 b"2024-01-05 , eur,1.3\n"), "fx_rates.csv", "duplicate (day, currency)",
         "day, currency", 4),
    Case("fx-day-not-a-date", content("fx_rates", b"day,currency,rate\n2024-01-05,EUR,1.1\n2024-02-30,EUR,1.2\n"),
         "fx_rates.csv", "not a date", "day", 3),
    Case("fx-day-empty", content("fx_rates", b"day,currency,rate\n2024-01-05,EUR,1.1\n,EUR,1.2\n"),
         "fx_rates.csv", "a required value is empty", "day", 3),
    Case("fx-month-and-day", content("fx_rates", b"month,day,currency,rate\n2024-01,2024-01-05,EUR,1.1\n"),
         "fx_rates.csv", "both 'month' and 'day'", "month, day"),
    Case("fx-neither-month-nor-day", content("fx_rates", b"currency,rate\nEUR,1.1\n"), "fx_rates.csv",
         "a column 'month' or 'day' is required", "month"),
    # numbers
    Case("quantity-nan", cell("invoice_lines", 2, "quantity", "nan"), "invoice_lines.csv", "not a finite number",
         "quantity", 2),
    Case("amount-inf", cell("invoice_lines", 3, "amount", "inf"), "invoice_lines.csv", "not a finite number",
         "amount", 3),
    Case("unit-price-infinity", cell("plans", 3, "unit_price", "Infinity"), "plans.csv", "not a finite number",
         "unit_price", 3),
    Case("rate-nan", cell("fx_rates", 2, "rate", "NaN"), "fx_rates.csv", "not a finite number", "rate", 2),
    Case("rate-zero", cell("fx_rates", 3, "rate", "0"), "fx_rates.csv", "not above 0", "rate", 3),
    Case("proration-share-above-1", cell("invoice_lines", 3, "proration_share", "1.5"), "invoice_lines.csv",
         "above the maximum 1", "proration_share", 3),
    Case("proration-share-zero", cell("invoice_lines", 2, "proration_share", "0"), "invoice_lines.csv",
         "not above 0", "proration_share", 2),
    Case("amount-nan-parquet", parquet("invoice_lines", amount=pa.array([20, float("nan"), 49, 49], F)),
         "invoice_lines.parquet", "not a finite number", "amount", 2),
    Case("unit-price-inf-parquet", parquet("plans", unit_price=pa.array([10, 100, float("inf"), 49, 30, 0.01], F)),
         "plans.parquet", "not a finite number", "unit_price", 3),
    Case("rate-inf-parquet", parquet("fx_rates", rate=pa.array([1.1, float("-inf")], F)), "fx_rates.parquet",
         "not a finite number", "rate", 2),
    Case("tier-rank-fraction", cell("plans", 2, "tier_rank", "2.5"), "plans.csv", "not a whole number",
         "tier_rank", 2),
    Case("nps-score-fraction", cell("nps", 3, "score", "7.5"), "nps.csv", "not a whole number", "score", 3),
    Case("interval-months-fraction", cell("plans", 4, "interval_months", "1.5"), "plans.csv", "not a whole number",
         "interval_months", 4),
    Case("included-seats-fraction", cell("plans", 5, "included_seats", "2.5"), "plans.csv", "not a whole number",
         "included_seats", 5),
    Case("tier-rank-fraction-parquet", parquet("plans", tier_rank=pa.array([2, 2.5, 3, 1, 1, 1], F)),
         "plans.parquet", "not a whole number", "tier_rank", 2),
    Case("amount-10-to-the-13", cell("invoice_lines", 2, "amount", "10000000000000"), "invoice_lines.csv",
         "beyond ±10,000,000,000,000: not a plausible line amount", "amount", 2),
    Case("refund-below-minus-10-to-the-13", cell("invoice_lines", 5, "amount", "-2e13"), "invoice_lines.csv",
         "beyond ±10,000,000,000,000", "amount", 5),
    Case("amounts-add-up-beyond-10-to-the-14", append("invoice_lines", "".join(
        f"{i},B,team_m,subscription,1,9999999999999,USD,2024-02-01,2024-03-01\n" for i in range(10, 21))),
         "invoice_lines.csv", "the amounts add up to ±100,000,000,000,000 or more", "amount"),
    Case("rate-1e300", cell("fx_rates", 2, "rate", "1e300"), "invoice_lines.csv",
         "the amounts add up to ±100,000,000,000,000 or more", "amount"),
    Case("tier-rank-int64-min", cell("plans", 2, "tier_rank", "-9223372036854775808"), "plans.csv",
         "below the minimum -1000", "tier_rank", 2),
    Case("unit-price-1e300-parquet", parquet("plans", unit_price=pa.array([10, 100, 20, 1e300, 30, 0.01], F)),
         "plans.parquet", "beyond ±10,000,000,000,000", "unit_price", 4),
]

#: Defects in types and dates: Parquet columns of a type that cannot hold their contract type, implausible dates.
TYPE_AND_DATE_CASES = [
    Case("unit-price-bool-parquet", parquet("plans", unit_price=pa.array([True] * 6)), "plans.parquet",
         "type is bool, which cannot hold a number", "unit_price"),
    Case("period-start-int-parquet", parquet("invoice_lines", period_start=pa.array([1, 2, 3, 4])),
         "invoice_lines.parquet", "type is int64, which cannot hold a date", "period_start"),
    Case("account-id-float-parquet", parquet("accounts", account_id=pa.array([1.0, 2.0], F)), "accounts.parquet",
         "type is double, which cannot hold text", "account_id"),
    Case("month-list-parquet", parquet("fx_rates", month=pa.array([[1], [2]])), "fx_rates.parquet",
         "which cannot hold a month", "month"),
    # dates
    Case("period-start-year-1", cell("invoice_lines", 2, "period_start", "0001-01-01"), "invoice_lines.csv",
         "not a plausible date", "period_start", 2),
    Case("period-start-year-1-parquet", parquet(
        "invoice_lines", period_start=pa.array([-719162, 19754, 19723, 19754], pa.int32()).cast(pa.date32()),
        period_end=pa.array([19754, 19785, 19754, 19785], pa.int32()).cast(pa.date32())), "invoice_lines.parquet",
         "not a plausible date", "period_start", 1),
    Case("nps-ts-year-9999", cell("nps", 2, "ts", "9999-01-01 00:00:00"), "nps.csv", "not a plausible timestamp",
         "ts", 2),
    Case("fx-month-1900", cell("fx_rates", 3, "month", "1900-01"), "fx_rates.csv", "not a plausible month",
         "month", 3),
    Case("created-at-1969", cell("accounts", 3, "created_at", "1969-12-31"), "accounts.csv",
         "not a plausible date", "created_at", 3),
    Case("period-longer-than-10-years", cell("invoice_lines", 3, "period_end", "2034-02-02"), "invoice_lines.csv",
         "the service period is longer than 10 years", "period_end", 3),
    Case("interval-months-121", cell("plans", 3, "interval_months", "121"), "plans.csv", "above the maximum 120",
         "interval_months", 3),
]

#: Defects in files: empty, unreadable, ragged, too wide.
FILE_CASES = [
    # empty and header-only files
    Case("accounts-0-bytes", content("accounts", b""), "accounts.csv",
         "the file is empty: expected a header line with the columns account_id"),
    Case("plans-whitespace-only", content("plans", b"  \n\n \t\r\n"), "plans.csv",
         "the file is empty: expected a header line with the columns plan_id"),
    Case("invoice-lines-blank-first-line", raw_line("invoice_lines", 1, b"   "), "invoice_lines.csv",
         "the first line is empty: expected a header line", None, 1),
    Case("invoice-lines-0-bytes-parquet", content("invoice_lines", b"", ".parquet"), "invoice_lines.parquet",
         "the file is empty: expected a Parquet file with the columns line_id"),
    Case("invoice-lines-header-only", content("invoice_lines", BASE["invoice_lines"].splitlines()[0].encode()),
         "invoice_lines.csv", "the file has a header but no rows"),
    Case("plans-header-only-parquet", parquet("plans", rows=0), "plans.parquet", "the file has a header but no rows"),
    # files that cannot be read
    Case("not-utf8", raw_line("accounts", 3, b"B,B\xe9ta,smb,bob"), "accounts.csv", "not UTF-8 text", None, 3),
    Case("not-utf8-deep-in-the-file", many_accounts(30_000, b"Z,\xff\xfe,smb,ann"), "accounts.csv",
         "not UTF-8 text", None, 30_004),
    Case("not-utf8-header", raw_line("nps", 1, b"account_id,t\xe9,score"), "nps.csv",
         "the header line is not UTF-8 text", None, 1),
    Case("symlink-loop", symlink("nps", "nps.csv"), "nps.csv", "a symbolic link that loops"),
    Case("dangling-symlink", symlink("events", "gone.csv"), "events.csv", "gone.csv, which does not exist"),
    Case("named-pipe", fifo("tickets"), "tickets.csv", "not a regular file"),
    Case("corrupt-parquet", corrupt_parquet("plans"), "plans.parquet", "not a readable Parquet file"),
    Case("not-parquet-at-all", content("fx_rates", b"month,currency,rate\n", ".parquet"), "fx_rates.parquet",
         "not a readable Parquet file"),
    Case("line-longer-than-the-reader-takes", cell("invoice_lines", 3, "currency", "X" * 2_100_000),
         "invoice_lines.csv", "a line is longer than 2,000,000 bytes", None, 3),
    Case("ragged-more-fields", raw_line("accounts", 3, b"B,Beta,smb,bob,extra"), "accounts.csv",
         "a line has 5 fields where the header has 4", None, 3),
    Case("ragged-fewer-fields", raw_line("plans", 4, b"business_m,core"), "plans.csv",
         "a line has 2 fields where the header has 7", None, 4),
    Case("quote-never-closed", raw_line("accounts", 2, b'A,"Acme,smb,ann'), "accounts.csv",
         "a quoted value is never closed", None, 2),
    # header problems
    Case("duplicate-column-name", raw_line("accounts", 1, b"account_id,name,segment,Name"), "accounts.csv",
         "the column name 'name' appears 2 times in the header", "name"),
    Case("reserved-column-csv", raw_line("nps", 1, b"account_id,ts,_row"), "nps.csv",
         "the column name '_row' is reserved", "_row"),
    Case("reserved-column-parquet", parquet("nps", file_row_number=pa.array([1, 2])), "nps.parquet",
         "the column name 'file_row_number' is reserved", "file_row_number"),
    # very wide files are refused from their header alone
    Case("150000-empty-columns", wide("accounts", 150_000), "accounts.csv",
         "columns: more than the 200 a table may have"),
    Case("150000-empty-columns-events", content("events", b"ts,account_id,event" + b"," * 150_000 + b"\n"),
         "events.csv", "columns: more than the 200 a table may have"),
    Case("201-named-columns", wide("plans", 201, names=True), "plans.csv",
         "201 columns: more than the 200 a table may have"),
    Case("1000-columns-parquet", parquet("nps", **{f"x{i}": pa.nulls(2, pa.string()) for i in range(997)}),
         "nps.parquet", "1,000 columns: more than the 200"),
    Case("header-line-longer-than-64-kib", raw_line("nps", 1, b"account_id,ts,score," + b"x" * 70_000),
         "nps.csv", "the header line is longer than 65,536 bytes", None, 1),
]


# --- checking a refusal through the command line ------------------------------------------------------------

def invoke(args: list[str]) -> Result:
    """Run the command line on a console wide enough that no problem row wraps, so each problem is one line."""
    with pytest.MonkeyPatch.context() as patch:
        for console in (cli.console, cli.err):  # made at import, so COLUMNS set now would not reach them
            patch.setattr(console, "width", 1000)
        return CliRunner().invoke(app, args)


def assert_refused(case: Case, folder: Path, out: Path) -> None:
    """``validate`` and ``run`` both exit 2 without a traceback, on one output line naming the case's file, rule,
    column and row; and ``run`` writes nothing."""
    for args in (["validate", str(folder)], ["run", str(folder), "--out", str(out)]):
        result = invoke(args)
        said = f"{args[0]} said:\n{result.output}"
        assert result.exit_code == 2, said
        assert isinstance(result.exception, SystemExit), said
        assert "Traceback" not in result.output, said
        lines = [line for line in result.output.splitlines() if case.file in line and case.rule in line]
        assert lines, said
        if case.column is not None:
            assert case.column in lines[0], said
        if case.row is not None:
            assert re.search(rf"\b(line|row)s? [0-9, ]*\b{case.row}\b", lines[0]), said
    assert not out.exists(), "run wrote its output although the input was refused"
    assert not list(out.parent.glob(f".{out.name}*")), "run left a temporary output folder behind"
