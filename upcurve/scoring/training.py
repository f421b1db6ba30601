"""When a scorer learns, from which snapshots, and when a saved one may score a run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc

from upcurve.contract import plan_features
from upcurve.engine import cached
from upcurve.errors import UpcurveError
from upcurve.months import month_end, month_index
from upcurve.revenue import RevenueTables
from upcurve.scoring.config import ScoringConfig
from upcurve.scoring.context import account_context, context_columns
from upcurve.scoring.scorer import TRAINING_ORDER, AccountScorer, training_sample
from upcurve.scoring.snapshots import (
    outcome_known,
    premium_add_ons,
    snapshot_dates,
    training_snapshots,
)
from upcurve.signals import account_signals_at

__all__ = [
    "DrawnKeys",
    "ModelDecision",
    "TrainingSample",
    "check_saved_scorer",
    "draw_training_sample",
    "drawn_keys",
    "fit_scorer",
    "history_size",
    "labelled_keys",
    "labelled_snapshots",
    "model_decision",
    "saved_scorer_problem",
    "score_accounts",
    "training_dates",
]


def training_dates(first: dt.date, as_of: dt.date, config: ScoringConfig) -> list[dt.date]:
    """The month ends, after the warm-up, whose whole outcome window has passed by ``as_of``.

    Edge cases
    ----------
    The as-of month counts as seen only when ``as_of`` is its last day. With too little history the first month
    end is returned alone, so the scorer can say how much more it needs.
    """
    # the as-of month counts as seen only when the as-of date is its last day
    seen = month_index(as_of) - (0 if (as_of + dt.timedelta(days=1)).day == 1 else 1)
    last = seen - config.horizon_months
    dates = [d for d in snapshot_dates(first, month_end(last), warmup_months=config.warmup_months) if d <= as_of]
    return dates or [month_end(month_index(first))]


def labelled_snapshots(tables: dict[str, ir.Table], revenue: RevenueTables, config: ScoringConfig, *,
                       first: dt.date, as_of: dt.date, signals: ir.Table | None = None) -> ir.Table:
    """Month-end snapshots of every paying account up to ``as_of`` whose whole horizon has passed by then, with
    their outcomes (see :func:`training_dates`) and what each account was at the time
    (:func:`upcurve.scoring.context.account_context`)."""
    dates = training_dates(first, as_of, config)
    snaps = training_snapshots(tables, revenue.account_months, revenue.movements, revenue.calendar,
                               plan_features(tables["plans"]), dates,
                               horizon_months=config.horizon_months, product_months=revenue.product_months,
                               premium=premium_add_ons(tables["plans"]), signals=signals)
    # with the signals given (a sample's, a backtest's drawn snapshots', or a run's, which may hold its own dates
    # beside the training dates), only their accounts at the training dates
    at = None if signals is None else signals.filter(signals.as_of.isin(dates)).select("as_of", "account_id")
    context = account_context(tables, dates, at=at)
    s, c = snaps.view(), context.view()
    joined = s.left_join(c, [s.snapshot == c.as_of, s.account_id == c.account_id])
    return joined.select(s, *[c[name] for name in context_columns(context.columns)])


@dataclass(frozen=True)
class TrainingSample:
    """The month ends a scorer learns from and, when its history is too large to learn from whole, the snapshots
    drawn from it (:func:`draw_training_sample`): chosen from their keys, before any of their signals is computed.
    """

    #: the training dates (:func:`training_dates`)
    dates: list[dt.date]
    #: the drawn snapshots' ``snapshot_idx``, ``account_id`` and ``snapshot``, an in-memory table for the engine to
    #: join; None when the scorer learns from every labelled snapshot
    keys: ir.Table | None = None
    #: how many labelled snapshots they were drawn from (None: not drawn)
    drawn_from: int | None = None

    def signal_pairs(self, accounts: ir.Table, also_at: Sequence[dt.date] = ()) -> ir.Table | None:
        """The dates and accounts (``as_of``, ``account_id``) whose signals the scorer needs: the drawn snapshots,
        and every account of ``accounts`` at ``also_at`` (a run's own dates, computed in the same query); None
        when nothing was drawn (every account at every date, :func:`~upcurve.signals.account_signals_at`)."""
        if self.keys is None:
            return None
        drawn = self.keys.select(as_of=self.keys.snapshot, account_id=self.keys.account_id)
        if not also_at:
            return drawn
        when = ibis.memtable(pa.table({"as_of": pa.array(sorted(set(also_at)), pa.date32())}))
        every = accounts.select("account_id").cross_join(when).select("as_of", "account_id")
        return drawn.union(every, distinct=True)  # a drawn snapshot may fall on one of a run's dates


def draw_training_sample(tables: dict[str, ir.Table], revenue: RevenueTables, config: ScoringConfig, *,
                         first: dt.date, as_of: dt.date) -> TrainingSample:
    """The snapshots a scorer learns from at ``as_of``, drawn before any of their signals is computed.

    When the history could hold more than ``config.max_training_rows`` snapshots (accounts × training dates), the
    sample (:func:`~upcurve.scoring.scorer.training_sample`) is drawn from the labelled snapshots' keys alone,
    read from the ledger's account months: an account of ``accounts`` paying in a training date's month (where
    its signals' ``mrr_cents`` is above 0, :func:`~upcurve.scoring.snapshots.snapshot_features`) whose outcome
    window has passed (:func:`~upcurve.scoring.snapshots.outcome_known`). The same rows as sampling every
    labelled snapshot read whole; only the sample's signals are then computed (at 100,000 accounts 400,000
    snapshots of 1.7 million labelled, and 3 million accounts × dates). A smaller history is learnt from whole.
    """
    dates = training_dates(first, as_of, config)
    if history_size(tables, dates) <= config.max_training_rows:
        return TrainingSample(dates)
    drawn = drawn_keys(labelled_keys(tables, revenue, config, dates), config)
    if drawn.keys is None:
        return TrainingSample(dates)
    return TrainingSample(dates, ibis.memtable(drawn.keys), drawn.labelled)


def labelled_keys(tables: dict[str, ir.Table], revenue: RevenueTables, config: ScoringConfig,
                  dates: Sequence[dt.date]) -> pa.Table:
    """The keys (``snapshot_idx``, ``account_id``, ``snapshot``) of the labelled snapshots at ``dates``, read from
    the ledger's account months before any signal is computed, in :data:`~upcurve.scoring.scorer.TRAINING_ORDER`:
    an account of ``accounts`` paying in a date's month (where its signals' ``mrr_cents`` is above 0,
    :func:`~upcurve.scoring.snapshots.snapshot_features`) whose outcome window has passed
    (:func:`~upcurve.scoring.snapshots.outcome_known`). The keys of the rows :func:`labelled_snapshots` gives."""
    when = ibis.memtable(pa.table({"snapshot_idx": pa.array([month_index(d) for d in dates], pa.int64()),
                                   "snapshot": pa.array(list(dates), pa.date32())}))
    am = revenue.account_months
    paying = am.filter(am.cur_mrr_cents > 0).semi_join(tables["accounts"], "account_id")
    keys = paying.join(when, paying.month_idx == when.snapshot_idx).select(
        when.snapshot_idx, paying.account_id, when.snapshot)
    labelled = keys.filter(outcome_known(keys.snapshot_idx, revenue.calendar, config.horizon_months))
    return labelled.to_pyarrow().sort_by(TRAINING_ORDER)


def fit_scorer(tables: dict[str, ir.Table], revenue: RevenueTables, config: ScoringConfig, *, first: dt.date,
               as_of: dt.date, signals: ir.Table | None = None, sample: TrainingSample | None = None
               ) -> AccountScorer:
    """An :class:`AccountScorer` trained on the snapshots whose outcomes are known at ``as_of``: every labelled
    one, or the sample drawn from them (:func:`draw_training_sample`), whose signals alone are computed and read
    (a million accounts' month ends would not fit in memory).

    ``sample`` and ``signals``: drawn already, and the signals computed for (at least) the sample's pairs
    (:meth:`TrainingSample.signal_pairs`), as a run does to compute them in the same query as its own dates'.

    Raises
    ------
    ValueError
        When ``signals`` lack some of the sample's snapshots (a caller's mistake: the models would learn from
        fewer rows than the sample without saying so)."""
    if sample is None:
        sample = draw_training_sample(tables, revenue, config, first=first, as_of=as_of)
    if signals is None:
        # the sample's alone, held by the engine: the labels and the features both read it, and it must not be
        # computed twice
        signals = cached(account_signals_at(tables, revenue.account_months, plan_features(tables["plans"]),
                                            sample.dates, only=sample.signal_pairs(tables["accounts"])))
    elif sample.keys is not None:
        # given with a run's own dates beside the sample (one of which may be a training date): the sample's only
        keys = sample.keys
        signals = signals.semi_join(keys, [signals.account_id == keys.account_id, signals.as_of == keys.snapshot])
    snapshots = labelled_snapshots(tables, revenue, config, first=first, as_of=as_of, signals=signals)
    rows = (snapshots if sample.keys is None else _ordered_for_learning(snapshots)).to_pyarrow()
    if sample.keys is not None and rows.num_rows != config.max_training_rows:
        raise ValueError(f"the signals given hold {rows.num_rows:,} of the training sample's "
                         f"{config.max_training_rows:,} snapshots: compute them for its pairs "
                         "(TrainingSample.signal_pairs)")
    scorer = AccountScorer(config).fit(rows, sampled_from=sample.drawn_from)
    scorer.card_["as_of"] = as_of.isoformat()
    return scorer


class DrawnKeys(NamedTuple):
    """The keys of the labelled snapshots a scorer learns from (:func:`drawn_keys`)."""

    #: the sample's keys, in training order; None when the scorer learns from every labelled snapshot
    keys: pa.Table | None
    #: how many labelled snapshots there were to draw from
    labelled: int


def drawn_keys(keys: pa.Table, config: ScoringConfig) -> DrawnKeys:
    """The rows of ``keys`` (labelled snapshots' keys in :data:`~upcurve.scoring.scorer.TRAINING_ORDER`) a scorer
    learns from: the sample (:func:`~upcurve.scoring.scorer.training_sample`), or None within
    ``config.max_training_rows`` (it learns from every one)."""
    keep = training_sample(keys.num_rows, config)
    return DrawnKeys(None if keep is None else keys.take(keep), keys.num_rows)


def _ordered_for_learning(snapshots: ir.Table) -> ir.Table:
    """``snapshots`` ordered by the engine as the scorer learns from them, which then takes them as they come."""
    return snapshots.order_by([name for name, _ in TRAINING_ORDER])


def history_size(tables: dict[str, ir.Table], dates: list[dt.date]) -> int:
    """The most snapshots a history can hold, one per account and training date: beyond
    ``scoring.max_training_rows`` it is sampled in the engine rather than read whole (one count of the accounts)."""
    return int(tables["accounts"].count().to_pyarrow().as_py()) * len(dates)


def saved_scorer_problem(card: dict[str, Any], config: ScoringConfig, as_of: dt.date) -> str | None:
    """Why a saved scorer may not score a run at ``as_of`` with these settings (None when it may).

    A scorer that learned from data after ``as_of`` would score the past with the future; one trained for
    another horizon or model kind answers another question.
    """
    trained = card.get("as_of")
    if trained and dt.date.fromisoformat(str(trained)) > as_of:
        return (f"it learned from data up to {trained}, after this run's as-of date {as_of}; scoring the past "
                "with it would use the future")
    for key in ("horizon_months", "model"):
        if card.get(key) != getattr(config, key):
            return f"it has {key} = {card.get(key)!r} but the settings say {getattr(config, key)!r}"
    return None


@dataclass(frozen=True)
class ModelDecision:
    """Whether a run scores with the workspace's active model or trains one, and why (said in the run's notes)."""

    use_active: bool
    reason: str
    activate_new: bool = True


def model_decision(card: dict[str, Any] | None, config: ScoringConfig, as_of: dt.date, *,
                   retrain: bool = False, unusable: str | None = None) -> ModelDecision:
    """The workspace's retraining policy.

    A run scores with the active model, and trains a new one only when there is none, when asked (``retrain``),
    when the active model cannot be read or no longer matches the features or settings (``unusable`` or
    :func:`saved_scorer_problem`), or when it is stale: it learned from data more than
    ``retrain_after_months`` months before the run's as-of date. A model trained for a run dated before the active
    model's data (a backfill) scores that run only and does not replace the active model.
    """
    if retrain:
        return ModelDecision(False, "retrained on request (--retrain)")
    if card is None:
        return ModelDecision(False, "no model in the workspace yet: trained one")
    if unusable:
        return ModelDecision(False, f"the active model is unusable ({unusable}): trained a new one")
    trained = dt.date.fromisoformat(str(card.get("as_of")))
    if trained > as_of:
        return ModelDecision(False, f"the active model learned from data up to {trained}, after this run's as-of "
                                    f"date {as_of}: trained one for this run (the active model stays)",
                             activate_new=False)
    problem = saved_scorer_problem(card, config, as_of)
    if problem:
        return ModelDecision(False, f"the active model cannot score this run ({problem}): trained a new one")
    age = month_index(as_of) - month_index(trained)
    if age > config.retrain_after_months:
        return ModelDecision(False, f"the active model learned from data up to {trained}, {age} months before "
                                    f"this run (retrain_after_months: {config.retrain_after_months}): trained a "
                                    "new one")
    return ModelDecision(True, f"scored by the active model, trained on data up to {trained}")


def check_saved_scorer(scorer: AccountScorer, config: ScoringConfig, as_of: dt.date, where: str) -> AccountScorer:
    """``scorer`` if it may score at ``as_of``; otherwise an error saying what to do."""
    problem = saved_scorer_problem(scorer.card_, config, as_of)
    if problem:
        raise UpcurveError(f"{where}: the saved model cannot score this run: {problem}. Train one at {as_of} "
                           f"(`upcurve train --as-of {as_of}`) or retrain (`upcurve run --retrain`).")
    return scorer


def score_accounts(accounts: pa.Table, scorer: AccountScorer, *, currency: str | None = None,
                   context: pa.Table | None = None) -> pa.Table:
    """``accounts`` with the scorer's columns, in the same order; accounts paying nothing at the as-of date are not
    scored. ``currency``: the run's reporting currency, which the reasons show money in. ``context``: each
    account's attributes and product tiers at the as-of date (:func:`upcurve.scoring.context.account_context`),
    which the models learn from beside the signals; it is not added to the output."""
    paying = accounts.filter(pc.greater(accounts["mrr_cents"].fill_null(0), 0))
    if context is not None:
        at = pc.index_in(paying["account_id"], value_set=context["account_id"].combine_chunks())
        for name in context_columns(context.column_names):
            paying = paying.append_column(name, context[name].take(at))
    scores = scorer.score(paying, currency=currency)
    at = pc.index_in(accounts["account_id"], value_set=scores["account_id"])
    out = accounts
    for name in scores.column_names[1:]:
        out = out.append_column(name, scores[name].take(at))
    return out
