"""A table batch as Dagster materializations with numeric metadata the UI plots."""

from collections.abc import Iterator

import dagster as dg

from billing_sync.defs.keys import cache_key, warehouse_key
from billing_sync.sync import TableBatch


def batch_metadata(batch: TableBatch) -> dict[str, dg.MetadataValue | float | int | str]:
    metadata: dict[str, dg.MetadataValue | float | int | str] = {
        "source_table": f"{batch.system}.{batch.table}",
        "batch_id": batch.batch_id or 0,
        "rows_read": batch.rows_read,
        "rows_inserted": batch.inserted,
        "rows_updated": batch.updated,
        "rows_deleted": batch.deleted,
        "rows_quarantined": batch.quarantined,
        "rows_released": batch.released,
        "late_rows": batch.late_rows,
        "batch_seconds": round(batch.seconds, 4),
        "validation_seconds": round(batch.validation_seconds, 4),
        "horizon_hold_seconds": round(batch.hold_seconds, 3),
        "watermark": str(batch.cursor.change_ts) if batch.cursor else "",
    }
    if batch.lag_seconds is not None:
        metadata["lag_seconds"] = round(batch.lag_seconds, 3)
    if batch.held_back_by is not None:
        metadata["horizon_held_by_pid"] = batch.held_back_by.pid
    return metadata


def materializations(batch: TableBatch) -> Iterator[dg.AssetMaterialization]:
    """One warehouse materialization per changed batch, and one for the cache if applied."""
    if not batch.changed:
        return
    metadata = batch_metadata(batch)
    yield dg.AssetMaterialization(asset_key=warehouse_key(batch.entity), metadata=metadata)
    if batch.cache is not None:
        yield dg.AssetMaterialization(
            asset_key=cache_key(batch.entity),
            metadata={
                **metadata,
                "cache_rows_applied": batch.cache.rows,
                "cache_caught_up_from_warehouse": batch.cache.caught_up,
            },
        )
