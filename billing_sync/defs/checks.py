"""Freshness checks: per entity, against its tier's SLA (DESIGN §8)."""

from collections.abc import Iterator

import dagster as dg

from billing_sync.config import SourceCatalog
from billing_sync.defs.keys import warehouse_key
from billing_sync.defs.observe import freshness_evaluation
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.engine.monitor import entity_freshness


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
        """The freshness sensor evaluates these continuously; this job does it on demand."""
        with billing_sync.engine() as engine:
            figures = {f.entity: f for f in entity_freshness(engine)}
        for entity in entities:
            evaluation = freshness_evaluation(figures[entity])
            yield dg.AssetCheckResult(
                asset_key=evaluation.asset_key,
                check_name="freshness",
                passed=evaluation.passed,
                severity=evaluation.severity,
                metadata=evaluation.metadata,
                description=evaluation.description,
            )

    return check_freshness
