"""The backtest: replay past month ends, train every model on what was known then, and compare with what
happened."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from upcurve.errors import ContractError, Problem
from upcurve.months import month_end, month_label
from upcurve.revenue import RevenueTables
from upcurve.scoring.backtest import calibration_table, ranking_metrics
from upcurve.scoring.config import ScoringConfig
from upcurve.scoring.scorer import (
    MODEL_KINDS,
    TRAINING_ORDER,
    AccountScorer,
    chosen_kind,
    levers_moved,
    rule_scores,
    scored_by_summary,
)
from upcurve.scoring.training import (
    DrawnKeys,
    drawn_keys,
    history_size,
    labelled_keys,
    training_dates,
)
from upcurve.signals.health import HealthConfig, health_scores
from upcurve.simulate.oracle import ORACLE_SCHEMA

__all__ = ["BACKTEST_METRICS", "ORACLE_COLUMNS", "BacktestDraw", "Replay", "SnapshotsAt", "cutoff_months",
           "draw_backtest", "read_oracle", "replay", "snapshot_health"]

#: The columns an oracle file must hold, and the Arrow type each must read as: the simulator's own schema (its
#: ``lever``, which the backtest does not read, may be absent).
ORACLE_COLUMNS = {field.name: field.type for field in ORACLE_SCHEMA if field.name != "lever"}

#: The columns of ``backtest_metrics``.
BACKTEST_METRICS = ["cutoff", "target", "model", "auc", "log_loss", "brier", "precision_at_k", "lift_top_decile",
                    "base_rate", "rows", "lever_match", "share_of_oracle"]


@dataclass(frozen=True)
class BacktestDraw:
    """The snapshots a backtest of a large history reads, drawn from the labelled snapshots' keys (read from the
    revenue ledger, :func:`~upcurve.scoring.training.labelled_keys`) before any signal is computed: at each cutoff
    the training sample (the same rows :meth:`~upcurve.scoring.scorer.AccountScorer.fit` would draw from every
    labelled snapshot before it) and every paying account at the cutoff. Only their signals are computed
    (:attr:`pairs`), and each cutoff's snapshots only when it is replayed (:attr:`pairs_at`); the other snapshots
    are never computed or read."""

    #: the months (``snapshot_idx``) of the labelled snapshots
    months: list[int]
    #: the cutoffs replayed (:func:`cutoff_months`)
    cutoffs: list[int]
    #: each cutoff's training sample: its keys (``snapshot_idx``, ``account_id``, ``snapshot``; None where every
    #: labelled snapshot before the cutoff is learnt from) and how many labelled snapshots there were before it
    samples: dict[int, DrawnKeys]
    #: each cutoff's snapshots, as dates and accounts (``as_of``, ``account_id``): its sample and its accounts
    pairs_at: dict[int, pa.Table]

    @property
    def pairs(self) -> pa.Table:
        """The dates and accounts (``as_of``, ``account_id``) whose signals the backtest reads: every cutoff's, each
        once."""
        return pa.concat_tables(self.pairs_at.values()).group_by(["as_of", "account_id"]).aggregate([])


def cutoff_months(months: Sequence[int], config: ScoringConfig, cutoffs: int) -> list[int]:
    """The last ``cutoffs`` of the snapshot ``months`` (``snapshot_idx``, ascending), ``horizon_months`` apart so
    that their outcome windows do not overlap, in ascending order."""
    return list(months)[::-1][::config.horizon_months][:cutoffs][::-1]


def draw_backtest(tables: dict[str, ir.Table], revenue: RevenueTables, config: ScoringConfig, *, first: dt.date,
                  as_of: dt.date, cutoffs: int) -> BacktestDraw | None:
    """What a backtest of the history up to ``as_of`` with ``cutoffs`` cutoffs reads (:class:`BacktestDraw`), when
    the history could hold more than ``config.max_training_rows`` snapshots (accounts × training dates).

    Only the keys of the labelled snapshots are read (at 100,000 accounts 1.7 million of them: a month, an account
    id and a date each): a million accounts' month ends are never computed whole.

    Edge cases
    ----------
    None when the history is read whole: when it holds few enough snapshots, and when none is labelled (no account
    paid at a month end whose outcome is known; the backtest then says the history is too short).
    """
    dates = training_dates(first, as_of, config)
    if history_size(tables, dates) <= config.max_training_rows:
        return None
    keys = labelled_keys(tables, revenue, config, dates)
    if not keys.num_rows:
        return None
    month = keys["snapshot_idx"]
    months = sorted(pc.unique(month).to_pylist())
    picked = cutoff_months(months, config, cutoffs)
    samples: dict[int, DrawnKeys] = {}
    pairs_at: dict[int, pa.Table] = {}
    for cutoff in picked:
        before = keys.filter(pc.less_equal(pc.add(month, config.horizon_months), cutoff))
        samples[cutoff] = drawn_keys(before, config)
        sampled = samples[cutoff].keys
        read = pa.concat_tables([before if sampled is None else sampled, keys.filter(pc.equal(month, cutoff))])
        pairs_at[cutoff] = read.select(["snapshot", "account_id"]).rename_columns(["as_of", "account_id"])
    return BacktestDraw(months, picked, samples, pairs_at)


@dataclass
class Replay:
    """What a backtest measured: ``tables`` (``backtest_metrics``, ``backtest_calibration`` and
    ``backtest_accounts``: every account at every cutoff as the configured model scored it, and what followed), the
    cutoffs and notes."""

    tables: dict[str, pa.Table]
    notes: list[str]
    cutoffs: list[dt.date]


def snapshot_health(snapshots: ir.Table, accounts: ir.Table, health: HealthConfig, *, as_of: dt.date) -> ir.Table:
    """``snapshots`` with the health score of each row (account × month), with its segment's weights: the
    baseline every model is compared with."""
    keyed = snapshots.mutate(_key=snapshots.account_id + "@" + snapshots.snapshot_idx.cast("string"))
    segments = None
    if "segment" in accounts.columns:
        k = keyed.select("account_id", "_key").view()
        segment = accounts.select("account_id", "segment")
        segments = k.join(segment, "account_id").select(account_id=k._key, segment=segment.segment)
    scored = health_scores(keyed.mutate(account_id=keyed._key), health, as_of=as_of, segments=segments)
    scored = scored.select(_key="account_id", health_score="health_score")
    return keyed.left_join(scored, "_key").select(keyed, scored.health_score).drop("_key")


#: The snapshots a drawn backtest reads at a cutoff (``snapshot_idx``): the cutoff's training sample and its
#: accounts (:attr:`BacktestDraw.pairs_at`), labelled and with ``health_score``, computed when the cutoff is replayed.
SnapshotsAt = Callable[[int], pa.Table]


def replay(frame: pa.Table | SnapshotsAt, config: ScoringConfig, *, cutoffs: int,
           oracle: pa.Table | None = None, say: Callable[[str], None] = lambda _msg: None,
           draw: BacktestDraw | None = None) -> Replay:
    """Replay the last ``cutoffs`` month ends of ``frame`` (labelled snapshots with ``health_score``), each
    ``horizon`` apart so their outcome windows do not overlap.

    ``frame``: every labelled snapshot, in memory; or, for a history too large to compute whole, ``draw`` (what
    :func:`draw_backtest` drew for these ``cutoffs``: the months and each cutoff's sample) and a function computing
    the snapshots drawn for a cutoff (:data:`SnapshotsAt`), called once per cutoff as it is replayed, so that one
    cutoff's snapshots are held at a time (a million accounts' drawn snapshots would not fit in memory at once):
    the same rows, the same models and the same measures as replaying every snapshot.

    At each cutoff LightGBM and the logistic regression are trained on the rows whose outcomes were known then,
    and they (with ``model: auto``, also ``auto``: each outcome by the kind it chooses), the cold-start rules and
    the health score rank that month's accounts; ``backtest_accounts`` holds the configured model's scores. A model
    that could not be trained at a cutoff is reported in the notes, and the rules stand in.

    ``oracle``: each account's true probabilities at month ends (``account_id``, ``month`` as ``YYYY-MM``,
    ``p_expansion``, ``p_churn``: a simulated company's ``truth/oracle.parquet``), the best ranking there can be.
    At a cutoff it covers, it is measured as model ``oracle`` on the same rows and labels, and every row of that
    cutoff and target gets ``share_of_oracle`` = its AUC ÷ the oracle's (1.0: as good as knowing the odds).
    """
    cfg = config
    if callable(frame) != (draw is not None):  # a table with a draw: its every row would be learnt from
        raise ValueError("a drawn backtest (draw_backtest) replays the snapshots computed for each cutoff, a "
                         "function of the cutoff; any other replays a table of every labelled snapshot")
    if draw is not None:
        months = draw.months
    else:  # a cutoff's outcomes must be known: a history too short has none
        if not isinstance(frame, pa.Table):
            raise TypeError("replay takes an Arrow table of every labelled snapshot (an engine's table: "
                            ".to_pyarrow()), or a function of the cutoff with a draw")
        labelled = frame.filter(pc.is_valid(frame["label_expansion"]))
        months = sorted(set(labelled["snapshot_idx"].to_pylist()))
    picked = cutoff_months(months, cfg, cutoffs)
    if draw is not None and picked != draw.cutoffs:
        raise ValueError(f"drawn for the cutoffs {draw.cutoffs}, not {picked}: draw it with cutoffs={cutoffs}")
    notes: list[str] = []
    needed = cfg.min_training_months + cfg.horizon_months + cfg.calibration_months
    rows: list[dict[str, Any]] = []
    calib: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    scored: list[pa.Table] = []
    if not picked or len([m for m in months if m + cfg.horizon_months <= picked[0]]) < needed:
        notes.append(f"history too short for a model: {len(months)} months of snapshots with known outcomes; "
                     f"a backtest needs {needed} months before a cutoff plus {cfg.horizon_months} to see outcomes. "
                     "Accounts are ranked by the cold-start rules until then.")
    for n, cutoff in enumerate(picked, start=1):
        say(f"replaying {month_label(cutoff)}: {n} of {len(picked)}")
        if callable(frame):
            assert draw is not None  # a function of the cutoff comes with its draw (checked above)
            train, sampled_from, test = _drawn_at(frame(cutoff), cutoff, cfg, draw, n)
        else:
            train, sampled_from, test = _before(frame, cutoff, cfg), None, _accounts_at(frame, cutoff)
        y = {t: np.asarray(test[c].to_pylist(), dtype=int) for t, c in (("expansion", "label_expansion"),
                                                                       ("churn", "label_churn"))}
        moved = levers_moved(test)
        fitted = {kind: AccountScorer(cfg.model_copy(update={"model": kind})).fit(train, sampled_from=sampled_from)
                  for kind in MODEL_KINDS}
        # the ranking is measured, not the reasons: each probability from a plain prediction
        scored_as = {kind: scorer.score(test, explain=False) for kind, scorer in fitted.items()}
        if cfg.model == "auto":
            scored_as["auto"] = _auto_scores(fitted, scored_as, cfg, train, test)
        for kind, scores in scored_as.items():
            fallback = fitted.get(kind, fitted[MODEL_KINDS[0]]).fallback_
            for target, column in (("expansion", "expansion_propensity"), ("churn", "churn_risk")):
                p = np.asarray(scores[column].to_pylist(), dtype=float)
                fell_back = target in fallback
                m = ranking_metrics(y[target], p, probabilities=not fell_back)
                row = {"cutoff": month_end(cutoff), "target": target, "model": kind, **m}
                if target == "expansion":
                    # the recommended lever among the levers that moved, for the accounts that expanded
                    levers = scores["recommended_lever"].to_pylist()
                    pairs = [(a, b) for a, b in zip(levers, moved, strict=True) if b]
                    row["lever_match"] = (sum(a in b for a, b in pairs) / len(pairs)) if pairs else math.nan
                if fell_back:  # the rules' own row below stands for it
                    why = f"{month_label(cutoff)}, {target}: no {kind} model ({fallback[target]})"
                    if why not in notes:
                        notes.append(why)
                    continue
                calib.setdefault((kind, target), []).append((p, y[target]))
                rows.append(row)
        scored.append(_scored_accounts(cutoff, test, scored_as[cfg.model]))
        if oracle is not None:
            rows += _oracle_rows(oracle, test, y, cutoff, notes)
        rules = rule_scores(test, cfg.rules)
        h = np.asarray([math.nan if v is None else v for v in test["health_score"].to_pylist()], dtype=float)
        for target, score in (("expansion", rules["expansion"]), ("churn", rules["churn"])):
            rows.append({"cutoff": month_end(cutoff), "target": target, "model": "rules",
                         **ranking_metrics(y[target], score, probabilities=False)})
        for target, score in (("expansion", h), ("churn", 100 - h)):
            rows.append({"cutoff": month_end(cutoff), "target": target, "model": "health_score",
                         **ranking_metrics(y[target], score, probabilities=False)})
        # freed before the next cutoff's snapshots are computed (a million accounts': about a gigabyte)
        del train, test, fitted, scored_as, scores
    best = {(r["cutoff"], r["target"]): r["auc"] for r in rows if r["model"] == "oracle"}
    for r in rows:
        of = best.get((r["cutoff"], r["target"]))
        r["share_of_oracle"] = r["auc"] / of if of and of == of and r["auc"] == r["auc"] else None
    metrics = pa.table({c: [r.get(c) for r in rows] for c in BACKTEST_METRICS})
    tables = {"backtest_metrics": metrics, "backtest_calibration": calibration_table(calib),
              "backtest_accounts": pa.concat_tables(scored) if scored else pa.schema(
                  list(BACKTEST_ACCOUNTS.items())).empty_table()}
    return Replay(tables=tables, notes=notes, cutoffs=[month_end(c) for c in picked])


def _before(frame: pa.Table, cutoff: int, cfg: ScoringConfig) -> pa.Table:
    """The rows the models learn from at ``cutoff``: those whose outcome window had passed by then."""
    return frame.filter(pc.less_equal(pc.add(frame["snapshot_idx"], cfg.horizon_months), cutoff))


def _drawn_at(snapshots: pa.Table, cutoff: int, cfg: ScoringConfig, draw: BacktestDraw, n: int
              ) -> tuple[pa.Table, int | None, pa.Table]:
    """A drawn backtest's rows at ``cutoff``, from the ``snapshots`` computed for it: the training rows in training
    order (as the scorer takes them, without a copy of its own), how many labelled rows they were sampled from
    (None: all of them), and the cutoff's accounts.

    Raises
    ------
    ValueError
        When ``snapshots`` are not the ones drawn for the cutoff (:attr:`BacktestDraw.pairs_at`): other numbers of
        training rows or of accounts (a caller's mistake: the models would learn from other rows than the sample,
        or the backtest would measure other accounts, without saying so)."""
    drawn = draw.samples[cutoff]
    train = _before(snapshots, cutoff, cfg).sort_by(TRAINING_ORDER)
    test = _accounts_at(snapshots, cutoff)
    learnt = drawn.labelled if drawn.keys is None else drawn.keys.num_rows
    wanted = (learnt, draw.pairs_at[cutoff].num_rows - learnt)
    if (train.num_rows, test.num_rows) != wanted or train.num_rows + test.num_rows != snapshots.num_rows:
        raise ValueError(f"the snapshots computed for {month_label(cutoff)} (cutoff {n}) are {train.num_rows:,} "
                         f"training rows and {test.num_rows:,} accounts of {snapshots.num_rows:,}, not the "
                         f"{wanted[0]:,} and {wanted[1]:,} drawn: compute them for BacktestDraw.pairs_at")
    return train, None if drawn.keys is None else drawn.labelled, test


def _accounts_at(frame: pa.Table, cutoff: int) -> pa.Table:
    """Every account's snapshot at ``cutoff``, in the order of their ids (an engine returns rows in any order)."""
    return frame.filter(pc.equal(frame["snapshot_idx"], cutoff)).sort_by("account_id")


#: The columns of ``backtest_accounts``: each account at each cutoff, as the configured model scored it then, and
#: what happened after.
BACKTEST_ACCOUNTS = {"cutoff": pa.date32(), "account_id": pa.string(), "expansion_propensity": pa.float64(),
                     "churn_risk": pa.float64(), "recommended_lever": pa.string(), "expansion_scored_by": pa.string(),
                     "churn_scored_by": pa.string(), "label_expansion": pa.bool_(), "label_churn": pa.bool_(),
                     "expansion_lever": pa.string(), "expansion_levers": pa.string()}


def _auto_scores(fitted: dict[str, AccountScorer], scored_as: dict[str, pa.Table], cfg: ScoringConfig,
                 train: pa.Table, test: pa.Table) -> pa.Table:
    """What ``model: auto`` scores ``test`` as: each target from the kind it chooses (:func:`chosen_kind`), read
    from the fixed kinds' scores rather than trained a third time (the lever and size models do not depend on the
    kind). Without ``choose_history`` the fixed kinds try nothing to choose by, so auto is trained itself."""
    if not cfg.choose_history:
        return AccountScorer(cfg).fit(train).score(test, explain=False)
    columns = {"expansion": ("expansion_propensity", "expected_expansion_mrr_cents", "reasons", "expansion_scored_by"),
               "churn": ("churn_risk", "churn_reasons", "churn_scored_by")}
    out = scored_as[MODEL_KINDS[0]]
    for target, names in columns.items():
        source = scored_as[chosen_kind(fitted, target)]
        for name in names:
            out = out.set_column(out.column_names.index(name), name, source[name])
    # what scored each target is in the columns just taken from it
    said = scored_by_summary({t: out[f"{t}_scored_by"][0].as_py() for t in columns} if out.num_rows else {"": ""})
    return out.set_column(out.column_names.index("scored_by"), "scored_by",
                          pa.array([said] * out.num_rows, pa.string()))


def _scored_accounts(cutoff: int, test: pa.Table, scores: pa.Table) -> pa.Table:
    return pa.table({
        "cutoff": pa.array([month_end(cutoff)] * test.num_rows, pa.date32()),
        "account_id": test["account_id"], "expansion_propensity": scores["expansion_propensity"],
        "churn_risk": scores["churn_risk"], "recommended_lever": scores["recommended_lever"],
        "expansion_scored_by": scores["expansion_scored_by"], "churn_scored_by": scores["churn_scored_by"],
        "label_expansion": test["label_expansion"], "label_churn": test["label_churn"],
        "expansion_lever": test["expansion_lever"],
        "expansion_levers": pa.array([",".join(m) or None for m in levers_moved(test)], pa.string()),
    }).cast(pa.schema(list(BACKTEST_ACCOUNTS.items())))


def _oracle_rows(oracle: pa.Table, test: pa.Table, y: dict[str, np.ndarray], cutoff: int, notes: list[str]
                 ) -> list[dict[str, Any]]:
    """The oracle measured at a cutoff, on the rows it has probabilities for (all of them, for a simulated
    company's paying accounts); none, with a note, when it does not cover the cutoff."""
    label = month_label(cutoff)
    at = oracle.filter(pc.equal(oracle["month"], label))
    if at.num_rows == 0:
        notes.append(f"{label}: the oracle has no probabilities for this month")
        return []
    where = pc.index_in(test["account_id"], value_set=at["account_id"].combine_chunks())
    known = pc.is_valid(where).to_numpy(zero_copy_only=False)
    if not known.all():
        notes.append(f"{label}: the oracle covers {int(known.sum()):,} of {len(known):,} accounts; measured on those")
    rows = []
    for target in ("expansion", "churn"):
        p = np.asarray(at[f"p_{target}"].take(where.filter(pa.array(known))).to_pylist(), dtype=float)
        rows.append({"cutoff": month_end(cutoff), "target": target, "model": "oracle",
                     **ranking_metrics(y[target][known], p)})
    return rows


def read_oracle(path: str | Path, *, horizon_months: int | None = None) -> pa.Table:
    """An oracle file (see :func:`replay`), checked: every problem at once, each naming the file, the column, the
    rows and the rule.

    Raises
    ------
    ContractError
        The file is missing or unreadable, a column is absent or of another type, a month is not ``YYYY-MM``, a
        probability is empty or outside 0–1, an (account, month) appears twice, or its odds are over another window
        than ``horizon_months`` (the backtest's outcomes: odds over 3 months cannot measure 6-month outcomes).
    """
    import pyarrow.parquet as pq

    name = str(path)
    if not Path(path).is_file():
        raise ContractError([Problem(name, "no such file", hint="a simulated company's oracle is truth/oracle.parquet "
                                                                "(`upcurve simulate --oracle-months N`)")])
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ContractError([Problem(name, f"cannot be read as Parquet ({exc})")]) from None
    problems = []
    for column, kind in ORACLE_COLUMNS.items():
        if column not in table.column_names:
            problems.append(Problem(name, "a required column is missing", column,
                                    hint=f"an oracle holds {', '.join(ORACLE_COLUMNS)}"))
        elif not table.schema.field(column).type.equals(kind):
            problems.append(Problem(name, f"must be {kind}, not {table.schema.field(column).type}", column))
    if problems:
        raise ContractError(problems)

    def rows(mask: pa.ChunkedArray | pa.Array, rule: str, column: str) -> None:
        bad = np.flatnonzero(np.asarray(pc.fill_null(mask, True).to_numpy(zero_copy_only=False), dtype=bool))
        if len(bad):
            values = tuple(str(v) for v in table[column].take(pa.array(bad[:3])).to_pylist())
            problems.append(Problem(name, rule, column, count=len(bad), rows=tuple(int(i) + 1 for i in bad[:5]),
                                    values=values))

    rows(pc.invert(pc.match_substring_regex(table["month"], r"^\d{4}-(0[1-9]|1[0-2])$")), "must be YYYY-MM", "month")
    rows(pc.is_null(table["account_id"]), "must not be empty", "account_id")
    for column in ("p_expansion", "p_churn"):
        value = table[column]
        rows(pc.or_(pc.less(value, 0.0), pc.greater(value, 1.0)), "must be a probability from 0 to 1", column)
    keys = pc.binary_join_element_wise(pc.fill_null(table["account_id"], ""), pc.fill_null(table["month"], ""), "@")
    counted = pc.value_counts(keys)
    twice = counted.filter(pc.greater(counted.field("counts"), 1)).field("values")
    if len(twice):
        rows(pc.is_in(keys, value_set=twice), "an account appears twice in a month", "account_id")
    if horizon_months is not None:
        rows(pc.not_equal(table["horizon_months"], horizon_months),
             f"must be the backtest's scoring.horizon_months, {horizon_months} (simulate with "
             f"--oracle-horizon-months {horizon_months})", "horizon_months")
    if problems:
        raise ContractError(problems)
    return table.select(list(ORACLE_COLUMNS))
