"""The workspace: the product's memory of every run, its tables and its models (see :mod:`.store`)."""

from upcurve.workspace.diff import RunDiff, diff_runs
from upcurve.workspace.schema import RESULT_TABLES, SCHEMA_VERSION
from upcurve.workspace.store import DEFAULT_WORKSPACE, ModelRecord, RunRecord, Store, WorkspaceError

__all__ = ["DEFAULT_WORKSPACE", "RESULT_TABLES", "SCHEMA_VERSION", "ModelRecord", "RunDiff", "RunRecord", "Store",
           "WorkspaceError", "diff_runs"]
