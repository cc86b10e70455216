"""The engine: ``capture -> transform -> validate -> load``, called by the CLI, Dagster and tests.

One micro-batch reads, for each table of a tier, the rows in its next window, turns
them into normalized rows, validates them, merges them into the warehouse together
with the new watermark, and applies them to the DuckDB cache. A failure before the
warehouse commit leaves the watermark where it was; a busy cache only falls behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pyarrow as pa

from billing_sync.capture.cursor import cursor_horizon
from billing_sync.capture.lookback import Lookback
from billing_sync.capture.query import (
    build_change_query,
)
from billing_sync.capture.regression import Gone, RegressionGuard, SourceRegressionError
from billing_sync.capture.window import Window, advance
from billing_sync.config import (
    ConfigError,
    Settings,
    SourceCatalog,
    TableMapping,
    Tier,
    load_catalogs,
)
from billing_sync.dictionary import comments, describe
from billing_sync.engine import cache_trail, late_rows, poll, snapshot, waits
from billing_sync.engine.batch import TableBatch, last_cursor, rows_with_batch_id
from billing_sync.engine.read_ahead import HotRows, after_tail
from billing_sync.engine.status import batch_lag_seconds, entities_behind, follow_up
from billing_sync.entities import entities_of, entity_columns
from billing_sync.faults import crash_point
from billing_sync.load.cache import Cache, CacheApplied, CacheBusy
from billing_sync.load.read_copy import ReadCopy
from billing_sync.load.snapshot_io import SnapshotIO
from billing_sync.load.warehouse import CommitResult, Warehouse
from billing_sync.postgres import DatabaseUrls, resolve_database_urls
from billing_sync.reconcile import events
from billing_sync.reconcile.verify import verify_table
from billing_sync.serve.views import create_cache_views, create_warehouse_views
from billing_sync.source.horizon import Horizon
from billing_sync.source.reflect import check_catalog
from billing_sync.source.schema import source_schema
from billing_sync.source.session import SourceSession, SourceUnavailable
from billing_sync.tier_failures import TablesFailed, each_isolated
from billing_sync.transform.normalize import normalize_batch
from billing_sync.transform.policy import apply_policy
from billing_sync.transform.protect import Protector
from billing_sync.validate import quarantine
from billing_sync.validate.polars_suite import PolarsValidator
from billing_sync.validate.quarantine import Screened
from billing_sync.validate.report import (
    BatchValidationError,
    with_conversion_failures,
)
from billing_sync.validate.runner import Validator
from billing_sync.validate.shadow import ShadowValidation
from billing_sync.validate.suites import suites_for

log = logging.getLogger(__name__)


@dataclass
class SyncEngine:
    """Long-lived connections and state for syncing a set of catalogs."""

    settings: Settings
    catalogs: list[SourceCatalog]
    urls: DatabaseUrls
    run_id: str | None = None
    validator: Validator = field(default_factory=Validator)
    polars_validator: PolarsValidator = field(default_factory=PolarsValidator)
    # Reading only (status, sql): no HMAC key needed; protecting a value would fail.
    reading: bool = False

    def __post_init__(self) -> None:
        capture = self.settings.capture
        self.guard = RegressionGuard(capture, find_gone=partial(gone_rows, self), refusals=events)
        key = self.settings.hmac_key
        self.protector = (
            Protector(None)
            if self.reading
            else Protector.for_catalogs(
                self.catalogs, hmac_key=key.get_secret_value() if key else None
            )
        )
        self.lookback = Lookback(
            timedelta(seconds=capture.lookback_seconds),
            capture.lookback_interval_seconds,
            slice_rows=capture.lookback_slice_rows,
        )
        self._sources: dict[str, SourceSession] = {}
        self._warehouse: Warehouse | None = None
        entities = entities_of(self.catalogs)
        self.dictionary = describe(self.catalogs, suites_for(entities, self.settings.suites_dir))
        self.cache = Cache(
            self.settings.resolved_cache_path,
            entities,
            on_create=lambda con: create_cache_views(con, entities),  # a new or rebuilt file too
            comments=comments(self.dictionary),
        )
        self._cache_behind: set[str] = set()  # entities the cache lacks warehouse batches of
        self.read_copy = ReadCopy(
            self.settings.resolved_cache_path,
            interval_seconds=self.settings.read_copy_interval_seconds,
        )
        # A backfill chunk's read: the stamps complete when it started (see _snapshot_rows).
        self._complete_below: dict[tuple[Any, ...], datetime] = {}
        self.snapshot_io = SnapshotIO(
            cache=self.cache, warehouse_url=lambda: self.urls.warehouse, source=self.source
        )
        self._sources_checked = False
        self.hot_rows = HotRows()  # what the read-ahead saw above each table's horizon
        self.delays = waits.DerivedDelays(capture.delay_seconds)
        # In a tier loop: the tier's cache apply interval (cache_trail); None: apply inline.
        self._trailing: float | None = None
        self.shadow = ShadowValidation(
            self.validator, sample_seconds=self.settings.validation.gx_sample_seconds
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        run_id: str | None = None,
        reading: bool = False,
        entities: Collection[str] | None = None,
    ) -> SyncEngine:
        """``entities``: only their tables (one shard's run, billing_sync.shards)."""
        catalogs = load_catalogs(settings)
        if entities is not None:
            catalogs = [
                c.model_copy(update={"tables": [m for m in c.tables if m.entity in entities]})
                for c in catalogs
            ]
            catalogs = [c for c in catalogs if c.tables]
        urls = resolve_database_urls(settings)
        if settings.suites_dir is None:
            return cls(settings, catalogs, urls, run_id=run_id, reading=reading)
        return cls(
            settings, catalogs, urls, run_id=run_id, reading=reading,
            validator=Validator(suites_dir=settings.suites_dir),
            polars_validator=PolarsValidator(suites_dir=settings.suites_dir),
        )  # fmt: skip

    def horizon(self, system: str) -> Horizon:
        """The source's horizon now (DESIGN §4), with the delay derived from what the probe
        measured (:mod:`billing_sync.engine.waits`) or the fixed one."""
        return waits.horizon(self, system)

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = Warehouse(self.urls.warehouse)
        return self._warehouse

    def source(self, system: str) -> SourceSession:
        if system not in self._sources:
            zone = next((c.timezone for c in self.catalogs if c.system == system), None)
            session = SourceSession(
                self.urls.source_for(system),
                timezone=zone,
                statement_timeout=self.settings.capture.statement_timeout_seconds,
            )
            delay, minimum = self.settings.capture.delay_seconds, session.min_delay_seconds
            if delay is not None and delay < minimum:
                session.close()
                raise ConfigError(
                    f"{system}: capture delay_seconds={delay} is below {minimum} s, the least"
                    f" under which the {session.engine} horizon probe can miss a transaction"
                    " (docs/sources.md); raise capture.delay_seconds in the settings"
                )
            self._sources[system] = session
        return self._sources[system]

    def setup(self) -> None:
        """Create warehouse and cache tables and watermark rows (idempotent)."""
        self.warehouse.setup(self.catalogs, self.dictionary)
        create_warehouse_views(self.warehouse.conn, self.cache.entities)
        try:
            self.cache.setup()
        except CacheBusy as busy:
            log.warning("%s; its tables are created at its next apply", busy)
        # Left behind by an earlier run (a reader held the file): caught up after a batch.
        self._cache_behind = entities_behind(self.cache, self.warehouse.conn)

    def close(self) -> None:
        try:
            self.shadow.close()
            self.snapshot_io.close()  # applies gathered snapshot chunks to the cache
            if self.cache.held.holds:  # this engine wrote the cache: the last state too
                self.read_copy.publish()
            self.read_copy.join()
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
        feed = self.snapshot_io.feed
        if self._trailing is None or self._cache_behind:
            feed.wait()  # one writer of the cache file in this process
        else:
            feed.submit_older_than(self._trailing)
        results = follow_up(
            results, cache=self.cache, warehouse=self.warehouse, behind=self._cache_behind
        )
        if self._trailing is not None:
            results = cache_trail.report(results, feed)
        if self._trailing is None:
            self.read_copy.publish_if_due()  # analysts' copy; converted in the background
        elif not feed.task_pending and self.read_copy.due():
            # The copy opens the cache: in the feed's thread, between its applies, so the
            # loop never waits for an apply nor for the snapshot (it held batches ~0.5 s).
            feed.run_after_applies(self.read_copy.publish_if_due)
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
        step = advance(window, rows_read=raw.num_rows, last_row=last_cursor(raw, mapping))
        rows, screened = self.prepare(raw, catalog, mapping)
        late, late_screened = late_rows.late_rows(self, source, catalog, mapping, watermark) or (
            None,
            None,
        )
        lag = batch_lag_seconds(
            screened.good_arrow, horizon.source_now, time.perf_counter() - read_at
        )
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
            started=started,
            read_after_batch=watermark.entity_batch_id,
        )
        crash_point("after_warehouse_commit")
        if result.late_rows:
            self.delays.distrust(
                catalog.system, f"{result.late_rows} late rows in {catalog.system}.{mapping.table}"
            )
            log.warning(
                "%s.%s: %d late rows (committed below the watermark): the capture delay "
                "is too small for this source's transactions",
                catalog.system, mapping.table, result.late_rows,
            )  # fmt: skip
        if late is None:
            cache = self.apply_cache(mapping, rows, result)
        else:  # two batches (late, tail) committed: the cache takes both from the warehouse
            cache = self._catch_up_cache(mapping)
        crash_point("after_cache_apply")
        ahead = after_tail(self, self.hot_rows, catalog, mapping, horizon, result)
        return TableBatch.from_commit(
            mapping, system=catalog.system, timezone=catalog.timezone, kind="tail",
            rows_read=raw.num_rows, result=result,
            screened=screened, started=started, cursor=step.cursor,
            caught_up_to=step.caught_up_to or watermark.caught_up_to,
            more_waiting=step.more_waiting, cache=cache, horizon=horizon, lag_seconds=lag,
            late_rows=result.late_rows,
            late_quarantined=late_screened.quarantined if late_screened else 0,
            read_ahead_rows=ahead,
            window_horizon=window.horizon,
        )  # fmt: skip

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
        # The suites in Polars (identical failures: test_polars_suite), GX re-checking in
        # the background (validate.shadow); or GX here, except while a run imports it.
        shadowed = not polars_validation and self.settings.validation.hot_path == "polars"
        use_polars = polars_validation or shadowed or self.validator.warming(mapping.entity)
        validator = self.polars_validator if use_polars else self.validator
        normalized = normalize_batch(
            raw, mapping, system=catalog.system, synced_at=datetime.now(UTC),
            protector=self.protector, timezone=catalog.timezone,
        )  # fmt: skip
        frame = normalized.frame
        suite_report = validator.validate(mapping.entity, frame)
        if shadowed:
            self.shadow.submit(mapping.entity, frame, suite_report)
        report = with_conversion_failures(suite_report, normalized.failures)
        screened = quarantine.screen(
            self.warehouse.conn, system=catalog.system, mapping=mapping, frame=frame,
            report=report, suite=validator.suite(mapping.entity),
            source=quarantine.SourceParents(self.source(catalog.system), catalog), **screening,
        )  # fmt: skip
        if screened.fails_batch:
            raise BatchValidationError(screened.report, screened.reason)
        return screened.to_load(), screened

    def _read(
        self, source: SourceSession, catalog: SourceCatalog, mapping: TableMapping, window: Window
    ) -> pa.Table:
        schema = source_schema(mapping)
        if window.is_empty:
            return schema.empty_table()
        query = build_change_query(
            mapping, schema=catalog.schema_name, window=window, style=source.style
        )
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
        self, catalog: SourceCatalog, mapping: TableMapping, *, kind: str, where: str | None = None
    ) -> TableBatch:
        """The table's next snapshot chunk (:func:`billing_sync.engine.snapshot.snapshot_chunk`)."""
        return snapshot.snapshot_chunk(self, catalog, mapping, kind=kind, where=where)

    def backfill(
        self,
        catalog: SourceCatalog,
        mapping: TableMapping,
        *,
        where: str | None = None,
        on_chunk: Callable[[TableBatch], None] = lambda _: None,
    ) -> int:
        """Re-load a table (or the rows ``where`` selects) by key ranges, resumably; the
        rows read (:func:`billing_sync.engine.snapshot.backfill`)."""
        return snapshot.backfill(self, catalog, mapping, where=where, on_chunk=on_chunk)

    def rebase(self, catalog: SourceCatalog, mapping: TableMapping) -> None:
        """Forget the table's watermark: its next sync starts a new snapshot."""
        self.warehouse.reset_watermark(catalog.system, mapping)

    def apply_cache(
        self, mapping: TableMapping, rows: pa.Table, result: CommitResult
    ) -> tuple[CacheApplied | None, str | None]:
        if self._trailing is not None:  # a tier loop: the cache trails, off the path
            cache_trail.trail(self.snapshot_io.feed, mapping, rows, result,
                              now=self._trailing <= 0)  # fmt: skip
            return None, None
        if result.batch_id is None:
            return None, None
        self.snapshot_io.feed.flush()  # snapshot chunks gathered for the cache go first
        with_batch = rows_with_batch_id(rows, result)
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
        probe_interval: float = 0.0,
        on_batch: Callable[[list[TableBatch]], None] = lambda _: None,
        on_failure: Callable[[TablesFailed], None] = lambda _: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Up to ``batches`` micro-batches, ``poll_interval`` apart unless rows are waiting:
        sooner when a probe every ``probe_interval`` (0: none) finds rows to read
        (:mod:`billing_sync.engine.poll`).

        Returns the number of micro-batches run. A table that fails is retried in the
        next micro-batch while the others go on; ``on_failure`` hears of it at once, and
        the run raises :class:`TablesFailed` naming every failed table at its end.
        """
        failures: dict[str, Exception] = {}
        self._trailing = (
            0.0 if tier is None else self.settings.tier(tier).cache_apply_interval_seconds
        )
        try:
            done = poll.loop(
                self, lambda: self.sync_once(tier), tier=tier, batches=batches,
                poll_interval=poll_interval, probe_interval=probe_interval, on_batch=on_batch,
                on_failure=on_failure, should_stop=should_stop, failures=failures,
            )  # fmt: skip
        finally:
            self._trailing = None
            self.snapshot_io.feed.flush()
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
            return caught_up(r.caught_up_to, local[r.system])

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


def caught_up(caught_up_to: datetime | None, until: datetime) -> bool:
    """Whether every row stamped at or before ``until`` has been read.

    ``caught_up_to`` is an exclusive bound (rows stamped below it are complete), and a
    row committed by source time ``until`` can carry the stamp ``until`` itself: a
    whole-second stamp taken in that second (MariaDB's ``UTC_TIMESTAMP()``, an ICOMS
    ``CHG_TIME``) equals ``until`` read at second resolution. So the bound must be
    strictly above ``until``; ``>=`` left such a row unread when the drain stopped.

    >>> from datetime import datetime
    >>> second = datetime(2026, 1, 1, 12, 0, 5)
    >>> caught_up(second, second), caught_up(datetime(2026, 1, 1, 12, 0, 6), second)
    (False, True)
    """
    return caught_up_to is not None and caught_up_to > until


def gone_rows(engine: SyncEngine, catalog: SourceCatalog, mapping: TableMapping) -> Gone | None:
    """The shrink guard's key comparison: verification by key-range hashes, rows read only
    where a range differs; the warehouse rows the source no longer holds (any engine:
    verify hashes a non-PostgreSQL source by the engine-neutral contract)."""
    checked = verify_table(engine, catalog, mapping, repair=False, check_cache=False)
    return Gone(len(checked.warehouse.extra), checked.warehouse_rows)
