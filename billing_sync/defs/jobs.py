"""Asset jobs: one sync job per tier (in-process: no per-step process start), the freshness
checks job and the parity checks job.

They come back as a small ``dg.Definitions`` (merged in :mod:`billing_sync.defs.build`), and
sensors and schedules target them by name: the type ``define_asset_job`` returns is not part
of Dagster's public API, so no signature here names it.
"""

from collections.abc import Mapping

import dagster as dg

from billing_sync.config import Tier
from billing_sync.defs.keys import SYNC_MAX_RUNTIME_SECONDS, TIER_TAG

FRESHNESS_CHECKS_JOB = "freshness_checks_job"
PARITY_CHECKS_JOB = "parity_checks_job"


def sync_job_name(tier: Tier) -> str:
    """
    >>> sync_job_name("priority")
    'sync_priority_job'
    """
    return f"sync_{tier}_job"


def asset_jobs(
    tier_assets: Mapping[Tier, dg.AssetsDefinition],
    freshness: dg.AssetChecksDefinition,
    parity: dg.AssetChecksDefinition,
) -> dg.Definitions:
    sync_jobs = [
        dg.define_asset_job(
            name=sync_job_name(tier),
            # With its validation checks: a run reports them per batch and at its end.
            selection=dg.AssetSelection.assets(asset).without_checks()
            | dg.AssetSelection.checks(*asset.check_keys),
            executor_def=dg.in_process_executor,
            # Run monitoring fails a run past this (a hung source read, say); the sensor then
            # starts the next from the committed watermark. No run retries: the sensor is the
            # one owner of restarting a tier. With both, a dead run worker got a retry run
            # and a sensor run for the same tier (dagster.yaml's run_retries stay for others).
            tags={
                TIER_TAG: tier,
                "dagster/max_runtime": str(SYNC_MAX_RUNTIME_SECONDS),
                "dagster/max_retries": "0",
            },
            description=f"Micro-batches of the {tier} tier's tables, looped inside one run.",
        )
        for tier, asset in tier_assets.items()
    ]
    return dg.Definitions(
        jobs=[
            *sync_jobs,
            dg.define_asset_job(
                name=FRESHNESS_CHECKS_JOB,
                selection=dg.AssetSelection.checks(freshness),
                executor_def=dg.in_process_executor,
            ),
            dg.define_asset_job(
                name=PARITY_CHECKS_JOB,
                selection=dg.AssetSelection.checks(parity),
                executor_def=dg.in_process_executor,
                description="billing-sync verify --repair over every table.",
            ),
        ]
    )
