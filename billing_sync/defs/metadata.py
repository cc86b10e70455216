"""A table batch as Dagster materializations with numeric metadata the UI plots."""

from collections.abc import Iterator

import dagster as dg

from billing_sync.defs.keys import cache_key, warehouse_key
from billing_sync.engine.batch import TableBatch


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
        # The biller's wall time, labelled: the model's timestamps are UTC, this is not.
        "watermark": batch.watermark_label,
    }
    if batch.lag_seconds is not None:
        metadata["lag_seconds"] = round(batch.lag_seconds, 3)
    if batch.held_back_by is not None:
        metadata["horizon_held_by_pid"] = batch.held_back_by.pid
    if batch.cache_lag is not None:
        metadata["cache_lag_seconds"] = round(batch.cache_lag.seconds, 3)
        metadata["cache_batches_behind"] = batch.cache_lag.batches_behind
    return metadata


def materializations(
    batch: TableBatch,
) -> Iterator[dg.AssetMaterialization | dg.AssetObservation]:
    """One warehouse materialization per changed batch, and one for the cache if applied.

    A cache left behind (a reader held the DuckDB file) is an observation of the cache
    asset with its lag; its catch-up later is a materialization, even in a batch that
    changed nothing else.
    """
    if not batch.changed and (batch.cache is None or batch.cache.rows == 0):
        return
    metadata = batch_metadata(batch)
    if batch.changed:
        yield dg.AssetMaterialization(asset_key=warehouse_key(batch.entity), metadata=metadata)
    if batch.cache is None and batch.cache_error is not None:
        lag = batch.cache_lag
        yield dg.AssetObservation(
            asset_key=cache_key(batch.entity),
            metadata={
                "cache_busy": batch.cache_error,
                "cache_lag_seconds": round(lag.seconds, 3) if lag else -1.0,
                "cache_batches_behind": lag.batches_behind if lag else -1,
                "cache_batch": lag.cache_batch if lag else -1,
                "warehouse_batch": lag.warehouse_batch if lag else batch.batch_id or 0,
            },
        )
    if batch.cache is not None:
        yield dg.AssetMaterialization(
            asset_key=cache_key(batch.entity),
            metadata={
                **metadata,
                "cache_rows_applied": batch.cache.rows,
                "cache_caught_up_from_warehouse": batch.cache.caught_up,
            },
        )
