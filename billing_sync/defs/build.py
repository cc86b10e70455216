"""Assemble the Definitions from the catalogs named in the settings."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from billing_sync.config import load_catalogs, load_settings
from billing_sync.defs.alerts import alerts_sensor
from billing_sync.defs.assets import source_specs, sync_assets
from billing_sync.defs.backfill import backfill_jobs
from billing_sync.defs.checks import freshness_checks
from billing_sync.defs.jobs import checks_job, sync_job
from billing_sync.defs.observe import freshness_sensor, source_observation_sensor
from billing_sync.defs.parity import parity_checks, parity_job, parity_schedule
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.defs.retention import retention_job, retention_schedule
from billing_sync.defs.sensors import sync_sensor
from billing_sync.defs.serve import view_specs


def build_definitions() -> dg.Definitions:
    catalogs = load_catalogs(load_settings())
    tier_assets = sync_assets(catalogs)
    checks = freshness_checks(catalogs)
    jobs = {
        asset.op.name.removeprefix("sync_"): sync_job(asset.op.name.removeprefix("sync_"), asset)
        for asset in tier_assets
    }
    freshness_job = checks_job(checks)
    entities = sorted({mapping.entity for catalog in catalogs for mapping in catalog.tables})
    parity = parity_checks(catalogs)
    parity_checks_job = parity_job(parity)
    all_jobs: list[dg.JobDefinition | UnresolvedAssetJobDefinition] = [
        *jobs.values(),
        freshness_job,
        parity_checks_job,
        retention_job,
        *backfill_jobs(catalogs),
    ]
    return dg.Definitions(
        assets=[*source_specs(catalogs), *tier_assets, *view_specs(catalogs)],
        asset_checks=[checks, parity],
        jobs=all_jobs,
        sensors=[
            *(sync_sensor(tier, job) for tier, job in jobs.items()),  # type: ignore[arg-type]
            # Freshness is evaluated continuously by a sensor (freshness_checks_job on demand).
            freshness_sensor(),
            source_observation_sensor(),
            alerts_sensor(entities, [job.name for job in all_jobs]),
        ],
        schedules=[parity_schedule(parity_checks_job), retention_schedule],
        resources={
            "billing_sync": BillingSyncResource(hmac_key=dg.EnvVar("BILLING_SYNC_HMAC_KEY"))
        },
    )
