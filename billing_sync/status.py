"""Per-table status: watermark, lag, rows in source, warehouse and cache."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing_sync.capture.query import qualified
from billing_sync.capture.window import OpenTransaction
from billing_sync.load.cache import CacheBusy
from billing_sync.load.ddl import STATE_SCHEMA, entity_columns
from billing_sync.reconcile.unreadable_probe import count_unreadable
from billing_sync.serve.lag import CacheLag, cache_lags
from billing_sync.sync import SyncEngine


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


def table_status(engine: SyncEngine) -> list[TableStatus]:
    """Read-only status of every table; counts are exact (``count(*)``)."""
    warehouse = engine.warehouse
    cache_counts, cache_batches = _cache_state(engine)
    lags = {} if cache_batches is None else cache_lags(warehouse.conn, cache_batches)
    statuses = []
    for catalog, mapping in engine.tables():
        source = engine.source(catalog.system)
        horizon = source.horizon(delay=timedelta(seconds=engine.settings.capture.delay_seconds))
        watermark = warehouse.watermark(catalog.system, mapping)
        table = entity_columns(mapping).table
        with warehouse.conn.transaction():
            warehouse_rows = warehouse.conn.execute(
                f"SELECT count(*) FROM {table} WHERE _source_system = %s",
                (catalog.system,),
            ).fetchone()
            late = warehouse.conn.execute(
                f"SELECT late_rows FROM {STATE_SCHEMA}.watermark"
                " WHERE system = %s AND source_table = %s",
                (catalog.system, mapping.table),
            ).fetchone()
            entity_batch = warehouse.conn.execute(
                f"SELECT last_batch_id FROM {STATE_SCHEMA}.entity_state WHERE entity = %s",
                (mapping.entity,),
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
                cache_rows=None
                if cache_counts is None
                else cache_counts.get((catalog.system, mapping.entity), 0),
                warehouse_batch=int(entity_batch[0]) if entity_batch else 0,
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
    engine: SyncEngine,
) -> tuple[dict[tuple[str, str], int] | None, dict[str, int] | None]:
    try:
        with engine.cache._connect(read_only=True) as con:
            counts: dict[tuple[str, str], int] = {}
            for catalog, mapping in engine.tables():
                table = entity_columns(mapping).table
                rows = con.execute(
                    f"SELECT count(*) FROM {table} WHERE _source_system = ?", [catalog.system]
                ).fetchall()
                counts[(catalog.system, mapping.entity)] = int(rows[0][0])
            batches = dict(
                con.execute(
                    f"SELECT entity, last_batch_id FROM {STATE_SCHEMA}.cache_state"
                ).fetchall()
            )
            return counts, batches
    except CacheBusy:
        return None, None


def format_status(statuses: list[TableStatus]) -> str:
    header = (
        f"{'table':<20} {'tier':<9} {'caught up to':<26} {'lag s':>7} "
        f"{'cache lag s':>11} {'source':>9} {'warehouse':>9} {'cache':>9} {'cache batch':>12}"
        f" {'late':>6}"
    )
    lines = [header, "-" * len(header)]
    for s in statuses:
        cache_rows = "busy" if s.cache_rows is None else str(s.cache_rows)
        cache_batch = "busy" if s.cache_batch is None else f"{s.cache_batch}/{s.warehouse_batch}"
        lag = "-" if s.lag_seconds is None else f"{s.lag_seconds:.1f}"
        cache_lag = (
            "busy"
            if s.cache_lag is None
            else f"{s.cache_lag.seconds:.1f}"
            if s.cache_lag.behind
            else "-"
        )
        lines.append(
            f"{s.system + '.' + s.table:<20} {s.tier:<9} {s.caught_up_to or '-'!s:<26} {lag:>7} "
            f"{cache_lag:>11} {s.source_rows:>9} {s.warehouse_rows:>9} {cache_rows:>9}"
            f" {cache_batch:>12} {s.late_rows:>6}"
        )
    behind = sorted({s.entity for s in statuses if s.cache_lag and s.cache_lag.behind})
    if behind:
        lines.append(
            f"cache behind the warehouse for {', '.join(behind)}: a process holds the DuckDB "
            "file open; it catches up from the warehouse once the file is free"
        )
    for s in statuses:
        if s.unreadable_rows:
            lines.append(
                f"{s.system}.{s.table}: {s.unreadable_rows} rows with an unreadable change stamp"
                " (NULL, 'infinity' or not a real date and time): the tail never reads them;"
                " `billing-sync verify` quarantines and lists them"
            )
    holders = {(s.held_back_by, s.hold_seconds) for s in statuses if s.held_back_by}
    for holder, age in holders:
        lines.append(
            f"horizon held back {age:.0f}s by source transaction pid {holder.pid}, open since "
            f"{holder.started_at}: freshness waits for it to end"
        )
    return "\n".join(lines)
