"""Source queries from one description, compiled by each engine's SQLAlchemy dialect.

Quoting, paging (``LIMIT`` / ``FETCH FIRST``), bind styles and row-value comparisons
are the dialect's. Where an engine cannot compare row values through the cursor index
(``adapter.row_values`` false: MySQL/MariaDB, where EXPLAIN shows a full scan; Oracle
and Db2, which accept row values only for equality), the comparison is expanded into
``a >= :a AND (a > :a OR (a = :a AND b > :b))``: the leading range predicate positions
the index scan, the rest is exact.

Bind names are fixed, so callers and tests can rely on them: ``wm_c<i>`` (watermark
cursor columns), ``wm_k<i>`` (watermark key), ``horizon``, ``after_k<i>``, ``lo<i>``,
``hi<i>``; the row limit ``batch_rows`` is written into the text.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from billing_sync.source.engines.base import EngineAdapter
from billing_sync.sql import BoundQuery


@dataclass(frozen=True)
class SourceTable:
    """What a query needs to know about a source table: names only, from the catalog."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    cursor: tuple[str, ...] = ()  # change stamp column(s): one timestamp, or CYYMMDD + HHMMSS
    cursor_fallback: str | None = None  # COALESCE(cursor, fallback) for NULL stamps
    schema: str | None = None

    def table(self, *extra: str) -> sa.TableClause:
        names = dict.fromkeys([*self.columns, *self.key, *self.cursor, *extra])
        if self.cursor_fallback:
            names[self.cursor_fallback] = None
        return sa.table(self.name, *(sa.column(name) for name in names), schema=self.schema)


_Op = Callable[[ColumnElement[Any], ColumnElement[Any]], ColumnElement[bool]]
_OPERATORS: dict[str, _Op] = {">": operator.gt, ">=": operator.ge, "<": operator.lt}


def compare(
    columns: Sequence[ColumnElement[Any]],
    comparison: str,
    values: Sequence[ColumnElement[Any]],
    *,
    row_values: bool,
) -> ColumnElement[bool]:
    """``columns <operator> values`` in tuple order (``>``, ``>=`` or ``<``)."""
    op = _OPERATORS[comparison]
    if len(columns) == 1:
        return op(columns[0], values[0])
    if row_values:
        return op(sa.tuple_(*columns), sa.tuple_(*values))
    strict = _OPERATORS[comparison.rstrip("=")]
    expanded: ColumnElement[bool] = op(columns[-1], values[-1])
    for column, value in zip(columns[-2::-1], values[-2::-1], strict=True):
        expanded = sa.or_(strict(column, value), sa.and_(column == value, expanded))
    leading = columns[0] >= values[0] if comparison.startswith(">") else columns[0] <= values[0]
    return sa.and_(leading, expanded)


def _cursor_columns(source: SourceTable, table: sa.TableClause) -> list[ColumnElement[Any]]:
    columns: list[ColumnElement[Any]] = [table.c[name] for name in source.cursor]
    if source.cursor_fallback:
        columns[0] = sa.func.coalesce(columns[0], table.c[source.cursor_fallback])
    return columns


def _limit(batch_rows: int) -> int:
    # How a dialect writes the limit (a parameter or a literal) is the dialect's choice.
    return int(batch_rows)


def _binds(prefix: str, count: int) -> list[ColumnElement[Any]]:
    return [sa.bindparam(f"{prefix}{i}") for i in range(count)]


def keyset_read(
    adapter: EngineAdapter,
    source: SourceTable,
    table: sa.TableClause,
    *,
    order: Sequence[ColumnElement[Any]],
    after: Sequence[ColumnElement[Any]] | None,
    below: tuple[Sequence[ColumnElement[Any]], Sequence[ColumnElement[Any]]] | None = None,
    batch_rows: int,
) -> sa.Select[Any]:
    """The one description of a source read: the table's columns in ``order``, past the
    position ``after`` (bind values, one per ``order`` column; None: from the start),
    with ``below[0] < below[1]`` when given, at most ``batch_rows``. The change query and
    the snapshot chunk are this read over different orders (see below); ``order`` and
    ``below`` are columns of ``table`` (``source.table()``)."""
    query = sa.select(*(table.c[name] for name in source.columns))
    row_values = adapter.row_values
    if after is not None:
        query = query.where(compare(order, ">", after, row_values=row_values))
    if below is not None:
        query = query.where(compare(below[0], "<", below[1], row_values=row_values))
    return query.order_by(*order).limit(_limit(batch_rows))


def change_query(adapter: EngineAdapter, source: SourceTable, *, batch_rows: int) -> sa.Select[Any]:
    """Rows past the watermark ``(cursor..., key...) > (wm_c..., wm_k...)`` and below
    ``horizon``, in cursor order, at most ``batch_rows``."""
    table = source.table()
    cursor = _cursor_columns(source, table)
    key = [table.c[name] for name in source.key]
    return keyset_read(
        adapter, source, table, order=[*cursor, *key],
        after=[*_binds("wm_c", len(cursor)), *_binds("wm_k", len(key))],
        below=(cursor, _binds("horizon_c", len(cursor))), batch_rows=batch_rows,
    )  # fmt: skip


def snapshot_chunk(
    adapter: EngineAdapter, source: SourceTable, *, first: bool, batch_rows: int
) -> sa.Select[Any]:
    """The next chunk of a snapshot in key order: keys after ``after_k...`` (every key
    for the first chunk), at most ``batch_rows``."""
    table = source.table()
    key = [table.c[name] for name in source.key]
    after = None if first else _binds("after_k", len(key))
    return keyset_read(adapter, source, table, order=key, after=after, batch_rows=batch_rows)


def key_range_hash(
    adapter: EngineAdapter,
    source: SourceTable,
    hashed: Sequence[tuple[str, str]],
    *,
    lo: bool = True,
    hi: bool = True,
) -> sa.Select[Any]:
    """``count(*)`` and the sum of row hashes (:meth:`EngineAdapter.row_hash` over the
    ``(column, catalog type)`` pairs ``hashed``) for keys ``lo... <= key < hi...``;
    ``lo``/``hi`` false leaves that end open."""
    table = source.table(*(name for name, _ in hashed))
    key = [table.c[name] for name in source.key]
    # The MD5 once per row in a derived table; the outer query turns its hex into the
    # integer (on Db2 that takes 15 digit lookups, which must not each re-hash the row).
    digest = adapter.row_hash_hex([(table.c[name], kind) for name, kind in hashed])
    rows = sa.select(digest.label("_h")).select_from(table)
    if lo:
        rows = rows.where(compare(key, ">=", _binds("lo", len(key)), row_values=adapter.row_values))
    if hi:
        rows = rows.where(compare(key, "<", _binds("hi", len(key)), row_values=adapter.row_values))
    inner = rows.subquery("r")
    total = sa.func.coalesce(sa.func.sum(adapter.hex_to_int(inner.c._h)), sa.literal_column("0"))
    return sa.select(sa.func.count().label("n"), total.label("hash_sum"))


def statement(adapter: EngineAdapter, query: BoundQuery) -> sa.TextClause:
    """A capture, snapshot or reconcile builder's query (written in ``adapter.style``)
    as the statement an engine with named binds runs: SQLAlchemy's ``text()`` construct,
    whose ``:name`` binds the engine's dialect compiles into its driver's bind style
    (python-oracledb: ``:name``; ibm_db and pyodbc: ``?``, repeated in order). The values
    are ``query.params``, passed when it runs."""
    if not adapter.named_params:
        raise ValueError(f"{adapter.name} sessions run the pyformat text as it is")
    return sa.text(query.text)


def compiled_text(adapter: EngineAdapter, query: sa.ClauseElement) -> str:
    """The SQL text ``query`` sends to ``adapter``'s engine (the SQL-text tests pin it)."""
    return str(query.compile(dialect=adapter.dialect))
