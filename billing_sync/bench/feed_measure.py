"""What ``bench feed`` measures: the events on each bus with their times, and what the
outbox costs a batch (wall, client CPU and the PostgreSQL backend's CPU).

Per event three instants: the row's source stamp (``source._source_version``, UTC: the
Amdocs-style biller writes microsecond UTC stamps), the outbox insert (``ts_ms``: the
warehouse's ``clock_timestamp()`` inside the batch's transaction), and the time the bus
stored it (JetStream: the message's metadata timestamp; Redis: the entry id's
milliseconds, as ``XADD ... *`` assigns it). So the latency splits into the sync's part
(source to outbox) and the relay's (outbox to bus, the batch's commit included).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import nats.errors
import nats.js.errors
import psutil
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import redis

from billing_sync.config import SinkSettings, TableMapping
from billing_sync.feed.sinks import nats_subject, redis_stream
from billing_sync.load.warehouse import Warehouse


@dataclass(frozen=True)
class Delivered:
    """One event as a bus stored it: its id and three instants (epoch seconds)."""

    event_id: int
    entity: str
    stamp: float  # the source row's stamp
    outbox: float  # ts_ms: the outbox insert
    stored: float  # the bus stored it


def _delivered(event_id: int, envelope: bytes | str, stored: float) -> Delivered:
    event = json.loads(envelope)
    stamp = datetime.fromisoformat(event["source"]["_source_version"]).replace(tzinfo=UTC)
    entity = event["source"]["entity"]
    return Delivered(event_id, entity, stamp.timestamp(), event["ts_ms"] / 1000, stored)


def nats_delivered(url: str, sink: SinkSettings, entities: list[str]) -> list[Delivered]:
    """Every event on the sink's JetStream streams (a re-publish the server dropped is not
    there; one it kept counts once, at its first store)."""
    found: dict[int, Delivered] = {}

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
                event_id = int(msg.headers["Nats-Msg-Id"]) if msg.headers else 0
                stored = msg.metadata.timestamp.timestamp()
                found.setdefault(event_id, _delivered(event_id, msg.data, stored))
            await sub.unsubscribe()
        await nc.close()

    asyncio.run(main())
    return list(found.values())


def redis_delivered(url: str, sink: SinkSettings, entities: list[str]) -> list[Delivered]:
    """Every event on the sink's streams, stored at its entry id's milliseconds (a
    re-publish is a second entry: the first counts)."""
    found: dict[int, Delivered] = {}
    client = redis.Redis.from_url(url)
    try:
        for entity in entities:
            start = "-"
            while True:
                # redis-py types the sync and asyncio replies as one union
                entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
                    redis_stream(sink, entity), start, "+", count=5000
                )
                for entry_id, fields in entries:
                    event_id = int(fields[b"id"])
                    stored = int(entry_id.split(b"-")[0]) / 1000
                    found.setdefault(event_id, _delivered(event_id, fields[b"event"], stored))
                if len(entries) < 5000:
                    break
                start = "(" + entries[-1][0].decode()
    finally:
        client.close()
    return list(found.values())


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


def latency_row(
    bus: str, tier: str, delivered: list[Delivered], *, target: float
) -> dict[str, Any]:
    """p50/p95/p99 of source stamp to bus, and the p99 of each part, beside the target."""
    if not delivered:
        return {"bus": bus, "tier": tier, "events": 0, "target": target, "verdict": "no events"}
    total = quantiles([d.stored - d.stamp for d in delivered])
    sync = quantiles([d.outbox - d.stamp for d in delivered])
    relay = quantiles([d.stored - d.outbox for d in delivered])
    return {
        "bus": bus, "tier": tier, "events": len(delivered), **total,
        "sync_p99": sync["p99"], "relay_p50": relay["p50"], "relay_p99": relay["p99"],
        "target": target, "verdict": "met" if total["p99"] < target else "missed",
    }  # fmt: skip


class BackendCpu:
    """CPU seconds of one connection's PostgreSQL backend (None: the server is not on this
    machine, or not readable)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        try:
            self.process: psutil.Process | None = psutil.Process(int(row[0])) if row else None
            self.seconds()
        except (psutil.Error, OSError):
            self.process = None

    def seconds(self) -> float | None:
        if self.process is None:
            return None
        times = self.process.cpu_times()
        return float(times.user + times.system)


@dataclass(frozen=True)
class MergeCost:
    wall_ms: float
    client_cpu_ms: float
    server_cpu_ms: float | None


def merge_cost(
    warehouse: Warehouse,
    system: str,
    mapping: TableMapping,
    rows: pa.Table,
    *,
    repeats: int,
    shift: Callable[[], int],
) -> MergeCost:
    """Medians over ``repeats`` commits of ``rows`` as newer versions (every row written)."""
    backend = BackendCpu(warehouse.conn)
    walls, clients, servers = [], [], []
    index = rows.schema.get_field_index("_source_version")
    for _ in range(repeats):
        versions = pc.add(rows.column("_source_version"), pa.scalar(timedelta(seconds=shift())))
        newer = rows.set_column(index, "_source_version", versions)
        server, client, wall = backend.seconds(), time.process_time(), time.perf_counter()
        warehouse.commit_rows(system=system, mapping=mapping, rows=newer, kind="tail")
        walls.append(time.perf_counter() - wall)
        clients.append(time.process_time() - client)
        after = backend.seconds()
        if server is not None and after is not None:
            servers.append(after - server)
    return MergeCost(
        statistics.median(walls) * 1000,
        statistics.median(clients) * 1000,
        # The mean: the kernel counts a process's CPU in 10 ms ticks.
        statistics.fmean(servers) * 1000 if servers else None,
    )
