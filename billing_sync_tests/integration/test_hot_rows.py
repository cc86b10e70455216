"""Hot rows are read ahead of the horizon, and a stamp that went backwards never sticks
(issue 15, item 1; DESIGN §11; billing_sync.engine.read_ahead)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from billing_sync.bench.staleness import ACCOUNT, HotWriter, sample
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync_tests.integration.helpers import (
    assert_parity,
    next_second,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration

KEY = '("SITE_ID", "ACCOUNT_NO")'
DELAY = 1.0


@pytest.fixture
def engine(databases: DatabaseUrls, tmp_path: Path) -> Iterator[SyncEngine]:
    seeded_source(databases, accounts=30)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": DELAY})
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source))
        yield engine


def _keys(url: str, count: int) -> list[tuple[str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(f"SELECT {KEY[1:-1]} FROM {ACCOUNT} ORDER BY 1, 2 LIMIT %s", (count,))
        return [(row[0], row[1]) for row in rows]


def _balance(url: str, key: tuple[str, str]) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT balance FROM billing.billing_account WHERE site_id = %s"
            " AND account_number = %s",
            (key[0].strip(), key[1].strip()),
        ).fetchone()
    assert row is not None
    return row[0]


def _watermark(url: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT cursor_ts FROM billing_sync.watermark WHERE source_table = 'ACCOUNT'"
        ).fetchone()
    assert row is not None
    return row[0]


def test_content_read_ahead_under_a_newer_stamp_gives_way_to_the_later_read(
    engine: SyncEngine, databases: DatabaseUrls
) -> None:
    """DESIGN §11, built step by step with two connections: A starts at :00; B writes the row
    at :01 and :02 and commits; the read-ahead loads B's content; A writes the row stamped
    :00 and commits. The tail then reads A's content, older by its stamp, and it wins."""
    (key,) = _keys(databases.source, 1)
    update = f'UPDATE {ACCOUNT} SET "AR_BALANCE" = %s, {ICOMS_STAMP_SET} WHERE {KEY} = (%s, %s)'
    with (
        psycopg.connect(databases.source) as a,
        psycopg.connect(databases.source, autocommit=True) as b,
    ):
        a.execute("SELECT now()")  # A is open: its start holds the horizon back
        next_second()
        b.execute(update, (Decimal("1.01"), *key))
        engine.sync_once("priority")  # the probe sees the row above the horizon
        next_second()
        b.execute(update, (Decimal("2.02"), *key))
        held = _watermark(databases.warehouse)
        engine.sync_once("priority")  # stamped again while above: hot, read ahead
        assert _balance(databases.warehouse, key) == Decimal("2.02")
        assert _watermark(databases.warehouse) == held, "a read-ahead never moves the watermark"
        a.execute(update, (Decimal("3.03"), *key))  # stamped with A's start: before B's
        a.commit()
    next_second()
    engine.drain(until=source_now(databases.source), tier="priority")
    assert _balance(databases.warehouse, key) == Decimal("3.03")
    assert_parity(engine)


HOT_SECONDS = float(os.environ.get("BILLING_SYNC_TEST_HOT_SECONDS", "20"))


def test_a_row_rewritten_every_300_ms_is_never_more_than_the_delay_plus_2_s_behind(
    engine: SyncEngine, databases: DatabaseUrls
) -> None:
    """Without the read-ahead the row's stamp is always above the horizon and its copy
    keeps the value it had when the writes began, for as long as they go on."""
    writer = HotWriter(databases.source, _keys(databases.source, 2), period=0.3)
    writer.reset()
    engine.drain(until=source_now(databases.source), tier="priority")
    stop = threading.Event()
    runner = threading.Thread(
        target=lambda: engine.run(
            tier="priority", batches=10**6, poll_interval=1.0, should_stop=stop.is_set
        )
    )
    writer.start()
    runner.start()
    try:
        found = sample(databases.warehouse, writer, seconds=HOT_SECONDS)
    finally:
        writer.stop()
        stop.set()
        runner.join(timeout=60)
    assert len(writer.started) > HOT_SECONDS / 0.3 * 0.8, "the writer kept its pace"
    print(
        f"hot rows: worst {found.worst:.2f} s, p99 {found.percentile(0.99):.2f} s"
        f" over {len(found.samples)} samples"
    )
    assert found.worst <= DELAY + 2.0, f"worst {found.worst:.2f} s, p99 {found.percentile(0.99)}"
    next_second()
    engine.drain(until=source_now(databases.source), tier="priority")
    assert_parity(engine)
