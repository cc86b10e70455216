"""An entity table's secondary indexes: created with the table, and left out while a first
load fills an empty entity (issue 15, item 6).

Loading 1M rows into the entity with its primary key and ``_batch_id`` index cost 2.3
server CPU seconds, 0.6 s without the indexes (docs/performance.md). So a first load that
finds the entity empty (no row of any system) drops the secondary indexes and builds them
in the transaction of its last chunk. The primary key stays: other systems' merges (``ON
CONFLICT``) need it. ``CREATE INDEX`` holds a SHARE lock on the table until that
transaction commits: another system's tail batch into the same entity waits for those
seconds (``integration/test_snapshot_indexes.py``). A load that dies half-way leaves the
indexes missing; :meth:`~billing_sync.load.warehouse.Warehouse.setup` finds them missing at
the next start and builds them (the snapshot then goes on with them).
"""

from __future__ import annotations

from typing import Any

import psycopg

from billing_sync.entities import ENTITY_SCHEMA, EntityColumns


def batch_index_name(columns: EntityColumns) -> str:
    return f'"{columns.entity}_batch_ix"'


def account_index_names(columns: EntityColumns) -> list[str]:
    """The index on an entity's account columns, when it has them (none otherwise)."""
    names = {name for name, _ in columns.business}
    return [f'"{columns.entity}_account_ix"'] if {"site_id", "account_number"} <= names else []


def _definitions(columns: EntityColumns) -> list[tuple[str, str]]:
    found = [(batch_index_name(columns), "(_batch_id)")]
    # The account API reads one account's rows of an entity (billing_sync.api).
    found += [(name, "(account_number, site_id, _source_system)")
              for name in account_index_names(columns)]  # fmt: skip
    return found


def create_secondary_indexes(conn: psycopg.Connection[Any], columns: EntityColumns) -> int:
    """Build the indexes that are missing; how many were."""
    built = 0
    for name, keys in _definitions(columns):
        missing = conn.execute(
            "SELECT to_regclass(%s) IS NULL", (f"{ENTITY_SCHEMA}.{name}",)
        ).fetchone()
        if missing and missing[0]:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {columns.table} {keys}")
            built += 1
    return built


def drop_secondary_indexes(conn: psycopg.Connection[Any], columns: EntityColumns) -> None:
    for name, _ in _definitions(columns):
        conn.execute(f"DROP INDEX IF EXISTS {ENTITY_SCHEMA}.{name}")
