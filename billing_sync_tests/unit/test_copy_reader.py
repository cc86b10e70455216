"""PostgreSQL's CSV output into Arrow: '' and NULL apart, exact decimals, quoting."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from billing_sync.source.copy_reader import CopyUnsupported, copy_supported, parse_csv

SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("amount", pa.decimal128(12, 2)),
        ("day", pa.date32()),
        ("at", pa.timestamp("us")),
        ("n", pa.int32()),
        ("flag", pa.bool_()),
    ]
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'"",0.10,2024-02-29,2024-01-01 00:00:00.000001,7,t\n',
         ("", Decimal("0.10"), date(2024, 2, 29), datetime(2024, 1, 1, 0, 0, 0, 1), 7, True)),
        (b",,,,,\n", (None, None, None, None, None, None)),
        (b'"a ""quoted"", text",-99999.99,1999-12-31,1999-12-31 23:59:59,-1,f\n',
         ('a "quoted", text', Decimal("-99999.99"), date(1999, 12, 31),
          datetime(1999, 12, 31, 23, 59, 59), -1, False)),
        (b'"two\nlines",1,2000-01-01,2000-01-01 00:00:00,0,t\n',
         ("two\nlines", Decimal("1.00"), date(2000, 1, 1), datetime(2000, 1, 1), 0, True)),
        ("\"caf\u00e9 \u20ac\",1,,,,\n".encode(),
         ("caf\u00e9 \u20ac", Decimal("1.00"), None, None, None, None)),
        (b"   ,1,,,,\n", ("   ", Decimal("1.00"), None, None, None, None)),
    ],
)  # fmt: skip
def test_values_read_as_postgresql_wrote_them(line: bytes, expected: tuple[object, ...]) -> None:
    table = parse_csv(line, SCHEMA)
    assert table.schema == SCHEMA
    assert tuple(table.to_pylist()[0].values()) == expected


def test_no_rows_is_an_empty_table_of_the_schema() -> None:
    assert parse_csv(b"", SCHEMA) == SCHEMA.empty_table()


@pytest.mark.parametrize(
    "line",
    [
        b"x,1.234,,,,\n",  # more decimals than the type holds
        b"x,1,2024-02-30,,,\n",  # no such day
        b"x,1,,2024-01-01 00:00:00+02,,\n",  # a timestamptz's offset
        b"x,1,,,99999999999,\n",  # out of int32
    ],
)
def test_what_would_not_be_exact_is_refused(line: bytes) -> None:
    with pytest.raises(CopyUnsupported):
        parse_csv(line, SCHEMA)


@pytest.mark.parametrize(
    ("kind", "supported"),
    [
        (pa.string(), True),
        (pa.int64(), True),
        (pa.float64(), True),
        (pa.decimal128(38, 10), True),
        (pa.timestamp("us"), True),
        (pa.timestamp("us", "UTC"), False),
        (pa.binary(), False),
        (pa.time64("us"), False),
    ],
)
def test_which_types_take_the_copy_path(kind: pa.DataType, supported: bool) -> None:
    assert copy_supported(pa.schema([("c", kind)])) is supported
