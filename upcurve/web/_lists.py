"""Filtered, sorted pages of a stored table: at 100,000 accounts a list request costs a few milliseconds.

A run's tables never change once stored, so the order a list is asked in (a sort key and its direction) is
computed once per run and kept, as row positions; a column that lists filter on is kept once per order as small
integer codes (its distinct values sorted, so a range of months is a range of codes). A request then compares
integers with numpy, and takes from the table only the rows of the page it answers.

The rows picked are exactly those of filtering the table and sorting it (Arrow's sort is stable, so filtering
rows already in order keeps the order the sort would give them).
"""

from __future__ import annotations

import bisect
import itertools
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Keys", "Ordered", "Picked", "both"]

#: What separates the columns a search looks in, and the rows (a needle holding either matches nothing).
_BETWEEN_COLUMNS, _BETWEEN_ROWS = "\x1f", "\x1e"
#: Past this many places a needle is found at, Arrow's scan row by row is faster than finding each place.
_FEW = 20_000


class Picked:
    """The rows a list request matched, in order. Rows are taken from the table only when asked for.

    Given the order and a mask, the positions matched are found only as far as a page needs them: a first page of
    movements finds 100 of 821,006 rows in a few blocks instead of gathering every match (some 4 ms a request).

    >>> table = pa.table({"id": ["a", "b", "c"], "mrr": [3, 1, 2]})
    >>> picked = Picked(table, np.array([1, 2, 0]), np.array([True, True, False]))
    >>> picked.num_rows, picked.slice(1, 5).to_pylist()
    (2, [{'id': 'c', 'mrr': 2}])
    """

    def __init__(self, table: pa.Table, order: np.ndarray, mask: np.ndarray | None = None, *,
                 block: int = 65_536) -> None:
        self.table = table
        self.order = order
        self.mask = mask
        self.block = block  # how many rows of the mask are looked at a time when finding a page
        self.num_rows = len(order) if mask is None else int(np.count_nonzero(mask))

    @property
    def positions(self) -> np.ndarray:
        """Every matched row's position in the table, in order."""
        return self.order if self.mask is None else self.order[self.mask]

    def _positions(self, offset: int, end: int | None) -> np.ndarray:
        if self.mask is None:
            return self.order[offset:end]
        if end is None or end > self.num_rows // 2:  # most of them: one pass is as quick
            return self.positions[offset:end]
        found, seen = [], 0
        for start in range(0, len(self.mask), self.block):
            at = np.flatnonzero(self.mask[start:start + self.block])
            if seen + len(at) > offset:
                found.append(at[max(0, offset - seen):end - seen] + start)
            seen += len(at)
            if seen >= end:
                break
        return self.order[np.concatenate(found)] if found else self.order[:0]

    @property
    def column_names(self) -> list[str]:
        return list(self.table.column_names)

    def slice(self, offset: int = 0, length: int | None = None, columns: Sequence[str] | None = None) -> pa.Table:
        """Rows ``offset`` to ``offset + length`` (all when ``length`` is None), only ``columns`` if given."""
        table = self.table
        if columns is not None:
            present = set(table.column_names)  # a property that builds a list each time it is read
            table = table.select([c for c in columns if c in present])
        end = None if length is None else offset + length
        return table.take(pa.array(self._positions(offset, end), pa.int64()))

    def to_pylist(self) -> list[dict[str, Any]]:
        return self.slice().to_pylist()


class Ordered:
    """A table in one order, with the codes of the columns filtered on (made at first use, then kept).

    Thread-safe: codes are made once under a lock; a request that finds them made takes no lock.

    >>> table = pa.table({"month": ["2024-02", "2024-01", None, "2024-03"], "type": ["new", "churn", "new", "new"]})
    >>> view = Ordered(table, np.array([3, 1, 0, 2]))
    >>> view.pick(both(view.between("month", "2024-02", None), view.equal("type", "new"))).positions.tolist()
    [3, 0]
    """

    def __init__(self, table: pa.Table, order: np.ndarray) -> None:
        self.table = table
        self.order = order
        self._codes: dict[str, tuple[np.ndarray, list[Any]]] = {}
        self._lower: dict[tuple[str, ...], tuple[Any, str, np.ndarray]] = {}
        self._lock = threading.Lock()

    @classmethod
    def sorted_by(cls, table: pa.Table, keys: list[tuple[str, str, str]]) -> Ordered:
        """The table ordered by ``keys``: ``(column, "ascending" | "descending", "at_start" | "at_end")``."""
        if table.num_rows == 0:
            return cls(table, np.zeros(0, np.int64))
        return cls(table, pc.sort_indices(table, keys).to_numpy().astype(np.int64))

    def __len__(self) -> int:
        return len(self.order)

    def codes(self, column: str, values: pa.ChunkedArray | pa.Array | None = None) -> tuple[np.ndarray, list[Any]]:
        """The column (or ``values``, one per row of the table, named ``column``) as codes in this order: -1 for
        null, else the position of the value among the column's distinct values, sorted."""
        found = self._codes.get(column)
        if found is None:
            with self._lock:
                found = self._codes.get(column)
                if found is None:
                    source = self.table[column] if values is None else values
                    ordered = source.take(pa.array(self.order, pa.int64()))
                    distinct = sorted(v for v in pc.unique(ordered).to_pylist() if v is not None)
                    index = pc.index_in(ordered, value_set=pa.array(distinct, ordered.type))
                    found = (pc.fill_null(index, -1).to_numpy().astype(np.int32), distinct)
                    self._codes[column] = found
        return found

    def equal(self, column: str, value: Any, values: pa.ChunkedArray | pa.Array | None = None) -> np.ndarray | None:
        """Which rows (in this order) hold ``value`` in ``column`` (None: no filter, as for a value of None)."""
        if value is None:
            return None
        codes, distinct = self.codes(column, values)
        at = bisect.bisect_left(distinct, value)
        if at == len(distinct) or distinct[at] != value:
            return np.zeros(len(codes), np.bool_)
        return codes == at

    def between(self, column: str, low: Any, high: Any) -> np.ndarray | None:
        """Which rows hold a value from ``low`` to ``high`` (both included; None leaves that end open)."""
        if low is None and high is None:
            return None
        codes, distinct = self.codes(column)
        first = 0 if low is None else bisect.bisect_left(distinct, low)
        last = len(distinct) - 1 if high is None else bisect.bisect_right(distinct, high) - 1
        return (codes >= first) & (codes <= last)

    def contains(self, columns: Sequence[str], needle: str) -> np.ndarray:
        """Which rows hold ``needle`` (lower case) in any of ``columns`` compared in lower case.

        The columns are kept lower-cased, joined by separators no needle holds, as one text: a needle found in a
        few rows is found with one scan of it; one found in very many, by Arrow row by row."""
        if _BETWEEN_COLUMNS in needle or _BETWEEN_ROWS in needle:
            return np.zeros(len(self.order), np.bool_)
        rows, text, starts = self._haystack(tuple(columns))
        at = [m.start() for m in itertools.islice(re.finditer(re.escape(needle), text), _FEW + 1)]
        if len(at) > _FEW:
            found: np.ndarray = pc.match_substring(rows, needle).to_numpy(zero_copy_only=False)
            return found
        mask = np.zeros(len(self.order), np.bool_)
        if at:
            mask[np.searchsorted(starts, np.array(at), side="right") - 1] = True
        return mask

    def _haystack(self, columns: tuple[str, ...]) -> tuple[Any, str, np.ndarray]:
        """Each row's columns lower-cased and joined; all rows joined as one text; where each row starts in it."""
        found = self._lower.get(columns)
        if found is None:
            with self._lock:
                found = self._lower.get(columns)
                if found is None:
                    at = pa.array(self.order, pa.int64())
                    lowered = [pc.utf8_lower(pc.fill_null(self.table[c].take(at), "")) for c in columns]
                    rows = pc.binary_join_element_wise(*lowered, _BETWEEN_COLUMNS)
                    lengths = pc.utf8_length(rows).to_numpy(zero_copy_only=False).astype(np.int64) + 1
                    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
                    found = self._lower[columns] = (rows, _BETWEEN_ROWS.join(rows.to_pylist()), starts)
        return found

    def pick(self, mask: np.ndarray | None) -> Picked:
        """The rows ``mask`` keeps (all for None), in this order."""
        return Picked(self.table, self.order, mask)


class Keys:
    """Where each key's rows are in a table ordered by that key: the distinct keys (sorted, kept as Arrow, found by
    bisection: 17 looks among 100,000), the first position of each and how many rows it has. A dictionary of
    100,000 keys would cost some 20 MB of Python objects; this, the keys' text.

    >>> keys = Keys.of(pa.array(["a", "a", "b", "d"]))
    >>> keys.find("a"), keys.find("d"), keys.find("c")
    ((0, 2), (3, 1), (0, 0))
    """

    def __init__(self, keys: pa.Array, starts: np.ndarray, counts: np.ndarray) -> None:
        self.keys, self.starts, self.counts = keys, starts, counts

    @classmethod
    def of(cls, ordered: pa.Array | pa.ChunkedArray) -> Keys:
        """The keys of a column already sorted (nulls, if any, last)."""
        counted = pc.value_counts(ordered)  # in the order values first appear: sorted
        keys, counts = counted.field("values"), counted.field("counts").to_numpy().astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else counts
        valid = pc.is_valid(keys).to_numpy(zero_copy_only=False)
        return cls(keys.filter(pa.array(valid)), starts[valid], counts[valid])

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, at: int) -> Any:
        return self.keys[at].as_py()

    def find(self, key: Any) -> tuple[int, int]:
        """The first position of ``key``'s rows and how many there are (``(0, 0)`` when it has none)."""
        at = bisect.bisect_left(self, key)
        if at == len(self.keys) or self[at] != key:
            return 0, 0
        return int(self.starts[at]), int(self.counts[at])


def both(*masks: np.ndarray | None) -> np.ndarray | None:
    """The rows every mask keeps (None: no mask given, every row)."""
    found: np.ndarray | None = None
    for mask in masks:
        if mask is not None:
            found = mask if found is None else found & mask
    return found
