"""Assemble the Definitions from the catalogs named in the settings."""

import dagster as dg

from billing_sync.config import load_catalog, load_settings
from billing_sync.defs.assets import source_specs, sync_assets
from billing_sync.defs.backfill import backfill_jobs
from billing_sync.defs.checks import freshness_checks
from billing_sync.defs.jobs import checks_job, sync_job
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.defs.sensors import sync_sensor


def build_definitions() -> dg.Definitions:
    catalogs = [load_catalog(system) for system in load_settings().systems]
    tier_assets = sync_assets(catalogs)
    checks = freshness_checks(catalogs)
    jobs = {
        asset.op.name.removeprefix("sync_"): sync_job(asset.op.name.removeprefix("sync_"), asset)
        for asset in tier_assets
    }
    freshness_job = checks_job(checks)
    return dg.Definitions(
        assets=[*source_specs(catalogs), *tier_assets],
        asset_checks=[checks],
        jobs=[*jobs.values(), freshness_job, *backfill_jobs(catalogs)],
        sensors=[sync_sensor(tier, job) for tier, job in jobs.items()],  # type: ignore[arg-type]
        schedules=[
            dg.ScheduleDefinition(
                name="freshness_checks_schedule",
                job=freshness_job,
                cron_schedule="* * * * *",
                default_status=dg.DefaultScheduleStatus.RUNNING,
            )
        ],
        resources={"billing_sync": BillingSyncResource()},
    )
