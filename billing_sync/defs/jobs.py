"""Jobs: one sync job per tier (in-process: no per-step process start) and the checks job."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from billing_sync.defs.keys import SYNC_MAX_RUNTIME_SECONDS, TIER_TAG


def sync_job(tier: str, asset: dg.AssetsDefinition) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=f"sync_{tier}_job",
        # With its validation checks: a run reports them per batch and at its end.
        selection=dg.AssetSelection.assets(asset).without_checks()
        | dg.AssetSelection.checks(*asset.check_keys),
        executor_def=dg.in_process_executor,
        # Run monitoring fails a run past this (a hung source read, say); the sensor then
        # starts the next from the committed watermark.
        tags={TIER_TAG: tier, "dagster/max_runtime": str(SYNC_MAX_RUNTIME_SECONDS)},
        description=f"Micro-batches of the {tier} tier's tables, looped inside one run.",
    )


def checks_job(checks: dg.AssetChecksDefinition) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name="freshness_checks_job",
        selection=dg.AssetSelection.checks(checks),
        executor_def=dg.in_process_executor,
    )
