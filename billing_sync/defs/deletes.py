"""Hard deletes of priority tables within about a minute (issue 15, item 5).

The parity check (``defs/parity.py``) compares whole rows every 10 minutes: a payment
deleted in the biller stays live in the warehouse for up to 10 minutes. This job compares
keys only (:func:`billing_sync.reconcile.deletes.flag_deletes_by_keys`: index-only scans
on the source, aggregated there) for the priority tier's tables and flags what the source
no longer has, within the same per-run cap as the parity check.

One run compares every minute for half an hour (the sync runs' budget), like a tier's
long-lived sync run: a run launched for each minute's compare cost a process start and
Dagster's imports every minute on the machine the tail shares (its CPU not measured on its
own; with it the peers' bench measured priority p95 1.17 s, without it 0.65 s, on an idle
2-core machine).
The run keeps its engine (connections, setup) from round to round. A round that fails (a
warehouse restart cut its connections) is retried the next minute with a new engine; three
in a row fail the run. A round the delete cap refuses fails the run at once (recorded for
the alerts, as before). The sensor starts a run when none is in flight, unless
billing-sync is paused.
"""

import contextlib
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from billing_sync.defs.keys import SYNC_RUN_BUDGET_SECONDS
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.engine.sync import SyncEngine
from billing_sync.reconcile.deletes import KeyCompare, flag_deletes_by_keys
from billing_sync.secrets import mask_error

DELETES_JOB = "priority_deletes_job"
DELETES_TAG = "billing_sync/deletes"
DELETES_INTERVAL_SECONDS = 60
DELETE_TIERS = ("priority",)
FAILED_ROUNDS_TO_FAIL = 3
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class DeletesRunConfig(dg.Config):
    """How long one run compares: ``rounds`` (unset: until the run's budget)."""

    rounds: int | None = Field(default=None, gt=0)
    interval_seconds: float = Field(default=DELETES_INTERVAL_SECONDS, ge=0, allow_inf_nan=False)


@dg.op(name="flag_priority_deletes")
def flag_priority_deletes(
    context: dg.OpExecutionContext, config: DeletesRunConfig, billing_sync: BillingSyncResource
) -> None:
    started = time.monotonic()
    pause_file = billing_sync.settings().pause_file
    done = failed_in_a_row = 0
    engine: SyncEngine | None = None  # kept from round to round
    with contextlib.ExitStack() as opened:
        while True:
            round_began = time.monotonic()
            try:
                if engine is None:
                    engine = opened.enter_context(billing_sync.engine(run_id=context.run_id))
                    engine.setup()
                compared = flag_deletes_by_keys(engine, tiers=DELETE_TIERS)
            except Exception as error:  # a database gone away: the next round reconnects
                opened.close()
                engine = None
                failed_in_a_row += 1
                if failed_in_a_row >= FAILED_ROUNDS_TO_FAIL:
                    raise
                context.log.warning(f"key compare failed, retried in a minute: {mask_error(error)}")
            else:
                failed_in_a_row = 0
                _report(context, compared)
            done += 1
            if not _wait_for_next_round(config, done, round_began, started, pause_file):
                return


def _wait_for_next_round(
    config: DeletesRunConfig, done: int, round_began: float, started: float, pause_file: Path
) -> bool:
    """Sleep until the next round is due; False when the run ends instead (its rounds or
    budget used, or billing-sync paused: the sensor starts the next run)."""
    if config.rounds is not None and done >= config.rounds:
        return False
    next_round = round_began + config.interval_seconds
    if next_round - started > SYNC_RUN_BUDGET_SECONDS:
        return False
    while time.monotonic() < next_round:
        if pause_file.exists():
            return False
        time.sleep(min(1.0, max(0.0, next_round - time.monotonic())))
    return True


def _report(context: dg.OpExecutionContext, compared: list[KeyCompare]) -> None:
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
    """Flag rows hard-deleted from the priority tables' sources (key compare, every minute)."""
    flag_priority_deletes()


@dg.sensor(
    name="priority_deletes_sensor",
    job=priority_deletes_job,
    minimum_interval_seconds=DELETES_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps one run comparing the priority tables' keys with the source every "
    "minute (hard deletes flagged _is_deleted).",
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
