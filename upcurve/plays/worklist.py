"""This week's worklist: the accounts each owner should work, the motion, the lever and the play."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from upcurve.scoring.config import ScoringConfig

__all__ = ["WORKLIST_COLUMNS", "weekly_worklist"]

WORKLIST_COLUMNS = ("week", "rank", "owner", "owner_rank", "account_id", "name", "mrr_cents", "motion",
                    "value_at_stake_cents", "expansion_propensity", "churn_risk", "expected_expansion_mrr_cents",
                    "recommended_lever", "reasons", "suggested_play", "scored_by")


def _values(table: pa.Table, name: str, default: object = None) -> list:
    return table[name].to_pylist() if name in table.column_names else [default] * table.num_rows


def weekly_worklist(accounts: pa.Table, config: ScoringConfig, *, as_of: dt.date) -> pa.Table:
    """The accounts to work in the week of ``as_of``, ranked, at most ``capacity_per_owner`` per owner (per owner
    and motion with ``separate_motions``).

    Formula
    -------
    For each paying account, with ``p`` its expansion propensity, ``r`` its churn risk and ``MRR`` its MRR:
    expansion value ``E`` = ``expected_expansion_mrr_cents`` (``p`` × the expected size of its expansion) and
    retention value ``R`` = ``r × MRR`` (the MRR it is expected to lose). The motion is ``retain`` when churn is
    both the likelier outcome and the larger money, ``r > p`` and ``R > E`` (its play the save play, its reasons
    the churn reasons, its ``scored_by`` the churn model's); else ``expand`` (the play of its recommended lever,
    the expansion model's). ``value_at_stake_cents`` is the value of that motion, ``E`` or ``R``; it ranks the
    accounts, and each owner keeps their top ``capacity_per_owner``.

    Edge cases
    ----------
    An account likely to expand and unlikely to churn (``p ≥ r``) is never ``retain``, however small its expected
    expansion. Scored by the cold-start rules (no expected amount), ``E = expansion score × MRR`` and ``R = churn
    score × MRR``. Accounts without an owner are worked as ``unassigned``; ties are broken by MRR, then account id.
    An account paying nothing is not listed. ``week`` is the Monday of the as-of date's week.
    """
    mrr = np.asarray(_values(accounts, "mrr_cents", 0), dtype=float)
    paying = np.nan_to_num(mrr) > 0
    t = accounts.filter(pa.array(paying))
    mrr = mrr[paying]
    propensity_values = np.nan_to_num(np.asarray(_values(t, "expansion_propensity", 0), dtype=float))
    expected_values = _values(t, "expected_expansion_mrr_cents", None)
    expected = np.asarray([np.nan if v is None else v for v in expected_values], dtype=float)
    # scored by the rules there is no expected amount: the two rule scores are weighed on the same MRR
    expected = np.where(np.isnan(expected), propensity_values * mrr, expected)
    risk = np.nan_to_num(np.asarray(_values(t, "churn_risk", 0), dtype=float))
    retain_value = risk * mrr
    retain = (risk > propensity_values) & (retain_value > expected)
    value = np.rint(np.where(retain, retain_value, expected)).astype(np.int64)
    owners = [o or "unassigned" for o in _values(t, "owner")]
    ids = _values(t, "account_id")
    order = sorted(range(t.num_rows), key=lambda i: (-value[i], -mrr[i], ids[i]))
    taken: dict[tuple[str, bool], int] = {}
    keep: list[int] = []
    owner_rank: list[int] = []
    for i in order:
        queue = (owners[i], bool(retain[i]) if config.separate_motions else False)
        n = taken.get(queue, 0)
        if n < config.capacity_per_owner:
            taken[queue] = n + 1
            keep.append(i)
            owner_rank.append(n + 1)
    levers, reasons, churn_reasons = _values(t, "recommended_lever"), _values(t, "reasons"), _values(t, "churn_reasons")
    names, propensity = _values(t, "name"), _values(t, "expansion_propensity")
    # what scored the score the motion acts on (a table scored before the per-target columns: the one column)
    by_expansion = _values(t, "expansion_scored_by") if "expansion_scored_by" in t.column_names else _values(
        t, "scored_by")
    by_churn = _values(t, "churn_scored_by") if "churn_scored_by" in t.column_names else _values(t, "scored_by")
    week = as_of - dt.timedelta(days=as_of.weekday())
    return pa.table({
        "week": pa.array([week] * len(keep), pa.date32()),
        "rank": pa.array(range(1, len(keep) + 1), pa.int64()),
        "owner": pa.array([owners[i] for i in keep], pa.string()),
        "owner_rank": pa.array(owner_rank, pa.int64()),
        "account_id": pa.array([ids[i] for i in keep], pa.string()),
        "name": pa.array([names[i] for i in keep], pa.string()),
        "mrr_cents": pa.array([int(mrr[i]) for i in keep], pa.int64()),
        "motion": pa.array(["retain" if retain[i] else "expand" for i in keep], pa.string()),
        "value_at_stake_cents": pa.array([int(value[i]) for i in keep], pa.int64()),
        "expansion_propensity": pa.array([propensity[i] for i in keep], pa.float64()),
        "churn_risk": pa.array([float(risk[i]) for i in keep], pa.float64()),
        "expected_expansion_mrr_cents": pa.array([expected_values[i] for i in keep], pa.int64()),
        "recommended_lever": pa.array([None if retain[i] else levers[i] for i in keep], pa.string()),
        "reasons": pa.array([churn_reasons[i] if retain[i] else reasons[i] for i in keep], pa.string()),
        "suggested_play": pa.array([config.play("retain" if retain[i] else levers[i]) for i in keep], pa.string()),
        "scored_by": pa.array([by_churn[i] if retain[i] else by_expansion[i] for i in keep], pa.string()),
    })
