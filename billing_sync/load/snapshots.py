"""Snapshot progress in the warehouse: each chunk commits with the key it reached.

A first load (``initial``) into an entity that holds none of its system's rows is a
**bulk** snapshot: its chunks are COPYed straight into the entity table, without the
temporary table and the ``ON CONFLICT`` merge (:meth:`Warehouse._write` with ``bulk``).
Nothing is lost if a key is there after all (a repair, a released quarantine row, a
backfill running beside it): that chunk's COPY is undone and the chunk merges, and the
snapshot merges from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from billing_sync.capture.window import Cursor
from billing_sync.config import TableMapping
from billing_sync.entities import STATE_SCHEMA, entity_columns
from billing_sync.load.entity_indexes import create_secondary_indexes, drop_secondary_indexes
from billing_sync.load.warehouse import (
    BatchInfo,
    CommitResult,
    ConcurrentSyncError,
    Warehouse,
    decode_key,
    encode_key,
)

if TYPE_CHECKING:
    from billing_sync.validate.quarantine import Screened


@dataclass(frozen=True)
class SnapshotState:
    snapshot_id: int
    kind: str  # initial (first load, hands over to the tail) or backfill
    handover_ts: datetime
    where_sql: str | None
    last_key: tuple[Any, ...] | None
    rows_done: int
    rows_total: int | None
    bulk: bool = False  # COPY chunks straight into the entity (see the module's docstring)


def running_snapshot(
    warehouse: Warehouse, system: str, mapping: TableMapping, kind: str
) -> SnapshotState | None:
    with warehouse.conn.transaction():
        row = warehouse.conn.execute(
            f"SELECT snapshot_id, kind, handover_ts, where_sql, last_key, rows_done, rows_total,"
            f" bulk FROM {STATE_SCHEMA}.snapshot WHERE system = %s AND source_table = %s"
            " AND kind = %s AND status = 'running'",
            (system, mapping.table, kind),
        ).fetchone()
    return None if row is None else _state(mapping, row)


def start_snapshot(
    warehouse: Warehouse,
    system: str,
    mapping: TableMapping,
    *,
    kind: str,
    handover_ts: datetime,
    where_sql: str | None,
    rows_total: int | None,
) -> SnapshotState:
    entity = entity_columns(mapping).table
    with warehouse.conn.transaction():
        # One source table per entity and system: none of the system's rows in the entity
        # means none of this table's.
        present = warehouse.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM {entity} WHERE _source_system = %s)", (system,)
        ).fetchone()
        bulk = kind == "initial" and present is not None and not present[0]
        if bulk:
            empty = warehouse.conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {entity})").fetchone()
            if empty and empty[0]:  # no system's rows: load first, index after
                drop_secondary_indexes(warehouse.conn, entity_columns(mapping))
        row = warehouse.conn.execute(
            f"INSERT INTO {STATE_SCHEMA}.snapshot"
            " (system, source_table, kind, where_sql, handover_ts, rows_total, bulk)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
            " RETURNING snapshot_id, kind, handover_ts, where_sql, last_key, rows_done,"
            " rows_total, bulk",
            (system, mapping.table, kind, where_sql, handover_ts, rows_total, bulk),
        ).fetchone()
    if row is None:  # another process started one first: join it
        running = running_snapshot(warehouse, system, mapping, kind)
        assert running is not None
        return running
    return _state(mapping, row)


def abandon_snapshot(warehouse: Warehouse, snapshot_id: int) -> None:
    """Stop a running snapshot for good (the next one of its kind starts afresh)."""
    with warehouse.conn.transaction():
        warehouse.conn.execute(
            f"UPDATE {STATE_SCHEMA}.snapshot SET status = 'abandoned',"
            " updated_at = clock_timestamp() WHERE snapshot_id = %s AND status = 'running'",
            (snapshot_id,),
        )


def commit_chunk(
    warehouse: Warehouse,
    *,
    system: str,
    mapping: TableMapping,
    state: SnapshotState,
    rows: pa.Table,
    last_key: tuple[Any, ...] | None,
    finished: bool,
    run_id: str | None,
    quarantine: Screened | None = None,
) -> tuple[CommitResult, SnapshotState]:
    """Merge one chunk and record its last key; the last chunk of a first load also sets
    the table's watermark to the hand-over point. All in one transaction."""
    conn = warehouse.conn
    with conn.transaction():
        stored = conn.execute(
            f"SELECT last_key FROM {STATE_SCHEMA}.snapshot WHERE snapshot_id = %s FOR UPDATE",
            (state.snapshot_id,),
        ).fetchone()
        stored_key = None if stored is None or stored[0] is None else decode_key(mapping, stored[0])
        if stored_key != state.last_key:
            raise ConcurrentSyncError(
                f"{system}.{mapping.table}: snapshot {state.snapshot_id} moved on elsewhere"
            )
        info = BatchInfo(state.kind, None, None, None, run_id)
        # A backfill re-loads: an equal version is replaced too (a changed mapping).
        result = warehouse._write(
            system,
            mapping,
            rows,
            info,
            replace_equal=state.kind == "backfill",
            quarantine=quarantine,
            bulk=state.bulk,
        )
        # A bulk chunk that had to merge: merge from now on.
        bulk = state.bulk and (result.wrote_all or result.batch_id is None)
        reached = last_key if last_key is not None else state.last_key
        conn.execute(
            f"UPDATE {STATE_SCHEMA}.snapshot SET last_key = %s, rows_done = rows_done + %s,"
            " status = %s, bulk = %s, updated_at = clock_timestamp() WHERE snapshot_id = %s",
            (
                encode_key(reached) if reached is not None else None,
                rows.num_rows,
                "done" if finished else "running",
                bulk,
                state.snapshot_id,
            ),
        )
        if finished and state.kind == "initial":
            # Indexes left out while the entity was empty: built in this transaction, so
            # other systems' batches into the entity wait for them (SHARE lock).
            create_secondary_indexes(conn, entity_columns(mapping))
            warehouse._move_watermark(
                system, mapping, Cursor(state.handover_ts, ()), state.handover_ts, result
            )
    return result, SnapshotState(
        state.snapshot_id, state.kind, state.handover_ts, state.where_sql, reached,
        state.rows_done + rows.num_rows, state.rows_total, bulk,
    )  # fmt: skip


def _state(mapping: TableMapping, row: tuple[Any, ...]) -> SnapshotState:
    return SnapshotState(
        snapshot_id=row[0], kind=row[1], handover_ts=row[2], where_sql=row[3],
        last_key=None if row[4] is None else decode_key(mapping, row[4]),
        rows_done=row[5], rows_total=row[6], bulk=row[7],
    )  # fmt: skip
