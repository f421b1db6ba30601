"""The plays as the web app reads them: the actions and their history (through :mod:`upcurve.workspace.actions`),
what the plays measured (uplift, levers ranked by yield) and the run's expansion funnel.

The ``actions`` table is small beside a run's result tables, but at 100,000 accounts it still holds some hundred
thousand rows: reading it all takes about a second. So it is read whole only when it changed. Every ``runs_ttl``
seconds (as the runs are), one cheap query asks how many actions there are and when one last changed; only when that
answer moved are the actions read again, and indexed once by id, account and status. A request then filters those
indexes in memory and takes only its page.

Every action's history (``action_events``, some 340,000 events at 100,000 accounts) is read in one query when the
actions changed, kept as one Arrow table ordered by action and found by bisection, so an account page asks the
workspace nothing. The measured uplift and the levers read a run's movements and every action; they are made
once per run and kept until what they read of the actions changes (an action created, or its outcome changed from
or to one they leave out), not on each change of status: marking an action done does not make the next view of the
Plays page measure everything again.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from upcurve.plays.engine import PlayAction
from upcurve.web._lists import Keys
from upcurve.web.data import NotFound, Reader
from upcurve.workspace import RunRecord
from upcurve.workspace import actions as wa

__all__ = ["LIVE", "PlayState", "Plays"]

T = TypeVar("T")
#: The statuses of an action someone still has to work (``holdout`` is live too, but nobody works it).
LIVE = ("open", "snoozed")
#: Every action's history, oldest first (stably sorted by action afterwards).
_EVENTS_SQL = ("SELECT action_id, happened_at AS at, run_id, kind, actor, detail FROM action_events "
               "ORDER BY happened_at, event_id")


@dataclass(frozen=True)
class PlayState:
    """The actions as read at one moment, indexed once."""

    stamp: tuple[Any, ...]
    actions: tuple[PlayAction, ...]  # as the workspace lists them: oldest first (started_on, action_id)
    by_id: dict[str, PlayAction]
    by_account: dict[str, list[PlayAction]]
    by_status: dict[str, list[PlayAction]]
    measured: str  # a digest of what the uplift and the levers read of the actions
    open_counts: list[dict[str, Any]]  # live actions by play and owner


def _measured_digest(actions: Iterable[PlayAction]) -> str:
    """What :func:`upcurve.usecases.plays_measure` and :func:`~upcurve.usecases.levers` read of the actions: which
    exist, and whether each is left out (:attr:`~upcurve.plays.PlayAction.bookkeeping`). A status a person sets
    changes neither."""
    digest = hashlib.sha256()
    for a in actions:
        digest.update(f"{a.action_id}:{int(a.bookkeeping)};".encode())
    return digest.hexdigest()


def _state_of(stamp: tuple[Any, ...], actions: Sequence[PlayAction]) -> PlayState:
    by_id: dict[str, PlayAction] = {}
    by_account: dict[str, list[PlayAction]] = {}
    by_status: dict[str, list[PlayAction]] = {}
    counts: Counter[tuple[str, str, str]] = Counter()
    for a in actions:
        by_id[a.action_id] = a
        by_account.setdefault(a.account_id, []).append(a)
        by_status.setdefault(a.status, []).append(a)
        if a.status in LIVE:
            counts[(a.play, a.owner, a.status)] += 1
    pairs = sorted({(play, owner) for play, owner, _ in counts})
    open_counts = [{"play": play, "owner": owner, "open": counts[(play, owner, "open")],
                    "snoozed": counts[(play, owner, "snoozed")]} for play, owner in pairs]
    return PlayState(stamp, tuple(actions), by_id, by_account, by_status, _measured_digest(actions), open_counts)


class Plays:
    """The plays' part of a :class:`~upcurve.web.data.Reader` (``reader.plays``). Thread-safe as the reader is."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._state: PlayState | None = None
        self._events: tuple[tuple[Any, ...], pa.Table, Keys] | None = None
        self._reading_events = threading.Lock()
        self._live: tuple[tuple[Any, ...], dict[str, list[PlayAction]]] | None = None
        self._merged: tuple[PlayState | None, dict[tuple[str, ...], list[PlayAction]]] = (None, {})
        self._measured: dict[tuple[Any, ...], tuple[str, Any]] = {}

    # -- the actions -------------------------------------------------------------------------------------------------
    def state(self) -> PlayState:
        """The actions, read again when older than the reader's ``runs_ttl`` and changed since."""
        return self.reader._recently("plays", self._read)

    def _read(self) -> PlayState:  # called holding the workspace
        found = self.reader.store.query("SELECT count(*) AS n, max(updated_at) AS changed FROM actions")
        stamp = tuple(found.to_pylist()[0].values()) if found.num_rows else ()
        if self._state is not None and self._state.stamp == stamp:
            return self._state
        self._state = _state_of(stamp, wa.list_actions(self.reader.store))
        return self._state

    def _forget(self) -> None:
        """After this app changed an action: the next request reads the actions again."""
        self.reader._recent.pop("plays", None)

    def actions(self, *, status: Sequence[str] | None = None, owner: str | None = None,
                account_id: str | None = None, play: str | None = None) -> list[PlayAction]:
        """The actions matching every filter given, oldest first (started, then id)."""
        state = self.state()
        if account_id is not None:
            pool: Iterable[PlayAction] = state.by_account.get(account_id, [])
            if status:
                pool = [a for a in pool if a.status in status]
        elif status:
            pool = self._of_statuses(state, tuple(sorted(set(status))))
        else:
            pool = state.actions
        if owner is None and play is None:
            return list(pool)
        return [a for a in pool if (owner is None or a.owner == owner) and (play is None or a.play == play)]

    def _of_statuses(self, state: PlayState, statuses: tuple[str, ...]) -> list[PlayAction]:
        """The actions of some statuses, oldest first: merged once per state and statuses (merging the open and
        the snoozed, some 60,000 actions, took most of a request)."""
        if len(statuses) == 1:
            return state.by_status.get(statuses[0], [])
        merged = self._merged
        if merged[0] is not state:
            merged = self._merged = (state, {})
        found = merged[1].get(statuses)
        if found is None:
            lists = [state.by_status.get(s, []) for s in statuses]
            found = merged[1][statuses] = list(heapq.merge(*lists, key=lambda a: (a.started_on, a.action_id)))
        return found

    def live_by_account(self) -> dict[str, list[PlayAction]]:
        """Each account's actions someone still has to work (open or snoozed), oldest first."""
        state = self.state()
        live = self._live
        if live is None or live[0] != state.stamp:
            live = self._live = (state.stamp, _live_by_account(state))
        return live[1]

    def action(self, action_id: str) -> PlayAction:
        """An action by id (a unique start of one will do)."""
        state = self.state()
        found = state.by_id.get(action_id)
        if found is not None:
            return found
        matches = [a for a in state.actions if a.action_id.startswith(action_id)] if action_id else []
        if len(matches) != 1:
            raise NotFound(f"{'no' if not matches else 'more than one'} action matches {action_id!r}")
        return matches[0]

    def history(self, actions: Sequence[PlayAction], key: str | None = None) -> dict[str, list[wa.ActionEvent]]:
        """The history of some actions (each oldest first), from every action's history read once per change of
        the actions and kept indexed by action (``key`` is no longer used; kept for callers)."""
        table, keys = self.events()
        found: dict[str, list[wa.ActionEvent]] = {}
        for a in actions:
            start, count = keys.find(a.action_id)
            found[a.action_id] = [wa.ActionEvent(**row) for row in table.slice(start, count).to_pylist()] \
                if count else []
        return found

    def events(self) -> tuple[pa.Table, Keys]:
        """Every action's history (``action_events``), ordered by action then as it happened, and where each
        action's rows are: read in one query (a quarter of a second at 340,000 events) when the actions changed,
        so an account page asks the workspace nothing."""
        stamp = self.state().stamp
        kept = self._events
        if kept is not None and kept[0] == stamp:
            return kept[1], kept[2]
        with self._reading_events:
            kept = self._events
            if kept is None or kept[0] != stamp:
                table = self.reader.call(self.reader.store.query, _EVENTS_SQL)
                # ordered here, not in SQL: the keys are found by bisection in Python's (code point) order
                table = table.take(pc.sort_indices(table, [("action_id", "ascending")])).combine_chunks()
                kept = self._events = (stamp, table, Keys.of(table["action_id"]))
            return kept[1], kept[2]

    def set_status(self, action_id: str, status: str, *, actor: str, note: str | None,
                   until: Any = None) -> PlayAction:
        """Mark an action done, dismissed, snoozed (until a date, with a reason) or open again
        (:func:`upcurve.workspace.actions.set_status`); the actions are read again at the next request."""
        try:
            with self.reader.lock:
                try:
                    return wa.set_status(self.reader.store, action_id, status, actor=actor, note=note, until=until)
                finally:
                    self._forget()
        except wa.ActionNotFound as exc:
            raise NotFound(str(exc)) from exc

    # -- what the plays measured ----------------------------------------------------------------------------------
    def measured(self, run: RunRecord, key: tuple[Any, ...], make: Callable[[], T]) -> T:
        """``make()`` for a run, kept until what the measures read of the actions changes (see the module)."""
        digest = self.state().measured
        slot = (run.run_id, *key)
        hit = self._measured.get(slot)
        if hit is not None and hit[0] == digest:
            kept: T = hit[1]
            return kept
        with self.reader._making:
            hit = self._measured.get(slot)
            if hit is not None and hit[0] == digest:
                again: T = hit[1]
                return again
            value = make()
            if len(self._measured) >= 1000:  # months 1–120 by a few runs: far below, unless flooded
                self._measured.clear()
            self._measured[slot] = (digest, value)
            return value

    def uplift(self, run: RunRecord) -> list[Any]:
        """Each play's measured uplift on a run (:func:`upcurve.usecases.plays_measure`)."""
        from upcurve import usecases

        return self.measured(run, ("uplift",), lambda: self.reader.call(
            usecases.plays_measure, self.reader.store, run_id=run.run_id))

    def levers(self, run: RunRecord, months: int = 12) -> list[dict[str, Any]]:
        """The levers ranked by yield over ``months`` months up to a run (:func:`upcurve.usecases.levers`)."""
        from upcurve import usecases

        return self.measured(run, ("levers", months), lambda: self.reader.call(
            usecases.levers, self.reader.store, run_id=run.run_id, months=months).to_pylist())

    def funnel(self, run: RunRecord) -> list[dict[str, Any]]:
        """The run's expansion funnel (its ``funnel`` table): the total first, then by prompt type and placement."""
        def make() -> list[dict[str, Any]]:
            rows = self.reader.table(run, "funnel").to_pylist()
            return sorted(rows, key=lambda r: (not r.get("is_total"), str(r.get("prompt_type") or ""),
                                               str(r.get("placement") or "")))

        return self.reader.memo(run, ("plays", "funnel"), make)


def _live_by_account(state: PlayState) -> dict[str, list[PlayAction]]:
    found: dict[str, list[PlayAction]] = {}
    for status in LIVE:
        for a in state.by_status.get(status, []):
            found.setdefault(a.account_id, []).append(a)
    for listed in found.values():
        listed.sort(key=lambda a: (a.due_on, a.action_id))
    return found

