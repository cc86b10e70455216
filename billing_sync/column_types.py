"""The catalog's column types and what each becomes in Arrow, PostgreSQL and DuckDB."""

from __future__ import annotations

import re

import polars as pl
import pyarrow as pa

_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")

_ARROW: dict[str, pa.DataType] = {
    "text": pa.string(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "date": pa.date32(),
    # One time zone in the model (DESIGN §11): an instant, whatever the biller's zone.
    "timestamp": pa.timestamp("us", "UTC"),
    "boolean": pa.bool_(),
}

_SQL = {
    "text": "text",
    "integer": "integer",
    "bigint": "bigint",
    "date": "date",
    "timestamp": "timestamptz",  # microseconds in both engines
    "boolean": "boolean",
}


def arrow_type(catalog_type: str) -> pa.DataType:
    """The Arrow type of a catalog column type.

    >>> arrow_type("decimal(12,2)")
    Decimal128Type(decimal128(12, 2))
    """
    match = _DECIMAL.match(catalog_type)
    if match:
        return pa.decimal128(int(match[1]), int(match[2]))
    return _ARROW[catalog_type]


def sql_type(catalog_type: str) -> str:
    """The column type in both PostgreSQL and DuckDB DDL.

    >>> sql_type("decimal(12,2)"), sql_type("timestamp")
    ('numeric(12,2)', 'timestamptz')
    """
    match = _DECIMAL.match(catalog_type)
    if match:
        return f"numeric({match[1]},{match[2]})"
    return _SQL[catalog_type]


def polars_type(catalog_type: str) -> pl.DataType:
    """The Polars type of a catalog column type.

    >>> polars_type("decimal(12,2)")
    Decimal(precision=12, scale=2)
    """
    match = _DECIMAL.match(catalog_type)
    if match:
        return pl.Decimal(int(match[1]), int(match[2]))
    return {
        "text": pl.Utf8(),
        "integer": pl.Int32(),
        "bigint": pl.Int64(),
        "date": pl.Date(),
        "timestamp": pl.Datetime("us", "UTC"),
        "boolean": pl.Boolean(),
    }[catalog_type]


_SQL_ARROW: dict[str, pa.DataType] = {
    "smallint": pa.int64(),
    "integer": pa.int64(),
    "bigint": pa.int64(),
    "real": pa.float64(),
    "double precision": pa.float64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "bytea": pa.binary(),
    "blob": pa.binary(),
    "raw": pa.binary(),
}
_SQL_NUMERIC = re.compile(r"^(?:numeric|decimal|number)\((\d+),(\d+)\)$")


def sql_arrow_type(source_type: str) -> pa.DataType:
    """The Arrow type to fetch a source column of SQL type ``source_type`` as (the type
    names :mod:`billing_sync.source.reflect` records, lower case).

    >>> sql_arrow_type("numeric(7,0)"), sql_arrow_type("character(10)")
    (Decimal128Type(decimal128(7, 0)), DataType(string))
    """
    name = source_type.lower()
    match = _SQL_NUMERIC.match(name)
    if match:
        return pa.decimal128(max(int(match[1]), 1), int(match[2]))
    if name in ("numeric", "decimal", "number"):
        return pa.decimal128(38, 10)
    if name.startswith("timestamp"):
        return pa.timestamp("us")
    return _SQL_ARROW.get(name, pa.string())
