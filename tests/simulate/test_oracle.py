"""The oracle: deterministic, leaves every other table as it was, and its probabilities are the true ones.

What happened is read back from the invoice lines here, independently of the oracle's code: each account's
recurring monthly value at constant list prices (see :func:`line_values`), then upcurve's two labels. The checks run
on companies that work differently (:data:`CASES`): the oracle must follow every mechanism of each (annual
contracts that change only at renewal, list-price rises, seasons, API calls billed from the first).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scipy.stats import rankdata

from upcurve.errors import ConfigError
from upcurve.simulate import PLANS, PROFILES, company, simulate_company, simulate_tables
from upcurve.simulate.oracle import ORACLE_SCHEMA, TRUTH_LEVERS, oracle_probabilities, oracle_seeds, recurring_cents

START = dt.date(2023, 1, 1)
SEED, ACCOUNTS, MONTHS, RUNS, HORIZON = 11, 1500, 24, 100, 3
#: Snapshot months whose windows do not overlap, the last one first: given the states at the month ends, what happens
#: in one window is then independent of what happened in another (an account's rows are independent trials).
SNAPSHOTS = range(MONTHS - 1 - HORIZON, 0, -HORIZON)[:6]


@dataclass(frozen=True)
class Case:
    """A company the oracle is checked on, with what its outcomes look like over the snapshot windows."""

    profile: str
    expansion_rate: tuple[float, float]  # the share of rows that expanded in their window lies in this range
    churn_rate: tuple[float, float]
    least_auc: tuple[float, float]  # the oracle's AUC against what happened, at least (expansion, churn)


CASES = {case.profile: case for case in (
    Case("mid_market", (0.05, 0.4), (0.01, 0.1), (0.85, 0.75)),  # ~1% monthly logo churn
    Case("annual_contracts", (0.05, 0.3), (0.003, 0.03), (0.9, 0.8)),  # changes wait for renewal; price rises
    Case("usage_led", (0.5, 0.9), (0.01, 0.06), (0.8, 0.65)),  # every call billed: most accounts' value moves
    Case("seasonal_smb", (0.05, 0.3), (0.03, 0.12), (0.8, 0.75)),  # budget seasons
)}


def month_ends(months: int) -> np.ndarray:
    """The last day of each month of the history."""
    return (np.datetime64(START, "M") + np.arange(1, months + 1)).astype("datetime64[D]") - np.timedelta64(1, "D")


def line_values(tables: dict[str, pa.Table], months: int) -> tuple[np.ndarray, np.ndarray]:
    """Each account's recurring monthly value in each month, in cents at constant list prices, from its lines.

    A recurring line counts in every month whose last day its period ``[period_start, period_end)`` holds:
    ``list price ÷ interval × quantity`` (× 0.85 on core plans for enterprise accounts, their discount); a usage
    line, ``quantity × unit price``. Where two monthly core lines hold the same month end, the later one is the
    proration of a mid-period upgrade: it is worth the difference between its tier's list price and the tier
    below's. Returns the account ids and an ``accounts × months`` array.
    """
    plans = {p.plan_id: p for p in PLANS}
    accounts = tables["accounts"]
    ids = np.array(accounts["account_id"].to_pylist(), dtype=object)
    row = {a: i for i, a in enumerate(ids)}
    disc = np.where(np.array(accounts["segment"].to_pylist()) == "enterprise", 0.85, 1.0)
    lines = tables["invoice_lines"].filter(pc.is_in(tables["invoice_lines"]["kind"],
                                                    value_set=pa.array(["subscription", "usage"])))
    acc = np.array([row[a] for a in lines["account_id"].to_pylist()])
    plan = [plans[p] for p in lines["plan_id"].to_pylist()]
    qty = lines["quantity"].to_numpy()
    ends = month_ends(months)
    first = np.searchsorted(ends, lines["period_start"].to_numpy().astype("datetime64[D]"), side="left")
    after = np.searchsorted(ends, lines["period_end"].to_numpy().astype("datetime64[D]"), side="left")
    span = np.maximum(after - first, 0)
    line = np.repeat(np.arange(len(plan)), span)
    month = np.concatenate([np.arange(f, a) for f, a in zip(first, after, strict=True) if a > f])
    core = np.array([p.product == "core" for p in plan])
    unit = np.array([p.unit_price / p.interval_months for p in plan])
    core_price = {(p.tier_rank, p.interval_months): p.unit_price for p in PLANS if p.product == "core"}
    below = np.array([core_price.get((p.tier_rank - 1, p.interval_months), 0.0) for p in plan])
    value = unit * qty * np.where(core, disc[acc], 1.0)
    # the second monthly core line of an account-month is a mid-period upgrade's proration
    monthly_core = core[line] & (np.array([p.interval_months for p in plan]) == 1)[line]
    ids_of_line = np.array(lines["line_id"].to_pylist(), dtype=object)
    key = acc[line] * months + month
    order = np.lexsort((ids_of_line[line], key))
    sorted_key = key[order]
    seen_before = np.zeros(len(line), bool)
    seen_before[order] = np.r_[False, sorted_key[1:] == sorted_key[:-1]] & monthly_core[order]
    worth = np.where(seen_before, (unit - below)[line] * qty[line] * disc[acc][line], value[line])
    total = np.zeros(len(ids) * months)
    np.add.at(total, key, worth)
    return ids, np.round(total.reshape(len(ids), months) * 100).astype(np.int64)


def realised(values: np.ndarray, s: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Who paid at ``s``, and whether each expanded and churned in ``s + 1 … s + horizon`` (upcurve's labels)."""
    paying = values > 0
    window = range(s + 1, s + horizon + 1)
    net = sum(np.where(paying[:, t - 1] & paying[:, t], values[:, t] - values[:, t - 1], 0) for t in window)
    churned = np.any(~paying[:, s + 1:s + horizon + 1], axis=1)
    return paying[:, s], np.asarray(net) > 0, churned


@dataclass
class History:
    case: Case
    tables: dict[str, pa.Table]
    state_values: np.ndarray  # recurring_cents of the block after each month: accounts × months
    first: dict[int, pa.Table]  # the oracle at each snapshot month (the seeds simulate_tables uses)
    second: dict[int, pa.Table]  # an independent second oracle (other seeds), to bin the first one's deciles by
    untouched: bool  # the block's state and random stream were the same after each oracle call as before


def state_of(block: company._Block) -> dict[str, object]:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(block).items()
            if k not in ("rows", "rng", "funnel_rng")} | {"rng": block.rng.bit_generator.state}


def same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fcmM")
    return a == b


def same_state(a: dict[str, object], b: dict[str, object]) -> bool:
    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


@pytest.fixture(scope="module", params=list(CASES))
def history(request: pytest.FixtureRequest) -> History:
    """One block of accounts simulated month by month, as ``simulate_tables`` does, with the oracle twice."""
    case = CASES[request.param]
    block = company._Block(0, ACCOUNTS, MONTHS, np.random.default_rng([SEED, 0]), PROFILES[case.profile], START,
                           False)
    other = np.random.SeedSequence([SEED, 0], spawn_key=(12345,))
    values, first, second, untouched = [], {}, {}, True
    for m in range(MONTHS):
        block.month(m)
        values.append(recurring_cents(block))
        if m in SNAPSHOTS:
            before = state_of(block)
            first[m] = oracle_probabilities(block, m, runs=RUNS, horizon_months=HORIZON, seeds=oracle_seeds(SEED, 0))
            second[m] = oracle_probabilities(block, m, runs=RUNS, horizon_months=HORIZON, seeds=other)
            untouched &= same_state(before, state_of(block))
    tables = block.finish()
    return History(case, tables, np.stack(values, axis=1), first, second, untouched)


def test_state_values_are_what_the_invoice_lines_say(history: History) -> None:
    """The oracle's recurring value (from the block's state) is the value of the invoice lines, month by month."""
    _, values = line_values(history.tables, MONTHS)
    assert (values > 0).sum() > ACCOUNTS * MONTHS / 3
    assert np.array_equal(values, history.state_values)
    # the history holds both kinds of proration: mid-period upgrades and seats bought mid-term on annual contracts
    # (none where annual contracts change only at renewal)
    lines = history.tables["invoice_lines"]
    days = (lines["period_end"].to_numpy() - lines["period_start"].to_numpy()).astype("timedelta64[D]").astype(int)
    plan = np.array(lines["plan_id"].to_pylist(), dtype=object)
    monthly = np.isin(plan, ["core_team_m", "core_business_m"])
    annual = np.isin(plan, ["core_team_y", "core_business_y"])
    if PROFILES[history.case.profile].renewal_changes_only:  # a company of annual contracts: few monthly payers
        assert (monthly & (days < 28)).sum() > 0
        assert annual.sum() > 1000
        assert (annual & (days < 360)).sum() == 0
    else:
        assert (monthly & (days < 28)).sum() > 5
        assert (annual & (days < 360)).sum() > 5


def test_computing_the_oracle_leaves_the_block_as_it_was(history: History) -> None:
    assert history.untouched


def test_the_manual_history_is_the_one_simulate_tables_makes(history: History) -> None:
    tables = simulate_tables(ACCOUNTS, MONTHS, seed=SEED, profile=history.case.profile, oracle_months=1,
                             oracle_runs=RUNS, oracle_horizon_months=HORIZON)
    assert tables["invoice_lines"].equals(history.tables["invoice_lines"])
    assert tables["truth_oracle"].equals(history.first[MONTHS - 1 - HORIZON])


def snapshot_rows(history: History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every snapshot row: the first and the second oracle's probabilities, and what happened.

    Returns ``p`` (rows × 2 targets, first oracle), ``q`` (second oracle) and ``y`` (realised, rows × 2); targets in
    the order expansion, churn.
    """
    ids, values = line_values(history.tables, MONTHS)
    index = {a: i for i, a in enumerate(ids)}
    p, q, y = [], [], []
    for s in sorted(history.first):
        first, second = history.first[s], history.second[s]
        assert first["account_id"].equals(second["account_id"])
        rows = np.array([index[a] for a in first["account_id"].to_pylist()])
        _, grew, churned = realised(values, s, HORIZON)
        p.append(np.column_stack([first["p_expansion"].to_numpy(), first["p_churn"].to_numpy()]))
        q.append(np.column_stack([second["p_expansion"].to_numpy(), second["p_churn"].to_numpy()]))
        y.append(np.column_stack([grew[rows], churned[rows]]).astype(float))
    return np.concatenate(p), np.concatenate(q), np.concatenate(y)


def deciles(p: np.ndarray, q: np.ndarray, y: np.ndarray, runs: int) -> list[tuple[float, float, float]]:
    """Ten equal groups of rows by ``p``: each group's observed rate, mean ``q``, and the standard error of their
    difference.

    The groups are made by one oracle and compared with another, independent one: a group picked for a high ``p``
    holds the rows whose Monte Carlo error pushed ``p`` up, so its own mean ``p`` would overstate it. Given the
    states, ``y`` and ``q`` are independent binomials of the same true ``π``: ``var(y − q) = π(1 − π)(1 + 1/runs)``,
    estimated at ``π`` = the mean of both oracles, kept in ``[1/(2 runs), 1 − 1/(2 runs)]`` (a probability that
    ``runs`` futures never showed may still be above 0).
    """
    order = np.argsort(p, kind="stable")
    pi = np.clip((p + q) / 2, 1 / (2 * runs), 1 - 1 / (2 * runs))
    out = []
    for group in np.array_split(order, 10):
        se = np.sqrt(np.sum(pi[group] * (1 - pi[group]) * (1 + 1 / runs))) / len(group)
        out.append((float(y[group].mean()), float(q[group].mean()), float(se)))
    return out


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """The area under the ROC curve: the chance that a positive scores above a negative (ties count half)."""
    ranks = rankdata(score)
    positives = label.astype(bool)
    n1, n0 = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def test_probabilities_match_what_happened_decile_by_decile(history: History) -> None:
    """In each tenth of the rows ranked by the oracle, the share of accounts that expanded (churned) is the oracle's
    mean probability, within four standard errors of a binomial (ten deciles, two targets: a false alarm about one
    time in 800)."""
    p, q, y = snapshot_rows(history)
    assert len(p) > 4000
    for target in (0, 1):
        table = deciles(p[:, target], q[:, target], y[:, target], RUNS)
        for observed, expected, se in table:
            assert abs(observed - expected) <= 4 * se, (target, table)
        # the top tenth is far above the bottom one: five times its rate, and further from it than the mean rate
        assert table[-1][0] > 5 * table[0][0]
        assert table[-1][0] - table[0][0] > y[:, target].mean()
    # and over all rows, the rates are those of the company (mid_market: ~1% monthly logo churn)
    case = history.case
    assert case.expansion_rate[0] < y[:, 0].mean() < case.expansion_rate[1]
    assert case.churn_rate[0] < y[:, 1].mean() < case.churn_rate[1]


def test_probabilities_match_what_happened_window_by_window(history: History) -> None:
    """In each snapshot's window, the share of accounts that expanded (churned) is the oracle's mean probability,
    within four standard errors: the oracle follows the calendar (a window in the budget season, or holding many
    renewals, has higher odds, and the futures simulated for it say so)."""
    ids, values = line_values(history.tables, MONTHS)
    index = {a: i for i, a in enumerate(ids)}
    means = []
    for s in sorted(history.first):
        second = history.second[s]
        rows = np.array([index[a] for a in second["account_id"].to_pylist()])
        _, grew, churned = realised(values, s, HORIZON)
        for target, (name, happened) in enumerate((("p_expansion", grew), ("p_churn", churned))):
            q = second[name].to_numpy()
            pi = np.clip(q, 1 / (2 * RUNS), 1 - 1 / (2 * RUNS))
            se = np.sqrt(np.sum(pi * (1 - pi) * (1 + 1 / RUNS))) / len(q)
            assert abs(happened[rows].mean() - q.mean()) <= 4 * se, (s, target, happened[rows].mean(), q.mean())
        means.append(second["p_expansion"].to_numpy().mean())
    if PROFILES[history.case.profile].expansion_seasonality:
        assert max(means) > 1.5 * min(means)  # windows in and out of the budget season


def test_the_oracle_ranks_expansion_and_churn_well(history: History) -> None:
    p, _, y = snapshot_rows(history)
    least_expansion, least_churn = history.case.least_auc
    assert auc(p[:, 0], y[:, 0]) > least_expansion
    assert auc(p[:, 1], y[:, 1]) > least_churn


def test_only_accounts_paying_at_the_month_end_get_a_row(history: History) -> None:
    ids, values = line_values(history.tables, MONTHS)
    for s, table in history.first.items():
        paying, _, _ = realised(values, s, HORIZON)
        assert table["account_id"].to_pylist() == ids[paying].tolist()
        assert (~paying).sum() > 50  # there are accounts not paying then: not yet arrived, or gone
        for name in ("p_expansion", "p_churn"):
            p = table[name].to_numpy()
            assert ((p >= 0) & (p <= 1)).all()
            assert np.allclose(p * RUNS, np.round(p * RUNS))  # a share of the runs
        assert set(table["runs"].to_pylist()) == {RUNS}
        assert set(table["horizon_months"].to_pylist()) == {HORIZON}
    # an account that churned in a snapshot month has no row at its end, and one that arrives later neither
    s = SNAPSHOTS[0]
    gone = np.flatnonzero((values[:, s - 1] > 0) & (values[:, s] == 0))
    later = np.flatnonzero((values[:, :s + 1] == 0).all(axis=1) & (values[:, s + 1:] > 0).any(axis=1))
    assert len(gone) and len(later)
    assert not set(ids[gone]) & set(history.first[s]["account_id"].to_pylist())
    assert not set(ids[later]) & set(history.first[s]["account_id"].to_pylist())


def test_the_last_months_whose_window_fits_and_no_others() -> None:
    tables = simulate_tables(120, 8, seed=2, oracle_months=3, oracle_runs=5, oracle_horizon_months=2)
    assert sorted(set(tables["truth_oracle"]["month"].to_pylist())) == ["2023-04", "2023-05", "2023-06"]
    assert tables["truth_oracle"].schema == ORACLE_SCHEMA
    # more month ends than the history holds whole windows after: refused, never a shorter file
    with pytest.raises(ConfigError, match=r"oracle_months 30: a 8-month history has 1 month end\(s\) with a whole "
                                          r"7-month window after them; ask for at most 1"):
        simulate_tables(120, 8, seed=2, oracle_months=30, oracle_runs=5, oracle_horizon_months=7)
    with pytest.raises(ConfigError, match=r"has 0 month end\(s\)"):
        simulate_tables(120, 8, seed=2, oracle_months=3, oracle_runs=5, oracle_horizon_months=8)
    assert "truth_oracle" not in simulate_tables(120, 8, seed=2)


def test_same_seed_same_oracle_other_seed_other_oracle() -> None:
    a = simulate_tables(300, 12, seed=3, oracle_months=2, oracle_runs=30)["truth_oracle"]
    b = simulate_tables(300, 12, seed=3, oracle_months=2, oracle_runs=30)["truth_oracle"]
    c = simulate_tables(300, 12, seed=4, oracle_months=2, oracle_runs=30)["truth_oracle"]
    assert a.num_rows > 100
    assert a.equals(b)
    assert not a.equals(c)


def test_the_oracle_changes_no_other_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(company, "BLOCK", 70)  # several blocks, several random streams
    without = simulate_tables(200, 12, seed=5, events=True)
    with_oracle = simulate_tables(200, 12, seed=5, events=True, oracle_months=3, oracle_runs=20)
    assert with_oracle.keys() - without.keys() == {"truth_oracle"}
    for name in without:
        assert with_oracle[name].equals(without[name]), name
    assert len(set(with_oracle["truth_oracle"]["account_id"].to_pylist())) > 100  # every block has its rows


def test_simulate_company_writes_truth_oracle_and_the_same_files(tmp_path: Path) -> None:
    simulate_company(tmp_path / "without", accounts=150, months=9, seed=6)
    rows = simulate_company(tmp_path / "with", accounts=150, months=9, seed=6, oracle_months=2, oracle_runs=10)
    files = sorted(p.relative_to(tmp_path / "without") for p in (tmp_path / "without").rglob("*.parquet"))
    assert sorted(p.relative_to(tmp_path / "with") for p in (tmp_path / "with").rglob("*.parquet")) == sorted(
        [*files, Path("truth/oracle.parquet")])
    for name in files:
        assert pq.read_table(tmp_path / "with" / name).equals(pq.read_table(tmp_path / "without" / name)), name
    oracle = pq.read_table(tmp_path / "with" / "truth" / "oracle.parquet")
    assert oracle.schema == ORACLE_SCHEMA
    assert rows["truth/oracle"] == oracle.num_rows > 0


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"oracle_months": -1}, "oracle_months"), ({"oracle_months": 1, "oracle_runs": 0}, "oracle_runs"),
    ({"oracle_months": 1, "oracle_horizon_months": 0}, "oracle_horizon_months")])
def test_arguments_out_of_range_are_refused_by_name(kwargs: dict[str, int], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        simulate_tables(10, 4, seed=1, **kwargs)


def test_the_oracles_lever_is_the_lever_that_moves(history: History) -> None:
    """The oracle names the lever likeliest to move where the account expands: null where it never expands, and
    among the levers the history recorded behind a real expansion more often than any one lever named for all."""
    recorded: dict[tuple[str, str], set[str]] = {}
    for r in history.tables["truth_expansions"].to_pylist():
        recorded.setdefault((r["account_id"], r["month"]), set()).add(r["lever"])
    ids, values = line_values(history.tables, MONTHS)
    index = {a: i for i, a in enumerate(ids)}
    named, moved = [], []
    for s, table in history.second.items():
        rows = table.to_pylist()
        assert all(r["lever"] is None for r in rows if r["p_expansion"] == 0)
        _, grew, _ = realised(values, s, HORIZON)
        window = [f"{(START.year * 12 + START.month - 1 + t) // 12:04d}-{(START.month - 1 + t) % 12 + 1:02d}"
                  for t in range(s + 1, s + HORIZON + 1)]
        for r in rows:
            levers = set().union(*(recorded.get((r["account_id"], month), set()) for month in window))
            if grew[index[r["account_id"]]] and levers:
                named.append(r["lever"])
                moved.append(levers)
    assert len(moved) > 300
    hits = np.mean([lever in levers for lever, levers in zip(named, moved, strict=True)])
    best_constant = max(np.mean([lever in levers for levers in moved]) for lever in TRUTH_LEVERS)
    assert hits > best_constant + 0.02, (hits, best_constant)
