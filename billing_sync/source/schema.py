"""The Arrow schema of what is read from a source: the mapped source columns as fetched,
and the cursor (``_cursor_ts``, or a composite cursor's raw ``_cursor_date, _cursor_time``).

Every read of a source table (change query, lookback region, snapshot chunk, rows by key)
asks for its result in one of these schemas, so the types never depend on the driver.
"""

from __future__ import annotations

import pyarrow as pa

from billing_sync.column_types import arrow_type, sql_arrow_type
from billing_sync.config import ColumnSpec, TableMapping

CURSOR_ALIAS = "_cursor_ts"
CURSOR_DATE_ALIAS = "_cursor_date"
CURSOR_TIME_ALIAS = "_cursor_time"

CONVERTER_INPUT: dict[str, pa.DataType] = {
    "trim": pa.string(),
    "lookup": pa.string(),
    "cyymmdd": pa.int64(),
    "hhmmss": pa.int64(),
    "cyymmdd_hhmmss": pa.int64(),
    "implied_decimal": pa.int64(),
    "float_money": pa.float64(),
    "ebcdic": pa.binary(),
    "latin1": pa.binary(),
}


def is_composite(mapping: TableMapping) -> bool:
    return mapping.cursor_format == "cyymmdd_hhmmss"


def cursor_fields(mapping: TableMapping) -> list[pa.Field]:
    """The Arrow fields :func:`~billing_sync.capture.cursor.cursor_select` fetches."""
    if is_composite(mapping):
        return [pa.field(CURSOR_DATE_ALIAS, pa.int64()), pa.field(CURSOR_TIME_ALIAS, pa.int64())]
    return [pa.field(CURSOR_ALIAS, pa.timestamp("us"))]


def input_type(column: ColumnSpec) -> pa.DataType:
    """The Arrow type to fetch the column's source as, when nothing better is known."""
    if column.converter is not None:
        return CONVERTER_INPUT[column.converter.name]
    if column.protection is not None:
        return pa.string()
    if column.type == "timestamp":
        return pa.timestamp("us")  # the biller's wall time; normalize makes it UTC
    return arrow_type(column.type)


def fetch_type(mapping: TableMapping, name: str) -> pa.DataType:
    """The Arrow type source column ``name`` is fetched as: its reflected type when known
    (``mapping.source_types``), else what its converter reads, else the target type."""
    reflected = mapping.source_types.get(name)
    if reflected is not None:
        return sql_arrow_type(reflected)
    column = next(c for c in mapping.columns if name in c.source_names)
    return input_type(column)


def source_schema(mapping: TableMapping) -> pa.Schema:
    """The Arrow schema of the change query's result for ``mapping`` (the cursor as
    fetched: ``_cursor_ts``, or a composite cursor's raw ``_cursor_date, _cursor_time``)."""
    fields = [pa.field(name, fetch_type(mapping, name)) for name in mapping.source_columns]
    return pa.schema([*fields, *cursor_fields(mapping)])


def region_schema(mapping: TableMapping) -> pa.Schema:
    """The Arrow schema of a lookback region query: key columns and change timestamp."""
    fields = [pa.field(name, fetch_type(mapping, name)) for name in mapping.key]
    return pa.schema([*fields, *cursor_fields(mapping)])
