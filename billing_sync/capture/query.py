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


@dataclass(frozen=True)
class QueryStyle:
    """How a database spells the parts of a change query that differ.

    ``row_values``: whether ``(a, b) > (x, y)`` compares row values (PostgreSQL does;
    Oracle and DB2 do not, so the comparison is expanded into nested ``OR``s).
    """

    row_values: bool = True
    named_params: bool = False  # ``:name`` (Oracle, DB2) instead of ``%(name)s``
    fetch_first: bool = False  # ``FETCH FIRST n ROWS ONLY`` instead of ``LIMIT n``

    def param(self, name: str) -> str:
        return f":{name}" if self.named_params else f"%({name})s"

    def limit(self, name: str) -> str:
        placeholder = self.param(name)
        return (
            f" FETCH FIRST {placeholder} ROWS ONLY" if self.fetch_first else f" LIMIT {placeholder}"
        )

    def greater_than(self, columns: list[str], params: list[str]) -> str:
        """``columns > params`` as a row value comparison, or its expansion."""
        placeholders = [self.param(name) for name in params]
        if self.row_values:
            return f"({', '.join(columns)}) > ({', '.join(placeholders)})"
        # Nested form keeps a range predicate on the leading (indexed) column.
        expanded = f"{columns[-1]} > {placeholders[-1]}"
        for column, placeholder in zip(columns[-2::-1], placeholders[-2::-1], strict=True):
            expanded = f"{column} > {placeholder} OR ({column} = {placeholder} AND ({expanded}))"
        return f"{columns[0]} >= {placeholders[0]} AND ({expanded})"


POSTGRES_STYLE = QueryStyle()


def build_change_query(
    mapping: TableMapping, *, schema: str, window: Window, style: QueryStyle = POSTGRES_STYLE
) -> BoundQuery:
    """The bounded, index-friendly change query for one window.

    ``ORDER BY`` matches the cursor index ``(change_ts, key...)`` so the database can
    walk the index from the cursor and stop after ``LIMIT`` rows. A cursor without key
    values (the hand-over point of a snapshot) means "from this timestamp on".
    """
    change_ts = change_ts_expression(mapping)
    key = [quote_ident(name) for name in mapping.key]
    selected = [quote_ident(column.source) for column in mapping.columns]
    params: dict[str, Any] = {"horizon": window.horizon, "limit": window.limit}
    conditions = []
    if window.after is not None and not window.after.key:
        params["cursor_ts"] = window.after.change_ts
        conditions.append(f"{change_ts} >= {style.param('cursor_ts')}")
    elif window.after is not None:
        names = ["cursor_ts"] + [f"cursor_k{i}" for i in range(len(key))]
        params.update(zip(names, window.after.as_row(), strict=True))
        conditions.append(style.greater_than([change_ts, *key], names))
    conditions.append(f"{change_ts} < {style.param('horizon')}")
    text = (
        f"SELECT {', '.join(selected)}, {change_ts} AS {quote_ident(CURSOR_ALIAS)}"
        f" FROM {qualified(schema, mapping.table)}"
        f" WHERE {' AND '.join(conditions)}"
        f" ORDER BY {change_ts}, {', '.join(key)}"
        f"{style.limit('limit')}"
    )
    return BoundQuery(text=text, params=params)


def build_region_keys_query(
    mapping: TableMapping, *, schema: str, since: Any, until: Any, limit: int
) -> BoundQuery:
    """Keys and change timestamps in ``[since, until)``: an index-only read for late rows."""
    change_ts = change_ts_expression(mapping)
    key = ", ".join(quote_ident(name) for name in mapping.key)
    return BoundQuery(
        text=(
            f"SELECT {key}, {change_ts} AS {quote_ident(CURSOR_ALIAS)}"
            f" FROM {qualified(schema, mapping.table)}"
            f" WHERE {change_ts} >= %(since)s AND {change_ts} < %(until)s"
            f" ORDER BY {change_ts}, {key} LIMIT %(limit)s"
        ),
        params={"since": since, "until": until, "limit": limit},
    )


def build_rows_by_key_query(
    mapping: TableMapping, *, schema: str, keys: list[tuple[Any, ...]]
) -> BoundQuery:
    """Full rows (as the change query selects them) for the given source keys."""
    change_ts = change_ts_expression(mapping)
    selected = [quote_ident(column.source) for column in mapping.columns]
    params: dict[str, Any] = {}
    tuples = []
    for row, values in enumerate(keys):
        names = [f"k{i}_{row}" for i in range(len(values))]
        params.update(zip(names, values, strict=True))
        tuples.append("(" + ", ".join(f"%({name})s" for name in names) + ")")
    key = ", ".join(quote_ident(name) for name in mapping.key)
    return BoundQuery(
        text=(
            f"SELECT {', '.join(selected)}, {change_ts} AS {quote_ident(CURSOR_ALIAS)}"
            f" FROM {qualified(schema, mapping.table)}"
            f" WHERE ({key}) IN ({', '.join(tuples) or '(NULL)'})"
        ),
        params=params,
    )


def build_high_watermark_query(mapping: TableMapping, *, schema: str) -> str:
    """The newest change timestamp in the table (reads one index entry)."""
    change_ts = change_ts_expression(mapping)
    return f"SELECT max({change_ts}) FROM {qualified(schema, mapping.table)}"
