"""The catalog's column types and what each becomes in Arrow, PostgreSQL and DuckDB."""

from __future__ import annotations

import re

import pyarrow as pa

_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")

_ARROW: dict[str, pa.DataType] = {
    "text": pa.string(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "boolean": pa.bool_(),
}

_SQL = {
    "text": "text",
    "integer": "integer",
    "bigint": "bigint",
    "date": "date",
    "timestamp": "timestamp(6)",
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
    ('numeric(12,2)', 'timestamp(6)')
    """
    match = _DECIMAL.match(catalog_type)
    if match:
        return f"numeric({match[1]},{match[2]})"
    return _SQL[catalog_type]
