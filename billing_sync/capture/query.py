"""Pure builders of the change query; the SQL text is asserted in unit tests.

Names come only from the catalog and are quoted as identifiers; every value is a
bind parameter (``%(name)s``), so nothing read from a row ever becomes SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing_sync.capture.window import Window
from billing_sync.config import TableMapping

CURSOR_ALIAS = "_cursor_ts"


def quote_ident(name: str) -> str:
    """Quote ``name`` as an SQL identifier.

    >>> quote_ident('ACCOUNT')
    '"ACCOUNT"'
    >>> quote_ident('we"ird')
    '"we""ird"'
    """
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def change_ts_expression(mapping: TableMapping) -> str:
    """The change timestamp: the cursor column, or the creation column when it is NULL."""
    cursor = quote_ident(mapping.cursor)
    if mapping.cursor_fallback is None:
        return cursor
    return f"COALESCE({cursor}, {quote_ident(mapping.cursor_fallback)})"


@dataclass(frozen=True)
class BoundQuery:
    text: str
    params: dict[str, Any]


def build_change_query(mapping: TableMapping, *, schema: str, window: Window) -> BoundQuery:
    """The bounded, index-friendly change query for one window.

    ``ORDER BY`` matches the cursor index ``(change_ts, key...)`` so the database can
    walk the index from the cursor and stop after ``LIMIT`` rows.
    """
    change_ts = change_ts_expression(mapping)
    key = [quote_ident(name) for name in mapping.key]
    selected = [quote_ident(column.source) for column in mapping.columns]
    params: dict[str, Any] = {"horizon": window.horizon, "limit": window.limit}
    conditions = []
    if window.after is not None:
        names = ["cursor_ts"] + [f"cursor_k{i}" for i in range(len(key))]
        params.update(zip(names, window.after.as_row(), strict=True))
        placeholders = ", ".join(f"%({name})s" for name in names)
        conditions.append(f"({change_ts}, {', '.join(key)}) > ({placeholders})")
    conditions.append(f"{change_ts} < %(horizon)s")
    text = (
        f"SELECT {', '.join(selected)}, {change_ts} AS {quote_ident(CURSOR_ALIAS)}"
        f" FROM {qualified(schema, mapping.table)}"
        f" WHERE {' AND '.join(conditions)}"
        f" ORDER BY {change_ts}, {', '.join(key)}"
        " LIMIT %(limit)s"
    )
    return BoundQuery(text=text, params=params)


def build_high_watermark_query(mapping: TableMapping, *, schema: str) -> str:
    """The newest change timestamp in the table (reads one index entry)."""
    change_ts = change_ts_expression(mapping)
    return f"SELECT max({change_ts}) FROM {qualified(schema, mapping.table)}"
