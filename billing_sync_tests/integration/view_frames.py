"""Reading the serve views from both engines as comparable Polars frames."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl
import psycopg
from polars.testing import assert_frame_equal

from billing_sync.serve.views import VIEWS, View


def cache_view(con: duckdb.DuckDBPyConnection, view: View) -> pl.DataFrame:
    frame = con.sql(f"SELECT * FROM {view.qualified}").pl()
    assert isinstance(frame, pl.DataFrame)
    return frame


# PostgreSQL's type of each column, as the Polars type DuckDB's answer has.
_PG_TYPES: dict[str, pl.DataType] = {
    "text": pl.String(),
    "int8": pl.Int64(),
    "int4": pl.Int32(),
    "date": pl.Date(),
    "bool": pl.Boolean(),
    "timestamp": pl.Datetime("us"),
}


def _polars_type(conn: psycopg.Connection[Any], column: psycopg.Column) -> pl.DataType:
    info = conn.adapters.types.get(column.type_code)  # the built-in types psycopg knows
    assert info is not None, column
    if info.name == "numeric":
        assert column.precision is not None and column.scale is not None, column
        return pl.Decimal(column.precision, column.scale)
    return _PG_TYPES[info.name]


def warehouse_view(conn: psycopg.Connection[Any], view: View, schema: pl.Schema) -> pl.DataFrame:
    """The warehouse's rows; their column names and types must be the cache frame's."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {view.qualified}")
        assert cur.description is not None
        types = {column.name: _polars_type(conn, column) for column in cur.description}
        rows = cur.fetchall()
    assert types == dict(schema), (view.name, types, schema)
    return pl.DataFrame(rows, schema=schema, orient="row")


def assert_views_agree(
    conn: psycopg.Connection[Any], con: duckdb.DuckDBPyConnection
) -> dict[str, int]:
    """Every view answers the same in PostgreSQL and DuckDB; its row counts."""
    counts = {}
    for view in VIEWS:
        cache = cache_view(con, view)
        warehouse = warehouse_view(conn, view, cache.schema)
        order = list(cache.columns)
        assert_frame_equal(
            warehouse.sort(order, nulls_last=True),
            cache.sort(order, nulls_last=True),
            check_exact=True,
        )
        counts[view.name] = cache.height
    return counts
