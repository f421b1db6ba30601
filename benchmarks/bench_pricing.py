"""Benchmark: pricing usage records, in the engine (``charge_expression``) and one at a time (``quote``).

A table of N usage records (quantities up to 100,000 with three decimals) is priced under a four-tier graduated
model with a minimum spend, in DuckDB's exact decimals, and the charges summed (so every record is priced); a
sample is priced one at a time by the Decimal calculator, and both give the same amounts. Printed: seconds,
records per second (goal: at least 1,000,000 a second in the engine) and peak RSS.

    python benchmarks/bench_pricing.py [--records 10000000]
"""

from __future__ import annotations

import argparse
import resource
import time
from decimal import Decimal

import ibis

from upcurve.pricing import parse_price_model, quote
from upcurve.pricing.bulk import charge_expression

MODEL = {"model": "graduated", "minimum_spend": "49", "tiers": [
    {"up_to": 1000, "unit_amount": "0", "flat_amount": "49"}, {"up_to": 10000, "unit_amount": "0.002"},
    {"up_to": 50000, "unit_amount": "0.0015", "flat_amount": "10"}, {"up_to": None, "unit_amount": "0.001"}]}
GOAL = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="records priced one at a time")
    args = parser.parse_args()
    model = parse_price_model(MODEL)
    con = ibis.duckdb.connect()
    con.raw_sql(f"create table usage as select i as record, (hash(i) % 100000000)::decimal(38, 6) / 1000 as quantity "
                f"from range({args.records}) t(i)")
    usage = con.table("usage")
    priced = usage.mutate(charge=charge_expression(model, usage.quantity))
    start = time.perf_counter()
    total = con.to_pyarrow(priced.charge.sum())
    seconds = time.perf_counter() - start
    rate = args.records / seconds
    sample = con.to_pyarrow(priced.order_by("record").limit(args.sample))
    start = time.perf_counter()
    by_one = [quote(model, usage=Decimal(str(q))).amount for q in sample["quantity"].to_pylist()]
    one_seconds = time.perf_counter() - start
    assert by_one == sample["charge"].to_pylist(), "the engine and the calculator disagree"
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"{args.records:,} usage records, graduated (4 tiers, minimum spend), total {total.as_py():,}")
    print(f"in the engine: {seconds:.2f} s, {rate:,.0f} records/s (goal ≥ {GOAL:,}: "
          f"{'met' if rate >= GOAL else 'missed'}); peak RSS {peak_gb:.2f} GB")
    print(f"one at a time (Decimal): {args.sample:,} records in {one_seconds:.2f} s, "
          f"{args.sample / one_seconds:,.0f} records/s; the same amounts as the engine")


if __name__ == "__main__":
    main()
