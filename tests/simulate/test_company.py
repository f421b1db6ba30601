"""The simulated company: deterministic, valid, every lever present, profiles in their published bands."""

from __future__ import annotations

import statistics
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from upcurve.config import RevenuePolicy
from upcurve.engine import connect
from upcurve.revenue import revenue_tables
from upcurve.simulate import BILLING_TABLES, simulate_company, simulate_tables, write_folder
from upcurve.sources import load_folder
from upcurve.usecases import check_folder


def revenue_of(folder: Path) -> dict[str, pa.Table]:
    """upcurve's revenue tables (MRR, movements, metrics, ...) of a data folder, at its last date: what a run computes
    before it scores accounts, without the scoring."""
    policy = RevenuePolicy()
    loaded = load_folder(folder, connect("duckdb://"), as_of=None, policy=policy)
    revenue = revenue_tables(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=policy)
    return {name: expr.to_pyarrow() for name, expr in revenue.tables.items() if name in ("movements", "metrics")}


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("company")
    simulate_company(out, accounts=800, months=30, seed=7)
    return out


def test_same_seed_same_company_other_seed_other_company(tmp_path: Path) -> None:
    a = simulate_tables(150, 14, seed=3, events=True)
    b = simulate_tables(150, 14, seed=3, events=True)
    c = simulate_tables(150, 14, seed=4, events=True)
    for name in a:
        assert a[name].equals(b[name]), name
    assert not a["invoice_lines"].equals(c["invoice_lines"])


def test_every_table_is_written_and_valid(company: Path) -> None:
    names = {p.stem for p in company.glob("*.parquet")}
    assert names == {"accounts", "plans", "invoice_lines", "fx_rates", "users", "events", "usage", "renewals",
                     "tickets", "nps", "outcomes", "activities"}
    for name in names:
        assert pq.read_metadata(company / f"{name}.parquet").num_rows > 0, name
    assert [p.describe() for p in check_folder(company).problems] == []
    assert {p.stem for p in (company / "truth").glob("*.parquet")} == {"accounts", "expansions", "plays"}


@pytest.mark.parametrize("profile", ["plg", "annual_contracts", "usage_led", "seasonal_smb"])
def test_every_profile_writes_a_valid_folder(profile: str, tmp_path: Path) -> None:
    simulate_company(tmp_path, accounts=150, months=14, seed=2, profile=profile)
    assert [p.describe() for p in check_folder(tmp_path).problems] == []


def test_csv_output_is_valid_too(tmp_path: Path) -> None:
    simulate_company(tmp_path, accounts=60, months=8, seed=2, fmt="csv")
    assert len(list(tmp_path.glob("*.csv"))) == 12
    assert [p for p in check_folder(tmp_path).problems if p.severity == "error"] == []


def test_every_lever_and_movement_type_is_present(company: Path) -> None:
    tables = revenue_of(company)
    movements = tables["movements"]
    assert set(movements["type"].to_pylist()) == {"new", "expansion", "contraction", "churn", "reactivation", "fx"}
    sources = set(pc.drop_null(movements["source"]).to_pylist())
    assert sources == {"cross_sell", "usage", "seat", "tier", "price"}
    assert sum(tables["metrics"]["services_revenue_cents"].to_pylist()) > 0
    levers = set(pq.read_table(company / "truth" / "expansions.parquet")["lever"].to_pylist())
    assert levers == {"seat", "tier", "cross_sell", "premium", "usage", "services"}
    kinds = set(pq.read_table(company / "invoice_lines.parquet")["kind"].to_pylist())
    assert kinds == {"subscription", "usage", "one_time"}
    currencies = set(pq.read_table(company / "invoice_lines.parquet")["currency"].to_pylist())
    assert currencies == {"USD", "EUR", "GBP"}


def test_previews_come_the_month_before_an_upgrade(company: Path) -> None:
    """Product behaviour leads revenue: accounts preview the next tier the month before they upgrade."""
    truth = pq.read_table(company / "truth" / "expansions.parquet").to_pylist()
    events = pq.read_table(company / "events.parquet", columns=["ts", "account_id", "event"],
                           filters=[("event", "=", "feature_previewed")]).to_pylist()
    previewed = {(e["account_id"], f"{e['ts'].year:04d}-{e['ts'].month:02d}") for e in events}

    def month_before(label: str) -> str:
        year, month = map(int, label.split("-"))
        return f"{year - (month == 1):04d}-{(month - 2) % 12 + 1:02d}"

    upgrades = [t for t in truth if t["lever"] == "tier"]
    led = sum((t["account_id"], month_before(t["month"])) in previewed for t in upgrades)
    assert len(upgrades) > 20
    assert led / len(upgrades) > 0.5
    seats = [t for t in truth if t["lever"] == "seat"]
    baseline = sum((t["account_id"], month_before(t["month"])) in previewed for t in seats) / len(seats)
    assert baseline < 0.25


#: Each profile's bands for NRR, GRR and monthly logo churn, each the mean of the last 12 months of a 2,000-account,
#: 30-month company. The first three are published benchmarks: PLG/SMB NRR ≈ 100–105%, GRR ≈ 80–88%, monthly logo
#: churn 2–4%; mid-market NRR ≈ 105–115%, GRR ≈ 88–92%; enterprise NRR ≈ 115–130%, GRR ≥ 92%. The others are the
#: ranges measured over seeds 1–20, rounded outwards (docs/simulator.md).
BANDS = {
    "plg": ((1.00, 1.05), (0.80, 0.88), (0.02, 0.04)),
    "mid_market": ((1.05, 1.15), (0.88, 0.92), (0.0, 1.0)),
    "enterprise": ((1.15, 1.30), (0.92, 1.0), (0.0, 1.0)),
    "annual_contracts": ((1.10, 1.25), (0.94, 1.0), (0.0, 0.01)),
    "usage_led": ((1.10, 1.25), (0.86, 0.92), (0.008, 0.016)),
    "seasonal_smb": ((1.00, 1.12), (0.84, 0.90), (0.015, 0.03)),
}


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("profile", list(BANDS))
def test_profiles_land_in_their_bands(profile: str, seed: int, tmp_path: Path) -> None:
    tables = simulate_tables(2000, 30, seed=seed, profile=profile)
    metrics = revenue_of(write_folder(tables, tmp_path, "parquet", BILLING_TABLES))["metrics"].to_pylist()
    last_year = metrics[-12:]
    nrr = statistics.mean(m["nrr_12m"] for m in last_year)
    grr = statistics.mean(m["grr_12m"] for m in last_year)
    churn = statistics.mean(m["logo_churn_rate"] for m in last_year)
    (nrr_lo, nrr_hi), (grr_lo, grr_hi), (churn_lo, churn_hi) = BANDS[profile]
    assert nrr_lo <= nrr <= nrr_hi, f"NRR {nrr:.3f}"
    assert grr_lo <= grr <= grr_hi, f"GRR {grr:.3f}"
    assert churn_lo <= churn <= churn_hi, f"logo churn {churn:.3%}"
