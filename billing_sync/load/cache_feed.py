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

A tier's long-lived loop feeds its tail batches here too (``dedupe``), so that the cache
trails the warehouse instead of standing in the way of its next commit: gathered for the
tier's ``cache_apply_interval_seconds`` (fewer, larger applies: :meth:`submit_older_than`).
The analysts' read copy takes its snapshot in the same thread, between applies
(:meth:`run_after_applies`). Gathered tail batches may hold a key
more than once: only its last version is applied. :meth:`lag` says how far the cache
trails: the batches not applied yet and the age of the oldest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from billing_sync.entities import EntityColumns
from billing_sync.load.cache import Cache, CacheApplied, CacheBusy, CatchUpSource

log = logging.getLogger(__name__)

MIN_ROWS = 245_760  # two DuckDB row groups
MAX_WAITING = 1  # snapshot sets queued behind the apply under way (memory: see _submit)


@dataclass
class _Gathered:
    columns: EntityColumns
    previous_batch_id: int
    last_batch_id: int
    parts: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    since: float = field(default_factory=time.monotonic)
    dedupe: bool = False


def last_versions(rows: pa.Table) -> pa.Table:
    """Each ``(_source_system, _source_key)``'s last row, in the order they last came.

    >>> t = pa.table({"_source_system": ["s", "s", "s"], "_source_key": ["a", "b", "a"],
    ...               "v": [1, 2, 3]})
    >>> last_versions(t).to_pydict()["v"]
    [2, 3]
    """
    numbered = rows.append_column("__row", pa.array(range(rows.num_rows), pa.int64()))
    last = numbered.group_by(["_source_system", "_source_key"], use_threads=False).aggregate(
        [("__row", "max")]
    )["__row_max"]
    return rows.take(pc.take(last, pc.sort_indices(last)))


@dataclass
class TrailLag:
    """How far the cache trails the warehouse for one entity in this process's feed."""

    batches: int
    seconds: float
    last_batch_id: int


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
        self._tasks: list[Future[None]] = []  # other users of the file, in the same thread
        # Tail batches added and not applied yet: entity -> [(batch id, added at)].
        self._pending: dict[str, list[tuple[int, float]]] = {}
        self.applied_to: dict[str, int] = {}  # entity -> last batch the cache holds, seen here

    def add(
        self,
        columns: EntityColumns,
        rows: pa.Table,
        *,
        batch_id: int,
        previous_batch_id: int,
        last: bool,
        dedupe: bool = False,
    ) -> None:
        """Gather warehouse batch ``batch_id`` (``rows`` carry ``_batch_id``); apply what
        is gathered for the entity once it is big enough, or when ``last``. ``dedupe``:
        the batches may repeat keys (tail batches); their last versions are applied."""
        gathered = self._gathered.get(columns.entity)
        if gathered is not None and gathered.last_batch_id != previous_batch_id:
            self._submit(self._gathered.pop(columns.entity))
            gathered = None
        if gathered is None:
            gathered = self._gathered[columns.entity] = _Gathered(
                columns, previous_batch_id, batch_id, dedupe=dedupe
            )
        if dedupe:
            self._pending.setdefault(columns.entity, []).append((batch_id, time.monotonic()))
        gathered.parts.append(rows)
        gathered.rows += rows.num_rows
        gathered.last_batch_id = batch_id
        if last or gathered.rows >= self.min_rows:
            self._submit(self._gathered.pop(columns.entity))

    def _submit(self, gathered: _Gathered) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-feed")
        if not gathered.dedupe:
            # A snapshot's chunks come faster than DuckDB applies them on a loaded machine:
            # unbounded, the queued rows grew the 10M-row first load to 1.5 GB. At most
            # one gathered set waits behind the apply under way; the next chunk waits.
            while len(waiting := [f for f in self._running if not f.done()]) > MAX_WAITING:
                futures.wait(waiting[:1])
        self._running.append(self._executor.submit(self._apply, gathered))

    def run_after_applies(self, task: Callable[[], None]) -> None:
        """Run ``task`` in the feed's thread after the applies submitted before it: it
        uses the cache file (the read copy's snapshot), and one thread at a time does."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cache-feed")
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(self._executor.submit(task))

    @property
    def task_pending(self) -> bool:
        return any(not task.done() for task in self._tasks)

    def submit_older_than(self, seconds: float) -> None:
        """Apply what was gathered at least ``seconds`` ago (in the background)."""
        now = time.monotonic()
        for entity in [e for e, g in self._gathered.items() if now - g.since >= seconds]:
            self._submit(self._gathered.pop(entity))

    def lag(self, entity: str) -> TrailLag | None:
        """What of ``entity``'s tail batches the cache still lacks here; None: nothing."""
        pending = self._pending.get(entity)
        if not pending:
            return None
        return TrailLag(len(pending), time.monotonic() - pending[0][1], pending[-1][0])

    def _apply(self, gathered: _Gathered) -> CacheApplied | str:
        rows = pa.concat_tables(gathered.parts)
        if gathered.dedupe and len(gathered.parts) > 1:
            rows = last_versions(rows)
        gathered.parts.clear()
        try:
            return self.cache.apply(
                gathered.columns,
                rows,
                batch_id=gathered.last_batch_id,
                previous_batch_id=gathered.previous_batch_id,
                catch_up=self.catch_up,
            )
        except (CacheBusy, duckdb.ConnectionException) as busy:
            # ConnectionException: this process holds the file open another way (a reader
            # in another thread); the entity catches up from the warehouse next time.
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
                self.applied(outcome.entity, outcome.last_batch_id)
        self._running = still
        return FeedResult(applied, busy)

    def applied(self, entity: str, batch_id: int) -> None:
        """The cache holds ``entity`` up to ``batch_id`` (applied here or caught up)."""
        self.applied_to[entity] = max(batch_id, self.applied_to.get(entity, 0))
        pending = self._pending.get(entity)
        if pending:
            self._pending[entity] = [p for p in pending if p[0] > batch_id]

    def flush(self) -> FeedResult:
        """Apply everything gathered and wait for every apply."""
        for entity in list(self._gathered):
            self._submit(self._gathered.pop(entity))
        return self.results(wait=True)

    def wait(self) -> FeedResult:
        """Wait for the applies and tasks under way (what is gathered stays gathered); a
        task's error is raised here."""
        result = self.results(wait=True)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.result()
        return result

    @property
    def idle(self) -> bool:
        return not self._running and not self._gathered and not self.task_pending

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
