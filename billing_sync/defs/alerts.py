"""The alert sensor (DESIGN §8): failed runs, ERROR checks, freshness breaches, late rows,
quarantine spikes and a horizon held back past its limit, POSTed to the webhook once while
each lasts and once more when it resolves. The dedupe state is the sensor's cursor."""

import dagster as dg

from billing_sync.alerts import AlertState, Condition, notify
from billing_sync.alerts import conditions as c
from billing_sync.defs.keys import warehouse_key
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.defs.validation import CHECK
from billing_sync.engine.monitor import entity_freshness, horizon_hold, late_rows_by_entity
from billing_sync.load.cache import set_aside_files
from billing_sync.reconcile import events
from billing_sync.validate import quarantine_ops

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]


def latest_runs(instance: dg.DagsterInstance, jobs: list[str]) -> list[c.FinishedRun]:
    """The latest finished run of each job, with the first step error of a failed one."""
    found = []
    for job in jobs:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job, statuses=FINISHED), limit=1)
        if not runs:
            continue
        run = runs[0]
        error = None
        if run.status == dg.DagsterRunStatus.FAILURE:
            error = run_error(instance, run.run_id)
        found.append(
            c.FinishedRun(job, run.run_id, run.status == dg.DagsterRunStatus.FAILURE, error)
        )
    return found


def run_error(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The first step failure's message (or the run failure's), shortened."""
    for kind in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE):
        for record in instance.all_logs(run_id, of_type=kind):
            event = record.dagster_event
            data = getattr(event, "event_specific_data", None) if event else None
            error = getattr(data, "error", None)
            while error is not None and error.cause is not None:  # Dagster's wrapper first
                error = error.cause
            message = error.message if error is not None else record.user_message
            if message:
                return " ".join(str(message).split())[:400]
    return None


def latest_checks(instance: dg.DagsterInstance, entities: list[str]) -> list[c.CheckOutcome]:
    keys = [dg.AssetCheckKey(warehouse_key(entity), CHECK) for entity in entities]
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    outcomes = []
    for key, record in records.items():
        event = record.event.dagster_event if record.event else None
        evaluation = getattr(event, "event_specific_data", None) if event else None
        if not isinstance(evaluation, dg.AssetCheckEvaluation):
            continue
        outcomes.append(
            c.CheckOutcome(
                asset=key.asset_key.to_user_string(),
                check=key.name,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                description=evaluation.description,
                run_id=record.run_id,
            )
        )
    return outcomes


def alerts_sensor(entities: list[str], jobs: list[str]) -> dg.SensorDefinition:
    @dg.sensor(
        name="alerts_sensor",
        minimum_interval_seconds=10,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="POSTs alerts to $BILLING_SYNC_ALERT_WEBHOOK_URL: failed runs, ERROR "
        "checks, freshness breaches, late rows, quarantine spikes, a held horizon, parity "
        "repairs, a refused source shrink, a damaged cache set aside; once "
        "while each lasts, and a resolved message when it clears.",
    )
    def alert(
        context: dg.SensorEvaluationContext, billing_sync: BillingSyncResource
    ) -> dg.SkipReason:
        settings = billing_sync.settings()
        limits = settings.alerts
        active: list[Condition] = [
            *c.run_failures(latest_runs(context.instance, jobs)),
            *c.check_errors(latest_checks(context.instance, entities)),
        ]
        try:
            with billing_sync.engine() as engine:
                active += c.freshness_breaches(entity_freshness(engine))
                late = late_rows_by_entity(engine, window_seconds=limits.late_rows_window_seconds)
                active += c.late_rows(late, window_seconds=limits.late_rows_window_seconds)
                counts = quarantine_ops.counts(
                    engine.warehouse.conn, recent_seconds=limits.quarantine_spike_window_seconds
                )
                active += c.quarantine_spikes(
                    {entity: figures["recent"] for entity, figures in counts.items()},
                    threshold=limits.quarantine_spike_rows,
                    window_seconds=limits.quarantine_spike_window_seconds,
                )
                window = limits.late_rows_window_seconds
                conn = engine.warehouse.conn
                active += c.parity_repairs(
                    events.repairs_within(conn, window_seconds=window), window_seconds=window
                )
                active += c.shrink_refusals(
                    c.ShrinkRefusal(r.name, r.gone, r.warehouse_rows, r.reason)
                    for r in events.open_refusals(conn)
                )
                active += c.cache_set_aside(p.name for p in set_aside_files(engine.cache.path))
                system, pid, held = horizon_hold(engine)
                active += c.horizon_held(
                    pid, held, limit_seconds=limits.horizon_hold_limit_seconds, system=system
                )
            kinds: tuple[str, ...] = c.KINDS
        except Exception as error:  # the databases are down: still alert on the rest
            context.log.warning(f"alert figures unavailable: {type(error).__name__}: {error}")
            kinds = (c.RUN_FAILED, c.CHECK_ERROR)
        state = AlertState.from_json(context.cursor)
        result = notify(state, active, kinds=kinds, settings=limits)
        context.update_cursor(result.state.to_json())
        return dg.SkipReason(
            f"{len(active)} conditions active, {len(result.sent)} messages sent"
            + (f", {result.failed} failed (retried next tick)" if result.failed else "")
        )

    return alert
