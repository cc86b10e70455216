"""Converters, table-driven: good values, and bad ones that become NULL and a flag."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from billing_sync.config import ColumnSpec
from billing_sync.transform.converters import convert, local_to_utc


def run(spec: dict[str, Any], **columns: pl.Series) -> tuple[list[Any], list[bool] | None]:
    """The converted values and bad flags of ``spec`` over a frame of ``columns``."""
    conversion = convert(ColumnSpec.model_validate(spec))
    frame = pl.DataFrame(columns)
    values = frame.select(conversion.value.alias("v")).to_series().to_list()
    if conversion.bad is None:
        return values, None
    bad = frame.select(conversion.bad.fill_null(False).alias("b")).to_series().to_list()
    return values, bad


def column(converter: Any, kind: str, source: Any = "X") -> dict[str, Any]:
    return {"source": source, "target": "t", "type": kind, "converter": converter}


CASES = [
    # (spec, input values, input dtype, expected values, expected bad flags)
    pytest.param(
        column("trim", "text"), ["001  ", "  a b ", "   ", None], pl.Utf8,
        ["001", "  a b", "", None], None, id="trim: padded CHAR, right side only",
    ),
    pytest.param(
        column("cyymmdd", "date"),
        [1251124, 991231, 1240229, 0, 9999999, 1250231, 1251301, 1250100, -1, 10000000, None],
        pl.Int64,
        [date(2025, 11, 24), date(1999, 12, 31), date(2024, 2, 29), None, None, None, None,
         None, None, None, None],
        [False, False, False, False, False, True, True, True, True, True, False],
        id="cyymmdd: 0 and 9999999 are NULL, not bad; Feb 31, month 13, day 0 are bad",
    ),
    pytest.param(
        column("hhmmss", "text"), [0, 70509, 235959, 246000, 126000, 125960, -5, None],
        pl.Int64,
        ["00:00:00", "07:05:09", "23:59:59", None, None, None, None, None],
        [False, False, False, True, True, True, True, False],
        id="hhmmss: hour 24, minute 60, second 60 are bad",
    ),
    pytest.param(
        column({"implied_decimal": 2}, "decimal(12,2)"),
        [12345, -12345, 5, -5, 0, 10**12, None], pl.Int64,
        [Decimal("123.45"), Decimal("-123.45"), Decimal("0.05"), Decimal("-0.05"),
         Decimal("0.00"), None, None],
        [False, False, False, False, False, True, False],
        id="implied_decimal(2): negatives, small values, overflow is bad",
    ),
    pytest.param(
        column({"implied_decimal": 0}, "decimal(10,0)"), [42, -7], pl.Int64,
        [Decimal("42"), Decimal("-7")], [False, False], id="implied_decimal(0)",
    ),
    pytest.param(
        column({"float_money": 2}, "decimal(12,2)"),
        [0.1 + 0.2, 2.675, 1.005, 0.125, -2.675, 19.99, 1e11, float("nan"), float("inf"), None],
        pl.Float64,
        [Decimal("0.30"), Decimal("2.68"), Decimal("1.00"), Decimal("0.12"), Decimal("-2.68"),
         Decimal("19.99"), None, None, None, None],
        [False, False, False, False, False, False, True, True, True, False],
        id="float_money(2): exact, half-even on the shown value; NaN, inf, overflow bad",
    ),
    pytest.param(
        column("ebcdic", "text"),
        [b"\xc8\x85\x93\x93\x96@@", b"\xf0\xf0\xf1", b"", None], pl.Binary,
        ["Hello  ", "001", "", None], None, id="ebcdic: code page 037",
    ),
    pytest.param(
        column("latin1", "text"), [b"Caf\xe9 Ren\xe9", b"\xff", None], pl.Binary,
        ["Café René", "ÿ", None], None, id="latin1",
    ),
    pytest.param(
        column({"lookup": {"A": "active", "C": "closed"}}, "text"),
        ["A", "C ", "X", "", None], pl.Utf8,
        ["active", "closed", None, None, None], [False, False, True, True, False],
        id="lookup: codes right-trimmed; unknown codes are bad",
    ),
    pytest.param(
        {"source": "X", "target": "t", "type": "text"}, [20001234, None], pl.Int64,
        ["20001234", None], [False, False], id="no converter: a BAN number cast to text",
    ),
    pytest.param(
        {"source": "X", "target": "t", "type": "integer"}, ["12", "x", None], pl.Utf8,
        [12, None, None], [False, True, False], id="no converter: a value that does not cast",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "values", "dtype", "expected", "bad"), CASES)
def test_converter(
    spec: dict[str, Any], values: list[Any], dtype: pl.DataType, expected: list[Any],
    bad: list[bool] | None,
) -> None:  # fmt: skip
    got, flags = run(spec, X=pl.Series(values, dtype=dtype))
    assert got == expected
    assert flags == bad


def test_cyymmdd_hhmmss_reads_two_columns() -> None:
    spec = column("cyymmdd_hhmmss", "timestamp", source=["D", "T"])
    got, bad = run(
        spec,
        D=pl.Series([1251124, 1251124, 0, 9999999, 1250231, 1251124, 1251124], dtype=pl.Int64),
        T=pl.Series([70509, 0, 120000, 0, 120000, 246000, None], dtype=pl.Int64),
    )
    assert got == [datetime(2025, 11, 24, 7, 5, 9, tzinfo=UTC), datetime(2025, 11, 24, tzinfo=UTC),
                   None, None, None, None, None]  # fmt: skip
    assert bad == [False, False, False, False, True, True, True]


def test_a_biller_local_timestamp_becomes_a_utc_instant() -> None:
    """The catalog's zone converts wall time as PostgreSQL's AT TIME ZONE does: the hour
    repeated in November as standard time, the one skipped in March forward."""
    wall = pl.Series([datetime(2026, 7, 1, 12, 0), datetime(2026, 11, 1, 1, 30),
                      datetime(2026, 3, 8, 2, 30), None])  # fmt: skip
    got = pl.select(local_to_utc(pl.lit(wall), "America/Chicago")).to_series().to_list()
    assert got == [datetime(2026, 7, 1, 17, 0, tzinfo=UTC),
                   datetime(2026, 11, 1, 7, 30, tzinfo=UTC),
                   datetime(2026, 3, 8, 8, 30, tzinfo=UTC), None]  # fmt: skip
    spec = column("cyymmdd_hhmmss", "timestamp", source=["D", "T"])
    frame = pl.DataFrame({"D": [1261204], "T": [100001]})
    value = frame.select(convert(ColumnSpec.model_validate(spec), "America/Chicago").value)
    assert value.item() == datetime(2026, 12, 4, 16, 0, 1, tzinfo=UTC)


def test_constants_fill_what_a_biller_lacks() -> None:
    frame = pl.DataFrame({"X": [1, 2]})
    for spec, expected in [
        ({"constant": "AMD", "target": "site_id", "type": "text"}, ["AMD", "AMD"]),
        ({"constant": None, "target": "place_id", "type": "text"}, [None, None]),
        ({"constant": 1, "target": "quantity", "type": "integer"}, [1, 1]),
    ]:
        conversion = convert(ColumnSpec.model_validate(spec))
        assert conversion.bad is None
        assert frame.with_columns(conversion.value.alias("v"))["v"].to_list() == expected


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"source": ["D", "T"], "target": "t", "type": "timestamp", "converter": "trim"},
         "only for converter cyymmdd_hhmmss"),
        ({"source": "D", "target": "t", "type": "timestamp", "converter": "cyymmdd_hhmmss"},
         "takes source: \\[date, time\\]"),
        ({"source": "D", "target": "t", "type": "text", "converter": "cyymmdd"}, "gives date"),
        ({"source": "D", "target": "t", "type": "text", "converter": {"implied_decimal": None}},
         "number of decimal places"),
        ({"source": "D", "target": "t", "type": "text", "converter": {"lookup": {}}},
         "non-empty mapping"),
        ({"source": "D", "target": "t", "type": "text", "converter": "rot13"}, "rot13"),
        ({"constant": "A", "source": "D", "target": "t", "type": "text"}, "exactly one"),
        ({"target": "t", "type": "text"}, "exactly one"),
        ({"constant": "A", "target": "t", "type": "text", "protect": "hmac"}, "no converter"),
        ({"source": "D", "target": "t", "type": "date", "protect": "last4"}, "gives text"),
    ],
)  # fmt: skip
def test_column_specs_that_cannot_work_fail_at_load(spec: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        ColumnSpec.model_validate(spec)
