"""Whatever file a data folder holds, ``upcurve validate`` answers with exit code 0 (it meets the contract) or 2 (a
list of problems), never a traceback: random bytes as a CSV file, random CSV shapes and random small Parquet
schemas, each put beside a valid folder's other tables."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hardening.corpus import base_folder, invoke
from upcurve.contract import CONTRACT

#: A time bound per example: the hangs found by the probes (a wide file, a long line) ran for minutes.
FUZZ = settings(max_examples=25, deadline=dt.timedelta(seconds=60), suppress_health_check=[HealthCheck.too_slow])

tables = st.sampled_from(sorted(CONTRACT))
contract_names = sorted({c.name for t in CONTRACT.values() for c in t.columns})
junk = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
names = st.one_of(st.sampled_from([*contract_names, "_row", "file_row_number", ""]), junk)
cells = st.one_of(
    st.sampled_from(["", " ", "nan", "inf", "-Infinity", "1e400", "2.5", "0", "-1", "1_000", "0x10", "2024-01",
                     "2024-01-01", "0001-01-01", "9999-12-31 23:59:59", "infinity", "A", "team_m", "USD", "eur",
                     "subscription", "one_time", '"', '""', "a,b", "[red]x[/red]", "[/]", "\x00", "\r", "\n"]),
    junk,
)


def validate_exits_0_or_2(write: Callable[[Path], None]) -> None:
    """Write one file into a fresh valid folder (replacing its table's CSV), then validate it and run it: each ends
    with 0 or 2 (bad input), never a traceback, and ``run`` agrees with ``validate``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = base_folder(Path(tmp) / "data")
        write(folder)
        result = invoke(["validate", str(folder)])
        assert result.exit_code in (0, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        ran = invoke(["run", str(folder), "--out", str(Path(tmp) / "out")])
        assert ran.exit_code == result.exit_code, ran.output
        assert ran.exception is None or isinstance(ran.exception, SystemExit), repr(ran.exception)


@FUZZ
@given(table=tables, data=st.binary(max_size=600))
def test_random_bytes_as_a_csv_file(table: str, data: bytes) -> None:
    def write(folder: Path) -> None:
        (folder / f"{table}.csv").write_bytes(data)

    validate_exits_0_or_2(write)


@FUZZ
@given(
    table=tables,
    header=st.lists(names, min_size=1, max_size=8),
    rows=st.lists(st.lists(cells, max_size=9), max_size=5),
    delimiter=st.sampled_from([",", ",", ";", "\t"]),
    quoted=st.booleans(),
)
def test_random_csv_shapes(table: str, header: list[str], rows: list[list[str]], delimiter: str,
                           quoted: bool) -> None:
    def write(folder: Path) -> None:
        if quoted:
            out = io.StringIO()
            csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows([header, *rows])
            text = out.getvalue()
        else:  # raw: ragged lines, stray quotes and delimiters inside values as they come
            text = "".join(delimiter.join(line) + "\n" for line in [header, *rows])
        (folder / f"{table}.csv").write_bytes(text.encode("utf-8", "surrogatepass"))

    validate_exits_0_or_2(write)


_ARROW = {
    "int8": (pa.int8(), st.integers(-128, 127)),
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "uint64": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "float32": (pa.float32(), st.floats(width=32)),
    "float64": (pa.float64(), st.floats()),
    "bool": (pa.bool_(), st.booleans()),
    "string": (pa.string(), junk),
    "large_string": (pa.large_string(), cells),
    "binary": (pa.binary(), st.binary(max_size=8)),
    "date32": (pa.date32(), st.dates()),
    "timestamp_us": (pa.timestamp("us"), st.datetimes()),
    "timestamp_ns_tz": (pa.timestamp("ns", tz="UTC"),
                        st.datetimes(dt.datetime(1678, 1, 1), dt.datetime(2261, 12, 31), timezones=st.just(dt.UTC))),
    "decimal_10_2": (pa.decimal128(10, 2), st.decimals(-(10**7), 10**7, places=2, allow_nan=False)),
    "decimal_38_10": (pa.decimal128(38, 10), st.decimals(Decimal("-1e27"), Decimal("1e27"), places=10,
                                                         allow_nan=False)),
    "list_int": (pa.list_(pa.int64()), st.lists(st.integers(-5, 5), max_size=3)),
    "struct": (pa.struct([("a", pa.int64())]), st.fixed_dictionaries({"a": st.integers(-5, 5)})),
    "time": (pa.time64("us"), st.times()),
    "duration": (pa.duration("s"), st.integers(-(10**6), 10**6)),
    "null": (pa.null(), st.none()),
}


@st.composite
def parquet_tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(0, 4))
    columns = draw(st.lists(st.tuples(names, st.sampled_from(sorted(_ARROW))), min_size=1, max_size=6,
                            unique_by=lambda c: c[0]))
    arrays = {}
    for name, kind in columns:
        arrow_type, values = _ARROW[kind]
        arrays[name] = pa.array(draw(st.lists(st.one_of(st.none(), values), min_size=rows, max_size=rows)),
                                arrow_type)
    if draw(st.booleans()):  # a dictionary-encoded text column, as pandas' categories are written
        arrays[draw(names)] = pa.array(draw(st.lists(cells, min_size=rows, max_size=rows))).dictionary_encode()
    return pa.table(arrays)


@FUZZ
@given(table=tables, arrow=parquet_tables())
def test_random_small_parquet_schemas(table: str, arrow: pa.Table) -> None:
    def write(folder: Path) -> None:
        (folder / f"{table}.csv").unlink(missing_ok=True)
        pq.write_table(arrow, folder / f"{table}.parquet")

    validate_exits_0_or_2(write)
