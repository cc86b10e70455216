"""A MariaDB source read by the capture side: the adapter's clock in the catalog's zone
without the server's time zone tables, and (below) the ICOMS biller on MariaDB synced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.engine import URL

from billing_sync.source.engines import adapter_for
from billing_sync_tests.mysql_support import mysql_database, mysql_server

__all__ = ["mysql_database", "mysql_server"]

ZONE = "America/Chicago"


def test_clock_and_transaction_starts_read_in_the_catalogs_zone(mysql_database: URL) -> None:
    # Debian's MariaDB has no time zone tables: SET time_zone = 'America/Chicago' fails
    # there, so the adapter reads UTC and converts.
    adapter = adapter_for(mysql_database)
    adapter.timezone = ZONE
    try:
        with adapter.connect() as conn:
            local = adapter.source_now(conn)
        expected = datetime.now(UTC).astimezone(ZoneInfo(ZONE)).replace(tzinfo=None)
        assert abs(local - expected) < timedelta(seconds=5)
        assert adapter.local_time(datetime(2026, 7, 1, 17, 0)) == datetime(2026, 7, 1, 12, 0)
    finally:
        adapter.dispose()
