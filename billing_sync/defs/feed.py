"""Change-event relays in Dagster (issue 16): per sink of ``feed.sinks``, a ``feed/<sink>``
asset whose run is the long-lived relay, a job, a sensor that starts the next run whenever
none is in flight (as the sync tiers', :mod:`billing_sync.defs.sensors`), and a freshness
check: the sink's oldest unpublished event against ``feed.lag_sla_seconds``."""

import time
from collections.abc import Iterator

import dagster as dg
import psycopg

from billing_sync.config import Settings
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.defs.sensors import IN_FLIGHT
from billing_sync.feed import store
from billing_sync.feed.relay import RelayTally, run_relay
from billing_sync.postgres import resolve_database_urls

FEED_TAG = "billing_sync/feed"
CHECK_EVERY_SECONDS = 10.0


def feed_key(sink: str) -> dg.AssetKey:
    return dg.AssetKey(["feed", sink])


def feed_job_name(sink: str) -> str:
    """
    >>> feed_job_name("bus")
    'feed_bus_job'
    """
    return f"feed_{sink}_job"


def _freshness(settings: Settings, sink: str) -> dg.AssetCheckResult:
    with store_connection(settings) as conn:
        lag = next((lag for lag in store.lags(conn) if lag.sink == sink), None)
    sla = settings.feed.lag_sla_seconds
    seconds = 0.0 if lag is None else lag.seconds
    events = 0 if lag is None else lag.events
    return dg.AssetCheckResult(
        asset_key=feed_key(sink),
        check_name="freshness",
        passed=seconds <= sla,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"lag_seconds": seconds, "lag_events": events, "sla_seconds": sla},
        description=f"oldest unpublished event {seconds:.1f}s old ({events} wait); SLA {sla:g}s",
    )


def store_connection(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(resolve_database_urls(settings).warehouse, autocommit=True)


def _feed_asset(sink: str, kind: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=feed_key(sink),
        group_name="feed",
        kinds={kind},
        description=f"Change events published to the {sink} sink; a run is its relay.",
        check_specs=[
            dg.AssetCheckSpec(
                "freshness",
                asset=feed_key(sink),
                description="Age of the sink's oldest unpublished event against "
                "feed.lag_sla_seconds.",
            )
        ],
    )
    def relay(
        context: dg.AssetExecutionContext, billing_sync: BillingSyncResource
    ) -> Iterator[dg.MaterializeResult[None] | dg.AssetCheckResult]:
        settings = billing_sync.settings()
        checked = [time.monotonic()]

        def report(tally: RelayTally) -> None:
            if time.monotonic() - checked[0] >= CHECK_EVERY_SECONDS:
                context.log.info(f"{sink}: {tally.published} events published")
                checked[0] = time.monotonic()

        tally = run_relay(
            resolve_database_urls(settings).warehouse,
            sink,
            settings.feed,
            stop=settings.pause_file.exists,
            on_batch=report,
            log=context.log,
        )
        yield dg.MaterializeResult(
            metadata={"published": tally.published, "failures": tally.failures}
        )
        yield _freshness(settings, sink)

    return relay


def feed_definitions(settings: Settings) -> dg.Definitions:
    """Assets, jobs and sensors of the configured sinks (none: empty)."""
    assets = [_feed_asset(name, sink.kind) for name, sink in sorted(settings.feed.sinks.items())]
    jobs = [
        dg.define_asset_job(
            feed_job_name(sink),
            selection=dg.AssetSelection.assets(feed_key(sink)),
            executor_def=dg.in_process_executor,
            tags={FEED_TAG: sink, "dagster/max_retries": "0"},
            description=f"The {sink} sink's relay: publishes the outbox until the run ends.",
        )
        for sink in sorted(settings.feed.sinks)
    ]
    sensors = [_feed_sensor(sink) for sink in sorted(settings.feed.sinks)]
    return dg.Definitions(assets=assets, jobs=jobs, sensors=sensors)


def _feed_sensor(sink: str) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"feed_{sink}_sensor",
        job_name=feed_job_name(sink),
        minimum_interval_seconds=5,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts the {sink} sink's relay run whenever none is in flight.",
    )
    def start_relay(
        context: dg.SensorEvaluationContext, billing_sync: BillingSyncResource
    ) -> dg.RunRequest | dg.SkipReason:
        if billing_sync.settings().pause_file.exists():
            return dg.SkipReason("billing-sync is paused (billing-sync resume)")
        runs = context.instance.get_runs(
            filters=dg.RunsFilter(tags={FEED_TAG: sink}, statuses=IN_FLIGHT), limit=1
        )
        if runs:
            return dg.SkipReason(f"relay run {runs[0].run_id} is in flight")
        return dg.RunRequest(tags={FEED_TAG: sink})

    return start_relay
