"""The ICOMS-style biller on MariaDB (billing_sync.simulator.mariadb): the seed history
is the PostgreSQL biller's, every table has its capture index, and the workload stamps
each row at or after the second the capture horizon sees its transaction start in."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import URL

from billing_sync.simulator import mariadb
from billing_sync.simulator.clock import ICOMS_TIMEZONE, from_cyymmdd
from billing_sync.simulator.icoms import seed as icoms_seed
from billing_sync.simulator.icoms.schema import TABLES
from billing_sync_tests.mysql_support import mysql_database, mysql_server

__all__ = ["mysql_database", "mysql_server"]

AS_OF = datetime(2026, 11, 1)


def _url(database: URL) -> str:
    return database.render_as_string(hide_password=False)


def test_seed_is_the_postgres_billers_history_with_capture_indexes(mysql_database: URL) -> None:
    conn = mariadb.connect(_url(mysql_database))
    schema = mysql_database.database
    assert schema is not None
    counts = mariadb.seed(conn, accounts=120, seed=5, schema=schema, as_of=AS_OF)
    expected: Counter[str] = Counter()
    for chunk in icoms_seed.generate(random.Random(5), AS_OF, 120):
        for name, rows in chunk.items():
            expected[name] += len(rows)
    assert counts == dict(expected)
    with conn.cursor() as cur:
        for name, table in TABLES.items():
            cur.execute(f"SELECT count(*) FROM `{schema}`.`{name}`")
            assert cur.fetchone() == (counts[name],)
            cur.execute(f"SHOW INDEX FROM `{schema}`.`{name}` WHERE Key_name = %s",
                        (table.capture_index,))  # fmt: skip
            columns = [row[4] for row in sorted(cur.fetchall(), key=lambda row: row[3])]
            assert columns == ["CHG_DATE", "CHG_TIME", *table.key], name
    assert mariadb.seed_if_empty(conn, accounts=120, schema=schema) == {}
    with pytest.raises(ValueError, match="already holds rows"):
        mariadb.seed(conn, accounts=1, schema=schema)
    conn.close()


def test_every_operation_stamps_at_or_after_its_horizon_second(mysql_database: URL) -> None:
    url = _url(mysql_database)
    schema = mysql_database.database
    assert schema is not None
    conn = mariadb.connect(url, autocommit=True)
    mariadb.seed(conn, accounts=60, schema=schema, as_of=AS_OF)
    workload = mariadb.Workload(url, schema=schema, seed=3)
    for name in mariadb.OPERATIONS:
        assert workload.run(name) >= 1, name

    # A transaction held open after its locking read: INNODB_TRX shows its start, and
    # what it writes is stamped no earlier than that second (in ICOMS local time).
    observed: list[datetime] = []
    seen = threading.Event()

    def watch() -> None:
        with conn.cursor() as cur:
            for _ in range(200):
                cur.execute("SELECT trx_started FROM information_schema.INNODB_TRX")
                rows = cur.fetchall()
                if rows:
                    observed.append(rows[0][0])
                    seen.set()
                    return
                threading.Event().wait(0.02)

    watcher = threading.Thread(target=watch)
    writer = mariadb.connect(url)
    with writer.cursor() as cur:
        cur.execute(f"SELECT `ACCOUNT_NO` FROM `{schema}`.`ACCOUNT` LIMIT 1 FOR UPDATE")
        watcher.start()
        assert seen.wait(5)
        date, time_, _ = mariadb.schema.stamp(writer)
        writer.commit()
    watcher.join()
    # Sessions run in UTC (trx_started is UTC); stamps are ICOMS local time.
    stamped = from_cyymmdd(date, time_).replace(tzinfo=ZoneInfo(ICOMS_TIMEZONE))
    assert stamped >= observed[0].replace(tzinfo=UTC)
    writer.close()

    workload.start()
    threading.Event().wait(1.0)
    workload.stop()
    assert sum(workload.committed.values()) > len(mariadb.OPERATIONS)
    conn.close()
