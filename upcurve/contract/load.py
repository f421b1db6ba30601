"""Read a data folder into engine tables, and check it against the contract.

Files are read by an embedded DuckDB connection (the only reader that streams CSV and Parquet of any size and keeps
each row's position in its file). Checking happens in the engine too: every rule is a boolean column of one pass
over the table, so a billion-row events file is checked without leaving the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import ibis
import ibis.expr.types as ir
from ibis.backends.duckdb import Backend as DuckDBBackend

from upcurve.contract.schema import CONTRACT, Column, TableSchema
from upcurve.errors import ContractError, Problem

__all__ = ["DataFolder", "RawTable", "read_folder", "typed_tables", "validate"]

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
EXAMPLES = 5
ROW = "_row"

_SQL_TYPES = {
    "string": "string",
    "int": "int64",
    "number": "float64",
    "date": "date",
    "timestamp": "timestamp",
}
# Money is parsed as a fixed-point decimal so that "166.67" is 166.67, not 166.6699999...
_MONEY_COLUMNS = {("invoice_lines", "amount"), ("plans", "unit_price")}


@dataclass(frozen=True)
class RawTable:
    """A table as read from its file: text (CSV) or file types (Parquet), plus ``_row``, its position in the file."""

    name: str
    path: Path
    table: ir.Table
    location: str  # "line" for CSV (the header is line 1), "row" for Parquet (1-based)

    @property
    def file(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class DataFolder:
    """The tables of a data folder, as read, with the notes about files that were not used."""

    tables: dict[str, RawTable]
    notes: tuple[Problem, ...] = ()


def _discover(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    problems: list[Problem] = []
    if not folder.is_dir():
        raise ContractError([Problem(str(folder), "the data folder does not exist or is not a folder")])
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.suffix.lower() not in SUFFIXES:
            problems.append(Problem(path.name, "not a CSV or Parquet file; left out", severity="note"))
            continue
        if path.stem not in CONTRACT:
            problems.append(
                Problem(
                    path.name,
                    "not a table of the input contract; left out",
                    hint="Known tables: " + ", ".join(CONTRACT),
                    severity="note",
                )
            )
            continue
        found.setdefault(path.stem, []).append(path)
    chosen: dict[str, Path] = {}
    for name, paths in found.items():
        if len(paths) > 1:
            problems.append(
                Problem(
                    ", ".join(p.name for p in paths),
                    f"two files for table {name!r}",
                    hint="Keep one file per table",
                )
            )
        chosen[name] = paths[0]
    for name, schema in CONTRACT.items():
        if schema.required and name not in chosen:
            problems.append(
                Problem(f"{name}.csv", f"required table {name!r} is missing from {folder}", hint="Add the file")
            )
    return chosen, problems


def _read(con: DuckDBBackend, name: str, path: Path) -> RawTable:
    kind = SUFFIXES[path.suffix.lower()]
    if kind == "csv":
        table = con.read_csv(path, table_name=f"raw_{name}", all_varchar=True, header=True)
        # DuckDB keeps the file's order when reading (preserve_insertion_order), so the row number is the position.
        table = table.mutate(**{ROW: ibis.row_number() + 2})
        return RawTable(name, path, table, "line")
    table = con.read_parquet(path, table_name=f"raw_{name}", file_row_number=True)
    table = table.mutate(**{ROW: table.file_row_number + 1}).drop("file_row_number")
    return RawTable(name, path, table, "row")


def read_folder(folder: str | Path, con: DuckDBBackend) -> DataFolder:
    """Read every contract table found in ``folder`` through the DuckDB connection ``con``.

    Raises
    ------
    ContractError
        When the folder is missing, a required table is missing or a table has two files.
    """
    folder = Path(folder)
    paths, problems = _discover(folder)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ContractError(problems)
    tables = {name: _read(con, name, path) for name, path in paths.items()}
    return DataFolder(tables, tuple(problems))


# --- parsing ------------------------------------------------------------------------------------------------


def _parsed(raw: RawTable, col: Column) -> ir.Value:
    """The column parsed into its contract type; null where the text is not a valid value."""
    value = raw.table[col.name]
    if (raw.name, col.name) in _MONEY_COLUMNS:
        return value.cast("string").try_cast("decimal(18,6)") if value.type().is_string() else value.cast(
            "decimal(18,6)"
        )
    if col.type == "month":
        if value.type().is_string():
            text = value.strip()
            as_date = ibis.coalesce((text + "-01").try_cast("date"), text.try_cast("date"))
        else:
            as_date = value.cast("date")
        return as_date.truncate("M")
    target = _SQL_TYPES[col.type]
    if col.type == "string":
        return value.cast("string")
    if value.type().is_string():
        return value.strip().try_cast(target)
    if col.type == "date" and value.type().is_timestamp():
        return value.cast("date")
    return value.try_cast(target)


def _is_blank(raw: RawTable, name: str) -> ir.BooleanValue:
    value = raw.table[name]
    if value.type().is_string():
        return value.isnull() | (value.strip() == "")
    return value.isnull()


# --- checking -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    flag: ir.BooleanValue
    message: str
    column: str | None
    show: ir.Value | None
    hint: str = ""


def _column_rules(raw: RawTable, schema: TableSchema, present: set[str]) -> list[_Rule]:
    rules: list[_Rule] = []
    for col in schema.columns:
        if col.name not in present:
            continue
        value = raw.table[col.name]
        blank = _is_blank(raw, col.name)
        if col.required:
            rules.append(_Rule(blank, "a required value is empty", col.name, None, "Fill in every row"))
        if col.type != "string":
            parsed = _parsed(raw, col)
            example = {"int": "a whole number", "number": "a number such as 1250.50", "date": "a date YYYY-MM-DD",
                       "timestamp": "a date and time YYYY-MM-DD HH:MM:SS", "month": "a month YYYY-MM"}[col.type]
            rules.append(
                _Rule(~blank & parsed.isnull(), f"not {example}", col.name, value.cast("string"),
                      f"Write {example}")
            )
            if col.minimum is not None:
                rules.append(_Rule(~blank & (parsed < col.minimum), f"below the minimum {col.minimum:g}", col.name,
                                   value.cast("string")))
            if col.maximum is not None:
                rules.append(_Rule(~blank & (parsed > col.maximum), f"above the maximum {col.maximum:g}", col.name,
                                   value.cast("string")))
        if col.choices:
            rules.append(
                _Rule(
                    ~blank & ~value.cast("string").strip().isin(list(col.choices)),
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
        rules.append(
            _Rule(
                end <= start,
                "period_end is on or before period_start",
                "period_end",
                t.period_start.cast("string") + " → " + t.period_end.cast("string"),
                "period_end is exclusive: the first day after the service period",
            )
        )
    if {"plan_id", "kind"} <= present:
        kind = t.kind.cast("string").strip()
        rules.append(
            _Rule(
                _is_blank(raw, "plan_id") & (kind != "one_time"),
                "plan_id is empty on a subscription or usage line",
                "plan_id",
                kind,
                "Every recurring line names its plan; only one_time lines may leave it empty",
            )
        )
    if {"amount", "kind"} <= present:
        amount = _parsed(raw, schema.column("amount"))
        kind = t.kind.cast("string").strip()
        rules.append(
            _Rule(
                (amount < 0) & (kind != "one_time"),
                "a subscription or usage line has a negative amount",
                "amount",
                t.amount.cast("string"),
                "Net discounts into the line's amount; book credits and refunds as one_time lines",
            )
        )
    return rules


def _fail_summary(raw: RawTable, rules: list[_Rule]) -> list[Problem]:
    """Count every rule in one pass, then fetch a few examples of each broken rule."""
    if not rules:
        return []
    t = raw.table
    flags = t.select(ROW, **{f"f{i}": r.flag.fill_null(False) for i, r in enumerate(rules)})
    counts = flags.aggregate(**{f"f{i}": flags[f"f{i}"].cast("int64").sum() for i in range(len(rules))}).execute()
    problems = []
    for i, rule in enumerate(rules):
        count = int(counts[f"f{i}"].iloc[0] or 0)
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
    return problems


def _duplicate_keys(raw: RawTable, schema: TableSchema) -> list[Problem]:
    t = raw.table
    keys = list(schema.key)
    counted = t.mutate(_n=t[ROW].count().over(ibis.window(group_by=[t[k] for k in keys])))
    dup = counted.filter((counted._n > 1) & ibis.and_(*[counted[k].notnull() for k in keys]))
    count = int(dup.count().execute())
    if not count:
        return []
    label = keys[0] if len(keys) == 1 else "(" + ", ".join(keys) + ")"
    show = dup[keys[0]].cast("string")
    for k in keys[1:]:
        show = show + ", " + dup[k].cast("string")
    ex = dup.select(ROW, value=show).order_by(ROW).limit(EXAMPLES).to_pyarrow()
    return [
        Problem(
            raw.file,
            f"duplicate {label}: each must be unique",
            ", ".join(keys),
            count,
            tuple(int(r) for r in ex[ROW].to_pylist()),
            tuple(str(v) for v in ex["value"].to_pylist()),
            raw.location,
            "Keep one row per key",
        )
    ]


def _unknown_references(raw: RawTable, schema: TableSchema, folder: Mapping[str, RawTable]) -> list[Problem]:
    problems = []
    for column, other, other_column in schema.references:
        if column not in raw.table.columns or other not in folder:
            continue
        target = folder[other].table
        if other_column not in target.columns:
            continue
        t = raw.table
        known = target.select(_ref=target[other_column].cast("string").strip()).distinct()
        value = t[column].cast("string").strip()
        probe = t.mutate(_v=value).filter(~_is_blank(raw, column))
        missing = probe.anti_join(known, probe._v == known._ref)
        count = int(missing.count().execute())
        if not count:
            continue
        ex = missing.select(ROW, value=missing._v).order_by(ROW).limit(EXAMPLES).to_pyarrow()
        problems.append(
            Problem(
                raw.file,
                f"unknown {column}: not in {folder[other].file}",
                column,
                count,
                tuple(int(r) for r in ex[ROW].to_pylist()),
                tuple(str(v) for v in ex["value"].to_pylist()),
                raw.location,
                f"Every {column} must appear in {folder[other].file}",
            )
        )
    return problems


def _unknown_currencies(folder: Mapping[str, RawTable], reporting_currency: str) -> list[Problem]:
    lines = folder.get("invoice_lines")
    if lines is None or "currency" not in lines.table.columns:
        return []
    t = lines.table
    code = t.currency.cast("string").strip().upper()
    known = [reporting_currency.upper()]
    probe = t.mutate(_c=code).filter(~_is_blank(lines, "currency") & (code != reporting_currency.upper()))
    fx = folder.get("fx_rates")
    if fx is not None and "currency" in fx.table.columns:
        rates = fx.table.select(_k=fx.table.currency.cast("string").strip().upper()).distinct()
        probe = probe.anti_join(rates, probe._c == rates._k)
    count = int(probe.count().execute())
    if not count:
        return []
    ex = probe.select(ROW, value=probe._c).order_by(ROW).limit(EXAMPLES).to_pyarrow()
    return [
        Problem(
            lines.file,
            f"unknown currency: neither the reporting currency ({', '.join(known)}) nor in fx_rates",
            "currency",
            count,
            tuple(int(r) for r in ex[ROW].to_pylist()),
            tuple(str(v) for v in ex["value"].to_pylist()),
            lines.location,
            "Add monthly rates for it to fx_rates, or correct the code",
        )
    ]


def validate(data: DataFolder, *, reporting_currency: str = "USD") -> list[Problem]:
    """Every problem in the folder's tables, all at once (errors first, then notes).

    Checks, per table: required columns present, required values filled, values of their type, values among the
    allowed choices and within bounds, unique keys, references to known accounts and plans; for invoice lines also
    ``period_end > period_start``, a plan on every recurring line, no negative recurring amounts and a known currency.
    """
    problems: list[Problem] = list(data.notes)
    for name, raw in data.tables.items():
        schema = CONTRACT[name]
        present = set(raw.table.columns)
        missing = [c.name for c in schema.columns if c.required and c.name not in present]
        for col in missing:
            problems.append(
                Problem(raw.file, f"required column {col!r} is missing", col,
                        hint="Columns found: " + ", ".join(c for c in raw.table.columns if c != ROW))
            )
        rules = _column_rules(raw, schema, present)
        if name == "invoice_lines":
            rules += _invoice_line_rules(raw, present)
        problems += _fail_summary(raw, rules)
        if schema.key and set(schema.key) <= present:
            problems += _duplicate_keys(raw, schema)
        problems += _unknown_references(raw, schema, data.tables)
    problems += _unknown_currencies(data.tables, reporting_currency)
    return sorted(problems, key=lambda p: p.severity != "error")


def typed_tables(data: DataFolder, *, names: Iterable[str] | None = None) -> dict[str, ir.Table]:
    """The folder's tables with every contract column in its type; extra columns kept as they are.

    Call after :func:`validate` found no error: values that do not parse would be null here. Contract columns a file
    lacks are added as nulls, so later steps can rely on every column existing.
    """
    out: dict[str, ir.Table] = {}
    for name in names or data.tables:
        raw = data.tables[name]
        schema = CONTRACT[name]
        cols: dict[str, ir.Value] = {}
        for col in schema.columns:
            if col.name in raw.table.columns:
                value = _parsed(raw, col)
                if col.type == "string":
                    value = value.strip()
                    value = ibis.ifelse(value == "", ibis.null("string"), value)
                cols[col.name] = value
            else:
                dtype = "decimal(18,6)" if (name, col.name) in _MONEY_COLUMNS else _SQL_TYPES.get(col.type, "date")
                cols[col.name] = ibis.null(dtype)
        if "currency" in cols:
            cols["currency"] = cols["currency"].upper()
        extra = [c for c in raw.table.columns if c not in cols and c != ROW]
        out[name] = raw.table.select(**cols, **{c: raw.table[c] for c in extra})
    return out
