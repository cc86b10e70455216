"""Retention: a daily job that purges finished runs (and their event logs) older than a
configured age, since micro-batches produce many runs and events; and forgets released
quarantine lines of the same age."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from billing_sync.defs.resources import BillingSyncResource
from billing_sync.validate import quarantine_ops

FINISHED = [
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
]


class RetentionConfig(dg.Config):
    """``max_age_hours``: the settings' ``retention.max_age_hours`` when unset; bounded as
    the settings are (anyone who reaches the webserver can launch this job: 0 or a
    negative age would purge every run and released quarantine line at once)."""

    max_age_hours: float | None = Field(default=None, gt=0, allow_inf_nan=False)


def purge_runs(instance: dg.DagsterInstance, *, before: datetime, keep: str | None = None) -> int:
    """Delete finished runs last updated before ``before``, with their event logs."""
    purged = 0
    while True:
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=FINISHED, updated_before=before), limit=200
        )
        doomed = [r.dagster_run.run_id for r in records if r.dagster_run.run_id != keep]
        if not doomed:
            return purged
        for run_id in doomed:
            instance.delete_run(run_id)
            purged += 1


@dg.op(name="purge_old_runs")
def purge_old_runs(
    context: dg.OpExecutionContext, config: RetentionConfig, billing_sync: BillingSyncResource
) -> None:
    settings = billing_sync.settings()
    hours = config.max_age_hours
    if hours is None:
        hours = settings.retention.max_age_hours
    cutoff = datetime.now(UTC) - timedelta(hours=hours)
    runs = purge_runs(context.instance, before=cutoff, keep=context.run_id)
    with billing_sync.engine() as engine:
        engine.setup()
        lines = quarantine_ops.purge_released(
            engine.warehouse.conn, older_than_seconds=hours * 3600
        )
    context.log.info(
        f"purged {runs} runs (with their events) finished before {cutoff:%Y-%m-%d %H:%M} UTC "
        f"and {lines} released quarantine lines"
    )


@dg.job(name="retention_job", executor_def=dg.in_process_executor)
def retention_job() -> None:
    """Purge finished runs and their event logs older than the configured age."""
    purge_old_runs()


retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule",
    job=retention_job,
    cron_schedule="17 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
