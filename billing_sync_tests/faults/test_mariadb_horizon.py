"""The MariaDB horizon probe against a pinned ``INNODB_TRX`` buffer, interleaved by hand.

InnoDB refreshes the view's buffer only after 0.1 s unread, so a session polling it
faster keeps an old snapshot in place. Before the probe proved its snapshot fresh, a
writer that opened behind such a snapshot was invisible and the horizon passed it.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.engine import URL

from billing_sync.simulator import mariadb
from billing_sync.source.engines.mysql import STALE_SNAPSHOT
from billing_sync.source.session import SourceSession
from billing_sync_tests.mysql_support import mysql_database, mysql_server

__all__ = ["mysql_database", "mysql_server"]

pytestmark = [pytest.mark.integration]


def _pin(url: str, stop: threading.Event) -> None:
    """Read INNODB_TRX every 20 ms (as a fast monitor would) until ``stop``."""
    conn = mariadb.connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT count(*) FROM information_schema.INNODB_TRX")
                cur.fetchall()
                stop.wait(0.02)
    finally:
        conn.close()


def test_a_writer_behind_a_pinned_innodb_trx_buffer_still_holds_the_horizon(
    mysql_database: URL,
) -> None:
    url = mysql_database.render_as_string(hide_password=False)
    setup = mariadb.connect(url, autocommit=True)
    with setup.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
    setup.close()
    with SourceSession(url, timezone="America/Chicago", statement_timeout=5) as session:
        fresh = session.horizon(delay=timedelta(0))  # nothing open, nothing pinned
        assert fresh.held_back_by is None
        stop = threading.Event()
        pinner = threading.Thread(target=_pin, args=(url, stop), daemon=True)
        writer = mariadb.connect(url)
        try:
            pinner.start()
            stop.wait(0.3)  # the buffer is filled, without the writer
            before = session.now()
            with writer.cursor() as cur:
                cur.execute("SELECT CONNECTION_ID()")
                (thread_id,) = cur.fetchone()
                cur.execute("INSERT INTO t VALUES (1)")  # open, uncommitted
            pinned = session.horizon(delay=timedelta(0))
            # Before the fix: horizon = now, past the writer that may still stamp `before`.
            assert pinned.at <= before, (pinned, before)
            assert pinned.held_back_by is not None
            assert pinned.held_back_by.pid == STALE_SNAPSHOT
            stop.set()
            pinner.join()
            seen = session.horizon(delay=timedelta(0))
            assert seen.held_back_by is not None and seen.held_back_by.pid == str(thread_id)
        finally:
            stop.set()
            writer.rollback()
            writer.close()
