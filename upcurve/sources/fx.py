"""Exchange rates a user brings, as the contract's ``fx_rates``.

A monthly file (``month``, ``currency``, ``rate``) is the contract's own table and is taken as it is (the contract
checks it like any table). A daily file, as rate feeds publish them (the ECB's reference rates, a bank's, a
finance system's export: ``day`` or ``date`` instead of ``month``, a date or a date and time), is kept day by day
as the contract's daily ``fx_rates`` (``day``, ``currency``, ``rate``): one rate per currency and day, the day's
latest (by its time when the file gives one, else its last line). The ledger converts each value at the rate in
force on the day it is counted.

A daily file's unreadable day, missing currency or rate that is not a number above 0 is a problem naming the file,
the line, the column and the value; all of them at once, and nothing is written.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from upcurve.errors import ConfigError, ContractError, Problem

__all__ = ["DAY_COLUMNS", "daily_rates"]

#: The column naming a daily file's day (the first one found).
DAY_COLUMNS = ("day", "date")


def _text_rows(path: Path) -> tuple[list[str], list[dict[str, str | None]]]:
    if path.suffix.lower() == ".parquet":
        table = pq.read_table(path)
        return table.column_names, [{k: None if v is None else str(v) for k, v in row.items()}
                                    for row in table.to_pylist()]
    with path.open(newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), [])
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        strings_can_be_null=True, column_types={name: pa.string() for name in header}))
    return table.column_names, table.to_pylist()


def daily_rates(path: str | Path) -> pa.Table | None:
    """The rates of a daily file ``path`` (CSV or Parquet) as the contract's daily ``fx_rates``, or None when the
    file is monthly (it is then the contract's table as it is).

    Raises
    ------
    ConfigError
        The file cannot be read, or has neither a ``month`` nor a ``day``/``date`` column.
    ContractError
        Every unreadable day, missing currency and rate that is not a number above 0 (line numbers count the
        header as line 1; a Parquet file's rows count from 1).
    """
    path = Path(path)
    try:
        columns, rows = _text_rows(path)
    except (OSError, pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as a file of exchange rates: {exc}") from None
    if "month" in columns:
        return None
    day_column = next((c for c in DAY_COLUMNS if c in columns), None)
    if day_column is None or not {"currency", "rate"} <= set(columns):
        raise ConfigError(f"{path}: exchange rates need the columns month (or day), currency and rate; the file has "
                          + ", ".join(columns))
    first_line = 1 if path.suffix.lower() == ".parquet" else 2
    bad: dict[tuple[str, str], list[tuple[int, str]]] = {}
    latest: dict[tuple[str, str], tuple[str, Decimal]] = {}
    for line, row in enumerate(rows, start=first_line):
        text_day, currency, text_rate = row.get(day_column), (row.get("currency") or "").strip(), row.get("rate")
        try:
            day = dt.date.fromisoformat((text_day or "").strip()[:10])
        except ValueError:
            bad.setdefault((day_column, "not a date YYYY-MM-DD"), []).append((line, str(text_day)))
            continue
        if not currency:
            bad.setdefault(("currency", "a rate needs its currency"), []).append((line, row.get("currency") or ""))
            continue
        try:
            rate = Decimal((text_rate or "").strip())
        except InvalidOperation:
            rate = Decimal(0)
        if not rate.is_finite() or rate <= 0:
            bad.setdefault(("rate", "not a number above 0"), []).append((line, str(text_rate)))
            continue
        key = (day.isoformat(), currency.upper())
        when = (text_day or "").strip()  # a later time of the same day, or a later line, wins
        if key not in latest or when >= latest[key][0]:
            latest[key] = (when, rate)
    if bad:
        location = "row" if first_line == 1 else "line"
        raise ContractError([Problem(path.name, rule, column, len(found), tuple(n for n, _ in found[:5]),
                                     tuple(v for _, v in found[:5]), location,
                                     "Correct the value, or leave the line out")
                             for (column, rule), found in bad.items()])
    ordered = sorted(latest.items())
    return pa.table({"day": pa.array([d for (d, _), _ in ordered], pa.string()),
                     "currency": pa.array([c for (_, c), _ in ordered], pa.string()),
                     "rate": pa.array([str(r) for _, (_, r) in ordered], pa.string())})
