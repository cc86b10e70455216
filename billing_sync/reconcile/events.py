"""Parity events that must stay visible after the run that saw them (DESIGN §7, §8).

- **Repairs.** Every ``verify --repair`` that changed the warehouse logs what it did
  (missing, stale, version gone backwards, flagged deleted). A repair means the tail
  missed something (a row committed later than the lookback, a stamp older than the
  one already loaded), so the alert sensor fires on any repair within its window.
- **Refusals.** When more rows vanished from the source than a run may flag deleted
  (the shrink guard of :mod:`billing_sync.capture.regression`, or the delete cap of
  ``verify --repair``), the refusal is stored here. It stays open, failing the table's
  sync and keeping an alert firing, until a verify finds no row the source lacks that
  is not flagged deleted: an operator confirmed the deletes (``verify --repair
  --max-delete-fraction``) or the rows came back. New inserts lifting the row count no
  longer end it.

The tables are created on first write; readers treat a missing table as "none".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from billing_sync.entities import STATE_SCHEMA

REPAIR_LOG = f"{STATE_SCHEMA}.repair_log"
SHRINK_REFUSAL = f"{STATE_SCHEMA}.shrink_refusal"

DDL = f"""
CREATE TABLE IF NOT EXISTS {REPAIR_LOG} (
    repair_id bigserial PRIMARY KEY,
    system text NOT NULL,
    source_table text NOT NULL,
    entity text NOT NULL,
    missing integer NOT NULL,
    stale integer NOT NULL,
    backwards integer NOT NULL,
    deleted integer NOT NULL,
    sample text NOT NULL DEFAULT '',
    run_id text,
    repaired_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS {SHRINK_REFUSAL} (
    refusal_id bigserial PRIMARY KEY,
    system text NOT NULL,
    source_table text NOT NULL,
    entity text NOT NULL,
    gone bigint NOT NULL,
    warehouse_rows bigint NOT NULL,
    reason text NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    resolved_at timestamptz,
    resolution text
);
CREATE UNIQUE INDEX IF NOT EXISTS shrink_refusal_open_ix
    ON {SHRINK_REFUSAL} (system, source_table) WHERE resolved_at IS NULL;
"""

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Refusal:
    system: str
    table: str
    entity: str
    gone: int
    warehouse_rows: int
    reason: str
    detected_at: datetime

    @property
    def name(self) -> str:
        return f"{self.system}.{self.table}"


def ensure(conn: Conn) -> None:
    """Create the event tables (idempotent, serialized with the warehouse set-up)."""
    if _exists(conn):
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('billing_sync.setup'))")
        conn.execute(DDL)


def _exists(conn: Conn) -> bool:
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
        (REPAIR_LOG, SHRINK_REFUSAL),
    ).fetchone()
    return bool(row and row[0])


def record_repair(
    conn: Conn, *, system: str, table: str, entity: str, missing: int, stale: int,
    backwards: int, deleted: int, sample: str = "", run_id: str | None = None,
) -> None:  # fmt: skip
    if not (missing or stale or backwards or deleted):
        return
    ensure(conn)
    conn.execute(
        f"INSERT INTO {REPAIR_LOG} (system, source_table, entity, missing, stale, backwards,"
        " deleted, sample, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (system, table, entity, missing, stale, backwards, deleted, sample[:2000], run_id),
    )


def repairs_within(conn: Conn, *, window_seconds: float) -> dict[str, dict[str, int]]:
    """Per ``system.TABLE``: rows repaired within the window, by kind."""
    if not _exists(conn):
        return {}
    rows = conn.execute(
        f"SELECT system || '.' || source_table, sum(missing), sum(stale), sum(backwards),"
        f" sum(deleted) FROM {REPAIR_LOG}"
        " WHERE repaired_at > clock_timestamp() - make_interval(secs => %s) GROUP BY 1",
        (window_seconds,),
    ).fetchall()
    return {
        name: {"missing": int(m), "stale": int(s), "backwards": int(b), "deleted": int(d)}
        for name, m, s, b, d in rows
    }


def record_refusal(
    conn: Conn, *, system: str, table: str, entity: str, gone: int, warehouse_rows: int,
    reason: str,
) -> None:  # fmt: skip
    """Open a refusal for the table, or update the open one with the latest figures."""
    ensure(conn)
    with conn.transaction():
        updated = conn.execute(
            f"UPDATE {SHRINK_REFUSAL} SET gone = %s, warehouse_rows = %s, reason = %s"
            " WHERE system = %s AND source_table = %s AND resolved_at IS NULL",
            (gone, warehouse_rows, reason, system, table),
        ).rowcount
        if not updated:
            conn.execute(
                f"INSERT INTO {SHRINK_REFUSAL} (system, source_table, entity, gone,"
                " warehouse_rows, reason) VALUES (%s, %s, %s, %s, %s, %s)",
                (system, table, entity, gone, warehouse_rows, reason),
            )


def open_refusals(
    conn: Conn, *, system: str | None = None, table: str | None = None
) -> list[Refusal]:
    if not _exists(conn):
        return []
    rows = conn.execute(
        f"SELECT system, source_table, entity, gone, warehouse_rows, reason, detected_at"
        f" FROM {SHRINK_REFUSAL} WHERE resolved_at IS NULL"
        " AND (%s::text IS NULL OR system = %s) AND (%s::text IS NULL OR source_table = %s)"
        " ORDER BY detected_at",
        (system, system, table, table),
    ).fetchall()
    return [Refusal(*row) for row in rows]


def resolve_refusal(conn: Conn, *, system: str, table: str, resolution: str) -> bool:
    """Close the table's open refusal; False when none was open."""
    if not _exists(conn):
        return False
    return bool(
        conn.execute(
            f"UPDATE {SHRINK_REFUSAL} SET resolved_at = clock_timestamp(), resolution = %s"
            " WHERE system = %s AND source_table = %s AND resolved_at IS NULL",
            (resolution, system, table),
        ).rowcount
    )
