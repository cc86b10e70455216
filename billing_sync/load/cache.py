"""The DuckDB cache: the same batches, applied after the warehouse commit.

The cache records, per entity, the last warehouse batch it applied. When the batch
in hand directly follows it, the batch is applied from memory; otherwise (the cache
was busy, lost, rebuilt or is new) the cache catches up **from the warehouse**, never
from the source, by copying every row whose ``_batch_id`` is above its own.

DuckDB admits one writing process per file, and a reader in another process excludes
the writer (and the writer excludes readers). So the writer holds the file only while
applying: it reads what a catch-up needs from the warehouse *before* it opens the file,
waits at most ``lock_wait_seconds`` for readers (retrying every few milliseconds), and
then gives up: the cache falls behind, :class:`CacheBusy` says so, and a later apply
catches up. After giving up it waits only ``busy_wait_seconds`` until an open succeeds
again, so that a reader holding the file for minutes costs each micro-batch little.
:attr:`Cache.waits` counts how often the file was held and for how long the writer held
it. How readers connect: :mod:`billing_sync.serve.reader`.

A file DuckDB cannot read (cut short by a full disk or a copy that stopped half-way)
would fail every write and every read for good. The writer sets it aside instead, as
``<file>.damaged-<UTC time>`` beside it, starts a new file and lets it catch up from the
warehouse like a lost cache; the file set aside stays (and keeps an alert firing, see
:func:`set_aside_files`) until an operator has looked at it and removed it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import duckdb
import pyarrow as pa

from billing_sync.dictionary import Comment
from billing_sync.entities import ENTITY_SCHEMA, STATE_SCHEMA, EntityColumns
from billing_sync.faults import crash_point
from billing_sync.load.cache_comments import apply_comments
from billing_sync.load.locking import LockWaits, gate, is_damaged, is_lock_conflict, open_duckdb
from billing_sync.private_files import private_dir, private_file

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 1.0  # for readers' short queries and another tier's apply to end
BUSY_WAIT_SECONDS = 0.05  # while a reader keeps the file: one or two quick tries
READ_WAIT_SECONDS = 5.0  # status and verify reading the cache while the pipeline writes

_STATE_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {ENTITY_SCHEMA};
CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA};
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.cache_state (
    entity VARCHAR PRIMARY KEY,
    last_batch_id BIGINT NOT NULL
);
"""


class CacheBusy(RuntimeError):
    """Another process holds the DuckDB file; the cache falls behind and catches up later."""


class CacheDamaged(CacheBusy):
    """The DuckDB file cannot be read. A kind of busy: every caller that carries on without
    the cache carries on without it here too, until the writer has rebuilt it."""


DAMAGED_SUFFIX = ".damaged-"


def set_aside_files(path: Path) -> list[Path]:
    """Damaged cache files set aside beside ``path`` and not removed yet (oldest first)."""
    found = path.parent.glob(f"{path.name}{DAMAGED_SUFFIX}*")
    return sorted(p for p in found if not p.name.endswith(".wal"))


@dataclass(frozen=True)
class CacheApplied:
    entity: str
    last_batch_id: int
    rows: int
    caught_up: bool  # True when rows came from the warehouse rather than the batch in hand


@dataclass
class HoldTimes:
    """How long this process kept the cache file open for writing (readers wait that long)."""

    holds: int = 0
    seconds: float = 0.0
    max_seconds: float = 0.0

    def record(self, seconds: float) -> None:
        self.holds += 1
        self.seconds += seconds
        self.max_seconds = max(self.max_seconds, seconds)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


P = ParamSpec("P")
R = TypeVar("R")


def _rebuilt_once(method: Callable[Concatenate[Cache, P], R]) -> Callable[Concatenate[Cache, P], R]:
    """A write that found the file damaged (and set it aside) runs once more: on the new,
    empty file it catches up from the warehouse whole instead of failing every run."""

    def again(self: Cache, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except CacheDamaged:
            return method(self, *args, **kwargs)

    again.__doc__ = method.__doc__
    return again


CatchUpSource = Callable[[EntityColumns, int], tuple[pa.Table, int]]
FileHook = Callable[[duckdb.DuckDBPyConnection], object]


@dataclass
class Cache:
    """The DuckDB cache file; each call opens and closes it.

    ``on_create`` runs (in the writing transaction's connection) whenever the file's
    tables had to be created: a new, lost or rebuilt cache, or a new entity. The serve
    views use it (:func:`billing_sync.serve.views.create_views`).
    """

    path: Path
    entities: dict[str, EntityColumns]
    on_create: FileHook | None = None
    comments: Sequence[Comment] = ()  # the data dictionary, applied where the file differs
    lock_wait_seconds: float = LOCK_WAIT_SECONDS
    busy_wait_seconds: float = BUSY_WAIT_SECONDS
    waits: LockWaits = field(default_factory=LockWaits)
    held: HoldTimes = field(default_factory=HoldTimes)
    # Entities whose tables this process created (a new, lost or rebuilt file): they are
    # empty and must catch up from the warehouse even if no new batch of theirs comes.
    created: set[str] = field(default_factory=set)
    _busy: bool = False

    def _connect(
        self, *, read_only: bool = False, wait_seconds: float = READ_WAIT_SECONDS
    ) -> duckdb.DuckDBPyConnection:
        """A connection the caller closes; read-only ones wait up to ``wait_seconds``.

        A damaged file raises :class:`CacheDamaged` to a reader; a writer sets it aside
        and gets a new file (its entities then catch up from the warehouse)."""
        inode = _inode(self.path)
        try:
            return self._open(read_only=read_only, wait_seconds=wait_seconds)
        except duckdb.Error as error:
            if not is_damaged(error):
                raise
            if read_only:
                raise CacheDamaged(
                    f"the DuckDB cache {self.path} is damaged ({error}); the sync's next "
                    "write sets it aside and rebuilds the cache from the warehouse"
                ) from error
            self._set_aside(error, inode)
        return self._open(read_only=False, wait_seconds=wait_seconds)

    def _open(self, *, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
        try:
            if read_only:
                return open_duckdb(self.path, read_only=True, wait_seconds=wait_seconds)
            private_dir(self.path.parent)
            wait = self.busy_wait_seconds if self._busy else self.lock_wait_seconds
            con = open_duckdb(self.path, read_only=False, wait_seconds=wait, waits=self.waits)
            private_file(self.path)  # DuckDB creates it with the umask's mode (0644)
        except duckdb.IOException as error:
            if is_lock_conflict(error):
                if not read_only:
                    self._busy = True
                raise CacheBusy(
                    f"the DuckDB cache {self.path} is held by another process: {error}"
                ) from error
            raise
        self._busy = False
        try:
            self._ensure_tables(con)
        except BaseException:
            con.close()
            raise
        return con

    @contextmanager
    def _writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._connect()
        opened = time.monotonic()
        inode = _inode(self.path)
        damaged: duckdb.Error | None = None
        try:
            yield con
        except duckdb.Error as error:
            # A block read only now (the file opened, a table's data is cut off).
            if not is_damaged(error):
                raise
            damaged = error
        finally:
            try:
                con.close()  # the close checkpoints: part of the hold
            except duckdb.Error:
                if damaged is None:
                    raise
            self.held.record(time.monotonic() - opened)
        if damaged is not None:
            self._set_aside(damaged, inode)
            raise CacheDamaged(
                f"the DuckDB cache {self.path} was damaged ({damaged}); it was set aside and "
                "is rebuilt from the warehouse"
            ) from damaged

    def _set_aside(self, error: duckdb.Error, inode: int | None) -> None:
        """Move the damaged file (``inode``: the one found damaged) and its WAL aside,
        unless another process did already (the file there is another, or none)."""
        deadline = time.monotonic() + self.lock_wait_seconds
        try:
            with gate(self.path, exclusive=True, deadline=deadline):
                if inode is None or _inode(self.path) != inode:
                    return
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                target = self.path.with_name(f"{self.path.name}{DAMAGED_SUFFIX}{stamp}")
                os.replace(self.path, target)
                wal = Path(f"{self.path}.wal")
                if wal.exists():
                    os.replace(wal, Path(f"{target}.wal"))
        except duckdb.IOException as busy:  # the gate stayed taken
            raise CacheBusy(f"the DuckDB cache {self.path} is held: {busy}") from error
        log.error(
            "the DuckDB cache %s was unreadable (%s): set aside as %s; a new cache is built "
            "from the warehouse. Remove the damaged file once looked at.",
            self.path, error, target.name,
        )  # fmt: skip

    @_rebuilt_once
    def setup(self) -> None:
        """Create the cache's tables (idempotent); raises :class:`CacheBusy` if held."""
        with self._writing() as con:
            if self.on_create is not None:
                self.on_create(con)  # views follow the code: replace them at every start
            apply_comments(con, self.comments)

    def _ensure_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        # Checked at every open, not once: a deleted or rebuilt cache file must come back
        # whole. One catalog read when all is there; DDL only for what is missing.
        present = {
            (schema, name)
            for schema, name in con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN (?, ?)",
                [ENTITY_SCHEMA, STATE_SCHEMA],
            ).fetchall()
        }
        missing = [c for c in self.entities.values() if (ENTITY_SCHEMA, c.entity) not in present]
        if (STATE_SCHEMA, "cache_state") in present and not missing:
            return
        con.execute(_STATE_DDL)
        for columns in missing:
            definitions = ", ".join(columns.column_definitions())
            con.execute(f"CREATE TABLE IF NOT EXISTS {columns.table} ({definitions})")
            self.created.add(columns.entity)
        if self.on_create is not None:
            self.on_create(con)
        apply_comments(con, self.comments)

    @_rebuilt_once
    def apply(
        self,
        columns: EntityColumns,
        rows: pa.Table,
        *,
        batch_id: int,
        previous_batch_id: int,
        catch_up: CatchUpSource,
    ) -> CacheApplied:
        """Apply warehouse batch ``batch_id`` (``rows`` carry ``_batch_id``).

        ``previous_batch_id`` is the entity's last warehouse batch before this one; when
        the cache is not there, it catches up from the warehouse through ``catch_up``.
        """
        with self._writing() as con:
            applied = self._last_applied(con, columns.entity)
            if applied >= batch_id:
                return CacheApplied(columns.entity, applied, 0, caught_up=False)
            if applied == previous_batch_id:
                self._apply_rows(con, columns, rows, batch_id)
                return CacheApplied(columns.entity, batch_id, rows.num_rows, caught_up=False)
        # Behind: read the warehouse with the file closed, then apply.
        return self.catch_up(columns, catch_up=catch_up, applied=applied)

    @_rebuilt_once
    def delete_keys(self, columns: EntityColumns, *, system: str, keys: list[str]) -> int:
        """Drop cached rows the warehouse does not hold (verify --repair); the count."""
        with self._writing() as con:
            con.register("doomed", pa.table({"_source_key": pa.array(keys, pa.string())}))
            try:
                rows = con.execute(
                    f"DELETE FROM {columns.table} WHERE _source_system = ?"
                    " AND _source_key IN (SELECT _source_key FROM doomed)",
                    [system],
                ).fetchall()
            finally:
                con.unregister("doomed")
            return int(rows[0][0]) if rows else 0

    @_rebuilt_once
    def catch_up(
        self,
        columns: EntityColumns,
        *,
        catch_up: CatchUpSource,
        applied: int | None = None,
        warehouse_batch: int | None = None,
    ) -> CacheApplied:
        """Bring the entity up to the warehouse's last batch.

        ``applied`` is the cache's last batch if the caller just read it;
        ``warehouse_batch`` the warehouse's, to skip the warehouse query when level.
        """
        if applied is None:
            with self._writing() as con:
                applied = self._last_applied(con, columns.entity)
        if warehouse_batch is not None and applied >= warehouse_batch:
            return CacheApplied(columns.entity, applied, 0, caught_up=True)
        rows, last = catch_up(columns, applied)  # the file is closed meanwhile
        if last <= applied:
            return CacheApplied(columns.entity, applied, 0, caught_up=True)
        with self._writing() as con:
            # Another process may have applied some of it meanwhile; the rows read are
            # the warehouse's current versions, so applying them again is harmless.
            now = self._last_applied(con, columns.entity)
            if now >= last:
                return CacheApplied(columns.entity, now, 0, caught_up=True)
            self._apply_rows(con, columns, rows, last)
            return CacheApplied(columns.entity, last, rows.num_rows, caught_up=True)

    def last_applied(self, *, wait_seconds: float = READ_WAIT_SECONDS) -> dict[str, int]:
        """Each entity's last applied batch, read-only (raises :class:`CacheBusy`)."""
        with self._connect(read_only=True, wait_seconds=wait_seconds) as con:
            rows = con.execute(f"SELECT entity, last_batch_id FROM {STATE_SCHEMA}.cache_state")
            return {entity: int(batch) for entity, batch in rows.fetchall()}

    @staticmethod
    def _last_applied(con: duckdb.DuckDBPyConnection, entity: str) -> int:
        # fetchall: DuckDB refuses new work on a connection with an unfinished result.
        rows = con.execute(
            f"SELECT last_batch_id FROM {STATE_SCHEMA}.cache_state WHERE entity = ?", [entity]
        ).fetchall()
        return int(rows[0][0]) if rows else 0

    @staticmethod
    def _apply_rows(
        con: duckdb.DuckDBPyConnection,
        columns: EntityColumns,
        rows: pa.Table,
        batch_id: int,
    ) -> None:
        # DELETE then INSERT in one transaction: far cheaper in DuckDB than
        # INSERT OR REPLACE / MERGE (DESIGN §8). The rows are what the warehouse wrote, in
        # batch order, so they replace what the cache holds; the batch id guards replays.
        names = ", ".join(f'"{name}"' for name in columns.all)
        incoming = rows.select(columns.all)
        con.register("incoming", incoming)
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(
                f"DELETE FROM {columns.table} AS t USING incoming AS b"
                " WHERE t._source_system = b._source_system AND t._source_key = b._source_key"
                " AND t._batch_id < b._batch_id"
            )
            # The rows whose key is still there (a newer batch): a semi join probing the
            # table against the batch, then an anti join with those few. (NOT EXISTS made
            # DuckDB hash the whole table: 6 s and hundreds of MB at 10M rows.)
            con.execute(
                f"INSERT INTO {columns.table} ({names}) SELECT {names} FROM incoming AS b"
                f" ANTI JOIN (SELECT t._source_system, t._source_key FROM {columns.table} AS t"
                " SEMI JOIN incoming AS i ON t._source_system = i._source_system"
                " AND t._source_key = i._source_key) AS present"
                " ON b._source_system = present._source_system"
                " AND b._source_key = present._source_key"
            )
            con.execute(
                f"INSERT INTO {STATE_SCHEMA}.cache_state VALUES (?, ?) ON CONFLICT (entity)"
                " DO UPDATE SET last_batch_id = excluded.last_batch_id",
                [columns.entity, batch_id],
            )
            crash_point("during_cache_apply")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("incoming")
