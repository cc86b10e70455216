"""Late rows: rows that committed below the watermark after it passed them.

Each batch also re-reads a ``lookback`` region below the watermark (DESIGN §4); keys found
there whose version the warehouse lacks are read again and applied, counted and reported,
since they show the capture delay is too small.
"""

from __future__ import annotations

import logging
from datetime import datetime

import polars as pl
import pyarrow as pa

from billing_sync.capture.cursor import decode_cursor
from billing_sync.capture.lookback import Slice
from billing_sync.capture.query import build_region_keys_query, build_rows_by_key_query
from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.engine.parts import EngineParts
from billing_sync.load.warehouse import Watermark
from billing_sync.source.schema import CURSOR_ALIAS, region_schema, source_schema
from billing_sync.source.session import SourceSession
from billing_sync.transform.normalize import normalized_source_key
from billing_sync.validate.quarantine import Screened

log = logging.getLogger(__name__)

LOOKBACK_ROWS = 500_000  # keys of one stamp past which a slice stops growing, with a warning


def late_rows(
    engine: EngineParts,
    source: SourceSession,
    catalog: SourceCatalog,
    mapping: TableMapping,
    watermark: Watermark,
) -> tuple[pa.Table, Screened] | None:
    """Rows that committed below the watermark since it passed them (the lookback)."""
    due = engine.lookback.due(catalog.system, mapping, watermark)
    if due is None:
        return None
    keys, reached = _slice_keys(source, catalog, mapping, due)
    versions = keys.select(
        normalized_source_key(mapping).alias("_source_key"),
        pl.col(CURSOR_ALIAS).alias("_source_version"),
        *mapping.key,
    )
    stale = set(engine.warehouse.stale_keys(catalog.system, mapping, versions.to_arrow()))
    engine.lookback.swept(catalog.system, mapping, due, reached=reached)
    if not stale:
        return None
    wanted = versions.filter(pl.col("_source_key").is_in(list(stale))).select(mapping.key)
    query = build_rows_by_key_query(
        mapping,
        schema=catalog.schema_name,
        keys=[tuple(row) for row in wanted.rows()],
        style=source.style,
    )
    return engine.prepare(
        source.read_arrow(query, source_schema(mapping)), catalog, mapping, recheck=False
    )


def _slice_keys(
    source: SourceSession, catalog: SourceCatalog, mapping: TableMapping, due: Slice
) -> tuple[pl.DataFrame, datetime | None]:
    """The keys and stamps of ``due``, and the stamp the pass goes on from (None: the pass
    ended). A full slice whose keys all share its first stamp is read again with a larger
    limit: going on from that stamp would read the same keys forever."""
    limit = due.limit
    while True:
        query = build_region_keys_query(
            mapping, schema=catalog.schema_name, since=due.since, until=due.until,
            limit=limit, style=source.style,
        )  # fmt: skip
        region = pl.from_arrow(decode_cursor(source.read_arrow(query, region_schema(mapping)),
                                             mapping))  # fmt: skip
        assert isinstance(region, pl.DataFrame)
        if region.height < limit:
            return region, None
        reached = region.get_column(CURSOR_ALIAS).max()
        assert isinstance(reached, datetime)
        if reached > due.since:
            return region, reached
        if limit >= LOOKBACK_ROWS:
            log.warning("%s.%s: more than %d rows share the change timestamp %s; the "
                        "lookback swept %d of them", catalog.system, mapping.table,
                        LOOKBACK_ROWS, reached, limit)  # fmt: skip
            return region, None
        limit = min(limit * 4, LOOKBACK_ROWS)
