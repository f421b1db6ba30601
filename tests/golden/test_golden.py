"""Hand-computed and published worked examples, one YAML file each: the exact movements and metrics expected."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_folder, write_folder

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))


def _money(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path: Path, tmp_path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    assert case.get("source"), f"{path.name} must say where its numbers come from"
    data = write_folder(tmp_path / "data", case["tables"])
    result = run_folder(data, case.get("as_of"), **case.get("policy", {}))
    expect = case["expect"]

    if "movements" in expect:
        got = sorted(
            (r["month"], r["account_id"], r["type"], r["source"], r["amount"])
            for r in result.tables["movements"].to_pylist()
        )
        want = sorted((str(m), a, t, s, _money(v)) for m, a, t, s, v in expect["movements"])
        assert got == want

    if "coupon_mrr" in expect:
        got_coupons = [(r["month"], r["coupon"], r["accounts"], r["mrr"], r["discount"])
                       for r in result.tables["coupon_mrr"].to_pylist()]
        assert got_coupons == [(str(m), c, n, _money(v), _money(d)) for m, c, n, v, d in expect["coupon_mrr"]]

    if "mrr" in expect:
        by_month = {r["month"]: r["mrr"] for r in result.tables["metrics"].to_pylist()}
        for month, value in expect["mrr"].items():
            assert by_month[str(month)] == _money(value), month

    for month, values in expect.get("metrics", {}).items():
        row = next(r for r in result.tables["metrics"].to_pylist() if r["month"] == str(month))
        for key, value in values.items():
            if value is None:
                assert row[key] is None, (month, key)
            elif isinstance(row[key], Decimal):
                assert row[key] == _money(value), (month, key)
            else:
                assert row[key] == pytest.approx(value, abs=1e-9), (month, key)
