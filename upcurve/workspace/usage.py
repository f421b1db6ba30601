"""One account's usage view, read from a run of the workspace (the tables of :mod:`upcurve.signals.usage`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from upcurve.errors import ConfigError
from upcurve.workspace.store import RunRecord, Store

__all__ = ["AccountUsage", "account_usage"]


@dataclass(frozen=True)
class AccountUsage:
    """One account's usage view in a run: a row per metric (``limits``), each metric's projected periods, its use
    by week (every week of the run's window, 0 where nothing was used, oldest first) and by role."""

    run: RunRecord
    account_id: str
    name: str | None
    limits: list[dict[str, Any]]
    projection: list[dict[str, Any]]
    weeks: list[dict[str, Any]]
    roles: list[dict[str, Any]]

    @classmethod
    def from_rows(cls, run: RunRecord, account_id: str, name: str | None,
                  rows: Callable[[str], list[dict[str, Any]]]) -> AccountUsage:
        """The view from ``rows(table)``: the account's rows of each usage table of the run."""
        stored = rows("usage_weeks")
        used = {(w["metric"], w["week_ending"]): w["quantity"] for w in stored}
        # the run's own setting; the weeks it kept otherwise
        weeks = ((run.settings or {}).get("usage") or {}).get("weeks") or len({w["week_ending"] for w in stored})
        limits = sorted(rows("account_usage"), key=lambda r: r["metric"])
        endings = [run.as_of - dt.timedelta(days=7 * k) for k in reversed(range(int(weeks)))]
        filled = [{"metric": m["metric"], "week_ending": day, "quantity": used.get((m["metric"], day), 0.0)}
                  for m in limits for day in endings]
        projection = sorted(rows("usage_projection"), key=lambda r: (r["metric"], r["periods_ahead"]))
        roles = sorted(rows("usage_roles"), key=lambda r: (r["metric"], -r["used_30d"], r["group"]))
        return cls(run, account_id, name, limits, projection, filled, roles)

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run.run_id, "as_of": self.run.as_of.isoformat(), "account_id": self.account_id,
                "name": self.name, "limits": self.limits, "projection": self.projection, "weeks": self.weeks,
                "roles": self.roles}


def account_usage(store: Store, account_id: str, *, run_id: str | None = None,
                  as_of: dt.date | None = None) -> AccountUsage:
    """The usage view of ``account_id`` in a run (the latest by default).

    Raises
    ------
    ConfigError
        The account is not in the run, or the run kept no usage view (its data has no ``usage`` table).
    """
    record = store.find_run(run_id, as_of=as_of)
    found = store.table("accounts", record.run_id, account_id=account_id)
    if found.num_rows == 0:
        raise ConfigError(f"no account {account_id!r} in run {record.run_id} (as of {record.as_of})")
    name = found["name"][0].as_py() if "name" in found.column_names else None
    if "account_usage" not in (record.rows or {}):
        raise ConfigError(f"run {record.run_id} kept no usage view: its data has no usage table (or the run is "
                          "older than the usage view); run upcurve run again with a usage table")
    return AccountUsage.from_rows(record, account_id, name,
                                  lambda table: store.table(table, record.run_id, account_id=account_id).to_pylist())
