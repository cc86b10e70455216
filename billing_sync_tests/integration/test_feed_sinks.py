"""What a long-lived relay repeats must not grow with what it did before: the NATS
publisher's hold on its connection (the machine's JetStream on 127.0.0.1:4222) per batch,
and the outbox read per poll with the published events retention has not removed yet."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg
import pytest

from billing_sync.config import SinkSettings
from billing_sync.engine.sync import SyncEngine
from billing_sync.feed import store
from billing_sync.feed.sinks import NatsPublisher
from billing_sync.feed.store import PendingEvent
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration


def test_one_reply_subscription_however_many_batches() -> None:
    """Each JetStream context subscribes its own inbox for publish_async's acks and never
    drops it: one context per batch left a subscription per batch on the connection."""
    sink = SinkSettings(
        kind="nats", url="nats://127.0.0.1:4222", prefix=f"t{uuid.uuid4().hex[:8]}",
        duplicate_window_seconds=5,
    )  # fmt: skip

    async def main() -> list[int]:
        publisher = NatsPublisher("subs", sink)
        await publisher.connect()
        counts = []
        try:
            for batch in range(5):
                events = [
                    PendingEvent(batch * 10 + i, "account", f"[{i}]", f'{{"id": {i}}}')
                    for i in range(3)
                ]
                await publisher.publish(events)
                assert publisher.nc is not None
                counts.append(len(publisher.nc._subs))
            assert publisher.nc is not None
            await publisher.nc.jetstream().delete_stream(f"{sink.prefix}_account")
        finally:
            await publisher.close()
        return counts

    counts = asyncio.run(main())
    assert counts == [counts[0]] * 5, counts  # the requests inbox and the acks inbox


def test_a_poll_reads_the_unpublished_events_not_the_published_ones(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    """5,000 published events of one entity still in the outbox (retention runs every
    30 s), 3 to publish: the poll fetches about those 3 rows, counted by PostgreSQL's own
    per-transaction statistics (pg_stat_xact_user_tables, "The Cumulative Statistics
    System"). The read in id order over the whole outbox fetched all 5,003."""
    with SyncEngine.from_settings(settings_for(databases, tmp_path)) as engine:
        engine.setup()
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        store.register_sink(conn, "poll", "nats", snapshot_events=False)
        entity = conn.execute("SELECT min(entity) FROM billing_sync.entity_state").fetchone()
        assert entity is not None and entity[0]
        conn.execute(
            "INSERT INTO billing_sync.change_event (event_id, entity, source_key, op, batch_id,"
            " envelope) SELECT g, %s, g::text, 'u', 1, '{}' FROM generate_series(1, 5003) g",
            (entity[0],),
        )
        published = [PendingEvent(5000, entity[0], "5000", "{}")]
        store.store_offsets(conn, "poll", published)
        conn.execute("ANALYZE billing_sync.change_event")

        def fetched() -> int:
            row = conn.execute(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
                " FROM pg_stat_xact_user_tables"
                " WHERE schemaname = 'billing_sync' AND relname = 'change_event'"
            ).fetchone()
            return int(row[0]) if row else 0

        with conn.transaction():
            before = fetched()
            events = store.pending(conn, "poll", 1000)
            read = fetched() - before
    assert [event.event_id for event in events] == [5001, 5002, 5003]
    assert read <= 10, f"a poll fetched {read} outbox rows to return 3"
