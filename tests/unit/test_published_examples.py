"""Published worked examples that need more rows than a golden file holds comfortably; and the run's outputs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from typer.testing import CliRunner

from tests.conftest import run_folder, write_folder
from upcurve.cli import app

HEADER = "line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end\n"


def test_monthly_and_annual_mix_is_12500_mrr(tmp_path: Path) -> None:
    """100 customers at $100/month and 50 at $600/year: 100 × 100 + 50 × 600 / 12 = $12,500 MRR."""
    rows = [f"m{i},M{i},team_m,subscription,10,100,USD,2024-01-01,2024-02-01" for i in range(100)]
    rows += [f"y{i},Y{i},team_y,subscription,6,600,USD,2024-01-01,2025-01-01" for i in range(50)]
    result = run_folder(write_folder(tmp_path / "d", {"invoice_lines": HEADER + "\n".join(rows)}), "2024-01-31")
    jan = result.tables["metrics"].to_pylist()[-1]
    assert jan["mrr"] == Decimal("12500.00")
    assert jan["arr"] == Decimal("150000.00")
    assert jan["customers"] == 150


def test_arpa_of_published_example_is_300(tmp_path: Path) -> None:
    """ARPA of accounts paying 100, 100, 300, 500 and 500 a month is 1500 / 5 = 300."""
    rows = [f"l{i},A{i},starter_m,subscription,1,{v},USD,2024-01-01,2024-02-01"
            for i, v in enumerate([100, 100, 300, 500, 500])]
    result = run_folder(write_folder(tmp_path / "d", {"invoice_lines": HEADER + "\n".join(rows)}), "2024-01-31")
    assert result.tables["metrics"].to_pylist()[-1]["arpa"] == Decimal("300.00")


def test_run_writes_every_table_whole_in_both_formats(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    assert runner.invoke(app, ["simulate", "--out", str(data), "--accounts", "40", "--months", "14"]).exit_code == 0
    for fmt in ("parquet", "csv"):
        out = tmp_path / f"out-{fmt}"
        result = runner.invoke(app, ["run", str(data), "--out", str(out), "--format", fmt])
        assert result.exit_code == 0, result.output
        assert "MRR bridge" in result.output
        names = {"mrr", "movements", "metrics", "expansion_by_source", "segments", "cohorts", "account_growth",
                 "accounts", "worklist", "play_exposures", "funnel", "account_usage", "usage_projection",
                 "usage_weeks", "usage_roles", "plan_mrr", "coupon_mrr"}
        assert {p.stem for p in out.glob(f"*.{fmt}")} == names
        read = pq.read_table if fmt == "parquet" else pacsv.read_csv
        metrics = read(out / f"metrics.{fmt}")
        movements = read(out / f"movements.{fmt}")
        # The files bridge too: the movements of each month add up to the month's change of MRR.
        mrr = [Decimal(str(v)) for v in metrics["mrr"].to_pylist()]
        by_month: dict[str, Decimal] = {}
        for month, amount in zip(movements["month"].to_pylist(), movements["amount"].to_pylist(), strict=True):
            by_month[str(month)] = by_month.get(str(month), Decimal(0)) + Decimal(str(amount))
        months = [str(m) for m in metrics["month"].to_pylist()]
        for i, month in enumerate(months):
            before = mrr[i - 1] if i else Decimal(0)
            assert mrr[i] - before == by_month.get(month, Decimal(0)), month
    # Running again replaces the earlier result whole.
    again = runner.invoke(app, ["run", str(data), "--out", str(tmp_path / "out-csv"), "--as-of", "2023-06-30",
                                "--format", "csv"])
    assert again.exit_code == 0, again.output
    months = pacsv.read_csv(tmp_path / "out-csv" / "metrics.csv")["month"].to_pylist()
    assert str(months[-1]) == "2023-06"
    assert "left out of this run" in " ".join(again.output.split())


def test_run_on_a_duckdb_file_engine(tmp_path: Path) -> None:
    """A company can point upcurve at a DuckDB database file instead of the in-memory default."""
    runner = CliRunner()
    data = tmp_path / "data"
    assert runner.invoke(app, ["simulate", "--out", str(data), "--accounts", "20", "--months", "6"]).exit_code == 0
    db = tmp_path / "upcurve.duckdb"
    result = runner.invoke(app, ["run", str(data), "--out", str(tmp_path / "out"), "--engine", f"duckdb://{db}"])
    assert result.exit_code == 0, result.output
    assert db.exists()
    in_memory = runner.invoke(app, ["run", str(data), "--out", str(tmp_path / "out2")])
    assert in_memory.exit_code == 0, in_memory.output
    assert pq.read_table(tmp_path / "out" / "movements.parquet").equals(
        pq.read_table(tmp_path / "out2" / "movements.parquet")
    )
