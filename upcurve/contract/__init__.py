"""The input contract: table schemas, reading a data folder and checking it."""

from upcurve.contract.features import plan_features
from upcurve.contract.known import known_at
from upcurve.contract.load import typed_tables, validate
from upcurve.contract.read import DataFolder, RawTable, database_folder, read_folder
from upcurve.contract.schema import CONTRACT, EVENT_SCALE, Column, TableSchema, table_schema

__all__ = [
    "CONTRACT",
    "EVENT_SCALE",
    "Column",
    "DataFolder",
    "RawTable",
    "TableSchema",
    "database_folder",
    "known_at",
    "plan_features",
    "read_folder",
    "table_schema",
    "typed_tables",
    "validate",
]
