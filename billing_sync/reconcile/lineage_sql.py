"""SQL of the cache-against-warehouse comparison (:mod:`.cache_check`): lineage only,
bucketed by ``_row_hash``.

DuckDB and PostgreSQL share no hash function, but both hold the same lineage values.
Rows are bucketed by ``_row_hash`` modulo a bucket count, each bucket summarised by its
row count, the sums of ``_row_hash`` and of ``_source_version`` in microseconds, and the
count of deleted rows; only buckets that differ are read back as rows.
"""

from __future__ import annotations

LINEAGE = ("_source_key", "_source_version", "_row_hash", "_is_deleted")


_PG_BUCKET = "((_row_hash %% %(buckets)s) + %(buckets)s) %% %(buckets)s"
_DUCKDB_BUCKET = "((_row_hash % $buckets) + $buckets) % $buckets"


def build_lineage_buckets_postgres(table: str) -> str:
    """Bucket summaries of ``table`` (warehouse) for ``%(system)s``, rows of batches up to
    ``%(upto)s`` (what the cache has applied)."""
    return (
        f"SELECT {_PG_BUCKET} AS bucket, count(*),"
        " sum(_row_hash), sum(CAST(extract(epoch FROM _source_version) * 1000000 AS bigint)),"
        " count(*) FILTER (WHERE _is_deleted)"
        f" FROM {table} WHERE _source_system = %(system)s AND _batch_id <= %(upto)s GROUP BY 1"
    )


def build_lineage_rows_postgres(table: str) -> str:
    """Lineage of the warehouse rows in buckets ``%(wanted)s`` (a list)."""
    return (
        f"SELECT {', '.join(LINEAGE)} FROM {table} WHERE _source_system = %(system)s"
        f" AND _batch_id <= %(upto)s AND {_PG_BUCKET} = ANY(%(wanted)s)"
    )


def build_pending_keys_postgres(table: str) -> str:
    """Keys the warehouse changed in batches the cache has not applied yet."""
    return (
        f"SELECT _source_key FROM {table}"
        " WHERE _source_system = %(system)s AND _batch_id > %(upto)s"
    )


def build_lineage_buckets_duckdb(table: str, *, pending: str) -> str:
    """The same summaries in the cache, leaving out keys in relation ``pending``."""
    return (
        f"SELECT {_DUCKDB_BUCKET} AS bucket, count(*), sum(_row_hash),"
        " sum(epoch_us(_source_version)), count(*) FILTER (WHERE _is_deleted)"
        f" FROM {table} WHERE _source_system = $system"
        f" AND _source_key NOT IN (SELECT _source_key FROM {pending}) GROUP BY 1"
    )


def build_lineage_rows_duckdb(table: str, *, pending: str, wanted: str) -> str:
    """Lineage of the cache rows in the buckets listed in relation ``wanted``."""
    return (
        f"SELECT {', '.join(LINEAGE)} FROM {table} WHERE _source_system = $system"
        f" AND _source_key NOT IN (SELECT _source_key FROM {pending})"
        f" AND {_DUCKDB_BUCKET} IN (SELECT bucket FROM {wanted})"
    )
