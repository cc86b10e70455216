"""One sink's relay: read the outbox in event-id order, publish, store the offset once the
server acknowledged.

A crash between the acknowledgement and the offset re-publishes the same events, with the
same ids (NATS drops them in its duplicate window; Redis consumers skip ids they have
seen): at-least-once, duplicates only with an id already seen, in order per key (the ids
of a key's entity are published in increasing order, and a re-publish starts again from
the first unstored one).

A sink that stops answering is retried with a doubling delay (1 s, 2 s, ... at most
``feed.max_backoff_seconds``), one log line per failure naming the sink; the sync never
waits for it: events wait in the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from billing_sync.config import FeedSettings, SinkSettings
from billing_sync.faults import crash_point
from billing_sync.feed import store
from billing_sync.feed.retention import purge
from billing_sync.feed.sinks import (
    NatsPublisher,
    RedisPublisher,
    SinkConfigError,
    SinkUnavailable,
    publisher,
)
from billing_sync.secrets import mask_error, mask_secrets

LOG = logging.getLogger("billing_sync.feed")

RETENTION_EVERY_SECONDS = 30.0


@dataclass
class RelayTally:
    """What one relay run did."""

    published: int = 0
    batches: int = 0
    failures: int = 0
    purged: int = 0
    errors: list[str] = field(default_factory=list)


class Relay:
    """Publishes the outbox to one sink until ``stop()`` says so or ``seconds`` passed."""

    def __init__(
        self,
        warehouse_url: str,
        name: str,
        sink: SinkSettings,
        feed: FeedSettings,
        *,
        log: logging.Logger = LOG,
    ) -> None:
        self.name, self.sink, self.feed, self.log = name, sink, feed, log
        self.publisher: RedisPublisher | NatsPublisher = publisher(name, sink)  # checks the URL
        try:
            self.conn = psycopg.connect(
                warehouse_url, autocommit=True, application_name=f"billing-sync-feed-{name}"
            )
        except psycopg.Error as error:
            raise SinkUnavailable(
                f"feed sink {name!r}: cannot reach the warehouse at {mask_secrets(warehouse_url)}:"
                f" {mask_error(error)}"
            ) from None

    async def start(self) -> None:
        """Connect, then register the sink: an unreachable server is an error at start (and
        registers nothing, which would hold the outbox's retention back)."""
        await self.publisher.connect()
        store.register_sink(
            self.conn, self.name, self.sink.kind, snapshot_events=self.sink.snapshot_events
        )

    async def run(
        self,
        *,
        stop: Callable[[], bool] = lambda: False,
        seconds: float | None = None,
        on_batch: Callable[[RelayTally], None] = lambda _: None,
    ) -> RelayTally:
        tally = RelayTally()
        deadline = time.monotonic() + (seconds if seconds is not None else self.feed.run_seconds)
        backoff = 1.0
        purged_at = 0.0
        failing_since: float | None = None
        while not stop() and time.monotonic() < deadline:
            events = store.pending(self.conn, self.name, self.feed.batch_events)
            if events:
                try:
                    await self.publisher.publish(events)
                except SinkUnavailable as error:
                    tally.failures += 1
                    failing_since = failing_since or time.monotonic()
                    self.log.warning(
                        "%s; %d events wait in the outbox; retrying in %.0f s",
                        error,
                        len(events),
                        backoff,
                    )
                    await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                    backoff = min(backoff * 2, self.feed.max_backoff_seconds)
                    continue
                crash_point("feed_after_publish")
                store.store_offsets(self.conn, self.name, events)
                if failing_since is not None:
                    self.log.warning(
                        "feed sink %r publishes again after %.0f s",
                        self.name,
                        time.monotonic() - failing_since,
                    )
                    failing_since = None
                backoff = 1.0
                tally.published += len(events)
                tally.batches += 1
                on_batch(tally)
            if time.monotonic() - purged_at >= RETENTION_EVERY_SECONDS:
                tally.purged += self._purge()
                purged_at = time.monotonic()
            if len(events) < self.feed.batch_events:
                await asyncio.sleep(self.feed.poll_interval_seconds)
        return tally

    def _purge(self) -> int:
        purged = purge(self.conn, retention_hours=self.feed.retention_hours)
        for sink, count in purged.lost.items():
            self.log.error(
                "feed sink %r never published %d events older than feed.retention_hours=%g;"
                " they were removed from the outbox",
                sink,
                count,
                self.feed.retention_hours,
            )
        return purged.published + purged.expired

    async def close(self) -> None:
        await self.publisher.close()
        self.conn.close()


def run_relay(
    warehouse_url: str,
    name: str,
    feed: FeedSettings,
    *,
    stop: Callable[[], bool] = lambda: False,
    seconds: float | None = None,
    on_batch: Callable[[RelayTally], None] = lambda _: None,
    log: logging.Logger = LOG,
) -> RelayTally:
    """Run the relay of sink ``name`` (blocking). Raises :class:`SinkConfigError` or
    :class:`SinkUnavailable` (naming the sink) when it cannot start."""
    if name not in feed.sinks:
        raise SinkConfigError(f"no feed sink named {name!r} (feed.sinks has {sorted(feed.sinks)})")

    async def main() -> RelayTally:
        relay = Relay(warehouse_url, name, feed.sinks[name], feed, log=log)
        try:
            await relay.start()
            return await relay.run(stop=stop, seconds=seconds, on_batch=on_batch)
        finally:
            await relay.close()

    return asyncio.run(main())
