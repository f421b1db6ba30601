"""Benchmark: the usage view of every account, and a price change simulated on the book of business.

A simulated ``usage_led`` company (every account metered, a daily usage row per account) is loaded into DuckDB;
the usage view (limits, windows, trajectory, four projected months priced by each plan's price model, weeks,
roles) is computed for every account on the 15th of the history's last month, then a scenario (+10% on the core plans, a
new API price; until renewal) is simulated on the run's book. Printed: seconds, usage rows per second, book rows
per second and peak RSS.

    python benchmarks/bench_usage.py [--accounts 100000] [--months 13]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

import ibis

from upcurve.config import RevenuePolicy
from upcurve.outputs import money_columns
from upcurve.pricing.whatif import PricingScenario, simulate_pricing
from upcurve.revenue import revenue_tables
from upcurve.signals.usage import usage_view
from upcurve.simulate import simulate_tables, write_folder
from upcurve.sources import LoadedData, load_folder

SCENARIO = {"name": "core +10%, API per call 0.0025", "changes": [
    {"products": ["core"], "list_price_pct": 10},
    {"plans": ["api_m"], "price_model": {"model": "per_unit", "unit_amount": "0.0025"}}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=13)
    args = parser.parse_args()
    t0 = time.perf_counter()
    tables = simulate_tables(args.accounts, args.months, seed=1, profile="usage_led", events=True)
    # the middle of the last month: a month under way, projected to its end
    last = max(tables["invoice_lines"]["period_start"].to_pylist())
    as_of = last.replace(day=15)
    usage_rows = tables["usage"].num_rows
    print(f"generated {args.accounts:,} accounts × {args.months} months: {usage_rows:,} usage rows in "
          f"{time.perf_counter() - t0:.1f} s; as of {as_of}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(tables, Path(tmp) / "data", "parquet", tuple(tables))
        del tables
        loaded = load_folder(folder, ibis.duckdb.connect(), as_of=as_of, policy=RevenuePolicy())
        measure(loaded, as_of, usage_rows)


def measure(loaded: LoadedData, as_of: dt.date, usage_rows: int) -> None:
    tables = loaded.tables
    start = time.perf_counter()
    views = {name: expr.to_pyarrow() for name, expr in usage_view(tables, as_of=as_of).items()}
    seconds = time.perf_counter() - start
    print(f"usage view: {seconds:.2f} s, {usage_rows / seconds:,.0f} usage rows/s; "
          + ", ".join(f"{name} {t.num_rows:,}" for name, t in views.items()))
    revenue = revenue_tables(tables, as_of=as_of, first=loaded.first, policy=RevenuePolicy())
    book = revenue.tables["plan_mrr"].to_pyarrow()
    book = money_columns(book)
    accounts = money_columns(tables["accounts"].select("account_id", "name", "segment").to_pyarrow())
    mrr = money_columns(revenue.account_months.filter(revenue.account_months.month_idx
                                                      == as_of.year * 12 + as_of.month - 1)
                        .select("account_id", mrr_cents=revenue.account_months.cur_mrr_cents).to_pyarrow())
    accounts = accounts.join(mrr, "account_id")
    start = time.perf_counter()
    impact = simulate_pricing(PricingScenario.model_validate(SCENARIO), book=book, usage=views["usage_projection"],
                              accounts=accounts, as_of=as_of)
    seconds = time.perf_counter() - start
    print(f"what-if pricing: {seconds:.2f} s, {book.num_rows / seconds:,.0f} book rows/s "
          f"({book.num_rows:,} plans held, {views['usage_projection'].num_rows:,} projected months); "
          f"impact {impact.summary['impact']:,} a month, {impact.summary['accounts_affected']:,} accounts")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"peak RSS {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
