"""Bad input gets a clear error naming file, rows, column, value and rule; every problem at once; nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import write_folder
from upcurve.cli import app
from upcurve.cli_support import err
from upcurve.contract import CONTRACT
from upcurve.errors import ContractError
from upcurve.usecases import check_folder, run

GOOD_LINES = """\
line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end
1,A,team_m,subscription,2,20,USD,2024-01-01,2024-02-01
2,A,team_m,subscription,2,20,USD,2024-02-01,2024-03-01
"""


def _errors(folder: Path) -> list:
    return [p for p in check_folder(folder).problems if p.severity == "error"]


def test_good_folder_has_no_problem(tmp_path: Path) -> None:
    assert _errors(write_folder(tmp_path / "d", {"invoice_lines": GOOD_LINES})) == []


@pytest.mark.parametrize(
    ("lines", "column", "rule", "rows", "value"),
    [
        (GOOD_LINES.replace(",amount,", ",amt,").replace("period_end\n", "period_end\n"), "amount", "required column",
         (), None),
        (GOOD_LINES.replace(",20,USD,2024-02-01,2024-03-01", ",twenty,USD,2024-02-01,2024-03-01"), "amount",
         "not a number", (3,), "twenty"),
        (GOOD_LINES.replace("2,A,team_m", "2,A,gold_m"), "plan_id", "unknown plan_id", (3,), "gold_m"),
        (GOOD_LINES.replace("2024-02-01,2024-03-01", "2024-03-01,2024-02-01"), "period_end",
         "period_end is on or before period_start", (3,), "2024-03-01 → 2024-02-01"),
        (GOOD_LINES.replace("\n2,A", "\n1,A"), "line_id", "duplicate line_id", (2, 3), "1"),
        (GOOD_LINES.replace("USD,2024-02", "XYZ,2024-02"), "currency", "unknown currency", (3,), "XYZ"),
        (GOOD_LINES.replace("2,A,team_m,subscription", "2,A,team_m,refund"), "kind", "not one of", (3,), "refund"),
        (GOOD_LINES.replace(",2024-01-01,2024-02-01", ",2024-13-01,2024-02-01"), "period_start", "not a date", (2,),
         "2024-13-01"),
        (GOOD_LINES.replace("2,A,team_m,subscription,2,20", "2,Z,team_m,subscription,2,20"), "account_id",
         "unknown account_id", (3,), "Z"),
        (GOOD_LINES.replace(",20,USD,2024-02-01", ",-20,USD,2024-02-01"), "amount", "negative amount", (3,), "-20"),
    ],
    ids=["missing-column", "wrong-type", "unknown-plan", "end-before-start", "duplicate-id", "unknown-currency",
         "bad-choice", "bad-date", "unknown-account", "negative-recurring"],
)
def test_each_rule_names_file_row_column_value(tmp_path, lines, column, rule, rows, value) -> None:
    accounts = "account_id,name\nA,Acme\n"
    folder = write_folder(tmp_path / "d", {"invoice_lines": lines, "accounts": accounts})
    errors = _errors(folder)
    assert errors, "the broken rule was not reported"
    match = [p for p in errors if p.column and column in p.column and rule in p.rule]
    assert match, [p.describe() for p in errors]
    problem = match[0]
    assert problem.file == "invoice_lines.csv"
    assert problem.rows == rows
    if value is not None:
        assert value in problem.values
    assert problem.file in problem.describe() and column in problem.describe()


def test_all_problems_listed_at_once_and_nothing_written(tmp_path: Path) -> None:
    lines = GOOD_LINES.replace("2,A,team_m", "2,A,gold_m") + "3,A,team_m,subscription,1,x,USD,2024-03-01,2024-02-01\n"
    folder = write_folder(tmp_path / "d", {"invoice_lines": lines, "accounts": "account_id\nA\n"})
    out = tmp_path / "out"
    with pytest.raises(ContractError) as info:
        run(folder, out)
    rules = {p.rule for p in info.value.problems}
    assert any("unknown plan_id" in r for r in rules)
    assert any("not a number" in r for r in rules)
    assert any("period_end" in r for r in rules)
    assert not out.exists()
    assert not list(tmp_path.glob(".out*")), "a temporary output folder was left behind"


def test_missing_required_table_and_unknown_file(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id\nA\n")
    (folder / "notes.txt").write_text("hello")
    (folder / "invoices.csv").write_text("x\n1\n")
    problems = check_folder(folder).problems
    errors = {p.file for p in problems if p.severity == "error"}
    notes = {p.file for p in problems if p.severity == "note"}
    assert {"plans.csv", "invoice_lines.csv"} <= errors
    assert {"notes.txt", "invoices.csv"} <= notes


def test_cli_validate_and_run_exit_2_on_bad_input(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", {"invoice_lines": GOOD_LINES.replace("2,A,team_m", "2,A,gold_m"),
                                            "accounts": "account_id\nA\n"})
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2
    assert "gold_m" in result.output
    result = runner.invoke(app, ["run", str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_existing_folder_that_is_not_a_result_is_never_replaced(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", {"invoice_lines": GOOD_LINES})
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(folder), "--out", str(precious)])
    assert result.exit_code == 1
    assert (precious / "thesis.txt").read_text() == "keep me"


def test_parquet_rows_are_reported_by_record_number(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = write_folder(tmp_path / "d", {"invoice_lines": GOOD_LINES})
    (folder / "invoice_lines.csv").unlink()
    pq.write_table(
        pa.table({"line_id": ["1", "2"], "account_id": ["A", "A"], "plan_id": ["team_m", "nope"],
                  "kind": ["subscription"] * 2, "amount": [20.0, 20.0],
                  "period_start": pa.array([1, 2], pa.int32()).cast(pa.date32()),
                  "period_end": pa.array([40, 41], pa.int32()).cast(pa.date32())}),
        folder / "invoice_lines.parquet",
    )
    problems = [p for p in check_folder(folder).problems if p.severity == "error"]
    assert len(problems) == 1 and problems[0].rows == (2,) and problems[0].location == "row"


def test_wrong_format_fails_before_anything_is_computed_or_written(tmp_path: Path) -> None:

    from upcurve.errors import UpcurveError

    folder = write_folder(tmp_path / "d", {"invoice_lines": GOOD_LINES})
    with pytest.raises(UpcurveError, match="unknown format 'xlsx'"):
        run(folder, tmp_path / "out", fmt="xlsx")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, ["run", str(folder), "--out", str(tmp_path / "out"), "--format", "xlsx"])
    assert result.exit_code == 1 and "unknown format" in result.output


def test_plan_price_models_are_checked_row_by_row_naming_the_field(tmp_path: Path) -> None:
    """A plan's ``price_model`` is validated as a price model: every bad row named, with the field at fault; good
    models (and plans without one) pass."""
    def cell(model: dict) -> str:  # a JSON document as one CSV cell
        return '"' + json.dumps(model).replace('"', '""') + '"'

    good = cell({"model": "graduated", "tiers": [{"up_to": 1000, "unit_amount": 0.01},
                                                 {"up_to": None, "unit_amount": 0.005}]})
    out_of_order = cell({"model": "volume", "tiers": [{"up_to": 10, "unit_amount": 1}, {"up_to": 5, "unit_amount": 1},
                                                      {"up_to": None, "unit_amount": 1}]})
    plans = (
        "plan_id,product,tier,tier_rank,pricing,interval_months,unit_price,usage_metric,price_model\n"
        "team_m,core,team,2,per_seat,1,10,,\n"
        f"api_m,api,metered,1,usage,1,0.01,api_calls,{good}\n"
        f"api_b,api,bad,2,usage,1,0.01,api_calls,{out_of_order}\n"
        'api_c,api,typo,3,usage,1,0.01,api_calls,"{""model"": ""per_unit"", ""unit_amount"": 1, ""unit_amont"": 2}"\n'
        "api_d,api,text,4,usage,1,0.01,api_calls,not json\n"
        'api_e,api,pct,5,usage,1,0.01,api_calls,"{""model"": ""percentage"", ""rate"": 0.01}"\n'
        'api_f,api,nometric,6,usage,1,0.01,,"{""model"": ""per_unit"", ""unit_amount"": 1}"\n'
    )
    folder = write_folder(tmp_path / "d", {"invoice_lines": GOOD_LINES, "plans": plans,
                                           "accounts": "account_id,name\nA,Acme\n"})
    errors = [p for p in _errors(folder) if p.column == "price_model"]
    by_row = {p.rows: p for p in errors}
    assert set(by_row) == {(4,), (5,), (6,), (7,), (8,)}, [p.describe() for p in errors]
    assert "tiers" in by_row[(4,)].rule and "up_to" in by_row[(4,)].rule
    assert "unit_amont" in by_row[(5,)].rule
    assert "not valid JSON" in by_row[(6,)].rule and by_row[(6,)].values == ("not json",)
    assert "percentage" in by_row[(7,)].rule
    assert "usage_metric" in by_row[(8,)].rule
    assert all(p.file == "plans.csv" for p in errors)


def test_cli_names_a_bad_price_model_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plans = ("plan_id,product,tier,tier_rank,pricing,interval_months,unit_price,usage_metric,price_model\n"
             "team_m,core,team,2,per_seat,1,10,,\n"
             'api_m,api,metered,1,usage,1,0.01,api_calls,"{""model"": ""per_unit"", ""unit_amount"": -1}"\n')
    folder = write_folder(tmp_path / "d", {"invoice_lines": GOOD_LINES, "plans": plans,
                                           "accounts": "account_id,name\nA,Acme\n"})
    monkeypatch.setattr(err, "width", 400)  # one line per problem, as a wide terminal shows it
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2, result.output
    assert "price_model" in result.output and "plans.csv" in result.output and "unit_amount" in result.output
    assert "Traceback" not in result.output


def test_a_share_of_the_period_belongs_on_a_proration_line(tmp_path: Path) -> None:
    """A line not marked ``proration=true`` is measured over its whole period: a ``proration_share`` below 1 on it
    would be ignored, so it is refused, naming the line; a share of 1 (the whole period) says nothing new and
    passes, as does every share on a proration line."""
    lines = ("line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end,proration,"
             "proration_share\n"
             "1,A,team_m,subscription,2,20,USD,2024-01-01,2024-02-01,,\n"
             "2,A,team_m,subscription,2,-9.68,USD,2024-01-17,2024-02-01,true,0.4839\n"
             "3,A,team_m,subscription,4,19.36,USD,2024-01-17,2024-02-01,,0.4839\n"
             "4,A,team_m,subscription,4,40,USD,2024-02-01,2024-03-01,false,1\n"
             "5,A,team_m,one_time,1,99,USD,2024-02-01,2024-02-02,false,0.5\n")
    errors = _errors(write_folder(tmp_path / "d", {"invoice_lines": lines, "accounts": "account_id,name\nA,Acme\n"}))
    assert [(p.column, p.rows, p.values) for p in errors] == [("proration_share", (4, 6), ("0.4839", "0.5"))], \
        [p.describe() for p in errors]
    assert "proration=true" in errors[0].hint


def test_a_proration_credit_may_be_negative_and_only_it(tmp_path: Path) -> None:
    lines = ("line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end,proration\n"
             "1,A,team_m,subscription,2,20,USD,2024-01-01,2024-02-01,\n"
             "2,A,team_m,subscription,2,-9.68,USD,2024-01-17,2024-02-01,true\n"
             "3,A,team_m,subscription,2,-9.68,USD,2024-01-17,2024-02-01,false\n"
             "4,A,team_m,subscription,2,5,USD,2024-01-17,2024-02-01,yes\n")
    errors = _errors(write_folder(tmp_path / "d", {"invoice_lines": lines, "accounts": "account_id,name\nA,Acme\n"}))
    by_rule = {(p.column, p.rows) for p in errors}
    assert by_rule == {("amount", (4,)), ("proration", (5,))}, [p.describe() for p in errors]


def test_rates_by_month_and_by_day_in_one_file_are_refused_with_how_to_choose(tmp_path: Path) -> None:
    rates = "month,day,currency,rate\n2024-01,2024-01-01,EUR,1.1\n"
    errors = _errors(write_folder(tmp_path / "d", {"invoice_lines": GOOD_LINES, "fx_rates": rates}))
    assert [(p.file, p.column) for p in errors] == [("fx_rates.csv", "month, day")], [p.describe() for p in errors]
    assert "only one of them" in errors[0].rule
    assert errors[0].hint == CONTRACT["fx_rates"].one_of_hint and "in force from the first of its month" in \
        errors[0].hint


def test_a_billing_csv_is_read_once_so_every_check_sees_the_same_file(tmp_path: Path) -> None:
    """A billing table's CSV file (of up to ``HELD_CSV_BYTES``) is parsed once when read and held by the engine:
    the checks after it (each a pass over the table) see the file as it was read, even when it is rewritten
    meanwhile (by an export still running, say), and none of them parses it again."""
    from upcurve.contract import read_folder, validate
    from upcurve.engine import connect

    folder = write_folder(tmp_path / "d", {"invoice_lines": GOOD_LINES, "accounts": "account_id,name\nA,Acme\n"})
    data = read_folder(folder, connect("duckdb://"))
    (folder / "invoice_lines.csv").write_text(GOOD_LINES.replace(",20,USD,2024-02-01", ",twenty,USD,2024-02-01"))
    assert [p.describe() for p in validate(data) if p.severity == "error"] == []
    rules = [p.rule for p in _errors(folder)]
    assert len(rules) == 1 and rules[0].startswith("not a number"), "read again, the rewritten file is checked"


def test_what_was_held_for_the_checks_is_dropped_once_the_tables_are_handed_over(tmp_path: Path) -> None:
    """The CSV files parsed once for the checks are not kept beside the typed tables the run reads."""
    from upcurve.config import RevenuePolicy
    from upcurve.engine import connect
    from upcurve.sources import load_folder

    folder = write_folder(tmp_path / "d", {"invoice_lines": GOOD_LINES, "accounts": "account_id,name\nA,Acme\n"})
    engine = connect("duckdb://")
    loaded = load_folder(folder, engine, as_of=None, policy=RevenuePolicy())
    held = {row[0] for row in engine.raw_sql("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert held == {table.get_name().rsplit(".", 1)[-1] for table in loaded.tables.values()}, "held for the checks"
