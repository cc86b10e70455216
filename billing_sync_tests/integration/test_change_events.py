"""The outbox holds exactly the merge's changes (issue 16): one event per row a batch changed,
``before`` the warehouse's previous version, ``after`` the row it now holds; a replayed
batch writes none; ``r`` events only when a sink asks for them."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from billing_sync.engine.sync import SyncEngine
from billing_sync.entities import entity_columns
from billing_sync.feed.store import register_sink
from billing_sync.load.outbox import INTERNAL_COLUMNS
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import Workload
from billing_sync_tests.integration.helpers import seeded_source, settings_for, source_now

pytestmark = pytest.mark.integration


def _events(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event_id, envelope FROM billing_sync.change_event ORDER BY event_id"
        ).fetchall()
    assert all(event_id == envelope["id"] for event_id, envelope in rows)
    return [envelope for _, envelope in rows]


def _warehouse_rows(url: str, entity: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The entity's rows as the events carry them (JSON, no internal lineage)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(f'SELECT to_jsonb(t) FROM billing."{entity}" t').fetchall()
    found = {}
    for (row,) in rows:
        for name in INTERNAL_COLUMNS:
            row.pop(name)
        found[(row["_source_system"], row["_source_key"])] = row
    return found


def test_events_are_the_merges_changes_before_included(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=30)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0.3})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))  # no sink registered: no event
        assert _events(databases.warehouse) == []
        with psycopg.connect(databases.warehouse, autocommit=True) as conn:
            register_sink(conn, "tail-only", "redis", snapshot_events=False)
        catalog = engine.catalogs[0]
        mapping = next(m for m in catalog.tables if m.table == "ACCOUNT")
        engine.backfill(catalog, mapping)  # nothing changed, no sink asks for ``r``: no event
        assert _events(databases.warehouse) == []
        with psycopg.connect(databases.warehouse, autocommit=True) as conn:
            register_sink(conn, "test", "nats", snapshot_events=True)
        backfilled = engine.backfill(catalog, mapping)
        reads = _events(databases.warehouse)
        assert len(reads) == backfilled and {event["op"] for event in reads} == {"r"}
        assert all(event["before"] == event["after"] for event in reads)  # nothing changed

        workload = Workload(databases.source, rate=150, systems=("icoms",), seed=11)
        workload.start()
        try:
            started = time.monotonic()
            while time.monotonic() - started < 3:
                engine.run(tier=None, batches=1, poll_interval=0.2)
        finally:
            workload.stop()
        engine.drain(until=source_now(databases.source))
        # A replay: rows the warehouse already holds, committed again, write no event.
        count = len(_events(databases.warehouse))
        columns = entity_columns(mapping)
        table, _ = engine.warehouse.rows_since(columns, 0)
        replay = engine.warehouse.commit_rows(
            system="icoms", mapping=mapping, rows=table.drop_columns(["_batch_id"]), kind="tail"
        )
        assert replay.inserted + replay.updated == 0
        assert len(_events(databases.warehouse)) == count

    events = _events(databases.warehouse)
    changes = [event for event in events if event["op"] != "r"]
    ops = Counter(event["op"] for event in changes)
    assert ops["u"] + ops["c"] > 20 and set(ops) <= {"c", "u", "d"}, ops

    # Per tail batch: as many events as rows the merge wrote (the batch log's counts).
    with psycopg.connect(databases.warehouse) as conn:
        logged = dict(
            conn.execute(
                "SELECT batch_id, inserted + updated FROM billing_sync.batch_log"
                " WHERE inserted + updated > 0 AND kind NOT IN ('initial', 'backfill')"
            ).fetchall()
        )
    assert Counter(event["source"]["batch_id"] for event in changes) == Counter(logged)

    # Per key, in id order: each ``before`` is the previous event's ``after`` (the first
    # change of a key the warehouse held has a ``before``), and the last event's row is
    # the warehouse's row.
    last: dict[tuple[str, str, str], dict[str, Any] | None] = {}
    for event in events:
        source = event["source"]
        assert set(event) == {"id", "op", "before", "after", "source", "ts_ms"}
        key = (source["entity"], source["system"], source["key"])
        if last.get(key) is not None:
            assert event["before"] == last[key], (event, last[key])
        elif event["before"] is None:
            assert event["op"] == "c", event
        assert (event["after"] is None) == (event["op"] == "d")
        last[key] = event["after"]
    for entity in {key[0] for key in last}:
        rows = _warehouse_rows(databases.warehouse, entity)
        for (event_entity, system, source_key), after in last.items():
            if event_entity == entity and after is not None:
                assert rows[(system, source_key)] == after
    assert all(json.dumps(event) for event in events)
