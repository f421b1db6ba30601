"""What an account is, as features: attributes and product tiers at each date, hand-checked; learned as
categories, saved and read back, and said in words."""

from __future__ import annotations

import datetime as dt

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from upcurve.scoring import FEATURES, AccountScorer, ScoringConfig, account_context
from upcurve.scoring.models import categories_of, feature_matrix
from upcurve.scoring.reasons import describe


def _tables() -> dict[str, ibis.Table]:
    accounts = pa.table({"account_id": ["A", "B"], "name": ["a", "b"], "owner": ["ann", "bob"],
                         "segment": ["smb", "enterprise"], "payment method": ["card", None],
                         "employees": [12, 4000], "created_at": pa.array([dt.date(2024, 1, 1)] * 2)})
    plans = pa.table({"plan_id": ["starter", "team", "addon"], "product": ["Core", "Core", "Add-on"],
                      "tier_rank": [1, 2, 1]})
    d = dt.date
    lines = pa.table({
        "account_id": ["A", "A", "B", "B"], "plan_id": ["starter", "team", "team", "addon"],
        "kind": ["subscription"] * 4,
        "period_start": pa.array([d(2024, 1, 1), d(2024, 3, 1), d(2024, 1, 1), d(2024, 2, 1)]),
        "period_end": pa.array([d(2024, 3, 1), d(2024, 4, 1), d(2025, 1, 1), d(2024, 3, 1)]),
    })
    return {"accounts": ibis.memtable(accounts), "plans": ibis.memtable(plans), "invoice_lines": ibis.memtable(lines)}


def test_attributes_and_product_tiers_at_each_date() -> None:
    found = account_context(_tables(), [dt.date(2024, 2, 15), dt.date(2024, 3, 15)]).to_pyarrow()
    rows = {(r["account_id"], r["as_of"]): r for r in found.to_pylist()}
    assert set(found.column_names) == {"as_of", "account_id", "attribute_segment", "attribute_payment_method",
                                       "attribute_employees", "product_tier_add_on", "product_tier_core"}
    a_feb, a_mar = rows[("A", dt.date(2024, 2, 15))], rows[("A", dt.date(2024, 3, 15))]
    assert a_feb["product_tier_core"] == 1 and a_mar["product_tier_core"] == 2  # upgraded from starter to team
    assert a_feb["product_tier_add_on"] == 0 and a_feb["attribute_segment"] == "smb"
    b_feb, b_mar = rows[("B", dt.date(2024, 2, 15))], rows[("B", dt.date(2024, 3, 15))]
    assert b_feb["product_tier_add_on"] == 1 and b_mar["product_tier_add_on"] == 0  # its add-on ended 1 March
    assert b_feb["attribute_payment_method"] is None and b_feb["attribute_employees"] == 4000


def test_a_column_of_the_users_own_on_the_invoice_lines_changes_no_tier() -> None:
    """Invoice lines keep the columns a user adds; one named as the plans' (``product``, ``tier_rank``) or as the
    context's (``as_of``) is not read in their place."""
    dates = [dt.date(2024, 2, 15), dt.date(2024, 3, 15)]
    extra = _tables()
    extra["invoice_lines"] = extra["invoice_lines"].mutate(product=ibis.literal("something else"),
                                                           tier_rank=ibis.literal(9),
                                                           as_of=ibis.literal(dt.date(2030, 1, 1)))
    at = pa.table({"as_of": pa.array(dates), "account_id": ["A", "B"]})
    for pairs in (None, at):  # every account at every date, and some accounts at some dates
        def rows(tables: dict[str, ibis.Table], pairs: pa.Table | None = pairs) -> list[dict]:
            found = account_context(tables, dates, at=None if pairs is None else ibis.memtable(pairs)).to_pyarrow()
            return found.sort_by([("as_of", "ascending"), ("account_id", "ascending")]).to_pylist()

        expected = rows(_tables())
        assert rows(extra) == expected and any(r["product_tier_core"] > 0 for r in expected)


def test_some_accounts_at_some_dates_are_described_as_among_every_account() -> None:
    """``at``: only those dates and accounts, each described exactly as among every account at each date."""
    dates = [dt.date(2024, 2, 15), dt.date(2024, 3, 15)]
    every = account_context(_tables(), dates).to_pyarrow()
    at = pa.table({"as_of": pa.array([dates[1], dates[0]]), "account_id": ["A", "B"]})
    some = account_context(_tables(), dates, at=ibis.memtable(at)).to_pyarrow()
    assert some.column_names == every.column_names and some.num_rows == 2
    wanted = {(r["as_of"], r["account_id"]) for r in at.to_pylist()}
    expected = [r for r in every.to_pylist() if (r["as_of"], r["account_id"]) in wanted]
    assert sorted(some.to_pylist(), key=str) == sorted(expected, key=str)
    # a date among none of ``dates`` is described as at that date: ``dates`` is not read
    january = pa.table({"as_of": pa.array([dt.date(2024, 1, 15)]), "account_id": ["A"]})
    alone = account_context(_tables(), dates, at=ibis.memtable(january)).to_pyarrow().to_pylist()
    assert alone == account_context(_tables(), [dt.date(2024, 1, 15)]).to_pyarrow().filter(
        pc.equal(pc.field("account_id"), "A")).to_pylist()
    assert alone[0]["product_tier_core"] == 1  # starter, not "none held"


def test_categories_are_codes_and_an_unseen_value_is_empty() -> None:
    frame = pa.table({"attribute_segment": ["smb", "enterprise", None, "smb"], "mrr_cents": [1, 2, 3, 4]})
    categories = categories_of(frame, ["attribute_segment"])
    assert categories == {"attribute_segment": ["enterprise", "smb"]}
    later = pa.table({"attribute_segment": ["smb", "partner"]})
    X = feature_matrix(later, ["attribute_segment"], categories)
    assert X[0, 0] == 1.0 and np.isnan(X[1, 0])
    assert describe("attribute_segment", 1.0, categories=categories) == "segment: smb"
    assert describe("product_tier_core", 2.0) == "core tier 2" and describe("product_tier_core", 0.0) == \
        "core tier: not held"
    wide = pa.table({"attribute_note": [f"note {i}" for i in range(101)]})
    assert categories_of(wide, ["attribute_note"]) == {}  # free text is no category


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_a_segment_that_drives_churn_is_learned_saved_and_said(kind: str, tmp_path) -> None:
    rng = np.random.default_rng(5)
    n_accounts, months = 400, 14
    n = n_accounts * months
    segment = np.array(["smb", "enterprise"], dtype=object)[np.tile(rng.integers(0, 2, n_accounts), months)]
    columns = {name: np.full(n, np.nan) for name in FEATURES if name != "outcome_level"}
    columns["mrr_cents"] = np.full(n, 10_000.0)
    churned = rng.random(n) < np.where(segment == "smb", 0.3, 0.02)
    frame = pa.table({
        **columns, "outcome_status": pa.nulls(n, pa.string()),
        "account_id": [f"A{i % n_accounts}" for i in range(n)],
        "snapshot_idx": np.repeat(np.arange(24_000, 24_000 + months), n_accounts),
        "label_expansion": rng.random(n) < 0.2, "label_churn": churned,
        "net_expansion_cents": np.full(n, 1_000), "expansion_lever": pa.nulls(n, pa.string()),
        "attribute_segment": segment,
    })
    config = ScoringConfig(model=kind, min_training_months=3, calibration_months=2, min_positives=5)
    scorer = AccountScorer(config).fit(frame)
    assert scorer.features_ == [*FEATURES, "attribute_segment"]
    assert scorer.card_["categories"] == {"attribute_segment": ["enterprise", "smb"]}
    scorer.save(tmp_path / "m")
    again = AccountScorer.load(tmp_path / "m", config)
    last = frame.slice(n - n_accounts)
    first, second = scorer.score(last), again.score(last)
    assert first.to_pylist() == second.to_pylist()
    risk = np.asarray(first["churn_risk"].to_pylist())
    smb = np.asarray(last["attribute_segment"].to_pylist()) == "smb"
    # the trees split the category; the logistic model weighs each category as a yes/no column of its own
    assert risk[smb].mean() > 5 * risk[~smb].mean()
    assert all("segment: smb" in r for r, s in zip(first["churn_reasons"].to_pylist(), smb, strict=True) if s)
    model = scorer.models_["churn"]
    contributions = model.contributions(feature_matrix(last, scorer.features_, scorer.categories_))
    assert np.allclose(contributions.sum(axis=1), model.log_odds(feature_matrix(last, scorer.features_,
                                                                                 scorer.categories_)))
    if kind == "logistic":  # a category it never saw weighs nothing
        unseen = last.set_column(last.column_names.index("attribute_segment"), "attribute_segment",
                                 pa.array(["public sector"] * n_accounts))
        at, extra = scorer.features_.index("attribute_segment"), slice(model.n_features_in_, None)
        got = model.contributions(feature_matrix(unseen, scorer.features_, scorer.categories_))[:, at]
        # every yes/no column of the segment is no: each weighs coefficient × (0 − its mean) ÷ its scale
        assert np.allclose(got, (model.coef_[extra] * -model.mean_[extra] / model.scale_[extra]).sum())
