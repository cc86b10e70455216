"""Snapshot and backfill reads: primary-key ranges in chunks, resumable (DESIGN §4).

A snapshot walks the table in key order, ``batch`` rows at a time, each chunk
committed together with the last key it reached, so a crash resumes from the last
finished chunk. The first load hands over to the tail at the horizon taken when it
started: every row changed before it is in the snapshot (its transaction had
committed), every row changed at or after it is read by the tail.
"""

from __future__ import annotations

from typing import Any

from billing_sync.capture.cursor import cursor_select
from billing_sync.capture.filter_ast import Expr, render
from billing_sync.capture.filter_expr import BadFilter, parse_filter
from billing_sync.capture.select import select_items
from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.source.reflect import type_family
from billing_sync.sql import POSTGRES_STYLE, BoundQuery, QueryStyle, qualified, quote_ident

__all__ = [
    "BadFilter",
    "build_count_query",
    "build_snapshot_query",
    "check_filter",
    "filter_columns",
]


def filter_columns(catalog: SourceCatalog, mapping: TableMapping) -> dict[str, str | None]:
    """The columns a filter on ``mapping`` may name, each with its type family (``None``
    when not reflected): those the mapping reads, except dropped and protected ones."""
    protected = {
        name for column in mapping.columns if column.protect for name in column.source_names
    }
    hidden = {*catalog.drop, *mapping.drop, *protected}
    readable = [
        *mapping.source_columns, *mapping.cursor_columns,
        *([mapping.cursor_fallback] if mapping.cursor_fallback else []),
        *([mapping.soft_delete.column] if mapping.soft_delete else []),
    ]  # fmt: skip
    return {
        name: type_family(mapping.source_types[name]) if name in mapping.source_types else None
        for name in dict.fromkeys(readable)
        if name not in hidden
    }


def check_filter(where: str | None, catalog: SourceCatalog, mapping: TableMapping) -> Expr | None:
    """Parse an operator's filter for ``mapping`` (see :mod:`billing_sync.capture.filter_expr`).

    Every filter goes through here: the CLI's ``--where``, a backfill job's run config,
    and the filter a running backfill kept in the warehouse (parsed again on resume).
    """
    if where is None or not where.strip():
        return None
    label = f"{catalog.system}.{mapping.table}"
    return parse_filter(where, label=label, columns=filter_columns(catalog, mapping))


def build_snapshot_query(
    mapping: TableMapping,
    *,
    schema: str,
    after_key: tuple[Any, ...] | None,
    limit: int,
    where: Expr | None = None,
    style: QueryStyle = POSTGRES_STYLE,
) -> BoundQuery:
    """The next chunk of a snapshot: keys after ``after_key``, in key order."""
    key = [quote_ident(name) for name in mapping.key]
    selected = select_items(mapping, mapping.source_columns, style)
    params: dict[str, Any] = {}
    conditions = []
    if after_key is not None:
        names = [f"after_k{i}" for i in range(len(key))]
        params.update(zip(names, after_key, strict=True))
        conditions.append(style.greater_than(key, names))
    if where is not None:
        text, values = render(where, style=style)
        conditions.append(text)
        params.update(values)
    text = (
        f"SELECT {', '.join(selected)}, {cursor_select(mapping)}"
        f" FROM {qualified(schema, mapping.table)}"
        + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
        + f" ORDER BY {', '.join(key)}{style.limit(limit, params)}"
    )
    return BoundQuery(text=text, params=params)


def build_count_query(
    mapping: TableMapping,
    *,
    schema: str,
    where: Expr | None = None,
    style: QueryStyle = POSTGRES_STYLE,
) -> BoundQuery:
    text, params = render(where, style=style) if where is not None else ("", {})
    filtered = f" WHERE {text}" if text else ""
    return BoundQuery(f"SELECT count(*) FROM {qualified(schema, mapping.table)}{filtered}", params)
