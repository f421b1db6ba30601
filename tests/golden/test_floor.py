"""The benchmarks' floor (plain DuckDB SQL, ``benchmarks/floor.sql``) computes what upcurve computes.

The floor is the yardstick of ``upcurve run``'s speed; a floor that computed less, or something else, would make the
ratio flatter than it is. It is also one more implementation written apart from upcurve's: MRR per account, product
and month, every account's movement and the monthly metrics must agree to the cent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from upcurve.config import RevenuePolicy
from upcurve.engine import connect
from upcurve.outputs import money_columns
from upcurve.revenue import revenue_tables
from upcurve.simulate import BILLING_TABLES, simulate_tables, write_folder
from upcurve.sources.folder import load_folder


def _floor_module() -> ModuleType:
    path = Path(__file__).parents[2] / "benchmarks" / "floor.py"
    spec = importlib.util.spec_from_file_location("benchmark_floor", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [3, 11])
def test_the_floor_computes_what_upcurve_computes(seed: int, tmp_path: Path) -> None:
    tables = simulate_tables(150, 26, seed=seed)
    data = write_folder(tables, tmp_path / "data", "parquet", BILLING_TABLES)
    assert {"EUR", "GBP"} <= set(tables["invoice_lines"]["currency"].to_pylist())  # the rates are exercised
    policy = RevenuePolicy()
    loaded = load_folder(data, connect("duckdb://"), as_of=None, policy=policy)
    revenue = revenue_tables(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=policy)
    upcurve = {name: money_columns(revenue.tables[name].to_pyarrow()) for name in ("mrr", "movements", "metrics")}

    floor = _floor_module()
    _seconds, computed = floor.run_floor(data)
    assert computed["metrics"].num_rows == 26
    assert floor.floor_agrees(computed, upcurve) == []
