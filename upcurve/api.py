"""The Python API: a workspace you open by path or URL, its runs, and their tables as Ibis tables.

For notebooks and scripts. Everything here reads what a run kept in the workspace; only :meth:`Workspace.run`
computes.

>>> import tempfile, upcurve
>>> from pathlib import Path
>>> home = Path(tempfile.mkdtemp())
>>> upcurve.simulate_company(home / "data", accounts=30, months=8, seed=3)  # doctest: +ELLIPSIS
{...}
>>> ws = upcurve.Workspace.open(home / "workspace")
>>> first = ws.run(home / "data", as_of="2023-05-31")
>>> latest = ws.run(home / "data")
>>> [run.as_of.isoformat() for run in ws.runs()]
['2023-05-31', '2023-08-31']
>>> metrics = latest.table("metrics")          # an Ibis table: filter, join, then .to_pandas() or .to_pyarrow()
>>> may = metrics.filter(metrics.month == "2023-05").select("month", "mrr").to_pyarrow()
>>> earlier = first.table("metrics")             # May's MRR as the earlier run kept it: the same to the cent
>>> may == earlier.filter(earlier.month == "2023-05").select("month", "mrr").to_pyarrow()
True
>>> bridge = ws.diff(first, latest).bridge      # the MRR bridge between the two as-of months
>>> [row["line"] for row in bridge.to_pylist()][:2]
['start', 'new']
>>> ws.close()
>>> import shutil; shutil.rmtree(home)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upcurve import usecases
from upcurve.config import Settings
from upcurve.errors import UpcurveError
from upcurve.settings_file import UpcurveConfig, load_config
from upcurve.workspace import RESULT_TABLES, ModelRecord, RunDiff, RunRecord, Store, WorkspaceError, diff_runs

if TYPE_CHECKING:
    import ibis
    import ibis.expr.types as ir

__all__ = ["Run", "Workspace"]


def _date(value: dt.date | str | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UpcurveError(f"{value!r} is not a date YYYY-MM-DD") from None


@dataclass(frozen=True)
class Run:
    """One run kept in a workspace: when it was as of, what it read, what it noticed, and its tables.

    Attributes
    ----------
    id, as_of, notes, model_id, model_reason
        From the workspace's ``runs`` table; ``record`` holds the whole row.
    """

    record: RunRecord
    workspace: Workspace = field(repr=False)

    @property
    def id(self) -> str:
        return self.record.run_id

    @property
    def as_of(self) -> dt.date:
        return self.record.as_of

    @property
    def notes(self) -> list[str]:
        return list(self.record.notes)

    @property
    def model_id(self) -> str | None:
        return self.record.model_id

    @property
    def model_reason(self) -> str | None:
        return self.record.model_reason

    @property
    def tables(self) -> list[str]:
        """The names of the tables this run kept."""
        return [name for name in RESULT_TABLES if name in self.record.rows]

    def table(self, name: str) -> ir.Table:
        """A table of this run as an Ibis table over the workspace (without its ``run_id`` column).

        Nothing is read until it is asked for: ``.to_pandas()``, ``.to_pyarrow()``, ``.to_polars()``, or an
        expression built on it (filters and joins run in the workspace's database).
        """
        if name not in self.tables:
            raise WorkspaceError(f"run {self.id} has no table {name!r}; it has {', '.join(self.tables)}")
        table = self.workspace.connection().table(name)
        return table.filter(table.run_id == self.id).drop("run_id")

    def __repr__(self) -> str:
        return f"Run({self.id!r}, as_of={self.as_of.isoformat()!r})"


class Workspace:
    """A workspace: every run, its tables and its models. Open one with :meth:`open`.

    Parameters
    ----------
    store
        The workspace's store (:class:`upcurve.workspace.Store`).
    config
        Settings for the runs this object computes (default: the settings file named by ``UPCURVE_CONFIG``, else
        the defaults).
    engine
        The engine runs compute on: an Ibis connection URL, or an open Ibis connection (default
        ``UPCURVE_ENGINE``, else embedded DuckDB).
    """

    def __init__(self, store: Store, *, config: UpcurveConfig | None = None,
                 engine: str | ibis.BaseBackend | None = None) -> None:
        settings = Settings()
        self.store = store
        self.config = config if config is not None else load_config(settings.config)
        self.engine: str | ibis.BaseBackend | None = engine if engine is not None else settings.engine
        self._connection: ibis.BaseBackend | None = None

    @classmethod
    def open(cls, location: str | Path | None = None, *, create: bool = True,
             config: UpcurveConfig | str | Path | None = None,
             engine: str | ibis.BaseBackend | None = None) -> Workspace:
        """Open the workspace at a folder or a ``postgresql://`` URL (default: ``UPCURVE_WORKSPACE``, else
        ``./upcurve-workspace``), creating it unless ``create`` is false. ``config`` is a settings object or the
        path of a YAML settings file."""
        settings = Settings()
        store = Store.open(location if location is not None else settings.workspace, create=create,
                           wait_seconds=settings.workspace_wait)
        if config is not None and not isinstance(config, UpcurveConfig):
            config = load_config(config)
        return cls(store, config=config, engine=engine)

    # -- computing ------------------------------------------------------------------------------------------
    def run(self, data: str | Path, *, as_of: dt.date | str | None = None, retrain: bool = False,
            config: UpcurveConfig | None = None) -> Run:
        """Compute a run on a data folder and keep it (see ``upcurve run``): score with the active model, or train
        one when the retraining policy says so. Returns the run as kept."""
        self.close()  # an open reading connection would keep the writer out of an embedded workspace
        result = usecases.run_in_workspace(self.store, data, as_of=_date(as_of), config=config or self.config,
                                           engine=self.engine, retrain=retrain)
        assert result.run is not None
        return Run(result.run, self)

    # -- reading --------------------------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        """Every run, oldest first."""
        return [Run(record, self) for record in self.store.runs()]

    def find(self, run_id: str | None = None, *, as_of: dt.date | str | None = None) -> Run:
        """A run by id (a unique start of one will do), the latest at an as-of date, or the latest."""
        return Run(self.store.find_run(run_id, as_of=_date(as_of)), self)

    def latest(self) -> Run:
        """The latest run."""
        return self.find()

    def diff(self, a: Run | str | None = None, b: Run | str | None = None, *, threshold: float = 0.3) -> RunDiff:
        """What changed from run ``a`` to run ``b`` (default: the two latest runs): the MRR bridge between their
        as-of months, the accounts that entered or left the worklist, health tier moves and new churn risks."""
        history = self.store.runs()
        if len(history) < 2 and (a is None or b is None):
            raise WorkspaceError("a diff needs two runs; the workspace holds "
                                 f"{len(history)}")
        later = self._record(b) if b is not None else history[-1]
        earlier = self._record(a) if a is not None else [r for r in history if r.run_id != later.run_id][-1]
        return diff_runs(self.store, earlier, later, threshold=threshold)

    def models(self) -> list[ModelRecord]:
        """Every model in the registry, oldest first (``active`` marks the one runs score with)."""
        return self.store.models()

    def connection(self) -> ibis.BaseBackend:
        """The workspace's database as an Ibis connection (opened on first use, read-only where the database
        allows it): every run's tables, ``runs`` and ``models``."""
        if self._connection is None:
            self._connection = self.store.ibis()
        return self._connection

    def close(self) -> None:
        """Close the reading connection (reopened when next needed)."""
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs())

    def __repr__(self) -> str:
        return f"Workspace({self.store.where!r})"  # never the password of a URL

    def _record(self, run: Run | str) -> RunRecord:
        return run.record if isinstance(run, Run) else self.store.find_run(run)
