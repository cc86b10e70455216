"""Cheap figures for the Dagster sensors: freshness, source observations, late rows,
quarantine, the horizon. Each is a few indexed reads, fit for a tick every few seconds
(``billing-sync status`` counts every row; this does not)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing_sync.alerts.conditions import Freshness
from billing_sync.capture.regression import newest_change
from billing_sync.engine.sync import SyncEngine
from billing_sync.entities import STATE_SCHEMA
from billing_sync.source.session import source_now
from billing_sync.sql import qualified


def table_freshness(engine: SyncEngine) -> list[Freshness]:
    """Per table: source clock minus what the warehouse is caught up to (None before the
    first load), against its tier's SLA."""
    conn = engine.warehouse.conn
    caught = {
        (row[0], row[1]): row[2]
        for row in conn.execute(
            f"SELECT system, source_table, caught_up_to FROM {STATE_SCHEMA}.watermark"
        ).fetchall()
    }
    now_by_system: dict[str, datetime] = {}
    found = []
    for catalog, mapping in engine.tables():
        if catalog.system not in now_by_system:
            now_by_system[catalog.system] = source_now(engine.source(catalog.system))
        up_to = caught.get((catalog.system, mapping.table))
        lag = None if up_to is None else (now_by_system[catalog.system] - up_to).total_seconds()
        sla = engine.settings.tier(mapping.tier).freshness_sla_seconds
        found.append(
            Freshness(mapping.entity, mapping.tier, lag, sla, f"{catalog.system}.{mapping.table}")
        )
    return found


def slowest_per_entity(tables: list[Freshness]) -> list[Freshness]:
    """Each entity's slowest table (one never loaded is the slowest)."""
    worst: dict[str, Freshness] = {}
    for here in tables:
        known = worst.get(here.entity)
        if known is None or (
            known.lag_seconds is not None
            and (here.lag_seconds is None or here.lag_seconds > known.lag_seconds)
        ):
            worst[here.entity] = here
    return [worst[entity] for entity in sorted(worst)]


def entity_freshness(engine: SyncEngine) -> list[Freshness]:
    """Per entity, its slowest table's lag against the tier's SLA."""
    return slowest_per_entity(table_freshness(engine))


def tier_last_commit(engine: SyncEngine) -> dict[str, float]:
    """Per tier, when a batch of it last committed (epoch seconds): a long sync run is
    healthy again from its first good batch, long before it ends."""
    rows = engine.warehouse.conn.execute(
        f"SELECT system, source_table, updated_at FROM {STATE_SCHEMA}.watermark"
        " WHERE last_batch_id IS NOT NULL OR caught_up_to IS NOT NULL"
    ).fetchall()
    committed = {(system, table): at.timestamp() for system, table, at in rows}
    latest: dict[str, float] = {}
    for catalog, mapping in engine.tables():
        at = committed.get((catalog.system, mapping.table))
        if at is not None:
            latest[mapping.tier] = max(at, latest.get(mapping.tier, at))
    return latest


@dataclass(frozen=True)
class SourceFigures:
    """One source table as the ``source/...`` asset observation shows it."""

    system: str
    table: str
    entity: str
    high_watermark: datetime | None  # newest change timestamp in the source
    row_count: int
    caught_up_to: datetime | None  # what the warehouse has read up to

    @property
    def behind_seconds(self) -> float | None:
        """How far the newest source change is past what the warehouse is caught up to."""
        if self.high_watermark is None:
            return 0.0
        if self.caught_up_to is None:
            return None
        return max(0.0, (self.high_watermark - self.caught_up_to).total_seconds())


def source_figures(engine: SyncEngine) -> list[SourceFigures]:
    figures = []
    for catalog, mapping in engine.tables():
        source = engine.source(catalog.system)
        newest = newest_change(source, catalog, mapping)
        rows = source.scalar(
            f"SELECT count(*) FROM {qualified(catalog.schema_name, mapping.table)}"
        )
        mark = engine.warehouse.watermark(catalog.system, mapping, missing_ok=True)
        figures.append(
            SourceFigures(
                catalog.system, mapping.table, mapping.entity, newest, int(rows), mark.caught_up_to
            )
        )
    return figures


def late_rows_by_entity(engine: SyncEngine, *, window_seconds: float) -> dict[str, int]:
    rows = engine.warehouse.conn.execute(
        f"SELECT entity, sum(late_rows) FROM {STATE_SCHEMA}.batch_log"
        " WHERE late_rows > 0 AND committed_at > clock_timestamp() - make_interval(secs => %s)"
        " GROUP BY entity",
        (window_seconds,),
    ).fetchall()
    return {entity: int(total) for entity, total in rows}


def horizon_hold(engine: SyncEngine) -> tuple[str, str | None, float]:
    """The system, pid and seconds of the longest source transaction holding the horizon."""
    worst: tuple[str, str | None, float] = ("source", None, 0.0)
    for system in dict.fromkeys(catalog.system for catalog in engine.catalogs):
        horizon = engine.horizon(system)
        if horizon.held_back_by is not None and horizon.hold_seconds > worst[2]:
            worst = (system, horizon.held_back_by.pid, horizon.hold_seconds)
    return worst
