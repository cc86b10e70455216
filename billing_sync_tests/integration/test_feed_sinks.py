"""The NATS publisher on the machine's JetStream (127.0.0.1:4222): a long-lived relay
publishes batch after batch on one connection, so what it holds per connection must not
grow with the batches."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from billing_sync.config import SinkSettings
from billing_sync.feed.sinks import NatsPublisher
from billing_sync.feed.store import PendingEvent

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
