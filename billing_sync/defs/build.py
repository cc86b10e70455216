"""Assemble the Definitions from the catalogs named in the settings."""

import dagster as dg

from billing_sync.config import HMAC_KEY_ENV, load_catalogs, load_settings
from billing_sync.defs.alerts import alerts_sensor, operations_spec
from billing_sync.defs.assets import source_specs, sync_assets
from billing_sync.defs.backfill import backfill_jobs
from billing_sync.defs.checks import freshness_checks
from billing_sync.defs.deletes import priority_deletes_job, priority_deletes_sensor
from billing_sync.defs.feed import feed_definitions
from billing_sync.defs.jobs import asset_jobs
from billing_sync.defs.observe import freshness_sensor, source_observation_sensor
from billing_sync.defs.parity import parity_checks, parity_schedule
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.defs.retention import retention_job, retention_schedule
from billing_sync.defs.sensors import sync_sensor
from billing_sync.defs.serve import view_specs
from billing_sync.dictionary import describe
from billing_sync.shards import tier_shards
from billing_sync.validate.suites import suites_for


def build_definitions() -> dg.Definitions:
    settings = load_settings()
    catalogs = load_catalogs(settings)
    entities = sorted({mapping.entity for catalog in catalogs for mapping in catalog.tables})
    dictionary = describe(catalogs, suites_for(entities, settings.suites_dir))
    # Overlapping shards are refused here, before any sensor runs (ConfigError).
    tier_assets = sync_assets(catalogs, tier_shards(settings, catalogs), dictionary)
    checks = freshness_checks(catalogs)
    parity = parity_checks(catalogs)
    jobs = asset_jobs(tier_assets, checks, parity)
    op_jobs = [retention_job, priority_deletes_job, *backfill_jobs(catalogs)]
    job_names = [job.name for job in [*(jobs.jobs or []), *op_jobs]]
    check_keys = sorted(
        {
            *(key for asset in tier_assets.values() for key in asset.check_keys),
            *checks.check_keys,
            *parity.check_keys,
        },
        key=lambda key: key.to_user_string(),
    )
    rest = dg.Definitions(
        assets=[
            *source_specs(catalogs),
            *tier_assets.values(),
            *view_specs(catalogs),
            operations_spec(),
        ],
        asset_checks=[checks, parity],
        jobs=op_jobs,
        sensors=[
            *(sync_sensor(shard) for shard in tier_assets),
            # Freshness is evaluated continuously by a sensor (freshness_checks_job on demand).
            freshness_sensor(),
            source_observation_sensor(),
            alerts_sensor(check_keys, job_names),
            priority_deletes_sensor,
        ],
        schedules=[parity_schedule(), retention_schedule],
        resources={"billing_sync": BillingSyncResource(hmac_key=dg.EnvVar(HMAC_KEY_ENV))},
    )
    return dg.Definitions.merge(jobs, rest, feed_definitions(settings))
