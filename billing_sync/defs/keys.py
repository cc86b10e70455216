"""Asset keys and tags, in one place."""

import dagster as dg

TIER_TAG = "billing_sync/tier"
SYNC_MAX_RUNTIME_SECONDS = 3600
"""Run monitoring fails a sync run past this (the ``dagster/max_runtime`` tag)."""
SYNC_RUN_BUDGET_SECONDS = SYNC_MAX_RUNTIME_SECONDS / 2
"""A sync run stops after ``batches_per_run`` micro-batches or this long, whichever first."""


def source_key(system: str, table: str) -> dg.AssetKey:
    return dg.AssetKey(["source", system, table])


def warehouse_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", entity])


def cache_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey(["cache", entity])


def serve_key(view: str) -> dg.AssetKey:
    return dg.AssetKey(["serve", view])


OPERATIONS_KEY = dg.AssetKey(["operations", "status"])
"""The operations view: every table's lag against its SLA and the alerts firing now."""
