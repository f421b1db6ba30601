"""The accounts table ranks paying accounts by the chosen measure, empty values last, and shows only the top."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from rich.console import Console

from upcurve.present.terminal import render_accounts

MONEY = pa.decimal128(38, 6)


def _ranked(sort: str, top: int = 10) -> list[str]:
    table = pa.table({
        "account_id": ["a", "b", "c", "d", "e"],
        "name": ["Alpha", "Bravo", "Charlie", "Delta", "Echo"],
        "owner": ["ann"] * 5,
        "mrr": pa.array([Decimal("100"), Decimal("300"), Decimal("200"), Decimal("0"), Decimal("50")], MONEY),
        "health_score": [70.0, None, 40.0, 90.0, 70.0],
        "health_tier": ["Healthy", None, "At Risk", "Healthy", "Healthy"],
        "health_trend": ["up"] * 5,
        "expansion_propensity": [0.2, 0.9, None, 0.99, 0.5],
        "churn_risk": [0.1, None, 0.6, 0.0, 0.1],
        "recommended_lever": ["seat"] * 5,
        "health_weakest": ["usage"] * 5,
        "days_to_renewal": [None] * 5,
    })
    console = Console(width=250, record=True, color_system=None)
    render_accounts(console, table, sort=sort, top=top, currency="USD", as_of=dt.date(2024, 6, 30))
    text = console.export_text()
    names = ["Alpha", "Bravo", "Charlie", "Echo", "Delta"]
    shown = [n for n in names if n in text]
    return sorted(shown, key=text.index)


@pytest.mark.parametrize(("sort", "expected"), [
    ("mrr", ["Bravo", "Charlie", "Alpha", "Echo"]),                 # Delta pays nothing: not a customer
    ("health", ["Alpha", "Echo", "Charlie", "Bravo"]),              # ties by MRR, no score last
    ("risk", ["Charlie", "Alpha", "Echo", "Bravo"]),                # worst health first, no score last
    ("expansion", ["Bravo", "Echo", "Alpha", "Charlie"]),
    ("churn", ["Charlie", "Alpha", "Echo", "Bravo"]),
])
def test_accounts_are_ranked_by_the_chosen_measure(sort: str, expected: list[str]) -> None:
    assert _ranked(sort) == expected


def test_only_the_top_accounts_are_shown() -> None:
    assert _ranked("mrr", top=2) == ["Bravo", "Charlie"]
