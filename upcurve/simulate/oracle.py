"""The oracle: each paying account's true probability of expanding and of churning in the months ahead.

upcurve learns, from a company's history, the chance that each paying account expands and the chance that it churns
within the next ``horizon_months``. The simulator knows what no model can see: every account's hidden state (health,
growth, tier, seats, add-ons, API usage, annual contract, the intent to upgrade or to buy an add-on). The oracle
re-simulates the months after a month end from that state many times; the share of those futures in which an
account expanded (churned) is its true probability, the best ranking any model could reach on that company.

Method
------
At the end of month ``s`` (once the simulator has simulated it), the accounts paying then are copied ``runs`` times,
stacked into one block (:data:`BATCH_RUNS` copies at a time, fewer when they hold more than :data:`BATCH_USERS`
users, so memory stays bounded), and the months
``s + 1 … s + horizon_months`` are simulated with the simulator's own monthly step, so every rule of the company
applies as it does in the history. The copies write no records (no invoice lines, tickets, activities or product
events: none of them moves an account's state) and draw from generators of their own, one per batch, seeded from
``(seed, block, s, batch)`` and never from the company's stream: every table the simulator writes is the same with
or without the oracle, and the oracle is the same for the same seed.

Formula
-------
``value(t)``, an account's recurring monthly revenue after month ``t`` (:func:`recurring_cents`), in cents of its
own currency at constant list prices: core plan list price a month (an annual plan's ÷ 12) × seats (1 for the flat
starter plan) × the account's discount, plus each add-on's list price (× seats for a per-seat add-on), plus the
metered API calls past the profile's included volume ``round(max(calls − included, 0)) × 0.002`` (100,000 included
by default; 0 when every call is billed); 0 while it does not pay. In one run:

- expanded ⇔ ``Σ value(t) − value(t − 1) > 0`` over the months ``t`` of ``s + 1 … s + horizon_months`` in which the
  account paid both in ``t − 1`` and in ``t`` (churn and reactivation amounts do not count);
- churned ⇔ the account, paying at ``s``, is not paying at the end of some month of the window.

``p_expansion`` = runs expanded ÷ runs; ``p_churn`` = runs churned ÷ runs. A ``p_churn`` of 0.12 reads: in 12% of the
futures its state allows, the account stopped paying within the window. These are upcurve's labels
(``upcurve.scoring.snapshots.labels_after``) computed from the simulator's state instead of its invoices.
``lever`` = the lever (:data:`TRUTH_LEVERS`) that moved in the most of the runs in which the account expanded, as
the simulator records levers in ``truth/expansions``: the best lever any recommendation could name (null when no
run expanded through a lever).

Edge cases
----------
- Only accounts paying at the end of ``s`` get a row. A month ``s`` whose window reaches past the simulated history
  gets no row at all (:func:`snapshot_months`).
- A churn later undone by a return in the window is a churn; the return is a reactivation, not an expansion.
- Price changes are not expansion: values are at constant list prices, so the company's list-price rises and the old
  price an annual contract keeps until renewal move nothing. Exchange rates move nothing either (own currency).
- Annual contracts keep their tier and seats until renewal, except seats bought mid-term: they are billed at once, pro
  rata to the end of the term, so they raise the value from the month they are bought, as on the invoices. In a
  company whose annual contracts change only at renewal (``renewal_changes_only``), seats and add-ons move only in
  the renewal month, and the oracle's futures wait for it as the history does.
- Seasonality follows the calendar month of each simulated future month (the copies step through the same months
  ``s + 1 … s + horizon_months`` as the history), so a window before the budget season has higher odds.
- A monthly payer that upgrades mid-period is billed the difference by a proration line until its next invoice. The
  oracle counts the new tier's full price from that month (a deliberate approximation): the ledger reads the
  proration line at its monthly rate, 0.98–1.09 times the difference over a 31- to 28-day period, and the rest shows
  as a change of a few cents the month after. Where that month is the first of a window and nothing else changes,
  upcurve's label may see an expansion that the oracle does not.
- Values are rounded to cents once per account and month (the ledger rounds each line); a period between clamped
  month-end anniversaries is one month here (the ledger may count it in days).
- Monte Carlo error: each probability is a share of ``runs`` futures, with standard error
  ``√(p (1 − p) / runs)``, at most 0.035 at 200 runs.
- Once a month, the simulated company drops the same add-on for every account that drops one; each copy of the
  company draws its own.

Examples
--------
>>> list(snapshot_months(12, 4, horizon_months=3))
[5, 6, 7, 8]
>>> list(snapshot_months(3, 4, horizon_months=3))
[]
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from upcurve.errors import ConfigError
from upcurve.simulate.catalog import ADDONS, CORE_TIERS, PLAN_BY_ID

if TYPE_CHECKING:
    from upcurve.simulate.company import _Block

__all__ = ["BATCH_RUNS", "ORACLE_SCHEMA", "TRUTH_LEVERS", "OracleRequest", "oracle_probabilities", "oracle_seeds",
           "recurring_cents", "snapshot_months"]

#: Most runs simulated together, as stacked copies of a block's accounts, by one generator.
BATCH_RUNS = 25
#: Most users a batch of copies holds (fewer copies are stacked when the accounts have many users): about 100 bytes
#: each while a month is simulated, so a batch stays within a few hundred megabytes.
BATCH_USERS = 2_000_000
#: The columns of ``truth/oracle``.
ORACLE_SCHEMA = pa.schema([("account_id", pa.string()), ("month", pa.string()), ("p_expansion", pa.float64()),
                           ("p_churn", pa.float64()), ("runs", pa.int64()), ("horizon_months", pa.int64()),
                           ("lever", pa.string())])
#: The levers the simulator records behind an expansion (``truth/expansions``), in the order ties are broken.
TRUTH_LEVERS = ("usage", "seat", "tier", "premium", "cross_sell", "services")
#: The first word of every oracle generator's spawn key: the company's own streams never use it.
_STREAM = 0x0AC1E
#: The block's arrays indexed by user rather than by account.
_USER_ARRAYS = ("u_acc", "u_inv", "u_act", "u_deact")


@dataclass(frozen=True)
class OracleRequest:
    """What the oracle is asked for: ``months`` snapshot month ends (0: no oracle), ``runs`` futures each, over
    windows of ``horizon_months``; the keyword arguments ``oracle_*`` of ``simulate_company``."""

    months: int = 0
    runs: int = 200
    horizon_months: int = 3

    def check(self, history_months: int) -> None:
        """Raise :class:`~upcurve.errors.ConfigError` naming every argument out of its range, and asking for more
        month ends than a ``history_months``-month history has whole windows after (never a shorter file, silently).
        """
        wrong = [f"{name} must be at least {least}, got {value}" for name, value, least in (
            ("oracle_months", self.months, 0), ("oracle_runs", self.runs, 1),
            ("oracle_horizon_months", self.horizon_months, 1)) if value < least]
        if not wrong and self.months:
            found = len(snapshot_months(history_months, self.months, horizon_months=self.horizon_months))
            if found < self.months:
                wrong.append(f"oracle_months {self.months}: a {history_months}-month history has {found} month end(s) "
                             f"with a whole {self.horizon_months}-month window after them; ask for at most {found} "
                             "or simulate more months")
        if wrong:
            raise ConfigError("the oracle: " + "; ".join(wrong))


def _core_list_prices() -> np.ndarray:
    """The core plan's list price a month, by tier rank (rows 1–3) and billing (column 0 monthly, 1 annual)."""
    prices = np.zeros((len(CORE_TIERS) + 1, 2))
    for rank, tier in CORE_TIERS.items():
        for annual, interval in ((0, "m"), (1, "y")):
            plan = PLAN_BY_ID.get(f"core_{tier}_{interval}")
            if plan is not None:
                prices[rank, annual] = plan.unit_price / plan.interval_months
    return prices


_CORE_PRICES = _core_list_prices()


def snapshot_months(months: int, count: int, *, horizon_months: int) -> range:
    """The last ``count`` month indices of a ``months``-month history whose whole window lies inside it.

    Formula
    -------
    Months ``s`` with ``s + horizon_months ≤ months − 1``, the latest ``count`` of them.

    Edge cases
    ----------
    Empty when ``count`` is 0 or ``horizon_months ≥ months``; fewer than ``count`` when the history is short.
    """
    last = months - 1 - horizon_months
    return range(max(0, last - count + 1), last + 1) if count > 0 and last >= 0 else range(0)


def recurring_cents(block: _Block) -> np.ndarray:
    """Each account's recurring monthly revenue after the month the block last simulated, in cents.

    Formula
    -------
    ``core list price a month × (1 if starter else seats) × discount + Σ add-on list price × (seats if per seat
    else 1) + round(max(api − included calls, 0)) × API unit price``, rounded to cents, for paying accounts; 0 for
    the others. Constant list prices, in the account's own currency (see the module's Edge cases). The included
    calls are the profile's ``api_included`` (0 for a company that bills every call).

    Returns
    -------
    An ``int64`` array, one value per account of the block.
    """
    seats = block.seats.astype(float)
    core = _CORE_PRICES[block.tier, block.annual.astype(np.int64)] * np.where(block.tier == 1, 1.0, seats)
    value = core * block.discount
    for k, name in enumerate(ADDONS):
        plan = PLAN_BY_ID[f"{name}_m"]
        value = value + block.addon[:, k] * plan.unit_price * (seats if plan.pricing == "per_seat" else 1.0)
    value = value + np.round(np.maximum(block.api - block.p.api_included, 0.0)) * PLAN_BY_ID["api_m"].unit_price
    return np.where(block.active, np.round(value * 100), 0).astype(np.int64)


def _live_users(block: _Block, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The users of the accounts ``keep`` that are active or yet to activate (the others never count again), and
    each one's account as a position in ``keep``."""
    local = np.full(block.n, -1)
    local[keep] = np.arange(len(keep))
    owner = local[block.u_acc]
    live = (owner >= 0) & ~np.isnat(block.u_act) & np.isnat(block.u_deact)
    return live, owner[live]


def _copies(block: _Block, keep: np.ndarray, users: tuple[np.ndarray, np.ndarray], copies: int,
            rng: np.random.Generator) -> _Block:
    """``copies`` copies of the accounts ``keep`` of ``block`` and of their ``users`` (see :func:`_live_users`),
    stacked into one block that draws from ``rng`` and records nothing. The block itself is left as it was."""
    twin = copy.copy(block)
    n = len(keep)
    for name, value in vars(block).items():
        if not isinstance(value, np.ndarray) or name in _USER_ARRAYS:
            continue
        if value.shape[:1] != (block.n,):
            raise RuntimeError(f"the oracle cannot copy _Block.{name} (shape {value.shape}): an array is either "
                               f"one value per account or one of {_USER_ARRAYS}")
        setattr(twin, name, np.tile(value[keep], (copies,) + (1,) * (value.ndim - 1)))
    live, owner = users
    twin.u_acc = (owner[None, :] + n * np.arange(copies)[:, None]).ravel()
    twin.u_inv = np.tile(block.u_inv[live], copies)
    twin.u_act = np.tile(block.u_act[live], copies)
    twin.u_deact = np.tile(block.u_deact[live], copies)
    twin.n = n * copies
    twin.rng = twin.funnel_rng = rng
    twin.rows = {}
    twin.recording = twin.with_events = False
    twin.levers_moved = np.zeros((twin.n, len(TRUTH_LEVERS)), bool)
    twin.copies = copies
    twin.copy_index = np.repeat(np.arange(copies), n)
    return twin


def _outcomes(twin: _Block, month: int, horizon_months: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate the window after ``month`` on ``twin``; whether each of its accounts expanded, churned, and moved
    each lever (accounts × :data:`TRUTH_LEVERS`)."""
    value, paying = recurring_cents(twin), twin.active.copy()
    net = np.zeros(twin.n, np.int64)
    churned = np.zeros(twin.n, bool)
    for m in range(month + 1, month + horizon_months + 1):
        twin.month(m)
        now, on = recurring_cents(twin), twin.active.copy()
        net += np.where(paying & on, now - value, 0)
        churned |= ~on
        value, paying = now, on
    assert twin.levers_moved is not None  # a copy made by _copies
    return net > 0, churned, twin.levers_moved


def oracle_probabilities(block: _Block, month: int, *, runs: int, horizon_months: int,
                         seeds: np.random.SeedSequence) -> pa.Table:
    """Each account paying at the end of ``month`` with its true probability of expanding and of churning.

    ``block`` has just simulated ``month``; it is left exactly as it was (state and random stream). See the module
    docstring for the method and the formula.

    Parameters
    ----------
    block
        The simulator's block of accounts, after ``month(month)``.
    month
        The snapshot month ``s``, an index from the start of the history.
    runs
        How many futures to simulate (≥ 1).
    horizon_months
        The window's length: months ``s + 1 … s + horizon_months``, which must lie inside the history.
    seeds
        The root of the oracle's generators: batch ``i`` of month ``s`` draws from the seed sequence with this
        root's entropy and the spawn key ``(*seeds.spawn_key, s, i)``.

    Returns
    -------
    Columns of :data:`ORACLE_SCHEMA`: ``account_id``, ``month`` (``YYYY-MM`` of ``s``), ``p_expansion``, ``p_churn``,
    ``runs``, ``horizon_months`` and ``lever``; one row per account paying at ``s``.

    Edge cases
    ----------
    No paying account: an empty table. A window reaching past the history is refused (``ValueError``).
    """
    if runs < 1 or horizon_months < 1:
        raise ValueError(f"the oracle needs runs ≥ 1 and horizon_months ≥ 1, got {runs} and {horizon_months}")
    if month + horizon_months >= block.months:
        raise ValueError(f"month {month} + {horizon_months} months reaches past the {block.months}-month history")
    keep = np.flatnonzero(block.active)
    expanded = np.zeros(len(keep), np.int64)
    churned = np.zeros(len(keep), np.int64)
    levers = np.zeros((len(keep), len(TRUTH_LEVERS)), np.int64)  # futures that expanded and moved each lever
    if len(keep):
        users = _live_users(block, keep)
        per_batch = max(1, min(BATCH_RUNS, BATCH_USERS // max(len(users[1]), 1)))
        for batch, first in enumerate(range(0, runs, per_batch)):
            copies = min(per_batch, runs - first)
            rng = np.random.default_rng(np.random.SeedSequence(seeds.entropy,
                                                               spawn_key=(*seeds.spawn_key, month, batch)))
            grew, left, moved = _outcomes(_copies(block, keep, users, copies, rng), month, horizon_months)
            expanded += grew.reshape(copies, len(keep)).sum(axis=0)
            churned += left.reshape(copies, len(keep)).sum(axis=0)
            levers += (moved & grew[:, None]).reshape(copies, len(keep), len(TRUTH_LEVERS)).sum(axis=0)
    # the lever likeliest to move in the futures where the account expands (ties: TRUTH_LEVERS' order)
    lever = [TRUTH_LEVERS[int(row.argmax())] if row.any() else None for row in levers]
    return pa.table({
        "account_id": pa.array(block.ids[keep], pa.string()),
        "month": pa.array([block._label(month)] * len(keep), pa.string()),
        "p_expansion": pa.array(expanded / runs, pa.float64()),
        "p_churn": pa.array(churned / runs, pa.float64()),
        "runs": pa.array(np.full(len(keep), runs), pa.int64()),
        "horizon_months": pa.array(np.full(len(keep), horizon_months), pa.int64()),
        "lever": pa.array(lever, pa.string()),
    }, schema=ORACLE_SCHEMA)


def oracle_seeds(seed: int, block: int) -> np.random.SeedSequence:
    """The root of the oracle's generators for block ``block`` of the company simulated with ``seed``."""
    return np.random.SeedSequence([seed, block], spawn_key=(_STREAM,))
