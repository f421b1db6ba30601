"""Property-based tests of the invariants every revenue table must hold, on random billing histories."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import ibis
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upcurve.config import RevenuePolicy
from upcurve.revenue import (
    account_months,
    account_months_from_pairs,
    line_months,
    month_calendar,
    monthly_metrics,
    movements,
    product_months,
    product_pairs,
)

PLANS = pa.table({
    "plan_id": ["team_m", "business_m", "starter_m", "addon_m", "api_m", "team_y"],
    "product": ["core", "core", "core", "analytics", "api", "core"],
    "tier_rank": [2, 3, 1, 1, 1, 2],
    "pricing": ["per_seat", "per_seat", "flat", "per_seat", "usage", "per_seat"],
    "interval_months": [1, 1, 1, 1, 1, 12],
})
START = dt.date(2024, 1, 1)


def _end(start: dt.date, shape: str, days: int) -> dt.date:
    if shape == "days":
        return start + dt.timedelta(days=days)
    months = 1 if shape == "month" else 12
    idx = start.year * 12 + start.month - 1 + months
    year, month = divmod(idx, 12)
    for day in (start.day, 30, 29, 28):
        try:
            return dt.date(year, month + 1, day)
        except ValueError:
            continue
    raise AssertionError


line = st.tuples(
    st.sampled_from("ABCDE"),
    st.sampled_from(PLANS["plan_id"].to_pylist()),
    st.integers(1, 30),  # quantity
    st.integers(0, 500_00),  # amount in cents
    st.sampled_from(["USD", "EUR"]),
    st.integers(0, 540),  # start offset in days
    st.sampled_from(["month", "month", "year", "days"]),
    st.integers(1, 400),
)


def _tables(rows, rates):
    lines = defaultdict(list)
    for i, (acc, plan, qty, cents, cur, offset, shape, days) in enumerate(rows):
        start = START + dt.timedelta(days=offset)
        lines["line_id"].append(str(i))
        lines["account_id"].append(acc)
        lines["plan_id"].append(plan)
        lines["kind"].append("usage" if plan == "api_m" else "subscription")
        lines["quantity"].append(float(qty))
        lines["amount"].append(cents / 100)
        lines["currency"].append(cur)
        lines["period_start"].append(start)
        lines["period_end"].append(_end(start, shape, days))
        lines["proration"].append(None)
    fx = {"month": [dt.date(2024 + m // 12, m % 12 + 1, 1) for m in range(len(rates))],
          "currency": ["EUR"] * len(rates), "rate": rates}
    table = pa.table(lines) if rows else pa.table({**lines, "proration": pa.array([], pa.string())})
    return table.set_column(table.schema.get_field_index("proration"), "proration",
                            table["proration"].cast(pa.string())), pa.table(fx)


def _compute(lines: pa.Table, fx: pa.Table, as_of: dt.date):
    con = ibis.duckdb.connect()
    policy = RevenuePolicy()
    cal = month_calendar(START, as_of)
    lm = line_months(ibis.memtable(lines), ibis.memtable(PLANS), ibis.memtable(fx), cal, policy=policy)
    pm = product_months(lm)
    am = account_months(pm, cal)
    mv = movements(pm, cal, policy=policy, account_months=am)
    metrics = monthly_metrics(am, mv, cal)
    # The service reads account months off the product pairing: it must give the very same rows.
    from_pairs = con.to_pyarrow(account_months_from_pairs(product_pairs(pm, cal))).to_pylist()
    direct = con.to_pyarrow(am).to_pylist()
    assert sorted(from_pairs, key=_row_key) == sorted(direct, key=_row_key)
    return direct, con.to_pyarrow(mv).to_pylist(), con.to_pyarrow(metrics).to_pylist(), con.to_pyarrow(pm).to_pylist()


def _row_key(row: dict) -> tuple:
    return tuple(str(v) for v in row.values())


histories = st.tuples(
    st.lists(line, min_size=1, max_size=25),
    st.lists(st.floats(0.5, 2.0, allow_nan=False), min_size=24, max_size=24),
    st.integers(200, 700),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_bridge_sources_and_retention_bounds(history) -> None:
    rows, rates, as_of_days = history
    lines, fx = _tables(rows, rates)
    as_of = START + dt.timedelta(days=as_of_days)
    am, mv, metrics, pm = _compute(lines, fx, as_of)

    moved = defaultdict(int)
    types = defaultdict(set)
    sourced = defaultdict(int)
    for m in mv:
        key = (m["account_id"], m["month_idx"])
        moved[key] += m["amount_cents"]
        if m["type"] != "fx":
            types[key].add(m["type"])
        if m["source"] is not None:
            assert m["type"] in ("expansion", "contraction")
            sourced[key] += m["amount_cents"]
        else:
            assert m["type"] in ("new", "churn", "reactivation", "fx")
    # The bridge: mrr(m) = mrr(m−1) + Σ movements(m), to the cent, for every account and month.
    for a in am:
        key = (a["account_id"], a["month_idx"])
        assert a["cur_mrr_cents"] - a["prev_mrr_cents"] == moved.get(key, 0), key
    # One kind of movement per account-month (besides fx), and the sources sum to the constant-currency change.
    for a in am:
        key = (a["account_id"], a["month_idx"])
        assert len(types.get(key, set())) <= 1
        if types.get(key) == {"expansion"}:
            assert sourced[key] == a["cur_cc_mrr_cents"] - a["prev_mrr_cents"] > 0
        if types.get(key) == {"contraction"}:
            assert sourced[key] == a["cur_cc_mrr_cents"] - a["prev_mrr_cents"] < 0
    # Account MRR is the sum of its products' MRR.
    by_account = defaultdict(int)
    for p in pm:
        by_account[(p["account_id"], p["month_idx"])] += p["mrr_cents"]
    for a in am:
        assert by_account.get((a["account_id"], a["month_idx"]), 0) == a["cur_mrr_cents"]
    # Monthly metrics bridge too, and retention stays in bounds.
    previous = 0
    for row in metrics:
        parts = sum(row[f"{t}_cents"] for t in ("new", "expansion", "contraction", "churn", "reactivation", "fx"))
        assert row["mrr_cents"] - previous == row["net_new_mrr_cents"] == parts
        previous = row["mrr_cents"]
        if row["grr_12m"] is not None:
            assert 0 <= row["grr_12m"] <= 1 + 1e-12
            assert row["grr_12m"] <= row["nrr_12m"] + 1e-12


@settings(max_examples=4, deadline=None)
@given(histories, st.randoms(use_true_random=False))
def test_results_do_not_depend_on_row_order(history, random) -> None:
    rows, rates, as_of_days = history
    as_of = START + dt.timedelta(days=as_of_days)
    shuffled = list(rows)
    random.shuffle(shuffled)
    first = _compute(*_tables(rows, rates), as_of)
    second = _compute(*_tables(shuffled, rates), as_of)
    for a, b in zip(first[:3], second[:3], strict=True):
        assert sorted(a, key=_row_key) == sorted(b, key=_row_key)


@given(st.lists(st.tuples(st.integers(-100_000_00, 100_000_00), st.integers(0, 700), st.integers(0, 800)),
                min_size=1, max_size=8))
@settings(max_examples=40, deadline=None)
def test_spread_services_add_up_to_each_line_to_the_cent(spans) -> None:
    """Spread over its period (``spread_one_time``), a one-time line's monthly shares add up to its amount to the
    cent, each within a cent of its days' share, all of the amount's sign; the months' services revenue adds up to
    the lines, spread or booked whole."""
    from decimal import Decimal

    from upcurve.revenue.ledger import _spread_over_months, services_revenue

    rows = []
    for i, (cents, offset, days) in enumerate(spans):
        start = START + dt.timedelta(days=offset)
        rows.append({"line_id": f"l{i}", "kind": "one_time", "amount": Decimal(cents) / 100, "currency": "USD",
                     "period_start": start, "period_end": start + dt.timedelta(days=days)})
    lines = ibis.memtable(pa.Table.from_pylist(rows, schema=pa.schema([
        ("line_id", pa.string()), ("kind", pa.string()), ("amount", pa.decimal128(20, 3)),
        ("currency", pa.string()), ("period_start", pa.date32()), ("period_end", pa.date32())])))
    cal = month_calendar(START, START + dt.timedelta(days=1600))
    con = ibis.duckdb.connect()
    shares: dict[str, dict[int, float]] = defaultdict(dict)
    for r in con.to_pyarrow(_spread_over_months(lines, cal)).to_pylist():
        shares[r["line_id"]][r["month_idx"]] = r["cents"]
    total = sum(cents for cents, _, _ in spans)
    for spread in (True, False):
        months = con.to_pyarrow(services_revenue(lines, None, cal, policy=RevenuePolicy(spread_one_time=spread)))
        assert sum(months["services_cents"].to_pylist()) == total
    for i, (cents, offset, days) in enumerate(spans):
        assert sum(shares[f"l{i}"].values()) == cents
        start, length = START + dt.timedelta(days=offset), max(days, 1)
        for month_idx, share in shares[f"l{i}"].items():
            first = dt.date(month_idx // 12, month_idx % 12 + 1, 1)
            nxt = dt.date((month_idx + 1) // 12, (month_idx + 1) % 12 + 1, 1)
            inside = (min(nxt, start + dt.timedelta(days=length)) - max(first, start)).days
            assert abs(share - cents * inside / length) <= 1
            assert share * cents >= 0
