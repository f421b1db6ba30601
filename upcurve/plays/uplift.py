"""Measuring what works: the uplift a play caused, read from a holdout of the accounts it could have reached.

A play is worked on some eligible accounts (``treated``) and withheld from a random share of them (``holdout``).
Both groups are followed for the play's success window; because chance alone decided who was held out, the
difference in their conversion (and in their expansion MRR) is what the play caused, not a correlation. Plays the
company logged itself in ``activities`` are measured the same way when it logged its holdouts too, and are reported
as observational only when it did not.

Everything here is a pure function from Arrow tables to Arrow tables or frozen dataclasses: no I/O, no workspace.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from upcurve.errors import ConfigError, ContractError, Problem
from upcurve.revenue.movements import SOURCES

__all__ = [
    "ASSIGNMENT_COLUMNS",
    "CONVERSION_INTERVAL",
    "OUTCOME_COLUMNS",
    "VERDICTS",
    "PlayUplift",
    "assignments_from_activities",
    "outcomes",
    "stable_holdout",
    "stable_holdouts",
    "uplift",
]

GROUPS = ("treated", "holdout")
#: The columns of an assignments table: one row per exposure of an account to a play.
ASSIGNMENT_COLUMNS = ("play", "account_id", "group", "started_on", "window_days", "success_source")
#: The columns :func:`outcomes` adds to the assignments.
OUTCOME_COLUMNS = ("window_end", "converted", "expansion_mrr", "complete")
VERDICTS = ("works", "harms", "no evidence", "too few", "observational only", "pending")
#: The statsmodels method of the conversion-difference interval: Newcomb's hybrid score interval (Newcomb 1998,
#: method 10), built from each group's Wilson interval. It stays inside [−1, 1] and is defined when a group converts
#: none or all of its accounts, where the Wald interval collapses to a point.
CONVERSION_INTERVAL = "newcomb"
_ASSIGNMENT_TYPES = {"play": pa.string(), "account_id": pa.string(), "group": pa.string(),
                     "started_on": pa.date32(), "window_days": pa.int64(), "success_source": pa.string()}
_MOVEMENT_COLUMNS = ("month", "account_id", "type", "source", "amount")
_SHOWN = 5  # rows and values a problem shows


# -- checks ------------------------------------------------------------------------------------------------------
def _problem(table: str, column: str | None, bad: np.ndarray, values: pa.Array | pa.ChunkedArray | None,
             rule: str, hint: str) -> Problem | None:
    """A :class:`Problem` for the rows of ``table`` where ``bad`` holds (rows numbered from 1), or None."""
    rows = np.flatnonzero(bad)
    if not len(rows):
        return None
    shown: tuple[str, ...] = ()
    if values is not None:
        picked = values.take(pa.array(rows[:_SHOWN])).to_pylist()
        shown = tuple(dict.fromkeys(str(v) for v in picked))
    return Problem(table, rule, column, len(rows), tuple(int(r) + 1 for r in rows[:_SHOWN]), shown, hint=hint)


def _missing(table: pa.Table, name: str, columns: tuple[str, ...], hint: str) -> None:
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        raise ContractError([Problem(name, f"missing column(s) {', '.join(absent)}; it has "
                                     f"{', '.join(table.column_names) or 'no columns'}", hint=hint)])


def _nulls(table: pa.Table, name: str, columns: tuple[str, ...]) -> list[Problem]:
    found = [_problem(name, c, np.asarray(pc.is_null(table[c]).to_numpy(zero_copy_only=False)), None,
                      "is empty where a value is required", "fill it in or drop the row") for c in columns]
    return [p for p in found if p is not None]


def _raise(problems: list[Problem | None]) -> None:
    real = [p for p in problems if p is not None]
    if real:
        raise ContractError(real)


def _check_assignments(assignments: pa.Table) -> pa.Table:
    """The assignments with their columns typed, or a :class:`ContractError` naming every problem."""
    name = "assignments"
    _missing(assignments, name, ASSIGNMENT_COLUMNS,
             "an assignments table has one row per exposure: " + ", ".join(ASSIGNMENT_COLUMNS))
    typed = {}
    problems: list[Problem | None] = []
    for col, kind in _ASSIGNMENT_TYPES.items():
        try:
            typed[col] = assignments[col].cast(kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            problems.append(Problem(name, f"has type {assignments[col].type}, not {kind}", col,
                                    hint=f"cast the column to {kind}"))
    _raise(problems)
    problems.extend(_nulls(pa.table(typed), name, ASSIGNMENT_COLUMNS[:-1]))
    group = typed["group"]
    problems.append(_problem(name, "group", np.asarray(
        pc.invert(pc.is_in(group, pa.array(GROUPS))).fill_null(False)), group, "is not treated or holdout",
        "each exposure is either treated (the play was worked) or holdout (held out on purpose)"))
    days = typed["window_days"]
    problems.append(_problem(name, "window_days", np.asarray(pc.less(days, 0).fill_null(False)), days,
                             "is negative", "the success window is the number of days after started_on"))
    source = typed["success_source"]
    problems.append(_problem(name, "success_source", np.asarray(
        pc.and_(pc.is_valid(source), pc.invert(pc.is_in(source, pa.array(SOURCES)))).fill_null(False)), source,
        "is not an expansion source", f"use one of {', '.join(SOURCES)}, or leave it empty for any expansion"))
    _raise(problems)
    for col, values in typed.items():
        assignments = assignments.set_column(assignments.column_names.index(col), col, values)
    return assignments


def _check_movements(movements: pa.Table) -> None:
    name = "movements"
    _missing(movements, name, _MOVEMENT_COLUMNS,
             "pass a run's stored movements table (month as YYYY-MM text, amount as a decimal)")
    amount = movements["amount"]
    if not pa.types.is_decimal(amount.type):
        raise ContractError([Problem(name, f"has type {amount.type}, not an exact decimal", "amount",
                                     hint="money must be exact: pass the stored movements table, or cast whole "
                                          "cents with pc.divide(cents.cast(pa.decimal128(20, 2)), 100)")])
    month = movements["month"].cast(pa.string())
    bad = pc.invert(pc.match_substring_regex(month, r"^\d{4}-(0[1-9]|1[0-2])$")).fill_null(True)
    _raise([_problem(name, "month", np.asarray(bad), month, "is not a month written YYYY-MM",
                     "months are calendar months as text, e.g. 2024-03"),
            *_nulls(movements, name, ("month", "account_id", "type", "amount"))])


# -- outcomes ----------------------------------------------------------------------------------------------------
def _days(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(values.cast(pa.date32()).to_numpy(zero_copy_only=False), dtype="datetime64[D]")


def outcomes(assignments: pa.Table, movements: pa.Table, *, as_of: dt.date) -> pa.Table:
    """Whether each exposed account converted within its play's success window, and the expansion MRR it added.

    Formula
    -------
    An exposure started on day ``s`` with a window of ``w`` days is followed over the ``w`` days after its start,
    ``(s, s + w]``; ``window_end = s + w``. A month's movement is the change between the MRR measured on the
    previous month's last day and on this month's last day, so it happened on one of the month's days: it counts
    when any of them is in the window, that is when

        ``month_end > s`` and ``month_start ≤ s + w``

    (a play started on 15 March with a 30-day window counts March and April; started on 31 March, it counts April
    only; with a 0-day window, the month of the start, unless the start is its last day). Of the movements of the
    account in those months, ``expansion`` rows of ``success_source`` count (every source when it is empty):

    - ``converted``: at least one such row is positive;
    - ``expansion_mrr``: their sum, exact, in the movements' decimal type. An expansion is split into signed parts
      by source (they sum to it exactly), so the sum for one source is the expansion MRR that source added; it is
      not net of contractions;
    - ``complete``: ``window_end ≤ as_of``, the whole window is known. Incomplete rows are returned with what is
      known so far and left out of :func:`uplift`'s statistics.

    Parameters
    ----------
    assignments
        One row per (play, account) exposure: ``play``, ``account_id``, ``group`` (``treated`` or ``holdout``),
        ``started_on`` (date), ``window_days`` (int, ≥ 0), ``success_source`` (one of cross_sell, usage, seat,
        tier, price, or empty for any expansion). Other columns are carried through.
    movements
        A run's stored movements table: ``month`` (``YYYY-MM``), ``account_id``, ``type``, ``source``, ``amount``
        (a decimal).
    as_of
        The day the movements are known to; movements of months starting after it are ignored.

    Returns
    -------
    The assignments, in their order, with ``window_end`` (date), ``converted`` (bool), ``expansion_mrr``
    (decimal) and ``complete`` (bool).

    Edge cases
    ----------
    Months are matched whole: a month straddling the start counts although its movement may predate the play.
    That blur is the same for the treated and the holdout accounts, so it does not bias their difference; a
    window of a month or more keeps it small. An account with no movement in the window did not convert and added
    0. The as-of month is measured on the as-of day, so a window ending within it is complete once that day is
    reached. Problems in either table (missing columns, empty required values, an unknown group or source, a
    negative window, an amount that is not a decimal, a month that is not ``YYYY-MM``) are all reported together
    as a :class:`~upcurve.errors.ContractError`.

    Examples
    --------
    >>> import datetime as dt, pyarrow as pa
    >>> from decimal import Decimal
    >>> a = pa.table({"play": ["seats", "seats"], "account_id": ["a", "b"], "group": ["treated", "holdout"],
    ...               "started_on": [dt.date(2024, 3, 15), dt.date(2024, 3, 31)], "window_days": [30, 30],
    ...               "success_source": ["seat", "seat"]})
    >>> m = pa.table({"month": ["2024-03", "2024-03"], "account_id": ["a", "b"], "type": ["expansion"] * 2,
    ...               "source": ["seat", "seat"],
    ...               "amount": pa.array([Decimal("30.00"), Decimal("15.00")], pa.decimal128(20, 2))})
    >>> out = outcomes(a, m, as_of=dt.date(2024, 4, 20))
    >>> cols = ["account_id", "converted", "expansion_mrr", "complete"]
    >>> out.select(cols).to_pylist()  # doctest: +NORMALIZE_WHITESPACE
    [{'account_id': 'a', 'converted': True, 'expansion_mrr': Decimal('30.00'), 'complete': True},
     {'account_id': 'b', 'converted': False, 'expansion_mrr': Decimal('0.00'), 'complete': False}]
    """
    a = _check_assignments(assignments)
    _check_movements(movements)
    money = movements["amount"].type
    n = a.num_rows
    start = _days(a["started_on"])
    end = start + np.asarray(a["window_days"].to_numpy(zero_copy_only=False), dtype="timedelta64[D]")
    exp = movements.filter(pc.equal(movements["type"], "expansion"))
    month = np.asarray(exp["month"].cast(pa.string()).to_numpy(zero_copy_only=False), dtype="datetime64[M]")
    month_start = month.astype("datetime64[D]")
    month_end = (month + 1).astype("datetime64[D]") - np.timedelta64(1, "D")
    known = month_start <= np.datetime64(as_of, "D")
    moves = pa.table({
        "account_id": exp["account_id"].cast(pa.string()), "_source": exp["source"].cast(pa.string()),
        "_amount": exp["amount"], "_month_start": pa.array(month_start), "_month_end": pa.array(month_end),
    }).filter(pa.array(known))
    left = pa.table({"_row": pa.array(np.arange(n, dtype=np.int64)), "account_id": a["account_id"],
                     "_start": pa.array(start), "_end": pa.array(end), "_want": a["success_source"]})
    # an inner hash join on the account, then the window and the source as a filter: one pass over each table
    joined = left.join(moves, "account_id", join_type="inner")
    in_window = pc.and_(pc.greater(joined["_month_end"], joined["_start"]),
                        pc.less_equal(joined["_month_start"], joined["_end"]))
    of_source = pc.or_(pc.is_null(joined["_want"]), pc.equal(joined["_source"], joined["_want"]).fill_null(False))
    matched = joined.filter(pc.and_(in_window, of_source))
    per_row = matched.group_by("_row").aggregate([("_amount", "sum"), ("_amount", "max")])
    # back to one row per exposure, in order: a left join on the row number
    back = pa.table({"_row": left["_row"]}).join(per_row, "_row", join_type="left outer").sort_by("_row")
    zero = pa.scalar(Decimal(0), pa.decimal128(38, money.scale))
    expansion = back["_amount_sum"].cast(pa.decimal128(38, money.scale)).fill_null(zero).cast(money)
    converted = pc.greater(back["_amount_max"].cast(pa.decimal128(38, money.scale)), zero).fill_null(False)
    complete = end <= np.datetime64(as_of, "D")
    return (a.append_column("window_end", pa.array(end, pa.date32()))
            .append_column("converted", converted)
            .append_column("expansion_mrr", expansion)
            .append_column("complete", pa.array(complete, pa.bool_())))


# -- uplift ------------------------------------------------------------------------------------------------------
_DID = {"seat": "bought seats", "tier": "upgraded their plan", "cross_sell": "bought an add-on",
        "usage": "grew their billed usage", "price": "paid more at a new price", None: "expanded"}


def _amount(value: Decimal) -> str:
    """``4,210``, ``-1,200``: whole units, rounded half away from zero."""
    rounded = value.quantize(Decimal(1), ROUND_HALF_UP)
    return f"{'-' if rounded < 0 else ''}{abs(rounded):,.0f}"


def _money(value: Decimal, currency: str) -> str:
    """``4,210 USD``: the currency code after the amount, as the terminal writes money."""
    return f"{_amount(value)} {currency}"


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


@dataclass(frozen=True)
class PlayUplift:
    """What one play caused: its treated and holdout accounts' conversion and expansion MRR, compared.

    Rates and their difference are fractions (0.07 is 7 points); money is exact decimals in the movements'
    currency, rounded to the cent once. Values that cannot be measured (a group with no complete window, an
    interval of a group of one) are None. See :func:`uplift` for the formulas and the verdicts.
    """

    play: str
    verdict: str
    n_treated: int
    n_holdout: int
    conversions_treated: int
    conversions_holdout: int
    rate_treated: float | None
    rate_holdout: float | None
    difference: float | None
    difference_low: float | None
    difference_high: float | None
    relative_lift: float | None
    incremental_conversions: float | None
    mean_mrr_treated: Decimal | None
    mean_mrr_holdout: Decimal | None
    mean_mrr_difference: Decimal | None
    mean_mrr_low: Decimal | None
    mean_mrr_high: Decimal | None
    incremental_mrr: Decimal | None
    incremental_mrr_low: Decimal | None
    incremental_mrr_high: Decimal | None
    pending: int
    window_days: int | None
    success_source: str | None
    confidence: float
    min_per_group: int
    currency: str

    @property
    def summary(self) -> str:
        """The result in plain words, e.g. ``Seat expansion: 18.0% of 400 treated accounts bought seats within
        30 days vs 11.0% of 380 held out: +7.0 points (95% CI +2.1 to +11.9), about 4,210 USD of expansion MRR
        (95% CI 1,300 to 7,100 USD) it caused.``"""
        label = self.play.replace("_", " ").strip().capitalize() or "(unnamed play)"
        did = _DID.get(self.success_source, "expanded")
        within = f"within {self.window_days} days" if self.window_days is not None else "within their window"
        waiting = (f" {self.pending} exposure{'s' if self.pending != 1 else ''} still in their window "
                   f"{'are' if self.pending != 1 else 'is'} not counted yet." if self.pending else "")
        if self.verdict == "pending":
            return f"{label}: no success window has ended yet ({self.pending} pending); nothing to measure yet."
        if self.verdict == "observational only":
            return (f"{label}: {self.rate_treated:.1%} of {self.n_treated:,} treated accounts {did} {within}; no "
                    "account was held out, so what the play caused is not measurable (observational only)."
                    + waiting)
        if self.verdict == "too few":
            seen = (f" So far {self.rate_treated:.1%} vs {self.rate_holdout:.1%} {did}."
                    if self.rate_treated is not None and self.rate_holdout is not None else "")
            return (f"{label}: too few accounts to measure: {self.n_treated} treated and {self.n_holdout} held out "
                    f"with a complete window; at least {self.min_per_group} of each are needed.{seen}" + waiting)
        assert self.difference is not None and self.difference_low is not None and self.difference_high is not None
        level = f"{self.confidence * 100:g}%"
        head = (f"{label}: {self.rate_treated:.1%} of {self.n_treated:,} treated accounts {did} {within} vs "
                f"{self.rate_holdout:.1%} of {self.n_holdout:,} held out: {_points(self.difference)} points "
                f"({level} CI {_points(self.difference_low)} to {_points(self.difference_high)})")
        if self.verdict == "no evidence":
            return head + "; no evidence the play changed conversion." + waiting
        assert self.incremental_mrr is not None  # both groups have complete windows
        money = _money(self.incremental_mrr, self.currency)
        if self.incremental_mrr_low is not None and self.incremental_mrr_high is not None:
            money += (f" of expansion MRR ({level} CI {_amount(self.incremental_mrr_low)} to "
                      f"{_amount(self.incremental_mrr_high)} {self.currency})")
        else:
            money += " of expansion MRR"
        if self.verdict == "works":
            return f"{head}, about {money} it caused." + waiting
        return f"{head}: the play lowered conversion, about {money}." + waiting


def _check_level(confidence: float, min_per_group: int) -> None:
    if not 0 < confidence < 1:
        raise ConfigError(f"uplift: confidence {confidence!r} is not between 0 and 1; 0.95 is a 95% interval")
    if isinstance(min_per_group, bool) or not isinstance(min_per_group, int) or min_per_group < 1:
        raise ConfigError(f"uplift: min_per_group {min_per_group!r} is not a whole number of at least 1")


def _cents(value: Fraction | float | None, scale: int) -> Decimal | None:
    """A value rounded once to the money's scale (half away from zero)."""
    if value is None:
        return None
    exact = Decimal(value.numerator) / Decimal(value.denominator) if isinstance(value, Fraction) else Decimal(value)
    return exact.quantize(Decimal(1).scaleb(-scale), ROUND_HALF_UP)


def _welch(x_t: np.ndarray, x_h: np.ndarray, alpha: float) -> tuple[float, float] | None:
    """Welch's interval of ``mean(x_t) − mean(x_h)`` from statsmodels, or None for a group of fewer than two."""
    if len(x_t) < 2 or len(x_h) < 2:
        return None
    diff = float(x_t.mean() - x_h.mean())
    if x_t.var() == 0 and x_h.var() == 0:
        return diff, diff  # no spread in either group: the standard error, and the interval's width, are 0
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    low, high = CompareMeans(DescrStatsW(x_t), DescrStatsW(x_h)).tconfint_diff(alpha=alpha, usevar="unequal")
    return float(low), float(high)


def _one(play: str, rows: pa.Table, *, confidence: float, min_per_group: int, currency: str) -> PlayUplift:
    scale = rows["expansion_mrr"].type.scale
    complete = np.asarray(rows["complete"].to_numpy(zero_copy_only=False), dtype=bool)
    group = np.asarray(rows["group"].to_numpy(zero_copy_only=False), dtype=object)
    converted = np.asarray(rows["converted"].to_numpy(zero_copy_only=False), dtype=bool)
    mrr = rows["expansion_mrr"]
    windows = set(rows["window_days"].to_pylist())
    sources = set(rows["success_source"].to_pylist())
    treated, holdout = complete & (group == "treated"), complete & (group == "holdout")
    n_t, n_h = int(treated.sum()), int(holdout.sum())
    c_t, c_h = int(converted[treated].sum()), int(converted[holdout].sum())
    # exact sums (Arrow adds decimals exactly), exact means as fractions, rounded once at the end
    sum_t, sum_h = (Fraction(pc.sum(mrr.filter(pa.array(keep))).as_py() or 0) for keep in (treated, holdout))
    mean_t = sum_t / n_t if n_t else None
    mean_h = sum_h / n_h if n_h else None
    rate_t = c_t / n_t if n_t else None
    rate_h = c_h / n_h if n_h else None
    diff = low = high = lift = extra = None
    mean_diff = incremental = mlow = mhigh = ilow = ihigh = None
    alpha = 1 - confidence
    if n_t and n_h:
        # imported on first use: statsmodels takes about a second to import, and every command imports upcurve.plays
        from statsmodels.stats.proportion import confint_proportions_2indep

        assert rate_t is not None and rate_h is not None and mean_t is not None and mean_h is not None
        diff = rate_t - rate_h
        lo, hi = confint_proportions_2indep(c_t, n_t, c_h, n_h, method=CONVERSION_INTERVAL, compare="diff",
                                            alpha=alpha)
        # a difference of two shares lies in [-1, 1]; the interval's floating point can stray past it (1 + 2e-16)
        low, high = max(-1.0, float(lo)), min(1.0, float(hi))
        lift = diff / rate_h if rate_h else None
        extra = diff * n_t
        exact_diff = mean_t - mean_h
        mean_diff, incremental = _cents(exact_diff, scale), _cents(exact_diff * n_t, scale)
        values = np.asarray(mrr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
        welch = _welch(values[treated], values[holdout], alpha)
        if welch is not None:
            mlow, mhigh = _cents(welch[0], scale), _cents(welch[1], scale)
            ilow, ihigh = _cents(welch[0] * n_t, scale), _cents(welch[1] * n_t, scale)
    if not complete.any():
        verdict = "pending"
    elif not (group == "holdout").any():
        verdict = "observational only"
    elif n_t < min_per_group or n_h < min_per_group:
        verdict = "too few"
    else:
        assert low is not None and high is not None
        verdict = "works" if low > 0 else "harms" if high < 0 else "no evidence"
    return PlayUplift(
        play=play, verdict=verdict, n_treated=n_t, n_holdout=n_h, conversions_treated=c_t, conversions_holdout=c_h,
        rate_treated=rate_t, rate_holdout=rate_h, difference=diff, difference_low=low, difference_high=high,
        relative_lift=lift, incremental_conversions=extra, mean_mrr_treated=_cents(mean_t, scale),
        mean_mrr_holdout=_cents(mean_h, scale), mean_mrr_difference=mean_diff, mean_mrr_low=mlow,
        mean_mrr_high=mhigh, incremental_mrr=incremental, incremental_mrr_low=ilow, incremental_mrr_high=ihigh,
        pending=int((~complete).sum()), window_days=windows.pop() if len(windows) == 1 else None,
        success_source=sources.pop() if len(sources) == 1 else None, confidence=confidence,
        min_per_group=min_per_group, currency=currency,
    )


def uplift(outcomes: pa.Table, *, confidence: float = 0.95, min_per_group: int = 30,
           currency: str = "USD") -> list[PlayUplift]:
    """Each play's measured uplift: its treated accounts against its holdout, over complete windows only.

    Formula
    -------
    Over each play's exposures whose window is complete (``n_t`` treated, ``n_h`` held out):

    - conversion rates ``p_t = c_t / n_t`` and ``p_h = c_h / n_h``; their difference ``p_t − p_h`` (0.07 means
      the play turned 7 more accounts in 100 into buyers) with its interval from statsmodels'
      ``confint_proportions_2indep(method="newcomb")``: with Wilson intervals ``[l_t, u_t]`` and ``[l_h, u_h]``,
      ``p_t − p_h − √((p_t − l_t)² + (u_h − p_h)²)`` to ``p_t − p_h + √((u_t − p_t)² + (p_h − l_h)²)``;
      ``relative_lift = (p_t − p_h) / p_h`` (0.5 means half as many again); ``incremental_conversions =
      (p_t − p_h) × n_t``;
    - mean expansion MRR per account in each group (zeros included) and their difference, exact from decimal sums,
      with Welch's t interval (statsmodels ``CompareMeans(...).tconfint_diff(usevar="unequal")``);
      ``incremental_mrr = (mean_t − mean_h) × n_t``: the expansion MRR the play caused among its treated
      accounts, its interval the Welch interval × ``n_t``;
    - ``verdict``: ``works`` when the conversion interval is above 0, ``harms`` when below, ``no evidence`` when
      it spans 0; ``too few`` when either group has fewer than ``min_per_group`` complete windows;
      ``observational only`` when the play held no account out (the treated rate is reported, the difference is
      not measurable); ``pending`` when no window has ended yet.

    Parameters
    ----------
    outcomes
        :func:`outcomes`'s table.
    confidence
        The intervals' confidence level, between 0 and 1.
    min_per_group
        The fewest complete windows in each group for a verdict on the difference.
    currency
        The code the money is written in (the run's reporting currency), used by :attr:`PlayUplift.summary`.

    Returns
    -------
    One :class:`PlayUplift` per play, sorted by play.

    Edge cases
    ----------
    Incomplete windows are counted in ``pending`` and nowhere else. Intervals are still computed for ``too few``
    (for a look), but not trusted for a verdict. ``relative_lift`` is None when the holdout never converted.
    Welch's interval needs two accounts in each group (else None); when neither group's expansion MRR varies it is
    the point itself. Money is rounded once to the cent (half away from zero); the intervals' ends come from
    floating point and are rounded the same way. A play whose exposures have different windows or sources reports
    None for them. An empty table gives an empty list.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from decimal import Decimal
    >>> t = pa.table({"play": ["seats"] * 4, "group": ["treated", "treated", "holdout", "holdout"],
    ...               "window_days": [30] * 4, "success_source": ["seat"] * 4,
    ...               "converted": [True, False, False, False], "complete": [True] * 4,
    ...               "expansion_mrr": pa.array([Decimal("40.00"), 0, 0, 0], pa.decimal128(20, 2))})
    >>> [u] = uplift(t, min_per_group=2)
    >>> u.verdict, u.rate_treated, u.rate_holdout, u.difference, u.incremental_mrr
    ('no evidence', 0.5, 0.0, 0.5, Decimal('40.00'))
    >>> print(u.summary)  # doctest: +NORMALIZE_WHITESPACE
    Seats: 50.0% of 2 treated accounts bought seats within 30 days vs 0.0% of 2 held out: +50.0 points
    (95% CI -27.3 to +90.5); no evidence the play changed conversion.
    """
    _check_level(confidence, min_per_group)
    needed = ("play", "group", "window_days", "success_source", "converted", "expansion_mrr", "complete")
    _missing(outcomes, "outcomes", needed, "pass the table outcomes() returns")
    if not pa.types.is_decimal(outcomes["expansion_mrr"].type):
        raise ContractError([Problem("outcomes", f"has type {outcomes['expansion_mrr'].type}, not a decimal",
                                     "expansion_mrr", hint="pass the table outcomes() returns")])
    plays = outcomes["play"]
    return [_one(play, outcomes.filter(pc.equal(plays, play)), confidence=confidence, min_per_group=min_per_group,
                 currency=currency)
            for play in sorted(pc.unique(pc.drop_null(plays)).to_pylist())]


# -- where assignments come from ---------------------------------------------------------------------------------
def _check_plays(plays: Mapping[str, tuple[int, str | None]], default_window_days: int) -> None:
    bad = []
    for play, spec in {**plays, "(default)": (default_window_days, None)}.items():
        try:
            days, source = spec
        except (TypeError, ValueError):
            bad.append(f"{play}: {spec!r} is not (window_days, success_source)")
            continue
        if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 0:
            bad.append(f"{play}: window_days {days!r} is not a whole number of days ≥ 0")
        if source is not None and source not in SOURCES:
            bad.append(f"{play}: success_source {source!r} is not one of {', '.join(SOURCES)} (or None for any "
                       "expansion)")
    if bad:
        raise ConfigError("plays: " + "; ".join(bad))


def assignments_from_activities(activities: pa.Table, *, plays: Mapping[str, tuple[int, str | None]] | None = None,
                                default_window_days: int = 45) -> pa.Table:
    """The plays a company logged in ``activities``, as assignments for :func:`outcomes`.

    Formula
    -------
    Each (play, account) counts once, from its first logged row: ``group`` is ``holdout`` when that row's
    ``outcome`` is ``holdout`` (any case, spaces trimmed), else ``treated``; ``started_on`` is the date of its
    ``ts``; ``window_days`` and ``success_source`` come from ``plays[play]``, else ``default_window_days`` and any
    expansion. Counting an account once keeps the accounts independent, as the intervals of :func:`uplift` assume,
    and never counts one expansion twice; the first exposure's group is the one chance assigned (an
    intention-to-treat reading: a held-out account worked later still counts as held out).

    Parameters
    ----------
    activities
        The contract table: ``account_id``, ``ts`` (timestamp), ``play``, ``outcome`` (optional).
    plays
        Play name → ``(window_days, success_source)``; plays not named use the defaults.
    default_window_days
        The success window of a play not in ``plays``.

    Returns
    -------
    Columns :data:`ASSIGNMENT_COLUMNS`, sorted by play, then account.

    Edge cases
    ----------
    A play with no holdout row yields only treated rows, which :func:`uplift` reports as observational only. An
    empty or absent ``outcome`` is treated. When an account's first rows of a play share one timestamp and
    disagree, it counts as treated. A timestamp with a time zone is dated in UTC. Rows with an empty account, time
    or play are reported as a :class:`~upcurve.errors.ContractError`; a bad ``plays`` entry as a
    :class:`~upcurve.errors.ConfigError` naming the play.

    Examples
    --------
    >>> import datetime as dt, pyarrow as pa
    >>> acts = pa.table({"account_id": ["a", "b", "a"], "play": ["seat_offer"] * 3,
    ...                  "ts": [dt.datetime(2024, 3, 5, 9), dt.datetime(2024, 3, 6), dt.datetime(2024, 4, 1)],
    ...                  "outcome": ["completed", "Holdout", None]})
    >>> out = assignments_from_activities(acts, plays={"seat_offer": (30, "seat")})
    >>> out.select(["account_id", "group", "started_on", "window_days"]).to_pylist()  # doctest: +NORMALIZE_WHITESPACE
    [{'account_id': 'a', 'group': 'treated', 'started_on': datetime.date(2024, 3, 5), 'window_days': 30},
     {'account_id': 'b', 'group': 'holdout', 'started_on': datetime.date(2024, 3, 6), 'window_days': 30}]
    """
    plays = dict(plays or {})
    _check_plays(plays, default_window_days)
    name = "activities"
    _missing(activities, name, ("account_id", "ts", "play"), "activities has account_id, ts, play and outcome")
    _raise(list(_nulls(activities, name, ("account_id", "ts", "play"))))
    outcome = (activities["outcome"].cast(pa.string()) if "outcome" in activities.column_names
               else pa.nulls(activities.num_rows, pa.string()))
    held = pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(outcome)), "holdout").fill_null(False)
    ts = activities["ts"]
    if pa.types.is_timestamp(ts.type) and ts.type.tz is not None:
        ts = ts.cast(pa.timestamp(ts.type.unit))  # the UTC wall clock
    rows = pa.table({"play": activities["play"].cast(pa.string()), "account_id": activities["account_id"].cast(
        pa.string()), "_ts": ts, "_held": held})
    rows = rows.sort_by([("play", "ascending"), ("account_id", "ascending"), ("_ts", "ascending"),
                         ("_held", "ascending")])
    play = np.asarray(rows["play"].to_numpy(zero_copy_only=False), dtype=object)
    acc = np.asarray(rows["account_id"].to_numpy(zero_copy_only=False), dtype=object)
    first = np.ones(len(play), dtype=bool)
    first[1:] = (play[1:] != play[:-1]) | (acc[1:] != acc[:-1])
    rows = rows.filter(pa.array(first))
    names = rows["play"].to_pylist()
    specs = [plays.get(p, (default_window_days, None)) for p in names]
    return pa.table({
        "play": rows["play"], "account_id": rows["account_id"],
        "group": pc.if_else(rows["_held"], "holdout", "treated"),
        "started_on": rows["_ts"].cast(pa.date32()),
        "window_days": pa.array([int(d) for d, _ in specs], pa.int64()),
        "success_source": pa.array([s for _, s in specs], pa.string()),
    })


def _uniform(play: str, account_id: str) -> float:
    """A number in [0, 1) fixed by the play and the account: the top 53 bits of their SHA-256, over 2⁵³."""
    digest = hashlib.sha256(f"{play}\x1f{account_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / 2**53


def _check_share(share: float) -> None:
    if not 0 <= share <= 1:
        raise ConfigError(f"holdout share {share!r} is not between 0 and 1; 0.1 holds out one eligible account in 10")


def stable_holdout(play: str, account_id: str, share: float) -> bool:
    """Whether ``account_id`` is in ``play``'s holdout: the same answer in every run, process and machine.

    Formula
    -------
    ``u = ⌊SHA-256(play ␟ account_id) / 2²⁰³⌋ / 2⁵³`` (the digest's top 53 bits, a uniform number in [0, 1); ␟ is
    the unit separator, so ("ab", "c") and ("a", "bc") differ); held out when ``u < share``. Over many accounts
    the held-out fraction tends to ``share``.

    Edge cases
    ----------
    ``share`` 0 holds out no one, 1 everyone. Raising the share only adds accounts to the holdout: an account held
    out at 10% is held out at 20%. Each play draws its own holdout. A share outside [0, 1] is a
    :class:`~upcurve.errors.ConfigError`.

    Examples
    --------
    >>> stable_holdout("seat_offer", "A0000001", 0.5) == stable_holdout("seat_offer", "A0000001", 0.5)
    True
    >>> stable_holdout("seat_offer", "A0000001", 0.0), stable_holdout("seat_offer", "A0000001", 1.0)
    (False, True)
    >>> sum(stable_holdout("seat_offer", f"A{i:07d}", 0.1) for i in range(10_000))
    985
    """
    _check_share(share)
    return _uniform(play, account_id) < share


def stable_holdouts(play: str, account_ids: pa.Array | pa.ChunkedArray, share: float) -> pa.BooleanArray:
    """:func:`stable_holdout` for a column of account ids.

    Formula
    -------
    Element by element, ``stable_holdout(play, account_id, share)``.

    Edge cases
    ----------
    A null account id has no group: its answer is null. An empty column gives an empty one.

    Examples
    --------
    >>> import pyarrow as pa
    >>> stable_holdouts("seat_offer", pa.array(["A0000001", None]), 1.0).to_pylist()
    [True, None]
    """
    _check_share(share)
    ids = account_ids.cast(pa.string()).to_pylist()
    return pa.array([None if a is None else _uniform(play, a) < share for a in ids], pa.bool_())
