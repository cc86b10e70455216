"""A MariaDB source read by the capture side: the adapter's clock in the catalog's zone
without the server's time zone tables, and (below) the ICOMS biller on MariaDB synced."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from billing_sync.capture.query import build_change_query
from billing_sync.capture.window import Cursor, Window
from billing_sync.config import CATALOG_DIR, ConfigError, Settings
from billing_sync.engine.sync import SyncEngine
from billing_sync.postgres import DatabaseUrls
from billing_sync.simulator import mariadb
from billing_sync.simulator.clock import from_cyymmdd
from billing_sync.source.engines import adapter_for
from billing_sync.source.session import SourceSession, SourceTimeout
from billing_sync.sql import BoundQuery
from billing_sync_tests.integration.helpers import assert_parity, settings_for
from billing_sync_tests.mysql_support import mysql_database, mysql_server

pytestmark = pytest.mark.integration

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


def mariadb_catalog_dir(directory: Path, database: str) -> Path:
    """The ICOMS catalog with its schema pointed at ``database`` (one per test)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = (CATALOG_DIR / "icoms.yaml").read_text()
    (directory / "icoms.yaml").write_text(
        text.replace("\nschema: icoms\n", f"\nschema: {database}\n")
    )
    return directory


def mariadb_icoms(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path, *, accounts: int, **capture: Any
) -> tuple[Settings, str]:
    """Seed the ICOMS biller on MariaDB; settings whose icoms source is it."""
    url = mysql_database.render_as_string(hide_password=False)
    database = mysql_database.database
    assert database is not None
    conn = mariadb.connect(url)
    mariadb.seed(conn, accounts=accounts, schema=database)
    conn.close()
    settings = settings_for(
        databases, tmp_path, source_urls={"icoms": url},
        catalog_dir=mariadb_catalog_dir(tmp_path / "catalog", database),
        capture={"delay_seconds": 1.2, **capture},
    )  # fmt: skip
    return settings, url


def mariadb_now(url: str) -> datetime:
    conn = mariadb.connect(url)
    try:
        return mariadb.schema.local_now(conn, ZONE)
    finally:
        conn.close()


def test_icoms_on_mariadb_syncs_to_parity_under_its_workload(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    settings, url = mariadb_icoms(databases, mysql_database, tmp_path, accounts=80,
                                  batch_rows=300)  # fmt: skip
    # No hard deletes: only verify finds those (test below); this is about the tail.
    workload = mariadb.Workload(url, schema=mysql_database.database or "", rate=40,
                                hard_deletes=False)  # fmt: skip
    with SyncEngine.from_settings(settings) as engine:
        assert engine.source("icoms").engine == "mysql"
        engine.setup()
        engine.validator.warm_up()
        workload.start()
        try:
            started = time.monotonic()
            batches = 0
            while batches < 6 or time.monotonic() - started < 6:
                batches += engine.run(tier=None, batches=1, poll_interval=0.2)
        finally:
            workload.stop()
        engine.drain(until=mariadb_now(url), timeout=180)
        results = assert_parity(engine)
    assert sum(workload.committed.values()) > 20
    rows = {r.table: r.warehouse_rows for r in results}
    assert rows["PAYMENT"] > 0 and rows["USAGE_EVENT"] > 0
    assert all(r.cache_rows == r.source_rows for r in results)


def test_a_delay_below_the_mariadb_minimum_is_refused(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    settings, _ = mariadb_icoms(databases, mysql_database, tmp_path, accounts=1,
                                delay_seconds=0.5)  # fmt: skip
    with (
        SyncEngine.from_settings(settings) as engine,
        pytest.raises(ConfigError, match=r"icoms: capture delay_seconds=0.5 is below 1.1 s"),
    ):
        engine.source("icoms")


def test_writes_through_the_capture_session_fail_on_mariadb(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    settings, _ = mariadb_icoms(databases, mysql_database, tmp_path, accounts=2)
    database = mysql_database.database
    with (
        SyncEngine.from_settings(settings) as engine,
        pytest.raises(DBAPIError, match="1792"),
    ):
        engine.source("icoms").scalar(f'DELETE FROM "{database}"."PAYMENT"')


def test_the_engines_change_query_walks_the_cursor_index_on_mariadb(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    settings, _ = mariadb_icoms(databases, mysql_database, tmp_path, accounts=300)
    with SyncEngine.from_settings(settings) as engine:
        catalog = engine.catalogs[0]
        mapping = catalog.by_table["LEDGER"]
        session = engine.source("icoms")
        after = Cursor(change_ts=datetime(2025, 6, 1, 12, 0, 0), key=("002", 100))
        window = Window(after=after, horizon=datetime(2026, 1, 1), limit=500)
        query = build_change_query(mapping, schema=catalog.schema_name, window=window,
                                   style=session.style)  # fmt: skip
        assert " OR " in query.text, "MariaDB gets the expanded form"
        plan = session.read_arrow(
            BoundQuery("EXPLAIN " + query.text, query.params),
            _EXPLAIN_SCHEMA,
        ).to_pylist()
    (step,) = plan
    assert step["key"] == "LEDGER_CHG_IX" and step["type"] == "range", step
    assert "filesort" not in (step["Extra"] or ""), step


_EXPLAIN_SCHEMA = pa.schema(
    [("id", pa.int64())]
    + [(name, pa.string()) for name in ("select_type", "table", "type", "possible_keys", "key",
                                        "key_len", "ref", "rows", "Extra")]
)  # fmt: skip


def test_each_statement_is_read_only_and_timed_even_after_a_session_change(
    mysql_database: URL,
) -> None:
    url = mysql_database.render_as_string(hide_password=False)
    conn = mariadb.connect(url)
    mariadb.seed(conn, accounts=2, schema=mysql_database.database or "")
    conn.close()
    with SourceSession(url, timezone=ZONE, statement_timeout=0.5) as session:
        session.scalar("SET SESSION TRANSACTION READ WRITE")  # what a hostile filter might do
        with pytest.raises(DBAPIError, match="1792"):
            session.scalar(f'DELETE FROM "{mysql_database.database}"."PAYMENT"')
        started = time.monotonic()
        with pytest.raises(SourceTimeout, match="statement_timeout_seconds"):
            session.scalar("SELECT SLEEP(5)")
        assert time.monotonic() - started < 3
        assert session.scalar("SELECT 1") == 1  # the session is usable afterwards


def test_a_drain_to_a_whole_second_reads_the_rows_stamped_in_that_second(
    databases: DatabaseUrls, mysql_database: URL, tmp_path: Path
) -> None:
    # The cause of the parity misses once blamed on MariaDB: the tests drained to
    # mariadb_now(), a whole second S, and a drain stopped at caught_up_to == S, the
    # exclusive bound, with the last transaction (stamped S) unread. The drain now goes
    # strictly past S (engine.sync.caught_up).
    settings, url = mariadb_icoms(databases, mysql_database, tmp_path, accounts=3)
    workload = mariadb.Workload(url, schema=mysql_database.database or "", hard_deletes=False)
    with SyncEngine.from_settings(settings) as engine:
        engine.setup()
        engine.drain(until=mariadb_now(url), timeout=120)
        assert workload.run("post_payment") > 0
        workload.stop()
        conn = mariadb.connect(url)
        with conn.cursor() as cur:
            cur.execute(f"SELECT MAX(`CHG_DATE` * 1000000 + `CHG_TIME`) FROM"
                        f" `{mysql_database.database}`.`PAYMENT`")  # fmt: skip
            (packed,) = cur.fetchone()
        conn.close()
        stamp = from_cyymmdd(int(packed) // 1_000_000, int(packed) % 1_000_000)
        engine.drain(until=stamp, timeout=120)
        assert_parity(engine)
