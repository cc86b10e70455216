"""First loads and backfills: a table read by primary-key chunks, resumably (DESIGN §4).

A snapshot runs separately from the tail and hands over at the watermark taken when it
started; a backfill re-loads beside the tail (merges are version-guarded).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyarrow as pa

from billing_sync.capture.cursor import cursor_horizon, rows_stamped_before
from billing_sync.capture.filter_ast import Expr, to_text
from billing_sync.capture.snapshot import (
    BadFilter,
    build_count_query,
    build_snapshot_query,
    check_filter,
)
from billing_sync.capture.window import Cursor
from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.engine.batch import TableBatch, last_cursor, rows_with_batch_id
from billing_sync.engine.parts import EngineParts
from billing_sync.entities import entity_columns
from billing_sync.faults import crash_point
from billing_sync.load.cache import CacheApplied
from billing_sync.load.snapshots import (
    SnapshotState,
    abandon_snapshot,
    commit_chunk,
    running_snapshot,
    start_snapshot,
)
from billing_sync.load.warehouse import CommitResult
from billing_sync.source.schema import source_schema


def snapshot_chunk(
    engine: EngineParts,
    catalog: SourceCatalog,
    mapping: TableMapping,
    *,
    kind: str,
    where: str | None = None,
) -> TableBatch:
    """The next primary-key chunk of the table's running snapshot (starting one if
    none runs). The first load's last chunk hands the table over to the tail."""
    catalog, mapping = engine.checked(catalog, mapping)
    started = time.perf_counter()
    capture = engine.settings.capture
    source = engine.source(catalog.system)
    state = running_snapshot(engine.warehouse, catalog.system, mapping, kind)
    if state is None:
        parsed = check_filter(where, catalog, mapping)
        horizon = engine.horizon(catalog.system)
        count = build_count_query(
            mapping, schema=catalog.schema_name, where=parsed, style=source.style
        )
        total = source.scalar(count.text, count.params)
        state = start_snapshot(
            engine.warehouse, catalog.system, mapping, kind=kind,
            handover_ts=cursor_horizon(mapping, horizon.at),
            where_sql=None if parsed is None else to_text(parsed), rows_total=int(total),
        )  # fmt: skip
    raw, complete_below = _snapshot_rows(engine, catalog, mapping, state, after_key=state.last_key)
    finished = raw.num_rows < capture.snapshot_rows
    last = last_cursor(raw, mapping)
    if not finished and last is not None:  # the next chunk reads while this one loads
        _snapshot_rows(engine, catalog, mapping, state, after_key=last.key, ahead=True)
    if complete_below is not None:
        raw = rows_stamped_before(raw, mapping, complete_below)
    # The suite in Polars: GX would cost as much as the rest of a chunk (DESIGN §6).
    rows, screened = engine.prepare(raw, catalog, mapping, polars_validation=True)
    result, state = commit_chunk(
        engine.warehouse, system=catalog.system, mapping=mapping, state=state, rows=rows,
        last_key=last.key if last else None, finished=finished, run_id=engine.run_id,
        quarantine=screened,
    )  # fmt: skip
    crash_point("after_snapshot_chunk")
    cache = _feed_cache(engine, mapping, rows, result, last=finished)
    handed_over = finished and kind == "initial"
    return TableBatch.from_commit(
        mapping, system=catalog.system, timezone=catalog.timezone, kind=kind,
        rows_read=raw.num_rows, result=result,
        screened=screened, started=started,
        cursor=Cursor(state.handover_ts, ()) if handed_over else None,
        caught_up_to=state.handover_ts if handed_over else None,
        more_waiting=not finished, cache=cache,
        snapshot_progress=(state.rows_done, state.rows_total),
    )  # fmt: skip


def backfill(
    engine: EngineParts,
    catalog: SourceCatalog,
    mapping: TableMapping,
    *,
    where: str | None = None,
    on_chunk: Callable[[TableBatch], None] = lambda _: None,
) -> int:
    """Re-load a table (or the rows ``where`` selects) by key ranges, resumably.

    Runs beside the tail: merges are version-guarded, an equal version is replaced.
    Returns the rows read.
    """
    total = 0
    while True:
        batch = snapshot_chunk(engine, catalog, mapping, kind="backfill", where=where)
        total += batch.rows_read
        on_chunk(batch)
        if not batch.more_waiting:
            return total


def _saved_filter(
    engine: EngineParts, catalog: SourceCatalog, mapping: TableMapping, state: SnapshotState
) -> Expr | None:
    """The filter a running snapshot kept, parsed again: one saved before filters were
    parsed (or written into the table by hand) is refused, and its backfill abandoned so
    that the next backfill starts afresh instead of failing on it forever."""
    try:
        return check_filter(state.where_sql, catalog, mapping)
    except BadFilter as error:
        abandon_snapshot(engine.warehouse, state.snapshot_id)
        raise BadFilter(
            f"{error}; it is the saved filter of running {state.kind} "
            f"{state.snapshot_id}, now abandoned: start the backfill again"
        ) from error


def _snapshot_rows(
    engine: EngineParts,
    catalog: SourceCatalog,
    mapping: TableMapping,
    state: SnapshotState,
    *,
    after_key: tuple[Any, ...] | None,
    ahead: bool = False,
) -> tuple[pa.Table, datetime | None]:
    """The chunk after ``after_key``: read ahead already, or read now. ``ahead``: start
    reading it in the background instead (returns an empty table).

    For a backfill, also the stamp below which every row was complete when the read
    began. A backfill runs beside the tail: a row it reads in a second still being
    written may be written again within that second (the same version), and the
    tail, which reads that second once it is over, may commit the newer content
    before this chunk commits the older one at an equal version. The rows at or
    above that stamp are the tail's to load.
    """
    limit = engine.settings.capture.snapshot_rows
    query = build_snapshot_query(
        mapping, schema=catalog.schema_name, after_key=after_key, limit=limit,
        where=_saved_filter(engine, catalog, mapping, state),
        style=engine.source(catalog.system).style,
    )  # fmt: skip
    schema = source_schema(mapping)
    key = (mapping.table, state.snapshot_id, after_key, state.where_sql, limit)
    prefetch = engine.snapshot_io.prefetch(catalog.system)
    if state.kind == "backfill" and (ahead or key not in engine._complete_below):
        horizon = engine.horizon(catalog.system)
        engine._complete_below[key] = cursor_horizon(mapping, horizon.at)
    if ahead:
        prefetch.start(key, query, schema)
        return schema.empty_table(), None
    rows = prefetch.take(key)
    if rows is None:
        rows = engine.source(catalog.system).read_arrow(query, schema)
    return rows, engine._complete_below.pop(key, None)


def _feed_cache(
    engine: EngineParts, mapping: TableMapping, rows: pa.Table, result: CommitResult, *, last: bool
) -> tuple[CacheApplied | None, str | None]:
    """Hand a snapshot chunk to the background cache feed (applied several chunks at a
    time; all of it at the snapshot's ``last`` chunk); what the feed applied meanwhile."""
    feed = engine.snapshot_io.feed
    if result.batch_id is not None:
        feed.add(
            entity_columns(mapping), rows_with_batch_id(rows, result), batch_id=result.batch_id,
            previous_batch_id=result.previous_entity_batch_id, last=last,
        )  # fmt: skip
    done = feed.flush() if last else feed.results()
    return (done.applied[-1] if done.applied else None), done.busy
