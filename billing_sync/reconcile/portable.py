"""Verify's two sides when the source is not PostgreSQL: the engine-neutral row hash.

A PostgreSQL source and the warehouse share ``hashtextextended`` (:mod:`.hashing`), the
cheapest hash there is. Any other engine hashes a row by the contract of :mod:`.row_hash`
(canonical texts, MD5, 60 bits), written in its own SQL by its engine adapter; the
warehouse then hashes its stored form of the same columns by the same contract, so the
two sums of a key range compare exactly. What differs from :mod:`.hashing`'s sides is the
row hash and the engine's spelling (binds, row comparisons, casts); which columns are
hashed (:func:`~.hashing.hashed_columns`), the stamp, the soft-delete flag, the pending
test and the key ranges are the same.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from billing_sync.capture.cursor import cursor_sql_columns, cursor_values, packed_stamp_sql
from billing_sync.config import ColumnSpec, TableMapping
from billing_sync.reconcile.hashing import WAREHOUSE_ALIAS, Side, hashed_columns, warehouse_side
from billing_sync.reconcile.row_hash import CANONICAL, sql_row_hash
from billing_sync.source.engines.base import EngineAdapter
from billing_sync.source.engines.postgres import PostgresAdapter
from billing_sync.source.schema import is_composite
from billing_sync.sql import qualified, quote_ident

# Compiles the warehouse's expressions only; it never connects.
_WAREHOUSE = PostgresAdapter("postgresql+psycopg://")


def _source_value(column: ColumnSpec, adapter: EngineAdapter) -> str:
    """The source expression whose canonical text equals the warehouse value's."""
    assert isinstance(column.source, str)  # hashed_columns keeps only such columns
    expression = quote_ident(column.source)
    converter = column.converter.name if column.converter else None
    if converter == "implied_decimal":
        assert column.converter is not None and column.converter.places is not None
        places = column.converter.places
        # Exact on every engine: the scale is kept by the cast, then divided by 10^places.
        return f"CAST({expression} AS DECIMAL(38, {places})) / {10**places}"
    return expression  # plain or trim (canonical text is right-trimmed anyway)


def packed_version_sql(mapping: TableMapping, adapter: EngineAdapter) -> str:
    """A composite ``(CYYMMDD, HHMMSS)`` stamp as the packed integer the warehouse's
    ``_source_version`` re-encodes to, in the source engine's SQL."""
    return packed_stamp_sql(
        *cursor_sql_columns(mapping), style=adapter.style, integer=adapter.integer_type
    )


def source_side(
    mapping: TableMapping,
    *,
    schema: str,
    pending_after: tuple[datetime, tuple[Any, ...]] | None,
    adapter: EngineAdapter,
) -> Side:
    """The source table on ``adapter``'s engine (see :func:`.hashing.source_side`).
    ``_pending`` is ``1``/``0`` here: not every engine selects a boolean (Oracle)."""
    style = adapter.style
    cursor = cursor_sql_columns(mapping)
    key = tuple(quote_ident(name) for name in mapping.key)
    parts = [(_source_value(column, adapter), column.type) for column in hashed_columns(mapping)]
    if is_composite(mapping):
        change_ts = packed_version_sql(mapping, adapter)
        parts.append((change_ts, "bigint"))
    else:
        change_ts = cursor[0]
        parts.append((change_ts, "timestamp"))
    params: dict[str, Any] = {}
    if mapping.soft_delete is not None:
        names = [f"sd{i}" for i in range(len(mapping.soft_delete.values))]
        params.update(zip(names, mapping.soft_delete.values, strict=True))
        listed = ", ".join(style.param(name) for name in names)
        column = f"CAST({quote_ident(mapping.soft_delete.column)} AS {style.text_type})"
        parts.append((f"CASE WHEN {column} IN ({listed}) THEN 't' ELSE 'f' END", CANONICAL))
    else:
        parts.append(("'f'", CANONICAL))
    if pending_after is None:
        pending = "1"
    else:
        values = cursor_values(mapping, pending_after[0])
        stamps = [f"wm_c{i}" for i in range(len(values))] if is_composite(mapping) else ["wm_ts"]
        params.update(zip(stamps, values, strict=True))
        if not pending_after[1]:  # a snapshot's hand-over point: from this timestamp on
            after = style.compare(cursor, ">=", stamps)
        else:
            keys = [f"wm_k{i}" for i in range(len(key))]
            params.update(zip(keys, pending_after[1], strict=True))
            after = style.compare([*cursor, *key], ">", [*stamps, *keys])
        pending = f"CASE WHEN {after} THEN 1 ELSE 0 END"
    return Side(
        name="source",
        table=qualified(schema, mapping.table),
        key=key,
        row_hash=sql_row_hash(adapter, parts),
        # Quoted: Oracle's and Db2's unquoted identifiers begin with a letter.
        extra=(f'{pending} AS "_pending"', f'{change_ts} AS "_change_ts"'),
        params=params,
        style=style,
    )


def warehouse_contract_side(mapping: TableMapping, *, system: str, timezone: str = "UTC") -> Side:
    """:func:`.hashing.warehouse_side` with the contract's row hash: the stored columns
    (a timestamp as the biller's wall time in ``timezone``), ``_source_version`` (packed
    for a composite cursor) and ``_is_deleted``."""
    t = WAREHOUSE_ALIAS
    zone = "'" + timezone.replace("'", "''") + "'"
    parts = []
    for column in hashed_columns(mapping):
        stored = f"{t}.{quote_ident(column.target)}"
        if column.type == "timestamp":
            stored = f"({stored} AT TIME ZONE {zone})"
        parts.append((stored, column.type))
    if is_composite(mapping):
        packed = (
            f"CAST(to_char({t}._source_version, 'YYYYMMDDHH24MISS') AS bigint) - 19000000000000"
        )
        parts.append((packed, "bigint"))
    else:
        parts.append((f"{t}._source_version", "timestamp"))
    parts.append((f"CASE WHEN {t}._is_deleted THEN 't' ELSE 'f' END", CANONICAL))
    side = warehouse_side(mapping, system=system, timezone=timezone)
    return dataclasses.replace(side, row_hash=sql_row_hash(_WAREHOUSE, parts))
