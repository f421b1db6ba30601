"""Point-in-time snapshots: no feature knows the future; labels read the months after."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis
import pyarrow.compute as pc
import pytest

from upcurve.config import RevenuePolicy
from upcurve.contract import known_at, plan_features, read_folder, typed_tables
from upcurve.engine import hand_over
from upcurve.revenue import revenue_tables
from upcurve.scoring import labels_after, premium_add_ons, snapshot_dates, training_snapshots
from upcurve.simulate import simulate_company

FIRST = dt.date(2023, 1, 1)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("company")
    simulate_company(out, accounts=120, months=20, seed=5)
    return out


def _snapshots(folder: Path, as_of: dt.date, dates: list[dt.date]):
    con = ibis.duckdb.connect()
    tables = hand_over(con, known_at(typed_tables(read_folder(folder, con)), as_of), in_place=("events", "usage"))
    revenue = revenue_tables(tables, as_of=as_of, first=FIRST, policy=RevenuePolicy())
    frame = training_snapshots(tables, revenue.account_months, revenue.movements, revenue.calendar,
                               plan_features(tables["plans"]), dates)
    return frame.to_pyarrow()


def test_snapshot_dates_are_month_ends_after_a_warmup() -> None:
    dates = snapshot_dates(dt.date(2023, 1, 15), dt.date(2023, 7, 30), warmup_months=3)
    assert dates == [dt.date(2023, 4, 30), dt.date(2023, 5, 31), dt.date(2023, 6, 30)]


def test_features_never_change_when_later_data_is_added(company: Path) -> None:
    d = dt.date(2024, 2, 29)
    later = _snapshots(company, dt.date(2024, 8, 31), [d])
    then = _snapshots(company, d, [d])
    features = [c for c in then.column_names if not c.startswith(("label_", "net_expansion", "expansion_"))]
    assert later.num_rows == then.num_rows > 20

    def rows(table):
        return sorted(table.select(features).to_pylist(), key=lambda r: r["account_id"])

    assert rows(later) == rows(then)
    # and the labels: known with six more months of data, unknown at the snapshot date itself
    assert then["label_expansion"].null_count == then.num_rows
    assert later["label_expansion"].null_count == 0


def test_labels_read_the_following_three_months() -> None:
    snapshots = ibis.memtable({"account_id": ["A", "B", "C", "D"], "snapshot_idx": [10, 10, 10, 14]})
    movements = ibis.memtable({
        "account_id": ["A", "A", "B", "B", "C", "D"],
        "month_idx": [11, 13, 12, 14, 11, 15],
        "type": ["expansion", "expansion", "contraction", "expansion", "churn", "expansion"],
        "source": ["seat", "tier", "seat", "seat", None, "usage"],
        "amount_cents": [500, 900, -300, 5000, -1000, 100],
    })
    calendar = ibis.memtable({"month_idx": list(range(0, 16))})
    rows = {r["account_id"]: r for r in ibis.duckdb.connect().to_pyarrow(
        labels_after(snapshots, movements, calendar)).to_pylist()}
    assert rows["A"]["net_expansion_cents"] == 1400 and rows["A"]["label_expansion"] is True
    assert rows["A"]["expansion_source"] == "tier"
    assert rows["B"]["net_expansion_cents"] == -300 and rows["B"]["label_expansion"] is False  # month 14 is after
    assert rows["C"]["label_churn"] is True and rows["C"]["label_expansion"] is False
    assert rows["D"]["label_expansion"] is None  # months 15–17 are not all known yet


def test_labels_leave_out_price_changes_and_name_premium_add_ons() -> None:
    snapshots = ibis.memtable({"account_id": ["E", "F", "G"], "snapshot_idx": [10, 10, 10]})
    movements = ibis.memtable({
        "account_id": ["E", "E", "F", "G"],
        "month_idx": [11, 12, 11, 12],
        "type": ["expansion", "expansion", "expansion", "expansion"],
        "source": ["price", "seat", "cross_sell", "price"],
        "amount_cents": [900, 300, 19900, 500],
    })
    product_months = ibis.memtable({
        "account_id": ["F", "F", "F"], "product": ["core", "core", "security"], "month_idx": [10, 11, 11],
        "mrr_cents": [5000, 5000, 19900],
    })
    plans = ibis.memtable({"product": ["core", "core", "security"], "tier": ["team", "business", "Premium"]})
    calendar = ibis.memtable({"month_idx": list(range(0, 16))})
    labels = labels_after(snapshots, movements, calendar, product_months=product_months,
                          premium=premium_add_ons(plans))
    rows = {r["account_id"]: r for r in ibis.duckdb.connect().to_pyarrow(labels).to_pylist()}
    assert (rows["E"]["expansion_source"], rows["E"]["expansion_lever"]) == ("seat", "seat")
    assert rows["E"]["net_expansion_cents"] == 300
    assert (rows["F"]["expansion_source"], rows["F"]["expansion_lever"]) == ("cross_sell", "premium")
    assert rows["G"]["label_expansion"] is False and rows["G"]["expansion_lever"] is None  # a price rise only


def test_snapshots_at_many_dates_equal_each_date_alone(company: Path) -> None:
    """All dates are one query: a date's rows must not change when other, later dates join it."""
    d, later = dt.date(2023, 11, 30), dt.date(2024, 5, 31)
    alone = _snapshots(company, dt.date(2024, 8, 31), [d])
    together = _snapshots(company, dt.date(2024, 8, 31), [d, later])
    assert len(set(together["snapshot"].to_pylist())) == 2

    def rows(table):
        table = table.filter(pc.equal(table["snapshot"], d))
        return sorted(table.to_pylist(), key=lambda r: r["account_id"])

    assert rows(together) == rows(alone)


def test_labels_name_every_lever_that_moved_in_the_window() -> None:
    """A quarter often mixes levers: the lever of the largest expansion is one, the levers that moved are all."""
    snapshots = ibis.memtable({"account_id": ["H", "I", "J"], "snapshot_idx": [10, 10, 10]})
    movements = ibis.memtable({
        "account_id": ["H", "H", "H", "H", "I", "I", "J"],
        "month_idx": [11, 12, 13, 12, 11, 12, 11],
        "type": ["expansion", "expansion", "expansion", "expansion", "expansion", "contraction", "expansion"],
        "source": ["tier", "seat", "usage", "price", "cross_sell", "seat", "seat"],
        "amount_cents": [900, 300, 200, 5000, 19900, -30000, 100],
    })
    product_months = ibis.memtable({
        "account_id": ["I", "I", "I"], "product": ["core", "core", "security"], "month_idx": [10, 11, 11],
        "mrr_cents": [5000, 5000, 19900],
    })
    plans = ibis.memtable({"product": ["core", "security"], "tier": ["team", "premium"]})
    calendar = ibis.memtable({"month_idx": list(range(0, 16))})
    labels = labels_after(snapshots, movements, calendar, product_months=product_months,
                          premium=premium_add_ons(plans))
    rows = {r["account_id"]: r for r in ibis.duckdb.connect().to_pyarrow(labels).to_pylist()}
    # in the order of LEVERS; a price change is not a lever
    assert (rows["H"]["expansion_lever"], rows["H"]["expansion_levers"]) == ("tier", "usage,seat,tier")
    assert rows["I"]["label_expansion"] is False and rows["I"]["expansion_levers"] is None  # it shrank on the whole
    assert rows["J"]["expansion_levers"] == "seat"
