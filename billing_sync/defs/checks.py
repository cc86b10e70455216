"""Freshness checks: per entity, against its tier's SLA (DESIGN §8)."""

from collections.abc import Iterator

import dagster as dg

from billing_sync.config import SourceCatalog
from billing_sync.defs.keys import warehouse_key
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.status import table_status


def freshness_checks(catalogs: list[SourceCatalog]) -> dg.AssetChecksDefinition:
    entities = sorted({mapping.entity for catalog in catalogs for mapping in catalog.tables})
    specs = [
        dg.AssetCheckSpec(
            "freshness",
            asset=warehouse_key(entity),
            description="Seconds between the source's clock and what the warehouse is caught up "
            "to, against the tier's SLA.",
        )
        for entity in entities
    ]

    @dg.multi_asset_check(specs=specs, name="freshness_checks")
    def check_freshness(billing_sync: BillingSyncResource) -> Iterator[dg.AssetCheckResult]:
        settings = billing_sync.settings()
        with billing_sync.engine() as engine:
            statuses = table_status(engine)
        worst: dict[str, tuple[float, float, str]] = {}
        for status in statuses:
            sla = settings.tier(status.tier).freshness_sla_seconds  # type: ignore[arg-type]
            lag = status.lag_seconds if status.lag_seconds is not None else float("inf")
            if status.entity not in worst or lag > worst[status.entity][0]:
                worst[status.entity] = (lag, sla, f"{status.system}.{status.table}")
        for entity in entities:
            lag, sla, table = worst[entity]
            yield dg.AssetCheckResult(
                asset_key=warehouse_key(entity),
                check_name="freshness",
                passed=lag <= sla,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "lag_seconds": lag if lag != float("inf") else -1.0,
                    "sla_seconds": sla,
                    "slowest_table": table,
                },
                description=None
                if lag <= sla
                else (f"{table} is {lag:.1f}s behind the source; the {entity} SLA is {sla:.0f}s"),
            )

    return check_freshness
