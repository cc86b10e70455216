"""Pure SQL builders for key-range hashing (DESIGN §7); the SQL text is asserted in unit tests.

These sides are PostgreSQL's (a PostgreSQL source against the warehouse); a source on
another engine gets its sides from :mod:`.portable` (the engine-neutral row hash of
:mod:`.row_hash`), and the builders below write either side in its ``style``.

Both sides hash a row the same way: every mapped column in catalog order, turned into a
canonical text (``NULL`` as ``\\N``, text right-trimmed and escaped as key components are,
numbers cast to their catalog type, dates and timestamps as numbers), then the change
timestamp and the soft-delete flag, joined with ``|`` and hashed with
``hashtextextended(..., 0)``. The escaping (:func:`billing_sync.keys.component_sql`) keeps
the joined text injective: memo ``a|b`` and name ``c`` no longer hash as memo ``a`` and name
``b|c``, nor a text ``\\N`` as NULL. The two sides:

- the **source** side reads the mapped source columns, ``COALESCE(cursor, fallback)`` and
  the mapping's soft-delete rule;
- the **warehouse** side reads the mapped target columns, ``_source_version`` and
  ``_is_deleted``, only rows of one ``_source_system``, and leaves out rows recorded as hard
  deletes (:data:`HARD_DELETE_TABLE`) whose version has not moved since.

Converters and protection (DESIGN §5) are not all reproducible in SQL on the source:
only columns :func:`hashed_columns` names are hashed (plain, ``trim``,
``implied_decimal``); the rest are left out on both sides and covered by the change stamp,
which any change to the row moves. A composite ``(CYYMMDD, HHMMSS)`` stamp is compared as
one packed integer (:func:`_version_text`). Source keys are made target values in Python
after the fetch (``differ._target_key``); bounds cross sides as bind values.

So a row loaded faithfully hashes equal on both sides, whatever the source column types
(``char(n)`` padding, ``smallint`` vs ``integer``). Ranges are row-value comparisons on the
key, ``(k...) >= (lo...) AND (k...) < (hi...)``, either end open, which the key's index
serves. Names come only from the catalog and are quoted; every value is a bind parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from billing_sync.capture.cursor import cursor_sql_columns, cursor_values, packed_stamp_sql
from billing_sync.column_types import sql_type
from billing_sync.config import ColumnSpec, TableMapping
from billing_sync.entities import ENTITY_SCHEMA, STATE_SCHEMA, entity_columns
from billing_sync.keys import component_sql, encode_key
from billing_sync.source.schema import is_composite
from billing_sync.sql import POSTGRES_STYLE, BoundQuery, QueryStyle, qualified, quote_ident

NULL_TEXT = "\\N"
SEPARATOR = "|"
HARD_DELETE_TABLE = f"{STATE_SCHEMA}.hard_delete"
WAREHOUSE_ALIAS = "t"

HARD_DELETE_DDL = f"""
CREATE TABLE IF NOT EXISTS {HARD_DELETE_TABLE} (
    system text NOT NULL,
    entity text NOT NULL,
    source_table text NOT NULL,
    source_key text NOT NULL,
    source_version timestamp(6) NOT NULL,
    batch_id bigint NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (system, entity, source_key)
)
"""

_DECIMAL = re.compile(r"^decimal\(\d+,\d+\)$")


@dataclass(frozen=True)
class KeyRange:
    """Keys ``lo <= key < hi``; ``None`` leaves that end open."""

    lo: tuple[Any, ...] | None = None
    hi: tuple[Any, ...] | None = None

    def __str__(self) -> str:
        lo = "-inf" if self.lo is None else encode_key(self.lo)
        hi = "+inf" if self.hi is None else encode_key(self.hi)
        return f"[{lo}, {hi})"


EVERYTHING = KeyRange()


def canonical_text(expression: str, catalog_type: str) -> str:
    r"""``expression`` as text that reads the same on both sides, ``NULL`` as ``\N``.

    Independent of session settings (``DateStyle``, ``TimeZone``): dates as days since
    2000-01-01, timestamps as microseconds since 1970 (both much cheaper than ``to_char``);
    ``infinity`` as its own text. Text is right-trimmed (``char(n)`` padding).

    >>> print(canonical_text('"AMOUNT"', "decimal(12,2)"))
    coalesce(CAST(CAST("AMOUNT" AS numeric(12,2)) AS text), '\N')
    """
    if catalog_type == "text":
        # Only text can hold ``|`` or ``\``: numbers, dates and stamps skip the escaping.
        return component_sql(f"rtrim(CAST({expression} AS text))")
    if catalog_type == "date":
        value = f"CAST({expression} AS date)"
        text = (
            f"CASE WHEN isfinite({value}) THEN CAST({value} - DATE '2000-01-01' AS text)"
            f" ELSE CAST({value} AS text) END"
        )
    elif catalog_type == "timestamp":
        value = f"CAST({expression} AS timestamp(6))"
        text = (
            f"CASE WHEN isfinite({value}) THEN"
            f" CAST(CAST(extract(epoch FROM {value}) * 1000000 AS bigint) AS text)"
            f" ELSE CAST({value} AS text) END"
        )
    elif catalog_type in ("integer", "bigint", "boolean") or _DECIMAL.match(catalog_type):
        text = f"CAST(CAST({expression} AS {sql_type(catalog_type)}) AS text)"
    else:  # config.py admits no other type; fail loudly if that changes
        raise ValueError(f"no canonical text for catalog type {catalog_type!r}")
    return f"coalesce({text}, '{NULL_TEXT}')"


def row_hash_expression(parts: Sequence[str]) -> str:
    """A 64-bit hash of canonical text ``parts`` (``hashtextextended``, seed 0)."""
    return f"hashtextextended(concat_ws('{SEPARATOR}', {', '.join(parts)}), 0)"


@dataclass(frozen=True)
class Side:
    """What the builders need to know about one side of a comparison.

    ``key`` are the key column expressions in key order, ``row_hash`` the per-row hash,
    ``filters`` conditions every query of this side carries, ``extra`` columns leaf and
    by-key queries also return, ``params`` the bind parameters of all of these.
    ``key_filters`` are those of ``filters`` that boundary queries keep: boundaries only
    have to be spread evenly, and leaving out a condition on heap columns lets an
    index-only scan serve them. ``style`` is how the side's database spells bind
    parameters and row comparisons (:mod:`.portable` builds the sides of other engines).
    """

    name: str
    table: str
    key: tuple[str, ...]
    row_hash: str
    filters: tuple[str, ...] = ()
    key_filters: tuple[str, ...] | None = None  # None: the same as ``filters``
    extra: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    style: QueryStyle = POSTGRES_STYLE


def hashed_columns(mapping: TableMapping) -> list[ColumnSpec]:
    """The mapped columns whose normalized value SQL on the source reproduces exactly:
    plain columns, ``trim`` (canonical text is right-trimmed anyway) and
    ``implied_decimal``. The others (date and time numbers, floats, lookups, byte
    decoding, protection, constants) are left out on both sides; a change to them
    changes the row's change stamp, which is hashed, so a missed change still shows.
    What verify cannot see is a warehouse value altered in place without a new version.
    """
    return [column for column in mapping.columns if _source_sql(column) is not None]


def _source_sql(column: ColumnSpec) -> str | None:
    if column.is_constant or column.protection is not None or not isinstance(column.source, str):
        return None
    name = column.converter.name if column.converter else None
    expression = quote_ident(column.source)
    if name is None or name == "trim":
        return expression
    if name == "implied_decimal":
        assert column.converter is not None and column.converter.places is not None
        return f"CAST({expression} AS numeric) / {10**column.converter.places}"
    return None


def _version_text(mapping: TableMapping, expression: str, *, source: bool) -> str:
    """The change stamp as canonical text. A composite cursor compares as the packed
    integer ``CYYMMDD * 1000000 + HHMMSS``: the raw columns on the source, the version
    re-encoded on the warehouse; the source side floors a stamp that is not a real
    instant as the sync's decode does (:func:`packed_stamp_sql`)."""
    if not is_composite(mapping):
        return canonical_text(expression, "timestamp")
    if source:
        packed = packed_stamp_sql(*cursor_sql_columns(mapping))
    else:
        packed = f"CAST(to_char({expression}, 'YYYYMMDDHH24MISS') AS bigint) - 19000000000000"
    return f"coalesce(CAST({packed} AS text), '{NULL_TEXT}')"


def source_side(
    mapping: TableMapping, *, schema: str, pending_after: tuple[datetime, tuple[Any, ...]] | None
) -> Side:
    """The source table. ``extra`` is ``_pending``, whether the row is past the watermark
    cursor ``pending_after`` (``(change_ts, key...)``, compared like the change query), so
    the tail has not claimed it yet (every row when there is no watermark), and
    ``_change_ts`` (for a composite cursor, packed: see :func:`_version_text`).
    """
    cursor = cursor_sql_columns(mapping)
    key = tuple(quote_ident(name) for name in mapping.key)
    parts = [canonical_text(_source_sql(c) or "", c.type) for c in hashed_columns(mapping)]
    parts.append(_version_text(mapping, cursor[0], source=True))
    params: dict[str, Any] = {}
    if mapping.soft_delete is not None:
        column = quote_ident(mapping.soft_delete.column)
        parts.append(
            f"CASE WHEN CAST({column} AS text) = ANY(%(soft_delete_values)s) THEN 't' ELSE 'f' END"
        )
        params["soft_delete_values"] = list(mapping.soft_delete.values)
    else:
        parts.append("'f'")
    if pending_after is None:
        pending = "true"
    else:
        values = cursor_values(mapping, pending_after[0])
        names = [f"wm_c{i}" for i in range(len(values))] if is_composite(mapping) else ["wm_ts"]
        params.update(zip(names, values, strict=True))
        if not pending_after[1]:  # a snapshot's hand-over point: from this timestamp on
            pending = _tuple(cursor, ">=", names)
        else:
            keys = [f"wm_k{i}" for i in range(len(key))]
            params.update(zip(keys, pending_after[1], strict=True))
            pending = _tuple([*cursor, *key], ">", [*names, *keys])
    change_ts = packed_stamp_sql(*cursor) if is_composite(mapping) else cursor[0]
    return Side(
        name="source",
        table=qualified(schema, mapping.table),
        key=key,
        row_hash=row_hash_expression(parts),
        extra=(f"{pending} AS _pending", f"{change_ts} AS _change_ts"),
        params=params,
    )


def _tuple(columns: list[str], operator: str, names: list[str]) -> str:
    placeholders = [f"%({name})s" for name in names]
    if len(columns) == 1:
        return f"{columns[0]} {operator} {placeholders[0]}"
    return f"({', '.join(columns)}) {operator} ({', '.join(placeholders)})"


def hard_delete_exclusion(entity_param: str = "entity") -> str:
    """Rows flagged by a recorded hard delete, and not rewritten since, are left out."""
    t = WAREHOUSE_ALIAS
    return (
        f"NOT ({t}._is_deleted AND EXISTS (SELECT 1 FROM {HARD_DELETE_TABLE} AS h"
        f" WHERE h.system = {t}._source_system AND h.entity = %({entity_param})s"
        f" AND h.source_key = {t}._source_key AND h.source_version = {t}._source_version))"
    )


def warehouse_side(mapping: TableMapping, *, system: str, timezone: str = "UTC") -> Side:
    """The entity table in the warehouse, rows of ``system`` that are not recorded hard
    deletes. ``extra`` is ``_source_key, _source_version``.

    A timestamp is hashed as the biller's wall time in ``timezone`` (the catalog's): the
    warehouse holds the instant, the source its local time, and ``AT TIME ZONE`` gives
    that back whatever the session's zone."""
    t = WAREHOUSE_ALIAS
    key = tuple(f"{t}.{quote_ident(name)}" for name in mapping.target_key)
    zone = "'" + timezone.replace("'", "''") + "'"
    parts = [
        canonical_text(
            f"({t}.{quote_ident(c.target)} AT TIME ZONE {zone})"
            if c.type == "timestamp"
            else f"{t}.{quote_ident(c.target)}",
            c.type,
        )
        for c in hashed_columns(mapping)
    ]
    parts.append(_version_text(mapping, f"{t}._source_version", source=False))
    parts.append(f"CASE WHEN {t}._is_deleted THEN 't' ELSE 'f' END")
    return Side(
        name="warehouse",
        table=f"{qualified(ENTITY_SCHEMA, mapping.entity)} AS {t}",
        key=key,
        row_hash=row_hash_expression(parts),
        filters=(f"{t}._source_system = %(system)s", hard_delete_exclusion()),
        key_filters=(f"{t}._source_system = %(system)s",),
        extra=(f"{t}._source_key", f"{t}._source_version"),
        params={"system": system, "entity": mapping.entity},
    )


def keys_only(side: Side, mapping: TableMapping) -> Side:
    """``side`` hashing each row's key only: its ranges compare which keys exist, not what
    the rows hold (hard deletes and missing rows, not stale ones). Every column such a
    query reads on the source is in the key's index, so PostgreSQL can answer it with an
    index-only scan, without reading the table. ``ValueError`` when a key column's value
    cannot be reproduced in SQL on the source (a converter other than ``trim``)."""
    plain = {column.source for column in hashed_columns(mapping)}
    unhashable = [name for name in mapping.key if name not in plain]
    if unhashable:
        raise ValueError(
            f"{mapping.table}: key columns {unhashable} have converters SQL on the source"
            " cannot reproduce: compare whole rows (verify) instead of keys"
        )
    types = [mapping.column(name).type for name in mapping.key]
    parts = [canonical_text(expr, kind) for expr, kind in zip(side.key, types, strict=True)]
    return replace(side, row_hash=row_hash_expression(parts))


def warehouse_key_index_name(mapping: TableMapping) -> str:
    return f"{mapping.entity}_{'_'.join(mapping.target_key)}_vx"[:63]


def warehouse_key_index(mapping: TableMapping) -> str:
    """The index the warehouse side's ranges need: ``(_source_system, key...)``."""
    columns = ", ".join(["_source_system", *(quote_ident(name) for name in mapping.target_key)])
    return (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote_ident(warehouse_key_index_name(mapping))}"
        f" ON {qualified(ENTITY_SCHEMA, mapping.entity)} ({columns})"
    )


def _common_prefix(key_range: KeyRange) -> int:
    lo, hi = key_range.lo, key_range.hi
    if lo is None or hi is None:
        return 0
    shared = 0
    for low, high in zip(lo[:-1], hi[:-1], strict=True):
        if low != high:
            break
        shared += 1
    return shared


def _range_conditions(
    side: Side, key_range: KeyRange, *, keys_only: bool = False
) -> tuple[list[str], dict[str, Any]]:
    """The side's filters and ``lo <= key < hi`` as row comparisons.

    Key columns both bounds share are written as equalities first, and a single remaining
    column as plain comparisons: a B-tree positions a scan on the leading member of a row
    comparison only, so ``(site, no) >= ('003', 5)`` alone would start at the first row of
    site 003, and every segment of a large site would scan the site from its beginning.
    """
    filters = side.key_filters if keys_only and side.key_filters is not None else side.filters
    conditions = list(filters)
    params = dict(side.params)
    shared = _common_prefix(key_range)
    for i in range(shared):
        params[f"lo{i}"] = key_range.lo[i]  # type: ignore[index]
        conditions.append(f"{side.key[i]} = {side.style.param(f'lo{i}')}")
    rest = list(side.key[shared:])
    for bound, values, op in (("lo", key_range.lo, ">="), ("hi", key_range.hi, "<")):
        if values is None:
            continue
        names = [f"{bound}{i}" for i in range(shared, len(side.key))]
        params.update(zip(names, values[shared:], strict=True))
        # Row values where the engine's index serves them, else the expanded OR form.
        conditions.append(side.style.compare(rest, op, names))
    return conditions, params


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _alias(side: Side, name: str) -> str:
    """A column alias of ours: quoted for Oracle and Db2 (named binds), whose unquoted
    identifiers must begin with a letter; bare on PostgreSQL and MariaDB, as before."""
    return quote_ident(name) if side.style.named_params else name


def build_range_aggregate(side: Side, key_range: KeyRange) -> BoundQuery:
    """``count(*)`` and the sum of row hashes over ``key_range``."""
    conditions, params = _range_conditions(side, key_range)
    text = (
        f"SELECT count(*), coalesce(sum({side.row_hash}), 0) FROM {side.table}{_where(conditions)}"
    )
    return BoundQuery(text, params)


def build_boundaries(side: Side, key_range: KeyRange, *, every: int) -> BoundQuery:
    """Every ``every``-th key of ``key_range`` in key order, from the ``every + 1``-th on:
    the lower bounds of the sub-ranges after the first, each about ``every`` rows."""
    if every < 1:
        raise ValueError("every must be at least 1")
    conditions, params = _range_conditions(side, key_range, keys_only=True)
    params["every"] = every
    aliases = [_alias(side, f"_k{i}") for i in range(len(side.key))]
    inner = ", ".join(f"{expr} AS {alias}" for expr, alias in zip(side.key, aliases, strict=True))
    rn = f"s.{_alias(side, '_rn')}"
    if side.style.named_params:
        # Oracle takes no AS before a table alias; a named-bind text has no %% escape.
        alias, every_th = " s", f"MOD({rn} - 1, {side.style.param('every')}) = 0"
    else:
        alias, every_th = " AS s", f"({rn} - 1) %% {side.style.param('every')} = 0"
    text = (
        f"SELECT {', '.join(aliases)} FROM (SELECT {inner},"
        f" row_number() OVER (ORDER BY {', '.join(side.key)}) AS {_alias(side, '_rn')}"
        f" FROM {side.table}{_where(conditions)}){alias}"
        f" WHERE {rn} > 1 AND {every_th} ORDER BY {rn}"
    )
    return BoundQuery(text, params)


def build_leaf_query(side: Side, key_range: KeyRange) -> BoundQuery:
    """``key..., row hash, extra...`` of every row in ``key_range``."""
    conditions, params = _range_conditions(side, key_range)
    columns = ", ".join([*side.key, f"{side.row_hash} AS {_alias(side, '_hash')}", *side.extra])
    return BoundQuery(f"SELECT {columns} FROM {side.table}{_where(conditions)}", params)


def _key_list(
    key: Sequence[str], keys: Sequence[tuple[Any, ...]], style: QueryStyle = POSTGRES_STYLE
) -> tuple[str, dict[str, Any]]:
    if not keys:
        raise ValueError("an empty key list")
    params: dict[str, Any] = {}
    rows = []
    for i, values in enumerate(keys):
        names = [f"r{i}_{j}" for j in range(len(key))]
        params.update(zip(names, values, strict=True))
        if style.row_values:
            rows.append("(" + ", ".join(style.param(name) for name in names) + ")")
        else:  # an OR of key equalities: the primary key serves each one
            equal = " AND ".join(
                f"{column} = {style.param(name)}" for column, name in zip(key, names, strict=True)
            )
            rows.append(f"({equal})")
    if not style.row_values:
        return f"({' OR '.join(rows)})", params
    return f"({', '.join(key)}) IN ({', '.join(rows)})", params


def build_hashes_by_key(side: Side, keys: Sequence[tuple[Any, ...]]) -> BoundQuery:
    """Like :func:`build_leaf_query`, for a list of keys instead of a range."""
    condition, params = _key_list(side.key, keys, side.style)
    columns = ", ".join([*side.key, f"{side.row_hash} AS {_alias(side, '_hash')}", *side.extra])
    return BoundQuery(
        f"SELECT {columns} FROM {side.table}{_where([*side.filters, condition])}",
        {**side.params, **params},
    )


def build_warehouse_rows_by_source_key(mapping: TableMapping) -> str:
    """Every column of the entity's rows of ``%(system)s`` whose ``_source_key`` is in
    ``%(keys)s`` (a list), in table order."""
    columns = entity_columns(mapping)
    names = ", ".join(quote_ident(name) for name in columns.all)
    return (
        f"SELECT {names} FROM {columns.table}"
        " WHERE _source_system = %(system)s AND _source_key = ANY(%(keys)s)"
    )


# -- hard deletes: the record that keeps later verifies from reporting them again ------------


def build_record_hard_deletes(mapping: TableMapping) -> str:
    """Record the rows of ``%(keys)s`` that batch ``%(batch_id)s`` flagged deleted."""
    return (
        f"INSERT INTO {HARD_DELETE_TABLE}"
        " (system, entity, source_table, source_key, source_version, batch_id)"
        " SELECT t._source_system, %(entity)s, %(table)s, t._source_key, t._source_version,"
        f" t._batch_id FROM {qualified(ENTITY_SCHEMA, mapping.entity)} AS t"
        " WHERE t._source_system = %(system)s AND t._batch_id = %(batch_id)s AND t._is_deleted"
        " AND t._source_key = ANY(%(keys)s)"
        " ON CONFLICT (system, entity, source_key) DO UPDATE SET"
        " source_table = EXCLUDED.source_table, source_version = EXCLUDED.source_version,"
        " batch_id = EXCLUDED.batch_id, detected_at = clock_timestamp()"
    )


def build_hard_delete_cleanup(mapping: TableMapping) -> str:
    """Forget recorded hard deletes whose row came back (a newer version was loaded)."""
    return (
        f"DELETE FROM {HARD_DELETE_TABLE} AS h WHERE h.system = %(system)s"
        " AND h.entity = %(entity)s AND h.source_table = %(table)s AND NOT EXISTS (SELECT 1"
        f" FROM {qualified(ENTITY_SCHEMA, mapping.entity)} AS t"
        " WHERE t._source_system = h.system AND t._source_key = h.source_key"
        " AND t._source_version = h.source_version AND t._is_deleted)"
    )
