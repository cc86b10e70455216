"""How far behind: the warehouse against the source, the cache against the warehouse.

- A batch's lag: seconds from the oldest change it carried to now, on the source's clock.
- Tables behind: whose newest source change is past the warehouse watermark (sensors).
- The cache's lag: the cache records the last warehouse batch it applied per entity; the
  warehouse's batch log says when every later batch committed. The lag is the age of the
  oldest batch the cache lacks (zero when it has them all): how stale an analyst's answer
  from the cache can be compared with the warehouse.
- ``billing-sync status``: all of the above per table, with exact row counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from billing_sync.config import Tier
from billing_sync.engine.batch import CacheLag, TableBatch
from billing_sync.engine.parts import EngineParts
from billing_sync.engine.quiet import probe
from billing_sync.entities import STATE_SCHEMA, entity_columns
from billing_sync.load.cache import Cache, CacheApplied, CacheBusy
from billing_sync.load.warehouse import Warehouse
from billing_sync.reconcile.unreadable_probe import count_unreadable
from billing_sync.source.horizon import OpenTransaction
from billing_sync.sql import qualified


def batch_lag_seconds(rows: pa.Table, source_now: datetime, elapsed: float) -> float | None:
    """Seconds from the oldest change in the batch to now, on the source's clock."""
    if rows.num_rows == 0:
        return None
    oldest: datetime = pc.min(rows.column("_source_version")).as_py()
    return (source_now - oldest).total_seconds() + elapsed


def tables_behind(engine: EngineParts, tier: Tier | None = None) -> list[str]:
    """Tables whose newest source change is past the warehouse watermark (one index read
    per table on the source; see :func:`billing_sync.engine.quiet.is_behind`)."""
    return probe(engine, tier, advance=False).behind


def level(entity: str, batch_id: int) -> CacheLag:
    """The lag of an entity the cache just brought level with the warehouse."""
    return CacheLag(entity, batch_id, batch_id, batches_behind=0, seconds=0.0)


def cache_lags(
    conn: psycopg.Connection[Any], cache_batches: Mapping[str, int]
) -> dict[str, CacheLag]:
    """The lag of every warehouse entity given the cache's last batches (missing: 0)."""
    entities = sorted(cache_batches)
    rows = conn.execute(
        f"""
        WITH cache (entity, applied) AS (SELECT * FROM unnest(%s::text[], %s::bigint[]))
        SELECT s.entity, coalesce(c.applied, 0), s.last_batch_id,
               (SELECT count(*) FROM {STATE_SCHEMA}.batch_log AS b
                 WHERE b.entity = s.entity AND b.batch_id > coalesce(c.applied, 0)),
               extract(epoch FROM clock_timestamp() - (
                   SELECT min(b.committed_at) FROM {STATE_SCHEMA}.batch_log AS b
                    WHERE b.entity = s.entity AND b.batch_id > coalesce(c.applied, 0)))
          FROM {STATE_SCHEMA}.entity_state AS s
          LEFT JOIN cache AS c ON c.entity = s.entity
        """,
        (entities, [cache_batches[entity] for entity in entities]),
    ).fetchall()
    return {
        entity: CacheLag(
            entity,
            int(applied),
            int(last),
            batches_behind=int(behind),
            seconds=float(age) if age is not None else 0.0,
        )
        for entity, applied, last, behind, age in rows
    }


LAG_READ_WAIT_SECONDS = 0.2  # reading the cache's state for the figures: never worth a delay


def read_lags(cache: Cache, conn: psycopg.Connection[Any]) -> dict[str, CacheLag] | None:
    """Every cache entity's lag, or ``None`` when the cache cannot be read now."""
    try:
        applied = cache.last_applied(wait_seconds=LAG_READ_WAIT_SECONDS)
    except (CacheBusy, duckdb.Error):
        return None
    lags = cache_lags(conn, {entity: applied.get(entity, 0) for entity in cache.entities})
    return {entity: lag for entity, lag in lags.items() if entity in cache.entities}


def entities_behind(cache: Cache, conn: psycopg.Connection[Any]) -> set[str]:
    """Entities whose warehouse batches the cache lacks (all when it cannot be read)."""
    lags = read_lags(cache, conn)
    if lags is None:
        return set(cache.entities)
    return {entity for entity, lag in lags.items() if lag.behind}


def follow_up(
    results: list[TableBatch],
    *,
    cache: Cache,
    warehouse: Warehouse,
    behind: set[str],
) -> list[TableBatch]:
    """After a micro-batch: catch up entities the cache lacks, and attach the cache lag.

    ``behind`` (updated in place) holds the entities the cache is known to lack batches
    of: ones whose apply found the file busy now or earlier, or whose tables were just
    created in a new, lost or rebuilt file, even if no new batch of theirs comes along.
    While the file is busy in this micro-batch nothing is retried.
    """
    behind |= cache.created
    cache.created.clear()
    for batch in results:
        if batch.cache is not None:
            behind.discard(batch.entity)
        elif batch.cache_error is not None:
            behind.add(batch.entity)
    caught: dict[str, CacheApplied] = {}
    if behind and not any(batch.cache_error for batch in results):
        caught = _catch_up(behind, cache=cache, warehouse=warehouse)
    lags = (read_lags(cache, warehouse.conn) or {}) if behind else {}
    followed = []
    for batch in results:
        applied_now = batch.cache if batch.cache is not None else caught.pop(batch.entity, None)
        if applied_now is not None:
            lag: CacheLag | None = level(batch.entity, applied_now.last_batch_id)
        else:
            lag = lags.get(batch.entity) if batch.entity in behind else None
        followed.append(replace(batch, cache=applied_now, cache_lag=lag))
    return followed


def _catch_up(behind: set[str], *, cache: Cache, warehouse: Warehouse) -> dict[str, CacheApplied]:
    """Catch up the entities of ``behind`` that lag, removing them; stop if the file is busy.

    One read of the cache's state first, so that only the laggards open the file.
    """
    lags = read_lags(cache, warehouse.conn)
    if lags is None:
        return {}
    caught = {}
    for entity in sorted(behind):
        lag = lags.get(entity)
        if lag is not None and not lag.behind:
            behind.discard(entity)
            continue
        try:
            caught[entity] = cache.catch_up(
                cache.entities[entity],
                catch_up=warehouse.rows_since,
                applied=None if lag is None else lag.cache_batch,
            )
        except CacheBusy:
            break
        behind.discard(entity)
    return caught


@dataclass(frozen=True)
class TableStatus:
    system: str
    table: str
    entity: str
    tier: str
    cursor_ts: datetime | None
    caught_up_to: datetime | None
    lag_seconds: float | None
    source_rows: int
    warehouse_rows: int
    cache_rows: int | None  # None when the cache file is busy
    warehouse_batch: int
    cache_batch: int | None
    cache_lag: CacheLag | None  # None when the cache file is busy
    held_back_by: OpenTransaction | None
    hold_seconds: float
    late_rows: int
    unreadable_rows: int = 0  # rows whose change stamp the tail cannot read
    zone: str = "UTC"  # the biller's zone: its watermarks hold naive local time
    sla_seconds: float | None = None  # the tier's freshness SLA
    warehouse_live_rows: int | None = None  # not flagged _is_deleted
    cache_live_rows: int | None = None

    @property
    def breach(self) -> bool:
        """Behind the tier's SLA, or never loaded."""
        if self.sla_seconds is None:
            return False
        return self.lag_seconds is None or self.lag_seconds > self.sla_seconds


def table_status(engine: EngineParts) -> list[TableStatus]:
    """Read-only status of every table; counts are exact (``count(*)``)."""
    warehouse = engine.warehouse
    cache_counts, cache_batches = _cache_state(engine)
    lags = {} if cache_batches is None else cache_lags(warehouse.conn, cache_batches)
    statuses = []
    # One horizon per biller: one probe each, and one holder however many tables wait.
    horizons = {catalog.system: engine.horizon(catalog.system) for catalog, _ in engine.tables()}
    for catalog, mapping in engine.tables():
        source = engine.source(catalog.system)
        horizon = horizons[catalog.system]
        watermark = warehouse.watermark(catalog.system, mapping, missing_ok=True)
        table = entity_columns(mapping).table
        with warehouse.conn.transaction():
            entity_batch = warehouse.entity_batch(mapping.entity)
            # An entity no engine set up here (another shard's) may have no table yet.
            warehouse_rows = None if entity_batch is None else warehouse.conn.execute(
                f"SELECT count(*), count(*) FILTER (WHERE _is_deleted IS NOT TRUE) FROM {table}"
                " WHERE _source_system = %s",
                (catalog.system,),
            ).fetchone()  # fmt: skip
            late = warehouse.conn.execute(
                f"SELECT late_rows FROM {STATE_SCHEMA}.watermark"
                " WHERE system = %s AND source_table = %s",
                (catalog.system, mapping.table),
            ).fetchone()
        lag = (
            (horizon.source_now - watermark.caught_up_to).total_seconds()
            if watermark.caught_up_to
            else None
        )
        statuses.append(
            TableStatus(
                system=catalog.system,
                table=mapping.table,
                entity=mapping.entity,
                tier=mapping.tier,
                cursor_ts=watermark.cursor.change_ts if watermark.cursor else None,
                caught_up_to=watermark.caught_up_to,
                lag_seconds=lag,
                source_rows=int(
                    source.scalar(
                        f"SELECT count(*) FROM {qualified(catalog.schema_name, mapping.table)}"
                    )
                ),
                warehouse_rows=int(warehouse_rows[0]) if warehouse_rows else 0,
                warehouse_live_rows=int(warehouse_rows[1]) if warehouse_rows else 0,
                cache_rows=None
                if cache_counts is None
                else cache_counts.get((catalog.system, mapping.entity), (0, 0))[0],
                cache_live_rows=None
                if cache_counts is None
                else cache_counts.get((catalog.system, mapping.entity), (0, 0))[1],
                zone=catalog.timezone,
                sla_seconds=engine.settings.tier(mapping.tier).freshness_sla_seconds,
                warehouse_batch=entity_batch or 0,
                cache_batch=None if cache_batches is None else cache_batches.get(mapping.entity, 0),
                cache_lag=lags.get(mapping.entity),
                held_back_by=horizon.held_back_by,
                hold_seconds=horizon.hold_seconds,
                late_rows=int(late[0]) if late else 0,
                unreadable_rows=count_unreadable(source, catalog, mapping, horizon.source_now),
            )
        )
    return statuses


def _cache_state(
    engine: EngineParts,
) -> tuple[dict[tuple[str, str], tuple[int, int]] | None, dict[str, int] | None]:
    try:
        with engine.cache._connect(read_only=True) as con:
            counts: dict[tuple[str, str], tuple[int, int]] = {}
            for catalog, mapping in engine.tables():
                table = entity_columns(mapping).table
                rows = con.execute(
                    "SELECT count(*), count(*) FILTER (WHERE _is_deleted IS NOT TRUE)"
                    f" FROM {table} WHERE _source_system = ?",
                    [catalog.system],
                ).fetchall()
                counts[(catalog.system, mapping.entity)] = (int(rows[0][0]), int(rows[0][1]))
            batches = dict(
                con.execute(
                    f"SELECT entity, last_batch_id FROM {STATE_SCHEMA}.cache_state"
                ).fetchall()
            )
            return counts, batches
    except (CacheBusy, duckdb.Error):  # busy, or damaged (CacheDamaged, or a block read late)
        return None, None
