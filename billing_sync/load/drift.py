"""Warehouse tables that lost a column the catalogs map: found at set-up, named, refused.

Set-up creates entity tables with ``CREATE TABLE IF NOT EXISTS`` and runs its DDL only when
the DDL's digest changed (see :meth:`billing_sync.load.warehouse.Warehouse.setup`), so a
column dropped or renamed outside billing-sync went unnoticed, and every batch then failed
with ``UndefinedColumn: column "memo"`` naming no table. Each set-up now compares the
entity and quarantine payload tables with the columns the catalogs give them (one catalog
query) and fails naming ``schema.table.column`` and what to do.

It does not add the column back itself: the rows already loaded would hold NULL there,
and ``verify`` does not hash every column (protected and converted ones are left out), so
it could report EQUAL over the hole. Restoring the column and reloading the tables that
feed it is the operator's decision, spelled out in the message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from billing_sync.column_types import sql_type
from billing_sync.config import TableMapping
from billing_sync.entities import ENTITY_SCHEMA, LINEAGE_TYPES, EntityColumns
from billing_sync.keys import key_sql
from billing_sync.sql import qualified, quote_ident
from billing_sync.validate.quarantine import PAYLOAD_SCHEMA

_COLUMNS_SQL = (
    "SELECT n.nspname, c.relname, a.attname FROM pg_attribute a"
    " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ANY(%s) AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')"
    " AND a.attnum > 0 AND NOT a.attisdropped"
)


class WarehouseSchemaDrift(RuntimeError):
    """A warehouse table lacks a column the catalogs map to it."""


def missing_columns(
    conn: psycopg.Connection[Any], entities: Mapping[str, EntityColumns]
) -> list[tuple[str, str, str]]:
    """``(schema, table, column)`` the catalogs expect and existing tables lack; a table
    that does not exist yet is not reported (set-up creates it)."""
    schemas = [ENTITY_SCHEMA, PAYLOAD_SCHEMA]
    found: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in conn.execute(_COLUMNS_SQL, (schemas, list(entities))):
        found.setdefault((schema, table), set()).add(column)
    missing: list[tuple[str, str, str]] = []
    for name, columns in sorted(entities.items()):
        for schema in schemas:
            present = found.get((schema, name))
            if present is None:
                continue
            missing.extend((schema, name, c) for c in columns.all if c not in present)
    return missing


def check_columns(
    conn: psycopg.Connection[Any],
    entities: Mapping[str, EntityColumns],
    feeds: Mapping[str, Sequence[str]],
) -> None:
    """Raise :class:`WarehouseSchemaDrift` naming every missing column and the fix;
    ``feeds`` are the ``system.TABLE`` names that load each entity."""
    missing = missing_columns(conn, entities)
    if not missing:
        return
    lines = []
    for schema, table, column in missing:
        kind = dict(entities[table].business).get(column)
        definition = sql_type(kind) if kind else LINEAGE_TYPES[column].replace(" NOT NULL", "")
        lines.append(
            f"{schema}.{table}.{column} is missing (expected {definition}): restore it with"
            f" ALTER TABLE {schema}.{quote_ident(table)} ADD COLUMN {quote_ident(column)}"
            f" {definition}"
        )
    tables = sorted({table for _, table, _ in missing})
    reload = ", ".join(
        f"`billing-sync backfill {name}`" for table in tables for name in feeds.get(table, [])
    )
    raise WarehouseSchemaDrift(
        "the warehouse lacks columns the catalogs map (dropped or renamed outside"
        " billing-sync, or newly mapped: set-up does not alter existing tables):\n  - "
        + "\n  - ".join(lines)
        + "\nthen reload the rows"
        f" already there, whose restored column is empty ({reload}). Nothing was loaded."
    )


def rekey_sql(mapping: TableMapping) -> str:
    """Upgrading to the injective key encoding (:mod:`billing_sync.keys`): give the rows of
    ``%(system)s`` whose ``_source_key`` is not the encoding of their key columns (only
    keys that held ``|`` or ``\\``) the encoding. One pass over the table; run it once,
    with the pipeline paused. The key columns hold the normalized key values, so SQL's
    text of them is what :func:`~billing_sync.transform.normalize.normalized_source_key`
    writes (text and integers; DateStyle ISO for a date key)."""
    key = key_sql([quote_ident(name) for name in mapping.target_key])
    return (
        f"UPDATE {qualified(ENTITY_SCHEMA, mapping.entity)} SET _source_key = {key}"
        f" WHERE _source_system = %(system)s AND _source_key <> {key}"
    )
