"""The alert sensor (DESIGN §8): failed runs, ERROR checks, freshness breaches, late rows,
quarantine spikes, a horizon held back past its limit and sensors that keep failing,
POSTed to the webhook once while each lasts and once more when it resolves. The dedupe
state is the sensor's cursor. Each tick also refreshes the ``operations/status`` asset:
every table's lag against its SLA and the alerts firing now."""

import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from billing_sync.alerts import AlertState, Condition, notify
from billing_sync.alerts import conditions as c
from billing_sync.alerts.conditions import Freshness
from billing_sync.alerts.feed import feed_lags
from billing_sync.alerts.operations import markdown
from billing_sync.defs.jobs import tier_of_sync_job
from billing_sync.defs.keys import OPERATIONS_KEY
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.engine import pipeline_record
from billing_sync.engine.monitor import (
    horizon_hold,
    late_rows_by_entity,
    slowest_per_entity,
    table_freshness,
    tier_last_commit,
)
from billing_sync.feed import store as feed_store
from billing_sync.load.cache import set_aside_files
from billing_sync.reconcile import events
from billing_sync.topology.layout import Layout
from billing_sync.topology.supervise import program_troubles
from billing_sync.validate import quarantine_ops

#: Failed runs read per job and tick: more than this many distinct causes since the job
#: was last healthy is already an incident.
FAILED_RUNS_READ = 10
#: The operations view is refreshed at least this often, and whenever the alerts change.
OPERATIONS_EVERY_SECONDS = 60.0


def failed_runs(
    instance: dg.DagsterInstance, jobs: list[str], *, new_since: float | None = None
) -> tuple[list[c.FinishedRun], dict[str, float]]:
    """Each job's recent failed runs (with their first error) and when its latest
    successful run ended."""
    failed: list[c.FinishedRun] = []
    succeeded: dict[str, float] = {}
    for job in jobs:
        ok = instance.get_run_records(
            filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
        )
        if ok and ok[0].end_time is not None:
            succeeded[job] = ok[0].end_time
        for record in instance.get_run_records(
            filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.FAILURE]),
            limit=FAILED_RUNS_READ,
        ):
            ended = record.end_time or record.create_timestamp.timestamp()
            cutoff = succeeded.get(job, float("-inf"))
            if new_since is not None:  # failed since the last tick: kept even if healed
                cutoff = min(cutoff, new_since)
            if ended <= cutoff:
                break  # newest first: the rest failed before the job was healthy again
            run_id = record.dagster_run.run_id
            failed.append(c.FinishedRun(job, run_id, True, run_error(instance, run_id), ended))
    return failed, succeeded


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


def latest_checks(
    instance: dg.DagsterInstance, keys: list[dg.AssetCheckKey]
) -> list[c.CheckOutcome]:
    """The latest evaluation of every check (validation, freshness, parity)."""
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


def sensor_ticks(instance: dg.DagsterInstance, *, latest: int = 3) -> list[c.SensorTicks]:
    """Every sensor's latest ticks, as the daemon recorded them."""
    found = []
    for state in instance.all_instigator_state():
        if state.instigator_type.value != "SENSOR":
            continue
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=latest)
        error = next((t.error for t in ticks if t.error is not None), None)
        # Past Dagster's wrapper to the product's error (which names what failed), not to
        # its innermost cause (a driver's bare "connection refused").
        while (
            error is not None and error.cause is not None and error.message.startswith("dagster.")
        ):
            error = error.cause
        found.append(
            c.SensorTicks(
                state.instigator_name,
                tuple(t.status.value == "FAILURE" for t in ticks),
                error.message if error is not None else None,
            )
        )
    return found


def operations_spec() -> dg.AssetSpec:
    return dg.AssetSpec(
        OPERATIONS_KEY,
        group_name="operations",
        # Refreshed every minute: stale for 3 means alerts_sensor stopped (dagster.yaml).
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=timedelta(seconds=3 * OPERATIONS_EVERY_SECONDS)
        ),
        description="On-call's page: every table's lag against its tier's SLA (breaches "
        "marked) and the alerts firing now. Refreshed by alerts_sensor every minute and "
        "whenever an alert fires or resolves; see the latest materialization's metadata.",
    )


def alerts_sensor(check_keys: list[dg.AssetCheckKey], jobs: list[str]) -> dg.SensorDefinition:
    @dg.sensor(
        name="alerts_sensor",
        minimum_interval_seconds=10,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="POSTs alerts to $BILLING_SYNC_ALERT_WEBHOOK_URL: failed runs (per job "
        "and cause, until the job is healthy again), checks at ERROR, freshness breaches, "
        "late rows, quarantine spikes, a held horizon, parity repairs, a refused source "
        "shrink, a damaged cache set aside, failing sensors, change-event sinks behind; once "
        "while each lasts, and a resolved message when it clears. Refreshes operations/status.",
    )
    def alert(
        context: dg.SensorEvaluationContext, billing_sync: BillingSyncResource
    ) -> dg.SensorResult | dg.SkipReason:
        settings = billing_sync.settings()
        limits = settings.alerts
        evaluated_at = time.time()
        # A run that failed since the last tick alerts once even if its job healed before
        # this tick (a killed run worker replaced within seconds), then resolves.
        checked = json.loads(context.cursor or "{}").get("runs_checked_at")
        failed, healthy = failed_runs(context.instance, jobs, new_since=checked)
        active: list[Condition] = [
            *c.check_errors(latest_checks(context.instance, check_keys)),
            *c.sensor_errors(sensor_ticks(context.instance)),
        ]
        tables: list[Freshness] | None = None
        unavailable = None
        try:
            with billing_sync.engine() as engine:
                committed = tier_last_commit(engine)
                for job in jobs:  # each shard's job too: its tier committed a batch
                    tier = tier_of_sync_job(job)
                    if tier in committed:
                        healthy[job] = max(healthy.get(job, committed[tier]), committed[tier])
                tables = table_freshness(engine)
                active += c.freshness_breaches(slowest_per_entity(tables))
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
                active += feed_lags(
                    feed_store.lags(conn),
                    sla_seconds=settings.feed.lag_sla_seconds,
                    window_seconds=window,
                )
                system, pid, held = horizon_hold(engine)
                active += c.horizon_held(
                    pid, held, limit_seconds=limits.horizon_hold_limit_seconds, system=system
                )
            kinds: tuple[str, ...] = c.KINDS
        except Exception as error:  # the databases are down: still alert on the rest
            unavailable = f"{type(error).__name__}: {error}"
            context.log.warning(f"alert figures unavailable: {unavailable}")
            kinds = (c.RUN_FAILED, c.CHECK_ERROR, c.SENSOR_ERROR, c.PROCESS_RESTARTED)
        if checked is not None:
            for run in failed:
                if run.ended_at > checked and run.job in healthy:
                    healthy[run.job] = min(healthy[run.job], checked)
        active += c.run_failures(failed, healthy_since=healthy)
        # Under `billing-sync serve`: its programs as supervisord reports them.
        troubles, starts = program_troubles(
            Layout.from_settings(settings),
            recent_seconds=settings.serve.restart_alert_seconds,
            seen=json.loads(context.cursor or "{}").get("program_starts", {}),
        )
        active += c.process_troubles((t.program, t.down, t.text) for t in troubles)
        active = c.without_duplicates(active)
        state = AlertState.from_json(context.cursor)
        before = set(state.firing)
        result = notify(state, active, kinds=kinds, settings=limits)
        _record(context, billing_sync, result.state.firing)
        now = time.time()
        shown = json.loads(context.cursor or "{}").get("operations_at", 0.0)
        page_events = []
        if set(result.state.firing) != before or now - float(shown) >= OPERATIONS_EVERY_SECONDS:
            page = markdown(
                tables,
                result.state.firing,
                at=now,
                webhook=limits.webhook_url is not None,
                unavailable=unavailable,
            )
            page_events.append(
                dg.AssetMaterialization(
                    asset_key=OPERATIONS_KEY,
                    description="Every table's lag against its SLA, and the alerts firing now.",
                    metadata={
                        "status": dg.MetadataValue.md(page),
                        "active_alerts": len(result.state.firing),
                        "breaches": sum(1 for f in tables or [] if not f.fresh),
                        "as_of": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
                    },
                )
            )
            shown = now
        cursor = json.loads(result.state.to_json())
        cursor["operations_at"] = shown
        cursor["program_starts"] = starts
        cursor["runs_checked_at"] = evaluated_at
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        context.log.info(result.summary(len(active)))
        if not page_events:
            return dg.SkipReason(result.summary(len(active)))
        return dg.SensorResult(asset_events=page_events)

    return alert


def _record(
    context: dg.SensorEvaluationContext,
    billing_sync: BillingSyncResource,
    firing: dict[str, dict[str, object]],
) -> None:
    """What fires now, in the warehouse for ``status``, ``health`` and the metrics, which
    do not import Dagster (:mod:`billing_sync.engine.pipeline_record`)."""
    try:
        with billing_sync.engine() as engine:
            pipeline_record.record(engine.warehouse.conn, firing)
    except Exception as error:  # the warehouse is down: the webhook still got the alerts
        context.log.warning(f"pipeline record not written: {type(error).__name__}: {error}")
