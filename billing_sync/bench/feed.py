"""``bench feed``: source commit to the event on each bus, as production runs it, and what
the outbox costs a batch and a snapshot.

- **Latency**: the Amdocs-style biller under the workload at the first tail rate, synced by
  the Dagster daemon: its sensors start the tier runs and one ``feed/<sink>`` relay run per
  sink (NATS JetStream, and Redis Streams when 127.0.0.1:6379 answers), each a process of
  its own, as in production. Per bus p50/p95/p99 of source stamp to stored, split into
  the sync's part and the relay's (:mod:`.feed_measure`), beside the 5 s target.
- **Outbox cost per batch**: the same batch of entity rows committed as newer versions
  with no sink registered (no event) and with one (an event per row): wall, client CPU
  and the PostgreSQL backend's CPU, per batch and per row.
- **Snapshot**: a first load of ``snapshot_rows`` payments (the ``snapshot`` scenario's
  table) into a fresh warehouse, once with no sink and once with a sink that asks for
  ``r`` events (``snapshot_events``): the wall time, the server's CPU and the events.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from billing_sync.bench import bench_hmac_key, data
from billing_sync.bench.context import BenchContext
from billing_sync.bench.drivers import DagsterDriver, Pipeline
from billing_sync.bench.feed_measure import (
    Delivered,
    latency_row,
    merge_cost,
    nats_delivered,
    redis_delivered,
)
from billing_sync.bench.measure import run_worker
from billing_sync.bench.report import Column, Report
from billing_sync.bench.tail import progress
from billing_sync.config import SinkSettings, load_settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.entities import entity_columns
from billing_sync.feed import store
from billing_sync.feed.nats_server import answers, machine_or_embedded
from billing_sync.simulator import Workload, create_schema, seed

SYSTEM = "amdocs"
COST_REPEATS = 7
TARGET_SECONDS = 5.0
REDIS_URL = "redis://127.0.0.1:6379/0"
QUIET_SECONDS = 5.0  # after the workload: no new event this long, every sink caught up
START_TIMEOUT = 300.0  # the daemon, its code server and the first relay runs on a loaded machine


def _engine_settings(source: str, warehouse: str, state: Path, **extra: Any) -> Any:
    return load_settings(
        env={}, hmac_key=bench_hmac_key(), state_dir=state, source_url=source,
        warehouse_url=warehouse, cache_path=state / "cache.duckdb", **extra,
    )  # fmt: skip


def _outbox_cost(engine: SyncEngine, url: str) -> dict[str, Any]:
    mapping = engine.catalogs[0].by_table["BILLING_ACCOUNT"]
    table, _ = engine.warehouse.rows_since(entity_columns(mapping), 0)
    rows = table.drop_columns(["_batch_id"])
    shifts = iter(range(3600, 10**6))
    args = (engine.warehouse, SYSTEM, mapping, rows)
    merge_cost(*args, repeats=1, shift=lambda: next(shifts))  # warm
    off = merge_cost(*args, repeats=COST_REPEATS, shift=lambda: next(shifts))
    with psycopg.connect(url, autocommit=True) as conn:
        store.register_sink(conn, "bench_cost", "nats", snapshot_events=False)
    merge_cost(*args, repeats=1, shift=lambda: next(shifts))
    on = merge_cost(*args, repeats=COST_REPEATS, shift=lambda: next(shifts))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM billing_sync.feed_sink WHERE sink = 'bench_cost'")
        conn.execute("DELETE FROM billing_sync.change_event")
    n = rows.num_rows

    def per_row_us(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else (b - a) / n * 1000

    return {
        "what": f"merge of a {n:,}-row batch", "rows": n,
        "wall_without": off.wall_ms, "wall_with": on.wall_ms,
        "server_cpu_without": off.server_cpu_ms, "server_cpu_with": on.server_cpu_ms,
        "client_cpu_without": off.client_cpu_ms, "client_cpu_with": on.client_cpu_ms,
        "server_us_per_row": per_row_us(off.server_cpu_ms, on.server_cpu_ms),
        "wall_us_per_row": per_row_us(off.wall_ms, on.wall_ms),
    }  # fmt: skip


def _snapshot_cost(ctx: BenchContext, work: Path) -> list[dict[str, Any]]:
    """The snapshot scenario's first load, without and with a sink asking for ``r`` events."""
    rows = ctx.options.snapshot_rows
    source = ctx.server.database("bench_feed_snap_src", fresh=False)
    data.ensure_snapshot_table(source, rows)
    found: list[dict[str, Any]] = []
    for asked in (False, True):
        warehouse = ctx.server.database("bench_feed_snap_wh")
        state = work / f"snapshot-{'r' if asked else 'none'}"
        with SyncEngine.from_settings(_engine_settings(source, warehouse, state)) as engine:
            engine.setup()
        if asked:
            with psycopg.connect(warehouse, autocommit=True) as conn:
                store.register_sink(conn, "bench_snapshot", "nats", snapshot_events=True)
        progress(f"first load of {rows:,} payments, r events {'asked' if asked else 'not asked'}")
        cpu = ctx.server.cpu_seconds()
        measured = run_worker(
            "billing-sync-snapshot",
            {"state_dir": str(state), "source": source, "warehouse": warehouse,
             "cache": str(state / "cache.duckdb"), "untimed": ["ACCOUNT"],
             "tables": [data.TABLE]},
            timeout=3600,
        )  # fmt: skip
        after = ctx.server.cpu_seconds()
        if not measured.ok:
            raise RuntimeError(f"the feed snapshot load failed: {measured.error_tail()}")
        result = measured.last_json()
        with psycopg.connect(warehouse, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM billing_sync.change_event").fetchone()
        found.append({
            "what": f"first load of {result['rows']:,} rows, r events {'on' if asked else 'off'}",
            "rows": result["rows"], "seconds": result["seconds"],
            "server_cpu": None if cpu is None or after is None else after - cpu,
            "process_cpu": measured.cpu_seconds, "events": row[0] if row else 0,
        })  # fmt: skip
        ctx.server.drop("bench_feed_snap_wh")
    return found


def _wait(what: str, done: Any, *, timeout: float, driver: DagsterDriver) -> bool:
    """Until ``done()`` (None: until ``timeout``, which is then no failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not driver.alive():
            raise RuntimeError(f"the Dagster daemon ended while {what}: {driver.log_tail()}")
        if done is not None and done():
            return True
        time.sleep(0.5)
    if done is not None:
        progress(f"{what}: not within {timeout:.0f} s; measuring anyway")
    return False


def _flowing(
    url: str, sinks: dict[str, SinkSettings], since: datetime, tiers: dict[str, str]
) -> bool:
    """Every sink's relay has published, and the priority and standard tier runs have each
    committed a batch since ``since`` (the warehouse's clock): the runs are up."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(DISTINCT sink) FROM billing_sync.feed_offset"
            "        WHERE sink = ANY(%s)),"
            " (SELECT count(DISTINCT tier) FROM billing_sync.batch_log b"
            "  JOIN unnest(%s::text[], %s::text[]) AS t(entity, tier) ON t.entity = b.entity"
            "  WHERE b.kind = 'tail' AND b.committed_at > %s AND t.tier <> 'bulk')",
            (list(sinks), list(tiers), list(tiers.values()), since),
        ).fetchone()
    return bool(row and row[0] == len(sinks) and row[1] == 2)


def _published(url: str, sinks: dict[str, SinkSettings], newest: list[float]) -> bool:
    """Every sink caught up, and no event written for ``QUIET_SECONDS`` (the sync is done).
    ``newest``: the last event id seen, and since when."""
    with psycopg.connect(url, autocommit=True) as conn:
        behind = sum(lag.events for lag in store.lags(conn) if lag.sink in sinks)
        row = conn.execute("SELECT coalesce(max(event_id), 0) FROM billing_sync.change_event")
        last = int(row.fetchone()[0])  # type: ignore[index]
    if last != newest[0]:
        newest[:] = [last, time.monotonic()]
    return behind == 0 and time.monotonic() - newest[1] >= QUIET_SECONDS


def _warehouse_now(url: str) -> datetime:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def _latency(ctx: BenchContext, work: Path) -> tuple[list[dict[str, Any]], dict[str, Any], Any]:
    options = ctx.options
    rate, seconds = options.rates[0], min(options.tail_seconds, 60.0)
    source, warehouse = ctx.server.database("bench_feed_src"), ctx.server.database("bench_feed_wh")
    with psycopg.connect(source, autocommit=True) as conn:
        create_schema(conn, system=SYSTEM)
        seed(conn, accounts=options.tail_accounts, system=SYSTEM)
    nats_url, nats_server = machine_or_embedded(work / "nats")
    prefix = f"bench{int(time.time())}"
    sinks = {"bench_nats": SinkSettings(kind="nats", url=nats_url, prefix=prefix,
                                        duplicate_window_seconds=120)}  # fmt: skip
    if answers("127.0.0.1", 6379):
        sinks["bench_redis"] = SinkSettings(kind="redis", url=REDIS_URL, prefix=prefix)
    pipeline = Pipeline(
        source=source, warehouse=warehouse, cache=work / "state" / "cache.duckdb",
        state_dir=work / "state",
        settings={"systems": [SYSTEM], "capture": {"delay_seconds": 0.5},
                  "read_copy_interval_seconds": 0,
                  "feed": {"sinks": {n: s.model_dump(mode="json") for n, s in sinks.items()}}},
    )  # fmt: skip
    engine_settings = _engine_settings(source, warehouse, pipeline.state_dir,
                                       systems=[SYSTEM], read_copy_interval_seconds=0)  # fmt: skip
    try:
        with SyncEngine.from_settings(engine_settings) as engine:
            engine.setup()
            engine.drain(until=datetime.now(UTC).replace(tzinfo=None), timeout=600)
            cost = _outbox_cost(engine, warehouse)
            tiers: dict[str, str] = {m.entity: m.tier for m in engine.catalogs[0].tables}
            entities = sorted(tiers)
        driver = DagsterDriver(pipeline, work)
        started = time.time()
        driver.start()
        try:
            # The sensors start tier runs once the source moves: the workload runs from the
            # start, and the window is measured once events flow to every sink.
            workload = Workload(source, rate=rate, systems=(SYSTEM,), seed=1)
            since = _warehouse_now(warehouse)
            workload.start()
            try:
                progress("Dagster daemon started, the workload running; warming up")
                flowing = lambda: _flowing(warehouse, sinks, since, tiers)  # noqa: E731
                _wait("events flowed to every sink", flowing, timeout=START_TIMEOUT, driver=driver)
                window = (time.time(), time.time() + seconds)
                progress(f"measuring {seconds:.0f} s")
                _wait("the workload ran", None, timeout=seconds, driver=driver)
            finally:
                workload.stop()
            newest = [-1.0, time.monotonic()]
            caught_up = lambda: _published(warehouse, sinks, newest)  # noqa: E731
            _wait("every event published", caught_up, timeout=180, driver=driver)
        finally:
            driver.stop()
        runs = driver.run_stats(since=started)

        def measured(delivered: list[Delivered]) -> list[Delivered]:
            """The events of rows the source stamped inside the window."""
            return [d for d in delivered if window[0] <= d.stamp <= window[1]]

        buses = {
            "NATS JetStream": measured(nats_delivered(nats_url, sinks["bench_nats"], entities))
        }
        if "bench_redis" in sinks:
            buses["Redis Streams"] = measured(
                redis_delivered(REDIS_URL, sinks["bench_redis"], entities)
            )
        rows = []
        for bus, delivered in buses.items():
            rows.append(latency_row(bus, "all", delivered, target=TARGET_SECONDS))
            for tier in ("priority", "standard", "bulk"):
                of_tier = [d for d in delivered if tiers.get(d.entity) == tier]
                if of_tier:
                    rows.append(latency_row(bus, tier, of_tier, target=TARGET_SECONDS))
    finally:
        if nats_server is not None:
            nats_server.stop()
    for row in rows:
        row["rate"] = rate
    return rows, cost, runs


LATENCY_COLUMNS = [
    Column("bus", "bus", align="<"),
    Column("tier", "tier", align="<"),
    Column("rate", "rows/s", "{:.0f}"),
    Column("events", "events"),
    Column("p50", "p50 s", "{:.2f}"),
    Column("p95", "p95 s", "{:.2f}"),
    Column("p99", "p99 s", "{:.2f}"),
    Column("target", "target s", "{:.0f}"),
    Column("verdict", "p99 < target", align="<"),
    Column("sync_p99", "sync part p99 s", "{:.2f}"),
    Column("relay_p50", "relay part p50 s", "{:.2f}"),
    Column("relay_p99", "relay part p99 s", "{:.2f}"),
]
COST_COLUMNS = [
    Column("what", "outbox cost of", align="<"),
    Column("wall_without", "wall ms, no sink", "{:.0f}"),
    Column("wall_with", "wall ms, a sink", "{:.0f}"),
    Column("server_cpu_without", "server CPU ms, no sink", "{:.0f}"),
    Column("server_cpu_with", "server CPU ms, a sink", "{:.0f}"),
    Column("server_us_per_row", "server CPU us/row", "{:.1f}"),
    Column("wall_us_per_row", "wall us/row", "{:.1f}"),
]
SNAPSHOT_COLUMNS = [
    Column("what", "snapshot", align="<"),
    Column("seconds", "seconds", "{:.1f}"),
    Column("server_cpu", "server CPU s", "{:.1f}"),
    Column("process_cpu", "loader CPU s", "{:.1f}"),
    Column("events", "events"),
]


def run_feed(ctx: BenchContext) -> list[Report]:
    work = ctx.workdir("feed")
    rate = ctx.options.rates[0]
    rows, cost, runs = _latency(ctx, work)
    latency = Report(
        scenario="feed",
        title=f"Change events: source stamp to each bus at {rate:.0f} rows/s, through the "
        "Dagster daemon (tier runs and one relay run per sink)",
        columns=LATENCY_COLUMNS,
        rows=rows,
        notes=[
            f"p99 target {TARGET_SECONDS:g} s per bus. Sync part: source stamp to the outbox "
            "insert (ts_ms); relay part: outbox insert to stored on the bus (the batch's "
            "commit, the relay's poll, read and publish).",
            f"Dagster runs: {runs.get('runs')} ({runs.get('by_status')})",
        ],
        details={"dagster_runs": runs},
    )
    snapshot = _snapshot_cost(ctx, work)
    costs = Report(
        scenario="feed-cost",
        title="What the outbox adds to a micro-batch (medians; CPU of the PostgreSQL backend)",
        columns=COST_COLUMNS,
        rows=[cost],
    )
    snapshots = Report(
        scenario="feed-snapshot",
        title="A first load without and with r events (snapshot_events on a sink)",
        columns=SNAPSHOT_COLUMNS,
        rows=snapshot,
    )
    if len(snapshot) == 2 and snapshot[0]["seconds"]:
        extra = snapshot[1]["seconds"] - snapshot[0]["seconds"]
        snapshots.notes.append(
            f"r events add {extra:.1f} s ({extra / snapshot[0]['seconds']:+.0%}) to the load"
        )
    return [latency, costs, snapshots]
