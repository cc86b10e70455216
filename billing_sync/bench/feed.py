"""``bench feed``: source commit to the event on NATS JetStream, and what the outbox costs.

- **Latency**: the Amdocs-style biller (UTC stamps with microseconds) under the workload at
  the first tail rate, the sync looping in-process and the relay publishing to NATS (the
  machine's server, else one from the wheel); per event, the time JetStream stored it (the
  message's metadata timestamp) minus the row's ``_source_version`` (the source's stamp).
- **Outbox cost per batch**: the same batch of entity rows merged as newer versions, with no
  sink registered (no event) and then with one (an event per row), medians compared.
- **Per 1M-row snapshot**: without ``snapshot_events`` (the default) a first load writes no
  event: nothing. With it: the per-row cost of ``r`` events measured on a backfill of the
  same entity, times 1M.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta

import nats
import nats.js.errors
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from billing_sync.bench import bench_hmac_key
from billing_sync.bench.context import BenchContext
from billing_sync.bench.report import Column, Report
from billing_sync.config import FeedSettings, SinkSettings, load_settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.entities import entity_columns
from billing_sync.feed import store
from billing_sync.feed.nats_server import machine_or_embedded
from billing_sync.feed.relay import run_relay
from billing_sync.feed.sinks import nats_subject
from billing_sync.simulator import Workload, create_schema, seed

SYSTEM = "amdocs"
COST_REPEATS = 5


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


def _merge_seconds(engine: SyncEngine, rows: pa.Table, shift: int) -> float:
    mapping = engine.catalogs[0].by_table["BILLING_ACCOUNT"]
    versions = pc.add(rows.column("_source_version"), pa.scalar(timedelta(seconds=shift)))
    newer = rows.set_column(
        rows.schema.get_field_index("_source_version"), "_source_version", versions
    )
    started = time.perf_counter()
    engine.warehouse.commit_rows(system=SYSTEM, mapping=mapping, rows=newer, kind="tail")
    return time.perf_counter() - started


def _outbox_cost(engine: SyncEngine, url: str) -> dict[str, float]:
    mapping = engine.catalogs[0].by_table["BILLING_ACCOUNT"]
    table, _ = engine.warehouse.rows_since(entity_columns(mapping), 0)
    rows = table.drop_columns(["_batch_id"])
    off = [_merge_seconds(engine, rows, 3600 + i) for i in range(COST_REPEATS)]
    with psycopg.connect(url, autocommit=True) as conn:
        store.register_sink(conn, "bench_cost", "nats", snapshot_events=True)
    on = [_merge_seconds(engine, rows, 7200 + i) for i in range(COST_REPEATS)]
    started = time.perf_counter()
    read = engine.backfill(engine.catalogs[0], mapping)
    backfill_on = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM billing_sync.feed_sink WHERE sink = 'bench_cost'")
        conn.execute("DELETE FROM billing_sync.change_event")
    started = time.perf_counter()
    engine.backfill(engine.catalogs[0], mapping)
    backfill_off = time.perf_counter() - started
    per_row = max(0.0, backfill_on - backfill_off) / max(1, read)
    return {
        "batch_rows": rows.num_rows,
        "merge_ms_without": statistics.median(off) * 1000,
        "merge_ms_with": statistics.median(on) * 1000,
        "snapshot_1m_r_events_s": per_row * 1_000_000,
        "backfill_rows": read,
    }


def _stored_lags(url: str, sink: SinkSettings, entities: list[str]) -> list[float]:
    """Per event on the bus: the time JetStream stored it (its metadata timestamp) minus
    the row's source stamp (UTC)."""
    lags: list[float] = []

    async def main() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        for entity in entities:
            try:
                sub = await js.subscribe(nats_subject(sink, entity), ordered_consumer=True)
            except nats.js.errors.NotFoundError:
                continue
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except nats.errors.TimeoutError:
                    break
                event = json.loads(msg.data)
                stamp = datetime.fromisoformat(event["source"]["_source_version"])
                stored = msg.metadata.timestamp
                lags.append((stored - stamp.replace(tzinfo=UTC)).total_seconds())
            await sub.unsubscribe()
        await nc.close()

    asyncio.run(main())
    return lags


def run_feed(ctx: BenchContext) -> list[Report]:
    options = ctx.options
    rate = options.rates[0]
    seconds = min(options.tail_seconds, 60.0)
    work = ctx.workdir("feed")
    source, warehouse = ctx.server.database("bench_feed_src"), ctx.server.database("bench_feed_wh")
    with psycopg.connect(source, autocommit=True) as conn:
        create_schema(conn, system=SYSTEM)
        seed(conn, accounts=options.tail_accounts, system=SYSTEM)
    url, server = machine_or_embedded(work / "nats")
    prefix = f"bench{int(time.time())}"
    sink = SinkSettings(kind="nats", url=url, prefix=prefix, duplicate_window_seconds=120)
    feed = FeedSettings(sinks={"bench": sink}, poll_interval_seconds=0.05)
    settings = load_settings(
        env={"BILLING_SYNC_HMAC_KEY": bench_hmac_key()}, state_dir=work, source_url=source,
        warehouse_url=warehouse, systems=[SYSTEM], capture={"delay_seconds": 0.5},
        read_copy_interval_seconds=0,
    )  # fmt: skip
    stop = threading.Event()
    try:
        with SyncEngine.from_settings(settings) as engine:
            engine.setup()
            engine.drain(until=datetime.now(UTC).replace(tzinfo=None), timeout=600)
            cost = _outbox_cost(engine, warehouse)
            entities = sorted({m.entity for m in engine.catalogs[0].tables})
            relay = threading.Thread(
                target=run_relay, args=(warehouse, "bench", feed), kwargs={"stop": stop.is_set}
            )
            relay.start()
            time.sleep(1.0)  # the relay registered the sink
            workload = Workload(source, rate=rate, systems=(SYSTEM,), seed=1)
            workload.start()
            started = time.monotonic()
            try:
                while time.monotonic() - started < seconds:
                    engine.run(tier=None, batches=1, poll_interval=0.1)
            finally:
                workload.stop()
            engine.drain(until=datetime.now(UTC).replace(tzinfo=None), timeout=120)
            time.sleep(3.0)
            stop.set()
            relay.join(30)
            lags = _stored_lags(url, sink, entities)
    finally:
        stop.set()
        if server is not None:
            server.stop()
    figures = _quantiles(lags) if lags else {}
    row = {
        "rate": rate, "seconds": seconds, "events": len(lags), **figures,
        "outbox_ms": cost["merge_ms_with"] - cost["merge_ms_without"], **cost,
    }  # fmt: skip
    return [
        Report(
            scenario="feed",
            title=f"Change events: source commit to NATS JetStream at {rate:.0f} rows/s",
            columns=[
                Column("rate", "rows/s", "{:.0f}"),
                Column("events", "events"),
                Column("p50", "p50 s", "{:.2f}"),
                Column("p95", "p95 s", "{:.2f}"),
                Column("p99", "p99 s", "{:.2f}"),
                Column("batch_rows", "batch rows"),
                Column("merge_ms_without", "merge ms", "{:.0f}"),
                Column("merge_ms_with", "+outbox ms", "{:.0f}"),
                Column("snapshot_1m_r_events_s", "1M r events s", "{:.1f}"),
            ],
            rows=[row],
            notes=[
                "latency: the time JetStream stored each event minus the row's source "
                "stamp (UTC), with the sync and the relay running in this process",
                "a 1M-row first load without snapshot_events writes no event (no cost); "
                f"with it, r events cost the figure shown (from a {cost['backfill_rows']}-row "
                "backfill)",
            ],
        )
    ]
