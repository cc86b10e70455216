"""The two message buses: publish a run of events and return once the server acknowledged.

- **Redis Streams** (redis-py): one ``XADD billing:<entity> MAXLEN ~ N * id <id> key <key>
  event <json>`` per event, pipelined; the reply carrying each entry id is the
  acknowledgement (Redis docs, "XADD"). Redis keeps no duplicate window: a re-published
  event is a second entry with the same ``id`` field, which consumers skip.
- **NATS JetStream** (nats-py): one stream per entity (``billing_<entity>``, subject
  ``billing.<entity>``), each event published with ``Nats-Msg-Id: <id>``, so the server drops
  a re-publish inside the stream's duplicate window (NATS docs, "JetStream Model Deep
  Dive", message deduplication); the PubAck is the acknowledgement.

Errors come out as :class:`SinkUnavailable`, naming the sink, with the URL masked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
import redis.asyncio as aioredis
import redis.exceptions
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext

from billing_sync.config import SinkSettings
from billing_sync.feed.store import PendingEvent
from billing_sync.secrets import mask_error, mask_secrets

CONNECT_TIMEOUT_SECONDS = 5.0
ACK_TIMEOUT_SECONDS = 10.0


class SinkUnavailable(RuntimeError):
    """A sink's server cannot be reached or refused a publish; the message names the sink."""


class SinkConfigError(ValueError):
    """A sink's settings are wrong (a malformed URL); the message names the sink."""


class Publisher(Protocol):
    async def publish(self, events: Sequence[PendingEvent]) -> None:
        """Publish ``events`` in order; return once every one is acknowledged."""

    async def close(self) -> None: ...


def redis_stream(sink: SinkSettings, entity: str) -> str:
    """
    >>> redis_stream(SinkSettings(kind="redis"), "account")
    'billing:account'
    """
    return f"{sink.prefix}:{entity}"


def nats_subject(sink: SinkSettings, entity: str) -> str:
    """
    >>> bus = SinkSettings(kind="nats")
    >>> nats_subject(bus, "account"), nats_stream(bus, "account")
    ('billing.account', 'billing_account')
    """
    return f"{sink.prefix}.{entity}"


def nats_stream(sink: SinkSettings, entity: str) -> str:
    return f"{sink.prefix}_{entity}"


def check_url(name: str, sink: SinkSettings) -> str:
    """The sink's URL, or a :class:`SinkConfigError` that says what is wrong with it."""
    schemes = {"nats": ("nats", "tls"), "redis": ("redis", "rediss", "unix")}[sink.kind]
    if not sink.url:
        raise SinkConfigError(
            f"feed sink {name!r} ({sink.kind}) has no URL: set feed.sinks.{name}.url or "
            f"BILLING_SYNC_FEED_URL_{name.upper()}"
        )
    try:
        parts = urlsplit(sink.url)
        port = parts.port
    except ValueError as error:
        raise SinkConfigError(
            f"feed sink {name!r} ({sink.kind}): malformed URL {mask_secrets(sink.url)}:"
            f" {mask_secrets(str(error))}"
        ) from None
    if parts.scheme not in schemes or (parts.scheme != "unix" and not parts.hostname):
        raise SinkConfigError(
            f"feed sink {name!r} ({sink.kind}): malformed URL {mask_secrets(sink.url)}:"
            f" expected {' or '.join(s + '://host' for s in schemes)}[:port]"
        )
    del port
    return sink.url


def _unavailable(name: str, sink: SinkSettings, what: str, error: BaseException) -> SinkUnavailable:
    url = mask_secrets(sink.url or "")
    reason = (
        f"no answer within {CONNECT_TIMEOUT_SECONDS + 1:g} s (is the server up?)"
        if isinstance(error, TimeoutError) and not str(error)
        else mask_error(error)
    )
    return SinkUnavailable(f"feed sink {name!r} ({sink.kind} at {url}): {what}: {reason}")


class RedisPublisher:
    def __init__(self, name: str, sink: SinkSettings) -> None:
        self.name, self.sink = name, sink
        self.client = aioredis.Redis.from_url(
            check_url(name, sink),
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=ACK_TIMEOUT_SECONDS,
        )

    async def connect(self) -> None:
        try:
            await self.client.ping()
        except (redis.exceptions.RedisError, OSError) as error:
            raise _unavailable(self.name, self.sink, "cannot connect", error) from None

    async def publish(self, events: Sequence[PendingEvent]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(
                redis_stream(self.sink, event.entity),
                {"id": event.event_id, "key": event.source_key, "event": event.envelope},
                maxlen=self.sink.max_len,
                approximate=True,
            )
        try:
            await pipe.execute()
        except (redis.exceptions.RedisError, OSError) as error:
            raise _unavailable(self.name, self.sink, "XADD failed", error) from None

    async def close(self) -> None:
        await self.client.aclose()


class NatsPublisher:
    def __init__(self, name: str, sink: SinkSettings) -> None:
        self.name, self.sink = name, sink
        self.url = check_url(name, sink)
        self.nc: NATS | None = None
        # One JetStream context per connection: each context subscribes its own reply inbox
        # for publish_async's acknowledgements on first use, and never unsubscribes it.
        self.js: JetStreamContext | None = None
        self.streams: set[str] = set()

    async def connect(self) -> None:
        async def quiet(_: Exception) -> None:
            """nats-py logs each failed attempt with the URL; the relay says it once."""

        try:
            # Bounded as a whole: nats-py's own timeout covers one attempt only.
            self.nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    connect_timeout=int(CONNECT_TIMEOUT_SECONDS),
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    error_cb=quiet,
                ),
                CONNECT_TIMEOUT_SECONDS + 1,
            )
        except (nats.errors.Error, OSError, TimeoutError) as error:
            raise _unavailable(self.name, self.sink, "cannot connect", error) from None
        self.js = self.nc.jetstream(timeout=ACK_TIMEOUT_SECONDS)
        self.streams.clear()

    async def _stream(self, entity: str) -> None:
        assert self.js is not None
        name = nats_stream(self.sink, entity)
        if name in self.streams:
            return
        js = self.js
        config = StreamConfig(
            name=name,
            subjects=[nats_subject(self.sink, entity)],
            duplicate_window=self.sink.duplicate_window_seconds,
        )
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
        self.streams.add(name)

    async def publish(self, events: Sequence[PendingEvent]) -> None:
        if self.nc is None or not self.nc.is_connected:
            await self.connect()
        js = self.js
        assert js is not None
        try:
            for entity in {event.entity for event in events}:
                await self._stream(entity)
            # Sent in order on one connection, acknowledged as a whole.
            acks = [
                await js.publish_async(
                    nats_subject(self.sink, event.entity),
                    event.envelope.encode(),
                    headers={"Nats-Msg-Id": str(event.event_id)},
                )
                for event in events
            ]
            await asyncio.wait_for(asyncio.gather(*acks), ACK_TIMEOUT_SECONDS)
        except (nats.errors.Error, OSError, TimeoutError) as error:
            await self.close()
            raise _unavailable(self.name, self.sink, "publish failed", error) from None

    async def close(self) -> None:
        if self.nc is not None:
            nc, self.nc, self.js = self.nc, None, None
            with contextlib.suppress(nats.errors.Error, OSError):
                await nc.close()


def publisher(name: str, sink: SinkSettings) -> RedisPublisher | NatsPublisher:
    """The sink's publisher (its URL checked, not yet connected)."""
    if sink.kind == "redis":
        return RedisPublisher(name, sink)
    return NatsPublisher(name, sink)
