"""A backfill job per source table: re-load by primary-key ranges beside the tail."""

import dagster as dg
from pydantic import Field

from billing_sync.capture.filter_expr import MAX_FILTER_LENGTH
from billing_sync.capture.snapshot import check_filter
from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.engine.batch import TableBatch


class BackfillConfig(dg.Config):
    """``where``: an optional filter on the table's columns, e.g. ``SITE_ID = '001'``
    (the grammar: :mod:`billing_sync.capture.filter_expr`). Anyone who reaches the
    webserver can launch this job, so the filter is parsed exactly as the CLI's."""

    where: str | None = Field(default=None, max_length=MAX_FILTER_LENGTH)


def backfill_job(catalog: SourceCatalog, mapping: TableMapping) -> dg.JobDefinition:
    name = f"backfill_{catalog.system}_{mapping.table.lower()}"

    @dg.op(name=f"{name}_op")
    def backfill_table(
        context: dg.OpExecutionContext, config: BackfillConfig, billing_sync: BillingSyncResource
    ) -> None:
        def report(batch: TableBatch) -> None:
            if batch.snapshot_progress:
                done, total = batch.snapshot_progress
                context.log.info(f"{catalog.system}.{mapping.table}: {done} of {total} rows")

        # Refused before anything connects; the engine parses it again with the reflected
        # column types, as it does for the CLI.
        check_filter(config.where, catalog, mapping)
        with billing_sync.engine(run_id=context.run_id) as engine:
            engine.setup()
            engine.validator.warm_up()
            rows = engine.backfill(catalog, mapping, where=config.where, on_chunk=report)
        context.log.info(f"backfilled {rows} rows")

    @dg.job(
        name=name,
        executor_def=dg.in_process_executor,
        description=f"Re-load {catalog.system}.{mapping.table} by key ranges (resumable).",
        tags={"billing_sync/backfill": f"{catalog.system}.{mapping.table}"},
    )
    def job() -> None:
        backfill_table()

    return job


def backfill_jobs(catalogs: list[SourceCatalog]) -> list[dg.JobDefinition]:
    return [backfill_job(catalog, mapping) for catalog in catalogs for mapping in catalog.tables]
