"""The input contract (v1): one schema per table.

A data folder holds one file per table, CSV or Parquet, the file's stem naming the table (``plans.csv``,
``invoice_lines.parquet``). Column names are fixed; extra columns are kept as they are and can be used as
dimensions (for example a custom ``tier_group`` column on ``accounts``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = [
    "CONTRACT",
    "EARLIEST",
    "EVENT_SCALE",
    "LATEST",
    "MAX_COLUMNS",
    "MAX_PERIOD_YEARS",
    "MONEY_LIMIT",
    "MONEY_TOTAL_LIMIT",
    "Column",
    "TableSchema",
    "table_schema",
]

#: Logical types and how they are parsed from text. ``month`` is ``YYYY-MM`` (a date on the first is accepted).
LOGICAL_TYPES = ("string", "int", "number", "date", "timestamp", "month")

# Plausibility limits: input beyond them is refused by ``validate`` (it would corrupt a result or stop a run).
#: The earliest and latest day a date, timestamp or month of the input may fall on (both inclusive).
EARLIEST = dt.date(1970, 1, 1)
LATEST = dt.date(2199, 12, 31)
#: Money (line amounts, unit prices) must stay strictly within ± this many units of its currency.
MONEY_LIMIT = 10**13
#: All invoice lines' amounts together, each at its currency's highest rate, must stay below this many units of the
#: reporting currency: the ledger counts in int64 cents, and a month's MRR (where a one-day line counts about 30
#: times its amount) times 12 for ARR must fit: 10^14 × 30.44 × 100 × 12 < 2^63.
MONEY_TOTAL_LIMIT = 10**14
#: The longest service period of an invoice line, in years.
MAX_PERIOD_YEARS = 10
#: The most columns a table's file may have (the contract's own and extra ones together).
MAX_COLUMNS = 200


@dataclass(frozen=True)
class Column:
    """A column of the contract.

    ``choices`` restricts the values; ``minimum``/``maximum`` bound numbers (inclusive), ``above`` from below
    (exclusive). ``money`` columns are parsed as exact decimals and bounded by :data:`MONEY_LIMIT`.
    """

    name: str
    type: str = "string"
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    above: float | None = None
    money: bool = False


@dataclass(frozen=True)
class TableSchema:
    """A table of the contract: its columns, primary key and the tables its columns refer to."""

    name: str
    columns: tuple[Column, ...]
    required: bool = False
    key: tuple[str, ...] = ()
    references: tuple[tuple[str, str, str], ...] = ()  # (column, table, column)
    description: str = ""
    #: Columns of which a file has exactly one, filled in every row; the one it has stands in the key for the first
    #: (``fx_rates`` are monthly, by ``month``, or daily, by ``day``).
    one_of: tuple[str, ...] = ()
    #: How to choose between the :attr:`one_of` columns, said to a file that has more than one of them.
    one_of_hint: str = ""

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def key_of(self, present: set[str] | frozenset[str]) -> tuple[str, ...]:
        """The key of a file with the columns ``present``: a column of :attr:`one_of` it lacks is replaced by the
        one it has."""
        chosen = next((c for c in self.one_of if c in present), None)
        if chosen is None:
            return self.key
        return tuple(chosen if k in self.one_of else k for k in self.key)

    def required_in(self, name: str) -> bool:
        """Whether every row must fill ``name``: a required column, or the :attr:`one_of` column a file has."""
        return self.column(name).required or name in self.one_of


_ACCOUNT_REF = (("account_id", "accounts", "account_id"),)

#: Tables at the scale of product events, which can hold hundreds of millions of rows: read from their files by
#: every pass over them (each check, each query) instead of being held by the engine.
EVENT_SCALE = ("events", "usage")

CONTRACT: dict[str, TableSchema] = {
    t.name: t
    for t in (
        TableSchema(
            "accounts",
            (
                Column("account_id", required=True),
                Column("name"),
                Column("segment"),
                Column("industry"),
                Column("region"),
                Column("owner"),
                Column("created_at", "date"),
            ),
            required=True,
            key=("account_id",),
            description="One row per customer account.",
        ),
        TableSchema(
            "plans",
            (
                Column("plan_id", required=True),
                Column("product", required=True),
                Column("tier", required=True),
                Column("tier_rank", "int", required=True, minimum=-1000, maximum=1000,
                       description="higher is more premium within its product"),
                Column("pricing", required=True, choices=("flat", "per_seat", "usage")),
                Column("interval_months", "int", minimum=1, maximum=120),
                Column("unit_price", "number", minimum=0, money=True),
                Column("included_seats", "int", minimum=0),
                Column("usage_metric"),
                Column("usage_limit", "number", minimum=0, description="per month"),
                Column("features", description="';'-separated feature keys available on this plan"),
                Column("price_model", description="the price of a period's usage_metric, as a price model in JSON "
                       "(see docs/pricing.md); a usage-priced plan without one is priced at unit_price per unit"),
            ),
            required=True,
            key=("plan_id",),
            description="The price book: one row per plan of each product.",
        ),
        TableSchema(
            "invoice_lines",
            (
                Column("line_id", required=True),
                Column("account_id", required=True),
                Column("plan_id", description="required unless kind is one_time"),
                Column("kind", required=True, choices=("subscription", "usage", "one_time")),
                Column("quantity", "number", minimum=0),
                Column("amount", "number", required=True, description="net of discounts, excluding tax", money=True),
                Column("currency", description="ISO code; empty means the reporting currency"),
                Column("period_start", "date", required=True),
                Column("period_end", "date", required=True, description="exclusive"),
                Column("proration", choices=("true", "false"),
                       description="true on a billing system's proration line: a credit (negative) for the unused "
                       "time of a plan changed mid-period, or a charge for the rest of the period"),
                Column("proration_share", "number", above=0, maximum=1,
                       description="on a proration line, the share of its full billing period it was charged for, "
                       "as the billing system computed it (Stripe prorates to the second: 16 days and 6 hours of a "
                       "30-day month are 0.5416…); empty, the share is counted in days"),
                Column("coupon", description="the coupon or discount the amount is net of (its name; several "
                       "joined by ', ')"),
                Column("discount", "number", money=True,
                       description="what the coupon took off the line, in currency (amount is already net of it)"),
            ),
            required=True,
            key=("line_id",),
            references=(("account_id", "accounts", "account_id"), ("plan_id", "plans", "plan_id")),
            description="Billed lines, one per charge and service period.",
        ),
        TableSchema(
            "fx_rates",
            (
                Column("month", "month", description="the month a monthly rate is for; a file has month or day"),
                Column("day", "date", description="the day a daily rate is for; a file has month or day"),
                Column("currency", required=True),
                Column("rate", "number", required=True, above=0, description="reporting-currency units per unit"),
            ),
            key=("month", "currency"),
            one_of=("month", "day"),
            one_of_hint="Keep one of them: a monthly rate is in force from the first of its month, so it can be "
                        "written as the rate of that day",
            description="Exchange rates into the reporting currency, monthly or daily: a value is converted at the "
                        "rate in force on the day it is counted.",
        ),
        TableSchema(
            "users",
            (
                Column("user_id", required=True),
                Column("account_id", required=True),
                Column("invited_at", "timestamp"),
                Column("activated_at", "timestamp"),
                Column("deactivated_at", "timestamp"),
                Column("role"),
            ),
            key=("user_id",),
            references=_ACCOUNT_REF,
        ),
        TableSchema(
            "events",
            (
                Column("ts", "timestamp", required=True),
                Column("account_id", required=True),
                Column("user_id"),
                Column("event", required=True),
                Column("feature"),
                Column("category"),
            ),
            references=_ACCOUNT_REF,
        ),
        TableSchema(
            "usage",
            (
                Column("ts", "timestamp", required=True),
                Column("account_id", required=True),
                Column("metric", required=True),
                Column("quantity", "number", required=True),
                Column("user_id", description="who used it, for the breakdown by role or team"),
            ),
            references=_ACCOUNT_REF,
        ),
        TableSchema(
            "subscriptions",
            (
                Column("subscription_id", required=True),
                Column("account_id", required=True),
                Column("status", description="as the billing system says: trialing, active, past_due, canceled…"),
                Column("started_on", "date"),
                Column("trial_end", "date"),
                Column("cancel_at", "date", description="when it ends: a scheduled cancellation, or the end"),
                Column("canceled_at", "date", description="when the cancellation was asked for"),
                Column("cancel_reason"),
            ),
            key=("subscription_id",),
            references=_ACCOUNT_REF,
            description="Subscriptions as the billing system holds them: trials and scheduled cancellations.",
        ),
        TableSchema(
            "renewals",
            (Column("account_id", required=True), Column("renewal_date", "date", required=True)),
            references=_ACCOUNT_REF,
        ),
        TableSchema(
            "tickets",
            (
                Column("account_id", required=True),
                Column("opened_at", "timestamp", required=True),
                Column("severity"),
            ),
            references=_ACCOUNT_REF,
        ),
        TableSchema(
            "nps",
            (
                Column("account_id", required=True),
                Column("ts", "timestamp", required=True),
                Column("score", "int", required=True, minimum=0, maximum=10),
            ),
            references=_ACCOUNT_REF,
        ),
        TableSchema(
            "outcomes",
            (
                Column("account_id", required=True),
                Column("as_of", "date", required=True),
                Column("status", required=True, choices=("exceeded", "on_track", "behind")),
            ),
            references=_ACCOUNT_REF,
        ),
        TableSchema(
            "activities",
            (
                Column("account_id", required=True),
                Column("ts", "timestamp", required=True),
                Column("play", required=True),
                Column("outcome"),
            ),
            references=_ACCOUNT_REF,
        ),
    )
}


def table_schema(name: str) -> TableSchema:
    """The schema of a contract table, by name."""
    return CONTRACT[name]
