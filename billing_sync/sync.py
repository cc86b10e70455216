"""The engine: ``capture -> transform -> validate -> load``, called by the CLI, Dagster and tests.

One micro-batch reads, for each table of a tier, the rows in its next window, turns
them into normalized rows, validates them, merges them into the warehouse together
with the new watermark, and applies them to the DuckDB cache. A failure before the
warehouse commit leaves the watermark where it was; a busy cache only falls behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from billing_sync.capture.cursor import cursor_horizon, decode_cursor, rows_stamped_before
from billing_sync.capture.lookback import Lookback
from billing_sync.capture.query import (
    CURSOR_ALIAS,
    build_change_query,
    build_region_keys_query,
    build_rows_by_key_query,
)
from billing_sync.capture.regression import RegressionGuard, SourceRegressionError, newest_change
from billing_sync.capture.snapshot import build_count_query, build_snapshot_query, check_filter
from billing_sync.capture.window import Cursor, Horizon, OpenTransaction, Window, advance
from billing_sync.config import (
    ConfigError,
    Settings,
    SourceCatalog,
    TableMapping,
    Tier,
    load_catalogs,
)
from billing_sync.faults import crash_point
from billing_sync.load.cache import Cache, CacheApplied, CacheBusy
from billing_sync.load.ddl import entities_of, entity_columns
from billing_sync.load.snapshot_io import SnapshotIO
from billing_sync.load.snapshots import (
    SnapshotState,
    commit_chunk,
    running_snapshot,
    start_snapshot,
)
from billing_sync.load.warehouse import CommitResult, Warehouse, Watermark
from billing_sync.postgres import DatabaseUrls, resolve_database_urls
from billing_sync.serve.lag import CacheLag, entities_behind, follow_up
from billing_sync.serve.views import create_cache_views, create_warehouse_views
from billing_sync.source.reflect import check_catalog
from billing_sync.source.session import SourceSession, SourceUnavailable
from billing_sync.tier_failures import TablesFailed, each_isolated
from billing_sync.transform.normalize import (
    normalize_batch,
    normalized_source_key,
    region_schema,
    source_schema,
    with_conversion_failures,
)
from billing_sync.transform.policy import apply_policy
from billing_sync.transform.protect import Protector
from billing_sync.validate import quarantine
from billing_sync.validate.polars_suite import PolarsValidator
from billing_sync.validate.quarantine import Screened
from billing_sync.validate.report import BatchValidationError, ValidationReport
from billing_sync.validate.runner import Validator

log = logging.getLogger(__name__)

LOOKBACK_ROWS = 500_000  # keys per lookback sweep; a larger region warns


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
    kind: str = "tail"  # tail, initial (first-load snapshot chunk) or backfill
    snapshot_progress: tuple[int, int | None] | None = None  # rows done, rows in all
    quarantined: int = 0  # rows of this batch kept in quarantine (pending orphans included)
    released: int = 0  # rows released from quarantine into this batch
    validation: ValidationReport | None = None  # the suite's and parent rules' failures

    @property
    def changed(self) -> bool:
        return self.batch_id is not None


@dataclass
class SyncEngine:
    """Long-lived connections and state for syncing a set of catalogs."""

    settings: Settings
    catalogs: list[SourceCatalog]
    urls: DatabaseUrls
    run_id: str | None = None
    validator: Validator = field(default_factory=Validator)
    polars_validator: PolarsValidator = field(default_factory=PolarsValidator)

    def __post_init__(self) -> None:
        capture = self.settings.capture
        self.guard = RegressionGuard(capture)
        key = self.settings.hmac_key
        self.protector = Protector.for_catalogs(
            self.catalogs, hmac_key=key.get_secret_value() if key else None
        )
        self.lookback = Lookback(
            timedelta(seconds=capture.lookback_seconds), capture.lookback_interval_seconds
        )
        self._sources: dict[str, SourceSession] = {}
        self._warehouse: Warehouse | None = None
        entities = entities_of(self.catalogs)
        self.cache = Cache(
            self.settings.resolved_cache_path,
            entities,
            on_create=lambda con: create_cache_views(con, entities),  # a new or rebuilt file too
        )
        self._cache_behind: set[str] = set()  # entities the cache lacks warehouse batches of
        # A backfill chunk's read: the stamps complete when it started (see _snapshot_rows).
        self._complete_below: dict[tuple[Any, ...], datetime] = {}
        self.snapshot_io = SnapshotIO(
            cache=self.cache, warehouse_url=lambda: self.urls.warehouse, source=self.source
        )
        self._sources_checked = False

    @classmethod
    def from_settings(cls, settings: Settings, *, run_id: str | None = None) -> SyncEngine:
        catalogs = load_catalogs(settings)
        urls = resolve_database_urls(settings)
        if settings.suites_dir is None:
            return cls(settings, catalogs, urls, run_id=run_id)
        return cls(
            settings, catalogs, urls, run_id=run_id,
            validator=Validator(suites_dir=settings.suites_dir),
            polars_validator=PolarsValidator(suites_dir=settings.suites_dir),
        )  # fmt: skip

    def horizon(self, system: str) -> Horizon:
        """The source's horizon now, with the capture settings' delay (DESIGN §4)."""
        capture = self.settings.capture
        return self.source(system).horizon(
            delay=timedelta(seconds=capture.delay_seconds),
            use_transactions=capture.use_transaction_horizon,
        )

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = Warehouse(self.urls.warehouse)
        return self._warehouse

    def source(self, system: str) -> SourceSession:
        if system not in self._sources:
            zone = next((c.timezone for c in self.catalogs if c.system == system), None)
            self._sources[system] = SourceSession(self.urls.source_for(system), timezone=zone)
        return self._sources[system]

    def setup(self) -> None:
        """Create warehouse and cache tables and watermark rows (idempotent)."""
        self.warehouse.setup(self.catalogs)
        create_warehouse_views(self.warehouse.conn, self.cache.entities)
        try:
            self.cache.setup()
        except CacheBusy as busy:
            log.warning("%s; its tables are created at its next apply", busy)
        # Left behind by an earlier run (a reader held the file): caught up after a batch.
        self._cache_behind = entities_behind(self.cache, self.warehouse.conn)

    def close(self) -> None:
        try:
            self.snapshot_io.close()  # applies gathered snapshot chunks to the cache
        finally:
            for session in self._sources.values():
                session.close()
            self._sources.clear()
            if self._warehouse is not None:
                self._warehouse.close()
                self._warehouse = None

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_sources(self) -> None:
        """Check every catalog against its reflected source schema, once (DESIGN §5): a
        :class:`ConfigError` naming file, table and column otherwise. The checked
        catalogs (which know their source column types) replace the loaded ones."""
        if self._sources_checked:
            return
        # Then the protection policy (transform.policy): sensitive-looking columns must
        # state theirs, free text is redacted unless the catalog opts out.
        self.catalogs = [
            apply_policy(check_catalog(self.source(catalog.system), catalog))
            for catalog in self.catalogs
        ]
        self._sources_checked = True

    def checked(
        self, catalog: SourceCatalog, mapping: TableMapping
    ) -> tuple[SourceCatalog, TableMapping]:
        """The checked catalog and mapping for ``catalog``'s ``mapping``."""
        self.check_sources()
        found = next(c for c in self.catalogs if c.system == catalog.system)
        return found, found.by_table[mapping.table]

    def tables(self, tier: Tier | None = None) -> Iterator[tuple[SourceCatalog, TableMapping]]:
        for catalog in self.catalogs:
            for mapping in catalog.tables:
                if tier is None or mapping.tier == tier:
                    yield catalog, mapping

    def sync_once(self, tier: Tier | None = None) -> list[TableBatch]:
        """One micro-batch over every table of ``tier`` (all tables when ``None``).

        A table that fails does not hold back the others: they sync and commit, then
        :class:`TablesFailed` names the failed ones (its ``results``: the others')."""
        results, failed = each_isolated(
            ((f"{c.system}.{m.table}", (c, m)) for c, m in self.tables(tier)),
            lambda pair: self.sync_table(*pair),
            fatal=(ConfigError, SourceRegressionError, SourceUnavailable),
        )
        self.snapshot_io.feed.wait()  # one writer of the cache file in this process
        results = follow_up(
            results, cache=self.cache, warehouse=self.warehouse, behind=self._cache_behind
        )
        if failed:
            raise TablesFailed(failed, results)
        return results

    def sync_table(self, catalog: SourceCatalog, mapping: TableMapping) -> TableBatch:
        """One micro-batch of one table: the first load's next chunk, or the tail."""
        catalog, mapping = self.checked(catalog, mapping)
        watermark = self.warehouse.watermark(catalog.system, mapping)
        if watermark.cursor is None:
            return self.snapshot_chunk(catalog, mapping, kind="initial")
        started = time.perf_counter()
        capture = self.settings.capture
        source = self.source(catalog.system)
        horizon = self.horizon(catalog.system)
        read_at = time.perf_counter()
        self.guard.check(source, catalog, mapping, watermark, warehouse=self.warehouse)
        window = Window(
            after=watermark.cursor,
            horizon=cursor_horizon(mapping, horizon.at),
            limit=capture.batch_rows,
        )
        raw = self._read(source, catalog, mapping, window)
        crash_point("after_read")
        step = advance(window, rows_read=raw.num_rows, last_row=_last_cursor(raw, mapping))
        rows, screened = self.prepare(raw, catalog, mapping)
        late, late_screened = self._late_rows(source, catalog, mapping, watermark) or (None, None)
        lag = _lag_seconds(screened.good_arrow, horizon.source_now, time.perf_counter() - read_at)
        result = self.warehouse.commit_batch(
            system=catalog.system,
            mapping=mapping,
            rows=rows,
            window=window,
            advance=step,
            lag_seconds=lag,
            run_id=self.run_id,
            late=late,
            quarantine=screened,
            late_quarantine=late_screened,
        )
        crash_point("after_warehouse_commit")
        if result.late_rows:
            log.warning(
                "%s.%s: %d late rows (committed below the watermark): the capture delay "
                "is too small for this source's transactions",
                catalog.system, mapping.table, result.late_rows,
            )  # fmt: skip
        if late is None:
            cache, cache_error = self.apply_cache(mapping, rows, result)
        else:  # two batches (late, tail) committed: the cache takes both from the warehouse
            cache, cache_error = self._catch_up_cache(mapping)
        crash_point("after_cache_apply")
        return TableBatch(
            system=catalog.system,
            table=mapping.table,
            entity=mapping.entity,
            tier=mapping.tier,
            rows_read=raw.num_rows,
            inserted=result.inserted,
            updated=result.updated,
            deleted=result.deleted,
            batch_id=result.batch_id,
            cursor=step.cursor,
            caught_up_to=step.caught_up_to or watermark.caught_up_to,
            more_waiting=step.more_waiting,
            lag_seconds=lag,
            held_back_by=horizon.held_back_by,
            hold_seconds=horizon.hold_seconds,
            seconds=time.perf_counter() - started,
            validation_seconds=screened.seconds,
            cache=cache,
            cache_error=cache_error,
            late_rows=result.late_rows,
            quarantined=screened.quarantined + (late_screened.quarantined if late_screened else 0),
            released=screened.released_rows,
            validation=screened.report,
        )

    def prepare(
        self,
        raw: pa.Table,
        catalog: SourceCatalog,
        mapping: TableMapping,
        *,
        polars_validation: bool = False,
        **screening: bool,
    ) -> tuple[pa.Table, Screened]:
        """Normalize and validate source rows (DESIGN §6): the rows to merge (good ones, and
        any released from quarantine) and what goes to quarantine. A batch with too many
        bad rows raises before any write. ``polars_validation``: the same suite evaluated
        in Polars (:mod:`billing_sync.validate.polars_suite`) instead of GX."""
        # While a new run still imports GX, the same suite in Polars (identical failures).
        use_polars = polars_validation or self.validator.warming(mapping.entity)
        validator = self.polars_validator if use_polars else self.validator
        normalized = normalize_batch(
            raw, mapping, system=catalog.system, synced_at=datetime.now(UTC),
            protector=self.protector,
        )  # fmt: skip
        frame = normalized.frame
        report = with_conversion_failures(
            validator.validate(mapping.entity, frame), normalized.failures
        )
        screened = quarantine.screen(
            self.warehouse.conn, system=catalog.system, mapping=mapping, frame=frame,
            report=report, suite=validator.suite(mapping.entity),
            source=quarantine.SourceParents(self.source(catalog.system), catalog), **screening,
        )  # fmt: skip
        if screened.fails_batch:
            raise BatchValidationError(screened.report, screened.reason)
        return screened.to_load(), screened

    def _late_rows(
        self,
        source: SourceSession,
        catalog: SourceCatalog,
        mapping: TableMapping,
        watermark: Watermark,
    ) -> tuple[pa.Table, Screened] | None:
        """Rows that committed below the watermark since it passed them (the lookback)."""
        region = self.lookback.due(catalog.system, mapping, watermark)
        if region is None:
            return None
        since, until = region
        query = build_region_keys_query(
            mapping, schema=catalog.schema_name, since=since, until=until, limit=LOOKBACK_ROWS
        )
        region = decode_cursor(source.read_arrow(query, region_schema(mapping)), mapping)
        keys = pl.from_arrow(region)
        assert isinstance(keys, pl.DataFrame)
        if keys.height >= LOOKBACK_ROWS:
            log.warning("%s.%s: lookback region capped at %d rows", catalog.system,
                        mapping.table, LOOKBACK_ROWS)  # fmt: skip
        versions = keys.select(
            normalized_source_key(mapping).alias("_source_key"),
            pl.col(CURSOR_ALIAS).alias("_source_version"),
            *mapping.key,
        )
        stale = set(self.warehouse.stale_keys(catalog.system, mapping, versions.to_arrow()))
        self.lookback.swept(catalog.system, mapping, until)
        if not stale:
            return None
        wanted = versions.filter(pl.col("_source_key").is_in(list(stale))).select(mapping.key)
        query = build_rows_by_key_query(
            mapping, schema=catalog.schema_name, keys=[tuple(row) for row in wanted.rows()]
        )
        return self.prepare(
            source.read_arrow(query, source_schema(mapping)), catalog, mapping, recheck=False
        )

    def _read(
        self, source: SourceSession, catalog: SourceCatalog, mapping: TableMapping, window: Window
    ) -> pa.Table:
        schema = source_schema(mapping)
        if window.is_empty:
            return schema.empty_table()
        query = build_change_query(mapping, schema=catalog.schema_name, window=window)
        return source.read_arrow(query, schema)

    def _catch_up_cache(self, mapping: TableMapping) -> tuple[CacheApplied | None, str | None]:
        self.snapshot_io.feed.flush()
        try:
            return self.cache.catch_up(
                entity_columns(mapping), catch_up=self.warehouse.rows_since
            ), None
        except CacheBusy as busy:
            log.warning("%s; it will catch up from the warehouse", busy)
            return None, str(busy)

    def snapshot_chunk(
        self,
        catalog: SourceCatalog,
        mapping: TableMapping,
        *,
        kind: str,
        where: str | None = None,
    ) -> TableBatch:
        """The next primary-key chunk of the table's running snapshot (starting one if
        none runs). The first load's last chunk hands the table over to the tail."""
        catalog, mapping = self.checked(catalog, mapping)
        started = time.perf_counter()
        capture = self.settings.capture
        source = self.source(catalog.system)
        state = running_snapshot(self.warehouse, catalog.system, mapping, kind)
        if state is None:
            horizon = self.horizon(catalog.system)
            where = check_filter(where)
            total = source.scalar(build_count_query(mapping, schema=catalog.schema_name,
                                                    where=where))  # fmt: skip
            state = start_snapshot(
                self.warehouse, catalog.system, mapping, kind=kind,
                handover_ts=cursor_horizon(mapping, horizon.at), where_sql=where,
                rows_total=int(total),
            )  # fmt: skip
        raw, complete_below = self._snapshot_rows(catalog, mapping, state, after_key=state.last_key)
        finished = raw.num_rows < capture.snapshot_rows
        last = _last_cursor(raw, mapping)
        if not finished and last is not None:  # the next chunk reads while this one loads
            self._snapshot_rows(catalog, mapping, state, after_key=last.key, ahead=True)
        if complete_below is not None:
            raw = rows_stamped_before(raw, mapping, complete_below)
        # The suite in Polars: GX would cost as much as the rest of a chunk (DESIGN §6).
        rows, screened = self.prepare(raw, catalog, mapping, polars_validation=True)
        result, state = commit_chunk(
            self.warehouse, system=catalog.system, mapping=mapping, state=state, rows=rows,
            last_key=last.key if last else None, finished=finished, run_id=self.run_id,
            quarantine=screened,
        )  # fmt: skip
        crash_point("after_snapshot_chunk")
        cache, cache_error = self._feed_cache(mapping, rows, result, last=finished)
        return TableBatch(
            system=catalog.system, table=mapping.table, entity=mapping.entity,
            tier=mapping.tier, rows_read=raw.num_rows, inserted=result.inserted,
            updated=result.updated, deleted=result.deleted, batch_id=result.batch_id,
            cursor=Cursor(state.handover_ts, ()) if finished and kind == "initial" else None,
            caught_up_to=state.handover_ts if finished and kind == "initial" else None,
            more_waiting=not finished, lag_seconds=None, held_back_by=None, hold_seconds=0.0,
            seconds=time.perf_counter() - started, validation_seconds=screened.seconds,
            cache=cache, cache_error=cache_error, kind=kind,
            snapshot_progress=(state.rows_done, state.rows_total),
            quarantined=screened.quarantined, released=screened.released_rows,
            validation=screened.report,
        )  # fmt: skip

    def _snapshot_rows(
        self,
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
        limit = self.settings.capture.snapshot_rows
        query = build_snapshot_query(
            mapping, schema=catalog.schema_name, after_key=after_key, limit=limit,
            where=state.where_sql,
        )  # fmt: skip
        schema = source_schema(mapping)
        key = (mapping.table, state.snapshot_id, after_key, state.where_sql, limit)
        prefetch = self.snapshot_io.prefetch(catalog.system)
        if state.kind == "backfill" and (ahead or key not in self._complete_below):
            horizon = self.horizon(catalog.system)
            self._complete_below[key] = cursor_horizon(mapping, horizon.at)
        if ahead:
            prefetch.start(key, query, schema)
            return schema.empty_table(), None
        rows = prefetch.take(key)
        if rows is None:
            rows = self.source(catalog.system).read_arrow(query, schema)
        return rows, self._complete_below.pop(key, None)

    def _feed_cache(
        self, mapping: TableMapping, rows: pa.Table, result: CommitResult, *, last: bool
    ) -> tuple[CacheApplied | None, str | None]:
        """Hand a snapshot chunk to the background cache feed (applied several chunks at a
        time; all of it at the snapshot's ``last`` chunk); what the feed applied meanwhile."""
        feed = self.snapshot_io.feed
        if result.batch_id is not None:
            feed.add(
                entity_columns(mapping), _with_batch_id(rows, result), batch_id=result.batch_id,
                previous_batch_id=result.previous_entity_batch_id, last=last,
            )  # fmt: skip
        done = feed.flush() if last else feed.results()
        return (done.applied[-1] if done.applied else None), done.busy

    def backfill(
        self,
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
            batch = self.snapshot_chunk(catalog, mapping, kind="backfill", where=where)
            total += batch.rows_read
            on_chunk(batch)
            if not batch.more_waiting:
                return total

    def rebase(self, catalog: SourceCatalog, mapping: TableMapping) -> None:
        """Forget the table's watermark: its next sync starts a new snapshot."""
        self.warehouse.reset_watermark(catalog.system, mapping)

    def apply_cache(
        self, mapping: TableMapping, rows: pa.Table, result: CommitResult
    ) -> tuple[CacheApplied | None, str | None]:
        if result.batch_id is None:
            return None, None
        self.snapshot_io.feed.flush()  # snapshot chunks gathered for the cache go first
        with_batch = _with_batch_id(rows, result)
        try:
            applied = self.cache.apply(
                entity_columns(mapping),
                with_batch,
                batch_id=result.batch_id,
                previous_batch_id=result.previous_entity_batch_id,
                catch_up=self.warehouse.rows_since,
            )
        except CacheBusy as busy:
            log.warning("%s; it will catch up from the warehouse", busy)
            return None, str(busy)
        return applied, None

    def catch_up_cache(self) -> list[CacheApplied]:
        """Bring every cache entity up to the warehouse (after the cache was busy or lost)."""
        self.snapshot_io.feed.flush()
        return [
            self.cache.catch_up(columns, catch_up=self.warehouse.rows_since)
            for columns in entities_of(self.catalogs).values()
        ]

    def run(
        self,
        *,
        tier: Tier | None,
        batches: int,
        poll_interval: float,
        on_batch: Callable[[list[TableBatch]], None] = lambda _: None,
        on_failure: Callable[[TablesFailed], None] = lambda _: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Up to ``batches`` micro-batches, ``poll_interval`` apart unless rows are waiting.

        Returns the number of micro-batches run. A table that fails is retried in the
        next micro-batch while the others go on; ``on_failure`` hears of it at once, and
        the run raises :class:`TablesFailed` naming every failed table at its end.
        """
        done = 0
        failures: dict[str, Exception] = {}
        while done < batches and not should_stop():
            started = time.monotonic()
            try:
                results = self.sync_once(tier)
            except TablesFailed as failed:
                results = failed.results
                failures.update(failed.failures)
                on_failure(failed)
            done += 1
            on_batch(results)
            if any(result.more_waiting for result in results):
                continue
            time.sleep(max(0.0, poll_interval - (time.monotonic() - started)))
        if failures:
            raise TablesFailed(failures)
        return done

    def drain(self, *, until: datetime, timeout: float = 120.0, tier: Tier | None = None) -> None:
        """Sync until every table is caught up to source time ``until``; then the cache too.

        An aware ``until`` (say the source's ``clock_timestamp()``) is compared in each
        biller's own time zone; a naive one is taken as every biller's local time.
        """
        deadline = time.monotonic() + timeout
        local = {catalog.system: catalog.local_time(until) for catalog in self.catalogs}

        def reached(r: TableBatch) -> bool:
            return r.caught_up_to is not None and r.caught_up_to >= local[r.system]

        while True:
            results = self.sync_once(tier)
            if all(reached(r) and not r.more_waiting for r in results):
                break
            if time.monotonic() > deadline:
                behind = [r.table for r in results if not reached(r)]
                raise TimeoutError(f"drain did not reach {until} within {timeout}s: {behind}")
            if not any(r.more_waiting for r in results):
                time.sleep(0.2)
        self.catch_up_cache()


def _with_batch_id(rows: pa.Table, result: CommitResult) -> pa.Table:
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


def _last_cursor(raw: pa.Table, mapping: TableMapping) -> Cursor | None:
    if raw.num_rows == 0:
        return None
    last = decode_cursor(raw.slice(raw.num_rows - 1, 1), mapping).to_pylist()[0]
    return Cursor(last[CURSOR_ALIAS], tuple(last[name] for name in mapping.key))


def _lag_seconds(rows: pa.Table, source_now: datetime, elapsed: float) -> float | None:
    """Seconds from the oldest change in the batch to now, on the source's clock."""
    if rows.num_rows == 0:
        return None
    import pyarrow.compute as pc

    oldest: datetime = pc.min(rows.column("_source_version")).as_py()
    return (source_now - oldest).total_seconds() + elapsed


def tables_behind(engine: SyncEngine, tier: Tier | None = None) -> list[str]:
    """Tables whose newest source change is past the warehouse watermark.

    One index read per table on the source; the sensors ask this before starting a run.
    A cursor without key values (a snapshot's hand-over point) has not read its own
    timestamp yet, so a change stamped exactly there is behind too.
    """
    behind = []
    for catalog, mapping in engine.tables(tier):
        newest = newest_change(engine.source(catalog.system), catalog, mapping)
        if newest is None:
            continue
        cursor = engine.warehouse.watermark(catalog.system, mapping).cursor
        if (
            cursor is None
            or newest > cursor.change_ts
            or (newest == cursor.change_ts and not cursor.key)
        ):
            behind.append(f"{catalog.system}.{mapping.table}")
    return behind
