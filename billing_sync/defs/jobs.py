"""Asset jobs: one sync job per tier (in-process: no per-step process start), the freshness
checks job and the parity checks job.

They come back as a small ``dg.Definitions`` (merged in :mod:`billing_sync.defs.build`), and
sensors and schedules target them by name: the type ``define_asset_job`` returns is not part
of Dagster's public API, so no signature here names it.
"""

from collections.abc import Mapping

import dagster as dg

from billing_sync.config import TIERS, Tier
from billing_sync.defs.keys import SYNC_MAX_RUNTIME_SECONDS, TIER_TAG
from billing_sync.shards import Shard

FRESHNESS_CHECKS_JOB = "freshness_checks_job"
PARITY_CHECKS_JOB = "parity_checks_job"


def sync_job_name(tier: Tier | str) -> str:
    """The sync job of a tier, or of a shard by its name (``priority_1``).

    >>> sync_job_name("priority")
    'sync_priority_job'
    """
    return f"sync_{tier}_job"


def tier_of_sync_job(job: str) -> str | None:
    """The tier a sync job (a tier's or a shard's) belongs to.

    >>> tier_of_sync_job("sync_priority_1_job"), tier_of_sync_job("parity_checks_job")
    ('priority', None)
    """
    for tier in TIERS:
        if job == sync_job_name(tier) or (
            job.startswith(f"sync_{tier}_") and job.removesuffix("_job")[len(tier) + 6 :].isdigit()
        ):
            return tier
    return None


def asset_jobs(
    tier_assets: Mapping[Shard, dg.AssetsDefinition],
    freshness: dg.AssetChecksDefinition,
    parity: dg.AssetChecksDefinition,
) -> dg.Definitions:
    sync_jobs = [
        dg.define_asset_job(
            name=sync_job_name(shard.name),
            # With its validation checks: a run reports them per batch and at its end.
            selection=dg.AssetSelection.assets(asset).without_checks()
            | dg.AssetSelection.checks(*asset.check_keys),
            executor_def=dg.in_process_executor,
            # Run monitoring fails a run past this (a hung source read, say); the sensor then
            # starts the next from the committed watermark. No run retries: the sensor is the
            # one owner of restarting a tier. With both, a dead run worker got a retry run
            # and a sensor run for the same tier (dagster.yaml's run_retries stay for others).
            tags={
                TIER_TAG: shard.tag,
                "dagster/max_runtime": str(SYNC_MAX_RUNTIME_SECONDS),
                "dagster/max_retries": "0",
            },
            description=f"Micro-batches of the {shard.tier} tier's tables"
            + (f" of {', '.join(shard.entities)}" if shard.count > 1 else "")
            + ", looped inside one run.",
        )
        for shard, asset in tier_assets.items()
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
