"""Streaming table writers: each block of simulated accounts is appended and forgotten, so memory stays bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["TableSinks"]


class TableSinks:
    """One writer per table in a folder; ``write(name, table)`` appends, ``close()`` finishes every file."""

    def __init__(self, folder: Path, fmt: str = "parquet") -> None:
        self.folder = folder
        self.fmt = fmt
        self.writers: dict[str, Any] = {}
        self.schemas: dict[str, pa.Schema] = {}
        self.rows: dict[str, int] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self.writers:
            path = self.folder / f"{name}.{self.fmt}"
            self.schemas[name] = table.schema
            if self.fmt == "parquet":
                self.writers[name] = pq.ParquetWriter(path, table.schema)
            else:
                self.writers[name] = pacsv.CSVWriter(path, table.schema)
            self.rows[name] = 0
        table = table.cast(self.schemas[name])
        self.writers[name].write_table(table)
        self.rows[name] += table.num_rows

    def close(self) -> dict[str, int]:
        for writer in self.writers.values():
            writer.close()
        return dict(self.rows)
