"""``serve/<view>``: the analysts' views over the warehouse and the cache (DESIGN §8).

The engine creates and refreshes the views when a sync run sets up (they are plain
views: nothing to materialize); the graph shows what each one reads.
"""

import dagster as dg

from billing_sync.config import SourceCatalog
from billing_sync.defs.keys import cache_key, serve_key, warehouse_key
from billing_sync.serve.views import SERVE_SCHEMA, served_views


def view_specs(catalogs: list[SourceCatalog]) -> list[dg.AssetSpec]:
    mapped = {mapping.entity for catalog in catalogs for mapping in catalog.tables}
    return [
        dg.AssetSpec(
            serve_key(view.name),
            deps=[
                key
                for entity in view.entities
                if entity in mapped
                for key in (warehouse_key(entity), cache_key(entity))
            ],
            description=f"{view.description} `{SERVE_SCHEMA}.{view.name}` in both engines.",
            group_name="serve",
            kinds={"postgres", "duckdb"},
        )
        for view in served_views(mapped)
    ]
