"""Snapshot chunks into the DuckDB cache: several at a time, in a background thread.

Why several: every apply opens the cache file and closes it (readers may open it in
between), and the close checkpoints. Appends smaller than DuckDB's row group (122,880
rows) are rewritten at every checkpoint: 1M rows applied 50,000 at a time cost 7.8 s
here, 100,000 or more at a time 3 s. So a snapshot's chunks are gathered until at least
:data:`MIN_ROWS` rows wait, or the snapshot ends, and applied as one. Why in the
background: DuckDB works outside the GIL while the next chunk goes to PostgreSQL.

The cache's rule still holds (:mod:`billing_sync.load.cache`): rows are applied from
memory only when the cache holds exactly the batch before the first of them; gathered
chunks must follow each other (each one's previous entity batch is the last gathered),
else what was gathered is applied first. Rows not applied yet when the process stops are
not lost: the cache is behind, and catches up from the warehouse.

Applies run one at a time, in order. The engine waits for them (:meth:`CacheFeed.wait`)
before it touches the cache itself, so the file has one writer in this process.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from billing_sync.entities import EntityColumns
from billing_sync.load.cache import Cache, CacheApplied, CacheBusy, CatchUpSource

log = logging.getLogger(__name__)

MIN_ROWS = 245_760  # two DuckDB row groups


@dataclass
class _Gathered:
    columns: EntityColumns
    previous_batch_id: int
    last_batch_id: int
    parts: list[pa.Table] = field(default_factory=list)
    rows: int = 0


@dataclass(frozen=True)
class FeedResult:
    """What the applies that ended since the last :meth:`CacheFeed.results` did."""

    applied: list[CacheApplied]
    busy: str | None  # the last CacheBusy message, if one apply found the file taken


class CacheFeed:
    def __init__(self, cache: Cache, catch_up: CatchUpSource, *, min_rows: int = MIN_ROWS) -> None:
        self.cache = cache
        self.catch_up = catch_up
        self.min_rows = min_rows
        self._gathered: dict[str, _Gathered] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._running: list[Future[CacheApplied | str]] = []

    def add(
        self,
        columns: EntityColumns,
        rows: pa.Table,
        *,
        batch_id: int,
        previous_batch_id: int,
        last: bool,
    ) -> None:
        """Gather warehouse batch ``batch_id`` (``rows`` carry ``_batch_id``); apply what
        is gathered for the entity once it is big enough, or when ``last``."""
        gathered = self._gathered.get(columns.entity)
        if gathered is not None and gathered.last_batch_id != previous_batch_id:
            self._submit(self._gathered.pop(columns.entity))
            gathered = None
        if gathered is None:
            gathered = self._gathered[columns.entity] = _Gathered(
                columns, previous_batch_id, batch_id
            )
        gathered.parts.append(rows)
        gathered.rows += rows.num_rows
        gathered.last_batch_id = batch_id
        if last or gathered.rows >= self.min_rows:
            self._submit(self._gathered.pop(columns.entity))

    def _submit(self, gathered: _Gathered) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-feed")
        self._running.append(self._executor.submit(self._apply, gathered))

    def _apply(self, gathered: _Gathered) -> CacheApplied | str:
        rows = pa.concat_tables(gathered.parts)
        gathered.parts.clear()
        try:
            return self.cache.apply(
                gathered.columns,
                rows,
                batch_id=gathered.last_batch_id,
                previous_batch_id=gathered.previous_batch_id,
                catch_up=self.catch_up,
            )
        except CacheBusy as busy:
            log.warning("%s; it will catch up from the warehouse", busy)
            return str(busy)

    def results(self, *, wait: bool = False) -> FeedResult:
        """Applies that ended (all of them when ``wait``); an apply's error is raised here."""
        applied: list[CacheApplied] = []
        busy: str | None = None
        still: list[Future[CacheApplied | str]] = []
        for future in self._running:
            if not wait and not future.done():
                still.append(future)
                continue
            outcome = future.result()
            if isinstance(outcome, str):
                busy = outcome
            else:
                applied.append(outcome)
        self._running = still
        return FeedResult(applied, busy)

    def flush(self) -> FeedResult:
        """Apply everything gathered and wait for every apply."""
        for entity in list(self._gathered):
            self._submit(self._gathered.pop(entity))
        return self.results(wait=True)

    def wait(self) -> FeedResult:
        """Wait for the applies under way (what is gathered stays gathered)."""
        return self.results(wait=True)

    @property
    def idle(self) -> bool:
        return not self._running and not self._gathered

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
