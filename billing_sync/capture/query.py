"""Pure builders of the change query; the SQL text is asserted in unit tests.

Names come only from the catalog and are quoted as identifiers; every value is a
bind parameter (``%(name)s``, or ``:name`` in the style of an engine whose session runs
the text through its SQLAlchemy dialect: see
:mod:`billing_sync.source.engines.queries`), so nothing read from a row ever becomes SQL
text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing_sync.capture.cursor import (
    change_ts_expression,
    cursor_select,
    cursor_sql_columns,
    cursor_values,
    decode_packed,
)
from billing_sync.capture.select import select_items
from billing_sync.capture.window import Window
from billing_sync.config import TableMapping
from billing_sync.source.reflect import type_family
from billing_sync.source.schema import is_composite
from billing_sync.sql import POSTGRES_STYLE, BoundQuery, QueryStyle, qualified, quote_ident

__all__ = [
    "build_above_horizon_keys_query",
    "build_change_query",
    "build_high_watermark_query",
    "build_region_keys_query",
    "build_rows_by_key_query",
    "change_ts_expression",
    "decode_high_watermark",
]


def _cursor_params(name: str, mapping: TableMapping, value: datetime) -> dict[str, Any]:
    """Bind values of a change timestamp: ``{name: value}``, or for a composite cursor
    ``<base>_date`` and ``<base>_time`` (``base`` is ``name`` less a ``_ts`` suffix)."""
    if not is_composite(mapping):
        return {name: value}
    base = name.removesuffix("_ts")
    names = [f"{base}_date", f"{base}_time"]
    return dict(zip(names, cursor_values(mapping, value), strict=True))


def build_change_query(
    mapping: TableMapping, *, schema: str, window: Window, style: QueryStyle = POSTGRES_STYLE
) -> BoundQuery:
    """The bounded, index-friendly change query for one window.

    ``ORDER BY`` matches the cursor index ``(change_ts, key...)`` (or ``(date, time,
    key...)``) so the database can walk the index from the cursor and stop after
    ``LIMIT`` rows. A cursor without key values (the hand-over point of a snapshot)
    means "from this timestamp on".
    """
    cursor = cursor_sql_columns(mapping)
    key = [quote_ident(name) for name in mapping.key]
    selected = select_items(mapping, mapping.source_columns, style)
    horizon = _cursor_params("horizon", mapping, window.horizon)
    params: dict[str, Any] = {**horizon}
    conditions = []
    if window.after is not None:
        after = _cursor_params("cursor_ts", mapping, window.after.change_ts)
        params.update(after)
        if not window.after.key:
            conditions.append(style.compare(cursor, ">=", list(after)))
        else:
            names = [*after, *(f"cursor_k{i}" for i in range(len(key)))]
            params.update(zip(names[len(after) :], window.after.key, strict=True))
            conditions.append(style.greater_than([*cursor, *key], names))
    conditions.append(style.compare(cursor, "<", list(horizon)))
    text = (
        f"SELECT {', '.join(selected)}, {cursor_select(mapping)}"
        f" FROM {qualified(schema, mapping.table)}"
        f" WHERE {' AND '.join(conditions)}"
        f" ORDER BY {', '.join([*cursor, *key])}"
        f"{style.limit(window.limit, params)}"
    )
    return BoundQuery(text=text, params=params)


def build_region_keys_query(
    mapping: TableMapping,
    *,
    schema: str,
    since: datetime,
    until: datetime,
    limit: int,
    style: QueryStyle = POSTGRES_STYLE,
) -> BoundQuery:
    """Keys and change timestamps in ``[since, until)``: an index-only read for late rows."""
    cursor = cursor_sql_columns(mapping)
    key = [quote_ident(name) for name in mapping.key]
    low = _cursor_params("since", mapping, since)
    high = _cursor_params("until", mapping, until)
    params: dict[str, Any] = {**low, **high}
    return BoundQuery(
        text=(
            f"SELECT {', '.join(select_items(mapping, mapping.key, style))},"
            f" {cursor_select(mapping)}"
            f" FROM {qualified(schema, mapping.table)}"
            f" WHERE {style.compare(cursor, '>=', list(low))}"
            f" AND {style.compare(cursor, '<', list(high))}"
            f" ORDER BY {', '.join([*cursor, *key])}{style.limit(limit, params)}"
        ),
        params=params,
    )


def build_above_horizon_keys_query(
    mapping: TableMapping,
    *,
    schema: str,
    horizon: datetime,
    limit: int,
    style: QueryStyle = POSTGRES_STYLE,
) -> BoundQuery:
    """Keys and change timestamps at or above the ``horizon``, newest first: what the tail
    cannot read yet (an index-only read, backwards, for hot rows)."""
    cursor = cursor_sql_columns(mapping)
    key = [quote_ident(name) for name in mapping.key]
    low = _cursor_params("horizon", mapping, horizon)
    params: dict[str, Any] = {**low}
    order = ", ".join(f"{column} DESC" for column in [*cursor, *key])
    return BoundQuery(
        text=(
            f"SELECT {', '.join(key)}, {cursor_select(mapping)}"
            f" FROM {qualified(schema, mapping.table)}"
            f" WHERE {style.compare(cursor, '>=', list(low))}"
            f" ORDER BY {order}{style.limit(limit, params)}"
        ),
        params=params,
    )


def build_rows_by_key_query(
    mapping: TableMapping,
    *,
    schema: str,
    keys: list[tuple[Any, ...]],
    style: QueryStyle = POSTGRES_STYLE,
) -> BoundQuery:
    """Full rows (as the change query selects them) for the given source keys."""
    selected = select_items(mapping, mapping.source_columns, style)
    params: dict[str, Any] = {}
    tuples = []
    for row, values in enumerate(keys):
        names = [f"k{i}_{row}" for i in range(len(values))]
        params.update(zip(names, values, strict=True))
        tuples.append("(" + ", ".join(style.param(name) for name in names) + ")")
    key = ", ".join(quote_ident(name) for name in mapping.key)
    return BoundQuery(
        text=(
            f"SELECT {', '.join(selected)}, {cursor_select(mapping)}"
            f" FROM {qualified(schema, mapping.table)}"
            f" WHERE ({key}) IN ({', '.join(tuples) or '(NULL)'})"
        ),
        params=params,
    )


def build_high_watermark_query(
    mapping: TableMapping, *, schema: str, style: QueryStyle = POSTGRES_STYLE
) -> str:
    """The newest change in the table (reads one index entry), as one value.

    A composite cursor gives ``CYYMMDD * 1000000 + HHMMSS`` of the last row in index
    order (the expression is in the select list only, so the index still serves the
    order); read it back with :func:`decode_high_watermark`.
    """
    if not is_composite(mapping):
        table = qualified(schema, mapping.table)
        newest = f"max({change_ts_expression(mapping)})"
        if type_family(mapping.source_types.get(mapping.cursor_columns[0], "")) == "timestamptz":
            newest = f"CAST({newest} AS timestamp)"  # the session's wall time, like the cursor
        return f"SELECT {newest} FROM {table}"
    date, time = cursor_sql_columns(mapping)
    limit = " FETCH FIRST 1 ROWS ONLY" if style.fetch_first else " LIMIT 1"  # a constant
    # decimal(18,0): every engine spells it so (MariaDB has no CAST(... AS bigint)), and
    # CYYMMDD * 1000000 does not fit a 32-bit integer.
    return (
        f"SELECT CAST({date} AS decimal(18,0)) * 1000000 + {time}"
        f" FROM {qualified(schema, mapping.table)}"
        f" WHERE {date} IS NOT NULL AND {time} IS NOT NULL"
        f" ORDER BY {date} DESC, {time} DESC{limit}"
    )


def decode_high_watermark(mapping: TableMapping, value: Any) -> datetime | None:
    """The newest change timestamp from :func:`build_high_watermark_query`'s value."""
    if value is None or not is_composite(mapping):
        return value  # type: ignore[no-any-return]
    return decode_packed(int(value))
