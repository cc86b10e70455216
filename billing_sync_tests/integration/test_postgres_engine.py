"""The PostgreSQL engine adapter against the test server: the same probes as MariaDB's."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from billing_sync.postgres import DatabaseUrls
from billing_sync.source.engines import adapter_for


def test_postgres_adapter_is_read_only_and_sees_open_transactions(
    databases: DatabaseUrls,
) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute("CREATE TABLE acct (id int PRIMARY KEY, chg_ts timestamp(6))")
    adapter = adapter_for(make_url(databases.source).set(drivername="postgresql+psycopg"))
    try:
        with adapter.connect() as conn:
            with pytest.raises(DBAPIError, match="read-only transaction"):
                conn.execute(sa.text("INSERT INTO acct VALUES (1, now())"))
            assert adapter.oldest_open_transaction(conn) is None
            with psycopg.connect(databases.source) as other:
                # A transaction that has only read so far counts (it may still write).
                other.execute("SELECT count(*) FROM acct").fetchone()
                pid = other.info.backend_pid
                oldest = adapter.oldest_open_transaction(conn)
                now = adapter.source_now(conn)
                assert oldest is not None and oldest.id == str(pid)
                assert oldest.started_at <= now and oldest.age_seconds >= 0
                other.rollback()
    finally:
        adapter.dispose()
