"""How far the DuckDB cache is behind the warehouse, per entity.

The cache records the last warehouse batch it applied per entity; the warehouse's batch
log says when every later batch committed. The lag is the age of the oldest batch the
cache lacks (zero when it has them all): how stale an analyst's answer from the cache
can be compared with the warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import duckdb
import psycopg

from billing_sync.entities import STATE_SCHEMA
from billing_sync.load.cache import Cache, CacheApplied, CacheBusy

if TYPE_CHECKING:  # sync imports this module
    from billing_sync.engine.sync import TableBatch
    from billing_sync.load.warehouse import Warehouse


@dataclass(frozen=True)
class CacheLag:
    entity: str
    cache_batch: int
    warehouse_batch: int
    batches_behind: int
    seconds: float  # age of the oldest warehouse batch the cache lacks; 0.0 when level

    @property
    def behind(self) -> bool:
        return self.batches_behind > 0


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
