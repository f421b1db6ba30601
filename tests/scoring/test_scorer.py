"""The account scorer: reasons that add up, calibration that keeps order, the fallback, saving, the worklist."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.conftest import run_folder, write_folder
from upcurve.cli import app
from upcurve.config import RevenuePolicy
from upcurve.engine import HELD_CATALOG, cached, connect
from upcurve.errors import UpcurveError
from upcurve.months import month_end
from upcurve.plays import weekly_worklist
from upcurve.revenue import REVENUE_TABLES, revenue_tables
from upcurve.scoring import (
    FEATURES,
    SCORE_COLUMNS,
    AccountScorer,
    ColdStartRules,
    PlattCalibration,
    PropensityModel,
    ScoringConfig,
    draw_backtest,
    fit_scorer,
    labelled_snapshots,
    replay,
    rule_scores,
    snapshot_health,
)
from upcurve.scoring.context import context_columns, context_label
from upcurve.scoring.reasons import (
    FEATURE_HINTS,
    FEATURE_LABELS,
    WHEN_EMPTY,
    describe,
    probability_contributions,
    top_reasons,
)
from upcurve.signals.health import HealthConfig
from upcurve.simulate import simulate_company
from upcurve.sources import load_folder
from upcurve.usecases import RunResult, backtest, run, train
from upcurve.workspace import Store
from upcurve.workspace.backtests import latest_backtest


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scored")
    simulate_company(out, accounts=300, months=24, seed=11)
    return out


def _synthetic(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    logit = 1.8 * X[:, 0] - 1.2 * X[:, 3] - 1.0
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_contributions_and_base_value_sum_to_the_model_output(kind: str) -> None:
    X, y = _synthetic()
    model = PropensityModel(kind=kind, n_estimators=60).fit(X[:1000], y[:1000])
    contrib = model.contributions(X[1000:])
    assert contrib.shape == (500, 6)
    np.testing.assert_allclose(contrib.sum(axis=1), model.log_odds(X[1000:]), atol=1e-9)
    calibration = PlattCalibration(0.8, -0.3)
    points, base = probability_contributions(contrib, calibration.a, calibration.b)
    np.testing.assert_allclose(base + points.sum(axis=1), calibration(contrib.sum(axis=1)), atol=1e-12)
    moved = np.abs(points) > 1e-12
    assert (np.sign(points[moved]) == np.sign(contrib[:, :-1][moved])).all()  # each keeps its feature's sign
    # contributions that cancel out: each gets its first-order effect, with its own sign
    even, _ = probability_contributions(np.array([[0.5, -0.5, 0.1]]), 1.0, 0.0)
    assert even[0, 0] > 0 > even[0, 1] and even.sum() == pytest.approx(0.0)
    # the signal the data was made from explains the most, with the sign it was made with
    strongest = np.abs(contrib[:, :-1]).mean(axis=0)
    assert strongest.argmax() == 0
    assert np.corrcoef(X[1000:, 0], contrib[:, 0])[0, 1] > 0.8


def test_calibration_keeps_the_order_and_matches_held_out_rates() -> None:
    X, y = _synthetic(4000, seed=1)
    # a model trained on rebalanced data overstates the rate: calibration on later rows brings it back
    keep = (y == 1) | (np.arange(len(y)) % 3 == 0)
    train = np.arange(len(y)) < 2000
    model = PropensityModel(kind="logistic").fit(X[train & keep], y[train & keep])
    calib, held = (np.arange(len(y)) >= 2000) & (np.arange(len(y)) < 3000), np.arange(len(y)) >= 3000
    calibration = PlattCalibration().fit(model.log_odds(X[calib]), y[calib])
    raw = model.log_odds(X[held])
    p = calibration(raw)
    assert calibration.a > 0
    assert (np.diff(p[np.argsort(raw)]) >= 0).all()  # monotone: no account changes place
    assert abs(p.mean() - y[held].mean()) < abs(model.predict_proba(X[held]).mean() - y[held].mean())
    observed = [y[held][chunk].mean() for chunk in np.array_split(np.argsort(p), 5)]
    assert all(b >= a for a, b in itertools.pairwise(observed))  # held-out rates rise bin by bin


def test_reasons_name_real_features_in_words() -> None:
    assert set(FEATURES) <= set(FEATURE_LABELS)
    text = top_reasons(["seat_saturation", "days_until_limit", "flag_premium_gap"],
                       np.array([[0.96, 12.0, 1.0]]), np.array([[0.21, -0.04, 0.08]]))
    assert text == ["+21 points of probability: seat saturation 96% (active users of the seats it pays for); "
                    "+8 points of probability: premium gap: yes; "
                    "-4 points of probability: days until the usage limit 12 days (at its current daily rate)"]
    # an empty value says what it means; under half a point is left out
    assert top_reasons(["days_to_renewal", "seat_saturation", "tickets_30d"], np.array([[np.nan, np.nan, 1.0]]),
                       np.array([[-0.012, 0.3, 0.004]])) == [
        "+30 points of probability: seats not priced on its plans; -1 point of probability: no renewal date"]


_SIZES = st.sampled_from([0.0, -0.0, 0.004, 0.005, 0.015, -0.015, 0.21, -0.21, 0.3, 1.0])
_VALUES = st.sampled_from([np.nan, 0.0, -0.0, 1.0, 12.0, 0.96, -40.0, 123456.0])


@settings(max_examples=150, deadline=None)
@given(data=st.data(), rows=st.integers(0, 6), width=st.integers(1, 5), k=st.integers(1, 4))
def test_reasons_are_each_rows_largest_contributions_in_words(data: st.DataObject, rows: int, width: int,
                                                              k: int) -> None:
    """Row by row as a person would pick them: the ``k`` largest contributions by size, the first of equal sizes
    first, each rounded to whole points and left out at zero; the same value in words wherever it appears."""
    names = data.draw(st.lists(st.sampled_from([*FEATURE_LABELS, "outcome_level", "seat_saturation", "an_input"]),
                               min_size=width, max_size=width))
    contrib = np.array(data.draw(st.lists(st.lists(st.one_of(_SIZES, st.floats(-1, 1)), min_size=width,
                                                   max_size=width), min_size=rows, max_size=rows)),
                       dtype=float).reshape(rows, width)
    values = np.array(data.draw(st.lists(st.lists(st.one_of(_VALUES, st.floats(-1e6, 1e6)), min_size=width,
                                                  max_size=width), min_size=rows, max_size=rows)),
                      dtype=float).reshape(rows, width)
    expected = []
    for row in range(rows):
        largest = sorted(range(width), key=lambda j: -abs(contrib[row, j]))[:k]  # sorted() keeps ties in order
        parts = []
        for j in largest:
            points = round(contrib[row, j] * 100)
            if points:
                value = values[row, j]
                hint = FEATURE_HINTS.get(names[j]) if not np.isnan(value) else None
                parts.append(f"{points:+d} {'point' if abs(points) == 1 else 'points'} of probability: "
                             f"{describe(names[j], value, currency='EUR')}{f' ({hint})' if hint else ''}")
        expected.append("; ".join(parts))
    assert top_reasons(names, values, contrib, k, currency="EUR") == expected
    # probability points: each row as it would be alone, and they add up to its probability
    with_base = np.column_stack([contrib, np.full(rows, -0.7)])
    points, base = probability_contributions(with_base, 0.9, 0.1)
    for row in range(rows):
        alone, alone_base = probability_contributions(with_base[row:row + 1], 0.9, 0.1)
        np.testing.assert_allclose(points[row], alone[0], rtol=1e-12, atol=1e-15)
        assert base[row] == alone_base[0]
    np.testing.assert_allclose(base + points.sum(axis=1),
                               PlattCalibration(0.9, 0.1)(with_base.sum(axis=1)), atol=1e-12)


def test_snapshots_are_learnt_from_labelled_and_in_training_order_whatever_order_they_come_in() -> None:
    from upcurve.scoring.scorer import TRAINING_ORDER, _in_training_order

    rng = np.random.default_rng(3)
    rows = [{"snapshot_idx": int(m), "account_id": f"A{a}", "label_expansion": None if rng.random() < 0.2 else 1}
            for m in range(4) for a in rng.permutation(30)]
    shuffled = pa.Table.from_pylist([rows[i] for i in rng.permutation(len(rows))])
    expected = shuffled.filter(pc.is_valid(shuffled["label_expansion"])).sort_by(TRAINING_ORDER)
    assert _in_training_order(shuffled).equals(expected)
    labelled = expected.filter(pc.is_valid(expected["label_expansion"]))
    assert _in_training_order(labelled) is labelled  # as the engine returns a sample: taken as it comes
    assert _in_training_order(labelled.take(list(range(labelled.num_rows))[::-1])).equals(labelled)


def test_cold_start_rules_by_hand() -> None:
    frame = pa.table({
        "flag_usage_limit": [True, False, False], "flag_seat_saturation": [True, True, False],
        "invited_14d": [2, 0, 0], "new_active_14d": [0, 0, 0], "flag_premium_gap": [False, True, False],
        "flag_core_heavy_no_premium": [False, False, False], "tier_headroom": [1, 0, 1], "products_unowned": [2, 2, 2],
        "login_trend": [10.0, -50.0, None], "health_score": [80.0, 30.0, None], "nps_latest": [9, 3, None],
        "tickets_30d": [0, 4, 0], "adoption_breadth": [0.5, 0.5, 0.2], "outcome_status": [None, None, "behind"],
    })
    s = rule_scores(frame, ColdStartRules())
    assert s["expansion"][0] == pytest.approx(1 - 0.5 * 0.55)  # usage limit, and seats full while inviting
    assert s["expansion"][1] == pytest.approx(0.35)  # premium gap only: seats full but nobody invited
    assert s["lever"] == ["usage", "premium", "services"]  # at the top tier a gap is a premium add-on
    assert s["churn"][1] == pytest.approx(1 - 0.65 * 0.65 * 0.8 * 0.85)
    assert s["churn"][2] == 0.0 and s["churn_reasons"][1].startswith("logins falling")


def test_worklist_by_capacity_with_motions() -> None:
    accounts = pa.table({
        "account_id": ["A", "B", "C", "D", "E"], "name": ["a", "b", "c", "d", "e"],
        "owner": ["ann", "ann", "ann", None, "bob"],
        "mrr_cents": [10_000, 50_000, 20_000, 5_000, 0],
        "expansion_propensity": [0.9, 0.1, 0.5, 0.6, 0.9], "churn_risk": [0.01, 0.4, 0.02, 0.0, 0.5],
        "expected_expansion_mrr_cents": [3_000, 500, 2_500, 1_000, 9_000],
        "recommended_lever": ["seat", "tier", "usage", "cross_sell", "seat"],
        "reasons": ["r1", "r2", "r3", "r4", "r5"], "churn_reasons": ["c1", "c2", "c3", "c4", "c5"],
        "scored_by": ["lightgbm"] * 5,
    })
    w = weekly_worklist(accounts, ScoringConfig(capacity_per_owner=2), as_of=dt.date(2025, 6, 12)).to_pylist()
    # B: 40% × 500.00 = 200.00 at stake to retain; A: 30.00 to expand; C: 25.00 (over ann's capacity); E pays nothing
    assert [(r["account_id"], r["motion"], r["owner_rank"]) for r in w] == [
        ("B", "retain", 1), ("A", "expand", 2), ("D", "expand", 1)]
    assert w[0]["value_at_stake_cents"] == 20_000 and w[0]["reasons"] == "c2" and w[0]["recommended_lever"] is None
    assert w[0]["suggested_play"].startswith("Save play") and w[1]["suggested_play"].startswith("Seat")
    assert w[2]["owner"] == "unassigned" and w[0]["week"] == dt.date(2025, 6, 9)


def test_an_account_likely_to_expand_and_unlikely_to_churn_is_never_retain() -> None:
    accounts = pa.table({
        "account_id": ["A", "B", "C"], "name": ["a", "b", "c"], "owner": ["ann", "ann", "ann"],
        "mrr_cents": [100_000, 100_000, 100_000],
        # A: 95% to expand, 4.7% to churn, but a small expected expansion: R = 4,700 > E = 3,000
        "expansion_propensity": [0.95, 0.2, 0.3], "churn_risk": [0.047, 0.25, 0.25],
        "expected_expansion_mrr_cents": [3_000, 1_000, 40_000],
        "recommended_lever": ["seat", "tier", "usage"], "reasons": ["r1", "r2", "r3"],
        "churn_reasons": ["c1", "c2", "c3"], "scored_by": ["expansion: lightgbm; churn: rules"] * 3,
        "expansion_scored_by": ["lightgbm"] * 3, "churn_scored_by": ["rules"] * 3,
    })
    w = {r["account_id"]: r for r in weekly_worklist(accounts, ScoringConfig(), as_of=dt.date(2025, 6, 12))
         .to_pylist()}
    assert w["A"]["motion"] == "expand" and w["A"]["value_at_stake_cents"] == 3_000  # the value of expanding it
    # B: churn likelier (25% > 20%) and the larger money (25,000 > 1,000): retain, scored by the churn model
    assert w["B"]["motion"] == "retain" and w["B"]["value_at_stake_cents"] == 25_000
    assert w["B"]["scored_by"] == "rules" and w["A"]["scored_by"] == "lightgbm"
    # C: churn likelier but expansion the larger money (40,000 > 25,000): expand
    assert w["C"]["motion"] == "expand" and w["C"]["value_at_stake_cents"] == 40_000


def test_separate_motions_give_each_owner_an_expand_and_a_retain_list() -> None:
    n = 6
    accounts = pa.table({
        "account_id": [f"A{i}" for i in range(n)], "name": ["x"] * n, "owner": ["ann"] * n,
        "mrr_cents": [100_000] * n, "expansion_propensity": [0.9, 0.8, 0.7, 0.05, 0.05, 0.05],
        "churn_risk": [0.01, 0.01, 0.01, 0.6, 0.5, 0.4],
        "expected_expansion_mrr_cents": [90_000, 80_000, 70_000, 100, 100, 100],
        "recommended_lever": ["seat"] * n, "reasons": ["r"] * n, "churn_reasons": ["c"] * n,
        "scored_by": ["lightgbm"] * n,
    })
    together = weekly_worklist(accounts, ScoringConfig(capacity_per_owner=2), as_of=dt.date(2025, 6, 12))
    assert together["account_id"].to_pylist() == ["A0", "A1"]
    apart = weekly_worklist(accounts, ScoringConfig(capacity_per_owner=2, separate_motions=True),
                            as_of=dt.date(2025, 6, 12)).to_pylist()
    assert [(r["account_id"], r["motion"], r["owner_rank"]) for r in apart] == [
        ("A0", "expand", 1), ("A1", "expand", 2), ("A3", "retain", 1), ("A4", "retain", 2)]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def scored(company: Path, models: Path) -> RunResult:
    return run(company, models_dir=models)


def test_a_company_with_history_gets_model_scores_reasons_and_a_worklist(company: Path, models: Path,
                                                                          scored: RunResult) -> None:
    result = scored
    accounts = result.tables["accounts"]
    paying = [r for r in accounts.to_pylist() if r["mrr"] and r["mrr"] > 0]
    # model: auto learns each outcome with the kind that ranked the calibration months better, and says which
    chosen = {t: result.model_card["targets"][t]["model"] for t in ("expansion", "churn")}
    assert {(r["expansion_scored_by"], r["churn_scored_by"]) for r in paying} == {
        (chosen["expansion"], chosen["churn"])}
    history = result.model_card["targets"]["expansion"]["history"]
    assert {t["model"] for t in history["tried"]} == {"lightgbm", "logistic"}
    # the past it learned from is its kind's best
    mine = [t for t in history["tried"] if t["model"] == chosen["expansion"]]
    assert (history["window_months"], history["half_life_months"]) == next(
        (t["window_months"], t["half_life_months"]) for t in mine if t["auc"] == max(m["auc"] for m in mine))
    assert all(0 < r["expansion_propensity"] < 1 and 0 < r["churn_risk"] < 1 for r in paying)
    labels = [label for label, _ in FEATURE_LABELS.values()]
    labels += [context_label(name) for name in context_columns(result.model_card["features"])]
    for r in paying[:50]:
        parts = [p.split(" of probability: ", 1) for p in r["reasons"].split("; ")]
        assert 1 <= len(parts) <= 3 and all(re.fullmatch(r"[+-]\d+ points?", points) for points, _ in parts)
        assert all(any(said.startswith(lab) for lab in (*labels, *WHEN_EMPTY.values())) for _, said in parts)
        assert r["recommended_lever"] in ("usage", "seat", "tier", "premium", "cross_sell", "services")
    worklist = result.tables["worklist"]
    owners = worklist["owner"].to_pylist()
    assert max(owners.count(o) for o in set(owners)) <= ScoringConfig().capacity_per_owner
    assert worklist["rank"].to_pylist() == list(range(1, worklist.num_rows + 1))
    card = models / "model_card.json"
    assert card.exists() and result.model_card and result.model_card["features"] == [
        *FEATURES, "attribute_segment", "attribute_industry", "attribute_region", *(
            f"product_tier_{p}" for p in ("analytics", "api", "automation", "core", "security"))]
    # the saved model is reused: the same scores, without training again
    again = run(company, models_dir=models)
    assert again.model_card["trained_at"] == result.model_card["trained_at"]
    assert again.tables["accounts"]["expansion_propensity"] == accounts["expansion_propensity"]


def test_training_is_deterministic(company: Path, scored: RunResult) -> None:
    first, second = scored, run(company)
    for column in ("expansion_propensity", "churn_risk", "recommended_lever", "reasons"):
        assert first.tables["accounts"][column] == second.tables["accounts"][column]


def test_short_history_falls_back_to_rules_and_says_so(tmp_path: Path) -> None:
    lines = "line_id,account_id,plan_id,kind,quantity,amount,currency,period_start,period_end\n" + "".join(
        f"l{m},A,team_m,subscription,10,100,USD,2025-{m:02d}-01,2025-{m + 1:02d}-01\n" for m in range(1, 5))
    folder = write_folder(tmp_path / "d", {"invoice_lines": lines})
    result = run_folder(folder, "2025-04-30")
    row = result.tables["accounts"].to_pylist()[0]
    assert row["scored_by"] == "rules" and row["reasons"].startswith("rules (history too short")
    assert any("history too short" in n for n in result.notes)
    assert result.tables["worklist"].num_rows == 1
    bt = backtest(folder)
    assert any("history too short" in n for n in bt.notes)
    # two months: no snapshot's outcome is known yet, so there is no cutoff; the backtest says so, never a traceback
    two = write_folder(tmp_path / "two", {"invoice_lines": "\n".join(lines.splitlines()[:3])})
    said = CliRunner().invoke(app, ["backtest", str(two)])
    assert said.exit_code == 0 and said.exception is None, said.output
    assert "history too short for a model: 0 months" in " ".join(said.output.split())
    # training saves nothing, and says why for each outcome (not for the lever, which is no outcome)
    with pytest.raises(UpcurveError, match=r"no model was saved: expansion: history too short.*; churn: history "
                                           r"too short[^;]*\. Runs rank accounts by the cold-start rules"):
        train(folder, tmp_path / "model", as_of=dt.date(2025, 4, 30))
    assert not (tmp_path / "model").exists()


def test_cli_train_backtest_and_reuse(company: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    models = tmp_path / "m"
    trained = runner.invoke(app, ["train", str(company), "--models", str(models)])
    assert trained.exit_code == 0, trained.output
    assert "model card" in trained.output and "held-out AUC" in trained.output
    done = runner.invoke(app, ["run", str(company), "--out", str(tmp_path / "out"), "--models", str(models)])
    assert done.exit_code == 0, done.output
    assert "Worklist for the week of" in done.output
    assert (tmp_path / "out" / "worklist.parquet").exists()
    bt = runner.invoke(app, ["backtest", str(company), "--cutoffs", "2", "--out", str(tmp_path / "bt"),
                             "--workspace", str(tmp_path / "ws")])
    assert bt.exit_code == 0, bt.output
    assert "Backtest" in bt.output and "Calibration" in bt.output
    metrics = pq.read_table(tmp_path / "bt" / "backtest_metrics.parquet")
    assert set(metrics["model"].to_pylist()) == {"auto", "lightgbm", "logistic", "rules", "health_score"}
    assert len(set(metrics["cutoff"].to_pylist())) == 2
    # the plain-words sentence, from the same numbers; and the backtest kept in the workspace
    rows = metrics.to_pylist()
    top = [r["precision_at_k"] for r in rows if r["target"] == "expansion" and r["model"] == "auto"]
    assert f"Of the 10% of accounts it puts first, {sum(top) / len(top):.0%} expanded" in bt.output
    kept = latest_backtest(Store.open(tmp_path / "ws", create=False))
    assert kept is not None and len(kept.cutoffs) == 2 and len(kept.metrics) == metrics.num_rows


def _snapshot_frame(n_accounts: int, months: int, levers: tuple[str, ...], seed: int = 0) -> pa.Table:
    """Labelled snapshots made up from two signals: seat saturation drives expansion, falling logins churn."""
    rng = np.random.default_rng(seed)
    n = n_accounts * months
    columns: dict[str, object] = {name: np.full(n, np.nan) for name in FEATURES if name != "outcome_level"}
    saturation, logins = rng.random(n) * 1.2, rng.normal(0, 40, n)
    columns.update(seat_saturation=saturation, login_trend=logins, mrr_cents=rng.integers(5_000, 50_000, n))
    grew = rng.random(n) < 1 / (1 + np.exp(-(4 * saturation - 3)))
    churned = rng.random(n) < 1 / (1 + np.exp(0.05 * logins + 3))
    return pa.table({
        **columns,
        "outcome_status": pa.nulls(n, pa.string()),
        "account_id": [f"A{i % n_accounts}" for i in range(n)],
        "snapshot_idx": np.repeat(np.arange(24_000, 24_000 + months), n_accounts),
        "label_expansion": grew, "label_churn": churned,
        "net_expansion_cents": np.where(grew, rng.integers(1_000, 9_000, n), 0),
        "expansion_lever": [levers[i % len(levers)] if g else None for i, g in enumerate(grew)],
    })


def test_the_lever_is_the_one_likeliest_to_move_not_the_likeliest_to_be_largest() -> None:
    """Every expansion buys seats; six in ten also move up a tier, and then the tier is the larger amount. The lever
    a team should pull is seats (it moves every time), though the tier is most often the largest."""
    frame = _snapshot_frame(300, 16, ("seat",), seed=3)
    grew = np.asarray(frame["label_expansion"].to_pylist())
    rng = np.random.default_rng(4)
    mixed = grew & (rng.random(frame.num_rows) < 0.6)
    frame = frame.append_column("expansion_levers", pa.array(
        ["seat,tier" if m else ("seat" if g else None) for g, m in zip(grew, mixed, strict=True)], pa.string()))
    largest = frame.set_column(frame.column_names.index("expansion_lever"), "expansion_lever", pa.array(
        ["tier" if m else ("seat" if g else None) for g, m in zip(grew, mixed, strict=True)], pa.string()))
    config = ScoringConfig(min_training_months=4)
    scores = AccountScorer(config).fit(largest).score(frame.slice(0, 200))
    assert set(scores["recommended_lever"].to_pylist()) == {"seat"}
    # from the largest lever alone (snapshots without `expansion_levers`) the tier would be recommended
    alone = AccountScorer(config).fit(largest.drop_columns(["expansion_levers"])).score(frame.slice(0, 200))
    assert alone["recommended_lever"].to_pylist().count("tier") > 100


def test_two_levers_no_rows_and_a_sample_of_the_snapshots() -> None:
    frame = _snapshot_frame(200, 16, ("seat", "tier"))
    config = ScoringConfig(max_training_rows=2_000, min_training_months=4)
    scorer = AccountScorer(config).fit(frame)
    assert not scorer.fallback_ and scorer.lever_classes_ == ["seat", "tier"]
    assert scorer.card_["rows"] == 2_000  # a seeded sample of the 3,200 rows
    scores = scorer.score(frame.slice(0, 50))
    assert set(scores["recommended_lever"].to_pylist()) <= {"seat", "tier"}
    empty = scorer.score(frame.slice(0, 0))
    assert empty.num_rows == 0 and empty.column_names == list(SCORE_COLUMNS)
    # the model learned the made-up drivers: saturation raises the propensity, falling logins the risk
    p = np.asarray(scores["expansion_propensity"].to_pylist())
    s = np.asarray(frame.slice(0, 50)["seat_saturation"].to_pylist())
    assert np.corrcoef(p, s)[0, 1] > 0.5
    assert AccountScorer(config).fit(frame).score(frame.slice(0, 50)) == scores  # seeded: the same sample


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_scores_without_reasons_are_the_same_scores(kind: str) -> None:
    """``explain=False`` (a backtest: the ranking is measured, not the reasons) takes each probability from the
    model's log-odds instead of its features' contributions: the same probabilities, every other column the same,
    the reasons left empty. 1,200 rows: the trees' contributions are computed by cell, as at scale."""
    frame = _snapshot_frame(300, 16, ("seat", "tier"))
    scorer = AccountScorer(ScoringConfig(model=kind, min_training_months=4)).fit(frame)
    assert not scorer.fallback_
    rows = frame.slice(0, 1_200)
    explained, plain = scorer.score(rows), scorer.score(rows, explain=False)
    for column in ("expansion_propensity", "churn_risk"):
        assert np.allclose(plain[column].to_numpy(), explained[column].to_numpy(), rtol=1e-12, atol=0)
    for column in ("reasons", "churn_reasons"):
        assert plain[column].null_count == rows.num_rows and explained[column].null_count == 0
    same = [c for c in SCORE_COLUMNS if c not in ("expansion_propensity", "churn_risk", "reasons", "churn_reasons",
                                                  "expected_expansion_mrr_cents")]
    assert plain.select(same) == explained.select(same)
    # the expected amount is a probability times a size, rounded to the cent: at most a cent apart
    expected = [table["expected_expansion_mrr_cents"].to_numpy() for table in (plain, explained)]
    assert np.abs(expected[0] - expected[1]).max() <= 1


def test_training_keeps_outcome_windows_out_of_the_calibration_months() -> None:
    frame = _snapshot_frame(100, 14, ("seat", "usage"))
    scorer = AccountScorer(ScoringConfig(min_training_months=4, min_positives=5)).fit(frame)
    # months 0–13; calibration on the last 3 (11–13); training rows end 3 months before them (month 8)
    assert scorer.card_["calibration_window"] == ["2000-12", "2001-02"]
    assert scorer.card_["training_window"] == ["2000-01", "2000-09"]
    short = AccountScorer(ScoringConfig()).fit(frame.filter(pc.less(frame["snapshot_idx"], 24_011)))
    assert short.fallback_["expansion"].startswith("history too short: 11 months")


def test_rules_give_no_expected_amount_and_weigh_both_motions_on_mrr() -> None:
    frame = _snapshot_frame(30, 2, ("seat",))
    scorer = AccountScorer().fit(frame)
    scores = scorer.score(frame)
    assert set(scores["scored_by"].to_pylist()) == {"rules"}
    assert scores["expected_expansion_mrr_cents"].null_count == frame.num_rows
    accounts = pa.table({
        "account_id": ["A", "B"], "mrr_cents": [10_000, 10_000], "expansion_propensity": [0.5, 0.0],
        "churn_risk": [0.15, 0.2], "expected_expansion_mrr_cents": pa.nulls(2, pa.int64()),
        "recommended_lever": ["usage", None], "reasons": ["r", ""], "churn_reasons": ["", "c"],
    })
    w = weekly_worklist(accounts, ScoringConfig(), as_of=dt.date(2025, 1, 1)).to_pylist()
    assert [(r["account_id"], r["motion"], r["value_at_stake_cents"]) for r in w] == [
        ("A", "expand", 5_000), ("B", "retain", 2_000)]


@pytest.mark.parametrize(("positives", "centre"), [(0, -1.0), (1, -1.0), (3, -1.0), (0, 150.0), (2, -150.0)])
def test_calibration_without_enough_outcomes_moves_the_level_only(positives: int, centre: float) -> None:
    rng = np.random.default_rng(3)
    raw = rng.normal(centre, 1.0, 400)  # at −1 the model's own log-odds say about 30% on average; ±150: near-certain
    y = np.zeros(400, dtype=int)
    y[np.argsort(-raw)[:positives]] = 1
    calibration = PlattCalibration().fit(raw, y)
    p = calibration(raw)
    assert calibration.a == 1.0
    assert p.mean() == pytest.approx((positives + 0.5) / 401, rel=1e-6)  # the observed rate, half an outcome each way
    assert (np.argsort(p, kind="stable") == np.argsort(raw, kind="stable")).all()  # the order is the model's


def test_calibration_with_outcomes_fits_a_slope() -> None:
    rng = np.random.default_rng(4)
    raw = rng.normal(0.0, 1.0, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2 * raw - 1)))).astype(int)
    calibration = PlattCalibration().fit(raw, y)
    assert calibration.a == pytest.approx(2.0, abs=0.25) and calibration.b == pytest.approx(-1.0, abs=0.2)


def test_the_backtest_measures_each_model_against_the_oracles_true_odds(tmp_path: Path) -> None:
    from upcurve.revenue import month_label
    from upcurve.scoring import read_oracle, replay

    frame = _snapshot_frame(600, 16, ("seat", "tier"), seed=7)
    frame = frame.append_column("health_score", pa.array(np.full(frame.num_rows, 50.0)))
    saturation = np.asarray(frame["seat_saturation"].to_pylist())
    logins = np.asarray(frame["login_trend"].to_pylist())
    months = [month_label(i) for i in frame["snapshot_idx"].to_pylist()]
    oracle = pa.table({"account_id": frame["account_id"], "month": months,
                       "p_expansion": 1 / (1 + np.exp(-(4 * saturation - 3))),  # the odds the labels were drawn at
                       "p_churn": 1 / (1 + np.exp(0.05 * logins + 3)),
                       "runs": np.full(frame.num_rows, 100), "horizon_months": np.full(frame.num_rows, 3)})
    pq.write_table(oracle, tmp_path / "oracle.parquet")
    config = ScoringConfig(min_training_months=3, calibration_months=2, min_positives=5)
    found = replay(frame, config, cutoffs=2, oracle=read_oracle(tmp_path / "oracle.parquet", horizon_months=3))
    rows = found.tables["backtest_metrics"].to_pylist()
    best = {(r["cutoff"], r["target"]): r for r in rows if r["model"] == "oracle"}
    assert len(best) == 4 and all(r["share_of_oracle"] == 1.0 for r in best.values())
    for r in rows:
        assert r["share_of_oracle"] == pytest.approx(r["auc"] / best[(r["cutoff"], r["target"])]["auc"])
    learned = [r["share_of_oracle"] for r in rows if r["model"] == "lightgbm" and r["target"] == "expansion"]
    assert all(0.85 < s <= 1.03 for s in learned), learned  # two signals, 600 accounts: near the true odds
    assert all(r["share_of_oracle"] < 0.75 for r in rows if r["model"] == "health_score")  # a flat score: ~0.5


def test_an_oracle_file_that_breaks_its_rules_names_every_problem(tmp_path: Path) -> None:
    from upcurve.errors import ContractError
    from upcurve.scoring import read_oracle

    pq.write_table(pa.table({"account_id": ["A", "A", None], "month": ["2024-01", "2024-01", "2024-13"],
                             "p_expansion": [0.2, 1.5, 0.1], "p_churn": [0.1, 0.1, -0.1], "runs": [100, 100, 100],
                             "horizon_months": [3, 3, 6]}), tmp_path / "o.parquet")
    with pytest.raises(ContractError) as found:
        read_oracle(tmp_path / "o.parquet", horizon_months=3)
    said = str(found.value)
    for part in ("[month]: must be YYYY-MM (1 row: row 3); values: '2024-13'", "[account_id]: must not be empty",
                 "[p_expansion]: must be a probability from 0 to 1 (1 row: row 2)", "[p_churn]",
                 "an account appears twice in a month (2 rows: rows 1, 2)",
                 "[horizon_months]: must be the backtest's scoring.horizon_months, 3 (simulate with "
                 "--oracle-horizon-months 3) (1 row: row 3); values: '6'"):
        assert part in said, said
    # checked before any data is read: the data folder here does not even exist
    with pytest.raises(ContractError, match=r"none.parquet: no such file"):
        backtest(tmp_path / "no data", oracle=tmp_path / "none.parquet")
    pq.write_table(pa.table({"account_id": ["A"], "month": ["2024-01"]}), tmp_path / "short.parquet")
    with pytest.raises(ContractError, match=r"short.parquet \[p_expansion\]: a required column is missing"):
        read_oracle(tmp_path / "short.parquet")


def test_a_company_whose_customers_changed_learns_from_its_recent_past() -> None:
    from upcurve.scoring.scorer import HistoryChoice

    rng = np.random.default_rng(11)
    n_accounts, months = 400, 20
    n = n_accounts * months
    columns: dict[str, object] = {name: np.full(n, np.nan) for name in FEATURES if name != "outcome_level"}
    logins = rng.normal(0, 40, n)
    idx = np.repeat(np.arange(24_000, 24_000 + months), n_accounts)
    # for 6 months falling logins meant nothing; since then they precede churn
    changed = idx >= 24_000 + 6
    p = np.where(changed, 1 / (1 + np.exp(0.08 * logins + 2)), 0.08)
    columns.update(login_trend=logins, mrr_cents=np.full(n, 10_000.0))
    frame = pa.table({**columns, "outcome_status": pa.nulls(n, pa.string()),
                      "account_id": [f"A{i % n_accounts}" for i in range(n)], "snapshot_idx": idx,
                      "label_expansion": rng.random(n) < 0.2, "label_churn": rng.random(n) < p,
                      "net_expansion_cents": np.full(n, 1_000), "expansion_lever": pa.nulls(n, pa.string())})
    config = ScoringConfig(min_training_months=3, calibration_months=2, min_positives=5, model="lightgbm")
    scorer = AccountScorer(config).fit(frame)
    history = scorer.card_["targets"]["churn"]["history"]
    assert len(history["tried"]) == 3 and (history["window_months"] or history["half_life_months"])
    tried = {(t["window_months"], t["half_life_months"]): t["auc"] for t in history["tried"]}
    assert max(tried.values()) == tried[(history["window_months"], history["half_life_months"])]
    assert tried[(history["window_months"], history["half_life_months"])] > tried[(None, None)]
    # off, every month counts alike
    plain = AccountScorer(config.model_copy(update={"choose_history": False})).fit(frame)
    assert plain.card_["targets"]["churn"]["history"] == {"window_months": None, "half_life_months": None, "tried": []}
    assert HistoryChoice(window_months=2, half_life_months=1).weights(np.array([10, 9, 8]), 10).tolist() == [
        1.0, 0.5, 0.0]


def test_the_difference_of_two_rankings_and_its_standard_error() -> None:
    from sklearn.metrics import roc_auc_score

    from upcurve.scoring.backtest import auc_difference

    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.3
    weak, strong = y + rng.normal(0, 1.0, 400), y + rng.normal(0, 0.8, 400)
    difference, error = auc_difference(y, weak, strong)
    assert difference == pytest.approx(roc_auc_score(y, strong) - roc_auc_score(y, weak), abs=1e-12)
    # DeLong's standard error against the spread of the difference over 400 bootstrap resamples of the accounts
    boot = []
    for _ in range(400):
        k = rng.integers(0, len(y), len(y))
        boot.append(roc_auc_score(y[k], strong[k]) - roc_auc_score(y[k], weak[k]))
    assert error == pytest.approx(np.std(boot), rel=0.15)
    assert auc_difference(y, weak, weak) == (0.0, 0.0)
    assert all(np.isnan(auc_difference(np.zeros(5, bool), weak[:5], strong[:5])))


def _two_kinds_frame(n_accounts: int = 300, months: int = 16, seed: int = 5) -> pa.Table:
    """Snapshots where the trees must win one outcome and the logistic regression the other: expansion follows an
    interaction of two signals (no line separates it); churn follows tickets above each month's level, and tickets
    rise every month, so the latest months' values lie beyond every split the trees learned."""
    rng = np.random.default_rng(seed)
    n = n_accounts * months
    columns: dict[str, object] = {name: np.full(n, np.nan) for name in FEATURES if name != "outcome_level"}
    offset = np.repeat(np.arange(months), n_accounts)
    saturation, logins = rng.random(n), rng.normal(0, 40, n)
    tickets = offset * 3.0 + rng.normal(0, 1, n)
    grows = (saturation > 0.5) != (logins > 0)
    columns.update(seat_saturation=saturation, login_trend=logins, tickets_30d=tickets, mrr_cents=np.full(n, 1e4),
                   health_score=np.full(n, 50.0))
    return pa.table({**columns, "outcome_status": pa.nulls(n, pa.string()),
                     "account_id": [f"A{i % n_accounts}" for i in range(n)], "snapshot_idx": 24_000 + offset,
                     "label_expansion": rng.random(n) < np.where(grows, 0.6, 0.05),
                     "label_churn": rng.random(n) < 1 / (1 + np.exp(-2.5 * (tickets - offset * 3.0) + 2)),
                     "net_expansion_cents": np.full(n, 1_000), "expansion_lever": pa.nulls(n, pa.string())})


def test_auto_learns_each_outcome_with_the_kind_that_ranks_its_latest_months_better(tmp_path: Path) -> None:
    from upcurve.revenue import month_index
    from upcurve.scoring import replay
    from upcurve.scoring.backtest import auc_difference
    from upcurve.scoring.scorer import chosen_kind, prefers_logistic

    frame = _two_kinds_frame()
    config = ScoringConfig(min_training_months=3, calibration_months=2, min_positives=5)
    scorer = AccountScorer(config).fit(frame)
    card = scorer.card_
    assert card["model"] == "auto"
    assert (card["targets"]["expansion"]["model"], card["targets"]["churn"]["model"]) == ("lightgbm", "logistic")
    for target in ("expansion", "churn"):
        tried = card["targets"][target]["history"]["tried"]
        assert {t["model"] for t in tried} == {"lightgbm", "logistic"}
        assert max(tried, key=lambda t: t["auc"])["model"] == card["targets"][target]["model"]
    # logistic is chosen only when it ranks clearly better: by more than two standard errors of the difference
    y, best = scorer.check_scores_["churn"]
    difference, error = auc_difference(y, best["lightgbm"], best["logistic"])
    assert difference > 2 * error > 0
    assert not prefers_logistic(y, best["lightgbm"], best["lightgbm"] + 1e-9 * np.arange(len(y)))
    scores = scorer.score(frame.slice(0, 50))
    assert set(scores["scored_by"].to_pylist()) == {"expansion: lightgbm; churn: logistic"}
    assert set(scores["expansion_scored_by"].to_pylist()) == {"lightgbm"}
    assert set(scores["churn_scored_by"].to_pylist()) == {"logistic"}
    # saved with two kinds and read back the same
    assert AccountScorer.load(scorer.save(tmp_path / "model"), config).score(frame.slice(0, 50)) == scores
    # what the backtest reports as auto without training it: the same choice from the two fixed kinds
    fixed = {k: AccountScorer(config.model_copy(update={"model": k})).fit(frame) for k in ("lightgbm", "logistic")}
    assert (chosen_kind(fixed, "expansion"), chosen_kind(fixed, "churn")) == ("lightgbm", "logistic")
    replayed = replay(frame, config, cutoffs=2)
    found = replayed.tables["backtest_metrics"].to_pylist()
    accounts = replayed.tables["backtest_accounts"].to_pylist()
    auc = {(r["cutoff"], r["target"], r["model"]): r["auc"] for r in found}
    idx = np.asarray(frame["snapshot_idx"].to_pylist())
    for cutoff in {r["cutoff"] for r in found}:
        known = frame.filter(pa.array(idx + config.horizon_months <= month_index(cutoff)))
        then = {k: AccountScorer(config.model_copy(update={"model": k})).fit(known) for k in ("lightgbm", "logistic")}
        for target in ("expansion", "churn"):
            assert auc[(cutoff, target, "auto")] == auc[(cutoff, target, chosen_kind(then, target))]
            # and each account scored then says which kind scored it
            assert {a[f"{target}_scored_by"] for a in accounts if a["cutoff"] == cutoff} == {chosen_kind(then, target)}
    # a fixed kind learns that kind for both
    only = AccountScorer(config.model_copy(update={"model": "lightgbm"})).fit(frame).card_
    assert {only["targets"][t]["model"] for t in ("expansion", "churn")} == {"lightgbm"}
    assert {t["model"] for t in only["targets"]["churn"]["history"]["tried"]} == {"lightgbm"}


def test_the_ledger_alone_is_the_revenue_tables_ledger_and_holds_less(company: Path) -> None:
    """``revenue_ledger`` (what learning and a backtest read, no revenue table) gives the same calendar, product
    months, account months and movements as ``revenue_tables``, and leaves the engine holding only those: the
    product pairs released once what is computed from them is held, the products' movements never computed."""
    from upcurve.revenue import revenue_ledger

    ledger_tables = ("calendar", "product_months", "account_months", "movements")

    def built(build: Callable[..., Any]) -> tuple[int, dict[str, pa.Table], dict[str, Any]]:
        """How many tables ``build`` left held, its ledger's rows in order, and its revenue tables."""
        engine = connect("duckdb://")
        loaded = load_folder(company, engine, as_of=None, policy=RevenuePolicy())
        sql = f"SELECT count(*) FROM duckdb_tables() WHERE database_name = '{HELD_CATALOG}'"
        before = engine.con.execute(sql).fetchall()[0][0]
        revenue = build(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=RevenuePolicy())
        rows = {}
        for name in ledger_tables:
            table = getattr(revenue, name)
            rows[name] = table.to_pyarrow().sort_by([(c, "ascending") for c in table.columns])
        return engine.con.execute(sql).fetchall()[0][0] - before, rows, revenue.tables

    every_held, every, tables = built(revenue_tables)
    ledger_held, ledger, no_tables = built(revenue_ledger)
    assert ledger == every and every["movements"].num_rows > 0
    assert set(tables) == set(REVENUE_TABLES) and no_tables == {}
    assert (every_held, ledger_held) == (5, 3)  # the product pairs and the products' movements are not held


def test_a_large_historys_backtest_computes_only_the_snapshots_it_reads(company: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond ``max_training_rows``, a backtest draws each cutoff's training sample and accounts from the labelled
    snapshots' keys before any signal is computed (``draw_backtest``), computes only those snapshots' signals, and
    each cutoff's snapshots only as it replays it: it measures exactly what replaying every snapshot measures, the
    same models on the same rows. Here the first cutoff learns from every snapshot before it and the second from a
    sample."""
    import ibis.expr.types as ir

    import upcurve.usecases
    from upcurve.settings_file import UpcurveConfig
    from upcurve.signals import account_signals_at

    policy = RevenuePolicy()
    loaded = load_folder(company, connect("duckdb://"), as_of=None, policy=policy)
    revenue = revenue_tables(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=policy)
    # as many rows as the first cutoff has before it: it learns from them all, the second from a sample
    counted = draw_backtest(loaded.tables, revenue, ScoringConfig(max_training_rows=1_000), first=loaded.first,
                            as_of=loaded.as_of, cutoffs=2)
    assert counted is not None
    config = ScoringConfig(max_training_rows=counted.samples[counted.cutoffs[0]].labelled)
    every = labelled_snapshots(loaded.tables, revenue, config, first=loaded.first, as_of=loaded.as_of)
    every = snapshot_health(every, loaded.tables["accounts"], HealthConfig(), as_of=loaded.as_of)
    expected = replay(every.to_pyarrow(), config, cutoffs=2)

    draw = draw_backtest(loaded.tables, revenue, config, first=loaded.first, as_of=loaded.as_of, cutoffs=2)
    assert draw is not None and [month_end(c) for c in draw.cutoffs] == expected.cutoffs
    first, last = draw.cutoffs
    assert draw.samples[first].keys is None
    sample = draw.samples[last].keys
    assert sample is not None and sample.num_rows == config.max_training_rows < draw.samples[last].labelled
    assert pc.max(sample["snapshot_idx"]).as_py() + config.horizon_months <= last
    # each cutoff's pairs: the first's every snapshot before it and its accounts, the second's sample and accounts
    def keys(table: pa.Table, date: str = "snapshot") -> set[tuple[Any, str]]:
        return {(r[date], r["account_id"]) for r in table.to_pylist()}

    at = {c: keys(every.filter(every.snapshot_idx == c).to_pyarrow()) for c in draw.cutoffs}
    before_first = keys(every.filter(every.snapshot_idx + config.horizon_months <= first).to_pyarrow())
    assert keys(draw.pairs_at[first], "as_of") == before_first | at[first]
    assert keys(draw.pairs_at[last], "as_of") == keys(sample) | at[last]
    wanted = before_first | at[first] | keys(sample) | at[last]
    assert keys(draw.pairs, "as_of") == wanted and draw.pairs.num_rows == len(wanted)  # the signals: each pair once
    assert len(wanted) < int(every.count().to_pyarrow().as_py())
    with pytest.raises(ValueError, match="a function of the cutoff"):  # it would learn from every row it holds
        replay(every.to_pyarrow(), config, cutoffs=2, draw=draw)
    with pytest.raises(ValueError, match="a function of the cutoff"):  # no sample to learn from
        replay(lambda cutoff: every.to_pyarrow(), config, cutoffs=2)
    # every snapshot, not the sample
    with pytest.raises(ValueError, match=r"\(cutoff 1\) are .* training rows and .*, not the .* drawn"):
        replay(lambda cutoff: every.to_pyarrow(), config, cutoffs=2, draw=draw)

    computed_for: list[int] = []  # the pairs whose signals the backtest command computes

    def signals_at(*args: Any, only: ir.Table | None = None, **kwargs: Any) -> ir.Table:
        computed_for.append(-1 if only is None else int(only.count().to_pyarrow().as_py()))
        return account_signals_at(*args, only=only, **kwargs)

    replayed: list[int] = []  # the snapshots the command computes at each cutoff, as it replays it
    real_replay = upcurve.usecases.replay

    def replay_counting(frame: Any, *args: Any, **kwargs: Any) -> Any:
        def snapshots_at(cutoff: int) -> pa.Table:
            rows = frame(cutoff)
            replayed.append(rows.num_rows)
            return rows
        return real_replay(snapshots_at if callable(frame) else frame, *args, **kwargs)

    monkeypatch.setattr(upcurve.usecases, "account_signals_at", signals_at)
    monkeypatch.setattr(upcurve.usecases, "replay", replay_counting)
    result = backtest(company, cutoffs=2, config=UpcurveConfig(scoring=config))
    assert computed_for == [len(wanted)]
    assert replayed == [draw.pairs_at[first].num_rows, draw.pairs_at[last].num_rows]

    def rows(table: pa.Table) -> list[dict]:  # NaN (an undefined measure) is no value, on both sides
        return [{k: None if v != v else v for k, v in row.items()} for row in table.to_pylist()]

    metrics = expected.tables["backtest_metrics"]
    assert {"lightgbm", "logistic"} <= set(metrics["model"].to_pylist())  # models learned at each cutoff
    assert result.cutoffs == expected.cutoffs and result.notes == expected.notes
    for name, table in expected.tables.items():
        assert result.tables[name].schema == table.schema and rows(result.tables[name]) == rows(table), name


def test_a_large_history_sampled_in_the_engine_learns_what_sampling_in_memory_would(
        company: Path, scored: RunResult, tmp_path: Path) -> None:
    """Beyond ``max_training_rows`` labelled snapshots, ``fit_scorer`` (as ``train`` calls it) and a first run
    compute and read only the sample's snapshots from the engine (a million accounts' month ends would not fit in
    memory), and learn exactly what sampling all of them in memory learns: the same models, to the byte, and a card
    that counts every labelled snapshot. The run's accounts table (signals, health and all, computed beside the
    sample's signals in one query) is a run's that learns from every snapshot."""
    from upcurve.settings_file import UpcurveConfig

    policy = RevenuePolicy()
    loaded = load_folder(company, connect("duckdb://"), as_of=None, policy=policy)
    revenue = revenue_tables(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=policy)
    config = ScoringConfig(max_training_rows=1_000)
    everything = labelled_snapshots(loaded.tables, revenue, config, first=loaded.first, as_of=loaded.as_of)
    everything = everything.to_pyarrow()
    labelled = int(pc.sum(pc.is_valid(everything["label_expansion"])).as_py())
    assert labelled > 3 * config.max_training_rows  # the sample is a small part of the history
    in_memory = AccountScorer(config).fit(everything)
    expected = in_memory.to_files()["models.json"]

    in_engine = fit_scorer(loaded.tables, revenue, config, first=loaded.first, as_of=loaded.as_of)
    assert in_engine.card_["rows"] == config.max_training_rows
    assert in_engine.card_["snapshot_rows"] == in_memory.card_["snapshot_rows"] == labelled
    assert in_engine.learned and in_engine.to_files()["models.json"] == expected

    sampled = run(company, config=UpcurveConfig(scoring=config), models_dir=tmp_path / "models")
    assert (sampled.model_card["rows"], sampled.model_card["snapshot_rows"]) == (config.max_training_rows, labelled)
    assert (tmp_path / "models" / "models.json").read_bytes() == expected
    # the accounts table before the models' columns: attributes, signals, health
    mine, theirs = sampled.tables["accounts"], scored.tables["accounts"]
    kept = theirs.column_names[:theirs.column_names.index("health_trend") + 1]
    assert len(kept) > 40 and mine.select(kept).equals(theirs.select(kept))


def _date_account_pairs(table: pa.Table, date: str) -> list[tuple[dt.date, str]]:
    """Each row's date (the column ``date``) and account, in the table's order."""
    return list(zip(table[date].to_pylist(), table["account_id"].to_pylist(), strict=True))


def test_the_sample_is_drawn_from_keys_and_only_its_signals_are_computed(company: Path) -> None:
    """The sample is drawn from the labelled snapshots' keys, read from the ledger, before any signal is computed:
    exactly the snapshots sampling every labelled one in training order would keep, counted from all of them. The
    signals then computed for them alone (and for every account at a run's own dates) are the ones computing every
    account at every date gives them."""
    from upcurve.contract import plan_features
    from upcurve.scoring.scorer import TRAINING_ORDER, training_sample
    from upcurve.scoring.training import draw_training_sample, training_dates
    from upcurve.signals import TREND_DAYS, account_signals_at

    policy = RevenuePolicy()
    loaded = load_folder(company, connect("duckdb://"), as_of=None, policy=policy)
    revenue = revenue_tables(loaded.tables, as_of=loaded.as_of, first=loaded.first, policy=policy)
    config = ScoringConfig(max_training_rows=1_000)
    dates = training_dates(loaded.first, loaded.as_of, config)
    own = [loaded.as_of - dt.timedelta(days=TREND_DAYS), loaded.as_of]
    every_date = sorted({*dates, *own})
    signals = cached(account_signals_at(loaded.tables, revenue.account_months, plan_features(loaded.tables["plans"]),
                                        every_date))
    everything = labelled_snapshots(loaded.tables, revenue, config, first=loaded.first, as_of=loaded.as_of,
                                    signals=signals).to_pyarrow()
    labelled = everything.filter(pc.is_valid(everything["label_expansion"])).sort_by(TRAINING_ORDER)
    expected = labelled.take(training_sample(labelled.num_rows, config)).select(["snapshot", "account_id"])

    sample = draw_training_sample(loaded.tables, revenue, config, first=loaded.first, as_of=loaded.as_of)
    assert sample.dates == dates and sample.keys is not None
    assert sample.drawn_from == labelled.num_rows > 3 * config.max_training_rows
    kept = sample.keys.select("snapshot", "account_id").to_pyarrow()
    by_key = [("snapshot", "ascending"), ("account_id", "ascending")]
    assert kept.num_rows == config.max_training_rows and kept.sort_by(by_key).equals(expected.sort_by(by_key))

    pairs = sample.signal_pairs(loaded.tables["accounts"], also_at=own)
    computed = account_signals_at(loaded.tables, revenue.account_months, plan_features(loaded.tables["plans"]),
                                  every_date, only=pairs).to_pyarrow()
    whole = signals.to_pyarrow()
    drawn = set(_date_account_pairs(kept, "snapshot"))
    wanted = pa.array([(d, a) in drawn or d in own for d, a in _date_account_pairs(whole, "as_of")])
    by_pair = [("as_of", "ascending"), ("account_id", "ascending")]
    assert computed.num_rows < whole.num_rows / 3  # a small part of every account at every date
    assert computed.sort_by(by_pair).equals(whole.filter(wanted).sort_by(by_pair))

    # a run's own date on a drawn snapshot's date is one pair per account, not two
    on_a_drawn_date = sample.signal_pairs(loaded.tables["accounts"], also_at=[kept["snapshot"][0].as_py()])
    pairs_there = on_a_drawn_date.to_pyarrow()
    keys_there = set(_date_account_pairs(pairs_there, "as_of"))
    assert len(keys_there) == pairs_there.num_rows >= loaded.tables["accounts"].count().to_pyarrow().as_py()

    # few enough to learn from all, whether the bound (accounts × dates) or the labelled count says so: nothing
    # drawn, every account at every date
    for most in (10**6, labelled.num_rows):
        whole_history = draw_training_sample(loaded.tables, revenue, ScoringConfig(max_training_rows=most),
                                             first=loaded.first, as_of=loaded.as_of)
        assert whole_history.keys is None and whole_history.drawn_from is None
        assert whole_history.signal_pairs(loaded.tables["accounts"], also_at=own) is None
