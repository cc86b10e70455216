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
from billing_sync.config import TableMapping
from billing_sync.sql import BoundQuery, qualified, quote_ident

FORBIDDEN_IN_WHERE = (";", "--", "/*")


class BadFilter(ValueError):
    """A backfill ``--where`` filter that is not a single boolean expression."""


def check_filter(where: str | None) -> str | None:
    """Accept an operator's filter: one expression, no statement separators or comments.

    It runs in a read-only session, so it cannot write; this only keeps it to one clause.

    >>> check_filter('"SITE_ID" = \\'001\\'')
    '"SITE_ID" = \\'001\\''
    """
    if where is None or not where.strip():
        return None
    if any(token in where for token in FORBIDDEN_IN_WHERE):
        raise BadFilter(f"the filter {where!r} must be one expression without ';' or comments")
    return where.strip()


def build_snapshot_query(
    mapping: TableMapping,
    *,
    schema: str,
    after_key: tuple[Any, ...] | None,
    limit: int,
    where: str | None = None,
) -> BoundQuery:
    """The next chunk of a snapshot: keys after ``after_key``, in key order."""
    key = [quote_ident(name) for name in mapping.key]
    selected = [quote_ident(name) for name in mapping.source_columns]
    params: dict[str, Any] = {"limit": limit}
    conditions = []
    if after_key is not None:
        names = [f"after_k{i}" for i in range(len(key))]
        params.update(zip(names, after_key, strict=True))
        placeholders = ", ".join(f"%({name})s" for name in names)
        conditions.append(f"({', '.join(key)}) > ({placeholders})")
    if where:
        conditions.append(f"({where})")
    text = (
        f"SELECT {', '.join(selected)}, {cursor_select(mapping)}"
        f" FROM {qualified(schema, mapping.table)}"
        + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
        + f" ORDER BY {', '.join(key)} LIMIT %(limit)s"
    )
    return BoundQuery(text=text, params=params)


def build_count_query(mapping: TableMapping, *, schema: str, where: str | None = None) -> str:
    filtered = f" WHERE ({where})" if where else ""
    return f"SELECT count(*) FROM {qualified(schema, mapping.table)}{filtered}"
