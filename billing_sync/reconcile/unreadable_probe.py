"""Running the unreadable-cursor probe (:mod:`billing_sync.capture.unreadable`) on a
table: count, sample, apply the catalog's rule, and say so."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from billing_sync.capture.unreadable import (
    EXPECTATION,
    REASON,
    UnreadableCursors,
    build_unreadable_count,
    build_unreadable_rows,
)
from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.source.schema import fetch_type
from billing_sync.source.session import SourceSession
from billing_sync.transform.normalize import normalized_source_key
from billing_sync.validate.quarantine import QUARANTINE_TABLE

if TYPE_CHECKING:
    from billing_sync.sync import SyncEngine

log = logging.getLogger(__name__)

# The quarantine's version of a row with no readable stamp: below any real one, so the
# first readable version the tail loads releases it as fixed.
NO_VERSION = datetime(1900, 1, 1)


def probe_unreadable(
    engine: SyncEngine, catalog: SourceCatalog, mapping: TableMapping
) -> UnreadableCursors:
    """Count the table's rows with an unreadable cursor; quarantine a sample of them
    (up to :data:`~billing_sync.capture.unreadable.SAMPLE_ROWS`) when the catalog's
    ``unreadable_cursor`` rule says so; log a warning naming the table and keys."""
    catalog, mapping = engine.checked(catalog, mapping)
    source = engine.source(catalog.system)
    now: datetime = source.now()
    count = count_unreadable(source, catalog, mapping, now)
    if count == 0:
        return UnreadableCursors(catalog.system, mapping.table, 0)
    schema = pa.schema(
        [*(pa.field(name, fetch_type(mapping, name)) for name in mapping.key),
         pa.field("_stamp", pa.string())]
    )  # fmt: skip
    rows = source.read_arrow(
        build_unreadable_rows(
            mapping, schema=catalog.schema_name, source_now=now, style=source.style
        ),
        schema,
    )
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    keys = [tuple(row) for row in frame.select(mapping.key).rows()]
    stamps = [str(stamp) for stamp in frame.get_column("_stamp").to_list()]
    quarantined = 0
    if mapping.unreadable_cursor == "quarantine":
        source_keys = frame.select(normalized_source_key(mapping)).to_series().to_list()
        quarantined = _quarantine(engine, catalog.system, mapping, source_keys, stamps)
    found = UnreadableCursors(catalog.system, mapping.table, count, keys, stamps, quarantined)
    log.warning("%s (rule: %s)", found.summary(), mapping.unreadable_cursor)
    return found


def count_unreadable(
    source: SourceSession, catalog: SourceCatalog, mapping: TableMapping, now: datetime
) -> int:
    """Rows of the table whose cursor the tail cannot read (read-only, one query)."""
    query = build_unreadable_count(
        mapping, schema=catalog.schema_name, source_now=now, style=source.style
    )
    return int(source.scalar(query.text, query.params) or 0)


def _quarantine(
    engine: SyncEngine, system: str, mapping: TableMapping, keys: list[str], stamps: list[str]
) -> int:
    column = ",".join(mapping.cursor_columns)
    params: list[tuple[Any, ...]] = []
    for key, stamp in zip(keys, stamps, strict=True):
        problem = {"expectation": EXPECTATION, "column": column, "value": stamp,
                   "converter": "cursor", "reason": REASON}  # fmt: skip
        params.append((mapping.entity, system, key, mapping.table, NO_VERSION, EXPECTATION,
                       column, stamp, json.dumps([problem])))  # fmt: skip
    conn = engine.warehouse.conn
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {QUARANTINE_TABLE} AS q (entity, source_system, source_key,"
            " source_table, source_version, expectation, column_name, offending_value,"
            " problems, orphan_only, status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, false, 'open')"
            " ON CONFLICT (entity, source_system, source_key) DO UPDATE SET"
            " last_seen = clock_timestamp(), times_seen = q.times_seen + 1,"
            " offending_value = EXCLUDED.offending_value, problems = EXCLUDED.problems,"
            " status = 'open', released_at = NULL, released_batch_id = NULL,"
            " release_reason = NULL, expectation = EXCLUDED.expectation,"
            " column_name = EXCLUDED.column_name, source_version = EXCLUDED.source_version"
            " WHERE q.expectation = EXCLUDED.expectation OR q.status = 'released'",
            params,
        )
    return len(params)
