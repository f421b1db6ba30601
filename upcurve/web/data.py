"""What the pages and the API show, read from the workspace's stored runs (nothing is recomputed).

A :class:`Reader` holds the workspace for the web app. A run's tables never change once stored, so each is read
once and kept in memory as Arrow (for the few runs looked at last), and so is everything derived from them: the
bridge, the expansion by source or segment, each order a list is asked in (sorted once; a request then filters
by integer codes and takes only its page, see ``_lists``), each account's rows (through an index built on first
use) and each account's history across runs (a few columns of every run). A request that finds what it needs
kept takes no lock. The runs, the models and the recorded actions are read again every few seconds, so a run
stored, or an action recorded, while the app serves shows up. The plays' actions, their history and what the plays
measured are read through ``reader.plays`` (:mod:`upcurve.web._plays`): the actions again only when they changed.

Every function returns plain values (text, numbers, decimals, dates) that the API turns into JSON and the pages
into HTML: the pages show the same numbers the API serves.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from upcurve.errors import UpcurveError
from upcurve.months import month_index, month_label
from upcurve.present.terminal import nrr_verdict
from upcurve.web._lists import Keys, Ordered, Picked, both
from upcurve.workspace import ModelRecord, RunDiff, RunRecord, Store, WorkspaceError, diff_runs
from upcurve.workspace import access as acc
from upcurve.workspace.usage import AccountUsage

if TYPE_CHECKING:
    from upcurve.web._plays import Plays

__all__ = ["NOT_REMEMBERED", "NotFound", "Picked", "Reader", "headline"]

T = TypeVar("T")
#: The churn risk a diff counts as a new risk when an account crosses it (``diff_runs``'s default).
DIFF_THRESHOLD = 0.3
_MISSING: Any = object()
#: What :meth:`Reader.remembered` answers for a secret it holds no live answer for.
NOT_REMEMBERED: Any = object()
#: The columns of an account's row that its history across runs shows.
_HISTORY = ("mrr", "health_score", "health_tier", "expansion_propensity", "churn_risk", "recommended_lever")

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


#: How old a token's or session's answer may be and still be used while the workspace is busy.
_AUTH_GRACE = 15.0


class Reader:
    """The workspace as the web app reads it. Thread-safe.

    The workspace is opened one call at a time (``lock``: an embedded DuckDB file opens one way at a time in a
    process). What a stored run shows never changes, so it is read or derived once (under a second lock) and kept
    with the run; a request that finds it made takes no lock at all, so a request waits on no other one. The runs,
    the models and the recorded actions are read again when older than ``runs_ttl`` seconds, the actions also at
    once after this app records one.

    Parameters
    ----------
    store
        The open workspace.
    keep_runs
        How many runs' tables (and what was derived from them) stay in memory.
    runs_ttl
        Seconds the list of runs, the models and a run's recorded actions are trusted before they are read again:
        a run stored, or an action recorded, by another process shows up within this time.
    auth_ttl
        Seconds a token or a session found live is trusted before the workspace is asked again: a token revoked or
        a password changed from the command line takes effect within this time (a logout here, at once), or,
        while the workspace is busy with a long read, within ``_AUTH_GRACE`` (15) seconds: a request then answers
        as it was found last rather than wait.
    warm
        Warm each latest run as soon as it is seen (:meth:`warm`, in a background thread), as the app does.
    """

    def __init__(self, store: Store, *, keep_runs: int = 3, runs_ttl: float = 3.0, auth_ttl: float = 3.0,
                 warm: bool = False) -> None:
        self.store = store
        self.keep_runs = keep_runs
        self.runs_ttl = runs_ttl
        self.auth_ttl = auth_ttl
        self.warm_latest = warm
        self._warmed: str | None = None
        self.lock = threading.RLock()  # the workspace, one call at a time
        self._making = threading.RLock()  # what is read or derived once per run
        self._lru = threading.Lock()  # which runs are kept
        self._tables: OrderedDict[str, dict[Hashable, Any]] = OrderedDict()
        self._recent: dict[Hashable, tuple[float, Any]] = {}
        self._history: dict[str, tuple[pa.Table, Keys]] = {}
        self._live: dict[tuple[str, str], tuple[float, Any]] = {}
        from upcurve.web._backtest import Backtests
        from upcurve.web._plays import Plays  # it reads through this reader (and imports this module)

        #: The plays' actions, their history, what the plays measured and the funnel (``upcurve.web._plays``).
        self.plays: Plays = Plays(self)
        #: The backtest kept last, read again every ``runs_ttl`` seconds (``upcurve.web._backtest``).
        self.backtests = Backtests(self)

    # -- who is calling, remembered briefly ----------------------------------------------------------------------
    def live(self, check: Callable[[Store, str], Any], secret: str) -> Any:
        """``check(store, secret)`` (a token's or a session's), its found answers remembered for ``auth_ttl``
        seconds: every request carries one, and asking the workspace each time made it the app's bottleneck.
        Only a hash of the secret is kept; an answer of None (unknown, revoked) is never remembered."""
        found = self.remembered(check, secret)
        if found is not NOT_REMEMBERED:
            return found
        key = (check.__name__, hashlib.sha256(secret.encode()).hexdigest())
        hit = self._live.get(key)
        if hit is not None and time.monotonic() - hit[0] <= _AUTH_GRACE:
            # found live a little while ago and the workspace is busy (a long read: the plays measured, a run's
            # tables): answer as then rather than make every request wait behind it (it stalled them for seconds)
            if not self.lock.acquire(blocking=False):
                return hit[1]
            self.lock.release()
        with self.lock:
            found = self.remembered(check, secret)  # another request may have just asked
            if found is not NOT_REMEMBERED:
                return found
            now = time.monotonic()
            found = check(self.store, secret)
            if found is None:
                self._live.pop(key, None)
            else:
                if len(self._live) >= 10_000:  # a flood of distinct secrets cannot grow it without bound
                    self._live.clear()
                self._live[key] = (now, found)
            return found

    def remembered(self, check: Callable[[Store, str], Any], secret: str) -> Any:
        """What :meth:`live` answers when it need not ask the workspace (it takes no lock), else ``NOT_REMEMBERED``."""
        hit = self._live.get((check.__name__, hashlib.sha256(secret.encode()).hexdigest()))
        if hit is not None and time.monotonic() - hit[0] <= self.auth_ttl:
            return hit[1]
        return NOT_REMEMBERED

    def forget(self, secret: str) -> None:
        """Forget every remembered answer for ``secret`` (a session that logged out here)."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        with self.lock:
            for key in [k for k in self._live if k[1] == digest]:
                del self._live[key]

    # -- the store, one call at a time --------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a store function while holding the workspace (an embedded DuckDB file opens one way at a time)."""
        with self.lock:
            return fn(*args, **kwargs)

    def _recently(self, key: Hashable, read: Callable[[], T]) -> T:
        """``read()`` (it asks the workspace), its answer trusted for ``runs_ttl`` seconds. Past that, the next
        request that finds the workspace free reads it again; one that finds it busy (another request reading it)
        answers with what was read last rather than wait."""
        hit = self._recent.get(key)
        if hit is not None and time.monotonic() - hit[0] <= self.runs_ttl:
            return cast(T, hit[1])
        if hit is None:
            self.lock.acquire()
        elif not self.lock.acquire(blocking=False):
            return cast(T, hit[1])
        try:
            hit = self._recent.get(key)
            if hit is not None and time.monotonic() - hit[0] <= self.runs_ttl:
                return cast(T, hit[1])
            when = time.monotonic()
            found = read()
            self._recent[key] = (when, found)
            return found
        finally:
            self.lock.release()

    def runs(self) -> list[RunRecord]:
        """Every complete run, oldest first."""
        found = self._recently("runs", lambda: self.store.runs())
        if self.warm_latest and found and found[-1].run_id != self._warmed:
            self._warmed = found[-1].run_id
            threading.Thread(target=self._warm_quietly, args=(found[-1],), name="upcurve-warm", daemon=True).start()
        return found

    def warm(self, run: RunRecord) -> None:
        """Read and index what the account pages and the lists of a run need, so that the first person to look
        does not wait for it (seconds at 100,000 accounts). With ``warm``, the app does it for each latest run it
        sees, in the background."""
        for name in ("accounts", "account_growth", "worklist", "mrr", "movements"):
            self._account_rows(run, name, "")
        self.movements(run, kind="expansion", month_from="", source="")  # the order, and the codes filtered on
        self.account_history("")
        for sort in ("mrr", "churn_risk"):  # the default order and the one a risk review reads; a cohort and a
            # search that match nothing make the codes and the text they look in
            self.accounts(run, filters={}, sort=sort, descending=True, cohort="", search="\x00")
        self.bridge(run)
        for dimension in ("source", *self.dimensions(run)):
            self.expansion_by(run, dimension)
            if dimension != "source":
                self.segments(run, dimension)
        self.cohorts(run)
        from upcurve.web._products import product_rises, products  # it reads through this module

        for product in products(self, run):  # what a click on a product's bar lists
            product_rises(self, run, product)
        before = self.previous(run)
        if before is not None:  # the diff the runs page and GET /api/diff show by default
            self.diff(before, run)
        self.plays.funnel(run)
        self.plays.uplift(run)
        self.plays.levers(run)
        self.plays.events()

    def warm_latest_now(self) -> None:
        """Warm the latest run now, in this thread (before the app serves); later runs are warmed as they come."""
        with contextlib.suppress(UpcurveError):  # no run yet (the pages say so), or one deleted meanwhile
            runs = self._recently("runs", lambda: self.store.runs())
            if runs:
                self._warmed = runs[-1].run_id
                self.warm(runs[-1])
        _settle()

    def _warm_quietly(self, run: RunRecord) -> None:
        with contextlib.suppress(UpcurveError):  # e.g. a run deleted meanwhile: the first request will say so
            self.warm(run)
        _settle()

    def models(self) -> list[ModelRecord]:
        """Every model in the workspace's registry."""
        return self._recently("models", lambda: self.store.models())

    def actions(self, run: RunRecord, account_id: str | None = None) -> list[acc.Action]:
        """What was recorded for a run's worklist accounts (for one account), newest first."""
        found = self._recently(("actions", run.run_id), lambda: acc.list_actions(self.store, run.run_id))
        return found if account_id is None else [a for a in found if a.account_id == account_id]

    def record_action(self, run: RunRecord, account_id: str, status: str, note: str | None, actor: str
                      ) -> acc.Action:
        """Record what was done with an account of a run's worklist (the run's actions are read again next)."""
        with self.lock:
            done = acc.record_action(self.store, run.run_id, account_id, status, note, actor)
            self._recent.pop(("actions", run.run_id), None)
        return done

    def previous(self, run: RunRecord) -> RunRecord | None:
        """The run before ``run`` (the latest other run started no later): what a diff compares it with by
        default. None when there is none."""
        before = [r for r in self.runs() if r.run_id != run.run_id and r.started_at <= run.started_at]
        return before[-1] if before else None

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

    # -- what a run holds, read or derived once -----------------------------------------------------------------
    def _cache(self, run_id: str) -> dict[Hashable, Any]:
        with self._lru:
            cache = self._tables.get(run_id)
            if cache is None:
                cache = self._tables[run_id] = {}
                while len(self._tables) > self.keep_runs:
                    self._tables.popitem(last=False)
            else:
                self._tables.move_to_end(run_id)
            return cache

    def memo(self, run: RunRecord, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, made once for the run and ``key`` and kept with the run's tables: a stored run never
        changes, so neither does anything derived from it. An error is not kept (the next call tries again)."""
        cache = self._cache(run.run_id)
        found = cache.get(key, _MISSING)
        if found is _MISSING:
            with self._making:
                found = cache.get(key, _MISSING)
                if found is _MISSING:
                    found = cache[key] = make()
        return cast(T, found)

    def table(self, run: RunRecord, name: str) -> pa.Table:
        """A result table of a run (empty when the run did not keep it)."""
        return self.memo(run, ("table", name), lambda: self._read_table(run, name))

    def _read_table(self, run: RunRecord, name: str) -> pa.Table:
        if name == "worklist+segment":
            return self._worklist_with_segment(run)
        try:
            table = self.call(self.store.table, name, run.run_id)
        except WorkspaceError:
            return pa.table({})
        return table.combine_chunks()  # one chunk: taking a page of rows from many small chunks is slow

    def _worklist_with_segment(self, run: RunRecord) -> pa.Table:
        """The worklist with each account's segment beside its owner (to filter by segment)."""
        worklist, accounts = self.table(run, "worklist"), self.table(run, "accounts")
        if worklist.num_rows == 0:
            return worklist
        if "segment" not in accounts.column_names:
            return worklist.add_column(6, "segment", pa.nulls(worklist.num_rows, pa.string()))
        at = pc.index_in(worklist["account_id"], value_set=accounts["account_id"].combine_chunks())
        column = accounts["segment"].combine_chunks().take(at)
        return worklist.add_column(worklist.column_names.index("name") + 1, "segment", column)

    def _by_account(self, run: RunRecord, name: str) -> tuple[pa.Table, np.ndarray, Keys]:
        """A table, its rows' positions ordered by account (as stored within one), and where each account's
        positions start and how many there are."""
        table = self.table(run, name)
        if "account_id" not in table.column_names or table.num_rows == 0:
            return table, np.zeros(0, np.int64), Keys(pa.array([], pa.string()), np.zeros(0), np.zeros(0))
        order = pc.sort_indices(table, [("account_id", "ascending")])  # stable: an account's rows as stored
        return table, order.to_numpy().astype(np.int64), Keys.of(table["account_id"].take(order))

    def _account_rows(self, run: RunRecord, name: str, account_id: str) -> pa.Table:
        table, order, keys = self.memo(run, ("by account", name), lambda: self._by_account(run, name))
        start, count = keys.find(account_id)
        return table.take(pa.array(order[start:start + count], pa.int64()))

    def rows_of(self, run: RunRecord, name: str, account_id: str) -> list[dict[str, Any]]:
        """One account's rows of a table that has an ``account_id`` column, through an index built once."""
        return self._account_rows(run, name, account_id).to_pylist()

    def names(self, run: RunRecord, account_ids: Iterable[str]) -> dict[str, str | None]:
        """The names of some accounts (through the accounts' index)."""
        table, order, keys = self.memo(run, ("by account", "accounts"), lambda: self._by_account(run, "accounts"))
        found = {a: keys.find(a) for a in account_ids}
        known = [a for a, (_, count) in found.items() if count]
        if not known or "name" not in table.column_names:
            return dict.fromkeys(found)
        at = pa.array([order[found[a][0]] for a in known], pa.int64())
        return {**dict.fromkeys(found), **dict(zip(known, table["name"].take(at).to_pylist(), strict=True))}

    # -- what the pages show -------------------------------------------------------------------------------------
    def metrics(self, run: RunRecord) -> list[dict[str, Any]]:
        """The metrics by month (kept: a caller reads them, never changes them)."""
        return self.memo(run, ("metrics",), lambda: self.table(run, "metrics").to_pylist())

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
        return self.memo(run, ("bridge", month), lambda: self._bridge(run, month))

    def _bridge(self, run: RunRecord, month: str | None) -> list[dict[str, Any]]:
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
        return self.memo(run, ("expansion", dimension, months), lambda: self._expansion_by(run, dimension, months))

    def _expansion_by(self, run: RunRecord, dimension: str, months: int) -> list[dict[str, Any]]:
        last = self.month(run)
        if last is None:
            return []
        since = month_label(month_index(dt.date.fromisoformat(last["month"] + "-01")) - (months - 1))
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
        def make() -> list[str]:
            table = self.table(run, "segments")
            if table.num_rows == 0:
                return []
            return sorted(pc.unique(table["dimension"]).to_pylist(), key=lambda d: (d != "segment", d != "owner", d))

        return self.memo(run, ("dimensions",), make)

    def segments(self, run: RunRecord, dimension: str, month: str | None = None) -> list[dict[str, Any]]:
        """The metrics of each value of a dimension in a month (default: the run's last month)."""
        known = self.dimensions(run)
        if dimension not in known:
            raise NotFound(f"no dimension {dimension!r}; the dimensions are {', '.join(known) or 'none'}")
        return self.memo(run, ("segments", dimension, month), lambda: self._segments(run, dimension, month))

    def _segments(self, run: RunRecord, dimension: str, month: str | None) -> list[dict[str, Any]]:
        last = self.month(run, month)
        if last is None:
            return []
        table = self.table(run, "segments")
        rows = [r for r in table.to_pylist() if r["dimension"] == dimension and r["month"] == last["month"]]
        return sorted(rows, key=lambda r: (-(r["mrr"] or 0), str(r["value"])))

    def cohorts(self, run: RunRecord) -> list[dict[str, Any]]:
        return self.memo(run, ("cohorts",), lambda: self.table(run, "cohorts").to_pylist())

    def coupons(self, run: RunRecord, month: str | None = None) -> list[dict[str, Any]]:
        """MRR by coupon in a month (default: the run's last): each coupon's accounts, MRR and monthly discount,
        the largest MRR first; none for a run whose lines name no coupon (or kept no ``coupon_mrr``)."""
        last = self.month(run, month)
        if last is None:
            return []

        def make() -> list[dict[str, Any]]:
            rows = [r for r in self.table(run, "coupon_mrr").to_pylist() if r["month"] == last["month"]]
            return sorted(rows, key=lambda r: (-(r["mrr"] or 0), r["coupon"]))

        return self.memo(run, ("coupons", last["month"]), make)

    def movements(self, run: RunRecord, *, month_from: str | None = None, month_to: str | None = None,
                  kind: str | None = None, source: str | None = None, account_id: str | None = None) -> Picked:
        """The movements matching every filter given, largest (absolute amount) first."""
        if account_id is not None:
            view = _largest_first(self._account_rows(run, "movements", account_id))
        else:
            view = self.memo(run, ("largest first", "movements"),
                             lambda: _largest_first(self.table(run, "movements")))
        if len(view) == 0:
            return view.pick(None)
        return view.pick(both(view.between("month", month_from, month_to), view.equal("type", kind),
                              view.equal("source", source)))

    def accounts(self, run: RunRecord, *, filters: dict[str, str | None], sort: str, descending: bool,
                 cohort: str | None = None, search: str | None = None, table_name: str = "accounts") -> Picked:
        """The accounts (or worklist) rows matching the filters, sorted (nulls last, then by account id).

        Each order asked for is sorted once per run and kept; a request then only filters (see ``_lists``)."""
        table = self.table(run, table_name)
        if table.num_rows == 0:
            return Picked(table, np.zeros(0, np.int64))
        if sort not in table.column_names:
            raise NotFound(f"cannot sort by {sort!r}")
        direction = "descending" if descending else "ascending"
        view = self.memo(run, ("sorted", table_name, sort, direction), lambda: Ordered.sorted_by(
            table, [(sort, direction, "at_end"), ("account_id", "ascending", "at_end")]))
        present = set(table.column_names)
        masks = [view.equal(column, value) for column, value in filters.items() if column in present]
        if cohort is not None:
            masks.append(view.equal("(cohort)", cohort, self._cohort_of_each(run, table_name)))
        if search:
            masks.append(view.contains(("account_id", "name"), search.lower()))
        return view.pick(both(*masks))

    def _cohort_of_each(self, run: RunRecord, table_name: str) -> pa.Array:
        """The first-paid month of the account of each row of a table (null when it never paid)."""
        def make() -> pa.Array:
            table, growth = self.table(run, table_name), self.table(run, "account_growth")
            if growth.num_rows == 0 or "first_paid_month" not in growth.column_names:
                return pa.nulls(table.num_rows, pa.string())
            at = pc.index_in(table["account_id"], value_set=growth["account_id"].combine_chunks())
            return growth["first_paid_month"].combine_chunks().take(at)

        return self.memo(run, ("cohort of each", table_name), make)

    def distinct(self, run: RunRecord, table_name: str, column: str) -> list[str]:
        def make() -> list[str]:
            table = self.table(run, table_name)
            if column not in table.column_names:
                return []
            return sorted(v for v in pc.unique(table[column]).to_pylist() if v is not None)

        return self.memo(run, ("distinct", table_name, column), make)

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

    def usage(self, run: RunRecord, account_id: str) -> AccountUsage:
        """The account's usage view in a run (empty lists when the run kept none)."""
        rows = self.rows_of(run, "accounts", account_id)
        if not rows:
            raise NotFound(f"no account {account_id!r} in run {run.run_id}")
        return AccountUsage.from_rows(run, account_id, rows[0].get("name"),
                                      lambda table: self.rows_of(run, table, account_id))

    def diff(self, a: RunRecord, b: RunRecord, *, threshold: float = DIFF_THRESHOLD) -> RunDiff:
        """What changed from run ``a`` to run ``b``: kept for the default threshold (two stored runs never change),
        read again for any other (so that no request can fill the memory with thresholds)."""
        if threshold != DIFF_THRESHOLD:
            return self.call(diff_runs, self.store, a, b, threshold=threshold)
        return self.memo(b, ("diff", a.run_id), lambda: self.call(diff_runs, self.store, a, b, threshold=threshold))

    def account_history(self, account_id: str) -> list[dict[str, Any]]:
        """The account as each run saw it: health, tier, scores and MRR, oldest run first.

        A few columns of every run's accounts are read once and kept (about 7 MB a run at 100,000 accounts), so an
        account page asks the workspace nothing."""
        runs = self.runs()
        if any(r.run_id not in self._history for r in runs):
            self._read_history(runs)
        found = []
        for run in runs:
            rows, keys = self._history[run.run_id]
            start, count = keys.find(account_id)
            if count:
                found.append({"run_id": run.run_id, "as_of": run.as_of, **rows.slice(start, 1).to_pylist()[0]})
        return found

    def _read_history(self, runs: list[RunRecord]) -> None:
        with self._making:
            missing = [r.run_id for r in runs if r.run_id not in self._history]
            if not missing:
                return
            found = self.call(self.store.query, f"SELECT run_id, account_id, {', '.join(_HISTORY)} FROM accounts "
                                                f"WHERE run_id IN ({', '.join('?' for _ in missing)})", missing)
            for run_id in missing:
                rows = found.filter(pc.equal(found["run_id"], pa.scalar(run_id, pa.string())))
                rows = rows.take(pc.sort_indices(rows, [("account_id", "ascending")])).combine_chunks()
                self._history[run_id] = (rows.drop_columns(["run_id", "account_id"]), Keys.of(rows["account_id"]))


def _settle() -> None:
    """Put everything the process holds now out of the garbage collector's sight (``gc.freeze``): what a warm-up
    read is kept for the app's life, and a full collection walking its millions of objects stopped every request
    for some 0.2 s every few seconds (p95 220–360 ms where p50 was 20–120 ms). Freed objects are still freed by
    their reference counts; only a cycle among them would stay."""
    gc.collect()
    gc.freeze()


def _largest_first(movements: pa.Table) -> Ordered:
    """Movements ordered by absolute amount, largest first (ties as stored)."""
    if movements.num_rows == 0:
        return Ordered(movements, np.zeros(0, np.int64))
    order = pc.array_sort_indices(pc.abs(movements["amount"]), order="descending")
    return Ordered(movements, order.to_numpy().astype(np.int64))


def page(rows: pa.Table | Picked, offset: int, limit: int) -> list[dict[str, Any]]:
    """Rows ``offset`` to ``offset + limit``, as dictionaries."""
    return page_table(rows, offset, limit).to_pylist()


def page_table(rows: pa.Table | Picked, offset: int, limit: int, columns: Sequence[str] | None = None
               ) -> pa.Table:
    """Rows ``offset`` to ``offset + limit`` (only ``columns``, if given)."""
    if isinstance(rows, Picked):
        return rows.slice(min(offset, rows.num_rows), limit, columns)
    if columns is not None:
        present = set(rows.column_names)  # a property that builds a list each time it is read
        rows = rows.select([c for c in columns if c in present])
    return rows.slice(min(offset, rows.num_rows), limit)


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


def plain_table(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of a table as JSON carries them: what :func:`plain` gives each row, but decimals, dates and NaN
    converted by Arrow a column at a time (a page of 100 accounts in a third of the time).

    >>> plain_table(pa.table({"mrr": pa.array([Decimal("-0.50"), None], pa.decimal128(18, 2)),
    ...                       "share": [float("nan"), 0.5], "day": pa.array([dt.date(2024, 12, 31), None])}))
    [{'mrr': '-0.50', 'share': None, 'day': '2024-12-31'}, {'mrr': None, 'share': 0.5, 'day': None}]
    """
    rest = []
    for i, field in enumerate(table.schema):
        kind, column = field.type, table.column(i)
        if pa.types.is_decimal(kind) or pa.types.is_date(kind):
            table = table.set_column(i, field.name, pc.cast(column, pa.string()))
        elif pa.types.is_floating(kind):
            table = table.set_column(i, field.name, pc.if_else(pc.is_nan(column), pa.scalar(None, kind), column))
        elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
                  or pa.types.is_boolean(kind) or pa.types.is_null(kind)):
            rest.append(field.name)
    rows = table.to_pylist()
    for row in rows if rest else ():
        for name in rest:
            row[name] = plain(row[name])
    return rows
