"""``billing-sync bench``: benchmark scenarios against the peers, with JSON reports.

Scenarios (``billing-sync bench SCENARIO``):

``snapshot``  one table to PostgreSQL and DuckDB: billing-sync, dlt, Sling, the COPY floor
``paths``     the fast paths: extraction into Arrow four ways, validation GX vs Polars
``tail``      a sustained change rate through the real Dagster daemon and sensors;
              freshness of marker rows polled from outside, CPU, source footprint
``shapes``    the tail with one run per micro-batch against one long-lived run
``scale``     first-load rows/s and tail freshness at 1x, 4x and 16x the data
``hot``       per-row staleness of rows rewritten every 0.3 s, under the workload
``capacity``  10,000 changed rows/s through Dagster: p99 per tier against its target,
              CPU per 1,000 captured rows, the backlog at the end
``burst``     a bill run's burst (2M rows in 5 min) into the standard and bulk tables:
              the priority tier's p99 meanwhile, the drain, parity after
``tail-peers`` the tail against dlt and Sling on the peers' plain table, same run:
              freshness, cost, and rows each loses under adversity
``feed``      source commit to the change event on NATS JetStream; the outbox's cost
``all``       all of them, in that order

Each prints a table and writes ``<state_dir>/bench/reports/<scenario>.json`` with the
machine, the versions and every figure.
"""

import os

SCENARIO_NAMES = (
    "snapshot", "paths", "tail", "shapes", "scale", "hot", "capacity", "burst", "tail-peers",
    "feed",
    "all",
)  # fmt: skip


def bench_hmac_key() -> str:
    """The HMAC key the benchmark's pipelines protect columns with: the environment's, or
    a fixed one (the benchmark's data is synthetic)."""

    return os.environ.get("BILLING_SYNC_HMAC_KEY") or "billing-sync-bench-key"
