"""The cache against the warehouse, on lineage only (see :mod:`.verify`)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import duckdb
import pyarrow as pa

from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.entities import STATE_SCHEMA, entity_columns, rows_to_arrow
from billing_sync.load.cache import CacheBusy
from billing_sync.reconcile import hashing, lineage_sql
from billing_sync.reconcile.differ import chunks
from billing_sync.reconcile.engine_port import EnginePort
from billing_sync.reconcile.repair import apply_to_cache
from billing_sync.reconcile.results import Differences, TableVerification

ROWS_PER_CACHE_BUCKET = 250


class _Lineage(NamedTuple):
    version: datetime
    row_hash: int
    is_deleted: bool


def verify_cache(
    engine: EnginePort, catalog: SourceCatalog, mapping: TableMapping,
    result: TableVerification, *, repair: bool,
) -> None:  # fmt: skip
    found = _compare_cache(engine, catalog.system, mapping, result)
    if found is None:
        return
    result.cache = found
    if not repair or not found.total:
        return
    columns = entity_columns(mapping)
    conn = engine.warehouse.conn
    repaired = 0
    wanted = found.missing + found.stale
    for chunk in chunks(wanted):
        records = conn.execute(
            hashing.build_warehouse_rows_by_source_key(mapping),
            {"system": catalog.system, "keys": list(chunk)},
        ).fetchall()
        rows = rows_to_arrow(records, columns).drop_columns(["_batch_id"])
        commit = engine.warehouse.commit_rows(
            system=catalog.system, mapping=mapping, rows=rows, kind="cache_repair",
            replace_equal_versions=True, run_id=engine.run_id,
        )  # fmt: skip
        if apply_to_cache(engine, mapping, rows, commit, result):
            repaired += len(commit.written_keys)
    if found.extra:
        try:
            repaired += engine.cache.delete_keys(columns, system=catalog.system, keys=found.extra)
        except CacheBusy as busy:
            result.notes.append(f"{busy}; extra cache rows stay until the next verify")
    result.cache_repaired = repaired


def _compare_cache(
    engine: EnginePort, system: str, mapping: TableMapping, result: TableVerification
) -> Differences | None:
    """Cache vs warehouse on lineage, or ``None`` (and ``cache_error``) when unreadable."""
    try:
        con = engine.cache._connect(read_only=True)
    except CacheBusy:
        result.cache_error = "cache busy: another process holds the DuckDB file"
        return None
    except duckdb.Error as error:
        result.cache_error = f"cache unreadable: {error}"
        return None
    table = entity_columns(mapping).table
    conn = engine.warehouse.conn
    try:
        state = con.execute(
            f"SELECT last_batch_id FROM {STATE_SCHEMA}.cache_state WHERE entity = ?",
            [mapping.entity],
        ).fetchall()
        upto = int(state[0][0]) if state else 0
        buckets = max(1, result.warehouse_rows // ROWS_PER_CACHE_BUCKET)
        params = {"system": system, "upto": upto, "buckets": buckets}
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            pending = [
                key
                for (key,) in conn.execute(lineage_sql.build_pending_keys_postgres(table), params)
            ]
            if pending:
                result.notes.append(
                    f"{len(pending)} warehouse rows not in the cache yet (it catches up)"
                )
            warehouse = {
                int(row[0]): tuple(int(v) for v in row[1:])
                for row in conn.execute(lineage_sql.build_lineage_buckets_postgres(table), params)
            }
            con.register("pending_keys", pa.table({"_source_key": pa.array(pending, pa.string())}))
            cache = {
                int(row[0]): tuple(int(v) for v in row[1:])
                for row in con.execute(
                    lineage_sql.build_lineage_buckets_duckdb(table, pending="pending_keys"),
                    {"system": system, "buckets": buckets},
                ).fetchall()
            }
            result.cache_rows = sum(summary[0] for summary in cache.values())
            differing = sorted(
                bucket
                for bucket in warehouse.keys() | cache.keys()
                if warehouse.get(bucket) != cache.get(bucket)
            )
            if not differing:
                return Differences()
            in_warehouse = {
                row[0]: _Lineage(*row[1:])
                for row in conn.execute(
                    lineage_sql.build_lineage_rows_postgres(table), {**params, "wanted": differing}
                )
            }
            con.register("wanted_buckets", pa.table({"bucket": pa.array(differing, pa.int64())}))
            in_cache = {
                row[0]: _Lineage(*row[1:])
                for row in con.execute(
                    lineage_sql.build_lineage_rows_duckdb(
                        table, pending="pending_keys", wanted="wanted_buckets"
                    ),
                    {"system": system, "buckets": buckets},
                ).fetchall()
            }
    except duckdb.Error as error:
        result.cache_error = f"cache unreadable: {error}"
        return None
    finally:
        con.close()
    result.cache_rows_read += len(in_warehouse) + len(in_cache)
    return Differences(
        missing=sorted(in_warehouse.keys() - in_cache.keys()),
        extra=sorted(in_cache.keys() - in_warehouse.keys()),
        stale=sorted(
            key
            for key in in_warehouse.keys() & in_cache.keys()
            if in_warehouse[key] != in_cache[key]
        ),
    )
