"""`upcurve pricing simulate` and `upcurve pricing compare` on a real workspace: the impact checked against the
run's book of business, priced again here by hand."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from upcurve.cli import app as cli
from upcurve.cli_support import console, err
from upcurve.workspace import Store


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_a_list_price_rise_without_grandfathering_is_every_core_plan_times_its_rise(store: Store,
                                                                                   tmp_path: Path) -> None:
    run = store.runs()[-1]
    book = store.table("plan_mrr", run.run_id).to_pylist()
    core = [r for r in book if r["product"] == "core" and r["kind"] == "subscription"]
    assert core, "the simulated company sells its core product"
    expected = sum(((r["mrr"] * Decimal("1.075")).quantize(Decimal("0.01"), ROUND_HALF_UP) - r["mrr"] for r in core),
                   Decimal(0))
    scenario = tmp_path / "rise.yaml"
    scenario.write_text("name: core +7.5%\nnotice_days: 0\ngrandfathering: none\nmonths: 6\nchanges:\n"
                        "  - products: [core]\n    list_price_pct: 7.5\n")
    workspace = str(store.database.parent)
    code, out = _invoke("pricing", "simulate", "--workspace", workspace, "--change", str(scenario), "--json")
    assert code == 0, out
    found = json.loads(out)
    assert Decimal(found["summary"]["impact"]) == expected
    assert [Decimal(m["impact"]) for m in found["by_month"]] == [expected] * 6
    assert found["summary"]["accounts_affected"] == len({r["account_id"] for r in core})
    assert sum(Decimal(s["impact"]) for s in found["by_segment"]) == expected


def test_the_terminal_shows_the_headline_months_segments_and_rises(store: Store, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)
    scenario = tmp_path / "rise.yaml"
    scenario.write_text("name: API overage up\nchanges:\n  - plans: [api_m]\n    price_model: {model: tiered_overage, "
                        "included_units: 50000, overage_unit_amount: 0.003, base_amount: 0}\n"
                        "    usage_limit: 50000\n")
    code, out = _invoke("pricing", "simulate", "--workspace", str(store.database.parent), "--change", str(scenario))
    assert code == 0, out
    for part in ("What if: API overage up", "30 days' notice; each at its renewal", "Impact by month",
                 "By segment", "largest bill rises", "api_m: a limit of 50,000 (was 100,000)"):
        assert part in out, part


def test_a_bad_scenario_exits_2_naming_the_file_and_field(store: Store, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(err, "width", 300)
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("changes:\n  - plans: [core_team_m]\n    list_price_pc: 10\n")
    code, out = _invoke("pricing", "simulate", "--workspace", str(store.database.parent), "--change", str(scenario))
    assert code == 2 and "bad.yaml" in out and "list_price_pc" in out and "Traceback" not in out


def test_compare_two_prices_for_a_usage(tmp_path: Path) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.json"
    old.write_text("model: per_unit\nunit_amount: 0.002\n")
    new.write_text('{"model": "graduated", "tiers": [{"up_to": 100000, "unit_amount": 0.002}, '
                   '{"up_to": null, "unit_amount": 0.0015}]}')
    code, out = _invoke("price", "compare", str(old), str(new), "--usage", "150000", "--json")
    assert code == 0, out
    found = json.loads(out)
    # 150,000 at 0.002 = 300.00; graduated: 100,000 at 0.002 + 50,000 at 0.0015 = 275.00
    assert (found["old"]["amount"], found["new"]["amount"], found["difference"]) == ("300.00", "275.00", "-25.00")
    code, out = _invoke("pricing", "compare", str(old), str(new), "--usage", "150000")
    assert code == 0 and "300.00 USD at the old price, 275.00 USD at the new: -25.00 USD (-8.3%)" in " ".join(
        out.split())
