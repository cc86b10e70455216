"""What Prometheus scrapes, computed at scrape time from the state the pipeline already
keeps (prometheus_client, "Custom Collectors"): nothing is counted in memory, so every
run worker's batches count, and a restarted exporter loses nothing.

Counters come from the warehouse's batch log (``rows_read``, ``late_rows`` per batch;
retention pruning the log shows as a counter reset, which ``rate()`` handles) and from
Dagster's run records (a failed batch ends its run: failed sync runs are failed batches).
Every name follows Prometheus conventions: ``billing_sync_`` prefix, ``_seconds``,
``_total``. deploy/prometheus/ holds the alert rules and deploy/grafana/ the dashboard
over these names; a test keeps both in step with :data:`METRICS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from billing_sync.config import Settings
from billing_sync.defs.instance_health import failed_runs_by_job, read_figures
from billing_sync.defs.jobs import sync_job_name
from billing_sync.engine import pipeline_record
from billing_sync.engine.monitor import horizon_hold, table_freshness, tier_last_commit
from billing_sync.engine.status import read_lags
from billing_sync.engine.sync import SyncEngine
from billing_sync.entities import STATE_SCHEMA
from billing_sync.secrets import mask_error
from billing_sync.validate import quarantine_ops

log = logging.getLogger(__name__)

#: Upper bounds of the batch duration histogram, in seconds.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: Every metric exported (as Prometheus shows it), with its type.
METRICS = {
    "billing_sync_up": "gauge",
    "billing_sync_lag_seconds": "gauge",
    "billing_sync_tier_lag_seconds": "gauge",
    "billing_sync_freshness_sla_seconds": "gauge",
    "billing_sync_tier_last_batch_age_seconds": "gauge",
    "billing_sync_rows_captured_total": "counter",
    "billing_sync_batches_total": "counter",
    "billing_sync_late_rows_total": "counter",
    "billing_sync_batch_duration_seconds": "histogram",
    "billing_sync_quarantined_rows": "gauge",
    "billing_sync_failed_batches_total": "counter",
    "billing_sync_horizon_hold_seconds": "gauge",
    "billing_sync_cache_lag_seconds": "gauge",
    "billing_sync_alerts_firing": "gauge",
    "billing_sync_dagster_daemon_heartbeat_age_seconds": "gauge",
}


class BillingSyncCollector(Collector):
    def __init__(self, settings: Settings, dagster_home: Path) -> None:
        self.settings = settings
        self.dagster_home = dagster_home

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "billing_sync_up", "1 when the exporter could read the component", labels=["component"]
        )
        try:
            with SyncEngine.from_settings(self.settings, reading=True) as engine:
                yield from _warehouse_metrics(engine)
            up.add_metric(["warehouse"], 1)
        except Exception as error:  # down: the gauge says so, the other figures are absent
            log.warning("metrics: warehouse figures unavailable: %s", mask_error(error))
            up.add_metric(["warehouse"], 0)
        try:
            yield from self._dagster_metrics()
            up.add_metric(["dagster"], 1)
        except Exception as error:  # the instance storage is down
            log.warning("metrics: Dagster figures unavailable: %s", mask_error(error))
            up.add_metric(["dagster"], 0)
        yield up

    def _dagster_metrics(self) -> Iterator[Metric]:
        figures = read_figures(self.dagster_home)
        beat = GaugeMetricFamily(
            "billing_sync_dagster_daemon_heartbeat_age_seconds",
            "seconds since each Dagster daemon's latest heartbeat (+Inf: never)",
            labels=["daemon"],
        )
        for daemon in sorted(set(figures.required_daemons) | set(figures.heartbeat_ages)):
            beat.add_metric([daemon], figures.heartbeat_ages.get(daemon, float("inf")))
        yield beat
        failed = CounterMetricFamily(
            "billing_sync_failed_batches",
            "failed sync runs per tier (a failed batch ends its run)",
            labels=["tier"],
        )
        by_job = failed_runs_by_job(self.dagster_home)
        for tier in self.settings.tiers:
            failed.add_metric([tier], by_job.get(sync_job_name(tier), 0))
        yield failed


def _warehouse_metrics(engine: SyncEngine) -> Iterator[Metric]:
    tiers: dict[tuple[str, str], str] = {(c.system, m.table): m.tier for c, m in engine.tables()}
    yield from _freshness(engine)
    yield from _batch_log(engine, tiers)
    quarantined = GaugeMetricFamily(
        "billing_sync_quarantined_rows", "rows held in quarantine (open)", labels=["entity"]
    )
    for entity, figures in sorted(quarantine_ops.counts(engine.warehouse.conn).items()):
        quarantined.add_metric([entity], figures["open"])
    yield quarantined
    system, _, held = horizon_hold(engine)
    hold = GaugeMetricFamily(
        "billing_sync_horizon_hold_seconds",
        "how long the oldest open source transaction has held the capture horizon",
        labels=["system"],
    )
    hold.add_metric([system], held)
    yield hold
    lags = read_lags(engine.cache, engine.warehouse.conn)
    if lags is not None:  # the cache file is busy: no figure rather than a wrong one
        cache = GaugeMetricFamily(
            "billing_sync_cache_lag_seconds",
            "age of the oldest warehouse batch the DuckDB cache lacks (0: level)",
            labels=["entity"],
        )
        for entity, lag in sorted(lags.items()):
            cache.add_metric([entity], lag.seconds if lag.behind else 0.0)
        yield cache
    record = pipeline_record.read(engine.warehouse.conn)
    firing = GaugeMetricFamily(
        "billing_sync_alerts_firing", "alerts firing, as the alert sensor last recorded them",
        labels=["kind"],
    )  # fmt: skip
    kinds: dict[str, int] = {}
    for alert in record.alerts if record else []:
        kinds[alert.kind] = kinds.get(alert.kind, 0) + 1
    for kind, count in sorted(kinds.items()):
        firing.add_metric([kind], count)
    yield firing


def _freshness(engine: SyncEngine) -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        "billing_sync_lag_seconds",
        "the biller's clock minus the point the warehouse is caught up to, per table",
        labels=["system", "table", "entity", "tier"],
    )
    tier_lag = GaugeMetricFamily(
        "billing_sync_tier_lag_seconds", "the slowest table's lag, per tier", labels=["tier"]
    )
    sla = GaugeMetricFamily(
        "billing_sync_freshness_sla_seconds", "the tier's freshness SLA", labels=["tier"]
    )
    worst: dict[str, float] = {}
    for table in table_freshness(engine):
        system, _, name = table.table.partition(".")
        seconds = float("inf") if table.lag_seconds is None else table.lag_seconds
        lag.add_metric([system, name, table.entity, table.tier], seconds)
        worst[table.tier] = max(seconds, worst.get(table.tier, 0.0))
    for tier in engine.settings.tiers:
        sla.add_metric([tier], engine.settings.tier(tier).freshness_sla_seconds)
        if tier in worst:
            tier_lag.add_metric([tier], worst[tier])
    age = GaugeMetricFamily(
        "billing_sync_tier_last_batch_age_seconds",
        "seconds since a batch of the tier last committed (or a quiet table was confirmed)",
        labels=["tier"],
    )
    now = time.time()
    for name, at in sorted(tier_last_commit(engine).items()):
        age.add_metric([name], max(0.0, now - at))
    yield from (lag, tier_lag, sla, age)


def _batch_log(engine: SyncEngine, tiers: dict[tuple[str, str], str]) -> Iterator[Metric]:
    labels = ["system", "table", "tier"]
    rows = CounterMetricFamily(
        "billing_sync_rows_captured",
        "rows read from the biller by committed batches",
        labels=labels,
    )
    batches = CounterMetricFamily("billing_sync_batches", "committed batches", labels=labels)
    late = CounterMetricFamily(
        "billing_sync_late_rows", "rows found committed below the watermark", labels=labels
    )
    bounds = ", ".join(
        f"count(*) FILTER (WHERE duration_seconds <= {bound})" for bound in DURATION_BUCKETS
    )
    duration: dict[str, list[float]] = {}
    for (
        system,
        table,
        read,
        count,
        late_rows,
        timed,
        total,
        *buckets,
    ) in engine.warehouse.conn.execute(
        f"SELECT system, source_table, sum(rows_read), count(*), sum(late_rows),"
        f" count(duration_seconds), coalesce(sum(duration_seconds), 0), {bounds}"
        f" FROM {STATE_SCHEMA}.batch_log GROUP BY system, source_table"
    ).fetchall():
        tier = tiers.get((system, table))
        if tier is None:  # a table no longer in the catalogs
            continue
        rows.add_metric([system, table, tier], float(read))
        batches.add_metric([system, table, tier], float(count))
        late.add_metric([system, table, tier], float(late_rows))
        sums = duration.setdefault(tier, [0.0] * (len(DURATION_BUCKETS) + 2))
        for index, value in enumerate([*buckets, timed, total]):
            sums[index] += float(value)
    histogram = HistogramMetricFamily(
        "billing_sync_batch_duration_seconds",
        "one table's micro-batch, first source read to warehouse commit",
        labels=["tier"],
    )
    for tier, sums in sorted(duration.items()):
        cumulative = [(str(bound), sums[i]) for i, bound in enumerate(DURATION_BUCKETS)]
        histogram.add_metric([tier], buckets=[*cumulative, ("+Inf", sums[-2])], sum_value=sums[-1])
    yield from (rows, batches, late, histogram)
