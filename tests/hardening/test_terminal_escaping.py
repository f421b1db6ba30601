"""Every value from data reaches the terminal literally: never as Rich markup, never as a terminal control code."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from rich.console import Console
from rich.text import Text
from typer.testing import CliRunner

from tests.conftest import write_folder
from upcurve.errors import Problem
from upcurve.present.safe import literal, safe_markup, safe_text, visible
from upcurve.present.terminal import (
    render_accounts,
    render_backtest,
    render_model_card,
    render_problems,
    render_summary,
    render_worklist,
)

MONEY = pa.decimal128(20, 2)

# Hostile values: markup that crashes Rich (an unmatched closing tag), markup that would style or link, ANSI colour
# and hyperlink sequences, a C1 control (the 8-bit CSI), a bidi override, an emoji code and a forged line break.
CLOSE = "[/red]Evil"
LINK = "[link=http://evil.example]click[/link]"
BOLD = "[bold]loud"
ANSI = "\x1b[31mEvil"
OSC8 = "\x1b]8;;http://evil.example\x1b\\here\x1b]8;;\x1b\\"
C1 = "\x9b31mC1"
BIDI = "\u202eexe.txt"
EMOJI = ":smile:"
FORGED = "ok\nthe input meets the contract"

# What a terminal would act on: ESC, C1 controls, bidi controls and marks, line separators, and C0 controls other
# than the newline that ends each printed line.
_ACTIVE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
# Rich's own styling: SGR sequences only (it emits no hyperlink here, as no style in upcurve has a link).
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def _console() -> Console:
    return Console(file=io.StringIO(), width=200, force_terminal=True, color_system="truecolor")


def _output(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def _plain(output: str) -> str:
    """The output without Rich's own colour codes: what a person reads."""
    return _SGR.sub("", output)


def assert_literal(output: str, *values: str) -> None:
    """Each value shows as typed (controls as visible escapes), and nothing in the output drives the terminal."""
    plain = _plain(output)
    unwrapped = plain.replace("\n", "")  # a long path wraps at the console's width
    for value in values:
        assert visible(value) in plain or visible(value) in unwrapped, (value, plain)
    assert _ACTIVE.search(plain) is None, repr(_ACTIVE.search(plain))
    assert "\x1b]" not in output
    assert ANSI not in output
    assert "\x1b[31mC1" not in output


# -- the helper -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [CLOSE, LINK, BOLD, "[/]", "[/link]", "a\\[b]c\\", EMOJI, "x[on red]y"])
def test_markup_comes_out_as_typed(value: str) -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(safe_text(value))
    console.print(f"[red]{safe_markup(value)}[/red]", emoji=False)
    console.print(Text.assemble(("note:", "yellow"), " ", literal(console, value)))
    assert _output(console) == f"{value}\n{value}\nnote: {value}\n"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (ANSI, "\\x1b[31mEvil"),
        (OSC8, "\\x1b]8;;http://evil.example\\x1b\\here\\x1b]8;;\\x1b\\"),
        (C1, "\\x9b31mC1"),
        ("\x85next line\x9d", "\\x85next line\\x9d"),
        (BIDI, "\\u202eexe.txt"),
        ("a\u2066b\u2069c\u200fd\u061c", "a\\u2066b\\u2069c\\u200fd\\u061c"),
        ("bell\x07 back\x08 del\x7f nul\x00", "bell\\x07 back\\x08 del\\x7f nul\\x00"),
        ("tab\there\r\nline\u2028", "tab\\there\\r\\nline\\u2028"),
    ],
)
def test_controls_become_visible_escapes(value: str, shown: str) -> None:
    assert visible(value) == shown
    assert safe_text(value).plain == shown
    assert Text.from_markup(f"[red]{safe_markup(value)}[/red]", emoji=False).plain == shown
    assert _ACTIVE.search(visible(value)) is None


def test_multiline_keeps_newlines_only() -> None:
    assert visible(FORGED, multiline=True) == FORGED
    assert visible("a\r\nb\tc", multiline=True) == "a\\r\nb\\tc"
    assert visible(FORGED) == "ok\\nthe input meets the contract"


@pytest.mark.parametrize("value", ["Acme Inc", "Zoë Café", "株式会社テスト", "O'Brien & Sons (EMEA)", "👍 team",
                                   "C:\\Users\\ann\\data", "", "50% off: 2024-01-01 → 2024-02-01"])
def test_ordinary_text_is_unchanged(value: str) -> None:
    assert visible(value) == value
    assert safe_text(value).plain == value
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(f"{safe_markup(value)}")
    assert _output(console) == value + "\n"


def test_non_strings_and_none() -> None:
    assert visible(None) == ""
    assert visible(12) == "12"
    assert visible(dt.date(2024, 1, 1)) == "2024-01-01"
    assert safe_text(None, "bold").plain == ""


def test_literal_keeps_the_console_highlighting() -> None:
    console = _console()
    console.print("Wrote 12 tables to /tmp/out")
    before = _output(console)
    console = _console()
    console.print(literal(console, "Wrote 12 tables to /tmp/out"))
    assert _output(console) == before
    console = _console()
    console.print("[yellow]12 rows in /tmp/out[/yellow]")
    before = _output(console)
    console = _console()
    console.print(literal(console, "12 rows in /tmp/out", "yellow"))
    assert _output(console) == before


# -- the renderers --------------------------------------------------------------------------------------------


def _metrics(month: str = "2024-06") -> pa.Table:
    row: dict[str, Any] = {
        "month": month, "mrr": Decimal("12500.00"), "net_new_mrr": Decimal("500.00"), "arr": Decimal("150000.00"),
        "customers": 42, "arpa": Decimal("297.62"), "new": Decimal("300.00"), "reactivation": Decimal("0.00"),
        "expansion": Decimal("450.00"), "contraction": Decimal("-50.00"), "churn": Decimal("-200.00"),
        "fx": Decimal("0.00"), "nrr_12m": 1.12, "grr_12m": 0.91, "nrr_month": 1.01, "logo_churn_rate": 0.02,
        "quick_ratio": 2.5,
    }
    money = {k for k, v in row.items() if isinstance(v, Decimal)}
    return pa.table({k: pa.array([v], MONEY if k in money else None) for k, v in row.items()})


def _sources(month: str = "2024-06", source: str = "seat") -> pa.Table:
    return pa.table({"month": [month, month, "2024-05"], "source": [source, "tier", "usage"],
                     "expansion": pa.array([Decimal("300.00"), Decimal("150.00"), Decimal("20.00")], MONEY)})


def _accounts(name: str = "Acme Inc", owner: str = "ann", tier: str = "Expansion Ready", lever: str = "seats",
              weakest: str = "usage", account_id: str = "B-2") -> pa.Table:
    flags = {f"flag_{k}": [True, False] for k in ("seat_saturation", "usage_limit", "invite_surge", "team_growth",
                                                  "premium_gap", "advanced_adoption")}
    return pa.table({
        "account_id": ["A-1", account_id], "name": [name, None], "owner": [owner, None],
        "mrr": pa.array([Decimal("900.00"), Decimal("120.00")], MONEY), "health_score": [81.0, 35.0],
        "health_tier": [tier, "At Risk"], "health_trend": ["up", "down"], "expansion_propensity": [0.61, 0.05],
        "churn_risk": [0.04, 0.4], "recommended_lever": [lever, None], "health_weakest": [weakest, "seats"],
        "days_to_renewal": [45, None], **flags,
    })


def _worklist(name: str = "Acme Inc", owner: str = "ann", lever: str = "seats",
              reasons: str = "seats 92% used; invites up 40%", scored_by: str = "lightgbm", account_id: str = "B-2",
              week: object = dt.date(2024, 6, 3)) -> pa.Table:
    return pa.table({
        "week": [week, week], "rank": [1, 2], "owner": [owner, "bob"], "account_id": ["A-1", account_id],
        "name": [name, None], "mrr": pa.array([Decimal("900.00"), Decimal("120.00")], MONEY),
        "motion": ["expand", "retain"], "value_at_stake": pa.array([Decimal("540.00"), Decimal("48.00")], MONEY),
        "expansion_propensity": [0.61, 0.05], "churn_risk": [0.04, 0.4], "recommended_lever": [lever, None],
        "reasons": [reasons, "usage down 30%"], "scored_by": [scored_by, scored_by],
    })


def _card(text: str = "lightgbm", why: str = "too few expansions with a known lever: 3") -> dict[str, Any]:
    return {
        "model": text, "horizon_months": 3, "rows": 12000, "labelled_months": 20,
        "training_window": ["2022-01", "2023-06"], "calibration_window": ["2023-07", "2023-12"],
        "targets": {"expansion": {"held_out": {"auc": 0.812, "lift_top_decile": 3.1, "brier": 0.071},
                                  "calibration_rows": 3000, "calibration_positives": 240}},
        "fallback": {"lever": why}, "trained_at": "2024-06-30T12:00:00+00:00",
        "versions": {"upcurve": "0.1.0", "lightgbm": "4.3.0"},
    }


def _backtest(model: str = "lightgbm", target: str = "expansion") -> tuple[pa.Table, pa.Table]:
    metrics = pa.table({
        "cutoff": [dt.date(2023, 12, 31), dt.date(2023, 12, 31)], "target": [target, "churn"],
        "model": [model, "rules"], "auc": [0.8, None], "log_loss": [0.3, 0.4], "brier": [0.07, 0.09],
        "precision_at_k": [0.4, 0.2], "lift_top_decile": [3.0, 1.5], "base_rate": [0.1, 0.05], "rows": [500, 500],
        "lever_match": [0.5, None],
    })
    calibration = pa.table({
        "model": [model] * 10, "target": [target] * 10, "bin": list(range(1, 11)),
        "mean_predicted": [i / 10 for i in range(10)], "observed_rate": [i / 11 for i in range(10)],
    })
    return metrics, calibration


def test_summary_shows_hostile_sources_month_currency_and_date_literally() -> None:
    console = _console()
    month = "2024-06" + CLOSE
    render_summary(console, {"metrics": _metrics(month), "expansion_by_source": _sources(month, ANSI + LINK)},
                   "[/]" + BIDI, as_of=OSC8)
    assert_literal(_output(console), month, ANSI + LINK, "[/]" + BIDI, OSC8)


def test_problems_show_every_hostile_field_literally() -> None:
    problems = [
        Problem(file=CLOSE + ".csv", rule=LINK, column=ANSI, count=3, rows=(2, 3), values=("[/link]", OSC8, C1),
                hint=BIDI + BOLD),
        Problem(file="notes[bold]" + ANSI + ".txt", rule=FORGED, severity="note"),
    ]
    console = _console()
    render_problems(console, problems)
    output = _output(console)
    assert_literal(output, CLOSE + ".csv", LINK, ANSI, "[/link],", OSC8 + ",", C1, BIDI + BOLD,
                   "notes[bold]" + ANSI + ".txt", FORGED)


def test_accounts_show_hostile_names_owners_tiers_and_levers_literally() -> None:
    console = _console()
    # short values: the columns of this wide table cut long ones with an ellipsis
    account_id = "\x1b]8;;x\x07[b]"
    render_accounts(console, _accounts(CLOSE, "[/link]ann", ANSI, C1, BIDI, account_id=account_id), sort="health",
                    top=5, currency=EMOJI, as_of=dt.date(2024, 6, 30))
    assert_literal(_output(console), CLOSE, "[/link]ann", ANSI, C1, BIDI, account_id, EMOJI)


def test_worklist_shows_hostile_values_literally() -> None:
    console = _console()
    render_worklist(console, _worklist("[/link]", "[/b]" + C1, ANSI, "seats[/b]; " + OSC8, "lgbm[/]", "x\u202e",
                                       week=CLOSE), currency=EMOJI, top=5)
    assert_literal(_output(console), "[/link]", "[/b]" + C1, "seats[/b]", OSC8, "lgbm[/]", "x\u202e", CLOSE, EMOJI)
    assert "expand:" in _plain(_output(console)) and "\\x1b[31mEvil" in _plain(_output(console))  # the lever


def test_model_card_shows_edited_fields_literally() -> None:
    card = _card(text=CLOSE, why=ANSI + "[/yellow]")
    card["training_window"] = [LINK, BIDI]
    card["targets"] = {OSC8: card["targets"]["expansion"]}
    card["versions"] = {"upcurve": C1, "lightgbm": EMOJI}
    card["trained_at"] = "[/]"
    console = _console()
    render_model_card(console, card)
    assert_literal(_output(console), CLOSE, ANSI + "[/yellow]", LINK, BIDI, OSC8, C1, EMOJI, "trained [/] with")


def test_model_card_with_missing_held_out_metrics_does_not_crash() -> None:
    card = _card()
    card["targets"]["expansion"]["held_out"]["auc"] = None  # a freshly trained card holds None for an undefined AUC
    console = _console()
    render_model_card(console, card)
    assert "held-out AUC –, lift" in _plain(_output(console))


def test_backtest_shows_hostile_models_targets_and_notes_literally() -> None:
    metrics, calibration = _backtest(CLOSE, LINK)
    console = _console()
    render_backtest(console, metrics, calibration, [ANSI + " [/yellow] " + OSC8, FORGED])
    output = _output(console)
    assert_literal(output, CLOSE, LINK, ANSI + " [/yellow] " + OSC8, FORGED)


def test_ordinary_values_keep_their_look() -> None:
    """Ordinary values print as before: styled cells keep their styles, nothing is escaped."""
    console = _console()
    render_accounts(console, _accounts(), sort="health", top=5, currency="USD", as_of=dt.date(2024, 6, 30))
    output = _output(console)
    assert "Acme Inc" in output and "B-2" in output
    assert "\x1b[1;32mExpansion Ready\x1b[0m" in output  # the tier keeps its colour
    assert re.search(r"\x1b\[3m *Accounts as of 2024-06-30", output)  # the title keeps table.title (italic)
    console = _console()
    render_worklist(console, _worklist(), currency="USD")
    plain = _plain(_output(console))
    assert "expand:" in plain and "seats 92% used" in plain and "invites up 40%" in plain
    assert "\\" not in plain


# -- through the command line ---------------------------------------------------------------------------------

_LINES = """\
line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end
1,A,team_m,subscription,2,20,USD,2024-01-01,2024-02-01
2,A,team_m,subscription,2,20,USD,2024-02-01,2024-03-01
"""


def test_validate_shows_hostile_problem_values_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from upcurve import cli
    from upcurve.cli import app

    for console in (cli.console, cli.err):  # made at import, before any COLUMNS: wide enough for one line a row
        monkeypatch.setattr(console, "width", 250)

    accounts = "account_id,name,segment,owner,created_at\nA,[/red]Evil\x1b[31m,smb,ann,[/link]2024\n"
    folder = write_folder(tmp_path / "d", {"invoice_lines": _LINES, "accounts": accounts})
    (folder / "n[b]\x1b]8;;x\x07.txt").write_text("stray")
    result = CliRunner().invoke(app, ["validate", str(folder)], env={"COLUMNS": "250"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2
    assert_literal(result.output, "[/link]2024", "n[b]\x1b]8;;x\x07.txt")
    assert "\x1b[31m" not in result.output


def test_validate_success_line_shows_a_hostile_folder_name_literally(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from upcurve import cli
    from upcurve.cli import app

    for console in (cli.console, cli.err):  # made at import, before any COLUMNS: wide enough for one line a row
        monkeypatch.setattr(console, "width", 250)

    folder = write_folder(tmp_path / "[/red]data[link=x]\x1b[31mEvil", {"invoice_lines": _LINES})
    result = CliRunner().invoke(app, ["validate", str(folder)], env={"COLUMNS": "250"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 0
    assert_literal(result.output, str(folder))
