"""The cursor codec: how a table's change cursor is spelled in SQL and read back.

A watermark is stored as ``(change_ts, key...)`` whatever the source holds. For
``cursor_format: timestamp`` the change timestamp is the cursor column itself (or
``COALESCE(cursor, cursor_fallback)``). For ``cursor_format: cyymmdd_hhmmss`` it is the
naive local timestamp decoded from two integer columns, CYYMMDD (``C`` the century
after 1900: ``1251124`` is 2025-11-24) and HHMMSS, in the catalog's timezone:

* SQL reads and compares the raw columns only (``("CHG_DATE", "CHG_TIME", key...) >
  (:d, :t, :k...)``), so the source's index on ``(CHG_DATE, CHG_TIME, key...)`` serves
  every query; a timestamp becomes bind values with :func:`encode_cyymmdd_hhmmss`.
* The fetched ``_cursor_date`` and ``_cursor_time`` become ``_cursor_ts`` in Polars
  after the fetch (:func:`decode_cursor`), never in SQL, so no expression sits on the
  indexed columns and an odd value cannot fail the read.

Decoding floors instead of failing: a value that is not a real instant counts as the
last real second at or below it (month or day 0: the second before that year or month
starts; month > 12, a day past the month's end, hour > 23: the last second of that
year, month or day; minute or second > 59 likewise; NULL or negative count as 0, which
decodes to 1899-12-31 23:59:59 and encodes back as ``(0, 0)``). A floor keeps the
columns' order and re-encodes at or below the row it came from, so a watermark taken
from such a row never skips one: the next batch at most reads a few rows again, which
the version-guarded merge makes harmless. Converters in
:mod:`billing_sync.transform` are strict about the same values, for the business columns.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import polars as pl
import pyarrow as pa

from billing_sync.config import TableMapping
from billing_sync.source.families import type_family
from billing_sync.source.schema import (
    CURSOR_ALIAS,
    CURSOR_DATE_ALIAS,
    CURSOR_TIME_ALIAS,
    is_composite,
)
from billing_sync.sql import QueryStyle, quote_ident

FIRST_YEAR = 1900  # CYYMMDD with C = 0
LAST_YEAR = 2899  # CYYMMDD with C = 9, the largest a 7-digit value holds
_LARGEST_DATE = 9_999_999
_LARGEST_TIME = 999_999


# -- SQL -------------------------------------------------------------------------------------


def change_ts_expression(mapping: TableMapping) -> str:
    """The change timestamp of a ``timestamp`` cursor: the cursor column, or the creation
    column when it is NULL. A composite cursor has no single SQL expression."""
    if is_composite(mapping):
        raise ValueError(
            f"{mapping.table}: a cyymmdd_hhmmss cursor has no change timestamp expression;"
            " use cursor_sql_columns"
        )
    cursor = quote_ident(mapping.cursor_columns[0])
    if mapping.cursor_fallback is None:
        return cursor
    return f"COALESCE({cursor}, {quote_ident(mapping.cursor_fallback)})"


def cursor_sql_columns(mapping: TableMapping) -> list[str]:
    """What the change order is over, in index order, before the key columns."""
    if is_composite(mapping):
        return [quote_ident(name) for name in mapping.cursor_columns]
    return [change_ts_expression(mapping)]


def cursor_select(mapping: TableMapping) -> str:
    """The select-list item(s) that carry the cursor out of a query.

    A ``timestamptz`` stamp comes out as the session's wall time (``CAST(... AS
    timestamp)``: the session runs in the catalog's zone), like a biller-local stamp;
    the comparisons keep the bare column, so the index still serves them.
    """
    columns = cursor_sql_columns(mapping)
    if is_composite(mapping):
        date, time = columns
        date_alias, time_alias = quote_ident(CURSOR_DATE_ALIAS), quote_ident(CURSOR_TIME_ALIAS)
        return f"{date} AS {date_alias}, {time} AS {time_alias}"
    stamp = columns[0]
    if _is_timestamptz(mapping, mapping.cursor_columns[0]):
        stamp = f"CAST({stamp} AS timestamp)"
    return f"{stamp} AS {quote_ident(CURSOR_ALIAS)}"


def _is_timestamptz(mapping: TableMapping, name: str) -> bool:
    return type_family(mapping.source_types.get(name, "")) == "timestamptz"


def cursor_values(mapping: TableMapping, change_ts: datetime) -> tuple[Any, ...]:
    """Bind values for a change timestamp, one per :func:`cursor_sql_columns` item."""
    if is_composite(mapping):
        return encode_cyymmdd_hhmmss(change_ts)
    return (change_ts,)


def cursor_horizon(mapping: TableMapping, at: datetime) -> datetime:
    """The horizon a window of ``mapping`` can use: floored to the stamp's resolution.

    A stamp of whole seconds written by a transaction still open at the horizon ``h``
    may read ``floor(h)``, so only stamps strictly below ``floor(h)`` are complete. The
    resolution is that of a composite cursor (seconds) or, for a timestamp cursor, of
    its reflected source type (``timestamp(0)``, Oracle ``DATE``: seconds; ``date``: days;
    ``timestamp(3)``: milliseconds); native microseconds need no floor.

    >>> m = TableMapping.model_validate({"table": "T", "entity": "e", "key": ["K"],
    ...     "cursor": "TS", "source_types": {"TS": "timestamp(0) without time zone"},
    ...     "columns": [{"source": "K", "target": "k", "type": "text"}]})
    >>> cursor_horizon(m, datetime(2026, 1, 1, 12, 0, 5, 700_000))
    datetime.datetime(2026, 1, 1, 12, 0, 5)
    """
    digits = stamp_digits(mapping)
    if digits is None:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    step = 10 ** (6 - digits)
    return at.replace(microsecond=at.microsecond // step * step)


_PRECISION = re.compile(r"^timestamp\((\d)\)")


def stamp_digits(mapping: TableMapping) -> int | None:
    """Fractional digits of the change stamp (6: microseconds, 0: seconds; None: whole
    days), the coarsest of the cursor columns' reflected types."""
    if is_composite(mapping):
        return 0
    names = [
        *mapping.cursor_columns,
        *([mapping.cursor_fallback] if mapping.cursor_fallback else []),
    ]
    digits: int | None = 6
    for name in names:
        sql_type = mapping.source_types.get(name, "").lower()
        if sql_type == "date":
            return None
        match = _PRECISION.match(sql_type)
        if match and digits is not None:
            digits = min(digits, int(match[1]))
    return digits


# -- the codec -------------------------------------------------------------------------------


def encode_cyymmdd_hhmmss(value: datetime) -> tuple[int, int]:
    """``(CYYMMDD, HHMMSS)`` of a naive local timestamp, floored to the second.

    Anything before 1900 (a decoded zero date) is ``(0, 0)``, the lowest value.

    >>> encode_cyymmdd_hhmmss(datetime(2025, 11, 24, 7, 5, 9, 999_999))
    (1251124, 70509)
    >>> encode_cyymmdd_hhmmss(datetime(1999, 12, 31, 23, 59, 59))
    (991231, 235959)
    """
    if value.year < FIRST_YEAR:
        return 0, 0
    if value.year > LAST_YEAR:
        raise ValueError(f"{value} cannot be written as CYYMMDD (years {FIRST_YEAR}-{LAST_YEAR})")
    date = (value.year - FIRST_YEAR) * 10_000 + value.month * 100 + value.day
    return date, value.hour * 10_000 + value.minute * 100 + value.second


def decode_cyymmdd_hhmmss(date: pl.Expr, time: pl.Expr) -> pl.Expr:
    """The saturating decode of ``(CYYMMDD, HHMMSS)`` to a naive ``Datetime("us")``:
    the last real second at or below the value (see the module docstring).

    Total, never NULL, and a floor: it keeps the columns' order and
    ``encode(decode(v)) <= v``, so a watermark never skips a row.
    """
    d = date.cast(pl.Int64).fill_null(0).clip(0, _LARGEST_DATE)
    t = time.cast(pl.Int64).fill_null(0).clip(0, _LARGEST_TIME)
    year = d // 10_000 + FIRST_YEAR
    month = d // 100 % 100
    day = d % 100
    hour, minute, second = t // 10_000, t // 100 % 100, t % 100
    valid_month = month.clip(1, 12)
    month_days = pl.date(year, valid_month, 1).dt.month_end().dt.day().cast(pl.Int64)
    # Month or day 0: the second before the year or month starts.
    before_start = (month == 0) | ((month <= 12) & (day == 0))
    # Month 13+, a day past the month's end, hour 24+: the last second of that period.
    end_of_period = ~before_start & ((month > 12) | (day > month_days))
    valid_date = ~before_start & ~end_of_period
    end_of_day = end_of_period | (valid_date & (hour > 23))
    end_of_hour = end_of_day | (valid_date & (minute > 59))
    end_of_minute = end_of_hour | (valid_date & (second > 59))
    out_day = pl.when(before_start).then(1).when(end_of_period).then(month_days).otherwise(day)
    out_hour = pl.when(before_start).then(0).when(end_of_day).then(23).otherwise(hour)
    out_minute = pl.when(before_start).then(0).when(end_of_hour).then(59).otherwise(minute)
    out_second = pl.when(before_start).then(0).when(end_of_minute).then(59).otherwise(second)
    moment = pl.datetime(year, valid_month, out_day, out_hour, out_minute, out_second)
    return (
        pl.when(before_start)
        .then(moment - pl.duration(seconds=1))
        .otherwise(moment)
        .cast(pl.Datetime("us"))
    )


def decode_stamps(dates: pl.Series, times: pl.Series) -> pl.Series:
    """:func:`decode_cyymmdd_hhmmss` over two series, in stages: the same values, but each
    stage's expression stays small (the one-expression form repeats its sub-expressions
    and costs Polars ~0.3 s to plan, whatever the row count)."""
    frame = pl.DataFrame({"d": dates, "t": times}).lazy()
    col = pl.col
    return (
        frame.with_columns(
            col("d").cast(pl.Int64).fill_null(0).clip(0, _LARGEST_DATE),
            col("t").cast(pl.Int64).fill_null(0).clip(0, _LARGEST_TIME),
        )
        .with_columns(
            (col("d") // 10_000 + FIRST_YEAR).alias("year"),
            (col("d") // 100 % 100).alias("month"),
            (col("d") % 100).alias("day"),
            (col("t") // 10_000).alias("hour"),
            (col("t") // 100 % 100).alias("minute"),
            (col("t") % 100).alias("second"),
        )
        .with_columns(col("month").clip(1, 12).alias("valid_month"))
        .with_columns(
            pl.date(col("year"), col("valid_month"), 1)
            .dt.month_end()
            .dt.day()
            .cast(pl.Int64)
            .alias("month_days")
        )
        .with_columns(
            ((col("month") == 0) | ((col("month") <= 12) & (col("day") == 0))).alias("before")
        )
        .with_columns(
            (~col("before") & ((col("month") > 12) | (col("day") > col("month_days")))).alias(
                "period_end"
            )
        )
        .with_columns((~col("before") & ~col("period_end")).alias("valid_date"))
        .with_columns((col("period_end") | (col("valid_date") & (col("hour") > 23))).alias("eod"))
        .with_columns((col("eod") | (col("valid_date") & (col("minute") > 59))).alias("eoh"))
        .with_columns((col("eoh") | (col("valid_date") & (col("second") > 59))).alias("eom"))
        .with_columns(
            pl.when(col("before"))
            .then(1)
            .when(col("period_end"))
            .then(col("month_days"))
            .otherwise(col("day"))
            .alias("out_day"),
            pl.when(col("before"))
            .then(0)
            .when(col("eod"))
            .then(23)
            .otherwise(col("hour"))
            .alias("out_hour"),
            pl.when(col("before"))
            .then(0)
            .when(col("eoh"))
            .then(59)
            .otherwise(col("minute"))
            .alias("out_minute"),
            pl.when(col("before"))
            .then(0)
            .when(col("eom"))
            .then(59)
            .otherwise(col("second"))
            .alias("out_second"),
        )
        .with_columns(
            pl.datetime(
                col("year"),
                col("valid_month"),
                col("out_day"),
                col("out_hour"),
                col("out_minute"),
                col("out_second"),
            ).alias("moment")
        )
        .select(
            pl.when(col("before"))
            .then(col("moment") - pl.duration(seconds=1))
            .otherwise(col("moment"))
            .cast(pl.Datetime("us"))
            .alias(CURSOR_ALIAS)
        )
        .collect()
        .get_column(CURSOR_ALIAS)
    )


def packed_stamp_sql(
    date: str, time: str, *, style: QueryStyle | None = None, integer: str = "bigint"
) -> str:
    """``CYYMMDD * 1000000 + HHMMSS`` of the instant the sync decodes ``(date, time)`` to:
    the last real second at or below it (:func:`decode_cyymmdd_hhmmss`), as PostgreSQL
    integer arithmetic that never fails (verify hashes the stamp with it).

    ``style`` writes it for another engine (integer quotients by ``style.div``, the
    month's length by the calendar rule instead of ``make_date``, casts to ``integer``);
    ``None`` is PostgreSQL's text, unchanged."""
    if style is not None:
        return _packed_stamp_portable(date, time, style, integer)
    d = f"LEAST(GREATEST(coalesce(CAST({date} AS bigint), 0), 0), 9999999)"
    t = f"LEAST(GREATEST(coalesce(CAST({time} AS bigint), 0), 0), 999999)"
    # mod(), not %: the text goes through psycopg, where % starts a placeholder.
    year, month, day = f"({d} / 10000)", f"mod({d} / 100, 100)", f"mod({d}, 100)"
    hour, minute, second = f"({t} / 10000)", f"mod({t} / 100, 100)", f"mod({t}, 100)"

    def days_in(y: str, m: str) -> str:
        first = f"make_date(CAST(1900 + {y} AS integer), CAST({m} AS integer), 1)"
        return f"CAST(extract(day FROM {first} + interval '1 month' - interval '1 day') AS bigint)"

    def packed(y: str, m: str, dd: str, hms: str) -> str:
        return f"(({y}) * 10000000000 + ({m}) * 100000000 + ({dd}) * 1000000 + {hms})"

    time_floor = (
        f"CASE WHEN {hour} > 23 THEN 235959 WHEN {minute} > 59 THEN {hour} * 10000 + 5959"
        f" WHEN {second} > 59 THEN {hour} * 10000 + {minute} * 100 + 59 ELSE {t} END"
    )
    end = "235959"
    return (
        f"CASE WHEN {month} = 0 THEN {packed(f'{year} - 1', '12', '31', end)}"
        f" WHEN {month} > 12 THEN {packed(year, '12', '31', end)}"
        f" WHEN {day} = 0 AND {month} = 1 THEN {packed(f'{year} - 1', '12', '31', end)}"
        f" WHEN {day} = 0 THEN"
        f" {packed(year, f'{month} - 1', days_in(year, f'{month} - 1'), end)}"
        f" WHEN {day} > {days_in(year, month)} THEN"
        f" {packed(year, month, days_in(year, month), end)}"
        f" ELSE {packed(year, month, day, time_floor)} END"
    )


def _packed_stamp_portable(date: str, time: str, style: QueryStyle, integer: str) -> str:
    """:func:`packed_stamp_sql` in SQL every engine runs: ``mod``, ``LEAST``, ``GREATEST``,
    ``CASE`` and the engine's integer quotient; February's length by the Gregorian rule."""
    d = f"LEAST(GREATEST(coalesce(CAST({date} AS {integer}), 0), 0), 9999999)"
    t = f"LEAST(GREATEST(coalesce(CAST({time} AS {integer}), 0), 0), 999999)"
    year, month, day = (
        f"({style.div(d, 10000)})",
        f"mod({style.div(d, 100)}, 100)",
        f"mod({d}, 100)",
    )
    hour, minute = f"({style.div(t, 10000)})", f"mod({style.div(t, 100)}, 100)"
    second = f"mod({t}, 100)"

    def days_in(y: str, m: str) -> str:
        full = f"(1900 + {y})"
        leap = f"mod({full}, 4) = 0 AND (mod({full}, 100) <> 0 OR mod({full}, 400) = 0)"
        return (
            f"(CASE WHEN ({m}) = 2 THEN (CASE WHEN {leap} THEN 29 ELSE 28 END)"
            f" WHEN ({m}) IN (4, 6, 9, 11) THEN 30 ELSE 31 END)"
        )

    def packed(y: str, m: str, dd: str, hms: str) -> str:
        return f"(({y}) * 10000000000 + ({m}) * 100000000 + ({dd}) * 1000000 + {hms})"

    time_floor = (
        f"CASE WHEN {hour} > 23 THEN 235959 WHEN {minute} > 59 THEN {hour} * 10000 + 5959"
        f" WHEN {second} > 59 THEN {hour} * 10000 + {minute} * 100 + 59 ELSE {t} END"
    )
    end = "235959"
    return (
        f"CASE WHEN {month} = 0 THEN {packed(f'{year} - 1', '12', '31', end)}"
        f" WHEN {month} > 12 THEN {packed(year, '12', '31', end)}"
        f" WHEN {day} = 0 AND {month} = 1 THEN {packed(f'{year} - 1', '12', '31', end)}"
        f" WHEN {day} = 0 THEN"
        f" {packed(year, f'{month} - 1', days_in(year, f'{month} - 1'), end)}"
        f" WHEN {day} > {days_in(year, month)} THEN"
        f" {packed(year, month, days_in(year, month), end)}"
        f" ELSE {packed(year, month, day, time_floor)} END"
    )


def decode_cursor(table: pa.Table, mapping: TableMapping) -> pa.Table:
    """``table`` with ``_cursor_ts`` in place of a composite cursor's raw columns.

    A table that already has ``_cursor_ts`` (a timestamp cursor) is returned as it is.
    """
    names = table.column_names
    if CURSOR_ALIAS in names or CURSOR_DATE_ALIAS not in names:
        return table
    frame = pl.from_arrow(table.select([CURSOR_DATE_ALIAS, CURSOR_TIME_ALIAS]))
    assert isinstance(frame, pl.DataFrame)
    decoded = decode_stamps(
        frame.get_column(CURSOR_DATE_ALIAS), frame.get_column(CURSOR_TIME_ALIAS)
    )
    kept = table.drop_columns([CURSOR_DATE_ALIAS, CURSOR_TIME_ALIAS])
    return kept.append_column(
        pa.field(CURSOR_ALIAS, pa.timestamp("us")), decoded.to_arrow().cast(pa.timestamp("us"))
    )


def rows_stamped_before(table: pa.Table, mapping: TableMapping, bound: datetime) -> pa.Table:
    """The rows of a source batch whose change stamp is below ``bound``, in their order
    (a row without a stamp is kept).

    >>> from datetime import datetime
    >>> m = TableMapping.model_validate({"table": "T", "entity": "e", "key": ["K"],
    ...     "cursor": "TS", "columns": [{"source": "K", "target": "k", "type": "text"}]})
    >>> rows = pa.table({"K": ["a", "b", "c"], CURSOR_ALIAS: pa.array(
    ...     [datetime(2026, 1, 1, 12, 0, 4), datetime(2026, 1, 1, 12, 0, 5), None],
    ...     pa.timestamp("us"))})
    >>> rows_stamped_before(rows, m, datetime(2026, 1, 1, 12, 0, 5)).column("K").to_pylist()
    ['a', 'c']
    """
    stamps = pl.from_arrow(decode_cursor(table, mapping).select([CURSOR_ALIAS]))
    assert isinstance(stamps, pl.DataFrame)
    keep = stamps.get_column(CURSOR_ALIAS).lt(bound).fill_null(True)
    return table.filter(keep.to_arrow())


def decode_packed_many(values: list[int | None]) -> list[datetime | None]:
    """:func:`decode_packed` of many values in one Polars pass (verification reads
    thousands of row versions at a time).

    >>> decode_packed_many([1251124_070509, None])
    [datetime.datetime(2025, 11, 24, 7, 5, 9), None]
    """
    packed = pl.Series("v", values, dtype=pl.Int64)
    decoded = decode_stamps(packed // 1_000_000, packed % 1_000_000)
    return [None if v is None else d for v, d in zip(values, decoded.to_list(), strict=True)]


def decode_packed(value: int | None) -> datetime | None:
    """Decode ``CYYMMDD * 1_000_000 + HHMMSS`` (the high-watermark query's one value).

    >>> decode_packed(1251124_070509)
    datetime.datetime(2025, 11, 24, 7, 5, 9)
    """
    if value is None:
        return None
    decoded: datetime = decode_stamps(
        pl.Series([value // 1_000_000], dtype=pl.Int64),
        pl.Series([value % 1_000_000], dtype=pl.Int64),
    ).item()
    return decoded
