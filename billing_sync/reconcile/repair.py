"""Repairs found by verification: rows read again from the source through the load path,
hard deletes flagged ``_is_deleted`` (see :mod:`.verify`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pyarrow as pa

from billing_sync.capture.query import build_rows_by_key_query
from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.entities import entity_columns, rows_to_arrow
from billing_sync.load.warehouse import CommitResult
from billing_sync.reconcile import hashing
from billing_sync.reconcile.differ import Found, WarehouseRow, chunks
from billing_sync.reconcile.engine_port import EnginePort
from billing_sync.reconcile.results import TableVerification
from billing_sync.source.schema import source_schema
from billing_sync.validate.quarantine import Screened

log = logging.getLogger(__name__)


def apply_to_cache(
    engine: EnginePort, mapping: TableMapping, rows: pa.Table, commit: CommitResult,
    result: TableVerification,
) -> bool:  # fmt: skip
    """The rows the warehouse wrote, applied to the cache as the sync applies a batch."""
    _, busy = engine.apply_cache(mapping, rows, commit)
    if busy:
        result.notes.append(f"{busy}; the cache takes the repair when it catches up")
    return busy is None


def repair_from_source(
    engine: EnginePort, catalog: SourceCatalog, mapping: TableMapping, found: Found,
    result: TableVerification,
) -> None:  # fmt: skip
    keys = [row.key for row in found.missing + found.stale]
    if not keys:
        return
    session = engine.source(catalog.system)
    schema = source_schema(mapping)
    quarantined = 0

    def read() -> tuple[pa.Table, Screened]:
        nonlocal quarantined
        raw = pa.concat_tables(
            [
                session.read_arrow(
                    build_rows_by_key_query(
                        mapping, schema=catalog.schema_name, keys=list(chunk), style=session.style
                    ),
                    schema,
                )
                for chunk in chunks(keys)
            ]
        )
        rows, screened = engine.prepare(raw, catalog, mapping, polars_validation=True)
        quarantined = screened.quarantined
        return rows, screened

    # Read under the entity's lock: later than every batch committed, so it wins over
    # their content whatever the stamps say (see Warehouse.commit_read).
    commit, rows = engine.warehouse.commit_read(
        system=catalog.system, mapping=mapping, read=read, kind="repair", run_id=engine.run_id
    )
    result.repaired_missing = len(commit.written_keys & set(result.warehouse.missing))
    result.repaired_stale = len(commit.written_keys & set(result.warehouse.stale))
    result.repaired_backwards = len(commit.written_keys & set(result.warehouse.backwards))
    if result.repaired_backwards:
        log.warning(
            "%s: %d rows repaired back to an older source version than the warehouse held "
            "(e.g. %s): source stamps went backwards (transaction-start stamps or a lagging "
            "application clock)",
            result.name, result.repaired_backwards, ", ".join(result.warehouse.backwards[:5]),
        )  # fmt: skip
    if quarantined:
        result.notes.append(f"{quarantined} repaired rows went to quarantine")
    apply_to_cache(engine, mapping, rows, commit, result)


def flag_hard_deletes(
    engine: EnginePort, catalog: SourceCatalog, mapping: TableMapping,
    extra: list[WarehouseRow], result: TableVerification,
) -> None:  # fmt: skip
    if not extra:
        return
    conn = engine.warehouse.conn
    columns = entity_columns(mapping)
    text = hashing.build_warehouse_rows_by_source_key(mapping)
    now = datetime.now(UTC)
    confirmed = {row.source_key: row.version for row in extra}
    version_at = columns.all.index("_source_version")
    for chunk in chunks(list(confirmed)):
        keys = list(chunk)
        records = [
            record
            for record in conn.execute(text, {"system": catalog.system, "keys": keys})
            # A row the tail rewrote since it was confirmed gone is not a delete (any more).
            if record[version_at] == confirmed[record[columns.all.index("_source_key")]]
        ]
        rows = rows_to_arrow(records, columns)
        rows = rows.set_column(
            rows.schema.get_field_index("_is_deleted"),
            "_is_deleted",
            pa.array([True] * rows.num_rows, pa.bool_()),
        ).set_column(
            rows.schema.get_field_index("_synced_at"),
            "_synced_at",
            pa.array([now] * rows.num_rows, pa.timestamp("us", "UTC")),
        )
        with conn.transaction():
            commit = engine.warehouse.commit_rows(
                system=catalog.system, mapping=mapping, rows=rows.drop_columns(["_batch_id"]),
                kind="hard_delete", replace_equal_versions=True, run_id=engine.run_id,
            )  # fmt: skip
            if commit.batch_id is not None:
                conn.execute(
                    hashing.build_record_hard_deletes(mapping),
                    {
                        "system": catalog.system, "entity": mapping.entity,
                        "table": mapping.table, "batch_id": commit.batch_id, "keys": keys,
                    },
                )  # fmt: skip
        result.deleted += len(commit.written_keys)
        apply_to_cache(engine, mapping, rows.drop_columns(["_batch_id"]), commit, result)
