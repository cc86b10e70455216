"""The asset graph: ``source/<system>/<table>`` -> ``warehouse/<entity>`` -> ``cache/<entity>``.

Each tier has one multi-asset whose run loops over micro-batches; every batch that
changes an entity is logged as its own materialization (DESIGN §8).
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from billing_sync.config import SourceCatalog
from billing_sync.defs.event_writer import EventWriter
from billing_sync.defs.keys import SYNC_RUN_BUDGET_SECONDS, cache_key, source_key, warehouse_key
from billing_sync.defs.metadata import materializations
from billing_sync.defs.observe import freshness_evaluation
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.defs.validation import (
    RunTally,
    batch_evaluation,
    disagreement_evaluation,
    failed_batch_evaluation,
    validation_spec,
)
from billing_sync.dictionary import EntityDoc, describe
from billing_sync.engine.batch import TableBatch
from billing_sync.engine.handover import TierLock
from billing_sync.engine.monitor import entity_freshness
from billing_sync.shards import Shard
from billing_sync.tier_failures import TablesFailed
from billing_sync.validate.report import BatchValidationError

DagsterEvent = dg.AssetMaterialization | dg.AssetObservation | dg.AssetCheckEvaluation


class SyncRunConfig(dg.Config):
    """Overrides for one sync run; the tier's settings apply when left unset."""

    # Bounded as the tier settings are: the run config comes from whoever reaches the UI.
    batches: int | None = Field(default=None, gt=0)
    poll_interval_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)


def source_specs(catalogs: list[SourceCatalog]) -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            source_key(catalog.system, mapping.table),
            description=f"{mapping.table} in the {catalog.system} biller (read-only).",
            group_name=f"source_{catalog.system}",
            kinds={"postgres"},
        )
        for catalog in catalogs
        for mapping in catalog.tables
    ]


def column_schema(doc: EntityDoc) -> dg.TableSchema:
    """The entity's columns as the UI shows them, from the data dictionary."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(column.name, column.type, description=column.comment)
            for column in doc.columns
        ]
    )


def _entity_specs(
    catalogs: list[SourceCatalog], shard: Shard, dictionary: dict[str, EntityDoc]
) -> list[dg.AssetSpec]:
    tier = shard.tier
    sources: dict[str, list[dg.AssetKey]] = {}
    for catalog in catalogs:
        for mapping in catalog.for_tier(tier):
            if mapping.entity not in shard.entities:
                continue
            sources.setdefault(mapping.entity, []).append(source_key(catalog.system, mapping.table))
    specs = []
    for entity, deps in sources.items():
        doc = dictionary[entity]
        metadata = {"dagster/column_schema": column_schema(doc)}
        specs.append(
            dg.AssetSpec(
                warehouse_key(entity),
                deps=deps,
                skippable=True,
                group_name="warehouse",
                kinds={"postgres"},
                tags={"tier": tier},
                description=f"billing.{entity} in the PostgreSQL warehouse. {doc.comment}",
                metadata=metadata,
            )
        )
        specs.append(
            dg.AssetSpec(
                cache_key(entity),
                deps=[warehouse_key(entity)],
                skippable=True,
                group_name="cache",
                kinds={"duckdb"},
                tags={"tier": tier},
                description=f"billing.{entity} in the DuckDB cache, applied after the"
                f" warehouse. {doc.comment}",
                metadata=metadata,
            )
        )
    return specs


def sync_assets(
    catalogs: list[SourceCatalog],
    shards: list[Shard],
    dictionary: dict[str, EntityDoc] | None = None,
) -> dict[Shard, dg.AssetsDefinition]:
    """One multi-asset per tier shard (billing_sync.shards); ``dictionary`` describes their
    columns (the catalogs' own descriptions when not given)."""
    docs = dictionary or describe(catalogs)
    return {
        shard: _sync_tier_asset(shard, specs)
        for shard in shards
        if (specs := _entity_specs(catalogs, shard, docs))
    }


def _sync_tier_asset(shard: Shard, specs: list[dg.AssetSpec]) -> dg.AssetsDefinition:
    tier = shard.tier
    entities = [spec.key.path[-1] for spec in specs if spec.key.path[0] == "warehouse"]

    @dg.multi_asset(
        name=f"sync_{shard.name}",
        specs=specs,
        check_specs=[validation_spec(entity) for entity in entities],
        can_subset=False,
    )
    def sync_tier(
        context: dg.AssetExecutionContext, config: SyncRunConfig, billing_sync: BillingSyncResource
    ) -> Iterator[dg.AssetCheckResult]:
        """Loop up to ``batches_per_run`` micro-batches over the tier's tables."""
        tier_settings = billing_sync.settings().tier(tier)
        tally = RunTally(entities)

        reporting = [0.0]  # seconds the loop spent building Dagster's events, between batches

        def report(results: list[TableBatch]) -> None:
            began = time.perf_counter()
            try:
                writer.submit(batch_events(results))
            finally:
                reporting[0] += time.perf_counter() - began

        def batch_events(results: list[TableBatch]) -> list[DagsterEvent]:
            events: list[DagsterEvent] = []
            loaded = set()
            for batch in results:
                for event in materializations(batch):
                    events.append(event)
                    if event.asset_key.path[0] == "warehouse":
                        loaded.add(batch.entity)
                if (evaluation := batch_evaluation(batch)) is not None:
                    events.append(evaluation)
                tally.add(batch)
                if batch.cache_error:
                    context.log.warning(batch.cache_error)
            for found in engine.shadow.disagreements():
                events.append(disagreement_evaluation(found))
                tally.disagree(found)
            # The UI's check list shows a check's latest evaluation only if it comes after
            # the asset's latest materialization (or in the same run): evaluate freshness
            # right after each one, or the sensor's result shows as "Not evaluated".
            if loaded:
                for figures in entity_freshness(engine):
                    if figures.entity in loaded:
                        events.append(freshness_evaluation(figures))
            return events

        started = time.monotonic()
        # A tier of one shard keeps the whole engine (every catalog), as before shards.
        only = shard.entities if shard.count > 1 else None
        shard_engine = billing_sync.engine(run_id=context.run_id, entities=only)
        # Events are written off the loop (event_writer); the writer closes first, so its
        # events are written before a failure's evaluation.
        with (
            shard_engine as engine,
            failed_batches(context),
            EventWriter(context.log_event) as writer,
        ):
            engine.setup()
            # The 3-4 s GX import and this tier's suites, off the freshness path: batches
            # validate with the same suites in Polars until it is done.
            engine.validator.warm_up_in_background(entities)
            # Started while the tier's previous run still syncs: wait warm, take over at once.
            lock = TierLock(engine.urls.warehouse, shard.name)  # per shard: shards run side by side
            try:
                if lock.acquire(should_stop=engine.settings.pause_file.exists):
                    context.log.info(
                        f"{tier}: took the tier over after {lock.waited_seconds:.1f} s"
                    )
                done = (
                    0
                    if not lock.held
                    else engine.run(
                        tier=tier,
                        batches=config.batches or tier_settings.batches_per_run,
                        poll_interval=(
                            tier_settings.poll_interval_seconds
                            if config.poll_interval_seconds is None
                            else config.poll_interval_seconds
                        ),
                        probe_interval=tier_settings.probe_interval_seconds,
                        on_batch=report,
                        on_failure=lambda failed: report_failures(context, failed, writer.submit),
                        should_stop=lambda: (
                            engine.settings.pause_file.exists()
                            or time.monotonic() - started > SYNC_RUN_BUDGET_SECONDS
                        ),
                    )
                )
            finally:
                lock.release()  # the next run, already waiting, syncs from here on
            engine.shadow.join()  # the background GX checks of the last batches
            report([])
        context.log.info(
            f"{tier}: {done} micro-batches; their {writer.events} Dagster events took"
            f" {reporting[0]:.1f} s to build in the loop and {writer.seconds:.1f} s to write"
            " beside it"
        )
        # Every batch was logged as its own materialization above (the asset specs are
        # skippable); the run ends with its validation summary per entity.
        yield from tally.results()

    return sync_tier


def report_failures(
    context: dg.AssetExecutionContext,
    failed: TablesFailed,
    submit: Callable[[list[DagsterEvent]], None],
) -> None:
    """Tables that failed in a micro-batch (the others committed): each named in the run's
    log at once, a batch that failed validation as an ERROR check evaluation too (after
    the events of the batches before it: ``submit`` queues it behind them)."""
    for table, error in failed.failures.items():
        context.log.error(f"{table} failed; the tier's other tables went on: {error}")
        if isinstance(error, BatchValidationError):
            submit([failed_batch_evaluation(error)])


@contextmanager
def failed_batches(context: dg.AssetExecutionContext) -> Iterator[None]:
    """A batch that failed validation whole: an ERROR check evaluation, then the failure.
    Failed tables of a tier (:class:`TablesFailed`) were reported as they failed; the
    run then fails naming them."""
    try:
        yield
    except BatchValidationError as error:
        context.log_event(failed_batch_evaluation(error))
        raise
