"""Reporting in a currency other than the one ``fx_rates`` are quoted in: cross rates, to the cent.

Where the numbers come from: hand calculations written beside each case, a property against an exact conversion
done here in Python, and the simulated company (whose rates are quoted in USD) reported in EUR and in USD.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.conftest import run_folder, write_folder
from upcurve import cli
from upcurve.cli import app
from upcurve.config import RevenuePolicy
from upcurve.contract import read_folder, typed_tables
from upcurve.revenue import line_months, month_calendar
from upcurve.simulate import simulate_company
from upcurve.sources.folder import check_folder

HEADER = "line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end\n"

# Hand calculation, reporting in EUR from rates quoted in USD (EUR 1.10 USD in January, 1.20 from February; GBP
# 1.25 USD throughout, its only rate being January's):
#   U pays $110 a month:  Jan 110 ÷ 1.10 = €100.00; Feb 110 ÷ 1.20 = 91.666… = €91.67, at January's rates €100.00,
#                         so fx = 91.67 − 100.00 = −€8.33; Mar: no rate, February's carries: €91.67, no movement.
#   G pays £100 a month:  Jan 100 × 1.25 ÷ 1.10 = 113.636… = €113.64; Feb 125 ÷ 1.20 = 104.166… = €104.17,
#                         fx = 104.17 − 113.64 = −€9.47; Mar €104.17.
#   H pays 90 over three months with an empty currency: the reporting currency, €30.00 a month.
#   A one-time $600 in February is 600 ÷ 1.20 = €500.00 of services revenue.
# MRR: Jan 100.00 + 113.64 + 30 = 243.64; Feb 91.67 + 104.17 + 30 = 225.84; Mar 225.84. Feb fx: −17.80.
HAND = {
    "invoice_lines": HEADER + """\
        u1,U,starter_m,subscription,1,110,USD,2024-01-01,2024-02-01
        u2,U,starter_m,subscription,1,110,USD,2024-02-01,2024-03-01
        u3,U,starter_m,subscription,1,110,USD,2024-03-01,2024-04-01
        g1,G,starter_m,subscription,1,100,GBP,2024-01-01,2024-02-01
        g2,G,starter_m,subscription,1,100,GBP,2024-02-01,2024-03-01
        g3,G,starter_m,subscription,1,100,gbp,2024-03-01,2024-04-01
        h1,H,starter_m,subscription,1,90,,2024-01-01,2024-04-01
        s1,U,,one_time,1,600,USD,2024-02-10,2024-02-11
        """,
    "fx_rates": """\
        month,currency,rate
        2024-01,EUR,1.10
        2024-02,EUR,1.20
        2024-01,GBP,1.25
        """,
}


def _cents(value: str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


@pytest.mark.parametrize("policy", [{}, {"fx_quote_currency": "usd"}], ids=["inferred", "set"])
def test_hand_computed_cross_rates_to_the_cent(tmp_path: Path, policy: dict[str, str]) -> None:
    data = write_folder(tmp_path / "data", HAND)
    result = run_folder(data, "2024-03-31", reporting_currency="EUR", **policy)
    metrics = {r["month"]: r for r in result.tables["metrics"].to_pylist()}
    assert {m: metrics[m]["mrr"] for m in metrics} == {
        "2024-01": _cents("243.64"), "2024-02": _cents("225.84"), "2024-03": _cents("225.84")}
    assert metrics["2024-02"]["fx"] == _cents("-17.80")
    assert metrics["2024-02"]["services_revenue"] == _cents("500.00")
    moves = sorted((r["month"], r["account_id"], r["type"], r["amount"])
                   for r in result.tables["movements"].to_pylist())
    assert moves == sorted([
        ("2024-01", "U", "new", _cents("100.00")), ("2024-01", "G", "new", _cents("113.64")),
        ("2024-01", "H", "new", _cents("30.00")),
        ("2024-02", "U", "fx", _cents("-8.33")), ("2024-02", "G", "fx", _cents("-9.47")),
    ])
    said = [n for n in result.notes if "cross rates" in n]
    assert len(said) == 1 and "quoted in USD" in said[0] and "converted to EUR" in said[0]


def test_rates_quoted_in_the_reporting_currency_keep_their_meaning(tmp_path: Path) -> None:
    """Reported in USD, the same data needs no cross rate: $110 + £100 × 1.25 + $30 = $265.00 in January."""
    data = write_folder(tmp_path / "data", HAND)
    result = run_folder(data, "2024-03-31")
    assert result.tables["metrics"].to_pylist()[0]["mrr"] == _cents("265.00")
    assert not [n for n in result.notes if "cross rates" in n]


def test_the_quote_currency_is_inferred_and_said(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", HAND)
    problems, _ = check_folder(data, ibis.duckdb.connect(), reporting_currency="EUR")
    assert [p.severity for p in problems] == ["note"]
    assert "quoted in USD" in problems[0].describe() and "fx_quote_currency" in problems[0].describe()


def _invoke(args: list[str]) -> tuple[int, str]:
    """Run the command line on consoles wide enough that no problem wraps (they are made at import, so COLUMNS set
    now would not reach them)."""
    with pytest.MonkeyPatch.context() as patch:
        for console in (cli.console, cli.err):
            patch.setattr(console, "width", 1000)
        result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def test_no_rates_for_the_reporting_currency_is_a_contract_error(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", {**HAND, "fx_rates": "month,currency,rate\n2024-01,GBP,1.25\n"})
    settings_file = tmp_path / "upcurve.yaml"
    settings_file.write_text("revenue:\n  fx_quote_currency: USD\n")
    code, output = _invoke(["run", str(data), "--currency", "EUR", "--config", str(settings_file),
                            "--out", str(tmp_path / "out")])
    assert code == 2, output
    flat = " ".join(output.split())
    assert "no rates for the reporting currency EUR" in flat and "fx_rates" in flat
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("lines", "said"), [
    ("u1,U,starter_m,subscription,1,110,USD,2024-01-01,2024-02-01\n"
     "c1,C,starter_m,subscription,1,140,CAD,2024-01-01,2024-02-01\n", "2 currencies without rates: CAD, USD"),
    ("e1,E,starter_m,subscription,1,100,EUR,2024-01-01,2024-02-01\n"
     "g1,G,starter_m,subscription,1,100,GBP,2024-01-01,2024-02-01\n", "every currency of invoice_lines has rates"),
], ids=["two-without-rates", "none-without-rates"])
def test_a_quote_currency_that_cannot_be_told_is_a_contract_error(tmp_path: Path, lines: str, said: str) -> None:
    data = write_folder(tmp_path / "data", {"invoice_lines": HEADER + lines, "fx_rates": HAND["fx_rates"]})
    for command in (["validate", str(data)], ["run", str(data), "--out", str(tmp_path / "out")]):
        code, output = _invoke([*command, "--currency", "EUR"])
        assert code == 2, output
        flat = " ".join(output.split())
        assert said in flat and "fx_rates" in flat and "revenue.fx_quote_currency" in flat


def test_a_rate_other_than_1_for_the_quote_currency_is_a_contract_error(tmp_path: Path) -> None:
    fx = HAND["fx_rates"] + "2024-01,USD,1.02\n"
    data = write_folder(tmp_path / "data", {**HAND, "fx_rates": fx})
    problems, _ = check_folder(data, ibis.duckdb.connect(), reporting_currency="EUR", fx_quote_currency="USD")
    assert [(p.file, p.column, p.count, p.values) for p in problems if p.severity == "error"] == [
        ("fx_rates.csv", "rate", 1, ("1.02",))]


# --- the property: in the reporting currency through cross rates = in the quote currency ÷ its rate ------------

START = dt.date(2024, 1, 1)
PLANS = pa.table({"plan_id": ["p"], "product": ["core"], "tier_rank": [1], "pricing": ["flat"]})
RATED = ("EUR", "GBP", "JPY")  # EUR is the reporting currency; the rates are quoted in USD

line = st.tuples(
    st.sampled_from(["USD", "EUR", None, "GBP", "JPY"]),
    st.integers(0, 900_000),  # amount in cents
    st.integers(0, 17),  # first month
    st.sampled_from([1, 1, 3, 12]),  # months of service
)
rates = st.dictionaries(st.integers(0, 20), st.floats(0.004, 2.5, allow_nan=False), min_size=1, max_size=8)


def _month(idx: int) -> dt.date:
    return dt.date(START.year + idx // 12, idx % 12 + 1, 1)


def _rate_at(known: dict[int, float], month: int) -> float:
    """The month's rate: the latest at or before it, else the first one."""
    earlier = [m for m in known if m <= month]
    return known[max(earlier)] if earlier else known[min(known)]


def _ledger(lines: list, fx: dict[str, dict[int, float]], months: int, currency: str) -> dict[tuple, tuple]:
    table = pa.table({
        "line_id": [str(i) for i in range(len(lines))], "account_id": ["A"] * len(lines),
        "plan_id": ["p"] * len(lines), "kind": ["subscription"] * len(lines), "quantity": [1.0] * len(lines),
        "amount": [cents / 100 for _, cents, _, _ in lines], "currency": [c for c, _, _, _ in lines],
        "period_start": [_month(s) for _, _, s, _ in lines], "period_end": [_month(s + n) for _, _, s, n in lines],
    })
    rows = [(_month(m), c, r) for c, known in fx.items() for m, r in known.items()]
    fx_table = pa.table({"month": [r[0] for r in rows], "currency": [r[1] for r in rows],
                         "rate": [r[2] for r in rows]})
    cal = month_calendar(START, _month(months) - dt.timedelta(days=1))
    lm = line_months(ibis.memtable(table), ibis.memtable(PLANS), ibis.memtable(fx_table), cal,
                     policy=RevenuePolicy(reporting_currency=currency))
    base = START.year * 12 + START.month - 1
    return {(int(r["line_id"]), r["month_idx"] - base): (r["mrr_cents"], r["cc_mrr_cents"])
            for r in ibis.duckdb.connect().to_pyarrow(lm).to_pylist()}


def _exact(currency: str | None, monthly: float, fx: dict[str, dict[int, float]], month: int) -> float:
    """``monthly`` (cents) in EUR at ``month``'s rates: to USD first, then ÷ EUR's rate in USD."""
    if currency in (None, "EUR"):
        return monthly  # empty: the reporting currency
    to_usd = monthly if currency == "USD" else monthly * _rate_at(fx[currency], month)
    return to_usd / _rate_at(fx["EUR"], month)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, min_size=1, max_size=12), st.tuples(*[rates for _ in RATED]), st.integers(1, 24))
def test_cross_rates_equal_converting_to_the_quote_currency_then_dividing(lines, legs, months) -> None:
    fx = dict(zip(RATED, legs, strict=True))
    in_eur = _ledger(lines, fx, months, "EUR")
    # the same lines reported in USD, the quote currency (an empty currency meant EUR above)
    in_usd = _ledger([("EUR" if c is None else c, *rest) for c, *rest in lines], fx, months, "USD")
    expected = set()
    for i, (currency, cents, start, length) in enumerate(lines):
        monthly = cents / length  # whole months: the service period is a calendar-month difference
        for m in range(start, min(start + length, months)):
            expected.add((i, m))
            # mrr_cents at the month's rates; cc_mrr_cents at the previous month's, both legs (month 0: its own)
            for got, usd, month in zip(in_eur[(i, m)], in_usd[(i, m)], (m, max(m - 1, 0)), strict=True):
                exact = _exact(currency, monthly, fx, month)
                slack = 1e-6 * max(1.0, abs(exact))  # float arithmetic on amounts up to 9,000 a line
                assert abs(got - exact) <= 0.5 + slack, (i, m, month)  # rounded once, to the cent
                # from the USD report ÷ EUR's rate: rounded twice, ½ cent in EUR and ½ cent in USD ÷ the rate
                eur = _rate_at(fx["EUR"], month)
                assert abs(got - usd / eur) <= 0.5 + 0.5 / eur + slack, (i, m, month)
    assert set(in_eur) == set(in_usd) == expected


# --- the simulated company: rates quoted in USD, reported in EUR ------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "data"
    simulate_company(folder, accounts=30, months=8, seed=1)
    return folder


def test_the_demo_company_reports_in_eur(demo: Path, tmp_path: Path) -> None:
    results = {}
    for currency in ("EUR", "USD"):
        code, output = _invoke(["run", str(demo), "--currency", currency, "--as-of", "2023-08-31",
                                "--out", str(tmp_path / currency)])
        assert code == 0, output
        assert ("through cross rates" in " ".join(output.split())) == (currency == "EUR")
        results[currency] = pq.read_table(tmp_path / currency / "metrics.parquet").to_pylist()
    # within a cent per line-month: each line-month is rounded once in EUR, and once in USD before ÷ the rate
    tables = typed_tables(read_folder(demo, ibis.duckdb.connect()), names=["plans", "invoice_lines", "fx_rates"])
    lm = line_months(tables["invoice_lines"], tables["plans"], tables["fx_rates"],
                     month_calendar(dt.date(2023, 1, 1), dt.date(2023, 8, 31)), policy=RevenuePolicy())
    counted = lm.group_by("month_idx").aggregate(n=lm.count()).to_pyarrow().to_pylist()
    line_count = {f"{r['month_idx'] // 12:04d}-{r['month_idx'] % 12 + 1:02d}": r["n"] for r in counted}
    fx = pq.read_table(demo / "fx_rates.parquet").to_pylist()
    eur = {r["month"]: r["rate"] for r in fx if r["currency"] == "EUR"}
    assert len(results["EUR"]) == len(results["USD"]) == 8
    for in_eur, in_usd in zip(results["EUR"], results["USD"], strict=True):
        month = in_eur["month"]
        assert in_eur["mrr"] > 0
        assert abs(float(in_eur["mrr"]) - float(in_usd["mrr"]) / eur[month]) <= 0.01 * line_count[month], month


def test_demo_line_months_in_eur_are_usd_divided_by_the_eur_rate(demo: Path) -> None:
    con = ibis.duckdb.connect()
    tables = typed_tables(read_folder(demo, con), names=["plans", "invoice_lines", "fx_rates"])
    cal = month_calendar(dt.date(2023, 1, 1), dt.date(2023, 8, 31))
    got = {}
    for currency in ("EUR", "USD"):
        lm = line_months(tables["invoice_lines"], tables["plans"], tables["fx_rates"], cal,
                         policy=RevenuePolicy(reporting_currency=currency))
        got[currency] = {(r["line_id"], r["month_idx"]): r for r in con.to_pyarrow(lm).to_pylist()}
    fx = pq.read_table(demo / "fx_rates.parquet").to_pylist()
    eur = {int(r["month"][:4]) * 12 + int(r["month"][5:]) - 1: r["rate"] for r in fx if r["currency"] == "EUR"}
    assert got["EUR"].keys() == got["USD"].keys() and got["EUR"]
    for key, row in got["EUR"].items():
        usd = got["USD"][key]
        assert abs(row["mrr_cents"] - usd["mrr_cents"] / eur[key[1]]) <= 1, key
        assert abs(row["cc_mrr_cents"] - usd["cc_mrr_cents"] / eur.get(key[1] - 1, eur[key[1]])) <= 1, key


# --- money in reasons: the run's reporting currency, never a hard-coded $ ----------------------------------------

_MRR = re.compile(r"\bMRR (-?[\d,]+)(?: ([A-Z]{3}))?")


@pytest.fixture(scope="module")
def scored_in_eur(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A company with history enough for a model (whose reasons name amounts), run in EUR through the CLI."""
    root = tmp_path_factory.mktemp("scored")
    simulate_company(root / "data", accounts=80, months=18, seed=1)
    code, output = _invoke(["run", str(root / "data"), "--currency", "EUR", "--out", str(root / "out")])
    assert code == 0, output
    return root / "out", output


def _reasons(out: Path) -> list[str]:
    accounts = pq.read_table(out / "accounts.parquet")
    worklist = pq.read_table(out / "worklist.parquet")
    texts = accounts["reasons"].to_pylist() + accounts["churn_reasons"].to_pylist() + worklist["reasons"].to_pylist()
    return [t for t in texts if t]


def test_a_run_in_eur_shows_no_dollar_sign(scored_in_eur: tuple[Path, str]) -> None:
    out, output = scored_in_eur
    reasons = _reasons(out)
    assert any(_MRR.search(t) for t in reasons), "the model's reasons should name an amount of MRR"
    assert not [t for t in reasons if "$" in t]
    assert "$" not in output


def test_a_run_in_eur_shows_money_in_eur(scored_in_eur: tuple[Path, str]) -> None:
    found = [m for t in _reasons(scored_in_eur[0]) for m in _MRR.finditer(t)]
    assert found and {m.group(2) for m in found} == {"EUR"}
