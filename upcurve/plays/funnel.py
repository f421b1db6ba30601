"""The expansion funnel: from an upgrade prompt seen to an expansion booked, by prompt type and placement.

Five stages, each a set of accounts: **awareness** (saw an upgrade prompt), **consideration** (clicked it),
**intent** (visited the plan page or started a checkout), **conversion** (completed an upgrade) and **realised**
expansion (the revenue engine's movements show an expansion soon after the conversion). Which events mark which
stage, and which events columns name the prompt's type and placement, are settings (``plays.funnel:`` in the
settings file, :class:`FunnelConfig`).

The events are reduced in the engine (one Ibis query: the period's stage events, down to one row per account with
the first time it reached each stage); only that per-account result is finished here with Arrow, beside the run's
movements.
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from upcurve.contract import table_schema
from upcurve.errors import ContractError, Problem
from upcurve.months import month_start_after
from upcurve.plays.uplift import outcomes

__all__ = ["FUNNEL_COLUMNS", "STAGES", "FunnelConfig", "expansion_funnel", "funnel_schema"]

#: The funnel's stages, in order; each is reached only by accounts that reached the one before.
STAGES = ("awareness", "consideration", "intent", "conversion", "realised")
#: The stages whose accounts are read from events (``realised`` is read from the movements).
_EVENT_STAGES = STAGES[:4]
#: The events columns a prompt type or a placement may be read from: the contract's, but the key and the time.
_LABEL_COLUMNS = tuple(c.name for c in table_schema("events").columns if c.name not in ("ts", "account_id"))
_MONEY = pa.decimal128(20, 2)


class FunnelConfig(BaseModel):
    """Which events mark each stage of the expansion funnel, and how it is cut (``plays.funnel:``).

    Every stage takes a list of event names (one name may be written alone); a name marks one stage only. The
    prompt's type and placement are read from two columns of the events table (``feature`` and ``category`` by
    default: the simulated company writes the prompt's type in ``feature`` and its placement in ``category``).

    Examples
    --------
    >>> FunnelConfig(intent="plan_page_viewed").intent
    ('plan_page_viewed',)
    >>> try:
    ...     FunnelConfig(placement_column="categroy")
    ... except ValueError as exc:  # pydantic's ValidationError, with the key and the message
    ...     print(str(exc).splitlines()[1:3])  # doctest: +ELLIPSIS
    ['placement_column', "  Value error, unknown events column 'categroy' (did you mean 'category'?); ..."]
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    awareness: tuple[str, ...] = ("upgrade_prompt_viewed",)
    consideration: tuple[str, ...] = ("upgrade_prompt_clicked",)
    intent: tuple[str, ...] = ("plan_page_viewed", "checkout_started")
    conversion: tuple[str, ...] = ("upgrade_completed",)
    #: The events column naming the prompt's type (an account's is that of its first awareness event).
    prompt_column: str = "feature"
    #: The events column naming where the prompt was shown.
    placement_column: str = "category"
    #: A conversion is realised when the account expands within this many days after it.
    realised_within_days: int = Field(default=30, ge=1, le=3650)
    #: The period: this many calendar months, ending with the as-of date.
    months: int = Field(default=3, ge=1, le=120)

    @field_validator("awareness", "consideration", "intent", "conversion", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("awareness", "consideration", "intent", "conversion")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a stage needs at least one event name, e.g. [upgrade_prompt_viewed]")
        if any(not name.strip() for name in value):
            raise ValueError(f"an event name is empty in {list(value)}: write each event as the events table "
                             "spells it")
        return tuple(dict.fromkeys(value))

    @field_validator("prompt_column", "placement_column")
    @classmethod
    def _column(cls, value: str) -> str:
        if value in _LABEL_COLUMNS:
            return value
        close = difflib.get_close_matches(value, _LABEL_COLUMNS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown events column {value!r}{hint}; the prompt type and placement are read from one of "
                         f"the events table's columns {', '.join(_LABEL_COLUMNS)} (docs/contract.md)")

    @model_validator(mode="after")
    def _one_stage_per_event(self) -> FunnelConfig:
        seen: dict[str, str] = {}
        shared = []
        for stage in _EVENT_STAGES:
            for name in getattr(self, stage):
                if name in seen:
                    shared.append(f"{name!r} is under both {seen[name]} and {stage}")
                seen.setdefault(name, stage)
        if shared:
            raise ValueError("an event marks one stage only: " + "; ".join(shared)
                             + "; remove it from all but one stage")
        return self

    def period(self, as_of: dt.date) -> tuple[dt.date, dt.date]:
        """The first and the last day (inclusive) the funnel looks at: ``months`` calendar months to ``as_of``.

        >>> FunnelConfig().period(dt.date(2024, 6, 20))
        (datetime.date(2024, 4, 1), datetime.date(2024, 6, 20))
        """
        return month_start_after(as_of, -(self.months - 1)), as_of


#: The columns of :func:`expansion_funnel`'s table, in order.
FUNNEL_COLUMNS = (
    "prompt_type", "placement", "is_total", *STAGES,
    *(f"{s}_step_rate" for s in STAGES[1:]), *(f"{s}_from_awareness" for s in STAGES[1:]),
    "realised_mrr", "realised_pending", "converted_skipping_stages", "converted_without_prompt",
)


def funnel_schema(money: pa.DataType = _MONEY) -> pa.Schema:
    """The schema of :func:`expansion_funnel`'s table, with ``realised_mrr`` in the movements' decimal type."""
    kinds: dict[str, pa.DataType] = {"prompt_type": pa.string(), "placement": pa.string(), "is_total": pa.bool_(),
                                     "realised_mrr": money}
    return pa.schema([(c, kinds.get(c, pa.float64() if "rate" in c or "from_awareness" in c else pa.int64()))
                      for c in FUNNEL_COLUMNS])


def _check_events(events: ir.Table, config: FunnelConfig) -> None:
    needed = ("ts", "account_id", "event", config.prompt_column, config.placement_column)
    problems = [Problem("events", f"required column {c!r} is missing", c,
                        hint=("pass the typed events table (upcurve.contract.typed_tables adds missing contract "
                              "columns as empty)" if c in ("ts", "account_id", "event")
                              else f"pass the typed events table, or set plays.funnel's "
                                   f"{'prompt_column' if c == config.prompt_column else 'placement_column'} "
                                   f"to one of {', '.join(_LABEL_COLUMNS)}"))
                for c in dict.fromkeys(needed) if c not in events.columns]
    if "ts" in events.columns and not events.ts.type().is_timestamp():
        problems.append(Problem("events", f"has type {events.ts.type()}, not a timestamp", "ts",
                                hint="pass the typed events table (upcurve.contract.typed_tables), or cast ts with "
                                     "events.mutate(ts=events.ts.cast('timestamp'))"))
    if problems:
        raise ContractError(problems)


def _first_times(events: ir.Table, config: FunnelConfig, since: dt.date, until: dt.date) -> ir.Table:
    """One row per account with a stage event in the period: its first awareness (time, prompt type, placement) and,
    per later stage, the first time at or after it; with ``first_conversion_at``, its first conversion at all."""
    names = [n for s in _EVENT_STAGES for n in getattr(config, s)]
    ev = events.filter((events.ts >= ibis.timestamp(dt.datetime.combine(since, dt.time())))
                       & (events.ts < ibis.timestamp(dt.datetime.combine(until + dt.timedelta(days=1), dt.time())))
                       & events.event.isin(names))
    ev = ev.select(account_id=ev.account_id.cast("string"), ts=ev.ts, event=ev.event.cast("string"),
                   prompt_type=ev[config.prompt_column].cast("string"),
                   placement=ev[config.placement_column].cast("string"))
    seen = ev.filter(ev.event.isin(config.awareness))
    # the first awareness event of each account; ties at one instant go to the lowest prompt type, then placement
    seen = seen.mutate(_n=ibis.row_number().over(group_by=seen.account_id,
                                                 order_by=(seen.ts, seen.prompt_type, seen.placement)))
    first = seen.filter(seen._n == 0).select(_account=seen.account_id, aware_at=seen.ts,
                                             prompt_type=seen.prompt_type, placement=seen.placement)
    j = ev.select("account_id", "ts", "event").left_join(first, ev.account_id == first._account)
    after = j.ts >= j.aware_at  # null without an awareness event: such rows reach no stage
    return j.group_by(["account_id", "aware_at", "prompt_type", "placement"]).aggregate(
        **{f"{s}_at": j.ts.min(where=j.event.isin(getattr(config, s)) & after) for s in _EVENT_STAGES[1:]},
        first_conversion_at=j.ts.min(where=j.event.isin(config.conversion)),
    )


def _realised(per: pa.Table, converted: pa.ChunkedArray, movements: pa.Table, config: FunnelConfig,
              as_of: dt.date) -> pa.Table:
    """Per account (in ``per``'s order): realised (bool), realised_mrr (decimal, 0 if none), realised_pending."""
    conv = per.filter(converted)
    n = conv.num_rows
    exposures = pa.table({
        "play": pa.array(["expansion_funnel"] * n, pa.string()), "account_id": conv["account_id"],
        "group": pa.array(["treated"] * n, pa.string()),
        "started_on": conv["conversion_at"].cast(pa.date32()),
        "window_days": pa.array([config.realised_within_days] * n, pa.int64()),
        "success_source": pa.array([None] * n, pa.string())})
    # the rule "a movement counts when its month overlaps the window" has its home in the plays' uplift
    found = outcomes(exposures, movements, as_of=as_of).select(["account_id", "converted", "expansion_mrr",
                                                                 "complete"])
    money = found["expansion_mrr"].type
    back = (per.select(["account_id"]).append_column("_row", pa.array(range(per.num_rows), pa.int64()))
            .join(found, "account_id", join_type="left outer").sort_by("_row"))
    realised = back["converted"].fill_null(False)
    mrr = pc.if_else(realised, back["expansion_mrr"], pa.scalar(Decimal(0), money)).cast(money)
    pending = pc.and_(pc.invert(realised), pc.invert(back["complete"])).fill_null(False)
    return pa.table({"realised": realised, "realised_mrr": mrr, "realised_pending": pending})


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _row(prompt: str | None, placement: str | None, is_total: bool, counts: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"prompt_type": prompt, "placement": placement, "is_total": is_total, **counts}
    for before, stage in itertools.pairwise(STAGES):
        row[f"{stage}_step_rate"] = _rate(counts[stage], counts[before])
        row[f"{stage}_from_awareness"] = _rate(counts[stage], counts["awareness"])
    return row


def expansion_funnel(events: ir.Table, movements: pa.Table, config: FunnelConfig, *, as_of: dt.date) -> pa.Table:
    """The expansion funnel over the ``config.months`` months to ``as_of``, by prompt type and placement.

    Formula
    -------
    In the period (from the 1st of the month ``months − 1`` before the as-of month, through the as-of day), each
    account's **first awareness event** starts its funnel and gives it its prompt type and placement (first touch:
    an account shown several prompts counts once, for the first). An account then *touches* a later stage when it
    has an event of that stage at or after that first awareness event, in any order, and it *reaches* a stage when
    it touched that stage and every stage before it (a closed funnel):

    - ``awareness``: accounts with an awareness event in the period;
    - ``consideration``, ``intent``, ``conversion``: those of the previous stage that touched this one;
    - ``realised``: converted accounts with a positive ``expansion`` movement (any source) in a month overlapping
      ``(c, c + realised_within_days]``, ``c`` the day of their first conversion event after awareness (a month
      overlaps when ``month_end > c`` and ``month_start ≤ c + realised_within_days``, as a play's success window);
      ``realised_mrr``: the exact sum of those movements.

    Rates: ``<stage>_step_rate`` = stage ÷ previous stage, ``<stage>_from_awareness`` = stage ÷ awareness. Read
    "conversion_step_rate 0.25, conversion_from_awareness 0.05" as: a quarter of the accounts that showed intent
    upgraded, and one account in twenty shown the prompt.

    Parameters
    ----------
    events
        The contract's ``events`` table (``ts``, ``account_id``, ``event`` and the two configured columns), as an
        Ibis table on any engine.
    movements
        The run's movements: ``month`` (``YYYY-MM``), ``account_id``, ``type``, ``source``, ``amount`` (decimal).
    config
        The stages' events, the columns and the windows (:class:`FunnelConfig`).
    as_of
        The last day looked at: events after it are ignored, and movements of months starting after it.

    Returns
    -------
    One row per (``prompt_type``, ``placement``) of the accounts' first awareness events, sorted by prompt type
    then placement (missing values last), then a **total row** with ``is_total`` true and ``prompt_type`` and
    ``placement`` null; the columns of :data:`FUNNEL_COLUMNS`: the stages' account counts (int), the step rates
    and the rates from awareness (fractions, null over 0 accounts), ``realised_mrr`` (the movements' decimal type),
    ``realised_pending`` (converted, not realised yet, and the window not over at ``as_of``: look again later),
    ``converted_skipping_stages`` (converted after the prompt but missed consideration or intent: the funnel
    counts them at the stages they reached in order) and ``converted_without_prompt`` (total row only, null in the
    others: accounts whose first conversion in the period came before any awareness event in the period, or with
    none; the funnel starts at awareness, so they are in no stage).

    Edge cases
    ----------
    No event of any stage in the period: an empty table of this schema (no total row); a caller says "no funnel
    events: name them under plays.funnel". Events after ``as_of`` (and before the period) are ignored, so a prompt
    seen just before the period does not count and a conversion after it counts as without a prompt. A prompt type
    or placement missing on the first awareness event stays null in its row (``is_total`` tells it from the total).
    Ties at the first instant go to the lowest prompt type, then placement. An account that converts twice is
    dated by its first conversion after awareness; one converting before any prompt and again after one counts
    in both ``conversion`` and ``converted_without_prompt``. A conversion whose window runs past ``as_of`` may
    still be realised later (``realised_pending``). Sums over the prompt rows equal the total row's, stage by
    stage. Missing columns, or a ``ts`` that is not a timestamp, are a :class:`~upcurve.errors.ContractError`
    naming the column; the movements are checked as by :func:`upcurve.plays.uplift.outcomes`.

    Examples
    --------
    >>> import datetime as dt, ibis, pyarrow as pa
    >>> from decimal import Decimal
    >>> t = dt.datetime
    >>> events = ibis.memtable({
    ...     "ts": [t(2024, 6, 1), t(2024, 6, 2), t(2024, 6, 3), t(2024, 6, 4), t(2024, 6, 5), t(2024, 6, 9)],
    ...     "account_id": ["a", "a", "a", "a", "b", "c"], "user_id": [None] * 6,
    ...     "event": ["upgrade_prompt_viewed", "upgrade_prompt_clicked", "plan_page_viewed", "upgrade_completed",
    ...               "upgrade_prompt_viewed", "upgrade_completed"],
    ...     "feature": ["seats_banner", None, None, None, "seats_banner", None],
    ...     "category": ["in_app", None, None, None, "in_app", None]})
    >>> movements = pa.table({"month": ["2024-06"], "account_id": ["a"], "type": ["expansion"], "source": ["tier"],
    ...                       "amount": pa.array([Decimal("40.00")], pa.decimal128(20, 2))})
    >>> f = expansion_funnel(events, movements, FunnelConfig(), as_of=dt.date(2024, 6, 30))
    >>> cols = ["prompt_type", "awareness", "consideration", "conversion", "realised", "conversion_step_rate",
    ...         "conversion_from_awareness", "realised_mrr", "converted_without_prompt"]
    >>> for row in f.select(cols).to_pylist():
    ...     print(row)  # doctest: +NORMALIZE_WHITESPACE
    {'prompt_type': 'seats_banner', 'awareness': 2, 'consideration': 1, 'conversion': 1, 'realised': 1,
     'conversion_step_rate': 1.0, 'conversion_from_awareness': 0.5, 'realised_mrr': Decimal('40.00'),
     'converted_without_prompt': None}
    {'prompt_type': None, 'awareness': 2, 'consideration': 1, 'conversion': 1, 'realised': 1,
     'conversion_step_rate': 1.0, 'conversion_from_awareness': 0.5, 'realised_mrr': Decimal('40.00'),
     'converted_without_prompt': 1}
    """
    _check_events(events, config)
    since, until = config.period(as_of)
    per = _first_times(events, config, since, until).to_pyarrow()
    aware = pc.is_valid(per["aware_at"])
    reached = {"awareness": aware}
    for before, stage in itertools.pairwise(_EVENT_STAGES):
        reached[stage] = pc.and_(reached[before], pc.is_valid(per[f"{stage}_at"]))
    # the movements are checked on every call, even when no account converted
    realised = _realised(per, reached["conversion"], movements, config, as_of)
    money = realised["realised_mrr"].type
    if per.num_rows == 0:
        return funnel_schema(money).empty_table()
    skipping = pc.and_(pc.and_(aware, pc.invert(reached["conversion"])), pc.is_valid(per["conversion_at"]))
    unprompted = pc.and_(pc.is_valid(per["first_conversion_at"]),
                         pc.or_(pc.invert(aware), pc.less(per["first_conversion_at"], per["aware_at"])).fill_null(True))
    flags = pa.table({
        "prompt_type": per["prompt_type"], "placement": per["placement"],
        **{s: reached[s] for s in _EVENT_STAGES},
        "realised": pc.and_(reached["conversion"], realised["realised"]),
        "realised_mrr": realised["realised_mrr"],
        "realised_pending": pc.and_(reached["conversion"], realised["realised_pending"]),
        "converted_skipping_stages": skipping,
    }).filter(aware)
    counted = (*STAGES, "realised_pending", "converted_skipping_stages")
    grouped = flags.group_by(["prompt_type", "placement"]).aggregate(
        [(c, "sum") for c in counted] + [("realised_mrr", "sum")])
    rows = []
    for g in grouped.to_pylist():
        counts = {c: int(g[f"{c}_sum"]) for c in counted}
        rows.append(_row(g["prompt_type"], g["placement"], False,
                         {**counts, "realised_mrr": g["realised_mrr_sum"], "converted_without_prompt": None}))
    rows.sort(key=lambda r: (r["prompt_type"] is None, r["prompt_type"] or "", r["placement"] is None,
                             r["placement"] or ""))
    total: dict[str, Any] = {c: sum(r[c] for r in rows) for c in counted}
    total["realised_mrr"] = sum((r["realised_mrr"] for r in rows), Decimal(0))
    total["converted_without_prompt"] = int(pc.sum(unprompted).as_py() or 0)
    rows.append(_row(None, None, True, total))
    return pa.Table.from_pylist(rows, schema=funnel_schema(money))
