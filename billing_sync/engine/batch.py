"""What one micro-batch did to one table (:class:`TableBatch`), built in one place."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from billing_sync.capture.cursor import decode_cursor
from billing_sync.capture.window import Cursor
from billing_sync.config import TableMapping, Tier
from billing_sync.load.cache import CacheApplied
from billing_sync.load.warehouse import CommitResult
from billing_sync.source.horizon import Horizon, OpenTransaction
from billing_sync.source.schema import CURSOR_ALIAS
from billing_sync.validate.quarantine import Screened
from billing_sync.validate.report import ValidationReport


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


@dataclass(frozen=True)
class TableBatch:
    """What one micro-batch did to one table: the figures a materialization carries."""

    system: str
    table: str
    entity: str
    tier: Tier
    rows_read: int
    inserted: int
    updated: int
    deleted: int
    batch_id: int | None
    cursor: Cursor | None
    caught_up_to: datetime | None
    more_waiting: bool
    lag_seconds: float | None
    held_back_by: OpenTransaction | None
    hold_seconds: float
    seconds: float
    validation_seconds: float
    cache: CacheApplied | None = None
    cache_error: str | None = None
    cache_lag: CacheLag | None = None  # the cache against the warehouse after this batch
    late_rows: int = 0
    read_ahead_rows: int = 0  # hot rows read above the horizon after the batch (read_ahead)
    kind: str = "tail"  # tail, initial (first-load snapshot chunk) or backfill
    snapshot_progress: tuple[int, int | None] | None = None  # rows done, rows in all
    quarantined: int = 0  # rows of this batch kept in quarantine (pending orphans included)
    released: int = 0  # rows released from quarantine into this batch
    validation: ValidationReport | None = None  # the suite's and parent rules' failures
    # The catalog's zone: ``cursor`` and ``caught_up_to`` are the biller's wall time in it.
    timezone: str = "UTC"
    # What a change waited for before this batch could read it (the bench reports them):
    # the source clock minus the horizon (the capture delay, or an open transaction's
    # hold), and the horizon minus the window's bound (floored to the stamp's resolution).
    delay_seconds: float = 0.0
    floor_seconds: float = 0.0

    @property
    def watermark_label(self) -> str:
        """The watermark as displays show it: its stamp and the zone it is in."""
        return f"{self.cursor.change_ts} {self.timezone}" if self.cursor else ""

    @property
    def changed(self) -> bool:
        return self.batch_id is not None

    @classmethod
    def from_commit(
        cls,
        mapping: TableMapping,
        *,
        system: str,
        kind: str,
        rows_read: int,
        result: CommitResult,
        screened: Screened,
        started: float,
        cursor: Cursor | None,
        caught_up_to: datetime | None,
        more_waiting: bool,
        cache: tuple[CacheApplied | None, str | None],
        horizon: Horizon | None = None,
        lag_seconds: float | None = None,
        late_rows: int = 0,
        late_quarantined: int = 0,
        read_ahead_rows: int = 0,
        snapshot_progress: tuple[int, int | None] | None = None,
        timezone: str = "UTC",
        window_horizon: datetime | None = None,
    ) -> TableBatch:
        """The record of a batch the warehouse committed (or found nothing to commit for).

        ``started``: ``time.perf_counter()`` when the batch began; ``cache``: what
        applying it to the cache gave (applied, or why not); ``horizon``: the window's
        (none for a snapshot chunk, which reads every row as it is).
        """
        applied, cache_error = cache
        delay = floor = 0.0
        if horizon is not None:
            delay = (horizon.source_now - horizon.at).total_seconds()
            if window_horizon is not None:
                floor = (horizon.at - window_horizon).total_seconds()
        return cls(
            system=system, table=mapping.table, entity=mapping.entity, tier=mapping.tier,
            rows_read=rows_read, inserted=result.inserted, updated=result.updated,
            deleted=result.deleted, batch_id=result.batch_id, cursor=cursor,
            caught_up_to=caught_up_to, more_waiting=more_waiting, lag_seconds=lag_seconds,
            held_back_by=horizon.held_back_by if horizon is not None else None,
            hold_seconds=horizon.hold_seconds if horizon is not None else 0.0,
            seconds=time.perf_counter() - started, validation_seconds=screened.seconds,
            cache=applied, cache_error=cache_error, late_rows=late_rows, kind=kind,
            read_ahead_rows=read_ahead_rows,
            snapshot_progress=snapshot_progress,
            quarantined=screened.quarantined + late_quarantined,
            released=screened.released_rows, validation=screened.report, timezone=timezone,
            delay_seconds=delay, floor_seconds=floor,
        )  # fmt: skip


def rows_with_batch_id(rows: pa.Table, result: CommitResult) -> pa.Table:
    """The rows the warehouse wrote (all, or ``written_keys``), with their ``_batch_id``."""
    written = (
        rows
        if result.wrote_all
        else rows.filter(
            pc.is_in(rows.column("_source_key"), pa.array(result.written_keys, pa.string()))
        )
    )
    return written.append_column(
        "_batch_id", pa.repeat(pa.scalar(result.batch_id, pa.int64()), written.num_rows)
    )


def last_cursor(raw: pa.Table, mapping: TableMapping) -> Cursor | None:
    """The cursor of the last row read (rows come in cursor order), or None."""
    if raw.num_rows == 0:
        return None
    last = decode_cursor(raw.slice(raw.num_rows - 1, 1), mapping).to_pylist()[0]
    return Cursor(last[CURSOR_ALIAS], tuple(last[name] for name in mapping.key))
