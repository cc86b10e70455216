"""Capture and load edges that lose or duplicate rows when a mechanism is missing."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from billing_sync.capture.regression import newest_change
from billing_sync.capture.window import Advance, Window
from billing_sync.engine import snapshot as snapshot_module
from billing_sync.engine.status import tables_behind
from billing_sync.engine.sync import SyncEngine
from billing_sync.entities import STATE_SCHEMA
from billing_sync.load.warehouse import ConcurrentSyncError
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator.clock import ICOMS_STAMP_SET, cyymmdd, hhmmss
from billing_sync_tests.integration.helpers import (
    assert_parity,
    drained_engine,
    next_second,
    seeded_source,
    settings_for,
    source_now,
)

pytestmark = pytest.mark.integration


def _warehouse_rows(url: str, entity: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT * FROM billing.{entity} ORDER BY _source_key").fetchall()


def test_thousands_of_rows_sharing_one_timestamp_cross_batch_boundaries(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    with drained_engine(
        databases,
        tmp_path,
        accounts=120,
        timeout=120,
        capture={"delay_seconds": 0, "batch_rows": 97},
    ) as engine:
        with psycopg.connect(databases.source) as conn:  # one transaction: one stamp
            touched = conn.execute(
                f'UPDATE "icoms"."PAYMENT" SET "PAY_STATUS" = \'R\', {ICOMS_STAMP_SET}'
                " WHERE \"PAY_STATUS\" = 'P'"
            ).rowcount
        assert touched > 500
        payment = engine.catalogs[0].by_table["PAYMENT"]
        next_second()
        reads = 0
        while True:
            batch = engine.sync_table(engine.catalogs[0], payment)
            reads += batch.rows_read
            if not batch.more_waiting and batch.caught_up_to and batch.rows_read == 0:
                break
        assert reads == touched  # each row once: none skipped, none read twice
        assert_parity(engine)


def test_a_replayed_window_changes_nothing(databases: DatabaseUrls, tmp_path: Path) -> None:
    with drained_engine(databases, tmp_path, accounts=40, capture={"delay_seconds": 0}) as engine:
        assert_a_replayed_window_changes_nothing(engine)


def assert_a_replayed_window_changes_nothing(engine: SyncEngine) -> None:
    """Every table read again from the start (a re-based watermark) into a drained
    engine: rows are read, nothing is inserted or updated, parity holds. Shared with
    the MariaDB fault tests."""
    before = _warehouse_rows(engine.urls.warehouse, "payment")
    with psycopg.connect(engine.urls.warehouse) as conn:  # re-base: read everything again
        conn.execute(f"UPDATE {STATE_SCHEMA}.watermark SET cursor_ts = NULL, cursor_key = NULL")
    replay = engine.sync_once()
    assert sum(b.rows_read for b in replay) > 0
    assert sum(b.inserted + b.updated for b in replay) == 0
    assert _warehouse_rows(engine.urls.warehouse, "payment") == before
    assert_parity(engine)


def test_a_watermark_moved_by_another_sync_commits_nothing(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    seeded_source(databases, accounts=20)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    with SyncEngine.from_settings(settings) as first, SyncEngine.from_settings(settings) as second:
        first.setup()
        catalog = first.catalogs[0]
        payment = catalog.by_table["PAYMENT"]
        stale = first.warehouse.watermark("icoms", payment)
        second.sync_table(catalog, payment)
        with pytest.raises(ConcurrentSyncError, match=r"icoms\.PAYMENT"):
            first.warehouse.commit_batch(
                system="icoms",
                mapping=payment,
                rows=pa.table({}),
                window=Window(stale.cursor, source_now(databases.source), 10),
                advance=Advance(cursor=None, caught_up_to=None, more_waiting=False),
                lag_seconds=None,
                run_id=None,
            )
        assert first.warehouse.watermark("icoms", payment) != stale


HOLD_CACHE = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_reader_holding_the_cache_never_fails_the_sync_and_it_catches_up(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    with drained_engine(databases, tmp_path, accounts=30, capture={"delay_seconds": 0}) as engine:
        reader = subprocess.Popen(
            [sys.executable, "-c", HOLD_CACHE, str(engine.settings.resolved_cache_path), "120"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None and reader.stdout.readline().strip() == "holding"
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "icoms"."ACCOUNT" SET "AR_BALANCE" = "AR_BALANCE" + 1, {ICOMS_STAMP_SET}'
            )
        next_second()
        busy = next(b for b in engine.sync_once("priority") if b.table == "ACCOUNT")
        assert busy.inserted + busy.updated > 0  # the warehouse moved on
        assert (
            busy.cache is None
            and busy.cache_error
            and "held by another process" in busy.cache_error
        )
        reader.terminate()  # held for as long as the busy batch took, however slow
        reader.wait(30)
        with psycopg.connect(databases.source, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "icoms"."ACCOUNT" SET {ICOMS_STAMP_SET}'
                ' WHERE ctid = (SELECT min(ctid) FROM "icoms"."ACCOUNT")'
            )
        next_second()
        after = next(b for b in engine.sync_once("priority") if b.table == "ACCOUNT")
        assert after.cache is not None and after.cache.caught_up  # from the warehouse
        assert_parity(engine)


def test_a_lost_cache_is_rebuilt_from_the_warehouse(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    with drained_engine(databases, tmp_path, accounts=30, capture={"delay_seconds": 0}) as engine:
        engine.settings.resolved_cache_path.unlink()
        applied = engine.catch_up_cache()
        assert all(a.caught_up for a in applied)
        assert sum(a.rows for a in applied) > 0
        assert_parity(engine)


def _first_payment_and_a_second_ahead(url: str) -> tuple[tuple[int, int], datetime]:
    """The first payment's key and a source second a few seconds ahead (ICOMS local
    time): a stamp that no window can read before the test writes it twice."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            'SELECT "SITE_ID", "PAYMENT_NO" FROM "icoms"."PAYMENT" ORDER BY 1, 2 LIMIT 1'
        ).fetchone()
        ahead = conn.execute(
            "SELECT (date_trunc('second', now()) + interval '8 s') AT TIME ZONE 'America/Chicago'"
        ).fetchone()
    assert row is not None and ahead is not None
    return (row[0], row[1]), ahead[0]


def _status_at(url: str, version: datetime) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status FROM billing.payment WHERE _source_version = %s", (version,)
        ).fetchall()
    return [status for (status,) in rows]


def _write_payment(url: str, key: tuple[int, int], status: str, stamp: tuple[int, int]) -> None:
    """Set PAY_STATUS with a given ``(CHG_DATE, CHG_TIME)``."""
    with psycopg.connect(url) as conn:
        conn.execute(
            'UPDATE "icoms"."PAYMENT" SET "PAY_STATUS" = %s, "CHG_DATE" = %s, "CHG_TIME" = %s'
            ' WHERE "SITE_ID" = %s AND "PAYMENT_NO" = %s',
            (status, *stamp, *key),
        )


def test_a_second_write_within_the_second_a_snapshot_read_is_not_lost(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    """A snapshot reads every row, even one stamped with a second that is still being
    written; a second write within that second keeps the stamp (an equal version) and
    must still replace the first content, in the warehouse and in the cache."""
    seeded_source(databases, accounts=20)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    key, second = _first_payment_and_a_second_ahead(databases.source)
    stamp = (cyymmdd(second), hhmmss(second))
    _write_payment(databases.source, key, "P", stamp)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source), timeout=120)  # the snapshot reads it
        _write_payment(databases.source, key, "R", stamp)  # same second, new content
        engine.drain(until=second + timedelta(seconds=1), timeout=60)
        assert_parity(engine)
    assert _status_at(databases.warehouse, second) == ["reversed"]


def test_a_change_stamped_at_the_hand_over_second_starts_a_run(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    """A snapshot hands over at ``(ts, ())``: "from ts on". A change stamped exactly ``ts``
    is behind (the sensors must start a run), not caught up."""
    with drained_engine(
        databases, tmp_path, accounts=10, timeout=60, capture={"delay_seconds": 0}
    ) as engine:
        assert tables_behind(engine) == []
        catalog = engine.catalogs[0]
        payment = catalog.by_table["PAYMENT"]
        newest = newest_change(engine.source("icoms"), catalog, payment)
        with psycopg.connect(databases.warehouse) as conn:  # a hand-over at the newest stamp
            conn.execute(
                f"UPDATE {STATE_SCHEMA}.watermark SET cursor_ts = %s, cursor_key = NULL"
                " WHERE system = 'icoms' AND source_table = 'PAYMENT'",
                (newest,),
            )
        assert tables_behind(engine) == ["icoms.PAYMENT"]
        engine.drain(until=source_now(databases.source), timeout=60)
        assert tables_behind(engine) == []
        assert_parity(engine)


def test_a_backfill_never_overwrites_what_the_tail_loaded_at_an_equal_version(
    databases: DatabaseUrls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backfill chunk reads a row in a second still being written; before the chunk
    commits, the row is written again within that second and the tail loads it. The
    chunk must not put the first content back (it leaves such rows to the tail)."""
    seeded_source(databases, accounts=20)
    settings = settings_for(databases, tmp_path, capture={"delay_seconds": 0})
    key, second = _first_payment_and_a_second_ahead(databases.source)
    stamp = (cyymmdd(second), hhmmss(second))
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=source_now(databases.source), timeout=60)
        _write_payment(databases.source, key, "P", stamp)  # what the backfill reads
        real_commit = snapshot_module.commit_chunk

        def tail_commits_first(*args: Any, **kwargs: Any) -> Any:
            monkeypatch.setattr(snapshot_module, "commit_chunk", real_commit)
            _write_payment(databases.source, key, "R", stamp)  # same second, new content
            engine.drain(until=second + timedelta(seconds=1), timeout=60)
            return real_commit(*args, **kwargs)

        monkeypatch.setattr(snapshot_module, "commit_chunk", tail_commits_first)
        catalog = engine.catalogs[0]
        assert engine.backfill(catalog, catalog.by_table["PAYMENT"]) > 0
        assert snapshot_module.commit_chunk is real_commit  # the chunk did commit after the tail
        assert_parity(engine)
    assert _status_at(databases.warehouse, second) == ["reversed"]


def test_setup_takes_no_strong_lock_while_another_run_commits(
    databases: DatabaseUrls, tmp_path: Path
) -> None:
    """Each tier's run sets up at its start while the others commit. Once the schema is
    there, setup must not wait on (or deadlock with) a commit's row locks."""
    seeded_source(databases, accounts=5)
    settings = settings_for(databases, tmp_path)
    with SyncEngine.from_settings(settings) as first:
        first.setup()
    tables = f"{STATE_SCHEMA}.batch_log, {STATE_SCHEMA}.watermark, {STATE_SCHEMA}.snapshot, "
    tables += "billing.payment, billing_sync.entity_state"
    with psycopg.connect(databases.warehouse) as committing:
        committing.execute(f"LOCK TABLE {tables} IN ROW EXCLUSIVE MODE")  # as a commit does
        done = threading.Event()

        def set_up_again() -> None:
            with SyncEngine.from_settings(settings) as second:
                second.setup()
            done.set()

        setting_up = threading.Thread(target=set_up_again, daemon=True)
        setting_up.start()
        finished = done.wait(15)
        committing.rollback()  # lets a blocked setup go on, so the thread ends either way
        setting_up.join(30)
    assert finished, "setup waited for the committing transaction's locks"
