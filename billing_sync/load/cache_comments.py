"""The data dictionary's comments on the DuckDB cache's tables and columns."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from billing_sync.dictionary import Comment
from billing_sync.entities import ENTITY_SCHEMA


def apply_comments(con: duckdb.DuckDBPyConnection, wanted: Sequence[Comment]) -> None:
    """Run the ``COMMENT ON`` statements whose text the file does not hold yet."""
    if not wanted:
        return
    present: dict[tuple[str, str | None], str | None] = {
        (table, None): comment
        for table, comment in con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = ?",
            [ENTITY_SCHEMA],
        ).fetchall()
    }
    for table, column, comment in con.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = ?",
        [ENTITY_SCHEMA],
    ).fetchall():
        present[(table, column)] = comment
    for remark in wanted:
        key = (remark.entity, remark.column)
        if key in present and present[key] != remark.text:
            con.execute(remark.sql)
