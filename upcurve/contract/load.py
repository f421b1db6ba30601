"""Check a data folder's tables against the contract, and type them for the computations.

Checking happens in the engine: every rule is a boolean column of one pass over the table, so a billion-row events
file is checked without leaving the engine. Each broken rule is a :class:`Problem` naming the file, the rows (line
numbers for CSV), the column, example values and the fix; every problem of every table is found at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial

import duckdb
import ibis
import ibis.expr.types as ir

from upcurve.contract.read import (
    EXAMPLES,
    MONEY,
    MONTH_TEXT,
    PARSES_TEXT,
    ROW,
    DataFolder,
    RawTable,
    engine_problem,
)
from upcurve.contract.schema import (
    CONTRACT,
    EARLIEST,
    LATEST,
    MAX_PERIOD_YEARS,
    MONEY_LIMIT,
    MONEY_TOTAL_LIMIT,
    Column,
    TableSchema,
)
from upcurve.engine import database_error, strip_spaces
from upcurve.errors import ConfigError, Problem
from upcurve.pricing import price_model_from_json
from upcurve.pricing.models import Percentage

__all__ = ["typed_tables", "validate"]

#: A whole number written as text: digits, optionally signed, optionally followed by a decimal point and zeros.
_WHOLE = r"^[+-]?[0-9]+(\.0*)?$"
_TYPE_WORDS = {"int": "a whole number", "number": "a number such as 1250.50", "date": "a date YYYY-MM-DD",
               "timestamp": "a date and time YYYY-MM-DD HH:MM:SS", "month": "a month YYYY-MM"}

# --- parsing ------------------------------------------------------------------------------------------------


def _derived(kind: str, name: str) -> str:
    """The name of a column derived from ``name`` while checking (``_row`` is reserved, so no file has it)."""
    return f"{ROW}:{kind}:{name}"


def _strip(raw: RawTable, value: ir.StringValue) -> ir.StringValue:
    """``value`` trimmed of white space as the engine holding ``raw`` can (:func:`upcurve.engine.strip_spaces`)."""
    return strip_spaces(value, raw.table.get_backend().name)


def _as_float(raw: RawTable, col: Column) -> ir.FloatingValue:
    if _derived("number", col.name) in raw.table.columns:
        return raw.table[_derived("number", col.name)]
    value = raw.table[col.name]
    return (_strip(raw, value) if value.type().is_string() else value).try_cast("float64")


def _parsed(raw: RawTable, col: Column) -> ir.Value:
    """The column parsed into its contract type; null where the value is not a valid one of it."""
    if _derived("parsed", col.name) in raw.table.columns:
        return raw.table[_derived("parsed", col.name)]
    value = raw.table[col.name]
    text = _strip(raw, value) if value.type().is_string() else None
    if col.type == "string":
        return value.cast("string")
    if col.money:
        return (value if text is None else text).try_cast(MONEY)
    if col.type == "int":
        if text is not None:
            return ibis.ifelse(text.re_search(_WHOLE), text.try_cast("float64"), ibis.null("float64")).try_cast(
                "int64")
        if value.type().is_integer():
            return value.try_cast("int64")
        number = value.try_cast("float64")
        return ibis.ifelse(number == number.floor(), number, ibis.null("float64")).try_cast("int64")
    if col.type == "month":
        if text is not None and raw.table.get_backend().name not in PARSES_TEXT:
            # an engine whose cast fails the query on a bad value casts only what has a month's shape
            as_date = ibis.ifelse(text.re_search(MONTH_TEXT), (text + "-01").cast("date"), ibis.null("date"))
        elif text is not None:
            as_date = ibis.coalesce((text + "-01").try_cast("date"), text.try_cast("date"))
        else:
            as_date = value.try_cast("date")
        return as_date.truncate("M")
    target = {"number": "float64", "date": "date", "timestamp": "timestamp"}[col.type]
    return (value if text is None else text).try_cast(target)


def _is_blank(raw: RawTable, name: str) -> ir.BooleanValue:
    if _derived("blank", name) in raw.table.columns:
        return raw.table[_derived("blank", name)]
    value = raw.table[name]
    if value.type().is_string():
        return value.isnull() | (_strip(raw, value) == "")
    return value.isnull()


def _typed(raw: RawTable, col: Column) -> ir.Value:
    """The column as every later step sees it: parsed; text trimmed, blanks null, currency codes in capitals.

    Keys and references are checked on these values, so two rows are the same key exactly when a join would match
    them."""
    value = _parsed(raw, col)
    if col.type == "string":
        value = _strip(raw, value).nullif("")
        if col.name == "currency":
            value = value.upper()
    return value


# --- checking -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    flag: ir.BooleanValue
    message: str
    column: str | None
    show: ir.Value | None
    hint: str = ""


def _number_rules(raw: RawTable, col: Column, blank: ir.BooleanValue, parsed: ir.Value
                  ) -> tuple[list[_Rule], ir.BooleanValue]:
    """The rules of a number column, and the flag of its values that are not finite (no bound applies to them)."""
    value = raw.table[col.name].cast("string")
    number = _as_float(raw, col)
    # by the number's text: DuckDB 2.0 folds isnan() to false from a Parquet file's min/max statistics (which
    # leave NaN out), so a NaN in such a file would pass
    infinite = ~blank & number.cast("string").isin(["nan", "-nan", "inf", "-inf"])
    rules = [_Rule(infinite, "not a finite number", col.name, value,
                   f"Write {_TYPE_WORDS['number']}; NaN and infinity are not values of {col.name}")]
    if not col.money:
        return [*rules, _Rule(~blank & number.isnull(), f"not {_TYPE_WORDS['number']}", col.name, value,
                              f"Write {_TYPE_WORDS['number']}")], infinite
    what = "line amount" if col.name == "amount" else col.name.replace("_", " ")
    huge = ~blank & ~infinite.fill_null(False) & (number.abs() >= MONEY_LIMIT)
    return [
        *rules,
        _Rule(huge, f"beyond ±{MONEY_LIMIT:,}: not a plausible {what}", col.name, value,
              "Check the decimal point and the unit: amounts are in units of the currency, not cents"),
        _Rule(~blank & parsed.isnull() & number.isnull(), f"not {_TYPE_WORDS['number']}", col.name, value,
              f"Write {_TYPE_WORDS['number']}"),
    ], infinite


def _in_range(col: Column, parsed: ir.Value) -> ir.BooleanValue:
    if col.type == "timestamp":
        return (parsed >= ibis.timestamp(EARLIEST.isoformat() + " 00:00:00")) & (
            parsed < ibis.timestamp(f"{LATEST.year + 1}-01-01 00:00:00"))
    return (parsed >= ibis.date(EARLIEST)) & (parsed <= ibis.date(LATEST))


def _column_rules(raw: RawTable, schema: TableSchema, present: set[str]) -> list[_Rule]:
    rules: list[_Rule] = []
    for col in schema.columns:
        if col.name not in present:
            continue
        value = raw.table[col.name]
        blank = _is_blank(raw, col.name)
        if schema.required_in(col.name):
            rules.append(_Rule(blank, "a required value is empty", col.name, None, "Fill in every row"))
        if col.type != "string":
            parsed = _parsed(raw, col)
            if col.type == "number":
                number_rules, infinite = _number_rules(raw, col, blank, parsed)
                rules += number_rules
                blank = blank | infinite.fill_null(False)  # no bound applies to NaN or infinity
            else:
                example = _TYPE_WORDS[col.type]
                rules.append(_Rule(~blank & parsed.isnull(), f"not {example}", col.name, value.cast("string"),
                                   f"Write {example}"))
            if col.type in ("date", "timestamp", "month"):
                rules.append(_Rule(~blank & ~_in_range(col, parsed),
                                   f"before {EARLIEST} or after {LATEST}: not a plausible {col.type}", col.name,
                                   value.cast("string"), "Check the year"))
            if col.minimum is not None:
                rules.append(_Rule(~blank & (parsed < col.minimum), f"below the minimum {col.minimum:g}", col.name,
                                   value.cast("string")))
            if col.maximum is not None:
                rules.append(_Rule(~blank & (parsed > col.maximum), f"above the maximum {col.maximum:g}", col.name,
                                   value.cast("string")))
            if col.above is not None:
                rules.append(_Rule(~blank & (parsed <= col.above), f"not above {col.above:g}", col.name,
                                   value.cast("string"), f"{col.name} must be above {col.above:g}"))
        if col.choices:
            rules.append(
                _Rule(
                    ~blank & ~_strip(raw, value.cast("string")).isin(list(col.choices)),
                    "not one of " + ", ".join(col.choices),
                    col.name,
                    value.cast("string"),
                    "Use one of the listed values",
                )
            )
    return rules


def _invoice_line_rules(raw: RawTable, present: set[str]) -> list[_Rule]:
    t = raw.table
    schema = CONTRACT["invoice_lines"]
    rules: list[_Rule] = []
    if {"period_start", "period_end"} <= present:
        start = _parsed(raw, schema.column("period_start"))
        end = _parsed(raw, schema.column("period_end"))
        period = t.period_start.cast("string") + " → " + t.period_end.cast("string")
        rules.append(
            _Rule(
                end <= start,
                "period_end is on or before period_start",
                "period_end",
                period,
                "period_end is exclusive: the first day after the service period",
            )
        )
        # calendar arithmetic on integers: exact, and no date overflow however far the dates are
        months = (end.year() - start.year()) * 12 + end.month() - start.month()
        limit = MAX_PERIOD_YEARS * 12
        plausible = _in_range(schema.column("period_start"), start) & _in_range(schema.column("period_end"), end)
        rules.append(
            _Rule(
                plausible & ((months > limit) | ((months == limit) & (end.day() > start.day()))),
                f"the service period is longer than {MAX_PERIOD_YEARS} years",
                "period_end",
                period,
                f"Split a longer contract into lines of at most {MAX_PERIOD_YEARS} years; period_end is exclusive",
            )
        )
    if {"plan_id", "kind"} <= present:
        kind = _strip(raw, t.kind.cast("string"))
        rules.append(
            _Rule(
                _is_blank(raw, "plan_id") & (kind != "one_time"),
                "plan_id is empty on a subscription or usage line",
                "plan_id",
                kind,
                "Every recurring line names its plan; only one_time lines may leave it empty",
            )
        )
    # a line marked as a billing system's proration (read as the ledger reads it)
    proration = (_strip(raw, t.proration.cast("string")) == "true").fill_null(False) if "proration" in present \
        else ibis.literal(False)
    if {"amount", "kind"} <= present:
        amount = _parsed(raw, schema.column("amount"))
        kind = _strip(raw, t.kind.cast("string"))
        rules.append(
            _Rule(
                (amount < 0) & (kind != "one_time") & ~proration,
                "a subscription or usage line has a negative amount",
                "amount",
                t.amount.cast("string"),
                "Net discounts into the line's amount; mark a proration credit proration=true; book other credits "
                "and refunds as one_time lines",
            )
        )
    if "proration_share" in present:
        # a line not marked as a proration is measured over its whole period: a smaller share would be ignored
        share = _as_float(raw, schema.column("proration_share"))
        rules.append(
            _Rule(
                (share > 0) & (share < 1) & ~proration,
                "a share of the period on a line that is not a proration",
                "proration_share",
                t.proration_share.cast("string"),
                "Mark the line proration=true (it was charged for that share of its billing period), or leave "
                "proration_share empty: a line that is not a proration is measured over its whole period",
            )
        )
    return rules


def _prepared(raw: RawTable, schema: TableSchema, present: set[str]) -> RawTable:
    """``raw`` with each checked column's blank flag, parsed value and number computed once, as columns of their
    own that the rules then read: DuckDB does not share an expression repeated across the aggregates of one pass,
    and parsing text is most of a check's cost (a third of it on a large events file)."""
    derived: dict[str, ir.Value] = {}
    for col in schema.columns:
        if col.name not in present:
            continue
        derived[_derived("blank", col.name)] = _is_blank(raw, col.name)
        if col.type != "string":
            derived[_derived("parsed", col.name)] = _parsed(raw, col)
        if col.type == "number":
            derived[_derived("number", col.name)] = _as_float(raw, col)
    return replace(raw, table=raw.table.mutate(**derived))


@dataclass(frozen=True)
class _Summary:
    """What the one pass over a table found: its broken rules, its rows, and whether its key may repeat."""

    problems: list[Problem]
    rows: int
    key_may_repeat: bool


def _fail_summary(raw: RawTable, rules: list[_Rule], columns: list[str], key: ir.Value | None = None) -> _Summary:
    """Count every rule in one pass, then fetch a few examples of each broken rule; and the table's row count.

    The pass also counts the values of every column of the file (``columns``), so the whole file is read (and a line
    that cannot be read is found) here, not later in a run. Given the values of a one-column ``key`` as it is joined,
    it also counts them and their distinct values: when the two agree no key repeats, and the rows need not be
    partitioned by key to look for one (a query fewer, and on a large file the costliest of the checks)."""
    t = raw.table
    counts = t.aggregate(
        _rows=t.count(),
        # rows where the rule's flag is true (a null flag breaks no rule): a filtered count, about a quarter less for
        # Ibis to compile than summing the flag made an integer
        **{f"f{i}": t.count(where=r.flag) for i, r in enumerate(rules)},
        **{f"c{i}": t[c].count() for i, c in enumerate(columns)},
        **({} if key is None else {"_keyed": key.count(), "_keys": key.nunique()}),
    ).to_pyarrow()
    problems = []
    for i, rule in enumerate(rules):
        count = int(counts[f"f{i}"][0].as_py() or 0)
        if not count:
            continue
        cols: dict[str, ir.Value] = {ROW: t[ROW]}
        if rule.show is not None:
            cols["value"] = rule.show
        examples = t.filter(rule.flag.fill_null(False)).select(**cols).order_by(ROW).limit(EXAMPLES).to_pyarrow()
        rows = tuple(int(r) for r in examples[ROW].to_pylist())
        values = tuple(str(v) for v in examples["value"].to_pylist()) if "value" in examples.column_names else ()
        problems.append(
            Problem(raw.file, rule.message, rule.column, count, rows, values, raw.location, rule.hint)
        )
    repeats = key is None or counts["_keyed"][0].as_py() != counts["_keys"][0].as_py()
    return _Summary(problems, int(counts["_rows"][0].as_py()), repeats)


def _price_model_problems(raw: RawTable, present: set[str]) -> list[Problem]:
    """Plans whose ``price_model`` is not a valid price model of a usage quantity: not JSON, an invalid model
    (every wrong field named), a percentage (it prices event amounts, not a quantity) or no ``usage_metric`` to
    price. Rows with the same fault are one problem."""
    t = raw.table
    cols = {ROW: t[ROW], "model": t.price_model.cast("string")}
    if "usage_metric" in present:
        cols["metric"] = t.usage_metric.cast("string")
    rows = t.filter(~_is_blank(raw, "price_model")).select(**cols).order_by(ROW).to_pyarrow().to_pylist()
    found: dict[str, list[tuple[int, str]]] = {}
    for row in rows:
        try:
            model = price_model_from_json(row["model"], "price_model")
        except ConfigError as exc:
            rule = str(exc).removeprefix("price_model: ")
        else:
            if isinstance(model, Percentage):
                rule = "a percentage model prices event amounts, not a period's usage quantity"
            elif not (row.get("metric") or "").strip():
                rule = "a price model prices the plan's usage_metric, which is empty"
            else:
                continue
        found.setdefault(rule, []).append((int(row[ROW]), row["model"]))
    return [Problem(raw.file, f"not a usable price model: {rule}", "price_model", len(bad),
                    tuple(r for r, _ in bad[:EXAMPLES]), tuple(v for _, v in bad[:EXAMPLES]), raw.location,
                    "Write the price of a month's usage as a JSON price model (see docs/pricing.md)")
            for rule, bad in found.items()]


def _listed(pairs: list[tuple[str, int]], location: str) -> str:
    said = [f"{value!r} ({location} {row})" for value, row in pairs]
    return ", ".join(said[:-1]) + " and " + said[-1]


def _duplicate_keys(raw: RawTable, schema: TableSchema, key: tuple[str, ...]) -> list[Problem]:
    """Rows whose ``key`` is taken by another row, compared as the key is joined (see :func:`_typed`)."""
    t = raw.table
    keys = list(key)
    shown = t[keys[0]].cast("string")
    for k in keys[1:]:
        shown = shown + ", " + t[k].cast("string")
    normal = {f"_k{i}": _typed(raw, schema.column(k)) for i, k in enumerate(keys)}
    base = t.select(ROW, _shown=shown.fill_null(""), **normal)
    counted = base.mutate(_n=base[ROW].count().over(ibis.window(group_by=[base[k] for k in normal])))
    dup = counted.filter((counted._n > 1) & ibis.and_(*[counted[k].notnull() for k in normal]))
    count = int(dup.count().to_pyarrow().as_py())
    if not count:
        return []
    label = keys[0] if len(keys) == 1 else "(" + ", ".join(keys) + ")"
    ex = dup.select(ROW, value=dup._shown).order_by(ROW).limit(EXAMPLES).to_pyarrow()
    hint = "Keep one row per key"
    # where rows collide only once read (spaces, capitals, a month written two ways), show how they are written
    groups = dup.group_by(list(normal)).aggregate(_first=dup[ROW].min(), _ways=dup._shown.nunique())
    first = groups.filter(groups._ways > 1).order_by("_first").limit(1).select(*normal)
    same = dup.semi_join(first, list(normal)).select(ROW, "_shown").order_by(ROW).limit(EXAMPLES).to_pyarrow()
    if same.num_rows:
        pairs = list(zip(same["_shown"].to_pylist(), same[ROW].to_pylist(), strict=True))
        hint += (f"; {_listed(pairs, raw.location)} are the same {label} once read (spaces trimmed, currency "
                 "codes in capitals, months and dates parsed), as they are joined")
    return [
        Problem(
            raw.file,
            f"duplicate {label}: each must be unique",
            ", ".join(keys),
            count,
            tuple(int(r) for r in ex[ROW].to_pylist()),
            tuple(str(v) for v in ex["value"].to_pylist()),
            raw.location,
            hint,
        )
    ]


def _unknown_references(raw: RawTable, schema: TableSchema, folder: Mapping[str, RawTable]) -> list[Problem]:
    problems = []
    for column, other, other_column in schema.references:
        if column not in _usable(raw) or other not in folder or other_column not in _usable(folder[other]):
            continue
        target = folder[other]
        known = target.table.select(_ref=_typed(target, CONTRACT[other].column(other_column))).distinct()
        # blank values are left out by the raw column: the same rows as a null ``_v``, and a filter DuckDB runs
        # half again faster on a large file
        probe = raw.table.filter(~_is_blank(raw, column))
        probe = probe.mutate(_v=_typed(replace(raw, table=probe), schema.column(column)))
        missing = probe.anti_join(known, probe._v == known._ref)
        count = int(missing.count().to_pyarrow().as_py())
        if not count:
            continue
        ex = missing.select(ROW, value=missing._v).order_by(ROW).limit(EXAMPLES).to_pyarrow()
        problems.append(
            Problem(
                raw.file,
                f"unknown {column}: not in {target.file}",
                column,
                count,
                tuple(int(r) for r in ex[ROW].to_pylist()),
                tuple(str(v) for v in ex["value"].to_pylist()),
                raw.location,
                f"Every {column} must appear in {target.file}",
            )
        )
    return problems


@dataclass(frozen=True)
class _FxQuote:
    """How ``fx_rates`` convert into the reporting currency ``home``: the currency they are quoted in, and the
    reporting currency's least rate in it when amounts go through cross rates (1.0 when they do not)."""

    currency: str
    home_floor: float = 1.0


def _rated_currencies(folder: Mapping[str, RawTable]) -> dict[str, tuple[float, float] | None]:
    """Each currency of ``fx_rates`` with its least and greatest rate (``None`` when the rates are unusable)."""
    fx = folder.get("fx_rates")
    if fx is None or "currency" not in _usable(fx):
        return {}
    schema = CONTRACT["fx_rates"]
    has_rate = "rate" in _usable(fx)
    rate = _typed(fx, schema.column("rate")) if has_rate else ibis.null("float64")
    t = fx.table.select(_k=_typed(fx, schema.column("currency")), _r=rate.cast("float64"))
    rows = t.group_by("_k").aggregate(_lo=t._r.min(), _hi=t._r.max()).to_pyarrow().to_pylist()
    return {r["_k"]: (r["_lo"], r["_hi"]) if has_rate and r["_lo"] is not None else None
            for r in rows if r["_k"] is not None}


def _fx_rows(fx: RawTable, currency: str, flag: ir.BooleanValue | None = None) -> tuple[int, tuple[int, ...],
                                                                                         tuple[str, ...]]:
    """How many rows of ``fx_rates`` are in ``currency`` (and ``flag``), their first rows and rates."""
    t = fx.table
    hit = _typed(fx, CONTRACT["fx_rates"].column("currency")) == currency
    rows = t.filter(hit if flag is None else hit & flag)
    count = int(rows.count().to_pyarrow().as_py())
    ex = rows.select(ROW, value=t.rate.cast("string")).order_by(ROW).limit(EXAMPLES).to_pyarrow()
    return count, tuple(int(r) for r in ex[ROW].to_pylist()), tuple(str(v) for v in ex["value"].to_pylist())


def _unknown_currencies(folder: Mapping[str, RawTable], reporting_currency: str,
                        fx_quote_currency: str | None = None) -> tuple[_FxQuote | None, list[Problem]]:
    """The currency ``fx_rates`` are quoted in, and the problems of the invoice lines' currencies.

    The quote currency is ``fx_quote_currency`` (``revenue.fx_quote_currency``); when it is not set, the reporting
    currency, unless the reporting currency has rates of its own (other than 1): the rates are then quoted in the
    one currency of the invoice lines that has no rates. With a quote currency other than the reporting one,
    amounts go through cross rates, so the reporting currency needs rates. A line's currency is known when it is
    the reporting currency, the quote currency or in ``fx_rates``. The quote is ``None`` when it cannot be told
    (a problem says why); a note says when cross rates are used.
    """
    lines = folder["invoice_lines"]
    home = reporting_currency.upper()
    fx = folder.get("fx_rates")
    fx_file = fx.file if fx is not None else "fx_rates"
    rated = _rated_currencies(folder)
    used: dict[str, int] = {}
    if "currency" in _usable(lines):
        probe = lines.table.filter(~_is_blank(lines, "currency"))
        probe = probe.mutate(_c=_typed(replace(lines, table=probe), CONTRACT["invoice_lines"].column("currency")))
        counted = probe.group_by("_c").aggregate(_n=probe.count()).to_pyarrow().to_pylist()
        used = {r["_c"]: int(r["_n"]) for r in counted if r["_c"] is not None}
    foreign = sorted(c for c in used if c != home)
    home_rates = rated.get(home)
    inferred = False
    if fx_quote_currency is not None:
        quote = fx_quote_currency.upper()
    elif home not in rated or home_rates == (1.0, 1.0):
        quote = home  # no rates of its own (or only rates of 1): the rates are quoted in it
    else:
        unrated = sorted(c for c in used if c not in rated)
        if len(unrated) != 1:
            said = ("every currency of invoice_lines has rates" if not unrated else
                    f"invoice_lines has {len(unrated)} currencies without rates: " + ", ".join(unrated))
            return None, [Problem(
                fx_file, f"fx_rates has rates for the reporting currency {home}, so they are quoted in another "
                         f"currency, and which cannot be told: {said}", "currency",
                hint="Set revenue.fx_quote_currency in the settings file to the currency the rates are quoted in "
                     "(the one whose rate would be 1); a line in it needs no rate")]
        quote, inferred = unrated[0], True
    problems: list[Problem] = []
    resolved: _FxQuote | None = _FxQuote(quote)
    quote_rates = rated.get(quote)
    if quote_rates is not None and quote_rates != (1.0, 1.0) and fx is not None:
        count, rows, values = _fx_rows(fx, quote, _typed(fx, CONTRACT["fx_rates"].column("rate")) != 1)
        problems.append(Problem(
            fx.file, f"a rate of the quote currency {quote} other than 1: fx_rates are quoted in {quote}, "
                     f"one {quote} is 1 {quote}", "rate", count, rows, values, fx.location,
            f"Remove {quote}'s rows from fx_rates, or set revenue.fx_quote_currency to the currency they are "
            "quoted in"))
        resolved = None
    if quote != home and home not in rated and foreign:  # only a quote currency that is set gets here
        problems.append(Problem(
            fx_file, f"no rates for the reporting currency {home}: fx_rates are quoted in {quote} "
                     "(revenue.fx_quote_currency), so "
                     f"converting into {home} takes {home}'s own rate each month (a cross rate: rate(C) ÷ "
                     f"rate({home}))", "currency",
            hint=f"Add monthly rates for {home}, in {quote} per {home}, to fx_rates, or report in {quote}"))
        resolved = None
    elif quote != home and home in rated and foreign and not problems:
        how = (f"{quote} is the one currency of invoice_lines without rates; set revenue.fx_quote_currency to "
               "say so" if inferred else "revenue.fx_quote_currency")
        low = home_rates[0] if home_rates is not None else None
        resolved = _FxQuote(quote, low) if low is not None and low > 0 else None
        problems.append(Problem(
            fx_file, f"the rates are quoted in {quote}: amounts are converted to {home} through cross rates "
                     f"(a currency's rate ÷ {home}'s, each month)", hint=how, severity="note"))
    unknown = {c: n for c, n in used.items() if c not in (home, quote) and c not in rated}
    if unknown:
        probe = lines.table.filter(~_is_blank(lines, "currency"))
        probe = probe.mutate(_c=_typed(replace(lines, table=probe), CONTRACT["invoice_lines"].column("currency")))
        probe = probe.filter(probe._c.isin(list(unknown)))
        ex = probe.select(ROW, value=probe._c).order_by(ROW).limit(EXAMPLES).to_pyarrow()
        known = (f"the reporting currency ({home})" if quote == home else
                 f"the reporting currency ({home}), the quote currency of fx_rates ({quote})")
        problems.append(Problem(
            lines.file, f"unknown currency: neither {known} nor in fx_rates", "currency", sum(unknown.values()),
            tuple(int(r) for r in ex[ROW].to_pylist()), tuple(str(v) for v in ex["value"].to_pylist()),
            lines.location, "Add monthly rates for it to fx_rates, or correct the code"))
    return resolved, problems


def _money_total(folder: Mapping[str, RawTable], reporting_currency: str, quote: _FxQuote) -> list[Problem]:
    """The invoice lines' amounts together, each at its currency's highest rate, if beyond what the ledger can
    count in cents (:data:`MONEY_TOTAL_LIMIT`).

    Through cross rates, a currency's highest rate is bounded by its highest rate ÷ the reporting currency's least
    (``quote.home_floor``); a line in the quote currency, which has no rates, by 1 ÷ that least rate."""
    lines = folder["invoice_lines"]
    schema = CONTRACT["invoice_lines"]
    if "amount" not in _usable(lines):
        return []
    home = reporting_currency.upper()
    t = lines.table
    currency = _typed(lines, schema.column("currency")) if "currency" in _usable(lines) else ibis.null("string")
    probe = t.select(_a=_typed(lines, schema.column("amount")).cast("float64").abs(), _c=currency)
    top: ir.FloatingValue = ibis.literal(1.0)
    fx = folder.get("fx_rates")
    if fx is not None and {"currency", "rate"} <= _usable(fx):
        rates = fx.table.select(_k=_typed(fx, CONTRACT["fx_rates"].column("currency")),
                                _r=_typed(fx, CONTRACT["fx_rates"].column("rate")))
        rates = rates.group_by("_k").aggregate(_top=rates._r.max())
        probe = probe.left_join(rates, probe._c == rates._k)
        top = ibis.coalesce(probe._top, 1.0)
    scale = ibis.ifelse(probe._c.fill_null(home) == home, 1.0, top / quote.home_floor)
    total = probe.aggregate(_t=(probe._a * scale).sum()).to_pyarrow()["_t"][0].as_py()
    if total is None or not total >= MONEY_TOTAL_LIMIT:
        return []
    return [Problem(lines.file, f"the amounts add up to ±{MONEY_TOTAL_LIMIT:,} or more in the reporting currency "
                                "(each at its currency's highest rate): more than upcurve counts in cents",
                    "amount", values=(f"{total:,.0f}" if total < 1e21 else f"{total:.3e}",),
                    hint="Check the decimal point and the unit of amount, and the rates in fx_rates")]


def database_problem(table: str, exc: Exception) -> Problem:
    """A database's refusal of a check on its table (a value out of its type's range) as a problem of the table."""
    said = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return Problem(table, f"the database refused to check the table: {said}",
                   hint="Fix the value the database names, or compute on DuckDB (--engine duckdb://: the tables are "
                        "then copied and checked as files)")


def _usable(raw: RawTable) -> set[str]:
    return set(raw.table.columns) - raw.unusable - {ROW}


def _table_problems(raw: RawTable) -> list[Problem]:
    schema = CONTRACT[raw.name]
    present = _usable(raw)
    problems = [
        Problem(raw.file, f"required column {col.name!r} is missing", col.name,
                hint="Columns found: " + ", ".join(c for c in raw.table.columns if c != ROW))
        for col in schema.columns if col.required and col.name not in raw.table.columns
    ]
    problems += _one_of_problems(raw, schema)
    checked = _prepared(raw, schema, present)
    rules = _column_rules(checked, schema, present)
    if raw.name == "invoice_lines":
        rules += _invoice_line_rules(checked, present)
    key = schema.key_of(present)
    keyed = bool(key) and set(key) <= present
    # a one-column key is counted in the one pass (a key of several columns is looked for row by row)
    key_values = _typed(checked, schema.column(key[0])) if keyed and len(key) == 1 else None
    summary = _fail_summary(checked, rules, [c for c in raw.table.columns if c != ROW], key_values)
    if not summary.rows:
        problems.append(Problem(raw.file, "the file has a header but no rows", severity="error" if schema.required
                                else "note", hint="Add the table's rows" if schema.required else
                                "An optional table may be empty: nothing from it is used"))
        return problems
    problems += summary.problems
    if raw.name == "plans" and "price_model" in present:
        problems += _price_model_problems(raw, present)
    if keyed and summary.key_may_repeat:
        problems += _duplicate_keys(raw, schema, key)
    return problems


def _one_of_problems(raw: RawTable, schema: TableSchema) -> list[Problem]:
    """A file with none, or more than one, of the columns its table has one of (``fx_rates``' month or day)."""
    if not schema.one_of:
        return []
    found = [c for c in schema.one_of if c in raw.table.columns]
    if len(found) == 1:
        return []
    said = " or ".join(repr(c) for c in schema.one_of)
    if not found:
        return [Problem(raw.file, f"a column {said} is required", schema.one_of[0],
                        hint="Columns found: " + ", ".join(c for c in raw.table.columns if c != ROW))]
    return [Problem(raw.file, f"both {' and '.join(repr(c) for c in found)}: a file has only one of them",
                    ", ".join(found), hint=schema.one_of_hint or "Keep one of them")]


def validate(data: DataFolder, *, reporting_currency: str = "USD",
             fx_quote_currency: str | None = None) -> list[Problem]:
    """Every problem in the folder's tables, all at once (errors first, then notes).

    Checks, per table: the file can be read, is not empty and not wider than the contract allows; required columns
    present, required values filled, values of their type (finite numbers, whole numbers where whole, plausible
    dates and amounts), values among the allowed choices and within bounds, unique keys, references to known
    accounts and plans; for invoice lines also ``period_end > period_start`` within 10 years, a plan on every
    recurring line, no negative recurring amounts (but a proration's), a share of the period (``proration_share``
    below 1) on proration lines only and a known currency (the reporting one, the one ``fx_rates`` are quoted in,
    ``fx_quote_currency`` or inferred, or one with rates; a note says when amounts go through cross rates).
    A file the reader cannot finish is one problem naming its line, and the other files are still checked.
    """
    problems: list[Problem] = [*data.problems, *data.notes]
    read: dict[str, RawTable] = {}
    for name, raw in data.tables.items():
        # DuckDB reads lazily: a line it cannot read surfaces in the first pass over the table
        try:
            problems += _table_problems(raw)
        except duckdb.OutOfMemoryException:
            raise  # the engine's memory limit, not the file: reported as an engine failure
        except duckdb.Error as exc:
            problems.append(engine_problem(raw.file, raw.location, exc))
        except Exception as exc:  # a database checked where it is refuses a value its own way
            if not database_error(exc):
                raise
            problems.append(database_problem(raw.file, exc))
        else:
            read[name] = raw
    # checks across tables, on the tables read whole
    checks: list[tuple[RawTable, Callable[[], list[Problem]]]] = [
        (raw, partial(_unknown_references, raw, CONTRACT[raw.name], read)) for raw in read.values()]
    quote: _FxQuote | None = None  # what the currency check finds, for the money check after it

    def currencies() -> list[Problem]:
        nonlocal quote
        quote, found = _unknown_currencies(read, reporting_currency, fx_quote_currency)
        return found

    def money_total() -> list[Problem]:
        return [] if quote is None else _money_total(read, reporting_currency, quote)

    if "invoice_lines" in read:
        checks.append((read["invoice_lines"], currencies))
        # on clean amounts and rates only: a NaN or a bad rate is already reported
        money_files = {read[n].file for n in ("invoice_lines", "fx_rates") if n in read}
        if not any(p.severity == "error" and p.file in money_files for p in problems):
            checks.append((read["invoice_lines"], money_total))
    for raw, check in checks:
        try:
            problems += check()
        except duckdb.OutOfMemoryException:
            raise  # the engine's memory limit, not the file: reported as an engine failure
        except duckdb.Error as exc:
            problems.append(engine_problem(raw.file, raw.location, exc))
        except Exception as exc:  # a database checked where it is refuses a value its own way
            if not database_error(exc):
                raise
            problems.append(database_problem(raw.file, exc))
    return sorted(problems, key=lambda p: p.severity != "error")


def typed_tables(data: DataFolder, *, names: Iterable[str] | None = None) -> dict[str, ir.Table]:
    """The folder's tables with every contract column in its type; extra columns kept as they are.

    Call after :func:`validate` found no error: values that do not parse would be null here. Contract columns a file
    lacks are added as nulls, so later steps can rely on every column existing.
    """
    out: dict[str, ir.Table] = {}
    for name in names or data.tables:
        raw = data.tables[name]
        if raw.source is not None:  # a database's table: read where it is, not its numbered copy
            raw = replace(raw, table=raw.source)
        schema = CONTRACT[name]
        cols: dict[str, ir.Value] = {}
        for col in schema.columns:
            if col.name in raw.table.columns:
                cols[col.name] = _typed(raw, col)
            else:
                dtype = MONEY if col.money else {"string": "string", "int": "int64", "number": "float64",
                                                 "timestamp": "timestamp"}.get(col.type, "date")
                cols[col.name] = ibis.null(dtype)
        extra = [c for c in raw.table.columns if c not in cols and c != ROW]
        out[name] = raw.table.select(**cols, **{c: raw.table[c] for c in extra})
    return out
