"""Sensors that report without starting runs: freshness check evaluations per entity
(continuously, against the tier's SLA) and observations of the ``source/...`` assets
(high watermark, row count, how far the warehouse is behind)."""

import json
import time

import dagster as dg
import psycopg

from billing_sync.alerts.conditions import Freshness
from billing_sync.defs.keys import source_key, warehouse_key
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.engine.monitor import entity_freshness, source_figures

#: An unchanged freshness result is re-reported this often (a change at once).
FRESHNESS_REPEAT_SECONDS = 300.0


def freshness_evaluation(f: Freshness) -> dg.AssetCheckEvaluation:
    """A breach is an ERROR for the priority tier (its alert is critical), a WARN else."""
    return dg.AssetCheckEvaluation(
        asset_key=warehouse_key(f.entity),
        check_name="freshness",
        passed=f.fresh,
        severity=(
            dg.AssetCheckSeverity.ERROR if f.tier == "priority" else dg.AssetCheckSeverity.WARN
        ),
        metadata={
            "lag_seconds": -1.0 if f.lag_seconds is None else round(f.lag_seconds, 3),
            "sla_seconds": f.sla_seconds,
            "slowest_table": f.table,
        },
        description=None
        if f.fresh
        else (
            f"{f.table} is "
            + ("not loaded yet" if f.lag_seconds is None else f"{f.lag_seconds:.1f}s behind")
            + f" the source; the {f.entity} SLA is {f.sla_seconds:g}s"
        ),
    )


def freshness_sensor() -> dg.SensorDefinition:
    @dg.sensor(
        name="freshness_sensor",
        minimum_interval_seconds=5,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates each entity's freshness check against its tier's SLA; reports "
        "a change at once and an unchanged result every 5 minutes.",
    )
    def evaluate_freshness(
        context: dg.SensorEvaluationContext, billing_sync: BillingSyncResource
    ) -> dg.SensorResult | dg.SkipReason:
        try:
            with billing_sync.engine() as engine:
                figures = entity_freshness(engine)
        except psycopg.errors.UndefinedTable:
            return dg.SkipReason("the warehouse is not set up yet (the first sync run does it)")
        # The cursor: per entity, [fresh, epoch seconds of the last reported evaluation].
        last: dict[str, tuple[bool, float]] = {
            entity: (bool(fresh), float(at))
            for entity, (fresh, at) in json.loads(context.cursor or "{}").items()
        }
        now = time.time()
        events = []
        for f in figures:
            previous = last.get(f.entity)
            if (
                previous is None
                or previous[0] != f.fresh
                or now - previous[1] >= FRESHNESS_REPEAT_SECONDS
            ):
                events.append(freshness_evaluation(f))
                last[f.entity] = (f.fresh, now)
        if not events:
            return dg.SkipReason("freshness unchanged")
        return dg.SensorResult(asset_events=events, cursor=json.dumps(last))

    return evaluate_freshness


def source_observation_sensor() -> dg.SensorDefinition:
    @dg.sensor(
        name="source_observation_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Observes each source table: newest change timestamp, row count, and how "
        "far past what the warehouse is caught up to.",
    )
    def observe_sources(
        context: dg.SensorEvaluationContext, billing_sync: BillingSyncResource
    ) -> dg.SensorResult | dg.SkipReason:
        try:
            with billing_sync.engine() as engine:
                figures = source_figures(engine)
        except psycopg.errors.UndefinedTable:
            return dg.SkipReason("the warehouse is not set up yet (the first sync run does it)")
        observations = []
        for f in figures:
            metadata: dict[str, dg.MetadataValue | float | int | str] = {
                "row_count": f.row_count,
                "high_watermark": "" if f.high_watermark is None else str(f.high_watermark),
                "warehouse_caught_up_to": "" if f.caught_up_to is None else str(f.caught_up_to),
            }
            if f.behind_seconds is not None:
                metadata["behind_seconds"] = round(f.behind_seconds, 3)
            observations.append(
                dg.AssetObservation(asset_key=source_key(f.system, f.table), metadata=metadata)
            )
        return dg.SensorResult(asset_events=observations)

    return observe_sources
