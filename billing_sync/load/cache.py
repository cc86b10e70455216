"""The DuckDB cache: the same batches, applied after the warehouse commit.

The cache records, per entity, the last warehouse batch it applied. When the batch
in hand directly follows it, the batch is applied from memory; otherwise (the cache
was busy, lost, rebuilt or is new) the cache catches up **from the warehouse**, never
from the source, by copying every row whose ``_batch_id`` is above its own.

DuckDB admits one writing process per file, and readers in other processes block a
writer. The writer therefore opens the file only while applying and gives up at once
when the file is taken: the cache falls behind, :class:`CacheBusy` says so, and the
next apply catches up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from billing_sync.faults import crash_point
from billing_sync.load.ddl import STATE_SCHEMA, EntityColumns

_STATE_DDL = f"""
CREATE SCHEMA IF NOT EXISTS billing;
CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA};
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.cache_state (
    entity VARCHAR PRIMARY KEY,
    last_batch_id BIGINT NOT NULL
);
"""


class CacheBusy(RuntimeError):
    """Another process holds the DuckDB file; the cache falls behind and catches up later."""


@dataclass(frozen=True)
class CacheApplied:
    entity: str
    last_batch_id: int
    rows: int
    caught_up: bool  # True when rows came from the warehouse rather than the batch in hand


CatchUpSource = Callable[[EntityColumns, int], tuple[pa.Table, int]]


class Cache:
    """The DuckDB cache file; each call opens and closes it."""

    def __init__(self, path: Path, entities: dict[str, EntityColumns]) -> None:
        self.path = path
        self.entities = entities

    def _connect(self, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        try:
            if read_only:
                return duckdb.connect(str(self.path), read_only=True)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(self.path))
            self._ensure_tables(con)
            return con
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise CacheBusy(
                    f"the DuckDB cache {self.path} is held by another process: {error}"
                ) from error
            raise

    def setup(self) -> None:
        """Create the cache's tables (idempotent); raises :class:`CacheBusy` if held."""
        with self._connect():
            pass

    def _ensure_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        # Every time, not once: a deleted or rebuilt cache file must come back whole.
        con.execute(_STATE_DDL)
        for columns in self.entities.values():
            definitions = ", ".join(columns.column_definitions())
            con.execute(f"CREATE TABLE IF NOT EXISTS {columns.table} ({definitions})")
            con.execute(
                f"INSERT INTO {STATE_SCHEMA}.cache_state VALUES (?, 0) ON CONFLICT DO NOTHING",
                [columns.entity],
            )

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
        with self._connect() as con:
            applied = self._last_applied(con, columns.entity)
            if applied >= batch_id:
                return CacheApplied(columns.entity, applied, 0, caught_up=False)
            caught_up = applied != previous_batch_id
            if caught_up:
                rows, batch_id = catch_up(columns, applied)
            self._apply_rows(con, columns, rows, batch_id)
            return CacheApplied(columns.entity, batch_id, rows.num_rows, caught_up)

    def delete_keys(self, columns: EntityColumns, *, system: str, keys: list[str]) -> int:
        """Drop cached rows the warehouse does not hold (verify --repair); the count."""
        with self._connect() as con:
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

    def catch_up(self, columns: EntityColumns, *, catch_up: CatchUpSource) -> CacheApplied:
        """Bring the entity up to the warehouse's last batch."""
        with self._connect() as con:
            applied = self._last_applied(con, columns.entity)
            rows, last = catch_up(columns, applied)
            if last <= applied:
                return CacheApplied(columns.entity, applied, 0, caught_up=True)
            self._apply_rows(con, columns, rows, last)
            return CacheApplied(columns.entity, last, rows.num_rows, caught_up=True)

    def last_applied(self) -> dict[str, int]:
        with self._connect(read_only=True) as con:
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
            con.execute(
                f"INSERT INTO {columns.table} ({names}) SELECT {names} FROM incoming AS b"
                f" WHERE NOT EXISTS (SELECT 1 FROM {columns.table} AS t"
                " WHERE t._source_system = b._source_system AND t._source_key = b._source_key)"
            )
            con.execute(
                f"UPDATE {STATE_SCHEMA}.cache_state SET last_batch_id = ? WHERE entity = ?",
                [batch_id, columns.entity],
            )
            crash_point("during_cache_apply")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("incoming")
