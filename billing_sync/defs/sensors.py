"""Per tier, a sensor starts a sync run whenever the source moved and none is in flight;
when nothing moved, its probe records the tier's tables as caught up (quiet tables stay fresh).
While a run syncs, the sensor starts the next one, which waits warm on the tier lock and takes
over when the first ends (:mod:`billing_sync.engine.handover`): at most two per tier."""

import json

import dagster as dg

from billing_sync.config import Tier
from billing_sync.defs.jobs import sync_job_name
from billing_sync.defs.keys import TIER_TAG
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.engine.quiet import probe
from billing_sync.shards import Shard

SUCCEEDS_TAG = "billing_sync/succeeds"
"""On a run started while its tier's run syncs: that run's id (billing_sync.engine.handover)."""

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def tier_runs_in_flight(instance: dg.DagsterInstance, tier: Tier | str) -> list[str]:
    """Runs of the tier (or of the shard, by its tag) in flight."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={TIER_TAG: tier}, statuses=IN_FLIGHT), limit=2
    )
    return [run.run_id for run in runs]


def tier_run_in_flight(instance: dg.DagsterInstance, tier: Tier | str) -> str | None:
    runs = tier_runs_in_flight(instance, tier)
    return runs[0] if runs else None


def sync_sensor(shard: Shard) -> dg.SensorDefinition:
    """The sensor of one tier shard (billing_sync.shards; a tier of one shard keeps its
    names: ``sync_priority_sensor``)."""
    tier, tag = shard.tier, shard.tag

    @dg.sensor(
        name=f"sync_{shard.name}_sensor",
        job_name=sync_job_name(shard.name),
        minimum_interval_seconds=1,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts a {tier}-tier sync run when the source moved and none is in flight,"
        " and the next one while a run syncs (it waits on the tier lock).",
    )
    def start_sync(
        context: dg.SensorEvaluationContext, billing_sync: BillingSyncResource
    ) -> dg.SensorResult | dg.SkipReason:
        if billing_sync.settings().pause_file.exists():
            return dg.SkipReason("billing-sync is paused (billing-sync resume)")
        running = tier_runs_in_flight(context.instance, tag)
        if len(running) > 1:
            return dg.SkipReason(f"{shard.name} sync runs {', '.join(running)} are in flight")
        if running:  # the next run starts now and waits warm on the tier lock (handover)
            next_run = dg.RunRequest(tags={TIER_TAG: tag, SUCCEEDS_TAG: running[0]})
            return dg.SensorResult(run_requests=[next_run])
        with billing_sync.engine(entities=shard.entities if shard.count > 1 else None) as engine:
            engine.setup()
            # Also moves each caught-up table's point to the horizon: a quiet table stays
            # fresh without a run (billing_sync.quiet).
            found = probe(engine, tier)
        behind = found.behind
        if not behind:
            return dg.SkipReason(
                "the source has not moved past the warehouse watermark"
                + (
                    f"; {len(found.advanced)} tables caught up to the horizon"
                    if found.advanced
                    else ""
                )
            )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(tags={TIER_TAG: tag, "billing_sync/behind": ",".join(behind)})
            ],
            cursor=json.dumps({"behind": behind}),
        )

    return start_sync
