"""Hard deletes of priority tables within about a minute (issue 15, item 5).

The parity check (``defs/parity.py``) compares whole rows every 10 minutes: a payment
deleted in the biller stays live in the warehouse for up to 10 minutes. This job compares
keys only (:func:`billing_sync.reconcile.deletes.flag_deletes_by_keys`: index-only scans
on the source, aggregated there) for the priority tier's tables and flags what the source
no longer has, within the same per-run cap as the parity check. A sensor starts it every
minute unless a run is still in flight or billing-sync is paused.
"""

import dagster as dg

from billing_sync.defs.resources import BillingSyncResource
from billing_sync.reconcile.deletes import flag_deletes_by_keys

DELETES_JOB = "priority_deletes_job"
DELETES_TAG = "billing_sync/deletes"
DELETES_INTERVAL_SECONDS = 60
DELETE_TIERS = ("priority",)
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.op(name="flag_priority_deletes")
def flag_priority_deletes(
    context: dg.OpExecutionContext, billing_sync: BillingSyncResource
) -> None:
    with billing_sync.engine(run_id=context.run_id) as engine:
        engine.setup()
        compared = flag_deletes_by_keys(engine, tiers=DELETE_TIERS)
    for table in compared:
        line = (
            f"{table.table}: {table.source_keys:,} source keys compared in {table.segments}"
            f" segments, {table.hashes_read:,} key hashes read, {table.found} gone from the"
            f" source, {table.flagged} flagged deleted ({table.seconds:.2f} s)"
        )
        if table.refused:
            context.log.error(f"{line}: {table.refused}")
        else:
            context.log.info(line)
    refused = [table.table for table in compared if table.refused]
    if refused:
        # The refusal is recorded (alerts fire); failing the run makes it visible too.
        raise dg.Failure(
            f"hard deletes refused by the delete cap in {', '.join(refused)}: nothing flagged"
        )


@dg.job(name=DELETES_JOB, executor_def=dg.in_process_executor, tags={DELETES_TAG: "priority"})
def priority_deletes_job() -> None:
    """Flag rows hard-deleted from the priority tables' sources (key compare)."""
    flag_priority_deletes()


@dg.sensor(
    name="priority_deletes_sensor",
    job=priority_deletes_job,
    minimum_interval_seconds=DELETES_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: the priority tables' keys against the source, hard deletes "
    "flagged _is_deleted.",
)
def priority_deletes_sensor(
    context: dg.SensorEvaluationContext, billing_sync: BillingSyncResource
) -> dg.RunRequest | dg.SkipReason:
    if billing_sync.settings().pause_file.exists():
        return dg.SkipReason("billing-sync is paused (billing-sync resume)")
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(tags={DELETES_TAG: "priority"}, statuses=IN_FLIGHT), limit=1
    )
    if runs:
        return dg.SkipReason(f"deletes run {runs[0].run_id} is still in flight")
    return dg.RunRequest(tags={DELETES_TAG: "priority"})
