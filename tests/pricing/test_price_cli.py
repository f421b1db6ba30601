"""``upcurve price quote``: the table, the JSON a program reads, and bad input as exit 2 with the field named."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from upcurve.cli import app

GRADUATED = ("model: graduated\ntiers:\n  - {up_to: 5, unit_amount: 7, flat_amount: 2}\n"
             "  - {up_to: null, unit_amount: 6.5}\n")


def test_a_quote_as_json_and_as_a_table(tmp_path: Path) -> None:
    (tmp_path / "api.yaml").write_text(GRADUATED)
    runner = CliRunner()
    done = runner.invoke(app, ["price", "quote", str(tmp_path / "api.yaml"), "--usage", "5.001", "--json"])
    assert done.exit_code == 0, done.output
    found = json.loads(done.output)
    assert found["amount"] == "37.01" and Decimal(found["unrounded_amount"]) == Decimal("37.0065")
    assert [line["amount"] for line in found["lines"]] == ["35", "2", "0.0065"]
    assert sum(Decimal(line["amount"]) for line in found["lines"]) == Decimal(found["unrounded_amount"])
    shown = runner.invoke(app, ["price", "quote", str(tmp_path / "api.yaml"), "--usage", "5.001"],
                          env={"COLUMNS": "120"})
    assert shown.exit_code == 0 and "37.01" in shown.output and "tier 2 (5–∞) units" in shown.output
    assert "exactly 37.0065" in shown.output
    (tmp_path / "fees.json").write_text(json.dumps({"model": "percentage", "rate": "0.029", "fixed_amount": "0.30"}))
    fees = runner.invoke(app, ["price", "quote", str(tmp_path / "fees.json"), "--events", "100, 20.5", "--json"])
    assert fees.exit_code == 0, fees.output
    assert json.loads(fees.output)["amount"] == "4.09"  # 2.90 + 0.30 + 0.5945 + 0.30 = 4.0945, rounded once


def test_bad_input_exits_2_naming_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("model: volume\ntiers:\n  - {up_to: 10, unit_amount: -1}\n")
    runner = CliRunner()
    done = runner.invoke(app, ["price", "quote", str(tmp_path / "bad.yaml"), "--usage", "3"])
    assert done.exit_code == 2
    said = _unwrapped(done.output)
    assert "bad.yaml" in said and "tiers[1].unit_amount" in said
    assert _unwrapped("the last tier must have up_to: null") in said
    (tmp_path / "ok.yaml").write_text(GRADUATED)
    for args, says in ((["--usage", "many"], "usage: 'many' is not a number"),
                       (["--events", "1,2"], "quoted on a usage quantity"),
                       ([], "ok.yaml: give the period's usage (--usage N)")):
        wrong = runner.invoke(app, ["price", "quote", str(tmp_path / "ok.yaml"), *args])
        assert wrong.exit_code == 2 and _unwrapped(says) in _unwrapped(wrong.output), wrong.output
    (tmp_path / "fees.yaml").write_text("model: percentage\nrate: 0.02\n")
    typed = runner.invoke(app, ["price", "quote", str(tmp_path / "fees.yaml"), "--events", "10,,x"])
    assert typed.exit_code == 2 and _unwrapped("event 2: '' is not a number; event 3: 'x' is not a number") in \
        _unwrapped(typed.output)
    wide = runner.invoke(app, ["price", "quote", str(tmp_path / "ok.yaml"), "--usage", "1e4"], env={"COLUMNS": "200"})
    assert wide.exit_code == 0 and "10000 units" in wide.output and "E+" not in wide.output
    missing = runner.invoke(app, ["price", "quote", str(tmp_path / "none.yaml"), "--usage", "1"])
    assert missing.exit_code == 2 and _unwrapped("price model file not found") in _unwrapped(missing.output)


def _unwrapped(text: str) -> str:
    """The text without white space: the error console wraps a long temporary path anywhere, even mid-word."""
    return "".join(text.split())
