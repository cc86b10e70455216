"""Asset keys and tags, in one place."""

import dagster as dg

TIER_TAG = "billing_sync/tier"


def source_key(system: str, table: str) -> dg.AssetKey:
    return dg.AssetKey(["source", system, table])


def warehouse_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", entity])


def cache_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey(["cache", entity])


def serve_key(view: str) -> dg.AssetKey:
    return dg.AssetKey(["serve", view])
