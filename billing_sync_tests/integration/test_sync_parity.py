"""Seed, sync under a live workload, drain: every row and column equal everywhere."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import Workload
from billing_sync_tests.integration.helpers import (
    assert_parity,
    drained_engine,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration


def test_sync_under_workload_reaches_parity(databases: DatabaseUrls, tmp_path: Path) -> None:
    seeded = seeded_source(databases, accounts=300)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0.5, "batch_rows": 700})
    # No hard deletes: only verify finds those (its own tests); this is about the tail.
    workload = Workload(databases.source, rate=400, hard_deletes=False)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.validator.warm_up()
        workload.start()
        try:  # at least 8 micro-batches and 6 s under the workload, however slow the machine
            started = time.monotonic()
            batches = 0
            while batches < 8 or time.monotonic() - started < 6:
                batches += engine.run(tier=None, batches=1, poll_interval=0.2)
        finally:
            workload.stop()
        engine.drain(until=source_now(databases.source), timeout=180)
        results = assert_parity(engine)
    changed = workload.counts()
    assert all(changed.get(table, 0) > 0 for table in ("ACCOUNT", "PAYMENT", "CUST_SERVICE"))
    rows = {r.table: r.warehouse_rows for r in results}
    assert rows["PAYMENT"] >= seeded["PAYMENT"]
    assert all(r.cache_rows == r.source_rows for r in results)


def test_a_second_sync_finds_nothing_new(databases: DatabaseUrls, tmp_path: Path) -> None:
    with drained_engine(databases, tmp_path, accounts=50, capture={"delay_seconds": 0}) as engine:
        again = engine.sync_once()
        assert all(b.rows_read == 0 for b in again) and len(again) == 14
        assert all(b.batch_id is None for b in again)
        assert_parity(engine)


def test_writes_through_the_capture_session_fail(databases: DatabaseUrls, tmp_path: Path) -> None:
    seeded_source(databases, accounts=5)
    settings = settings_for(databases, tmp_path)
    with (
        SyncEngine.from_settings(settings) as engine,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        engine.source("icoms").scalar('DELETE FROM "icoms"."PAYMENT"')
