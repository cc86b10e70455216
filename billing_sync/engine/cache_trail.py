"""The cache behind the warehouse: a tier's loop applies its batches in the background.

In a long-lived tier loop (:meth:`~billing_sync.engine.sync.SyncEngine.run`) the DuckDB
apply is off the path to warehouse visibility: a table's batch commits to the warehouse,
then goes to the cache feed (:mod:`billing_sync.load.cache_feed`, one writer thread) while
the next table, and the next micro-batch, go on. Each tier's batches are gathered for its
``cache_apply_interval_seconds`` (priority 1 s, standard 2 s, bulk 10 s; 0 applies each
batch at once): fewer, larger applies, since each opens the file and checkpoints it
(measured in docs/performance.md). Each micro-batch reports, per entity,
the applies that finished and how far the cache trails (batches not applied yet, the
age of the oldest): the bound the operator sees in the cache asset's metadata.

Direct calls (``sync_once``, ``drain``) keep applying before they return: tests and
commands read the cache right after.
"""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa

from billing_sync.config import TableMapping
from billing_sync.engine.batch import CacheLag, TableBatch, rows_with_batch_id
from billing_sync.entities import entity_columns
from billing_sync.load.cache import CacheApplied
from billing_sync.load.cache_feed import CacheFeed
from billing_sync.load.warehouse import CommitResult


def trail(
    feed: CacheFeed, mapping: TableMapping, rows: pa.Table, result: CommitResult, *, now: bool
) -> None:
    """Hand a committed batch to the feed; ``now``: apply it without gathering."""
    if result.batch_id is None:
        return
    feed.add(
        entity_columns(mapping), rows_with_batch_id(rows, result), batch_id=result.batch_id,
        previous_batch_id=result.previous_entity_batch_id, last=now, dedupe=True,
    )  # fmt: skip


def report(results: list[TableBatch], feed: CacheFeed) -> list[TableBatch]:
    """``results`` with the applies that finished and each entity's lag behind the
    warehouse, on the first batch of each entity."""
    ended = feed.results()
    applied: dict[str, CacheApplied] = {done.entity: done for done in ended.applied}
    seen: set[str] = set()
    reported = []
    for batch in results:
        if batch.entity in seen or batch.cache is not None:
            reported.append(batch)
            continue
        seen.add(batch.entity)
        done = applied.get(batch.entity)
        # An apply that found the file held says so on the batches it could not follow,
        # as an inline apply does (the operator's "held by another process").
        trailing = lag(feed, batch.entity)
        held = batch.cache_error
        if held is None and done is None and trailing.batches_behind:
            held = ended.busy
        reported.append(replace(batch, cache=done, cache_lag=trailing, cache_error=held))
    return reported


def lag(feed: CacheFeed, entity: str) -> CacheLag:
    """How far the cache trails for ``entity`` (level when nothing waits)."""
    cache_batch = feed.applied_to.get(entity, 0)
    behind = feed.lag(entity)
    if behind is None:
        return CacheLag(entity, cache_batch, cache_batch, batches_behind=0, seconds=0.0)
    return CacheLag(
        entity, cache_batch, behind.last_batch_id, batches_behind=behind.batches,
        seconds=behind.seconds,
    )  # fmt: skip
