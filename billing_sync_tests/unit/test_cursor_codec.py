"""The cursor codec: (CYYMMDD, HHMMSS) <-> naive local timestamps, table-driven."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa
import pytest

from billing_sync.capture.cursor import (
    cursor_horizon,
    decode_cursor,
    decode_cyymmdd_hhmmss,
    encode_cyymmdd_hhmmss,
)
from billing_sync.config import TableMapping
from billing_sync.source.schema import CURSOR_ALIAS


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (datetime(2025, 11, 24, 7, 5, 9), (1251124, 70509)),
        (datetime(1999, 12, 31, 23, 59, 59), (991231, 235959)),
        (datetime(1900, 1, 1), (101, 0)),
        (datetime(2000, 1, 1, 0, 0, 0, 999_999), (1000101, 0)),  # floored to the second
        (datetime(2899, 12, 31, 23, 59, 59), (9991231, 235959)),
    ],
)
def test_encode(value: datetime, encoded: tuple[int, int]) -> None:
    assert encode_cyymmdd_hhmmss(value) == encoded


def test_encode_floors_before_1900_and_refuses_after_2899() -> None:
    assert encode_cyymmdd_hhmmss(datetime(1899, 12, 31, 23, 59, 59)) == (0, 0)
    with pytest.raises(ValueError, match="CYYMMDD"):
        encode_cyymmdd_hhmmss(datetime(2900, 1, 1))


DECODE = [
    # (CYYMMDD, HHMMSS) -> decoded; valid values round-trip exactly
    (1251124, 70509, datetime(2025, 11, 24, 7, 5, 9)),
    (991231, 235959, datetime(1999, 12, 31, 23, 59, 59)),
    (1240229, 120000, datetime(2024, 2, 29, 12, 0, 0)),  # leap day
    # invalid values floor to the last real second at or below them
    (0, 0, datetime(1899, 12, 31, 23, 59, 59)),  # zero date: before every real one
    (None, None, datetime(1899, 12, 31, 23, 59, 59)),
    (-5, -1, datetime(1899, 12, 31, 23, 59, 59)),
    (1250001, 120000, datetime(2024, 12, 31, 23, 59, 59)),  # month 0: before the year
    (1251300, 0, datetime(2025, 12, 31, 23, 59, 59)),  # month 13: end of the year
    (1251100, 120000, datetime(2025, 10, 31, 23, 59, 59)),  # day 0: before the month
    (1250300, 0, datetime(2025, 2, 28, 23, 59, 59)),
    (1250231, 100000, datetime(2025, 2, 28, 23, 59, 59)),  # Feb 31: end of February
    (1230229, 0, datetime(2023, 2, 28, 23, 59, 59)),  # no leap day in 2023
    (1251124, 246000, datetime(2025, 11, 24, 23, 59, 59)),  # hour 24: end of the day
    (1251124, 126000, datetime(2025, 11, 24, 12, 59, 59)),  # minute 60
    (1251124, 125960, datetime(2025, 11, 24, 12, 59, 59)),  # second 60
    (1251124, 999999, datetime(2025, 11, 24, 23, 59, 59)),
    (9999999, 999999, datetime(2899, 12, 31, 23, 59, 59)),  # "open-ended" 9999999
    (99_999_999, 0, datetime(2899, 12, 31, 23, 59, 59)),  # too many digits
]


def test_decode_table() -> None:
    frame = pl.DataFrame(
        {"d": [row[0] for row in DECODE], "t": [row[1] for row in DECODE]},
        schema={"d": pl.Int64, "t": pl.Int64},
    )
    decoded = frame.select(decode_cyymmdd_hhmmss(pl.col("d"), pl.col("t"))).to_series()
    assert decoded.to_list() == [row[2] for row in DECODE]
    assert decoded.dtype == pl.Datetime("us")


def test_valid_values_round_trip() -> None:
    for date, time, value in DECODE[:3]:
        assert encode_cyymmdd_hhmmss(value) == (date, time)


def test_decode_never_goes_backwards_in_column_order() -> None:
    """Order of the raw tuple (what the index and the cursor compare) is kept: a watermark
    decoded from any row re-encodes at or below that row."""
    dates = [0, 100, 1250001, 1250131, 1250132, 1250199, 1250200, 1250228, 1250229, 1250231,
             1250299, 1251299, 1251300, 1259999, 1260101]  # fmt: skip
    times = [0, 1, 595959, 235959, 236000, 240000, 999999]
    pairs = sorted((d, t) for d in dates for t in times)
    frame = pl.DataFrame({"d": [p[0] for p in pairs], "t": [p[1] for p in pairs]})
    decoded = frame.select(decode_cyymmdd_hhmmss(pl.col("d"), pl.col("t"))).to_series().to_list()
    assert decoded == sorted(decoded)
    for pair, value in zip(pairs, decoded, strict=True):
        assert encode_cyymmdd_hhmmss(value) <= pair


COMPOSITE = TableMapping.model_validate(
    {
        "table": "ACCOUNT",
        "entity": "billing_account",
        "key": ["ID"],
        "cursor": ["CHG_DATE", "CHG_TIME"],
        "cursor_format": "cyymmdd_hhmmss",
        "columns": [{"source": "ID", "target": "id", "type": "text"}],
    }
)


def test_decode_cursor_replaces_the_raw_columns() -> None:
    raw = pa.table(
        {
            "ID": ["a", "b"],
            "_cursor_date": pa.array([1251124, 1250231], pa.int64()),
            "_cursor_time": pa.array([70509, 0], pa.int64()),
        }
    )
    decoded = decode_cursor(raw, COMPOSITE)
    assert decoded.column_names == ["ID", CURSOR_ALIAS]
    assert decoded.schema.field(CURSOR_ALIAS).type == pa.timestamp("us")
    assert decoded.column(CURSOR_ALIAS).to_pylist() == [
        datetime(2025, 11, 24, 7, 5, 9),
        datetime(2025, 2, 28, 23, 59, 59),
    ]
    assert decoded.column("ID").type == pa.string()  # other columns untouched
    assert decode_cursor(decoded, COMPOSITE) is decoded  # already decoded
    empty = decode_cursor(raw.slice(0, 0), COMPOSITE)
    assert empty.num_rows == 0 and CURSOR_ALIAS in empty.column_names


def test_horizon_floors_to_the_second_for_composite_cursors_only() -> None:
    at = datetime(2026, 11, 25, 12, 0, 5, 900_000)
    assert cursor_horizon(COMPOSITE, at) == datetime(2026, 11, 25, 12, 0, 5)
    timestamp = COMPOSITE.model_copy(update={"cursor": "CHG_TS", "cursor_format": "timestamp"})
    assert cursor_horizon(timestamp, at) == at


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ({}, datetime(2026, 11, 25, 12, 0, 5, 987_654)),  # not reflected: native precision
        ({"CHG_TS": "timestamp(6) without time zone"}, datetime(2026, 11, 25, 12, 0, 5, 987_654)),
        ({"CHG_TS": "timestamp without time zone"}, datetime(2026, 11, 25, 12, 0, 5, 987_654)),
        ({"CHG_TS": "timestamp(0) without time zone"}, datetime(2026, 11, 25, 12, 0, 5)),
        ({"CHG_TS": "timestamp(6) without time zone", "CRT_TS": "timestamp(3) without time zone"},
         datetime(2026, 11, 25, 12, 0, 5, 987_000)),  # the coarser of cursor and fallback
        ({"CHG_TS": "date"}, datetime(2026, 11, 25)),
    ],
)  # fmt: skip
def test_the_horizon_floors_to_the_timestamp_cursors_resolution(
    types: dict[str, str], expected: datetime
) -> None:
    mapping = COMPOSITE.model_copy(
        update={"cursor": "CHG_TS", "cursor_format": "timestamp", "cursor_fallback": "CRT_TS",
                "source_types": types}
    )  # fmt: skip
    assert cursor_horizon(mapping, datetime(2026, 11, 25, 12, 0, 5, 987_654)) == expected


def test_the_staged_decode_equals_the_expression() -> None:
    from billing_sync.capture.cursor import decode_packed_many, decode_stamps

    dates = pl.Series([row[0] for row in DECODE], dtype=pl.Int64)
    times = pl.Series([row[1] for row in DECODE], dtype=pl.Int64)
    assert decode_stamps(dates, times).to_list() == [row[2] for row in DECODE]
    assert decode_packed_many([1251124_070509, None]) == [datetime(2025, 11, 24, 7, 5, 9), None]
