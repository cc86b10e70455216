"""Read events back from a sink: ``billing-sync feed tail`` and the tests' stream scans.

Redis: ``XRANGE``/``XREAD BLOCK`` on ``billing:<entity>``. NATS: an ordered, ephemeral
push consumer on ``billing.<entity>`` (nats-py ``subscribe(..., ordered_consumer=True)``),
which JetStream redelivers from where it lost its place, in stream order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import nats
import nats.js.api
import redis.asyncio as aioredis

from billing_sync.config import SinkSettings
from billing_sync.feed.sinks import check_url, nats_subject, redis_stream


async def _redis(
    sink: SinkSettings, entity: str, *, from_start: bool, idle_seconds: float | None
) -> AsyncIterator[dict[str, Any]]:
    assert sink.url is not None
    client = aioredis.Redis.from_url(sink.url, socket_connect_timeout=5)
    try:
        last: Any = "0-0" if from_start else "$"
        while True:
            block = int((idle_seconds or 1.0) * 1000)
            reply: Any = await client.xread(
                {redis_stream(sink, entity): last}, count=1000, block=block
            )
            if not reply:
                if idle_seconds is not None:
                    return
                continue
            for entry_id, fields in reply[0][1]:  # [[stream, [(id, {field: value})]]]
                last = entry_id
                yield json.loads(fields[b"event"])
    finally:
        await client.aclose()


async def _nats(
    sink: SinkSettings, entity: str, *, from_start: bool, idle_seconds: float | None
) -> AsyncIterator[dict[str, Any]]:
    assert sink.url is not None
    nc = await nats.connect(sink.url, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        policy = nats.js.api.DeliverPolicy.ALL if from_start else nats.js.api.DeliverPolicy.NEW
        sub = await js.subscribe(
            nats_subject(sink, entity),
            ordered_consumer=True,
            config=nats.js.api.ConsumerConfig(deliver_policy=policy),
        )
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_seconds or 1.0)
            except nats.errors.TimeoutError:
                if idle_seconds is not None:
                    return
                continue
            yield json.loads(msg.data)
    finally:
        await nc.close()


def events(
    name: str,
    sink: SinkSettings,
    entity: str,
    *,
    from_start: bool = False,
    idle_seconds: float | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The entity's events on the sink as they arrive; with ``idle_seconds``, ends once
    none came for that long (else runs until cancelled)."""
    check_url(name, sink)
    reader = _redis if sink.kind == "redis" else _nats
    return reader(sink, entity, from_start=from_start, idle_seconds=idle_seconds)


def read_all(name: str, sink: SinkSettings, entity: str, idle_seconds: float = 0.5) -> list[Any]:
    """Everything the sink holds for ``entity`` (blocking)."""

    async def collect() -> list[Any]:
        found = events(name, sink, entity, from_start=True, idle_seconds=idle_seconds)
        return [event async for event in found]

    return asyncio.run(collect())
