"""Capture faults on the ICOMS biller on MariaDB (the PostgreSQL versions are beside):
a late-committing transaction held back by the horizon (INNODB_TRX), and many rows
sharing one stamp read across several bounded batches (the expanded OR form resumes in
the middle of a second)."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from billing_sync.engine.batch import TableBatch
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import mariadb
from billing_sync.simulator.clock import from_cyymmdd
from billing_sync_tests.integration.helpers import assert_parity
from billing_sync_tests.integration.test_capture_edges import (
    assert_a_replayed_window_changes_nothing,
)
from billing_sync_tests.integration.test_mariadb_source import mariadb_icoms, mariadb_now
from billing_sync_tests.mysql_support import mysql_database, mysql_server

__all__ = ["mysql_database", "mysql_server"]

pytestmark = [pytest.mark.integration]

OPEN_SECONDS = 12


def _late_rows(engine: SyncEngine) -> int:
    with psycopg.connect(engine.urls.warehouse) as conn:
        row = conn.execute("SELECT sum(late_rows) FROM billing_sync.watermark").fetchone()
    assert row is not None
    return int(row[0])


def test_a_late_committing_transaction_holds_the_horizon_and_arrives_whole(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    settings, url = mariadb_icoms(databases, mysql_database, tmp_path, accounts=40,
                                  lookback_seconds=0, use_transaction_horizon=True)  # fmt: skip
    database = mysql_database.database
    workload = mariadb.Workload(url, schema=database or "", rate=20, hard_deletes=False)
    batches: list[TableBatch] = []
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=mariadb_now(url), timeout=120)
        long_running = mariadb.connect(url)
        try:
            with long_running.cursor() as cur:
                cur.execute("SELECT CONNECTION_ID()")
                thread_id = str(cur.fetchone()[0])
                # The locking read first (it puts the transaction in INNODB_TRX), then the
                # stamp, as the biller's programs do (simulator.mariadb.schema.stamp).
                cur.execute(f"SELECT 1 FROM `{database}`.`ACCOUNT` WHERE `BILL_CYCLE` = 7"
                            " FOR UPDATE")  # fmt: skip
                date, time_, _ = mariadb.schema.stamp(long_running)
                touched = cur.execute(
                    f"UPDATE `{database}`.`ACCOUNT` SET `CREDIT_CLASS` = 'D', `CHG_DATE` = %s,"
                    " `CHG_TIME` = %s, `CHG_USER` = 'LONGRUN' WHERE `BILL_CYCLE` = 7",
                    (date, time_),
                )
            assert touched > 0
            workload.start()
            deadline = time.monotonic() + OPEN_SECONDS
            while time.monotonic() < deadline:
                batches.extend(engine.sync_once())
                time.sleep(0.5)
            long_running.commit()
        finally:
            workload.stop()
            long_running.close()
        engine.drain(until=mariadb_now(url), timeout=120)
        # Held at the long run's start. INNODB_TRX has whole seconds: a workload transaction
        # begun in the same second (waiting for the long run's locks) may be the one named.
        stamped = from_cyymmdd(date, time_)
        held = [b for b in batches if b.held_back_by and b.held_back_by.started_at <= stamped]
        assert held, "the horizon never saw the open transaction"
        assert thread_id in {b.held_back_by.pid for b in held if b.held_back_by} or all(
            b.held_back_by and b.held_back_by.started_at == stamped for b in held
        )
        assert max(b.hold_seconds for b in held) > OPEN_SECONDS - 6
        assert _late_rows(engine) == 0
        assert_parity(engine)


def test_many_rows_sharing_one_stamp_cross_bounded_batches_exactly_once(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    settings, url = mariadb_icoms(databases, mysql_database, tmp_path, accounts=30,
                                  batch_rows=250)  # fmt: skip
    database = mysql_database.database
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=mariadb_now(url), timeout=120)
        writer = mariadb.connect(url)
        with writer.cursor() as cur:
            cur.execute(f"SELECT 1 FROM `{database}`.`SITE` LIMIT 1 FOR UPDATE")
            date, time_, _ = mariadb.schema.stamp(writer)
            cur.execute(f"SELECT `SITE_ID`, `ACCOUNT_NO` FROM `{database}`.`ACCOUNT`")
            accounts = cur.fetchall()
            rows = [
                (site, 800_000_000 + n, account, "V", date, time_, 60, "ONE SECOND", 599,
                 date, time_, date, time_, "BULK", "A")
                for n, (site, account) in enumerate(accounts[n % len(accounts)]
                                                    for n in range(3_000))
            ]  # fmt: skip
            cur.executemany(
                f"INSERT INTO `{database}`.`USAGE_EVENT` (`SITE_ID`, `EVENT_NO`, `ACCOUNT_NO`,"
                " `EVENT_TYPE`, `EVENT_DATE`, `EVENT_TIME`, `DURATION_SEC`, `EVENT_DESC`,"
                " `CHARGE_AMT`, `CRT_DATE`, `CRT_TIME`, `CHG_DATE`, `CHG_TIME`, `CHG_USER`,"
                " `REC_STATUS`) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, %s)",
                rows,
            )
        writer.commit()
        writer.close()
        usage: list[TableBatch] = []
        deadline = time.monotonic() + 120
        while sum(b.rows_read for b in usage) < 3000 and time.monotonic() < deadline:
            usage += [b for b in engine.sync_once() if b.table == "USAGE_EVENT" and b.rows_read]
            time.sleep(0.2)
        assert sum(b.rows_read for b in usage) == 3000
        assert len(usage) >= 3000 // 250
        engine.drain(until=mariadb_now(url), timeout=120)
        assert_parity(engine)


def test_a_replayed_window_changes_nothing_on_mariadb(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    settings, url = mariadb_icoms(databases, mysql_database, tmp_path, accounts=20)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=mariadb_now(url), timeout=120)
        assert_a_replayed_window_changes_nothing(engine)
