"""Between micro-batches: wait until the source has rows to read, not a fixed interval.

A tier's loop used to sleep ``poll_interval`` after a batch that found nothing more: a
change committed just after a batch read waited that long before the next one began.
Instead the loop probes every ``probe_interval``: for each table, the change query of
its next window with ``LIMIT 1`` (the same bounded query a batch runs, one index range
read from the watermark), under the horizon read just before. The first table with a
row ends the wait; ``poll_interval`` still bounds it, so quiet tables keep their
``caught_up_to`` moving through the batches that find nothing.

The probe reads what a batch would: rows past the committed watermark and below the
horizon, so it never starts a batch for a change still in the current second of a
second-resolution table (the floored horizon excludes it) nor for one an open
transaction holds back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from billing_sync.capture.cursor import cursor_horizon
from billing_sync.capture.query import build_change_query
from billing_sync.capture.window import Cursor, Window
from billing_sync.config import SourceCatalog, TableMapping, Tier
from billing_sync.engine.batch import TableBatch
from billing_sync.engine.parts import EngineParts
from billing_sync.source.schema import source_schema
from billing_sync.tier_failures import TablesFailed


def watermarks(results: Sequence[TableBatch]) -> dict[tuple[str, str], Cursor] | None:
    """The tail cursors the last micro-batch committed, per ``(system, table)``; None
    when a table of it is not tailing yet (a first load's chunks run back to back)."""
    found: dict[tuple[str, str], Cursor] = {}
    for result in results:
        if result.kind != "tail" or result.cursor is None:
            return None
        found[(result.system, result.table)] = result.cursor
    return found


def has_rows(engine: EngineParts, catalog: SourceCatalog, mapping: TableMapping,
             after: Cursor, horizon_at: datetime) -> bool:  # fmt: skip
    """Whether ``mapping``'s next window under ``horizon_at`` holds a row."""
    window = Window(after=after, horizon=cursor_horizon(mapping, horizon_at), limit=1)
    if window.is_empty:
        return False
    source = engine.source(catalog.system)
    query = build_change_query(mapping, schema=catalog.schema_name, window=window,
                               style=source.style)  # fmt: skip
    rows: int = source.read_arrow(query, source_schema(mapping)).num_rows
    return rows > 0


def source_moved(
    engine: EngineParts,
    tables: Sequence[tuple[SourceCatalog, TableMapping]],
    cursors: dict[tuple[str, str], Cursor],
) -> bool:
    """Whether any of ``tables`` has a row its next batch would read now."""
    horizons: dict[str, datetime] = {}
    for catalog, mapping in tables:
        after = cursors.get((catalog.system, mapping.table))
        if after is None:
            return True  # not seen in the last batch (it failed): let a batch retry it
        if catalog.system not in horizons:
            horizons[catalog.system] = engine.horizon(catalog.system).at
        if has_rows(engine, catalog, mapping, after, horizons[catalog.system]):
            return True
    return False


def wait_for_rows(
    engine: EngineParts,
    tables: Sequence[tuple[SourceCatalog, TableMapping]],
    results: Sequence[TableBatch],
    *,
    until: float,
    probe_interval: float,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Sleep until ``until`` (``time.monotonic()``), or until a probe every
    ``probe_interval`` finds a row to read; ``probe_interval`` 0: just sleep."""
    cursors = watermarks(results)
    if cursors is None:
        return
    while not should_stop():
        left = until - time.monotonic()
        if left <= 0:
            return
        if probe_interval <= 0:
            time.sleep(left)
            return
        time.sleep(min(probe_interval, left))
        if time.monotonic() < until and source_moved(engine, tables, cursors):
            return


def loop(
    engine: EngineParts,
    sync_once: Callable[[], list[TableBatch]],
    *,
    tier: Tier | None,
    batches: int,
    poll_interval: float,
    probe_interval: float,
    on_batch: Callable[[list[TableBatch]], None],
    on_failure: Callable[[TablesFailed], None],
    should_stop: Callable[[], bool],
    failures: dict[str, Exception],
) -> int:
    """Up to ``batches`` micro-batches (see ``SyncEngine.run``); failures gathered in
    ``failures``. Returns how many ran."""
    done = 0
    while done < batches and not should_stop():
        started = time.monotonic()
        try:
            results = sync_once()
        except TablesFailed as failed:
            results = failed.results
            failures.update(failed.failures)
            on_failure(failed)
        done += 1
        on_batch(results)
        if any(result.more_waiting for result in results):
            continue
        wait_for_rows(
            engine, list(engine.tables(tier)), results, until=started + poll_interval,
            probe_interval=probe_interval, should_stop=should_stop,
        )  # fmt: skip
    return done
