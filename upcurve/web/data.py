"""What the pages and the API show, read from the workspace's stored runs (nothing is recomputed).

A :class:`Reader` holds the workspace for the web app. A run's tables never change once stored, so each is read
once and kept in memory as Arrow (for the few runs looked at last); an account's rows are found through an index
built on first use, so an account page at 100,000 accounts reads a few rows, not millions. The list of runs is
read again every few seconds, so a run stored while the app serves shows up.

Every function returns plain values (text, numbers, decimals, dates) that the API turns into JSON and the pages
into HTML: the pages show the same numbers the API serves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from upcurve.errors import UpcurveError
from upcurve.present.terminal import nrr_verdict
from upcurve.workspace import RunRecord, Store, WorkspaceError

__all__ = ["NotFound", "Reader", "headline"]

#: Published NRR benchmarks for B2B SaaS: median 108–110%, top quartile above 123%, best in class 130%+.
#: The bridge's lines in the order a waterfall shows them.
BRIDGE_ORDER = ("new", "expansion", "reactivation", "contraction", "churn", "fx")


class NotFound(UpcurveError, LookupError):
    """A run, account or value the workspace does not hold (the API answers 404)."""


def headline(metrics: dict[str, Any] | None) -> str:
    """The month in one plain sentence.

    >>> print(headline({"month": "2024-12", "expansion": Decimal(180), "churn": Decimal(-100),
    ...                 "contraction": Decimal(0), "nrr_12m": 1.12, "net_new_mrr": Decimal(300)}))
    In 2024-12 expansion covered 1.8× churn and contraction; NRR 112%, above the median, below the top quartile (>123%).
    """
    if not metrics:
        return "No month to report yet."
    lost = -(metrics["churn"] + metrics["contraction"])
    if lost > 0:
        cover = f"expansion covered {metrics['expansion'] / lost:.1f}× churn and contraction"
    elif metrics["expansion"] > 0:
        cover = "expansion with no churn or contraction"
    else:
        cover = f"net new MRR {metrics['net_new_mrr']:,.2f}"
    nrr = metrics.get("nrr_12m")
    retention = f"NRR {nrr * 100:.0f}%, {nrr_verdict(nrr)}" if nrr is not None else "NRR needs 12 months of history"
    return f"In {metrics['month']} {cover}; {retention}."


def _months_back(month: str, count: int) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + mon - 1 - count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class Reader:
    """The workspace as the web app reads it. Thread-safe: the embedded database is opened one call at a time.

    Parameters
    ----------
    store
        The open workspace.
    keep_runs
        How many runs' tables stay in memory.
    runs_ttl
        Seconds the list of runs is trusted before it is read again.
    auth_ttl
        Seconds a token or a session found live is trusted before the workspace is asked again: a token revoked or
        a password changed from the command line takes effect within this time (a logout here, at once).
    """

    def __init__(self, store: Store, *, keep_runs: int = 3, runs_ttl: float = 3.0, auth_ttl: float = 3.0) -> None:
        self.store = store
        self.keep_runs = keep_runs
        self.runs_ttl = runs_ttl
        self.auth_ttl = auth_ttl
        self.lock = threading.RLock()
        self._runs: tuple[float, list[RunRecord]] | None = None
        self._tables: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._live: dict[tuple[str, str], tuple[float, Any]] = {}

    # -- who is calling, remembered briefly ----------------------------------------------------------------------
    def live(self, check: Callable[[Store, str], Any], secret: str) -> Any:
        """``check(store, secret)`` (a token's or a session's), its found answers remembered for ``auth_ttl``
        seconds: every request carries one, and asking the workspace each time made it the app's bottleneck.
        Only a hash of the secret is kept; an answer of None (unknown, revoked) is never remembered."""
        key = (check.__name__, hashlib.sha256(secret.encode()).hexdigest())
        now = time.monotonic()
        with self.lock:
            hit = self._live.get(key)
            if hit is not None and now - hit[0] <= self.auth_ttl:
                return hit[1]
            found = check(self.store, secret)
            if found is None:
                self._live.pop(key, None)
            else:
                if len(self._live) >= 10_000:  # a flood of distinct secrets cannot grow it without bound
                    self._live.clear()
                self._live[key] = (now, found)
            return found

    def forget(self, secret: str) -> None:
        """Forget every remembered answer for ``secret`` (a session that logged out here)."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        with self.lock:
            for key in [k for k in self._live if k[1] == digest]:
                del self._live[key]

    # -- the store, one call at a time --------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a store function while holding the workspace (an embedded DuckDB file opens one way at a time)."""
        with self.lock:
            return fn(*args, **kwargs)

    def runs(self) -> list[RunRecord]:
        with self.lock:
            if self._runs is None or time.monotonic() - self._runs[0] > self.runs_ttl:
                self._runs = (time.monotonic(), self.store.runs())
            return self._runs[1]

    def run(self, run_id: str | None = None) -> RunRecord:
        """A run by id (a unique prefix will do), else the latest run."""
        runs = self.runs()
        if not runs:
            raise NotFound(f"the workspace {self.store.where} holds no run yet: `upcurve run DATA --workspace "
                           f"{self.store.where}`")
        if run_id is None:
            return runs[-1]
        matches = [r for r in runs if r.run_id == run_id] or [r for r in runs if r.run_id.startswith(run_id)]
        if len(matches) != 1:
            raise NotFound(f"{'no' if not matches else 'more than one'} run matches {run_id!r}")
        return matches[0]

    @staticmethod
    def currency(run: RunRecord) -> str:
        return str(run.settings.get("revenue", {}).get("reporting_currency", "USD"))

    def _cache(self, run_id: str) -> dict[str, Any]:
        with self.lock:
            cache = self._tables.get(run_id)
            if cache is None:
                cache = self._tables[run_id] = {}
                while len(self._tables) > self.keep_runs:
                    self._tables.popitem(last=False)
            self._tables.move_to_end(run_id)
            return cache

    def table(self, run: RunRecord, name: str) -> pa.Table:
        """A result table of a run (empty when the run did not keep it)."""
        cache = self._cache(run.run_id)
        with self.lock:
            if name not in cache:
                if name == "worklist+segment":
                    cache[name] = self._worklist_with_segment(run)
                else:
                    try:
                        cache[name] = self.store.table(name, run.run_id)
                    except WorkspaceError:
                        cache[name] = pa.table({})
            return cache[name]

    def _worklist_with_segment(self, run: RunRecord) -> pa.Table:
        """The worklist with each account's segment beside its owner (to filter by segment)."""
        worklist, accounts = self.table(run, "worklist"), self.table(run, "accounts")
        if worklist.num_rows == 0:
            return worklist
        if "segment" not in accounts.column_names:
            return worklist.add_column(6, "segment", pa.nulls(worklist.num_rows, pa.string()))
        segments = dict(zip(accounts["account_id"].to_pylist(), accounts["segment"].to_pylist(), strict=True))
        column = pa.array([segments.get(a) for a in worklist["account_id"].to_pylist()], pa.string())
        return worklist.add_column(worklist.column_names.index("name") + 1, "segment", column)

    def rows_of(self, run: RunRecord, name: str, account_id: str) -> list[dict[str, Any]]:
        """One account's rows of a table that has an ``account_id`` column, through an index built once."""
        cache = self._cache(run.run_id)
        key = f"{name}#by_account"
        with self.lock:
            if key not in cache:
                table = self.table(run, name)
                if "account_id" not in table.column_names or table.num_rows == 0:
                    cache[key] = (table, {})
                else:
                    ordered = table.take(pc.sort_indices(table, [("account_id", "ascending")]))
                    counts = pc.value_counts(ordered["account_id"]).to_pylist()
                    index, start = {}, 0
                    for item in counts:  # value_counts keeps the order values first appear in: sorted here
                        index[item["values"]] = (start, item["counts"])
                        start += item["counts"]
                    cache[key] = (ordered, index)
            ordered, index = cache[key]
        where = index.get(account_id)
        return [] if where is None else ordered.slice(*where).to_pylist()

    # -- what the pages show -------------------------------------------------------------------------------------
    def metrics(self, run: RunRecord) -> list[dict[str, Any]]:
        return self.table(run, "metrics").to_pylist()

    def month(self, run: RunRecord, month: str | None = None) -> dict[str, Any] | None:
        """The metrics of a month (default: the run's last month)."""
        rows = self.metrics(run)
        if month is None:
            return rows[-1] if rows else None
        found = [r for r in rows if r["month"] == month]
        if not found:
            raise NotFound(f"run {run.run_id} has no month {month!r}; its months run from "
                           f"{rows[0]['month'] if rows else '–'} to {rows[-1]['month'] if rows else '–'}")
        return found[0]

    def bridge(self, run: RunRecord, month: str | None = None) -> list[dict[str, Any]]:
        """The month's MRR bridge: start, new, expansion by source, reactivation, contraction, churn, fx, end.
        Each line: ``line``, ``type``, ``source`` (for expansion by source), ``amount``. It adds up to the cent."""
        row = self.month(run, month)
        if row is None:
            return []
        by_source = [r for r in self.table(run, "expansion_by_source").to_pylist() if r["month"] == row["month"]]
        lines: list[dict[str, Any]] = [{"line": "start", "type": "start", "source": None,
                                        "amount": row["mrr"] - row["net_new_mrr"]}]
        for kind in BRIDGE_ORDER:
            if kind == "expansion" and by_source:
                parts = sorted((r for r in by_source if r["expansion"]), key=lambda r: -r["expansion"])
                lines += [{"line": f"expansion: {r['source']}", "type": "expansion", "source": r["source"],
                           "amount": r["expansion"]} for r in parts]
                rest = row["expansion"] - sum((r["expansion"] for r in parts), Decimal(0))
                if rest:
                    lines.append({"line": "expansion: other", "type": "expansion", "source": None, "amount": rest})
            else:
                lines.append({"line": kind, "type": kind, "source": None, "amount": row[kind]})
        lines.append({"line": "end", "type": "end", "source": None, "amount": row["mrr"]})
        return lines

    def expansion_by(self, run: RunRecord, dimension: str, months: int = 12) -> list[dict[str, Any]]:
        """Expansion, contraction and net MRR over the last ``months`` months by ``source`` or by a segment
        dimension (``segment``, ``owner``, ``product``, …), largest expansion first."""
        last = self.month(run)
        if last is None:
            return []
        since = _months_back(last["month"], months - 1)
        if dimension == "source":
            table = self.table(run, "expansion_by_source")
            rows = [dict(r, value=r["source"]) for r in table.to_pylist() if r["month"] >= since]
        else:
            table = self.table(run, "segments")
            rows = [r for r in table.to_pylist() if r["dimension"] == dimension and r["month"] >= since]
        totals: dict[str, dict[str, Any]] = {}
        for r in rows:
            t = totals.setdefault(str(r["value"]), {"value": str(r["value"]), "expansion": Decimal(0),
                                                      "contraction": Decimal(0)})
            t["expansion"] += r["expansion"] or 0
            t["contraction"] += r["contraction"] or 0
        out = [dict(t, net=t["expansion"] + t["contraction"], since=since, until=last["month"])
               for t in totals.values()]
        return sorted(out, key=lambda t: (-t["expansion"], t["value"]))

    def dimensions(self, run: RunRecord) -> list[str]:
        table = self.table(run, "segments")
        if table.num_rows == 0:
            return []
        return sorted(pc.unique(table["dimension"]).to_pylist(), key=lambda d: (d != "segment", d != "owner", d))

    def segments(self, run: RunRecord, dimension: str, month: str | None = None) -> list[dict[str, Any]]:
        """The metrics of each value of a dimension in a month (default: the run's last month)."""
        known = self.dimensions(run)
        if dimension not in known:
            raise NotFound(f"no dimension {dimension!r}; the dimensions are {', '.join(known) or 'none'}")
        last = self.month(run, month)
        if last is None:
            return []
        table = self.table(run, "segments")
        rows = [r for r in table.to_pylist() if r["dimension"] == dimension and r["month"] == last["month"]]
        return sorted(rows, key=lambda r: (-(r["mrr"] or 0), str(r["value"])))

    def cohorts(self, run: RunRecord) -> list[dict[str, Any]]:
        return self.table(run, "cohorts").to_pylist()

    def movements(self, run: RunRecord, *, month_from: str | None = None, month_to: str | None = None,
                  kind: str | None = None, source: str | None = None, account_id: str | None = None
                  ) -> pa.Table:
        """The movements matching every filter given, largest first."""
        table = self.table(run, "movements")
        if table.num_rows == 0:
            return table
        mask = None
        for column, op, value in (("month", pc.greater_equal, month_from), ("month", pc.less_equal, month_to),
                                  ("type", pc.equal, kind), ("source", pc.equal, source),
                                  ("account_id", pc.equal, account_id)):
            if value is not None:
                cond = op(table[column], pa.scalar(value, pa.string()))
                mask = cond if mask is None else pc.and_(mask, cond)
        if mask is not None:
            table = table.filter(mask)
        if table.num_rows == 0:
            return table
        return table.take(pc.array_sort_indices(pc.abs(table["amount"]), order="descending"))

    def accounts(self, run: RunRecord, *, filters: dict[str, str | None], sort: str, descending: bool,
                 cohort: str | None = None, search: str | None = None, table_name: str = "accounts") -> pa.Table:
        """The accounts (or worklist) rows matching the filters, sorted (nulls last, then by account id)."""
        table = self.table(run, table_name)
        if table.num_rows == 0:
            return table
        mask = None
        for column, value in filters.items():
            if value is not None and column in table.column_names:
                cond = pc.equal(table[column], pa.scalar(value, pa.string()))
                mask = cond if mask is None else pc.and_(mask, cond)
        if cohort is not None:
            growth = self.table(run, "account_growth")
            ids = growth.filter(pc.equal(growth["first_paid_month"], pa.scalar(cohort, pa.string())))["account_id"]
            cond = pc.is_in(table["account_id"], value_set=ids.combine_chunks() if ids.num_chunks else
                            pa.array([], pa.string()))
            mask = cond if mask is None else pc.and_(mask, cond)
        if search:
            needle = search.lower()
            cond = pc.or_(pc.match_substring(pc.utf8_lower(table["account_id"]), needle),
                          pc.match_substring(pc.utf8_lower(pc.fill_null(table["name"], "")), needle))
            mask = cond if mask is None else pc.and_(mask, cond)
        if mask is not None:
            table = table.filter(pc.fill_null(mask, False))
        if sort not in table.column_names:
            raise NotFound(f"cannot sort by {sort!r}")
        order = "descending" if descending else "ascending"
        return table.take(pc.sort_indices(table, [(sort, order, "at_end"), ("account_id", "ascending", "at_end")]))

    def distinct(self, run: RunRecord, table_name: str, column: str) -> list[str]:
        table = self.table(run, table_name)
        if column not in table.column_names:
            return []
        return sorted(v for v in pc.unique(table[column]).to_pylist() if v is not None)

    def account(self, run: RunRecord, account_id: str) -> dict[str, Any]:
        """Everything about one account in a run: its row, MRR by product and month, movements, growth."""
        rows = self.rows_of(run, "accounts", account_id)
        if not rows:
            raise NotFound(f"no account {account_id!r} in run {run.run_id}")
        growth = self.rows_of(run, "account_growth", account_id)
        worklist = self.rows_of(run, "worklist", account_id)
        mrr = sorted(self.rows_of(run, "mrr", account_id), key=lambda r: (r["month"], r["product"]))
        movements = sorted(self.rows_of(run, "movements", account_id), key=lambda r: (r["month"], r["type"]))
        return {"account": rows[0], "growth": growth[0] if growth else None,
                "worklist": worklist[0] if worklist else None, "mrr": mrr, "movements": movements}

    def account_history(self, account_id: str) -> list[dict[str, Any]]:
        """The account as each run saw it: health, tier, scores and MRR, oldest run first."""
        with self.lock:
            found = self.store.query(
                "SELECT r.run_id, r.as_of, a.mrr, a.health_score, a.health_tier, a.expansion_propensity, "
                "a.churn_risk, a.recommended_lever FROM accounts a JOIN runs r ON r.run_id = a.run_id "
                "WHERE a.account_id = ? AND r.status = 'complete' ORDER BY r.started_at, r.run_id", [account_id])
        return found.to_pylist()


def page(table: pa.Table, offset: int, limit: int) -> list[dict[str, Any]]:
    """Rows ``offset`` to ``offset + limit`` of a table, as dictionaries."""
    return table.slice(offset, limit).to_pylist() if offset < table.num_rows else []


def plain(value: Any) -> Any:
    """A value as JSON carries it: decimals as strings (exact), dates as ISO text, NaN as null."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def plain_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [plain(r) for r in rows]
