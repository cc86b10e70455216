"""A backfill job per source table: re-load by primary-key ranges beside the tail."""

import dagster as dg

from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.engine.batch import TableBatch


class BackfillConfig(dg.Config):
    """``where``: an optional filter in the source's SQL, e.g. ``"SITE_ID" = '001'``."""

    where: str | None = None


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
